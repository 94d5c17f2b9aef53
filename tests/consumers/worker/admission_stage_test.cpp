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

}  // namespace
}  // namespace cascade
