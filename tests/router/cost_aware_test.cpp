// Cost-aware routing (router.cost_aware, docs/routing.md "Cost-aware
// routing"): the strong model's expected gain is weighed against what the
// upgrade costs for this request relative to a reference-sized one.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "router/router.h"
#include "support/fixed_scorer.h"
#include "support/test_catalog.h"

namespace cascade {
namespace {

using testing::FixedScorer;

PromptEvent balanced_event() {
  PromptEvent event;
  event.id = "r";
  event.tenant = "t";
  event.preference = Preference::balanced;
  event.messages = user_messages("anything");
  return event;
}

RouteContext tokens(std::int64_t input) {
  RouteContext context;
  context.input_tokens = input;
  return context;
}

// The upgrade's extra cost from s to l: 4.9 $/M input, 19.6 $/M output.
double extra_usd(std::int64_t input, std::int64_t output) { return (input * 4.9 + output * 19.6) / 1e6; }

class CostAwareRouting : public ::testing::Test {
 protected:
  void SetUp() override {
    // Large context windows, so that prompt length is only a matter of price.
    auto catalog = ModelCatalog::from_yaml(testing::kThreeTierCatalog);
    ASSERT_TRUE(catalog) << catalog.error().message;
    catalog_ = std::make_unique<ModelCatalog>(std::move(*catalog));
    config_.cost_aware.enabled = true;
    config_.cost_aware.reference_input_tokens = 1000;
    config_.cost_aware.expected_output_tokens = 256;
  }
  Router router(double p, std::shared_ptr<const RouteScorer> scorer = nullptr) const {
    return Router(config_, *catalog_, nullptr, scorer ? scorer : std::make_shared<FixedScorer>(p));
  }

  std::unique_ptr<ModelCatalog> catalog_;
  RouterConfig config_;  // balanced: small_min 0.80, medium_min 0.72
};

TEST_F(CostAwareRouting, AReferenceSizedRequestKeepsTheTierItsProbabilityGives) {
  auto decision = router(0.75).route(balanced_event(), tokens(1000));
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "m");
  ASSERT_TRUE(decision->cost_adjustment);
  EXPECT_NEAR(decision->cost_adjustment->p_weak_ok, 0.75, 1e-12);
  EXPECT_NEAR(decision->cost_adjustment->extra_usd, extra_usd(1000, 256), 1e-12);
  EXPECT_NEAR(decision->cost_adjustment->reference_extra_usd, extra_usd(1000, 256), 1e-12);
  EXPECT_EQ(decision->reason,
            "learned p_weak_ok=0.75 cost_adjusted=0.75 (upgrade 1x ref) >= medium_min=0.72 pref=balanced tier=medium");
  // The decision's score stays the scorer's own view.
  EXPECT_DOUBLE_EQ(decision->score, 0.25);
}

TEST_F(CostAwareRouting, ALongPromptNeedsALargerExpectedGainToBeUpgraded) {
  // 20,000 input tokens: the upgrade costs ~10x the reference's, so the
  // expected gain 0.25 counts as ~0.024: the small tier answers.
  auto decision = router(0.75).route(balanced_event(), tokens(20000));
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "s");
  ASSERT_TRUE(decision->cost_adjustment);
  const double expected = 1.0 - 0.25 * extra_usd(1000, 256) / extra_usd(20000, 256);
  EXPECT_NEAR(decision->cost_adjustment->p_weak_ok, expected, 1e-12);
  EXPECT_NE(decision->reason.find("cost_adjusted=0.98 (upgrade 10x ref) >= small_min=0.80"), std::string::npos)
      << decision->reason;
}

TEST_F(CostAwareRouting, AShortPromptIsUpgradedOnASmallerExpectedGain) {
  // 100 input tokens: the upgrade costs 0.56x the reference's; the gain 0.25
  // counts as 0.45, past medium_min: the large tier answers.
  auto decision = router(0.75).route(balanced_event(), tokens(100));
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "l");
  EXPECT_NEAR(decision->cost_adjustment->p_weak_ok, 1.0 - 0.25 * extra_usd(1000, 256) / extra_usd(100, 256), 1e-12);
}

TEST_F(CostAwareRouting, TheOutputPartIsCappedAtTheRequestsMaxTokens) {
  PromptEvent event = balanced_event();
  event.max_tokens = 16;
  auto decision = router(0.75).route(event, tokens(1000));
  ASSERT_TRUE(decision) << decision.error().message;
  ASSERT_TRUE(decision->cost_adjustment);
  EXPECT_NEAR(decision->cost_adjustment->extra_usd, extra_usd(1000, 16), 1e-12);
  EXPECT_NEAR(decision->cost_adjustment->reference_extra_usd, extra_usd(1000, 256), 1e-12);
}

TEST_F(CostAwareRouting, AnAdjustedProbabilityStaysWithinZeroAndOne) {
  auto tiny = router(0.0).route(balanced_event(), tokens(1));
  ASSERT_TRUE(tiny);
  EXPECT_DOUBLE_EQ(tiny->cost_adjustment->p_weak_ok, 0.0);
  EXPECT_EQ(tiny->model->id, "l");
}

TEST_F(CostAwareRouting, OffByDefaultAndNeverAppliedToTheHeuristicOrAForcedTier) {
  RouterConfig plain;
  const Router off(plain, *catalog_, nullptr, std::make_shared<FixedScorer>(0.75));
  auto decision = off.route(balanced_event(), tokens(20000));
  ASSERT_TRUE(decision);
  EXPECT_EQ(decision->model->id, "m");
  EXPECT_FALSE(decision->cost_adjustment);
  EXPECT_EQ(decision->reason.find("cost_adjusted"), std::string::npos);

  // The heuristic's score is a ranking, not a probability of gain.
  const Router heuristic(config_, *catalog_, nullptr, nullptr);
  auto scored = heuristic.route(balanced_event(), tokens(20000));
  ASSERT_TRUE(scored);
  EXPECT_FALSE(scored->cost_adjustment);

  RouterConfig forced = config_;
  RouteRuleConfig rule;
  rule.name = "vip";
  rule.tenant = "t";
  rule.tier = "large";
  forced.rules.push_back(rule);
  const Router with_rule(forced, *catalog_, nullptr, std::make_shared<FixedScorer>(0.75));
  auto ruled = with_rule.route(balanced_event(), tokens(20000));
  ASSERT_TRUE(ruled);
  EXPECT_EQ(ruled->model->id, "l");
  EXPECT_FALSE(ruled->cost_adjustment);
}

TEST_F(CostAwareRouting, APolicyTurnsItOnOrOffSoItCanBeABTested) {
  config_.cost_aware.enabled = false;
  RoutePolicyConfig gain;
  gain.cost_aware = true;
  config_.policies["gain"] = gain;
  config_.experiment.name = "gain-test";
  config_.experiment.policies = {"gain", "default"};
  config_.experiment.split = 0.5;
  const Router split(config_, *catalog_, nullptr, std::make_shared<FixedScorer>(0.75));
  int adjusted = 0;
  int plain = 0;
  for (int i = 0; i < 200; ++i) {
    PromptEvent event = balanced_event();
    event.id = "req-" + std::to_string(i);
    auto decision = split.route(event, tokens(20000));
    ASSERT_TRUE(decision) << decision.error().message;
    if (decision->policy == "gain-test:gain") {
      ++adjusted;
      EXPECT_TRUE(decision->cost_adjustment);
      EXPECT_EQ(decision->model->id, "s");
    } else {
      ++plain;
      EXPECT_EQ(decision->policy, "gain-test:default");
      EXPECT_FALSE(decision->cost_adjustment);
      EXPECT_EQ(decision->model->id, "m");
    }
  }
  EXPECT_GT(adjusted, 60);
  EXPECT_GT(plain, 60);

  // And a policy can opt out where the router opted in.
  RouterConfig opt_out;
  opt_out.cost_aware.enabled = true;
  RoutePolicyConfig off;
  off.cost_aware = false;
  opt_out.policies["off"] = off;
  RouteRuleConfig rule;
  rule.tenant = "t";
  rule.policy = "off";
  opt_out.rules.push_back(rule);
  const Router ruled(opt_out, *catalog_, nullptr, std::make_shared<FixedScorer>(0.75));
  auto decision = ruled.route(balanced_event(), tokens(20000));
  ASSERT_TRUE(decision);
  EXPECT_FALSE(decision->cost_adjustment);
  EXPECT_EQ(decision->model->id, "m");
}

TEST_F(CostAwareRouting, NothingIsWeighedWhenNoSmallModelCanServeTheRequest) {
  // The small model's context window is too short for the prompt: there is
  // no cheaper alternative to weigh the upgrade against.
  auto catalog = ModelCatalog::from_yaml(R"(
price_version: "cost-aware-test"
models:
  - {id: s, provider: p, tier: small,  context_window: 2000, max_output_tokens: 512, input_per_mtok: 0.1, output_per_mtok: 0.4}
  - {id: m, provider: p, tier: medium, context_window: 200000, max_output_tokens: 8192, input_per_mtok: 1.0, output_per_mtok: 4.0}
  - {id: l, provider: p, tier: large,  context_window: 200000, max_output_tokens: 8192, input_per_mtok: 5.0, output_per_mtok: 20.0}
)");
  ASSERT_TRUE(catalog) << catalog.error().message;
  const Router short_small(config_, *catalog, nullptr, std::make_shared<FixedScorer>(0.75));
  auto decision = short_small.route(balanced_event(), tokens(5000));
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_FALSE(decision->cost_adjustment);
  EXPECT_EQ(decision->model->id, "m");
  auto fits = short_small.route(balanced_event(), tokens(100));
  ASSERT_TRUE(fits);
  EXPECT_TRUE(fits->cost_adjustment);
}

}  // namespace
}  // namespace cascade
