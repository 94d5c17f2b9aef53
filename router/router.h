#pragma once
// The router picks the cheapest model that can do the job. A scorer
// estimates the probability that the cheaper tier answers as well as the
// strong one (docs/routing.md): the heuristic complexity score (default), a
// learned logistic regression over hashed n-grams, built-in embeddings and
// the heuristic's features, or k nearest neighbours over embeddings of past
// outcomes. Per-preference thresholds map the score to a tier, then the
// cheapest available model in that tier answers. A pinned model always wins.
//
// Policies (docs/routing.md, "Policies") wrap this: hard constraints first
// (context window, capabilities, data residency) decide which models may
// answer at all; then router.rules (first match) may pin a model, force a
// tier or pick a named policy (thresholds); else router.experiment may give
// the request one of two policies by a hash of its id.
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "catalog/catalog.h"
#include "router/router_config.h"
#include "core/result.h"
#include "events/events.h"

namespace cascade {

// Each feature's contribution, so a decision can be explained.
struct ComplexityScore {
  double score = 0;  // 0 = trivial, 1 = hardest
  std::vector<std::pair<std::string, double>> features;
};

// Scores the prompt text of OpenAI-format messages: length, code, math,
// reasoning words, multi-step instructions. The length is input_tokens, the
// tokenizer's count, when given; else estimated as characters / 4.
ComplexityScore score_complexity(const nlohmann::json& messages, std::int64_t input_tokens = 0);

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
// The same with the length feature from a tokenizer count (0 = estimated
// from characters), as Router::route scores it when the worker passes one.
RouteScore heuristic_route_score(const nlohmann::json& messages, std::int64_t input_tokens);

// Parses a model file written by `cascade route-train` (config/router/*.json;
// format in docs/routing.md). invalid_request when it is not one.
[[nodiscard]] Result<std::shared_ptr<const RouteScorer>> parse_route_model(std::string_view json_text);
[[nodiscard]] Result<std::shared_ptr<const RouteScorer>> load_route_model(const std::string& path);

// The scorer `config` names: the heuristic, or a learned/knn model from
// router.model_file (empty = the built-in copy of config/router/learned.json;
// knn has no built-in model). Loaded once per process and path, then shared.
[[nodiscard]] Result<std::shared_ptr<const RouteScorer>> load_route_scorer(const RouterConfig& config);

// The text of the built-in learned model (config/router/learned.json, compiled in).
std::string_view builtin_learned_model_json();

// The final answer of a response, for comparing two models' answers (the
// cascade's agreement check): the option letter of a multiple-choice prompt,
// else the number after "####" (or the last number). nullopt when it has
// none (free-form text, code).
std::optional<std::string> final_answer(std::string_view prompt, std::string_view response);
// The same for a conversation: its last user message is the prompt.
std::optional<std::string> final_answer_in_conversation(const nlohmann::json& messages, std::string_view response);

// A learned check of a cheap model's answer (docs/routing.md, "Verified
// cascade"): the probability that the answer is as good as the strong
// model's would have been, from the prompt's features, the answer's own
// hashed n-grams and shape, and label-free facts about it (a final number
// that copies the question's, a calculation that does not compute, a cut
// worked answer). Written by `cascade route-train --router verifier`; the worker's
// cheap-first cascade escalates answers it scores below
// router.cascade.min_verifier_p. Immutable; safe to share between threads.
class AnswerVerifier {
 public:
  // A model file whose scorer is "verifier"; invalid_request otherwise.
  [[nodiscard]] static Result<std::shared_ptr<const AnswerVerifier>> parse(std::string_view json_text);
  [[nodiscard]] static Result<std::shared_ptr<const AnswerVerifier>> load(const std::string& path);

  // `prompt`: the text the answer answers (the last user message).
  double p_ok(std::string_view prompt, std::string_view answer) const;
  // The same for a conversation: its last user message is the prompt.
  double p_ok_for_messages(const nlohmann::json& messages, std::string_view answer) const;
  // What it was trained on, one line.
  const std::string& description() const { return description_; }

  struct Weights;  // verifier.cpp
  AnswerVerifier(std::shared_ptr<const Weights> weights, std::string description);

 private:
  std::shared_ptr<const Weights> weights_;
  std::string description_;
};

// [{"role":"user","content": text}]: how tools score a bare prompt.
nlohmann::json user_messages(std::string_view text);

// What the caller knows about a request beyond the event.
struct RouteContext {
  // Input tokens as the tokenizer counts them; 0 = unknown: the router
  // estimates bytes/4 of the messages' text (and of `tools`).
  std::int64_t input_tokens = 0;
  // limits.default_max_tokens, for requests without max_tokens; 0 = its
  // built-in default, kBuiltinDefaultMaxTokens.
  int default_max_tokens = 0;
  static constexpr int kBuiltinDefaultMaxTokens = 1024;  // as config/cascade.yaml's limits.default_max_tokens
  // Fill RouteDecision::constraints and the whole RouteDecision::skipped list
  // (cascade route --explain); off on the hot path.
  bool explain = false;
};

// What a request needs of a model (docs/routing.md, "Hard constraints").
struct RouteRequirements {
  std::int64_t input_tokens = 0;
  bool input_estimated = false;  // bytes/4, no tokenizer count
  // The request's max_tokens, else the default. Only a request's own is a
  // hard limit: the default is capped at each model's max output tokens.
  std::int64_t max_tokens = 0;
  bool max_tokens_explicit = false;
  std::uint32_t capabilities = 0;  // kCapability* bits
  std::vector<std::string> regions;  // every one required: the request's residency and a rule's

  // "tokens 1200+1024 needs tools,json residency eu": one line for --explain.
  std::string describe() const;
};

// The requirements of `event`: tools (a `tools` array, tool-role messages or
// assistant tool_calls), vision (image content parts), json (response_format
// json_object / json_schema), residency (metadata.residency, a string).
// invalid_request when metadata.residency is not a non-empty string.
[[nodiscard]] Result<RouteRequirements> route_requirements(const PromptEvent& event, const RouteContext& context);

// Why `model` cannot serve a request with these requirements ("context
// window 128000 < 130024 tokens (~129000 input + 1024 max_tokens)"), or ""
// when it can.
std::string constraint_violation(const ModelInfo& model, const RouteRequirements& requirements);

// Compiled rules, policies and experiment (route_policies.h, internal).
class RoutePolicies;
struct CompiledRule;
struct CompiledPolicy;

// Rules, policies and the experiment compiled against the catalog: what
// load_config cannot check (rule regexes compile with PCRE2, pinned models
// exist). invalid_request naming the key ("router.rules[2].match.prompt:
// ..."). nullptr when the config has none. Compiled once at startup and
// shared by every Router of the process.
[[nodiscard]] Result<std::shared_ptr<const RoutePolicies>> compile_route_policies(const RouterConfig& config,
                                                                                const ModelCatalog& catalog);

// Cost-aware routing (router.cost_aware): the strong model's expected gain,
// 1 - p_weak_ok, scaled by what the upgrade costs at the reference size over
// what it costs for this request. Tiers are then picked from p_weak_ok.
struct CostAdjustment {
  double p_weak_ok = 0;            // the adjusted probability the thresholds saw
  double extra_usd = 0;            // large tier's model minus small tier's, this request
  double reference_extra_usd = 0;  // the same at router.cost_aware's reference size
};

// The cuts a routed request's tier came from, in units of
// RouteDecision::score (tuning/tuning.h): score <= small -> small tier, else
// score <= medium -> medium, else large. Kept for calibration samples
// (docs/routing.md, "Closed loop").
struct RouteCuts {
  double score = 0;  // the score the cuts saw: cost-aware routing's adjusted one when it applied
  double small = 0;  // in force: tuned, else the configuration's
  double medium = 0;
  double configured_small = 0;  // the configuration's (heuristic small_max; learned 1 - small_min)
  double configured_medium = 0;
  Preference preference = Preference::balanced;  // whose thresholds applied
  std::uint64_t tuned_version = 0;  // 0 = the configuration's cuts
};

struct RouteDecision {
  const ModelInfo* model = nullptr;  // points into the catalog
  Tier tier = Tier::medium;
  // Complexity score (heuristic), or 1 - p_weak_ok for the learned and knn
  // scorers, so that higher always means "needs a stronger model".
  double score = 0;
  std::string reason;  // short, stable, goes into final and cost events
  // Tried in order when `model` fails (router.fallbacks, else same-tier
  // alternatives on other providers first), every one within the hard
  // constraints. Empty for pinned models.
  std::vector<const ModelInfo*> fallbacks;
  // The policy that decided: a rule's policy name or an experiment arm
  // "<experiment>:<policy>"; "" = the router's own thresholds. Goes into the
  // final event's route.policy and the cost event's policy.
  std::string policy;
  std::string rule;  // the name of the rule that matched; "" = none
  // The hard constraints applied (RouteRequirements::describe); filled when
  // RouteContext::explain.
  std::string constraints;
  // Cheaper models passed over for a hard constraint, "id: why" (at most 3
  // unless RouteContext::explain).
  std::vector<std::string> skipped;
  // Set when cost-aware routing moved the probability the tier came from.
  std::optional<CostAdjustment> cost_adjustment;
  // Set when the score's tier came from the cuts (not pinned, not a rule's
  // tier, not the cheapest-tier downgrade).
  std::optional<RouteCuts> cuts;
};

class TunedCuts;  // tuning/tuning.h

// Whether a provider is configured and enabled (its key is present).
using ProviderAvailable = std::function<bool(std::string_view provider)>;

class Router {
 public:
  // Uses the scorer router.scorer names (load_route_scorer). Should it fail to
  // load, the router scores with the heuristic and says so in every reason;
  // `cascade worker` checks the model at startup and refuses to start instead.
  Router(RouterConfig config, const ModelCatalog& catalog, ProviderAvailable available);
  // With a scorer of the caller's (nullptr = the heuristic). These two
  // compile the config's policies themselves and throw std::invalid_argument
  // on ones compile_route_policies refuses (tests, tools).
  Router(RouterConfig config, const ModelCatalog& catalog, ProviderAvailable available,
         std::shared_ptr<const RouteScorer> scorer);
  // With policies compiled once at startup (compile_route_policies; nullptr =
  // none): what workers use, one Router per event loop.
  Router(RouterConfig config, const ModelCatalog& catalog, ProviderAvailable available,
         std::shared_ptr<const RouteScorer> scorer, std::shared_ptr<const RoutePolicies> policies);

  // unavailable when no enabled provider serves a suitable model;
  // invalid_request when a pinned model is unknown or violates a hard
  // constraint, or when no model in the catalog meets the constraints.
  [[nodiscard]] Result<RouteDecision> route(const PromptEvent& event, const RouteContext& context) const;
  // Same, with no tokenizer count (estimated) and the default max_tokens 1024.
  [[nodiscard]] Result<RouteDecision> route(const PromptEvent& event) const;
  // The cheapest model that can serve the request, whatever its complexity
  // (a budget past its soft limit): the cheapest available tier, with that
  // model's fallbacks. unavailable when no provider serves any model.
  // Within the hard constraints (and a matching rule's residency); keeps the
  // policy label route() gives the request, so the ledger still counts a
  // downgraded request in its experiment arm.
  [[nodiscard]] Result<RouteDecision> route_cheapest(const PromptEvent& event, const RouteContext& context = {}) const;

  // The model route() would take in each tier (index = Tier): the cheapest
  // available one meeting the request's hard constraints, nullptr where
  // none does. What a calibration sample asks (docs/routing.md, "Closed loop").
  [[nodiscard]] Result<std::array<const ModelInfo*, 3>> models_by_tier(const PromptEvent& event,
                                                                     const RouteContext& context = {}) const;

  // The closed loop's cuts (kafka.topics.router_updates), per tenant and
  // tuning key, used in place of the configuration's when a record was tuned
  // from the same configured cuts; null = none. Shared by every Router of
  // the process; set before routing.
  void use_tuned_cuts(std::shared_ptr<const TunedCuts> cuts) { tuned_ = std::move(cuts); }

 private:
  // A matching rule's residency added to `needs`; the rule, or nullptr.
  const CompiledRule* apply_rule(const PromptEvent& event, RouteRequirements& needs) const;
  // The policy a request routes under (a rule's, else its experiment arm) and its label.
  std::pair<const CompiledPolicy*, std::string> policy_for(const PromptEvent& event,
                                                                  const CompiledRule* rule) const;
  // The error when no available model meets `needs`.
  Error no_model_error(const RouteRequirements& needs, const std::vector<std::string>& skipped) const;
  const TierThresholds& thresholds_for(Preference preference) const;
  const ProbabilityThresholds& probability_thresholds_for(Preference preference) const;
  const ModelInfo* cheapest_in(Tier tier) const;
  // The cheapest available model of `tier` that meets `needs`, or nullptr.
  const ModelInfo* cheapest_fitting(Tier tier, const RouteRequirements& needs) const;
  // The cost-aware probability for a request with these needs, or nothing
  // when the small or large tier has no model for it (nothing to weigh).
  std::optional<CostAdjustment> adjust_for_cost(double p_weak_ok, const RouteRequirements& needs) const;
  std::vector<const ModelInfo*> fallbacks_for(const ModelInfo& chosen, const RouteRequirements& needs) const;

  RouterConfig config_;
  const ModelCatalog& catalog_;
  ProviderAvailable available_;
  std::shared_ptr<const RouteScorer> scorer_;  // nullptr = heuristic thresholds on the complexity score
  std::string scorer_problem_;                  // why the configured scorer is not in use
  // Per tier (index = Tier), the catalog's models cheapest first; route() takes
  // the first whose provider is available, so it never sorts.
  std::array<std::vector<const ModelInfo*>, 3> candidates_by_tier_;
  std::shared_ptr<const RoutePolicies> policies_;  // nullptr = no rules, policies or experiment
  std::shared_ptr<const TunedCuts> tuned_;          // nullptr = no closed loop
};

}  // namespace cascade
