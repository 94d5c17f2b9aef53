#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <type_traits>

namespace cascade {
namespace {

// Overlays `over` onto `base`: maps merge key by key, everything else replaces.
// `base` may be undefined (a key only the user file has, e.g. a new provider).
YAML::Node merge(const YAML::Node& base, const YAML::Node& over) {
  if (!base.IsDefined()) return YAML::Clone(over);
  if (!over.IsDefined() || over.IsNull()) return YAML::Clone(base);
  if (!base.IsMap() || !over.IsMap()) return YAML::Clone(over);
  YAML::Node out = YAML::Clone(base);
  for (const auto& kv : over) {
    const auto key = kv.first.as<std::string>();
    out[key] = merge(base[key], kv.second);
  }
  return out;
}

// Replaces every scalar leaf whose CASCADE_* variable is set.
void apply_env(YAML::Node node, const std::string& path, const EnvLookup& env) {
  if (node.IsMap()) {
    for (auto kv : node) {
      const auto key = kv.first.as<std::string>();
      apply_env(kv.second, path.empty() ? key : path + "." + key, env);
    }
    return;
  }
  if (path.empty()) return;
  if (auto value = env(env_name_for(path))) node = *value;
}

std::string trim(std::string s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

// Reads typed keys out of the merged tree, keeping the first error. A key's
// CASCADE_* variable is consulted even when the key is absent from the tree, so
// keys a user file leaves out (e.g. a new provider's timeouts) stay overridable.
class KeyReader {
 public:
  explicit KeyReader(const EnvLookup& env) : env_(env) {}

  template <class T>
  void read(const YAML::Node& parent, const char* key, T& out, const std::string& path) {
    if (!error_.empty()) return;
    const std::string key_path = path + "." + key;
    if (parent.IsDefined() && !parent.IsNull() && !parent.IsMap()) {
      error_ = "config key '" + path + "' must be a mapping";
      return;
    }
    const YAML::Node from_file = parent[key];
    std::optional<YAML::Node> from_env;
    if constexpr (std::is_arithmetic_v<T> || std::is_same_v<T, std::string>) {
      if (auto value = env_(env_name_for(key_path))) from_env = YAML::Node(*value);
    } else if constexpr (std::is_same_v<T, std::vector<std::string>> || std::is_same_v<T, std::vector<double>>) {
      // Lists from the environment are comma-separated.
      if (auto value = env_(env_name_for(key_path))) {
        YAML::Node list(YAML::NodeType::Sequence);
        std::stringstream ss(*value);
        for (std::string item; std::getline(ss, item, ',');) {
          if (auto t = trim(item); !t.empty()) list.push_back(t);
        }
        from_env = list;
      }
    }
    const YAML::Node& n = from_env ? *from_env : from_file;
    if (!n.IsDefined() || n.IsNull()) return;
    try {
      out = n.as<T>();
    } catch (const YAML::Exception&) {
      error_ = "config key '" + key_path + "' has the wrong type";
      if (from_env) error_ += " (from " + env_name_for(key_path) + ")";
    }
  }

  void read_thresholds(const YAML::Node& node, TierThresholds& t, const std::string& path) {
    read(node, "small_max", t.small_max, path);
    read(node, "medium_max", t.medium_max, path);
    if (error_.empty() && !(0 <= t.small_max && t.small_max <= t.medium_max && t.medium_max <= 1))
      error_ = "config '" + path + "': need 0 <= small_max <= medium_max <= 1";
  }

  const std::string& error() const { return error_; }

 private:
  const EnvLookup& env_;
  std::string error_;
};

// budgets.<tenant>: {daily_usd, monthly_usd, soft_percent, models: {<id>: limits}, tags: {<tag>: limits}}.
Result<void> read_budget_limits(const YAML::Node& node, KeyReader& r, BudgetLimitsConfig& out,
                                const std::string& path) {
  r.read(node, "daily_usd", out.daily_usd, path);
  r.read(node, "monthly_usd", out.monthly_usd, path);
  r.read(node, "soft_percent", out.soft_percent, path);
  if (!r.error().empty()) return {};
  if (!(out.daily_usd >= 0 && out.monthly_usd >= 0))
    return fail(ErrorCode::invalid_request, "config '" + path + "': limits must be >= 0");
  if (!(out.soft_percent > 0 && out.soft_percent <= 100))
    return fail(ErrorCode::invalid_request, "config '" + path + "': soft_percent must be in (0, 100]");
  return {};
}

Result<void> read_budgets(const YAML::Node& node, KeyReader& r, std::map<std::string, TenantBudgetConfig>& out) {
  if (!node.IsDefined() || node.IsNull()) return {};
  if (!node.IsMap()) return fail(ErrorCode::invalid_request, "config key 'budgets' must be a mapping");
  for (const auto& kv : node) {
    const std::string tenant = kv.first.as<std::string>();
    const std::string path = "budgets." + tenant;
    if (!kv.second.IsMap()) return fail(ErrorCode::invalid_request, "config key '" + path + "' must be a mapping");
    for (const auto& field : kv.second) {
      const std::string key = field.first.as<std::string>();
      if (key != "daily_usd" && key != "monthly_usd" && key != "soft_percent" && key != "models" && key != "tags")
        return fail(ErrorCode::invalid_request, "config '" + path + "': unknown key '" + key + "'");
    }
    TenantBudgetConfig budget;
    if (auto ok = read_budget_limits(kv.second, r, budget.limits, path); !ok) return ok;
    for (const char* group : {"models", "tags"}) {
      const YAML::Node scoped = kv.second[group];
      if (!scoped.IsDefined() || scoped.IsNull()) continue;
      if (!scoped.IsMap())
        return fail(ErrorCode::invalid_request, "config key '" + path + "." + group + "' must be a mapping");
      auto& into = std::string_view(group) == "models" ? budget.models : budget.tags;
      for (const auto& item : scoped) {
        const std::string name = item.first.as<std::string>();
        BudgetLimitsConfig limits;
        // A scoped budget's soft share defaults to its tenant's.
        limits.soft_percent = budget.limits.soft_percent;
        if (auto ok = read_budget_limits(item.second, r, limits, path + "." + group + "." + name); !ok) return ok;
        into[name] = limits;
      }
    }
    out[tenant] = std::move(budget);
  }
  return {};
}

// router.cascade and quality (model ids are checked against the catalog by the worker).
Result<void> validate_cascade_and_quality(const CascadeConfig& cascade, const QualityConfig& quality) {
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
  if (!(quality.sample_rate >= 0 && quality.sample_rate <= 1))
    return fail(ErrorCode::invalid_request, "config 'quality.sample_rate' must be within 0..1");
  if (quality.timeout_ms < 1 || quality.max_in_flight < 1)
    return fail(ErrorCode::invalid_request, "config 'quality': timeout_ms and max_in_flight must be >= 1");
  return {};
}

bool is_preference_name(const std::string& name) {
  return name == "cost" || name == "balanced" || name == "quality" || name == "speed";
}

Result<void> only_keys(const YAML::Node& node, std::initializer_list<std::string_view> keys, const std::string& path) {
  if (!node.IsMap()) return fail(ErrorCode::invalid_request, "config key '" + path + "' must be a mapping");
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    if (std::find(keys.begin(), keys.end(), key) == keys.end())
      return fail(ErrorCode::invalid_request, "config '" + path + "': unknown key '" + key + "'");
  }
  return {};
}

// A scalar as text ("" when absent or null), or an error naming the key.
Result<std::string> scalar_text(const YAML::Node& parent, const char* key, const std::string& path) {
  const YAML::Node n = parent[key];
  if (!n.IsDefined() || n.IsNull()) return std::string();
  if (!n.IsScalar()) return fail(ErrorCode::invalid_request, "config key '" + path + "." + key + "' must be a string");
  return n.Scalar();
}

// router.policies, router.rules and router.experiment (docs/routing.md,
// "Policies"). Model ids and regexes are the router's to check
// (compile_route_policies), as it has the catalog and PCRE2.
Result<void> read_router_policies(const YAML::Node& router, KeyReader& r, RouterConfig& out) {
  const auto policies = router["policies"];
  if (policies.IsDefined() && !policies.IsNull()) {
    if (!policies.IsMap()) return fail(ErrorCode::invalid_request, "config key 'router.policies' must be a mapping");
    for (const auto& kv : policies) {
      const std::string name = kv.first.as<std::string>();
      const std::string path = "router.policies." + name;
      if (name.empty() || name == "default" || name.find(':') != std::string::npos)
        return fail(ErrorCode::invalid_request,
                    "config '" + path + "': a policy name must be non-empty, without ':', and not 'default'");
      if (!kv.second.IsNull()) {
        if (auto ok = only_keys(kv.second, {"preference", "small_max", "medium_max", "small_min", "medium_min", "cost_aware"},
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
      if (!r.error().empty()) return {};
      if (cost_aware == "true") {
        policy.cost_aware = true;
      } else if (cost_aware == "false") {
        policy.cost_aware = false;
      } else if (!cost_aware.empty()) {
        return fail(ErrorCode::invalid_request,
                    "config '" + path + ".cost_aware': '" + cost_aware + "' is not true or false");
      }
      if (!policy.preference.empty() && !is_preference_name(policy.preference))
        return fail(ErrorCode::invalid_request, "config '" + path + ".preference': '" + policy.preference +
                                                    "' is not one of cost|balanced|quality|speed");
      if ((t.small_max == kUnset) != (t.medium_max == kUnset))
        return fail(ErrorCode::invalid_request, "config '" + path + "': small_max and medium_max go together");
      if (t.small_max != kUnset) {
        if (!(0 <= t.small_max && t.small_max <= t.medium_max && t.medium_max <= 1))
          return fail(ErrorCode::invalid_request, "config '" + path + "': need 0 <= small_max <= medium_max <= 1");
        policy.thresholds = t;
      }
      if ((p.small_min == kUnset) != (p.medium_min == kUnset))
        return fail(ErrorCode::invalid_request, "config '" + path + "': small_min and medium_min go together");
      if (p.small_min != kUnset) {
        if (!(0 <= p.medium_min && p.medium_min <= p.small_min && p.small_min <= 1))
          return fail(ErrorCode::invalid_request, "config '" + path + "': need 0 <= medium_min <= small_min <= 1");
        policy.probability = p;
      }
      out.policies[name] = std::move(policy);
    }
  }
  auto known_policy = [&](const std::string& name) { return name == "default" || out.policies.contains(name); };

  const auto rules = router["rules"];
  if (rules.IsDefined() && !rules.IsNull()) {
    if (!rules.IsSequence()) return fail(ErrorCode::invalid_request, "config key 'router.rules' must be a list");
    for (std::size_t i = 0; i < rules.size(); ++i) {
      const YAML::Node node = rules[i];
      const std::string path = "router.rules[" + std::to_string(i) + "]";
      if (auto ok = only_keys(node, {"name", "match", "model", "tier", "policy", "residency"}, path); !ok) return ok;
      RouteRuleConfig rule;
      for (auto [key, into] : {std::pair{"name", &rule.name}, std::pair{"model", &rule.model},
                               std::pair{"tier", &rule.tier}, std::pair{"policy", &rule.policy},
                               std::pair{"residency", &rule.residency}}) {
        auto text = scalar_text(node, key, path);
        if (!text) return std::unexpected(text.error());
        *into = std::move(*text);
      }
      const YAML::Node match = node["match"];
      const std::string match_path = path + ".match";
      if (!match.IsDefined() || match.IsNull())
        return fail(ErrorCode::invalid_request, "config '" + path + "': missing 'match'");
      if (auto ok = only_keys(match, {"tenant", "tag", "metadata", "prompt"}, match_path); !ok) return ok;
      for (auto [key, into] : {std::pair{"tenant", &rule.tenant}, std::pair{"tag", &rule.tag},
                               std::pair{"prompt", &rule.prompt}}) {
        auto text = scalar_text(match, key, match_path);
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
      if (rule.tenant.empty() && rule.tag.empty() && rule.metadata.empty() && rule.prompt.empty())
        return fail(ErrorCode::invalid_request,
                    "config '" + match_path + "': needs at least one of tenant, tag, metadata, prompt");
      const int actions = !rule.model.empty() + !rule.tier.empty() + !rule.policy.empty();
      if (actions > 1)
        return fail(ErrorCode::invalid_request, "config '" + path + "': model, tier and policy exclude each other");
      if (actions == 0 && rule.residency.empty())
        return fail(ErrorCode::invalid_request, "config '" + path + "': needs an action: model, tier, policy or residency");
      if (!rule.tier.empty() && rule.tier != "small" && rule.tier != "medium" && rule.tier != "large")
        return fail(ErrorCode::invalid_request,
                    "config '" + path + ".tier': '" + rule.tier + "' is not one of small|medium|large");
      if (!rule.policy.empty() && !known_policy(rule.policy))
        return fail(ErrorCode::invalid_request,
                    "config '" + path + ".policy': '" + rule.policy + "' is not in router.policies");
      out.rules.push_back(std::move(rule));
    }
  }

  const auto experiment = router["experiment"];
  if (experiment.IsDefined() && !experiment.IsNull()) {
    if (auto ok = only_keys(experiment, {"name", "policies", "split"}, "router.experiment"); !ok) return ok;
  }
  RouteExperimentConfig& e = out.experiment;
  r.read(experiment, "name", e.name, "router.experiment");
  r.read(experiment, "policies", e.policies, "router.experiment");
  r.read(experiment, "split", e.split, "router.experiment");
  if (!r.error().empty() || e.name.empty()) return {};
  if (e.name.find(':') != std::string::npos)
    return fail(ErrorCode::invalid_request, "config 'router.experiment.name' must not contain ':'");
  if (e.policies.size() != 2 || e.policies[0] == e.policies[1])
    return fail(ErrorCode::invalid_request, "config 'router.experiment.policies' must name two different policies");
  for (const auto& name : e.policies) {
    if (!known_policy(name))
      return fail(ErrorCode::invalid_request,
                  "config 'router.experiment.policies': '" + name + "' is not in router.policies");
  }
  if (!(e.split >= 0 && e.split <= 1))
    return fail(ErrorCode::invalid_request, "config 'router.experiment.split' must be within 0..1");
  return {};
}

Result<Config> read_config(const YAML::Node& root, const EnvLookup& env) {
  Config c;
  KeyReader r(env);
  const auto k = root["kafka"];
  r.read(k, "bootstrap", c.kafka.bootstrap, "kafka");
  r.read(k, "partitions", c.kafka.partitions, "kafka");
  r.read(k, "fetch_wait_max_ms", c.kafka.fetch_wait_max_ms, "kafka");
  r.read(k, "linger_ms", c.kafka.linger_ms, "kafka");
  r.read(k, "worker_group", c.kafka.worker_group, "kafka");
  r.read(k, "ledger_group", c.kafka.ledger_group, "kafka");
  r.read(k, "extra", c.kafka.extra, "kafka");
  if (r.error().empty()) {
    const auto topics = k["topics"];
    r.read(topics, "requests", c.kafka.requests_topic, "kafka.topics");
    r.read(topics, "ledger", c.kafka.ledger_topic, "kafka.topics");
    r.read(topics, "dlq", c.kafka.dlq_topic, "kafka.topics");
    r.read(topics, "replies", c.kafka.replies_topic, "kafka.topics");
    r.read(topics, "cache_changelog", c.kafka.cache_changelog_topic, "kafka.topics");
    r.read(topics, "budgets", c.kafka.budgets_topic, "kafka.topics");
    r.read(topics, "spend", c.kafka.spend_topic, "kafka.topics");
    r.read(topics, "alerts", c.kafka.alerts_topic, "kafka.topics");
    r.read(topics, "quality", c.kafka.quality_topic, "kafka.topics");
  }

  const auto w = root["worker"];
  r.read(w, "threads", c.worker.threads, "worker");
  r.read(w, "max_in_flight", c.worker.max_in_flight, "worker");
  r.read(w, "resume_fraction", c.worker.resume_fraction, "worker");
  r.read(w, "commit_interval_ms", c.worker.commit_interval_ms, "worker");
  r.read(w, "metrics_listen", c.worker.metrics_listen, "worker");

  r.read(root["limits"], "max_event_bytes", c.limits.max_event_bytes, "limits");
  r.read(root["limits"], "default_max_tokens", c.limits.default_max_tokens, "limits");
  r.read(root["limits"], "budget_settle_ms", c.limits.budget_settle_ms, "limits");
  r.read(root["limits"], "budget_max_state_age_ms", c.limits.budget_max_state_age_ms, "limits");
  if (r.error().empty() && (c.limits.budget_settle_ms < 0 || c.limits.budget_max_state_age_ms < 0))
    return fail(ErrorCode::invalid_request, "config 'limits': budget_settle_ms and budget_max_state_age_ms must be >= 0");
  r.read(root["tokenizer"], "dir", c.tokenizer.dir, "tokenizer");
  const auto state = root["state"];
  r.read(state, "dir", c.state.dir, "state");
  r.read(state, "max_bytes", c.state.max_bytes, "state");
  r.read(state, "completed_ttl_s", c.state.completed_ttl_s, "state");
  r.read(state, "responses_ttl_s", c.state.responses_ttl_s, "state");
  r.read(state, "embeddings_ttl_s", c.state.embeddings_ttl_s, "state");
  r.read(state, "vectors_ttl_s", c.state.vectors_ttl_s, "state");
  r.read(state, "maintenance_interval_ms", c.state.maintenance_interval_ms, "state");
  r.read(state, "replicated", c.state.replicated, "state");
  r.read(state, "restore_timeout_ms", c.state.restore_timeout_ms, "state");
  const auto cache = root["cache"];
  r.read(cache, "enabled", c.cache.enabled, "cache");
  r.read(cache, "version", c.cache.version, "cache");
  r.read(cache, "max_temperature", c.cache.max_temperature, "cache");
  r.read(cache, "replay_chunk_bytes", c.cache.replay_chunk_bytes, "cache");
  r.read(cache["semantic"], "threshold", c.cache.semantic.threshold, "cache.semantic");
  r.read(cache["semantic"], "verify", c.cache.semantic.verify, "cache.semantic");
  // Rule names and values are the cache's to check (set_verifier_option).
  r.read(cache["semantic"], "verifier", c.cache.semantic.verifier, "cache.semantic");
  if (r.error().empty()) {
    const auto embedder = cache["semantic"]["embedder"];
    const std::string path = "cache.semantic.embedder";
    EmbedderConfig& e = c.cache.semantic.embedder;
    r.read(embedder, "kind", e.kind, path);
    r.read(embedder, "base_url", e.base_url, path);
    r.read(embedder, "model", e.model, path);
    r.read(embedder, "api_key_env", e.api_key_env, path);
    r.read(embedder, "dimension", e.dimension, path);
    r.read(embedder, "timeout_ms", e.timeout_ms, path);
    r.read(embedder, "connect_timeout_ms", e.connect_timeout_ms, path);
  }
  r.read(root["catalog"], "file", c.catalog.file, "catalog");
  r.read(root["catalog"], "baseline_model", c.catalog.baseline_model, "catalog");

  const auto router = root["router"];
  if (router.IsDefined() && !router.IsNull() && !router.IsMap())
    return fail(ErrorCode::invalid_request, "config key 'router' must be a mapping");
  if (r.error().empty()) {
    r.read_thresholds(router["balanced"], c.router.balanced, "router.balanced");
    r.read_thresholds(router["cost"], c.router.cost, "router.cost");
    r.read_thresholds(router["quality"], c.router.quality, "router.quality");
    r.read_thresholds(router["speed"], c.router.speed, "router.speed");
    r.read(router, "max_fallbacks", c.router.max_fallbacks, "router");
    for (const char* tier : {"small", "medium", "large"}) {
      std::vector<std::string> chain;
      r.read(router["fallbacks"], tier, chain, "router.fallbacks");
      if (!chain.empty()) c.router.fallbacks[tier] = std::move(chain);
    }
    r.read(router, "scorer", c.router.scorer, "router");
    r.read(router, "model_file", c.router.model_file, "router");
    const auto cascade = router["cascade"];
    r.read(cascade, "enabled", c.router.cascade.enabled, "router.cascade");
    r.read(cascade, "preferences", c.router.cascade.preferences, "router.cascade");
    r.read(cascade, "judge_model", c.router.cascade.judge_model, "router.cascade");
    r.read(cascade, "min_judge_score", c.router.cascade.min_judge_score, "router.cascade");
    r.read(cascade, "judge_timeout_ms", c.router.cascade.judge_timeout_ms, "router.cascade");
    r.read(cascade, "max_buffer_bytes", c.router.cascade.max_buffer_bytes, "router.cascade");
    r.read(cascade, "verifier_file", c.router.cascade.verifier_file, "router.cascade");
    r.read(cascade, "min_verifier_p", c.router.cascade.min_verifier_p, "router.cascade");
    r.read(cascade, "agreement_model", c.router.cascade.agreement_model, "router.cascade");
    if (r.error().empty() && !(c.router.cascade.min_verifier_p >= 0 && c.router.cascade.min_verifier_p <= 1))
      return fail(ErrorCode::invalid_request, "config 'router.cascade.min_verifier_p' must be within 0..1");
    const auto cost_aware = router["cost_aware"];
    r.read(cost_aware, "enabled", c.router.cost_aware.enabled, "router.cost_aware");
    r.read(cost_aware, "reference_input_tokens", c.router.cost_aware.reference_input_tokens, "router.cost_aware");
    r.read(cost_aware, "expected_output_tokens", c.router.cost_aware.expected_output_tokens, "router.cost_aware");
    if (r.error().empty() &&
        !(c.router.cost_aware.reference_input_tokens > 0 && c.router.cost_aware.expected_output_tokens > 0))
      return fail(ErrorCode::invalid_request,
                  "config 'router.cost_aware': reference_input_tokens and expected_output_tokens must be > 0");
    const std::pair<const char*, ProbabilityThresholds*> probability_by_preference[] = {
        {"balanced", &c.router.balanced_p},
        {"cost", &c.router.cost_p},
        {"quality", &c.router.quality_p},
        {"speed", &c.router.speed_p}};
    for (const auto& [preference, t] : probability_by_preference) {
      const std::string path = std::string("router.probability.") + preference;
      r.read(router["probability"][preference], "small_min", t->small_min, path);
      r.read(router["probability"][preference], "medium_min", t->medium_min, path);
      if (r.error().empty() && !(0 <= t->medium_min && t->medium_min <= t->small_min && t->small_min <= 1))
        return fail(ErrorCode::invalid_request, "config '" + path + "': need 0 <= medium_min <= small_min <= 1");
    }
    if (r.error().empty() && c.router.scorer != "heuristic" && c.router.scorer != "learned" &&
        c.router.scorer != "knn")
      return fail(ErrorCode::invalid_request,
                  "router.scorer must be heuristic, learned or knn, not '" + c.router.scorer + "'");
    if (r.error().empty()) {
      if (auto ok = read_router_policies(router, r, c.router); !ok) return std::unexpected(ok.error());
    }
  }

  const auto resilience = root["resilience"];
  r.read(resilience["retry"], "max_retries", c.resilience.retry.max_retries, "resilience.retry");
  r.read(resilience["retry"], "backoff_base_ms", c.resilience.retry.backoff_base_ms, "resilience.retry");
  r.read(resilience["retry"], "backoff_cap_ms", c.resilience.retry.backoff_cap_ms, "resilience.retry");
  r.read(resilience["retry"], "max_retry_after_ms", c.resilience.retry.max_retry_after_ms, "resilience.retry");
  r.read(resilience["breaker"], "window", c.resilience.breaker.window, "resilience.breaker");
  r.read(resilience["breaker"], "min_calls", c.resilience.breaker.min_calls, "resilience.breaker");
  r.read(resilience["breaker"], "failure_rate", c.resilience.breaker.failure_rate, "resilience.breaker");
  r.read(resilience["breaker"], "open_ms", c.resilience.breaker.open_ms, "resilience.breaker");

  if (const auto p = root["providers"]; p.IsMap()) {
    for (const auto& kv : p) {
      ProviderConfig pc;
      pc.name = kv.first.as<std::string>();
      const std::string path = "providers." + pc.name;
      r.read(kv.second, "kind", pc.kind, path);
      r.read(kv.second, "base_url", pc.base_url, path);
      r.read(kv.second, "api_key_env", pc.api_key_env, path);
      r.read(kv.second, "connect_timeout_ms", pc.connect_timeout_ms, path);
      r.read(kv.second, "first_token_timeout_ms", pc.first_token_timeout_ms, path);
      r.read(kv.second, "idle_timeout_ms", pc.idle_timeout_ms, path);
      r.read(kv.second, "max_concurrency", pc.max_concurrency, path);
      r.read(kv.second, "queue_timeout_ms", pc.queue_timeout_ms, path);
      r.read(kv.second, "request_timeout_ms", pc.request_timeout_ms, path);
      r.read(kv.second, "headers", pc.headers, path);
      c.providers[pc.name] = std::move(pc);
    }
  } else if (p.IsDefined() && !p.IsNull()) {
    return fail(ErrorCode::invalid_request, "config key 'providers' must be a mapping");
  }
  // The official OpenAI SDKs honour OPENAI_BASE_URL; so do we, unless the
  // Cascade-specific variable is set.
  if (auto it = c.providers.find("openai"); it != c.providers.end()) {
    if (!env(env_name_for("providers.openai.base_url"))) {
      if (auto url = env("OPENAI_BASE_URL"); url && !url->empty()) it->second.base_url = *url;
    }
  }

  if (const auto t = root["tenants"]; t.IsMap()) {
    for (const auto& kv : t) {
      TenantLimits limits;
      const std::string name = kv.first.as<std::string>();
      const std::string path = "tenants." + name;
      r.read(kv.second, "requests_per_second", limits.requests_per_second, path);
      r.read(kv.second, "tokens_per_minute", limits.tokens_per_minute, path);
      r.read(kv.second, "max_wait_ms", limits.max_wait_ms, path);
      r.read(kv.second, "semantic_threshold", limits.semantic_threshold, path);
      r.read(kv.second, "semantic_verify", limits.semantic_verify, path);
      r.read(kv.second, "semantic_verifier", limits.semantic_verifier, path);
      // The built-in defaults name every rule under cache.semantic.verifier,
      // so each rule of a tenant is overridable from the environment even
      // when no file sets it.
      for (const auto& rule : c.cache.semantic.verifier) {
        if (auto from_env = env(env_name_for(path + ".semantic_verifier." + rule.first)))
          limits.semantic_verifier[rule.first] = *from_env;
      }
      if (limits.requests_per_second < 0 || limits.tokens_per_minute < 0)
        return fail(ErrorCode::invalid_request, "config '" + path + "': limits must be >= 0");
      c.tenants[name] = limits;
    }
  } else if (t.IsDefined() && !t.IsNull()) {
    return fail(ErrorCode::invalid_request, "config key 'tenants' must be a mapping");
  }
  c.tenants.try_emplace("default");

  r.read(root["ledger"], "metrics_listen", c.ledger.metrics_listen, "ledger");
  r.read(root["ledger"], "dir", c.ledger.dir, "ledger");
  r.read(root["ledger"], "dedupe_ttl_days", c.ledger.dedupe_ttl_days, "ledger");
  r.read(root["ledger"], "batch_max_events", c.ledger.batch_max_events, "ledger");
  r.read(root["ledger"], "spend_heartbeat_ms", c.ledger.spend_heartbeat_ms, "ledger");
  if (r.error().empty()) {
    if (auto ok = read_budgets(root["budgets"], r, c.budgets); !ok) return std::unexpected(ok.error());
  }
  const auto alerts = root["alerts"];
  r.read(alerts, "thresholds_percent", c.alerts.thresholds_percent, "alerts");
  r.read(alerts, "webhook_url", c.alerts.webhook_url, "alerts");
  r.read(alerts, "webhook_url_env", c.alerts.webhook_url_env, "alerts");
  r.read(alerts, "webhook_timeout_ms", c.alerts.webhook_timeout_ms, "alerts");
  r.read(alerts, "webhook_max_attempts", c.alerts.webhook_max_attempts, "alerts");
  r.read(alerts, "webhook_backoff_base_ms", c.alerts.webhook_backoff_base_ms, "alerts");
  r.read(alerts, "webhook_backoff_cap_ms", c.alerts.webhook_backoff_cap_ms, "alerts");
  if (r.error().empty()) {
    for (double t : c.alerts.thresholds_percent) {
      if (!(t > 0 && t <= 1000))
        return fail(ErrorCode::invalid_request, "config 'alerts.thresholds_percent': each must be in (0, 1000]");
    }
    if (c.alerts.webhook_max_attempts < 1 || c.alerts.webhook_timeout_ms < 1 ||
        c.alerts.webhook_backoff_base_ms < 0 || c.alerts.webhook_backoff_cap_ms < c.alerts.webhook_backoff_base_ms)
      return fail(ErrorCode::invalid_request,
                  "config 'alerts': need webhook_max_attempts >= 1, webhook_timeout_ms >= 1 and "
                  "0 <= webhook_backoff_base_ms <= webhook_backoff_cap_ms");
    if (c.ledger.dedupe_ttl_days < 1 || c.ledger.batch_max_events < 1 || c.ledger.spend_heartbeat_ms < 1)
      return fail(ErrorCode::invalid_request,
                  "config 'ledger': dedupe_ttl_days, batch_max_events and spend_heartbeat_ms must be >= 1");
  }
  r.read(root["log"], "level", c.log.level, "log");
  r.read(root["quality"], "sample_rate", c.quality.sample_rate, "quality");
  r.read(root["quality"], "judge_model", c.quality.judge_model, "quality");
  r.read(root["quality"], "timeout_ms", c.quality.timeout_ms, "quality");
  r.read(root["quality"], "max_in_flight", c.quality.max_in_flight, "quality");
  if (r.error().empty()) {
    if (auto ok = validate_cascade_and_quality(c.router.cascade, c.quality); !ok) return std::unexpected(ok.error());
  }

  if (!r.error().empty()) return fail(ErrorCode::invalid_request, r.error());
  if (c.kafka.partitions < 1) return fail(ErrorCode::invalid_request, "kafka.partitions must be >= 1");
  if (c.worker.threads < 1) return fail(ErrorCode::invalid_request, "worker.threads must be >= 1");
  if (c.resilience.retry.max_retries < 0 || c.router.max_fallbacks < 0)
    return fail(ErrorCode::invalid_request, "resilience.retry.max_retries and router.max_fallbacks must be >= 0");
  if (c.resilience.breaker.window < 1 || !(0 < c.resilience.breaker.failure_rate && c.resilience.breaker.failure_rate <= 1))
    return fail(ErrorCode::invalid_request, "resilience.breaker: need window >= 1 and 0 < failure_rate <= 1");
  if (c.worker.max_in_flight < 1) return fail(ErrorCode::invalid_request, "worker.max_in_flight must be >= 1");
  // Outside [0, 1] a paused worker would never resume (or never stay paused).
  if (!(0 <= c.worker.resume_fraction && c.worker.resume_fraction <= 1))
    return fail(ErrorCode::invalid_request, "worker.resume_fraction must be within 0..1");
  if (const EmbedderConfig& e = c.cache.semantic.embedder; e.kind != "builtin" && e.kind != "openai") {
    return fail(ErrorCode::invalid_request,
                "cache.semantic.embedder.kind must be builtin or openai, not '" + e.kind + "'");
  } else if (e.kind == "openai" && (e.base_url.empty() || e.model.empty())) {
    return fail(ErrorCode::invalid_request, "cache.semantic.embedder: kind openai needs base_url and model");
  } else if (e.timeout_ms < 1 || e.connect_timeout_ms < 1) {
    return fail(ErrorCode::invalid_request,
                "cache.semantic.embedder.timeout_ms and connect_timeout_ms must be >= 1");
  }
  // librdkafka reads 0 as "never commit": offsets would never be committed.
  if (c.worker.commit_interval_ms < 1)
    return fail(ErrorCode::invalid_request, "worker.commit_interval_ms must be >= 1");
  return c;
}

}  // namespace

const TenantLimits& Config::limits_for(const std::string& tenant) const {
  if (auto it = tenants.find(tenant); it != tenants.end()) return it->second;
  static const TenantLimits unlimited;
  auto it = tenants.find("default");
  return it != tenants.end() ? it->second : unlimited;
}

std::vector<std::pair<std::string, std::string>> KafkaConfig::extra_properties() const {
  std::vector<std::pair<std::string, std::string>> out;
  std::stringstream ss(extra);
  std::string item;
  while (std::getline(ss, item, ';')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) continue;
    // "a=1; b=2" is how people write lists: spaces are not part of a property.
    auto key = trim(item.substr(0, eq));
    if (key.empty()) continue;
    out.emplace_back(std::move(key), trim(item.substr(eq + 1)));
  }
  return out;
}

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    if (const char* v = std::getenv(name.c_str())) return std::string(v);
    return std::nullopt;
  };
}

std::string env_name_for(std::string_view key_path) {
  std::string out = "CASCADE_";
  for (char c : key_path) {
    out.push_back(c == '.' || c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  return out;
}

Result<Config> load_config(const std::string& yaml_file, const EnvLookup& env) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(default_config_yaml()));
    if (!yaml_file.empty()) {
      std::error_code ec;
      // An ifstream opens a directory fine and reads nothing: say so instead
      // of silently running on defaults.
      if (std::filesystem::is_directory(yaml_file, ec))
        return fail(ErrorCode::invalid_request, "cannot read config file " + yaml_file + ": is a directory");
      std::ifstream in(yaml_file);
      if (!in) return fail(ErrorCode::invalid_request, "cannot read config file " + yaml_file);
      std::stringstream buf;
      buf << in.rdbuf();
      root = merge(root, YAML::Load(buf.str()));
      if (!root.IsMap())
        return fail(ErrorCode::invalid_request, "config file " + yaml_file + " must be a mapping of keys");
    }
    apply_env(root, "", env);
    return read_config(root, env);
  } catch (const YAML::Exception& e) {
    const std::string where = yaml_file.empty() ? std::string("built-in defaults") : yaml_file;
    return fail(ErrorCode::invalid_request, "invalid YAML in " + where + ": " + e.what());
  }
}

}  // namespace cascade
