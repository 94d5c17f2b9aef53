// The tools' own computations, shared by every backend: cost estimates, the
// router's recommendation, the budget record, the prompt event and answer
// of complete_prompt, and the ledger's /api/usage read back (against a real
// LedgerHttpServer, so the tool and the ledger agree on the format).
#include <curl/curl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "budgets/budgets.h"
#include "config/config.h"
#include "consumers/ledger/cost_event_builder.h"
#include "consumers/ledger/ledger.h"
#include "mcp/mcp.h"
#include "support/env.h"
#include "support/temp_dir.h"
#include "support/test_catalog.h"

namespace cascade {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

const McpCaller kAcme{"acme"};

ModelCatalog builtin_catalog() {
  auto catalog = ModelCatalog::load(CatalogConfig{});
  EXPECT_TRUE(catalog) << catalog.error().message;
  return catalog ? std::move(*catalog) : ModelCatalog{};
}

json user(std::string text) { return json::array({{{"role", "user"}, {"content", std::move(text)}}}); }

// --------------------------------------------------------- check_model_costs ----

TEST(EstimateModelCosts, APromptIsPricedPerModelCheapestFirst) {
  const ModelCatalog catalog = testing::catalog_from_yaml(testing::kThreeTierCatalog);
  CostEstimateRequest request;
  request.messages = user(std::string(4000, 'a'));
  request.expected_output_tokens = 1000;
  auto estimate = estimate_model_costs(catalog, nullptr, request);
  ASSERT_TRUE(estimate) << estimate.error().message;
  EXPECT_TRUE(estimate->has_prompt);
  EXPECT_EQ(estimate->price_version, "three-tier-test");
  ASSERT_EQ(estimate->models.size(), 3u);
  EXPECT_EQ(estimate->models[0].model, "s");
  EXPECT_EQ(estimate->models[2].model, "l");
  for (const ModelCostEstimate& m : estimate->models) {
    EXPECT_GT(m.input_tokens, 1000);  // bytes / 4 without rank files
    EXPECT_EQ(m.count_method, TokenCountMethod::bytes);
    EXPECT_DOUBLE_EQ(m.estimated_cost_usd, (m.input_tokens * m.input_per_mtok + 1000 * m.output_per_mtok) / 1e6);
    EXPECT_TRUE(m.fits_context);
  }
  // The baseline priced the same way.
  EXPECT_EQ(estimate->baseline_model, catalog.baseline().id);
  for (const ModelCostEstimate& m : estimate->models) {
    if (m.model == catalog.baseline().id) {
      EXPECT_DOUBLE_EQ(estimate->baseline_cost_usd, m.estimated_cost_usd);
    }
  }
}

TEST(EstimateModelCosts, WithoutAPromptModelsAreRankedByBlendedPrice) {
  const ModelCatalog catalog = builtin_catalog();
  auto estimate = estimate_model_costs(catalog, nullptr, {});
  ASSERT_TRUE(estimate);
  EXPECT_FALSE(estimate->has_prompt);
  EXPECT_EQ(estimate->models.size(), catalog.models().size());
  EXPECT_EQ(estimate->baseline_model, "gpt-4o");
  for (std::size_t i = 1; i < estimate->models.size(); ++i)
    EXPECT_LE(estimate->models[i - 1].blended_per_mtok, estimate->models[i].blended_per_mtok);
  for (const ModelCostEstimate& m : estimate->models) EXPECT_EQ(m.estimated_cost_usd, 0);
}

TEST(EstimateModelCosts, FiltersByTierAndModelsAndRefusesUnknownIds) {
  const ModelCatalog catalog = builtin_catalog();
  CostEstimateRequest request;
  request.messages = user("Summarize the plot of Hamlet.");
  request.tier = Tier::large;
  auto large = estimate_model_costs(catalog, nullptr, request);
  ASSERT_TRUE(large);
  ASSERT_FALSE(large->models.empty());
  for (const ModelCostEstimate& m : large->models) EXPECT_EQ(m.tier, Tier::large);
  for (std::size_t i = 1; i < large->models.size(); ++i)
    EXPECT_LE(large->models[i - 1].estimated_cost_usd, large->models[i].estimated_cost_usd);

  request.tier.reset();
  request.models = {"gpt-4o", "gpt-4o-mini", "gpt-4o"};
  auto two = estimate_model_costs(catalog, nullptr, request);
  ASSERT_TRUE(two);
  ASSERT_EQ(two->models.size(), 2u);
  EXPECT_EQ(two->models[0].model, "gpt-4o-mini");

  request.models = {"gpt-9"};
  auto unknown = estimate_model_costs(catalog, nullptr, request);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::invalid_request);
  EXPECT_THAT(unknown.error().message, HasSubstr("unknown model 'gpt-9'"));
}

TEST(EstimateModelCosts, AnAnswerLargerThanTheContextDoesNotFit) {
  const ModelCatalog catalog = testing::catalog_from_yaml(testing::kThreeTierCatalog);
  CostEstimateRequest request;
  request.messages = user("hi");
  request.expected_output_tokens = 1000000;
  auto estimate = estimate_model_costs(catalog, nullptr, request);
  ASSERT_TRUE(estimate);
  for (const ModelCostEstimate& m : estimate->models) EXPECT_FALSE(m.fits_context);
}

// -------------------------------------------------------- get_recommendation ----

class RouteAdvisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto config = load_config("", testing::no_env());
    ASSERT_TRUE(config) << config.error().message;
    config_ = std::move(*config);
    catalog_ = builtin_catalog();
    auto advisor = RouteAdvisor::create(config_, catalog_, nullptr, [](std::string_view) { return true; });
    ASSERT_TRUE(advisor) << advisor.error().message;
    advisor_ = std::move(*advisor);
  }
  Config config_;
  ModelCatalog catalog_;
  std::unique_ptr<RouteAdvisor> advisor_;
};

TEST_F(RouteAdvisorTest, ASimplePromptGoesToTheSmallTierWithItsReasonAndThresholds) {
  RouteRequest request;
  request.messages = user("What is the capital of France?");
  auto r = advisor_->recommend(kAcme, request);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->tier, Tier::small);
  EXPECT_NE(catalog_.find(r->model), nullptr);
  EXPECT_THAT(r->reason, HasSubstr("heuristic score="));
  EXPECT_THAT(r->reason, HasSubstr("tier=small"));
  EXPECT_EQ(r->scorer, "heuristic");
  EXPECT_EQ(r->threshold_kind, "complexity");
  EXPECT_DOUBLE_EQ(r->small_threshold, config_.router.balanced.small_max);
  EXPECT_DOUBLE_EQ(r->medium_threshold, config_.router.balanced.medium_max);
  EXPECT_NEAR(r->p_weak_ok, 1 - r->score, 1e-9);
  EXPECT_LE(r->drivers.size(), 8u);
  EXPECT_FALSE(r->constraints.empty());
  EXPECT_EQ(r->max_tokens, config_.limits.default_max_tokens);
  EXPECT_GT(r->max_cost_usd, 0);
  EXPECT_FALSE(r->providers_available.empty());
}

TEST_F(RouteAdvisorTest, PreferencePinAndMaxTokensAreTheRequests) {
  RouteRequest request;
  request.messages = user("What is the capital of France?");
  request.preference = Preference::quality;
  request.model = "gpt-4o";
  request.max_tokens = 10;
  auto r = advisor_->recommend(kAcme, request);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->model, "gpt-4o");
  EXPECT_EQ(r->preference, Preference::quality);
  EXPECT_DOUBLE_EQ(r->small_threshold, config_.router.quality.small_max);
  EXPECT_EQ(r->max_tokens, 10);

  request.model = "gpt-9";
  auto unknown = advisor_->recommend(kAcme, request);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::invalid_request);
}

TEST_F(RouteAdvisorTest, WithoutAnyProviderKeySetEveryProviderIsAssumed) {
  std::vector<std::unique_ptr<testing::UnsetEnv>> unset;
  for (const auto& [name, provider] : config_.providers)
    if (!provider.api_key_env.empty()) unset.push_back(std::make_unique<testing::UnsetEnv>(provider.api_key_env.c_str()));
  auto advisor = RouteAdvisor::create(config_, catalog_, nullptr);
  ASSERT_TRUE(advisor);
  RouteRequest request;
  request.messages = user("Prove that there are infinitely many primes, step by step.");
  auto r = (*advisor)->recommend(kAcme, request);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->providers_available.empty()) << "empty: all assumed";
  EXPECT_FALSE(r->drivers.empty()) << "a proof step by step drives the score";
}

// ----------------------------------------------------------- complete_prompt ----

TEST(CompletionPromptEvent, CarriesTheCallersTenantAndTheRequest) {
  CompletionRequest request;
  request.messages = user("hi");
  request.model = "gpt-4o-mini";
  request.preference = Preference::speed;
  request.max_tokens = 50;
  const PromptEvent event = completion_prompt_event(kAcme, request, "mcp-7", "cascade.replies");
  EXPECT_EQ(event.id, "mcp-7");
  EXPECT_EQ(event.tenant, "acme");
  EXPECT_EQ(event.reply_to, "cascade.replies");
  EXPECT_EQ(event.messages, user("hi"));
  EXPECT_EQ(event.model, "gpt-4o-mini");
  EXPECT_EQ(event.preference, Preference::speed);
  EXPECT_EQ(event.max_tokens, 50);
  EXPECT_FALSE(event.stream);
  EXPECT_EQ(event.cache, CacheMode::exact);
  EXPECT_EQ(event.metadata, json({{"source", "mcp"}}));
  // It is a valid prompt event.
  auto parsed = parse_prompt_event(to_json(event).dump(), {}, [](std::string_view) { return true; });
  EXPECT_TRUE(parsed) << parsed.error().error.message;
}

TEST(CompletionAnswer, SavingsAreTheBaselinesPriceOfTheSameUsageMinusTheCost) {
  const ModelCatalog catalog = testing::catalog_from_yaml(testing::kThreeTierCatalog, "l");
  FinalReply reply;
  reply.model = "s";
  reply.usage = {1000, 500};
  reply.cost_usd = cost_usd(catalog.find("s")->price, reply.usage);
  const CompletionAnswer answer = completion_answer(reply, catalog);
  ASSERT_TRUE(answer.savings_usd);
  EXPECT_DOUBLE_EQ(*answer.savings_usd, (1000 * 5.0 + 500 * 20.0) / 1e6 - reply.cost_usd);
  EXPECT_EQ(answer.baseline_model, "l");
  EXPECT_EQ(answer.reply.model, "s");
}

// ----------------------------------------------------------------- set_budget ----

TEST(BudgetRecord, LimitsLeftOutKeepTheirValue) {
  const ModelCatalog catalog = builtin_catalog();
  BudgetBook book({Budget{"acme", "", {10, 100, 80}}});
  BudgetChange change;
  change.daily_usd = 5;
  auto record = budget_record(kAcme, change, book, catalog, "cascade.budgets", 1767225600000);
  ASSERT_TRUE(record) << record.error().message;
  EXPECT_EQ(record->key, budget_record_key("acme", ""));
  ASSERT_TRUE(record->value);
  auto budget = decode_budget_record(*record->value);
  ASSERT_TRUE(budget) << budget.error().message;
  EXPECT_EQ(budget->tenant, "acme");
  EXPECT_DOUBLE_EQ(budget->limits.daily_usd, 5);
  EXPECT_DOUBLE_EQ(budget->limits.monthly_usd, 100);
  EXPECT_DOUBLE_EQ(budget->limits.soft_percent, 80);
  EXPECT_FALSE(record->setting.cleared);
  EXPECT_DOUBLE_EQ(record->setting.daily_usd, 5);
  EXPECT_DOUBLE_EQ(record->setting.monthly_usd, 100);
  EXPECT_EQ(record->setting.topic, "cascade.budgets");
  // Applied to a book, the record is what the book then holds.
  ASSERT_TRUE(book.apply_budget_record(record->key, *record->value));
  EXPECT_DOUBLE_EQ(book.limits("acme", "")->daily_usd, 5);
}

TEST(BudgetRecord, AModelOrTagScopeAndAClearThatBringsBackTheConfiguredBudget) {
  const ModelCatalog catalog = builtin_catalog();
  BudgetBook book({Budget{"acme", "model:gpt-4o", {2, 0, 80}}});
  book.set_runtime_budget({"acme", "model:gpt-4o", {7, 70, 50}});
  BudgetChange clear;
  clear.model = "gpt-4o";
  clear.clear = true;
  auto record = budget_record(kAcme, clear, book, catalog, "cascade.budgets", 0);
  ASSERT_TRUE(record) << record.error().message;
  EXPECT_EQ(record->key, budget_record_key("acme", "model:gpt-4o"));
  EXPECT_FALSE(record->value) << "a tombstone";
  EXPECT_TRUE(record->setting.cleared);
  EXPECT_DOUBLE_EQ(record->setting.daily_usd, 2);
  EXPECT_DOUBLE_EQ(record->setting.soft_percent, 80);

  BudgetChange tag;
  tag.tag = "research";
  tag.monthly_usd = 30;
  record = budget_record(kAcme, tag, book, catalog, "cascade.budgets", 0);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->setting.scope, "tag:research");
  EXPECT_DOUBLE_EQ(record->setting.monthly_usd, 30);
  EXPECT_DOUBLE_EQ(record->setting.daily_usd, 0);
}

TEST(BudgetRecord, RefusesWhatCannotBeABudget) {
  const ModelCatalog catalog = builtin_catalog();
  const BudgetBook book;
  BudgetChange change;
  change.daily_usd = 1;
  change.model = "gpt-9";
  EXPECT_THAT(budget_record(kAcme, change, book, catalog, "t", 0).error().message, HasSubstr("not in the model catalog"));
  change.model = "gpt-4o";
  change.tag = "x";
  EXPECT_THAT(budget_record(kAcme, change, book, catalog, "t", 0).error().message, HasSubstr("not both"));
  BudgetChange nothing;
  EXPECT_THAT(budget_record(kAcme, nothing, book, catalog, "t", 0).error().message, HasSubstr("nothing to set"));
  BudgetChange soft;
  soft.soft_percent = 0;
  EXPECT_THAT(budget_record(kAcme, soft, book, catalog, "t", 0).error().message, HasSubstr("soft_percent"));
  BudgetChange negative;
  negative.monthly_usd = -1;
  EXPECT_THAT(budget_record(kAcme, negative, book, catalog, "t", 0).error().message, HasSubstr("monthly_usd"));
}

// ---------------------------------------------------------------- query_usage ----

TEST(LedgerUsageUrl, AsksForTheCallersTenantPerModel) {
  EXPECT_EQ(ledger_usage_url("http://127.0.0.1:9464/", {"a:b.c"}, {"7d", ""}),
            "http://127.0.0.1:9464/api/usage?tenant=a%3Ab.c&group_by=model&from=7d");
  EXPECT_EQ(ledger_usage_url("http://l:1", kAcme, {"2026-07-01", "2026-07-14"}),
            "http://l:1/api/usage?tenant=acme&group_by=model&from=2026-07-01&to=2026-07-14");
}

size_t collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::string http_get(const std::string& url) {
  std::string body;
  CURL* curl = curl_easy_init();
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
  EXPECT_EQ(curl_easy_perform(curl), CURLE_OK);
  curl_easy_cleanup(curl);
  return body;
}

TEST(ParseLedgerUsage, ReadsTheLedgersOwnReplyForTheTenantOnly) {
  testing::TempDir dir;
  LedgerStoreOptions options;
  options.dir = dir.path();
  auto store = LedgerStore::open(options);
  ASSERT_TRUE(store) << store.error().message;
  using ledger_test::make_cost;
  const std::int64_t now = now_ms();
  ASSERT_TRUE((*store)->apply(std::vector{
      make_cost({.id = "a1", .tenant = "acme", .model = "gpt-4o-mini", .cost_usd = 0.002, .baseline_cost_usd = 0.02,
                 .input_tokens = 100, .output_tokens = 10, .ts_ms = now}),
      make_cost({.id = "a2", .tenant = "acme", .model = "gpt-4o-mini", .cost_usd = 0, .baseline_cost_usd = 0.02,
                 .cache = CacheOutcome::exact, .ts_ms = now}),
      make_cost({.id = "a3", .tenant = "acme", .model = "gpt-4o", .cost_usd = 0.03, .baseline_cost_usd = 0.03,
                 .ts_ms = now}),
      make_cost({.id = "g1", .tenant = "globex", .model = "gpt-4o", .cost_usd = 5, .baseline_cost_usd = 5, .ts_ms = now}),
  }));
  auto server = LedgerHttpServer::start("127.0.0.1:0", **store, nullptr, nullptr, "gpt-4o");
  ASSERT_TRUE(server) << server.error().message;
  const std::string base = "http://127.0.0.1:" + std::to_string((*server)->port());

  auto usage = parse_ledger_usage(http_get(ledger_usage_url(base, kAcme, {"7d", ""})), kAcme);
  ASSERT_TRUE(usage) << usage.error().message;
  EXPECT_EQ(usage->tenant, "acme");
  EXPECT_EQ(usage->to_day, utc_day(now));
  EXPECT_EQ(usage->baseline_model, "gpt-4o");
  EXPECT_EQ(usage->totals.requests, 3u);
  EXPECT_EQ(usage->totals.cache_hits, 1u);
  EXPECT_NEAR(usage->totals.cache_hit_rate, 1.0 / 3, 1e-12);
  EXPECT_NEAR(usage->totals.cost_usd, 0.032, 1e-12);
  EXPECT_NEAR(usage->totals.baseline_cost_usd, 0.07, 1e-12);
  EXPECT_NEAR(usage->totals.savings_usd, 0.038, 1e-12);
  ASSERT_EQ(usage->models.size(), 2u);
  EXPECT_EQ(usage->models[0].key, "gpt-4o-mini");  // most requests first
  EXPECT_EQ(usage->models[0].requests, 2u);
  EXPECT_EQ(usage->models[0].input_tokens, 100u);

  // A reply for another tenant is never passed off as the caller's.
  auto other = parse_ledger_usage(http_get(ledger_usage_url(base, {"globex"}, {})), kAcme);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, ErrorCode::internal);
  EXPECT_FALSE(parse_ledger_usage(R"({"error":"from: 'x' is neither"})", kAcme));
  EXPECT_FALSE(parse_ledger_usage("<html>", kAcme));
  (*server)->stop();
}

}  // namespace
}  // namespace cascade
