#pragma once
// The router picks the cheapest model that can do the job. A scorer
// estimates the probability that the cheaper tier answers as well as the
// strong one (docs/routing.md): the heuristic complexity score (default), a
// learned logistic regression over hashed n-grams, built-in embeddings and
// the heuristic's features, or k nearest neighbours over embeddings of past
// outcomes. Per-preference thresholds map the score to a tier, then the
// cheapest available model in that tier answers. A pinned model always wins.
#include <array>
#include <functional>
#include <memory>
#include <optional>
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

// --------------------------------------------------------------- scorers ----

// What a scorer concluded about one prompt.
struct RouteScore {
  // Probability that the cheaper (weak) model's answer is as good as the
  // strong one's. For the heuristic it is 1 - complexity: a ranking, not a
  // calibrated probability.
  double p_weak_ok = 0.5;
  // The features that drove it, largest |contribution| first (filled when
  // asked to explain; the heuristic always fills its seven). Contributions are
  // in the scorer's own units: log-odds for learned, similarity-weighted
  // neighbour votes for knn, complexity points for heuristic.
  std::vector<std::pair<std::string, double>> drivers;
};

enum class ScorerKind { heuristic, learned, knn };
std::string_view to_string(ScorerKind kind);
std::optional<ScorerKind> parse_scorer_kind(std::string_view name);

// Scores prompts (OpenAI-format messages). Immutable after loading; safe to
// share between threads.
class RouteScorer {
 public:
  virtual ~RouteScorer() = default;
  virtual ScorerKind kind() const = 0;
  // `explain` = fill RouteScore::drivers (slower: names every feature).
  virtual RouteScore score(const nlohmann::json& messages, bool explain = false) const = 0;
  // One line on what the scorer was trained on ("" for the heuristic).
  virtual std::string description() const { return {}; }
};

// The heuristic complexity score as a scorer: p_weak_ok = 1 - score.
std::shared_ptr<const RouteScorer> make_heuristic_scorer();

// Parses a model file written by `cascade route-train` (config/router/*.json;
// format in docs/routing.md). invalid_request when it is not one.
Result<std::shared_ptr<const RouteScorer>> parse_route_model(std::string_view json_text);
Result<std::shared_ptr<const RouteScorer>> load_route_model(const std::string& path);

// The scorer `config` names: the heuristic, or a learned/knn model from
// router.model_file (empty = the built-in copy of config/router/learned.json;
// knn has no built-in model). Loaded once per process and path, then shared.
Result<std::shared_ptr<const RouteScorer>> load_route_scorer(const RouterConfig& config);

// The text of the built-in learned model (config/router/learned.json, compiled in).
std::string_view builtin_learned_model_json();

// [{"role":"user","content": text}]: how tools score a bare prompt.
nlohmann::json user_messages(std::string_view text);

struct RouteDecision {
  const ModelInfo* model = nullptr;  // points into the catalog
  Tier tier = Tier::medium;
  // Complexity score (heuristic), or 1 - p_weak_ok for the learned and knn
  // scorers, so that higher always means "needs a stronger model".
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
  // Uses the scorer router.scorer names (load_route_scorer). Should it fail to
  // load, the router scores with the heuristic and says so in every reason;
  // `cascade worker` checks the model at startup and refuses to start instead.
  Router(RouterConfig config, const ModelCatalog& catalog, ProviderAvailable available);
  // With a scorer of the caller's (nullptr = the heuristic).
  Router(RouterConfig config, const ModelCatalog& catalog, ProviderAvailable available,
         std::shared_ptr<const RouteScorer> scorer);

  // unavailable when no enabled provider serves a suitable model;
  // invalid_request when a pinned model is unknown.
  Result<RouteDecision> route(const PromptEvent& event) const;

 private:
  const TierThresholds& thresholds_for(Preference preference) const;
  const ProbabilityThresholds& probability_thresholds_for(Preference preference) const;
  const ModelInfo* cheapest_in(Tier tier) const;
  std::vector<const ModelInfo*> fallbacks_for(const ModelInfo& chosen) const;

  RouterConfig config_;
  const ModelCatalog& catalog_;
  ProviderAvailable available_;
  std::shared_ptr<const RouteScorer> scorer_;  // nullptr = heuristic thresholds on the complexity score
  std::string scorer_problem_;                  // why the configured scorer is not in use
  // Per tier (index = Tier), the catalog's models cheapest first; route() takes
  // the first whose provider is available, so it never sorts.
  std::array<std::vector<const ModelInfo*>, 3> candidates_by_tier_;
};

}  // namespace cascade
