#include "router/router.h"
#include "support/fixed_scorer.h"
#include "support/test_catalog.h"
#include "tuning/tuning.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace cascade {
namespace {

// Two providers (a, b) serve every tier at different prices; provider c only
// serves a large model. Blended prices ((3 * input + output) / 4):
//   small-a 0.175 < small-b 0.35; medium-b 0.875 < medium-a 1.75 < medium-c-skewed 3.25
constexpr const char* kCatalog = R"(
price_version: "router-test"
models:
  - {id: small-b,  provider: b, tier: small,  context_window: 1000, max_output_tokens: 100, input_per_mtok: 0.2, output_per_mtok: 0.8}
  - {id: small-a,  provider: a, tier: small,  context_window: 1000, max_output_tokens: 100, input_per_mtok: 0.1, output_per_mtok: 0.4}
  - {id: medium-a, provider: a, tier: medium, context_window: 1000, max_output_tokens: 100, input_per_mtok: 1.0, output_per_mtok: 4.0}
  - {id: medium-b, provider: b, tier: medium, context_window: 1000, max_output_tokens: 100, input_per_mtok: 0.5, output_per_mtok: 2.0}
  - {id: large-a,  provider: a, tier: large,  context_window: 1000, max_output_tokens: 100, input_per_mtok: 5.0, output_per_mtok: 20.0}
  - {id: large-c,  provider: c, tier: large,  context_window: 1000, max_output_tokens: 100, input_per_mtok: 9.0, output_per_mtok: 30.0}
)";

ModelCatalog test_catalog() { return testing::catalog_from_yaml(kCatalog); }

ProviderAvailable only(std::set<std::string> providers) {
  return [providers = std::move(providers)](std::string_view name) {
    return providers.contains(std::string(name));
  };
}

ProviderAvailable all_providers() { return only({"a", "b", "c"}); }

// Thresholds that force one tier whatever the score.
RouterConfig forcing(Tier tier) {
  const TierThresholds t = tier == Tier::small    ? TierThresholds{1.01, 1.01}
                           : tier == Tier::medium ? TierThresholds{0.0, 1.01}
                                                  : TierThresholds{0.0, 0.0};
  RouterConfig config;
  config.balanced = config.cost = config.quality = config.speed = t;
  return config;
}

PromptEvent prompt(std::string text, Preference preference = Preference::balanced,
                   std::string model = "auto") {
  PromptEvent event;
  event.id = "req-1";
  event.messages = nlohmann::json::array({{{"role", "user"}, {"content", std::move(text)}}});
  event.preference = preference;
  event.model = std::move(model);
  return event;
}

constexpr const char* kTrivial = "What is the capital of France?";
constexpr const char* kHard = R"(Design a rate limiter for a multi-tenant API gateway.
1. Per-tenant limits with bursts
2. Works across 20 gateway instances without a central lock
3. Survives a Redis outage
Compare token bucket and sliding window approaches, explain the trade-offs step by step,
then implement the one you recommend in C++ and prove its memory bound:

```cpp
struct Bucket { double tokens; std::int64_t last_ns; };
bool allow(Bucket& b, std::int64_t now_ns);
```
)";

TEST(Router, PinnedModelWinsOverTheHeuristic) {
  const auto catalog = test_catalog();
  const Router router(RouterConfig{}, catalog, all_providers());
  auto decision = router.route(prompt(kTrivial, Preference::cost, "large-c"));
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "large-c");
  EXPECT_EQ(decision->tier, Tier::large);
  EXPECT_EQ(decision->reason, "pinned");
}

TEST(Router, UnknownPinnedModelIsAnInvalidRequest) {
  const auto catalog = test_catalog();
  const Router router(RouterConfig{}, catalog, all_providers());
  auto decision = router.route(prompt(kTrivial, Preference::balanced, "gpt-9"));
  ASSERT_FALSE(decision);
  EXPECT_EQ(decision.error().code, ErrorCode::invalid_request);
  EXPECT_NE(decision.error().message.find("unknown model 'gpt-9'"), std::string::npos);
}

TEST(Router, PinnedModelOfAnUnavailableProviderIsUnavailable) {
  const auto catalog = test_catalog();
  const Router router(RouterConfig{}, catalog, only({"a", "b"}));
  auto decision = router.route(prompt(kTrivial, Preference::balanced, "large-c"));
  ASSERT_FALSE(decision);
  EXPECT_EQ(decision.error().code, ErrorCode::unavailable);
  EXPECT_NE(decision.error().message.find("'c'"), std::string::npos) << decision.error().message;
}

TEST(Router, TrivialPromptGoesToTheCheapestSmallModel) {
  const auto catalog = test_catalog();
  const Router router(RouterConfig{}, catalog, all_providers());
  auto decision = router.route(prompt(kTrivial));
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->model->id, "small-a");
  EXPECT_EQ(decision->tier, Tier::small);
  EXPECT_EQ(decision->reason, "heuristic score=0.00 pref=balanced tier=small");
}

TEST(Router, HardPromptGoesToTheLargeTier) {
  const auto catalog = test_catalog();
  const Router router(RouterConfig{}, catalog, all_providers());
  auto decision = router.route(prompt(kHard));
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_EQ(decision->tier, Tier::large) << decision->reason;
  EXPECT_EQ(decision->model->id, "large-a");
}

TEST(Router, DecisionCarriesTheComplexityScore) {
  const auto catalog = test_catalog();
  const Router router(RouterConfig{}, catalog, all_providers());
  const auto event = prompt(kHard);
  auto decision = router.route(event);
  ASSERT_TRUE(decision);
  EXPECT_DOUBLE_EQ(decision->score, score_complexity(event.messages).score);
}

TEST(Router, TheHeuristicsLengthUsesTheContextsTokenCount) {
  const auto catalog = test_catalog();
  const Router router(RouterConfig{}, catalog, all_providers());
  const auto event = prompt(kTrivial);
  RouteContext context;
  context.input_tokens = 800;  // fits the test catalog's 1000-token windows with 100 of output
  auto decision = router.route(event, context);
  ASSERT_TRUE(decision) << decision.error().message;
  EXPECT_DOUBLE_EQ(decision->score, score_complexity(event.messages, 800).score);
  EXPECT_GT(decision->score, score_complexity(event.messages).score);
}

TEST(Router, ComparesModelsByBlendedPriceNotInputPriceAlone) {
  // cheap-input has the lower input price but the higher blended price.
  const auto catalog = ModelCatalog::from_yaml(R"(
price_version: "t"
models:
  - {id: cheap-input, provider: a, tier: medium, context_window: 1000, max_output_tokens: 100, input_per_mtok: 1.0, output_per_mtok: 10.0}
  - {id: balanced,    provider: a, tier: medium, context_window: 1000, max_output_tokens: 100, input_per_mtok: 2.0, output_per_mtok: 4.0}
)");
  ASSERT_TRUE(catalog);
  const Router router(forcing(Tier::medium), *catalog, all_providers());
  auto decision = router.route(prompt(kTrivial));
  ASSERT_TRUE(decision);
  EXPECT_EQ(decision->model->id, "balanced");
}

TEST(Router, SkipsModelsWhoseProviderIsUnavailable) {
  const auto catalog = test_catalog();
  const Router router(RouterConfig{}, catalog, only({"b"}));
  auto decision = router.route(prompt(kTrivial));
  ASSERT_TRUE(decision);
  EXPECT_EQ(decision->model->id, "small-b");
  EXPECT_EQ(decision->reason, "heuristic score=0.00 pref=balanced tier=small");
}

TEST(Router, AvailabilityIsCheckedOnEveryRoute) {
  const auto catalog = test_catalog();
  bool a_up = true;
  const Router router(RouterConfig{}, catalog,
                      [&a_up](std::string_view p) { return p == "b" || (p == "a" && a_up); });
  EXPECT_EQ(router.route(prompt(kTrivial))->model->id, "small-a");
  a_up = false;
  EXPECT_EQ(router.route(prompt(kTrivial))->model->id, "small-b");
}

TEST(Router, GoesUpATierWhenTheWantedTierHasNoAvailableModel) {
  const auto catalog = test_catalog();
  const Router router(RouterConfig{}, catalog, only({"c"}));
  auto decision = router.route(prompt(kTrivial, Preference::cost));
  ASSERT_TRUE(decision);
  EXPECT_EQ(decision->model->id, "large-c");
  EXPECT_EQ(decision->tier, Tier::large);
  EXPECT_EQ(decision->reason, "heuristic score=0.00 pref=cost tier=small (no small model available: large)");
}

TEST(Router, PrefersAStrongerTierOverAWeakerOneWhenFallingBack) {
  const auto catalog = ModelCatalog::from_yaml(R"(
price_version: "t"
models:
  - {id: s, provider: a, tier: small, context_window: 1000, max_output_tokens: 100, input_per_mtok: 0.1, output_per_mtok: 0.1}
  - {id: l, provider: a, tier: large, context_window: 1000, max_output_tokens: 100, input_per_mtok: 5, output_per_mtok: 5}
)");
  ASSERT_TRUE(catalog);
  const Router router(forcing(Tier::medium), *catalog, all_providers());
  auto decision = router.route(prompt(kTrivial));
  ASSERT_TRUE(decision);
  EXPECT_EQ(decision->model->id, "l");
  EXPECT_NE(decision->reason.find("(no medium model available: large)"), std::string::npos) << decision->reason;
}

TEST(Router, GoesDownATierWhenNothingStrongerIsAvailable) {
  const auto catalog = test_catalog();
  // Provider b has no large model.
  const Router router(forcing(Tier::large), catalog, only({"b"}));
  auto decision = router.route(prompt(kTrivial));
  ASSERT_TRUE(decision);
  EXPECT_EQ(decision->model->id, "medium-b");
  EXPECT_EQ(decision->tier, Tier::medium);
  EXPECT_NE(decision->reason.find("tier=large (no large model available: medium)"), std::string::npos)
      << decision->reason;
}

TEST(Router, NoAvailableProviderIsUnavailable) {
  const auto catalog = test_catalog();
  const Router router(RouterConfig{}, catalog, only({}));
  auto decision = router.route(prompt(kTrivial));
  ASSERT_FALSE(decision);
  EXPECT_EQ(decision.error().code, ErrorCode::unavailable);
}

TEST(Router, PreferenceShiftsTiersForTheSamePrompt) {
  const auto catalog = test_catalog();
  const Router router(RouterConfig{}, catalog, all_providers());
  const char* prompts[] = {
      kTrivial,
      "Write a Python function that parses a CSV file and computes the median of each numeric "
      "column. Explain the time complexity and handle edge cases such as empty columns.",
      "Solve for x: 3x + 7 = 22, and then compute 2x^2 - 5.",
      kHard,
  };
  bool some_prompt_differs = false;
  for (const char* text : prompts) {
    const auto cost = router.route(prompt(text, Preference::cost));
    const auto balanced = router.route(prompt(text, Preference::balanced));
    const auto quality = router.route(prompt(text, Preference::quality));
    ASSERT_TRUE(cost && balanced && quality);
    EXPECT_GE(quality->tier, balanced->tier) << text;
    EXPECT_GE(balanced->tier, cost->tier) << text;
    some_prompt_differs |= quality->tier != cost->tier;
  }
  EXPECT_TRUE(some_prompt_differs);
}

TEST(Router, ReasonNamesThePreference) {
  const auto catalog = test_catalog();
  const Router router(RouterConfig{}, catalog, all_providers());
  EXPECT_NE(router.route(prompt(kTrivial, Preference::quality))->reason.find("pref=quality"), std::string::npos);
  EXPECT_NE(router.route(prompt(kTrivial, Preference::speed))->reason.find("pref=speed"), std::string::npos);
}

TEST(Router, RoutesWithTheBuiltInCatalog) {
  auto catalog = ModelCatalog::load(CatalogConfig{});
  ASSERT_TRUE(catalog) << catalog.error().message;
  const Router router(RouterConfig{}, *catalog, only({"openai"}));
  auto trivial = router.route(prompt(kTrivial));
  auto hard = router.route(prompt(kHard));
  ASSERT_TRUE(trivial && hard);
  EXPECT_EQ(trivial->model->provider, "openai");
  EXPECT_EQ(trivial->model->tier, Tier::small);
  EXPECT_EQ(hard->model->tier, Tier::large);
  EXPECT_LT(trivial->model->price.input_per_mtok, hard->model->price.input_per_mtok);
}

}  // namespace
}  // namespace cascade

namespace cascade {
namespace {

ModelCatalog fallback_catalog() {
  return testing::catalog_from_yaml(R"(
price_version: "test"
models:
  - {id: a-small, provider: pa, upstream_model: a, tier: small, context_window: 1000, max_output_tokens: 100, input_per_mtok: 0.1, output_per_mtok: 0.1}
  - {id: a-small-2, provider: pa, upstream_model: a2, tier: small, context_window: 1000, max_output_tokens: 100, input_per_mtok: 0.2, output_per_mtok: 0.2}
  - {id: b-small, provider: pb, upstream_model: b, tier: small, context_window: 1000, max_output_tokens: 100, input_per_mtok: 0.3, output_per_mtok: 0.3}
  - {id: c-medium, provider: pc, upstream_model: c, tier: medium, context_window: 1000, max_output_tokens: 100, input_per_mtok: 1, output_per_mtok: 1}
  - {id: gpt-4o, provider: pc, upstream_model: gpt-4o, tier: large, context_window: 1000, max_output_tokens: 100, input_per_mtok: 5, output_per_mtok: 5}
)");
}

PromptEvent trivial_prompt() {
  PromptEvent e;
  e.messages = nlohmann::json::array({{{"role", "user"}, {"content", "hi"}}});
  return e;
}

std::vector<std::string> ids(const std::vector<const ModelInfo*>& models) {
  std::vector<std::string> out;
  for (const auto* m : models) out.push_back(m->id);
  return out;
}

TEST(RouterFallbacks, PreferOtherProvidersOfTheSameTierThenTheNextTier) {
  const auto catalog = fallback_catalog();
  RouterConfig config;
  config.max_fallbacks = 3;
  Router router(config, catalog, nullptr);
  auto d = router.route(trivial_prompt());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->model->id, "a-small");
  EXPECT_EQ(ids(d->fallbacks), (std::vector<std::string>{"b-small", "a-small-2", "c-medium"}));
}

TEST(RouterFallbacks, FollowTheConfiguredChainAndSkipUnavailableProviders) {
  const auto catalog = fallback_catalog();
  RouterConfig config;
  config.fallbacks["small"] = {"c-medium", "b-small", "a-small-2"};
  Router router(config, catalog, [](std::string_view p) { return p != "pb"; });
  auto d = router.route(trivial_prompt());
  ASSERT_TRUE(d);
  EXPECT_EQ(ids(d->fallbacks), (std::vector<std::string>{"c-medium", "a-small-2"}));
}

TEST(RouterFallbacks, AreCappedByMaxFallbacksAndAbsentForPinnedModels) {
  const auto catalog = fallback_catalog();
  RouterConfig config;
  config.max_fallbacks = 1;
  Router router(config, catalog, nullptr);
  EXPECT_EQ(router.route(trivial_prompt())->fallbacks.size(), 1u);
  auto pinned = trivial_prompt();
  pinned.model = "b-small";
  EXPECT_TRUE(router.route(pinned)->fallbacks.empty());
}

}  // namespace
}  // namespace cascade

namespace cascade {
namespace {

// The closed loop's cuts (tuning/tuning.h) replace the configured thresholds
// for their tenant and key, and say so in the reason.
TuningRecord tuned_record(std::string tenant, std::string key, TierCuts cuts, TierCuts configured) {
  TuningRecord r;
  r.tenant = std::move(tenant);
  r.key = std::move(key);
  r.cuts = cuts;
  r.configured = configured;
  r.version = 4;
  return r;
}

TEST(RouterTunedCuts, ATunedCutSendsTheTenantsPromptsToTheTierItNames) {
  const auto catalog = test_catalog();
  // learned p_weak_ok = 0.7: score 0.3. Configured balanced_p {0.80, 0.72}: large.
  Router router(RouterConfig{}, catalog, all_providers(), std::make_shared<testing::FixedScorer>(0.7));
  PromptEvent event = prompt(kTrivial);
  event.tenant = "acme";
  auto before = router.route(event);
  ASSERT_TRUE(before);
  EXPECT_EQ(before->tier, Tier::large);
  ASSERT_TRUE(before->cuts);
  EXPECT_NEAR(before->cuts->score, 0.3, 1e-12);
  EXPECT_NEAR(before->cuts->configured_small, 0.2, 1e-12);
  EXPECT_NEAR(before->cuts->configured_medium, 0.28, 1e-12);
  EXPECT_EQ(before->cuts->small, before->cuts->configured_small);
  EXPECT_EQ(before->cuts->tuned_version, 0u);
  EXPECT_EQ(before->cuts->preference, Preference::balanced);

  auto table = std::make_shared<TunedCuts>();
  const TierCuts configured{before->cuts->configured_small, before->cuts->configured_medium};
  table->set(tuned_record("acme", "default/balanced", {0.35, 0.5}, configured));
  router.use_tuned_cuts(table);
  auto after = router.route(event);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->tier, Tier::small) << after->reason;
  EXPECT_EQ(after->model->id, "small-a");
  EXPECT_EQ(after->cuts->small, 0.35);
  EXPECT_EQ(after->cuts->tuned_version, 4u);
  EXPECT_NE(after->reason.find("tuned(small<=0.350 medium<=0.500 v4 score=0.300)"), std::string::npos)
      << after->reason;

  // Another tenant, another preference: the configured thresholds.
  PromptEvent other = event;
  other.tenant = "globex";
  EXPECT_EQ(router.route(other)->tier, Tier::large);
  PromptEvent cost = event;
  cost.preference = Preference::cost;  // cost_p {0.75, 0.60}: medium
  EXPECT_EQ(router.route(cost)->tier, Tier::medium);
  EXPECT_EQ(router.route(cost)->reason.find("tuned"), std::string::npos);
}

TEST(RouterTunedCuts, CutsTunedFromOtherConfiguredThresholdsAreIgnored) {
  const auto catalog = test_catalog();
  Router router(RouterConfig{}, catalog, all_providers());  // heuristic: balanced {0.30, 0.60}
  auto table = std::make_shared<TunedCuts>();
  table->set(tuned_record("acme", "default/balanced", {1.0, 1.0}, {0.25, 0.6}));  // tuned from 0.25
  router.use_tuned_cuts(table);
  PromptEvent event = prompt(kHard);
  event.tenant = "acme";
  auto decision = router.route(event);
  ASSERT_TRUE(decision);
  EXPECT_EQ(decision->tier, Tier::large);
  EXPECT_EQ(decision->cuts->tuned_version, 0u);
  // Tuned from the configuration in force: every prompt goes small.
  table->set(tuned_record("acme", "default/balanced", {1.0, 1.0}, {0.30, 0.60}));
  EXPECT_EQ(router.route(event)->tier, Tier::small);
}

TEST(RouterTunedCuts, PinnedAndRuleForcedRequestsHaveNoCuts) {
  const auto catalog = test_catalog();
  const Router router(RouterConfig{}, catalog, all_providers());
  auto pinned = router.route(prompt(kTrivial, Preference::balanced, "large-a"));
  ASSERT_TRUE(pinned);
  EXPECT_FALSE(pinned->cuts);
}

TEST(RouterModelsByTier, TheCheapestAvailableModelOfEachTierThatFits) {
  const auto catalog = test_catalog();
  const Router router(RouterConfig{}, catalog, only({"b", "c"}));
  auto models = router.models_by_tier(prompt(kTrivial));
  ASSERT_TRUE(models) << models.error().message;
  EXPECT_EQ((*models)[0]->id, "small-b");
  EXPECT_EQ((*models)[1]->id, "medium-b");
  EXPECT_EQ((*models)[2]->id, "large-c");
  const Router only_a(RouterConfig{}, catalog, only({"a"}));
  auto a = only_a.models_by_tier(prompt(kTrivial));
  ASSERT_TRUE(a);
  EXPECT_EQ((*a)[2]->id, "large-a");
  const Router none(RouterConfig{}, catalog, only({"c"}));
  auto c = none.models_by_tier(prompt(kTrivial));
  ASSERT_TRUE(c);
  EXPECT_EQ((*c)[0], nullptr);
  EXPECT_EQ((*c)[2]->id, "large-c");
}

}  // namespace
}  // namespace cascade
