// Which requests the cheap-first cascade takes, and where a rejected cheap
// answer escalates to.
#include <gtest/gtest.h>

#include "consumers/worker/cascade_policy.h"
#include "support/test_catalog.h"

namespace cascade {
namespace {

constexpr const char* kCatalog = R"(
price_version: test
models:
  - {id: s-cheap, provider: a, upstream_model: s-cheap, tier: small, context_window: 1000, max_output_tokens: 100, input_per_mtok: 0.1, output_per_mtok: 0.4}
  - {id: s-other, provider: b, upstream_model: s-other, tier: small, context_window: 1000, max_output_tokens: 100, input_per_mtok: 0.2, output_per_mtok: 0.8}
  - {id: m-cheap, provider: a, upstream_model: m-cheap, tier: medium, context_window: 1000, max_output_tokens: 100, input_per_mtok: 1, output_per_mtok: 4}
  - {id: m-same-provider, provider: a, upstream_model: m-same-provider, tier: medium, context_window: 1000,
     max_output_tokens: 100, input_per_mtok: 1.5, output_per_mtok: 6}
  - {id: m-other, provider: b, upstream_model: m-other, tier: medium, context_window: 1000, max_output_tokens: 100, input_per_mtok: 2, output_per_mtok: 8}
  - {id: l-cheap, provider: c, upstream_model: l-cheap, tier: large, context_window: 1000, max_output_tokens: 100, input_per_mtok: 5, output_per_mtok: 20}
)";

ModelCatalog catalog() { return testing::catalog_from_yaml(kCatalog); }

std::vector<std::string> ids(const std::vector<const ModelInfo*>& models) {
  std::vector<std::string> out;
  for (const auto* m : models) out.push_back(m->id);
  return out;
}

TEST(CascadePolicy, OffUnlessEnabled) {
  CascadeConfig config;
  PromptEvent event;
  event.preference = Preference::cost;
  EXPECT_FALSE(cascade_requested(config, event));
  event.cascade = true;
  EXPECT_FALSE(cascade_requested(config, event));  // the switch is the operator's
}

TEST(CascadePolicy, ConfiguredPreferencesCascadeAndARequestMayOptInOrOut) {
  CascadeConfig config;
  config.enabled = true;
  config.preferences = {"cost"};
  PromptEvent event;
  event.preference = Preference::cost;
  EXPECT_TRUE(cascade_requested(config, event));
  event.cascade = false;
  EXPECT_FALSE(cascade_requested(config, event));
  event.preference = Preference::quality;
  event.cascade.reset();
  EXPECT_FALSE(cascade_requested(config, event));
  event.cascade = true;
  EXPECT_TRUE(cascade_requested(config, event));
}

TEST(CascadePolicy, PinnedRequestsAreNeverCascaded) {
  CascadeConfig config;
  config.enabled = true;
  PromptEvent event;
  event.preference = Preference::cost;
  event.model = "s-cheap";
  event.cascade = true;
  EXPECT_FALSE(cascade_requested(config, event));
}

TEST(CascadePolicy, EscalatesToTheCheapestModelOfTheNextTierThenOtherProviders) {
  const ModelCatalog c = catalog();
  const auto all = [](const ModelInfo&) { return true; };
  EXPECT_EQ(ids(escalation_chain(c, Tier::small, all, 2)), (std::vector<std::string>{"m-cheap", "m-other", "m-same-provider"}));
  EXPECT_EQ(ids(escalation_chain(c, Tier::small, all, 0)), (std::vector<std::string>{"m-cheap"}));
  EXPECT_EQ(ids(escalation_chain(c, Tier::small, all, 5)),
            (std::vector<std::string>{"m-cheap", "m-other", "m-same-provider", "l-cheap"}));
  EXPECT_EQ(ids(escalation_chain(c, Tier::medium, all, 2)), (std::vector<std::string>{"l-cheap"}));
}

TEST(CascadePolicy, SkipsUnavailableProvidersAndEmptyTiers) {
  const ModelCatalog c = catalog();
  const auto only_c = [](const ModelInfo& m) { return m.provider == "c"; };
  EXPECT_EQ(ids(escalation_chain(c, Tier::small, only_c, 2)), (std::vector<std::string>{"l-cheap"}));
  const auto only_a = [](const ModelInfo& m) { return m.provider == "a"; };
  EXPECT_EQ(ids(escalation_chain(c, Tier::small, only_a, 2)), (std::vector<std::string>{"m-cheap", "m-same-provider"}));
  EXPECT_TRUE(escalation_chain(c, Tier::medium, only_a, 2).empty());
  EXPECT_TRUE(escalation_chain(c, Tier::large, [](const ModelInfo&) { return true; }, 2).empty());
}

TEST(CascadePolicy, ModelsThatCannotServeTheRequestAreLeftOutOfTheEscalation) {
  const ModelCatalog c = catalog();
  // As a request's hard constraints would (say, the cheapest medium model has no vision).
  const auto not_m_cheap = [](const ModelInfo& m) { return m.id != "m-cheap"; };
  EXPECT_EQ(ids(escalation_chain(c, Tier::small, not_m_cheap, 2)),
            (std::vector<std::string>{"m-same-provider", "m-other", "l-cheap"}));
}

}  // namespace
}  // namespace cascade
