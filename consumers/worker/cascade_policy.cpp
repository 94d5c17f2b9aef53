#include "consumers/worker/cascade_policy.h"

#include <algorithm>
#include <optional>

namespace cascade {
namespace {

std::optional<Tier> stronger(Tier tier) {
  switch (tier) {
    case Tier::small: return Tier::medium;
    case Tier::medium: return Tier::large;
    case Tier::large: return std::nullopt;
  }
  return std::nullopt;
}

// The tier's usable models, cheapest first (ties by id, as the router breaks them).
std::vector<const ModelInfo*> usable_in(const ModelCatalog& catalog, Tier tier,
                                        const std::function<bool(const ModelInfo&)>& usable) {
  std::vector<const ModelInfo*> out;
  for (const ModelInfo& model : catalog.models()) {
    if (model.tier == tier && (!usable || usable(model))) out.push_back(&model);
  }
  std::ranges::sort(out, [](const ModelInfo* a, const ModelInfo* b) {
    const double pa = blended_price(*a);
    const double pb = blended_price(*b);
    return pa != pb ? pa < pb : a->id < b->id;
  });
  return out;
}

}  // namespace

bool cascade_requested(const CascadeConfig& config, const PromptEvent& event) {
  if (!config.enabled || event.pinned()) return false;
  if (event.cascade) return *event.cascade;
  const std::string_view preference = to_string(event.preference);
  return std::ranges::find(config.preferences, preference) != config.preferences.end();
}

std::vector<const ModelInfo*> escalation_chain(const ModelCatalog& catalog, Tier cheap_tier,
                                               const std::function<bool(const ModelInfo&)>& usable,
                                               int max_fallbacks) {
  std::vector<const ModelInfo*> tier_models;
  std::optional<Tier> tier = stronger(cheap_tier);
  for (; tier; tier = stronger(*tier)) {
    tier_models = usable_in(catalog, *tier, usable);
    if (!tier_models.empty()) break;
  }
  if (tier_models.empty()) return {};
  const ModelInfo* strong = tier_models.front();
  std::vector<const ModelInfo*> chain = {strong};
  const auto limit = 1 + static_cast<std::size_t>(std::max(max_fallbacks, 0));
  auto add = [&](const ModelInfo* m) {
    if (chain.size() < limit && std::ranges::find(chain, m) == chain.end()) chain.push_back(m);
  };
  // A failing provider often fails for all its models: other providers first.
  for (const ModelInfo* m : tier_models)
    if (m->provider != strong->provider) add(m);
  for (const ModelInfo* m : tier_models) add(m);
  if (auto above = stronger(*tier)) {
    const auto next = usable_in(catalog, *above, usable);
    if (!next.empty()) add(next.front());
  }
  return chain;
}

}  // namespace cascade
