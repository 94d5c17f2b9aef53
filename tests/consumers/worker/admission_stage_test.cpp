// The admission stage alone: tenant rate limits on a fake clock, and
// budgets checked against a BudgetBook the test fills.
#include "consumers/worker/admission_stage.h"

#include <gtest/gtest.h>

#include "support/worker_host.h"

namespace cascade {
namespace {

using testing::LifecycleHarness;
using testing::worker_test_config;

class AdmissionStageTest : public ::testing::Test {
 protected:
  Request& routed(const std::string& id, nlohmann::json fields = {}) {
    auto parsed = parse_prompt_event(LifecycleHarness::prompt(id, "Summarize this paragraph.", std::move(fields)),
                                     PromptLimits{}, [](std::string_view) { return true; });
    EXPECT_TRUE(parsed);
    auto owned = std::make_unique<Request>();
    owned->serial = h_.requests.next_serial();
    owned->event = std::move(*parsed);
    Request& r = h_.requests.add(std::move(owned));
    EXPECT_TRUE(routing_.route(r));
    return r;
  }
  std::vector<std::string> chain(const Request& r) {
    std::vector<std::string> ids;
    for (const auto* m : r.attempts.chain) ids.push_back(m->id);
    return ids;
  }
  // Spend of the day so far, as the ledger publishes it.
  void spent(double usd, const std::string& scope = "") {
    book_.set_spend({"acme", scope, BudgetPeriod::daily, period_id(BudgetPeriod::daily, h_.host.wall), usd, 1,
                     h_.host.wall});
  }

  LifecycleHarness h_;
  BudgetBook book_;
  RoutingStage routing_{h_.context(), nullptr, nullptr};
  AdmissionStage admission_{h_.context(), &book_};
};

TEST_F(AdmissionStageTest, ATenantWithoutBudgetsIsAdmittedAndReservesNothing) {
  Request& r = routed("r");
  EXPECT_EQ(admission_.check_budget(r, routing_).verdict, AdmissionStage::Verdict::admitted);
  EXPECT_EQ(r.charges.budget_reservation, 0u);
}

TEST(AdmissionStage, PastASoftLimitTheRequestIsMovedToTheCheapestModelAndTheReasonSaysSo) {
  Config config = worker_test_config();
  config.router.balanced = TierThresholds{0.0, 0.0};  // every request is routed to the large tier
  LifecycleHarness h(config);
  BudgetBook book;
  RoutingStage routing(h.context(), nullptr, nullptr);
  AdmissionStage admission(h.context(), &book);
  book.set_runtime_budget({"acme", "", BudgetLimits{.daily_usd = 1.0, .monthly_usd = 0, .soft_percent = 50}});
  book.set_spend({"acme", "", BudgetPeriod::daily, period_id(BudgetPeriod::daily, h.host.wall), 0.6, 1, h.host.wall});
  auto parsed = parse_prompt_event(LifecycleHarness::prompt("r", "Hi", {{"max_tokens", 100}}), PromptLimits{},
                                   [](auto) { return true; });
  ASSERT_TRUE(parsed);
  auto owned = std::make_unique<Request>();
  owned->event = std::move(*parsed);
  Request& r = h.requests.add(std::move(owned));
  ASSERT_TRUE(routing.route(r));
  ASSERT_EQ(r.route.model->id, "large-a");
  EXPECT_EQ(admission.check_budget(r, routing).verdict, AdmissionStage::Verdict::admitted);
  EXPECT_EQ(r.route.model->id, "small-a");
  EXPECT_EQ(r.attempts.chain.front()->id, "small-a");
  EXPECT_NE(r.route.reason.find("downgraded to small-a"), std::string::npos) << r.route.reason;
  EXPECT_NE(r.charges.budget_reservation, 0u);
  EXPECT_EQ(h.stats.budget_downgraded.load(), 1u);
}

TEST_F(AdmissionStageTest, AFallbackOverItsOwnModelBudgetIsTakenOutOfTheChain) {
  book_.set_runtime_budget({"acme", model_scope("small-b"), BudgetLimits{.daily_usd = 0.0001, .monthly_usd = 0, .soft_percent = 80}});
  spent(0.0001, model_scope("small-b"));
  Request& r = routed("r", {{"max_tokens", 50}});
  ASSERT_EQ(chain(r), (std::vector<std::string>{"small-a", "small-b", "medium-a"}));
  EXPECT_EQ(admission_.check_budget(r, routing_).verdict, AdmissionStage::Verdict::admitted);
  EXPECT_EQ(chain(r), (std::vector<std::string>{"small-a", "medium-a"}));
  EXPECT_NE(r.route.reason.find("not tried, over their model budget: small-b"), std::string::npos);
}

TEST_F(AdmissionStageTest, AtAHardLimitTheRequestIsRefusedAndItsTokensGiveBack) {
  book_.set_runtime_budget({"acme", "", BudgetLimits{.daily_usd = 0.01, .monthly_usd = 0, .soft_percent = 80}});
  spent(0.01);
  Request& r = routed("r");
  const auto decision = admission_.check_budget(r, routing_);
  EXPECT_EQ(decision.verdict, AdmissionStage::Verdict::refused);
  EXPECT_EQ(decision.error.code, ErrorCode::budget_exceeded);
  EXPECT_EQ(h_.stats.budget_refused.load(), 1u);
}

TEST_F(AdmissionStageTest, AStaleSpendStateRefusesWhenTheConfigFailsClosed) {
  Config config = worker_test_config();
  config.limits.budget_max_state_age_ms = 60000;
  LifecycleHarness h(config);
  RoutingStage routing(h.context(), nullptr, nullptr);
  AdmissionStage admission(h.context(), &book_);
  book_.set_runtime_budget({"acme", "", BudgetLimits{.daily_usd = 100, .monthly_usd = 0, .soft_percent = 80}});
  auto parsed = parse_prompt_event(LifecycleHarness::prompt("r", "Hi"), PromptLimits{}, [](auto) { return true; });
  ASSERT_TRUE(parsed);
  auto owned = std::make_unique<Request>();
  owned->event = std::move(*parsed);
  Request& r = h.requests.add(std::move(owned));
  ASSERT_TRUE(routing.route(r));
  const auto decision = admission.check_budget(r, routing);
  EXPECT_EQ(decision.verdict, AdmissionStage::Verdict::refused);
  EXPECT_NE(decision.error.message.find("budget state unknown"), std::string::npos);
}

TEST_F(AdmissionStageTest, AnAdmittedEstimateCountsAgainstTheNextRequestUntilItSettles) {
  // Each request may cost up to ~$0.016 (4,000 output tokens on medium-a, its dearest model).
  book_.set_runtime_budget({"acme", "", BudgetLimits{.daily_usd = 0.03, .monthly_usd = 0, .soft_percent = 80}});
  Request& first = routed("first", {{"max_tokens", 4000}});
  ASSERT_EQ(admission_.check_budget(first, routing_).verdict, AdmissionStage::Verdict::admitted);
  Request& second = routed("second", {{"max_tokens", 4000}});
  EXPECT_EQ(admission_.check_budget(second, routing_).verdict, AdmissionStage::Verdict::refused)
      << "the first request's estimate is pending spend";
  first.charges.charged_usd = 0;  // it ended having cost nothing
  admission_.settle_budget(first);
  EXPECT_EQ(first.charges.budget_reservation, 0u);
  Request& third = routed("third", {{"max_tokens", 4000}});
  EXPECT_EQ(admission_.check_budget(third, routing_).verdict, AdmissionStage::Verdict::admitted);
}

// A tenant's requests reach every loop of a worker (prompt events are keyed
// by request): the loops of one process count each other's spend in flight,
// so between them they never take a tenant past a limit either.
TEST_F(AdmissionStageTest, TheLoopsOfOneProcessCountEachOthersSpendInFlight) {
  book_.set_runtime_budget({"acme", "", BudgetLimits{.daily_usd = 0.03, .monthly_usd = 0, .soft_percent = 80}});
  LifecycleHarness other_loop;
  RoutingStage other_routing(other_loop.context(), nullptr, nullptr);
  AdmissionStage other_admission(other_loop.context(), &book_);
  Request& first = routed("first", {{"max_tokens", 4000}});
  ASSERT_EQ(admission_.check_budget(first, routing_).verdict, AdmissionStage::Verdict::admitted);

  auto parsed = parse_prompt_event(LifecycleHarness::prompt("second", "Summarize this paragraph.", {{"max_tokens", 4000}}),
                                   PromptLimits{}, [](std::string_view) { return true; });
  ASSERT_TRUE(parsed);
  auto owned = std::make_unique<Request>();
  owned->event = std::move(*parsed);
  Request& second = other_loop.requests.add(std::move(owned));
  ASSERT_TRUE(other_routing.route(second));
  EXPECT_EQ(other_admission.check_budget(second, other_routing).verdict, AdmissionStage::Verdict::refused)
      << "the other loop's request in flight is pending spend here too";
  first.charges.charged_usd = 0;
  admission_.settle_budget(first);
  EXPECT_EQ(other_admission.check_budget(second, other_routing).verdict, AdmissionStage::Verdict::admitted);
}

// ---- rate limits over several loops (partition_share.h) --------------------

// One event loop's admission stage with a tenant limit and no waiting: a
// request its part of the rate cannot take now is refused at once.
class RateLoop {
 public:
  RateLoop(double requests_per_second, double tokens_per_minute, int threads = 1)
      : h_(config(requests_per_second, tokens_per_minute, threads)) {}

  // The loop's partitions, as its rebalance callbacks set them.
  void holds(std::size_t assigned, int partitions) { h_.context().partition_share.update(assigned, partitions); }
  bool admit(int max_tokens = 10) {
    auto parsed = parse_prompt_event(
        LifecycleHarness::prompt("r" + std::to_string(next_++), "Hi", {{"max_tokens", max_tokens}}), PromptLimits{},
        [](std::string_view) { return true; });
    EXPECT_TRUE(parsed);
    auto owned = std::make_unique<Request>();
    owned->serial = h_.requests.next_serial();
    owned->event = std::move(*parsed);
    Request& r = h_.requests.add(std::move(owned));
    const auto decision = admission_.admit(r);
    if (decision.verdict == AdmissionStage::Verdict::refused) {
      EXPECT_EQ(decision.error.code, ErrorCode::rate_limited);
      last_refusal_ = decision.error.message;
    }
    return decision.verdict == AdmissionStage::Verdict::admitted;
  }
  void advance(std::chrono::milliseconds by) { h_.host.advance(by); }
  const std::string& last_refusal() const { return last_refusal_; }

 private:
  static Config config(double requests_per_second, double tokens_per_minute, int threads) {
    Config c = worker_test_config();
    c.worker.threads = threads;
    TenantLimits limits;
    limits.requests_per_second = requests_per_second;
    limits.tokens_per_minute = tokens_per_minute;
    limits.max_wait_ms = 0;
    c.tenants["acme"] = limits;
    return c;
  }
  LifecycleHarness h_;
  AdmissionStage admission_{h_.context(), nullptr};
  int next_ = 0;
  std::string last_refusal_;
};

TEST(AdmissionRateShare, ALoopAdmitsItsPartitionsPartOfATenantsRate) {
  RateLoop loop(8, 0);
  loop.holds(4, 16);  // a quarter of the topic: 2 requests/s, 2 at once
  EXPECT_TRUE(loop.admit());
  EXPECT_TRUE(loop.admit());
  EXPECT_FALSE(loop.admit());
  EXPECT_NE(loop.last_refusal().find("25% of them admitted here"), std::string::npos) << loop.last_refusal();
  loop.advance(std::chrono::milliseconds(499));
  EXPECT_FALSE(loop.admit());
  loop.advance(std::chrono::milliseconds(1));
  EXPECT_TRUE(loop.admit());
}

TEST(AdmissionRateShare, BeforeItHoldsPartitionsEachLoopOfAProcessAdmitsAnEvenPart) {
  RateLoop loop(8, 0, /*threads=*/2);  // 4 requests/s
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(loop.admit()) << i;
  EXPECT_FALSE(loop.admit());
}

// The specification of "cluster-wide": loops holding every partition once,
// each seeing its part of a tenant's spread requests, admit the limit
// between them, however many workers they are in; with the old rule (each
// worker process the whole limit) four workers admitted four times it.
TEST(AdmissionRateShare, LoopsHoldingEveryPartitionOnceAdmitTheTenantsLimitBetweenThem) {
  constexpr double kLimit = 20;  // requests per second, cluster-wide
  constexpr int kSeconds = 10;
  for (const std::vector<std::size_t>& assignment :
       {std::vector<std::size_t>{16}, {8, 8}, {4, 4, 4, 4}, {5, 5, 3, 3}, {3, 3, 3, 3, 2, 2}}) {
    std::vector<std::unique_ptr<RateLoop>> loops;
    for (const std::size_t assigned : assignment) {
      loops.push_back(std::make_unique<RateLoop>(kLimit, 0));
      loops.back()->holds(assigned, 16);
    }
    // 60 requests/s, three times the limit, each loop getting its
    // partitions' part of them (prompt_event_key spreads them so).
    int admitted = 0;
    for (int ms = 0; ms < kSeconds * 1000; ms += 10) {
      for (std::size_t i = 0; i < loops.size(); ++i) {
        const double per_tick = 60.0 * static_cast<double>(assignment[i]) / 16 / 100;
        const int arrivals = static_cast<int>(per_tick * (ms / 10 + 1)) - static_cast<int>(per_tick * (ms / 10));
        for (int a = 0; a < arrivals; ++a) admitted += loops[i]->admit();
        loops[i]->advance(std::chrono::milliseconds(10));
      }
    }
    // The rate for kSeconds plus the bursts: a second's worth in all, at
    // least one request per loop.
    double bursts = 0;
    for (const std::size_t assigned : assignment) bursts += std::max(kLimit * static_cast<double>(assigned) / 16, 1.0);
    EXPECT_LE(admitted, kLimit * kSeconds + bursts) << assignment.size() << " loops";
    EXPECT_GE(admitted, kLimit * kSeconds * 0.98) << assignment.size() << " loops";
  }
}

TEST(AdmissionRateShare, ARebalanceChangesALoopsRateAtOnceWithoutHandingOutTokens) {
  RateLoop loop(8, 0);
  loop.holds(4, 16);  // 2/s
  EXPECT_TRUE(loop.admit());
  EXPECT_TRUE(loop.admit());
  EXPECT_FALSE(loop.admit());
  loop.holds(8, 16);  // 4/s: the bucket refills faster, but is not filled up
  EXPECT_FALSE(loop.admit());
  loop.advance(std::chrono::milliseconds(250));
  EXPECT_TRUE(loop.admit());
  // The new rate counts from the tenant's next request on the loop: the
  // time before it refilled at the old one (never past the new burst).
  loop.holds(16, 16);
  EXPECT_FALSE(loop.admit());
  loop.advance(std::chrono::milliseconds(1000));  // 8/s, burst 8
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(loop.admit()) << i;
  EXPECT_FALSE(loop.admit());
}

TEST(AdmissionRateShare, ALoopsTokensPerMinuteAreItsPartToo) {
  RateLoop loop(0, 60000);  // cluster-wide 1,000 tokens/s
  loop.holds(2, 8);         // here 250 tokens/s, 15,000 at once
  // "Hi" is about 1 token (UTF-8 bytes / 4) and max_tokens 4,000: ~4,001 each.
  EXPECT_TRUE(loop.admit(4000));
  EXPECT_TRUE(loop.admit(4000));
  EXPECT_TRUE(loop.admit(4000));
  EXPECT_FALSE(loop.admit(4000));
  loop.advance(std::chrono::seconds(16));
  EXPECT_TRUE(loop.admit(4000));
  // A request larger than the loop's whole part waits for a full bucket, not
  // forever: it is admitted once the bucket is full.
  loop.advance(std::chrono::seconds(60));
  EXPECT_TRUE(loop.admit(100000));
}

}  // namespace
}  // namespace cascade
