#pragma once
// The router picks the cheapest model that can do the job. v1: a heuristic
// complexity score (0..1) mapped to a tier by per-preference thresholds, then
// the cheapest available model in that tier. A pinned model always wins.
#include <array>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "catalog/catalog.h"
#include "core/config.h"
#include "core/result.h"
#include "events/events.h"

namespace cascade {

// Each feature's contribution, so a decision can be explained.
struct ComplexityScore {
  double score = 0;  // 0 = trivial, 1 = hardest
  std::vector<std::pair<std::string, double>> features;
};

// Scores the prompt text of OpenAI-format messages: length, code, math,
// reasoning words, multi-step instructions.
ComplexityScore score_complexity(const nlohmann::json& messages);

struct RouteDecision {
  const ModelInfo* model = nullptr;  // points into the catalog
  Tier tier = Tier::medium;
  double score = 0;
  std::string reason;  // short, stable, goes into final and cost events
  // Tried in order when `model` fails (router.fallbacks, else same-tier
  // alternatives on other providers first). Empty for pinned models.
  std::vector<const ModelInfo*> fallbacks;
};

// Whether a provider is configured and enabled (its key is present).
using ProviderAvailable = std::function<bool(std::string_view provider)>;

class Router {
 public:
  Router(RouterConfig config, const ModelCatalog& catalog, ProviderAvailable available);

  // unavailable when no enabled provider serves a suitable model;
  // invalid_request when a pinned model is unknown.
  Result<RouteDecision> route(const PromptEvent& event) const;

 private:
  const TierThresholds& thresholds_for(Preference preference) const;
  const ModelInfo* cheapest_in(Tier tier) const;
  std::vector<const ModelInfo*> fallbacks_for(const ModelInfo& chosen) const;

  RouterConfig config_;
  const ModelCatalog& catalog_;
  ProviderAvailable available_;
  // Per tier (index = Tier), the catalog's models cheapest first; route() takes
  // the first whose provider is available, so it never sorts.
  std::array<std::vector<const ModelInfo*>, 3> candidates_by_tier_;
};

}  // namespace cascade
