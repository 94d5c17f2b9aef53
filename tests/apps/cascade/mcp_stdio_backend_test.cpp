// The backend of `cascade mcp` on an embedded broker: the in-process tools
// answer at once, set_budget publishes what `cascade budget` reads back,
// query_usage reads the ledger's /api/usage (with an admin key when the
// ledger asks for one), complete_prompt times out without a worker, and every
// call is answered once, also when the backend stops. (A worker answering
// it, through the official MCP SDK: tests/mcp/mcp_sdk_e2e_test.mjs.)
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <future>

#include "apps/cascade/ledger_commands.h"
#include "apps/cascade/mcp_stdio_backend.h"
#include "config/config.h"
#include "consumers/ledger/cost_event_builder.h"
#include "consumers/ledger/ledger.h"
#include "support/embedded_kafka.h"
#include "support/env.h"
#include "support/temp_dir.h"

namespace cascade::cli {
namespace {

using ::testing::HasSubstr;

const McpCaller kAcme{"acme"};

// The result a callback got, waited for.
template <class T>
class Answer {
 public:
  McpCallback<T> callback() {
    return [this](Result<T> result) {
      calls_++;
      promise_.set_value(std::move(result));
    };
  }
  Result<T> get(std::chrono::seconds timeout = std::chrono::seconds(30)) {
    if (future_.wait_for(timeout) != std::future_status::ready) {
      ADD_FAILURE() << "no answer within " << timeout.count() << " s";
      return fail(ErrorCode::internal, "no answer");
    }
    return future_.get();
  }
  bool ready() const { return future_.wait_for(std::chrono::seconds(0)) == std::future_status::ready; }
  int calls() const { return calls_; }

 private:
  std::promise<Result<T>> promise_;
  std::future<Result<T>> future_ = promise_.get_future();
  std::atomic<int> calls_{0};
};

// Sets an environment variable for the object's lifetime.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
  ~ScopedEnv() { ::unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

class StdioMcpBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto config = load_config("", testing::no_env());
    ASSERT_TRUE(config) << config.error().message;
    config_ = std::move(*config);
    kafka_ = testing::start_cascade_kafka(2);
    ASSERT_TRUE(kafka_.broker);
    config_.kafka.bootstrap = kafka_.bootstrap();
    config_.kafka.fetch_wait_max_ms = 5;
    config_.mcp.timeout_ms = 10000;
  }

  std::shared_ptr<StdioMcpBackend> open() {
    auto backend = StdioMcpBackend::open(config_);
    EXPECT_TRUE(backend) << backend.error().message;
    return backend ? *backend : nullptr;
  }

  // A ledger API over a store holding two of acme's requests and one of
  // globex's; with `admin_key`, it asks for that key.
  void start_ledger(std::string admin_key = "") {
    LedgerStoreOptions options;
    options.dir = ledger_dir_.path();
    auto store = LedgerStore::open(options);
    ASSERT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
    using ledger_test::make_cost;
    const std::int64_t now = now_ms();
    ASSERT_TRUE(store_->apply(std::vector{
        make_cost({.id = "a1", .tenant = "acme", .cost_usd = 0.001, .baseline_cost_usd = 0.01, .ts_ms = now}),
        make_cost({.id = "a2", .tenant = "acme", .cost_usd = 0, .baseline_cost_usd = 0.01,
                   .cache = CacheOutcome::exact, .ts_ms = now}),
        make_cost({.id = "g1", .tenant = "globex", .cost_usd = 1, .baseline_cost_usd = 1, .ts_ms = now}),
    }));
    std::function<bool(std::string_view)> is_admin;
    if (!admin_key.empty()) is_admin = [admin_key](std::string_view key) { return key == admin_key; };
    auto server = LedgerHttpServer::start("127.0.0.1:0", *store_, nullptr, nullptr, "gpt-4o", nullptr, is_admin);
    ASSERT_TRUE(server) << server.error().message;
    ledger_ = std::move(*server);
    config_.mcp.ledger_url = "http://127.0.0.1:" + std::to_string(ledger_->port());
  }

  void TearDown() override {
    if (ledger_) ledger_->stop();
  }

  Config config_;
  testing::EmbeddedKafka kafka_;
  testing::TempDir ledger_dir_;
  std::unique_ptr<LedgerStore> store_;
  std::unique_ptr<LedgerHttpServer> ledger_;
};

TEST_F(StdioMcpBackendTest, RefusesToOpenWithoutBrokers) {
  config_.kafka.bootstrap.clear();
  auto backend = StdioMcpBackend::open(config_);
  ASSERT_FALSE(backend);
  EXPECT_THAT(backend.error().message, HasSubstr("no brokers configured"));
}

TEST_F(StdioMcpBackendTest, CostsAndRecommendationsAreAnsweredBeforeTheCallReturns) {
  auto backend = open();
  ASSERT_TRUE(backend);
  Answer<CostEstimate> costs;
  CostEstimateRequest estimate;
  estimate.messages = user_messages("Why is the sky blue?");
  backend->estimate_costs(kAcme, estimate, costs.callback());
  ASSERT_TRUE(costs.ready());
  auto c = costs.get();
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->has_prompt);
  EXPECT_FALSE(c->models.empty());

  Answer<RouteRecommendation> route;
  RouteRequest request;
  request.messages = user_messages("Why is the sky blue?");
  backend->recommend_route(kAcme, request, route.callback());
  ASSERT_TRUE(route.ready());
  auto r = route.get();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->tier, Tier::small);
}

TEST_F(StdioMcpBackendTest, SetBudgetPublishesWhatCascadeBudgetReadsBack) {
  auto backend = open();
  ASSERT_TRUE(backend);
  BudgetChange change;
  change.daily_usd = 3;
  change.monthly_usd = 30;
  Answer<BudgetSetting> set;
  backend->set_budget(kAcme, change, set.callback());
  auto setting = set.get();
  ASSERT_TRUE(setting) << setting.error().message;
  EXPECT_EQ(setting->tenant, "acme");
  EXPECT_EQ(setting->topic, config_.kafka.budgets_topic);
  auto book = read_budget_book(config_, false);
  ASSERT_TRUE(book) << book.error().message;
  ASSERT_TRUE((*book)->limits("acme", ""));
  EXPECT_DOUBLE_EQ((*book)->limits("acme", "")->daily_usd, 3);
  EXPECT_DOUBLE_EQ((*book)->limits("acme", "")->monthly_usd, 30);

  // A later change keeps what it leaves out; a clear removes the budget.
  BudgetChange soft;
  soft.soft_percent = 50;
  Answer<BudgetSetting> softened;
  backend->set_budget(kAcme, soft, softened.callback());
  auto s = softened.get();
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_DOUBLE_EQ(s->daily_usd, 3);
  EXPECT_DOUBLE_EQ(s->soft_percent, 50);
  BudgetChange clear;
  clear.clear = true;
  Answer<BudgetSetting> cleared;
  backend->set_budget(kAcme, clear, cleared.callback());
  ASSERT_TRUE(cleared.get());
  book = read_budget_book(config_, false);
  ASSERT_TRUE(book);
  EXPECT_FALSE((*book)->limits("acme", ""));
}

TEST_F(StdioMcpBackendTest, QueryUsageReadsTheLedgersApiForTheSessionsTenant) {
  start_ledger();
  auto backend = open();
  ASSERT_TRUE(backend);
  Answer<UsageSummary> usage;
  backend->query_usage(kAcme, {"7d", ""}, usage.callback());
  auto u = usage.get();
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->tenant, "acme");
  EXPECT_EQ(u->totals.requests, 2u);
  EXPECT_EQ(u->totals.cache_hits, 1u);
}

TEST_F(StdioMcpBackendTest, ALedgerThatAsksForAnAdminKeyGetsTheOneMcpLedgerKeyEnvNames) {
  start_ledger("csk-admin-test");
  {
    auto backend = open();
    ASSERT_TRUE(backend);
    Answer<UsageSummary> refused;
    backend->query_usage(kAcme, {}, refused.callback());
    auto r = refused.get();
    ASSERT_FALSE(r);
    EXPECT_THAT(r.error().message, HasSubstr("asks for an admin key"));
    EXPECT_THAT(r.error().message, HasSubstr("mcp.ledger_key_env"));
  }
  const ScopedEnv key("CASCADE_TEST_MCP_LEDGER_KEY", "csk-admin-test");
  config_.mcp.ledger_key_env = "CASCADE_TEST_MCP_LEDGER_KEY";
  auto backend = open();
  ASSERT_TRUE(backend);
  Answer<UsageSummary> usage;
  backend->query_usage(kAcme, {}, usage.callback());
  auto u = usage.get();
  ASSERT_TRUE(u) << u.error().message;
  EXPECT_EQ(u->totals.requests, 2u);
}

TEST_F(StdioMcpBackendTest, AnUnreachableLedgerIsUnavailableAndSaysWhere) {
  config_.mcp.ledger_url = "http://127.0.0.1:1";
  auto backend = open();
  ASSERT_TRUE(backend);
  Answer<UsageSummary> usage;
  backend->query_usage(kAcme, {}, usage.callback());
  auto u = usage.get();
  ASSERT_FALSE(u);
  EXPECT_EQ(u.error().code, ErrorCode::unavailable);
  EXPECT_THAT(u.error().message, HasSubstr("the ledger at http://127.0.0.1:1 did not answer"));
}

TEST_F(StdioMcpBackendTest, APromptNoWorkerAnswersTimesOut) {
  config_.mcp.timeout_ms = 300;
  auto backend = open();
  ASSERT_TRUE(backend);
  Answer<CompletionAnswer> answer;
  CompletionRequest request;
  request.messages = user_messages("hello");
  backend->complete_prompt(kAcme, request, answer.callback());
  auto a = answer.get();
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, ErrorCode::timeout);
  EXPECT_THAT(a.error().message, HasSubstr("is a `cascade worker` running"));
}

TEST_F(StdioMcpBackendTest, StoppingAnswersWhatIsPendingOnceAndRefusesWhatFollows) {
  auto backend = open();
  ASSERT_TRUE(backend);
  Answer<CompletionAnswer> pending;
  CompletionRequest request;
  request.messages = user_messages("hello");
  backend->complete_prompt(kAcme, request, pending.callback());
  backend->stop();
  auto p = pending.get(std::chrono::seconds(5));
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, ErrorCode::unavailable);
  Answer<UsageSummary> late;
  backend->query_usage(kAcme, {}, late.callback());
  auto l = late.get(std::chrono::seconds(5));
  ASSERT_FALSE(l);
  EXPECT_THAT(l.error().message, HasSubstr("stopping"));
  backend->stop();  // idempotent
  EXPECT_EQ(pending.calls(), 1);
  EXPECT_EQ(late.calls(), 1);
}

}  // namespace
}  // namespace cascade::cli
