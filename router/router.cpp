#include "router/router.h"

#include <algorithm>
#include <cstdio>

namespace cascade {
namespace {

// Models are compared by a blended USD price per 1M tokens: three input tokens
// for every output token, the mix of typical chat traffic (and the convention
// of public model leaderboards). Neither price alone ranks models fairly:
// output is 2-8x dearer per token, but prompts are usually several times
// longer than answers. Cache discounts are left out: they depend on traffic.
double blended_price(const ModelInfo& model) {
  return (3.0 * model.price.input_per_mtok + model.price.output_per_mtok) / 4.0;
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

std::string heuristic_reason(double score, Preference preference, Tier wanted, const ModelInfo& chosen) {
  char buffer[160];
  const auto pref = to_string(preference);
  const auto tier = to_string(wanted);
  int written = std::snprintf(buffer, sizeof buffer, "heuristic score=%.2f pref=%.*s tier=%.*s", score,
                              static_cast<int>(pref.size()), pref.data(), static_cast<int>(tier.size()),
                              tier.data());
  std::string reason(buffer, static_cast<std::size_t>(std::max(written, 0)));
  if (chosen.tier != wanted) {
    reason += " (no ";
    reason += tier;
    reason += " model available: ";
    reason += to_string(chosen.tier);
    reason += ')';
  }
  return reason;
}

Tier tier_for_probability(double p_weak_ok, const ProbabilityThresholds& thresholds) {
  if (p_weak_ok >= thresholds.small_min) return Tier::small;
  if (p_weak_ok >= thresholds.medium_min) return Tier::medium;
  return Tier::large;
}

void append_unavailable(std::string& reason, Tier wanted, const ModelInfo& chosen) {
  if (chosen.tier == wanted) return;
  reason += " (no ";
  reason += to_string(wanted);
  reason += " model available: ";
  reason += to_string(chosen.tier);
  reason += ')';
}

// "learned p_weak_ok=0.83 pref=balanced small_min=0.80 tier=small": the
// scorer, its probability and the threshold that decided the tier.
std::string scorer_reason(ScorerKind kind, double p, Preference preference, const ProbabilityThresholds& t,
                          Tier wanted, const ModelInfo& chosen) {
  const auto name = to_string(kind);
  const auto pref = to_string(preference);
  const auto tier = to_string(wanted);
  const char* threshold_name = wanted == Tier::small ? "small_min" : "medium_min";
  const double threshold = wanted == Tier::small ? t.small_min : t.medium_min;
  const char* relation = wanted == Tier::large ? "<" : ">=";
  char buffer[200];
  int written = std::snprintf(buffer, sizeof buffer, "%.*s p_weak_ok=%.2f %s %s=%.2f pref=%.*s tier=%.*s",
                              static_cast<int>(name.size()), name.data(), p, relation, threshold_name, threshold,
                              static_cast<int>(pref.size()), pref.data(), static_cast<int>(tier.size()),
                              tier.data());
  std::string reason(buffer, static_cast<std::size_t>(std::max(written, 0)));
  append_unavailable(reason, wanted, chosen);
  return reason;
}

}  // namespace

Router::Router(RouterConfig config, const ModelCatalog& catalog, ProviderAvailable available)
    : Router(config, catalog, std::move(available), nullptr) {
  if (auto scorer = load_route_scorer(config_); !scorer) {
    scorer_problem_ = config_.scorer + " scorer unavailable: " + scorer.error().message;
  } else if ((*scorer)->kind() != ScorerKind::heuristic) {
    scorer_ = std::move(*scorer);
  }
}

Router::Router(RouterConfig config, const ModelCatalog& catalog, ProviderAvailable available,
               std::shared_ptr<const RouteScorer> scorer)
    : config_(std::move(config)), catalog_(catalog), available_(std::move(available)), scorer_(std::move(scorer)) {
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

std::vector<const ModelInfo*> Router::fallbacks_for(const ModelInfo& chosen) const {
  std::vector<const ModelInfo*> out;
  const auto max = static_cast<std::size_t>(std::max(config_.max_fallbacks, 0));
  auto add = [&](const ModelInfo* m) {
    if (out.size() >= max || m == nullptr || m == &chosen || !available_(m->provider)) return;
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
  if (chosen.tier != Tier::large) add(cheapest_in(static_cast<Tier>(index_of(chosen.tier) + 1)));
  return out;
}

Result<RouteDecision> Router::route(const PromptEvent& event) const {
  // Scored even when pinned: the ledger can then show what pinned traffic
  // would have been routed to.
  double score = 0;
  double p_weak_ok = 0;
  if (scorer_) {
    p_weak_ok = scorer_->score(event.messages).p_weak_ok;
    score = 1.0 - p_weak_ok;
  } else {
    score = score_complexity(event.messages).score;
  }

  if (event.pinned()) {
    const ModelInfo* model = catalog_.find(event.model);
    if (model == nullptr) return fail(ErrorCode::invalid_request, "unknown model '" + event.model + "'");
    if (!available_(model->provider))
      return fail(ErrorCode::unavailable, "model '" + model->id + "' is pinned but its provider '" +
                                              model->provider + "' is not available (not configured or no API key)");
    return RouteDecision{model, model->tier, score, "pinned"};
  }

  const Tier wanted = scorer_ ? tier_for_probability(p_weak_ok, probability_thresholds_for(event.preference))
                              : tier_for(score, thresholds_for(event.preference));
  for (const Tier tier : fallback_order(wanted)) {
    if (const ModelInfo* model = cheapest_in(tier)) {
      std::string reason = scorer_ ? scorer_reason(scorer_->kind(), p_weak_ok, event.preference,
                                                   probability_thresholds_for(event.preference), wanted, *model)
                                   : heuristic_reason(score, event.preference, wanted, *model);
      if (!scorer_problem_.empty()) reason += " (" + scorer_problem_ + ")";
      return RouteDecision{model, model->tier, score, std::move(reason), fallbacks_for(*model)};
    }
  }
  return fail(ErrorCode::unavailable, "no available provider serves any model in the catalog");
}

}  // namespace cascade
