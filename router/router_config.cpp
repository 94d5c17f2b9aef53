#include "router/router_config.h"

namespace cascade {
namespace {

// router.cascade (model ids are checked against the catalog when the worker starts).
Result<void> validate_cascade(const CascadeConfig& cascade) {
  for (const auto& preference : cascade.preferences) {
    if (preference != "cost" && preference != "balanced" && preference != "quality" && preference != "speed")
      return fail(ErrorCode::invalid_request, "config 'router.cascade.preferences': '" + preference +
                                                  "' is not one of cost|balanced|quality|speed");
  }
  if (!(cascade.min_judge_score >= 1 && cascade.min_judge_score <= 5))
    return fail(ErrorCode::invalid_request, "config 'router.cascade.min_judge_score' must be within 1..5");
  if (cascade.judge_timeout_ms < 1 || cascade.max_buffer_bytes < 1)
    return fail(ErrorCode::invalid_request,
                "config 'router.cascade': judge_timeout_ms and max_buffer_bytes must be >= 1");
  return {};
}

bool is_preference_name(const std::string& name) {
  return name == "cost" || name == "balanced" || name == "quality" || name == "speed";
}

// router.policies, router.rules and router.experiment (docs/routing.md,
// "Policies"). Model ids and regexes are the router's to check
// (compile_route_policies), as it has the catalog and PCRE2.
Result<void> read_router_policies(const YAML::Node& router, ConfigReader& r, RouterConfig& out) {
  const auto policies = router["policies"];
  if (policies.IsDefined() && !policies.IsNull()) {
    if (!policies.IsMap()) return fail(ErrorCode::invalid_request, "config key 'router.policies' must be a mapping");
    for (const auto& kv : policies) {
      const std::string name = kv.first.as<std::string>();
      const std::string path = "router.policies." + name;
      if (!kv.second.IsNull()) {
        if (auto ok = r.only_keys(kv.second, {"preference", "small_max", "medium_max", "small_min", "medium_min", "cost_aware"},
                             path);
            !ok)
          return ok;
      }
      RoutePolicyConfig policy;
      constexpr double kUnset = -1;
      TierThresholds t{kUnset, kUnset};
      ProbabilityThresholds p{kUnset, kUnset};
      r.read(kv.second, "preference", policy.preference, path);
      r.read(kv.second, "small_max", t.small_max, path);
      r.read(kv.second, "medium_max", t.medium_max, path);
      r.read(kv.second, "small_min", p.small_min, path);
      r.read(kv.second, "medium_min", p.medium_min, path);
      std::string cost_aware;  // text, so that unset stays distinguishable from false
      r.read(kv.second, "cost_aware", cost_aware, path);
      if (auto ok = r.status(); !ok) return ok;
      if (cost_aware == "true") {
        policy.cost_aware = true;
      } else if (cost_aware == "false") {
        policy.cost_aware = false;
      } else if (!cost_aware.empty()) {
        return fail(ErrorCode::invalid_request,
                    "config '" + path + ".cost_aware': '" + cost_aware + "' is not true or false");
      }
      if ((t.small_max == kUnset) != (t.medium_max == kUnset))
        return fail(ErrorCode::invalid_request, "config '" + path + "': small_max and medium_max go together");
      if (t.small_max != kUnset) policy.thresholds = t;
      if ((p.small_min == kUnset) != (p.medium_min == kUnset))
        return fail(ErrorCode::invalid_request, "config '" + path + "': small_min and medium_min go together");
      if (p.small_min != kUnset) policy.probability = p;
      out.policies[name] = std::move(policy);
    }
  }
  const auto rules = router["rules"];
  if (rules.IsDefined() && !rules.IsNull()) {
    if (!rules.IsSequence()) return fail(ErrorCode::invalid_request, "config key 'router.rules' must be a list");
    for (std::size_t i = 0; i < rules.size(); ++i) {
      const YAML::Node node = rules[i];
      const std::string path = "router.rules[" + std::to_string(i) + "]";
      if (auto ok = r.only_keys(node, {"name", "match", "model", "tier", "policy", "residency"}, path); !ok) return ok;
      RouteRuleConfig rule;
      for (auto [key, into] : {std::pair{"name", &rule.name}, std::pair{"model", &rule.model},
                               std::pair{"tier", &rule.tier}, std::pair{"policy", &rule.policy},
                               std::pair{"residency", &rule.residency}}) {
        auto text = r.scalar_text(node, key, path);
        if (!text) return std::unexpected(text.error());
        *into = std::move(*text);
      }
      const YAML::Node match = node["match"];
      const std::string match_path = path + ".match";
      if (!match.IsDefined() || match.IsNull())
        return fail(ErrorCode::invalid_request, "config '" + path + "': missing 'match'");
      if (auto ok = r.only_keys(match, {"tenant", "tag", "metadata", "prompt"}, match_path); !ok) return ok;
      for (auto [key, into] : {std::pair{"tenant", &rule.tenant}, std::pair{"tag", &rule.tag},
                               std::pair{"prompt", &rule.prompt}}) {
        auto text = r.scalar_text(match, key, match_path);
        if (!text) return std::unexpected(text.error());
        *into = std::move(*text);
      }
      if (const YAML::Node metadata = match["metadata"]; metadata.IsDefined() && !metadata.IsNull()) {
        if (!metadata.IsMap())
          return fail(ErrorCode::invalid_request, "config key '" + match_path + ".metadata' must be a mapping");
        for (const auto& kv : metadata) {
          const std::string key = kv.first.as<std::string>();
          if (!kv.second.IsScalar())
            return fail(ErrorCode::invalid_request,
                        "config key '" + match_path + ".metadata." + key + "' must be a string, number or boolean");
          rule.metadata[key] = kv.second.Scalar();
        }
      }
      out.rules.push_back(std::move(rule));
    }
  }

  const auto experiment = router["experiment"];
  if (experiment.IsDefined() && !experiment.IsNull()) {
    if (auto ok = r.only_keys(experiment, {"name", "policies", "split"}, "router.experiment"); !ok) return ok;
  }
  RouteExperimentConfig& e = out.experiment;
  r.read(experiment, "name", e.name, "router.experiment");
  r.read(experiment, "policies", e.policies, "router.experiment");
  r.read(experiment, "split", e.split, "router.experiment");
  return r.status();
}

}  // namespace

Result<RouterConfig> read_router_config(ConfigReader& r) {
  RouterConfig c;
  const auto router = r.root()["router"];
  if (router.IsDefined() && !router.IsNull() && !router.IsMap())
    return fail(ErrorCode::invalid_request, "config key 'router' must be a mapping");
  for (auto [name, t] : {std::pair{"balanced", &c.balanced}, std::pair{"cost", &c.cost},
                         std::pair{"quality", &c.quality}, std::pair{"speed", &c.speed}}) {
    const std::string path = std::string("router.") + name;
    r.read(router[name], "small_max", t->small_max, path);
    r.read(router[name], "medium_max", t->medium_max, path);
  }
  r.read(router, "max_fallbacks", c.max_fallbacks, "router");
  for (const char* tier : {"small", "medium", "large"}) {
    std::vector<std::string> chain;
    r.read(router["fallbacks"], tier, chain, "router.fallbacks");
    if (!chain.empty()) c.fallbacks[tier] = std::move(chain);
  }
  r.read(router, "scorer", c.scorer, "router");
  r.read(router, "model_file", c.model_file, "router");
  const auto cascade = router["cascade"];
  r.read(cascade, "enabled", c.cascade.enabled, "router.cascade");
  r.read(cascade, "preferences", c.cascade.preferences, "router.cascade");
  r.read(cascade, "judge_model", c.cascade.judge_model, "router.cascade");
  r.read(cascade, "min_judge_score", c.cascade.min_judge_score, "router.cascade");
  r.read(cascade, "judge_timeout_ms", c.cascade.judge_timeout_ms, "router.cascade");
  r.read(cascade, "max_buffer_bytes", c.cascade.max_buffer_bytes, "router.cascade");
  r.read(cascade, "verifier_file", c.cascade.verifier_file, "router.cascade");
  r.read(cascade, "min_verifier_p", c.cascade.min_verifier_p, "router.cascade");
  r.read(cascade, "agreement_model", c.cascade.agreement_model, "router.cascade");
  const auto cost_aware = router["cost_aware"];
  r.read(cost_aware, "enabled", c.cost_aware.enabled, "router.cost_aware");
  r.read(cost_aware, "reference_input_tokens", c.cost_aware.reference_input_tokens, "router.cost_aware");
  r.read(cost_aware, "expected_output_tokens", c.cost_aware.expected_output_tokens, "router.cost_aware");
  for (auto [name, t] : {std::pair{"balanced", &c.balanced_p}, std::pair{"cost", &c.cost_p},
                         std::pair{"quality", &c.quality_p}, std::pair{"speed", &c.speed_p}}) {
    const std::string path = std::string("router.probability.") + name;
    r.read(router["probability"][name], "small_min", t->small_min, path);
    r.read(router["probability"][name], "medium_min", t->medium_min, path);
  }
  if (auto ok = r.status(); !ok) return std::unexpected(ok.error());
  if (auto ok = read_router_policies(router, r, c); !ok) return std::unexpected(ok.error());
  if (auto ok = validate_router_config(c); !ok) return std::unexpected(ok.error());
  return c;
}

Result<void> validate_router_config(const RouterConfig& c) {
  const auto invalid = [](std::string message) { return fail(ErrorCode::invalid_request, std::move(message)); };
  for (auto [name, t] : {std::pair{"balanced", &c.balanced}, std::pair{"cost", &c.cost},
                         std::pair{"quality", &c.quality}, std::pair{"speed", &c.speed}}) {
    if (!(0 <= t->small_max && t->small_max <= t->medium_max && t->medium_max <= 1))
      return invalid(std::string("config 'router.") + name + "': need 0 <= small_max <= medium_max <= 1");
  }
  for (auto [name, t] : {std::pair{"balanced", &c.balanced_p}, std::pair{"cost", &c.cost_p},
                         std::pair{"quality", &c.quality_p}, std::pair{"speed", &c.speed_p}}) {
    if (!(0 <= t->medium_min && t->medium_min <= t->small_min && t->small_min <= 1))
      return invalid(std::string("config 'router.probability.") + name + "': need 0 <= medium_min <= small_min <= 1");
  }
  if (c.scorer != "heuristic" && c.scorer != "learned" && c.scorer != "knn")
    return invalid("router.scorer must be heuristic, learned or knn, not '" + c.scorer + "'");
  if (c.max_fallbacks < 0) return invalid("router.max_fallbacks must be >= 0");
  if (!(c.cascade.min_verifier_p >= 0 && c.cascade.min_verifier_p <= 1))
    return invalid("config 'router.cascade.min_verifier_p' must be within 0..1");
  if (auto ok = validate_cascade(c.cascade); !ok) return ok;
  if (!(c.cost_aware.reference_input_tokens > 0 && c.cost_aware.expected_output_tokens > 0))
    return invalid("config 'router.cost_aware': reference_input_tokens and expected_output_tokens must be > 0");
  // Ranges of a policy's thresholds, as of the router's own (code may force
  // a tier with thresholds outside them; a file may not).
  for (const auto& [name, policy] : c.policies) {
    const std::string path = "router.policies." + name;
    if (const auto& t = policy.thresholds; t && !(0 <= t->small_max && t->small_max <= t->medium_max && t->medium_max <= 1))
      return invalid("config '" + path + "': need 0 <= small_max <= medium_max <= 1");
    if (const auto& p = policy.probability;
        p && !(0 <= p->medium_min && p->medium_min <= p->small_min && p->small_min <= 1))
      return invalid("config '" + path + "': need 0 <= medium_min <= small_min <= 1");
  }
  return validate_route_policy_config(c);
}

Result<void> validate_route_policy_config(const RouterConfig& c) {
  const auto invalid = [](std::string message) { return fail(ErrorCode::invalid_request, std::move(message)); };
  for (const auto& [name, policy] : c.policies) {
    const std::string path = "router.policies." + name;
    if (name.empty() || name == "default" || name.find(':') != std::string::npos)
      return invalid("config '" + path + "': a policy name must be non-empty, without ':', and not 'default'");
    if (!policy.preference.empty() && !is_preference_name(policy.preference))
      return invalid("config '" + path + ".preference': '" + policy.preference +
                     "' is not one of cost|balanced|quality|speed");
  }
  const auto known_policy = [&](const std::string& name) { return name == "default" || c.policies.contains(name); };
  for (std::size_t i = 0; i < c.rules.size(); ++i) {
    const RouteRuleConfig& rule = c.rules[i];
    const std::string path = "router.rules[" + std::to_string(i) + "]";
    if (rule.tenant.empty() && rule.tag.empty() && rule.metadata.empty() && rule.prompt.empty())
      return invalid("config '" + path + ".match': needs at least one of tenant, tag, metadata, prompt");
    const int actions = !rule.model.empty() + !rule.tier.empty() + !rule.policy.empty();
    if (actions > 1) return invalid("config '" + path + "': model, tier and policy exclude each other");
    if (actions == 0 && rule.residency.empty())
      return invalid("config '" + path + "': needs an action: model, tier, policy or residency");
    if (!rule.tier.empty() && rule.tier != "small" && rule.tier != "medium" && rule.tier != "large")
      return invalid("config '" + path + ".tier': '" + rule.tier + "' is not one of small|medium|large");
    if (!rule.policy.empty() && !known_policy(rule.policy))
      return invalid("config '" + path + ".policy': '" + rule.policy + "' is not in router.policies");
  }
  const RouteExperimentConfig& e = c.experiment;
  if (e.name.empty()) return {};
  if (e.name.find(':') != std::string::npos) return invalid("config 'router.experiment.name' must not contain ':'");
  if (e.policies.size() != 2 || e.policies[0] == e.policies[1])
    return invalid("config 'router.experiment.policies' must name two different policies");
  for (const auto& name : e.policies) {
    if (!known_policy(name))
      return invalid("config 'router.experiment.policies': '" + name + "' is not in router.policies");
  }
  if (!(e.split >= 0 && e.split <= 1)) return invalid("config 'router.experiment.split' must be within 0..1");
  return {};
}

}  // namespace cascade
