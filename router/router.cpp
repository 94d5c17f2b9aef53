#include "router/router.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "router/route_policies.h"
#include "tuning/tuning.h"

namespace cascade {
namespace {

RouteDecision decision_for(const ModelInfo& model, double score, std::string reason,
                           std::vector<const ModelInfo*> fallbacks = {}) {
  RouteDecision decision;
  decision.model = &model;
  decision.tier = model.tier;
  decision.score = score;
  decision.reason = std::move(reason);
  decision.fallbacks = std::move(fallbacks);
  return decision;
}

std::size_t index_of(Tier tier) { return static_cast<std::size_t>(tier); }

Tier tier_for(double score, const TierThresholds& thresholds) {
  if (score < thresholds.small_max) return Tier::small;
  if (score < thresholds.medium_max) return Tier::medium;
  return Tier::large;
}

// The wanted tier first, then stronger tiers (never weaker while a stronger
// one can serve), then weaker ones as a last resort.
std::array<Tier, 3> fallback_order(Tier wanted) {
  switch (wanted) {
    case Tier::small: return {Tier::small, Tier::medium, Tier::large};
    case Tier::medium: return {Tier::medium, Tier::large, Tier::small};
    case Tier::large: return {Tier::large, Tier::medium, Tier::small};
  }
  return {Tier::medium, Tier::large, Tier::small};
}

void append_unavailable(std::string& reason, Tier wanted, const ModelInfo& chosen, bool constrained);

std::string heuristic_reason(double score, Preference preference, Tier wanted, const ModelInfo& chosen,
                             bool constrained) {
  char buffer[160];
  const auto pref = to_string(preference);
  const auto tier = to_string(wanted);
  int written = std::snprintf(buffer, sizeof buffer, "heuristic score=%.2f pref=%.*s tier=%.*s", score,
                              static_cast<int>(pref.size()), pref.data(), static_cast<int>(tier.size()),
                              tier.data());
  std::string reason(buffer, static_cast<std::size_t>(std::max(written, 0)));
  append_unavailable(reason, wanted, chosen, constrained);
  return reason;
}

Tier tier_for_probability(double p_weak_ok, const ProbabilityThresholds& thresholds) {
  if (p_weak_ok >= thresholds.small_min) return Tier::small;
  if (p_weak_ok >= thresholds.medium_min) return Tier::medium;
  return Tier::large;
}

// `constrained`: a model of the wanted tier was available but failed a hard constraint.
void append_unavailable(std::string& reason, Tier wanted, const ModelInfo& chosen, bool constrained) {
  if (chosen.tier == wanted) return;
  reason += " (no ";
  reason += to_string(wanted);
  reason += constrained ? " model meets the constraints: " : " model available: ";
  reason += to_string(chosen.tier);
  reason += ')';
}

// "learned p_weak_ok=0.83 pref=balanced small_min=0.80 tier=small": the
// scorer, its probability and the threshold that decided the tier; with
// cost-aware routing also the adjusted probability and the cost ratio behind
// it ("p_weak_ok=0.64 cost_adjusted=0.81 (upgrade 0.53x ref) >= ...").
std::string scorer_reason(ScorerKind kind, double p, const std::optional<CostAdjustment>& adjustment,
                          Preference preference, const ProbabilityThresholds& t, Tier wanted,
                          const ModelInfo& chosen, bool constrained) {
  const auto name = to_string(kind);
  const auto pref = to_string(preference);
  const auto tier = to_string(wanted);
  const char* threshold_name = wanted == Tier::small ? "small_min" : "medium_min";
  const double threshold = wanted == Tier::small ? t.small_min : t.medium_min;
  const char* relation = wanted == Tier::large ? "<" : ">=";
  char adjusted[80] = "";
  if (adjustment) {
    std::snprintf(adjusted, sizeof adjusted, " cost_adjusted=%.2f (upgrade %.2gx ref)", adjustment->p_weak_ok,
                  adjustment->extra_usd / adjustment->reference_extra_usd);
  }
  char buffer[280];
  int written = std::snprintf(buffer, sizeof buffer, "%.*s p_weak_ok=%.2f%s %s %s=%.2f pref=%.*s tier=%.*s",
                              static_cast<int>(name.size()), name.data(), p, adjusted, relation, threshold_name,
                              threshold, static_cast<int>(pref.size()), pref.data(),
                              static_cast<int>(tier.size()), tier.data());
  std::string reason(buffer, static_cast<std::size_t>(std::max(written, 0)));
  append_unavailable(reason, wanted, chosen, constrained);
  return reason;
}

// What `model` charges for a request of this size, in USD (list prices).
double priced(const ModelInfo& model, std::int64_t input_tokens, std::int64_t output_tokens) {
  return (static_cast<double>(input_tokens) * model.price.input_per_mtok +
          static_cast<double>(output_tokens) * model.price.output_per_mtok) /
         1e6;
}

// Models passed over for a constraint, in the reason: short, the first few.
void append_skipped(std::string& reason, const std::vector<std::string>& skipped, std::size_t total) {
  if (total == 0) return;
  reason += " (skipped for constraints: ";
  for (std::size_t i = 0; i < skipped.size() && i < 2; ++i) {
    if (i) reason += "; ";
    reason += skipped[i];
  }
  if (total > 2) reason += "; +" + std::to_string(total - 2) + " more";
  reason += ')';
}

constexpr std::size_t kSkippedKept = 3;  // without RouteContext::explain

}  // namespace

Router::Router(RouterConfig config, const ModelCatalog& catalog, ProviderAvailable available)
    : Router(config, catalog, std::move(available), nullptr) {
  if (auto scorer = load_route_scorer(config_); !scorer) {
    scorer_problem_ = config_.scorer + " scorer unavailable: " + scorer.error().message;
  } else if ((*scorer)->kind() != ScorerKind::heuristic) {
    scorer_ = std::move(*scorer);
  }
}

namespace {

std::shared_ptr<const RoutePolicies> compile_or_throw(const RouterConfig& config, const ModelCatalog& catalog) {
  auto policies = compile_route_policies(config, catalog);
  // Production code compiles them at startup and reports errors as values.
  if (!policies) throw std::invalid_argument("router policies: " + policies.error().message);
  return std::move(*policies);
}

}  // namespace

Router::Router(RouterConfig config, const ModelCatalog& catalog, ProviderAvailable available,
               std::shared_ptr<const RouteScorer> scorer)
    : Router(config, catalog, std::move(available), std::move(scorer), compile_or_throw(config, catalog)) {}

Router::Router(RouterConfig config, const ModelCatalog& catalog, ProviderAvailable available,
               std::shared_ptr<const RouteScorer> scorer, std::shared_ptr<const RoutePolicies> policies)
    : config_(std::move(config)),
      catalog_(catalog),
      available_(std::move(available)),
      scorer_(std::move(scorer)),
      policies_(std::move(policies)) {
  if (scorer_ && scorer_->kind() == ScorerKind::heuristic) scorer_ = nullptr;
  if (!available_) available_ = [](std::string_view) { return true; };
  for (const ModelInfo& model : catalog_.models()) candidates_by_tier_[index_of(model.tier)].push_back(&model);
  for (auto& candidates : candidates_by_tier_) {
    // Ties broken by id so the choice does not depend on catalog order.
    std::ranges::sort(candidates, [](const ModelInfo* a, const ModelInfo* b) {
      const double pa = blended_price(*a);
      const double pb = blended_price(*b);
      return pa != pb ? pa < pb : a->id < b->id;
    });
  }
}

const TierThresholds& Router::thresholds_for(Preference preference) const {
  switch (preference) {
    case Preference::cost: return config_.cost;
    case Preference::balanced: return config_.balanced;
    case Preference::quality: return config_.quality;
    case Preference::speed: return config_.speed;
  }
  return config_.balanced;
}

const ProbabilityThresholds& Router::probability_thresholds_for(Preference preference) const {
  switch (preference) {
    case Preference::cost: return config_.cost_p;
    case Preference::balanced: return config_.balanced_p;
    case Preference::quality: return config_.quality_p;
    case Preference::speed: return config_.speed_p;
  }
  return config_.balanced_p;
}

const ModelInfo* Router::cheapest_in(Tier tier) const {
  for (const ModelInfo* model : candidates_by_tier_[index_of(tier)])
    if (available_(model->provider)) return model;
  return nullptr;
}

const ModelInfo* Router::cheapest_fitting(Tier tier, const RouteRequirements& needs) const {
  for (const ModelInfo* model : candidates_by_tier_[index_of(tier)])
    if (available_(model->provider) && constraint_violation(*model, needs).empty()) return model;
  return nullptr;
}

std::optional<CostAdjustment> Router::adjust_for_cost(double p_weak_ok, const RouteRequirements& needs) const {
  const ModelInfo* small = cheapest_fitting(Tier::small, needs);
  const ModelInfo* large = cheapest_fitting(Tier::large, needs);
  if (small == nullptr || large == nullptr) return std::nullopt;
  const CostAwareConfig& c = config_.cost_aware;
  const std::int64_t output = std::min(c.expected_output_tokens, std::max<std::int64_t>(needs.max_tokens, 1));
  const double extra = priced(*large, needs.input_tokens, output) - priced(*small, needs.input_tokens, output);
  const double reference = priced(*large, c.reference_input_tokens, c.expected_output_tokens) -
                           priced(*small, c.reference_input_tokens, c.expected_output_tokens);
  // A large tier no dearer than the small one leaves nothing to weigh.
  if (!(extra > 0 && reference > 0)) return std::nullopt;
  // Expected gain per dollar, in units of a reference-sized request's dollar.
  const double gain = (1.0 - p_weak_ok) * reference / extra;
  return CostAdjustment{std::clamp(1.0 - gain, 0.0, 1.0), extra, reference};
}

std::vector<const ModelInfo*> Router::fallbacks_for(const ModelInfo& chosen, const RouteRequirements& needs) const {
  std::vector<const ModelInfo*> out;
  const auto max = static_cast<std::size_t>(std::max(config_.max_fallbacks, 0));
  auto add = [&](const ModelInfo* m) {
    if (out.size() >= max || m == nullptr || m == &chosen || !available_(m->provider)) return;
    // A fallback that cannot serve the request would only fail again.
    if (!constraint_violation(*m, needs).empty()) return;
    if (std::ranges::find(out, m) == out.end()) out.push_back(m);
  };
  if (auto it = config_.fallbacks.find(std::string(to_string(chosen.tier))); it != config_.fallbacks.end()) {
    for (const auto& id : it->second) add(catalog_.find(id));
    return out;
  }
  // A failing provider often fails for all its models: other providers first.
  const auto& same_tier = candidates_by_tier_[index_of(chosen.tier)];
  for (const ModelInfo* m : same_tier)
    if (m->provider != chosen.provider) add(m);
  for (const ModelInfo* m : same_tier) add(m);
  if (chosen.tier != Tier::large) {
    for (const ModelInfo* m : candidates_by_tier_[index_of(chosen.tier) + 1]) {
      if (!available_(m->provider) || !constraint_violation(*m, needs).empty()) continue;
      add(m);  // the cheapest suitable one of the next stronger tier
      break;
    }
  }
  return out;
}

Result<RouteDecision> Router::route(const PromptEvent& event) const { return route(event, RouteContext{}); }

const CompiledRule* Router::apply_rule(const PromptEvent& event, RouteRequirements& needs) const {
  const CompiledRule* rule = policies_ ? policies_->match(event) : nullptr;
  if (rule && !rule->residency.empty() && std::ranges::find(needs.regions, rule->residency) == needs.regions.end())
    needs.regions.push_back(rule->residency);
  return rule;
}

std::pair<const CompiledPolicy*, std::string> Router::policy_for(const PromptEvent& event,
                                                                 const CompiledRule* rule) const {
  if (rule && rule->policy) return {rule->policy, rule->policy->name};
  // Requests a rule pinned or forced a tier for are not part of the experiment.
  if (policies_ && policies_->has_experiment() && !(rule && (rule->tier || rule->model))) {
    const int arm = policies_->arm_for(event.id);
    return {&policies_->arm_policy(arm), policies_->arm_label(arm)};
  }
  return {nullptr, std::string()};
}

Error Router::no_model_error(const RouteRequirements& needs, const std::vector<std::string>& skipped) const {
  // A constraint no catalog model meets is the request's problem; otherwise
  // the fitting models' providers are down.
  for (const auto& tier_models : candidates_by_tier_) {
    for (const ModelInfo* model : tier_models) {
      if (constraint_violation(*model, needs).empty())
        return Error{ErrorCode::unavailable, "no available provider serves a model that meets this request's "
                                             "constraints (" + needs.describe() + "); " + model->id +
                                                 " would, but its provider '" + model->provider + "' is not available"};
    }
  }
  std::string example = skipped.empty() ? std::string() : " (e.g. " + skipped.front() + ")";
  return Error{ErrorCode::invalid_request,
               "no model in the catalog meets this request's constraints (" + needs.describe() + ")" + example};
}

Result<RouteDecision> Router::route(const PromptEvent& event, const RouteContext& context) const {
  auto requirements = route_requirements(event, context);
  if (!requirements) return std::unexpected(requirements.error());
  RouteRequirements& needs = *requirements;

  // Scored even when pinned: the ledger can then show what pinned traffic
  // would have been routed to.
  double score = 0;
  double p_weak_ok = 0;
  if (scorer_) {
    p_weak_ok = scorer_->score(event.messages).p_weak_ok;
    score = 1.0 - p_weak_ok;
  } else {
    score = score_complexity(event.messages, context.input_tokens).score;
  }

  if (event.pinned()) {
    const ModelInfo* model = catalog_.find(event.model);
    if (model == nullptr) return fail(ErrorCode::invalid_request, "unknown model '" + event.model + "'");
    if (auto why = constraint_violation(*model, needs); !why.empty())
      return fail(ErrorCode::invalid_request, "model '" + model->id + "' is pinned but cannot serve this request: " + why);
    if (!available_(model->provider))
      return fail(ErrorCode::unavailable, "model '" + model->id + "' is pinned but its provider '" +
                                              model->provider + "' is not available (not configured or no API key)");
    RouteDecision decision = decision_for(*model, score, "pinned");
    if (context.explain) decision.constraints = needs.describe();
    return decision;
  }

  const CompiledRule* rule = apply_rule(event, needs);
  std::string rule_note;  // why a rule's pin was not followed
  if (rule && rule->model) {
    const ModelInfo& model = *rule->model;
    std::string why = constraint_violation(model, needs);
    if (why.empty() && !available_(model.provider)) why = "provider '" + model.provider + "' not available";
    if (why.empty()) {
      RouteDecision decision = decision_for(model, score, "rule " + rule->name + ": pinned " + model.id);
      decision.rule = rule->name;
      if (context.explain) decision.constraints = needs.describe();
      return decision;
    }
    // The request is fine; the rule's model is not: route it as if no rule pinned.
    rule_note = " (rule " + rule->name + " pins " + model.id + ", not usable: " + why + ")";
  }

  auto [policy, policy_label] = policy_for(event, rule);
  const Preference preference = policy && policy->preference ? *policy->preference : event.preference;
  const TierThresholds& thresholds =
      policy && policy->thresholds ? *policy->thresholds : thresholds_for(preference);
  const ProbabilityThresholds& probability =
      policy && policy->probability ? *policy->probability : probability_thresholds_for(preference);

  const bool forced = rule && rule->tier;
  const bool cost_aware = policy && policy->cost_aware ? *policy->cost_aware : config_.cost_aware.enabled;
  // The heuristic's score is a ranking, not a probability of gain: it is not weighed.
  std::optional<CostAdjustment> adjustment;
  if (scorer_ && cost_aware && !forced) adjustment = adjust_for_cost(p_weak_ok, needs);
  Tier wanted = forced    ? *rule->tier
                : scorer_ ? tier_for_probability(adjustment ? adjustment->p_weak_ok : p_weak_ok, probability)
                          : tier_for(score, thresholds);
  // The cuts the tier came from, in score units; the closed loop's replace
  // them when tuned from these same configured ones.
  std::optional<RouteCuts> cuts;
  const TuningRecord* tuned = nullptr;
  TunedCuts::Found found;
  if (!forced) {
    RouteCuts c;
    c.score = scorer_ ? 1.0 - (adjustment ? adjustment->p_weak_ok : p_weak_ok) : score;
    c.configured_small = scorer_ ? 1.0 - probability.small_min : thresholds.small_max;
    c.configured_medium = scorer_ ? 1.0 - probability.medium_min : thresholds.medium_max;
    c.small = c.configured_small;
    c.medium = c.configured_medium;
    c.preference = preference;
    if (tuned_ && !tuned_->empty()) {
      found = tuned_->find(event.tenant, tuning_key(policy_label, to_string(preference)));
      if (found.record && found.record->configured == TierCuts{c.configured_small, c.configured_medium}) {
        tuned = found.record;
        c.small = tuned->cuts.small;
        c.medium = tuned->cuts.medium;
        c.tuned_version = tuned->version;
        wanted = c.score <= c.small ? Tier::small : c.score <= c.medium ? Tier::medium : Tier::large;
      }
    }
    cuts = c;
  }

  std::vector<std::string> skipped;
  std::size_t skipped_total = 0;
  bool wanted_tier_constrained = false;
  bool any_available = false;
  for (const Tier tier : fallback_order(wanted)) {
    const ModelInfo* chosen = nullptr;
    for (const ModelInfo* model : candidates_by_tier_[index_of(tier)]) {
      if (!available_(model->provider)) continue;
      any_available = true;
      std::string why = constraint_violation(*model, needs);
      if (why.empty()) {
        chosen = model;
        break;
      }
      if (tier == wanted) wanted_tier_constrained = true;
      if (context.explain || skipped.size() < kSkippedKept) skipped.push_back(model->id + ": " + std::move(why));
      ++skipped_total;
    }
    if (chosen == nullptr) continue;

    std::string reason;
    if (forced) {
      char buffer[64];
      std::snprintf(buffer, sizeof buffer, " score=%.2f", score);
      reason = "rule " + rule->name + ": tier=" + std::string(to_string(wanted)) + buffer;
      append_unavailable(reason, wanted, *chosen, wanted_tier_constrained);
    } else {
      reason = scorer_ ? scorer_reason(scorer_->kind(), p_weak_ok, adjustment, preference, probability, wanted,
                                       *chosen, wanted_tier_constrained)
                       : heuristic_reason(score, preference, wanted, *chosen, wanted_tier_constrained);
      if (tuned) {
        // The configured threshold above no longer decided: say what did.
        char buffer[96];
        std::snprintf(buffer, sizeof buffer, " tuned(small<=%.3f medium<=%.3f v%llu score=%.3f)", tuned->cuts.small,
                      tuned->cuts.medium, static_cast<unsigned long long>(tuned->version), cuts->score);
        reason += buffer;
      }
      if (!policy_label.empty()) reason += " policy=" + policy_label;
      if (rule) reason += " rule=" + rule->name;
    }
    reason += rule_note;
    append_skipped(reason, skipped, skipped_total);
    if (!scorer_problem_.empty()) reason += " (" + scorer_problem_ + ")";
    RouteDecision decision = decision_for(*chosen, score, std::move(reason), fallbacks_for(*chosen, needs));
    decision.policy = std::move(policy_label);
    if (rule) decision.rule = rule->name;
    if (context.explain) decision.constraints = needs.describe();
    decision.skipped = std::move(skipped);
    decision.cost_adjustment = adjustment;
    decision.cuts = cuts;
    return decision;
  }
  if (!any_available) return fail(ErrorCode::unavailable, "no available provider serves any model in the catalog");
  return std::unexpected(no_model_error(needs, skipped));
}

Result<std::array<const ModelInfo*, 3>> Router::models_by_tier(const PromptEvent& event,
                                                               const RouteContext& context) const {
  auto requirements = route_requirements(event, context);
  if (!requirements) return std::unexpected(requirements.error());
  apply_rule(event, *requirements);  // a matching rule's residency
  std::array<const ModelInfo*, 3> out{};
  for (const Tier tier : {Tier::small, Tier::medium, Tier::large})
    out[index_of(tier)] = cheapest_fitting(tier, *requirements);
  return out;
}

Result<RouteDecision> Router::route_cheapest(const PromptEvent& event, const RouteContext& context) const {
  auto requirements = route_requirements(event, context);
  if (!requirements) return std::unexpected(requirements.error());
  RouteRequirements& needs = *requirements;
  const CompiledRule* rule = apply_rule(event, needs);
  std::vector<std::string> skipped;
  bool any_available = false;
  for (const Tier tier : {Tier::small, Tier::medium, Tier::large}) {
    for (const ModelInfo* model : candidates_by_tier_[index_of(tier)]) {
      if (!available_(model->provider)) continue;
      any_available = true;
      if (std::string why = constraint_violation(*model, needs); !why.empty()) {
        if (context.explain || skipped.size() < kSkippedKept) skipped.push_back(model->id + ": " + std::move(why));
        continue;
      }
      RouteDecision decision = decision_for(*model, 0, "cheapest " + std::string(to_string(model->tier)),
                                            fallbacks_for(*model, needs));
      decision.policy = policy_for(event, rule).second;
      if (rule) decision.rule = rule->name;
      if (context.explain) decision.constraints = needs.describe();
      decision.skipped = std::move(skipped);
      return decision;
    }
  }
  if (!any_available) return fail(ErrorCode::unavailable, "no available provider serves any model in the catalog");
  return std::unexpected(no_model_error(needs, skipped));
}

}  // namespace cascade
