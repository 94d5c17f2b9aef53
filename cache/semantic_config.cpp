// The semantic cache options of a configuration (config/cascade.yaml:
// cache.semantic and tenants.<name>.semantic_*).
#include "cache/semantic.h"
#include "config/config.h"

namespace cascade {
namespace {

// Applies name -> value rules in order; the error names the key they came from.
Result<void> apply_verifier_rules(VerifierOptions& options, const std::map<std::string, std::string>& rules,
                                  const std::string& path) {
  for (const auto& [name, value] : rules) {
    if (auto ok = set_verifier_option(options, name, value); !ok) {
      return fail(ErrorCode::invalid_request,
                  "config key '" + path + "." + name + "': " + ok.error().message + " (got '" + value + "')");
    }
  }
  return {};
}

// Loads the verifier a policy names ("rules" = none) and its cutoff for
// `target` (0 = the model's default). Errors name the keys under `prefix`.
Result<void> apply_model(TenantSemanticOptions& t, const std::string& which, double target, const std::string& prefix) {
  const std::string dot = prefix.ends_with('_') ? "" : ".";
  t.model.reset();
  if (which == "rules") return {};
  auto model = which == "builtin" ? Result<std::shared_ptr<const HitModel>>(HitModel::builtin()) : HitModel::load(which);
  if (!model) {
    return fail(ErrorCode::invalid_request, "config key '" + prefix + dot + "verifier_model': " + model.error().message);
  }
  if (!*model) {
    return fail(ErrorCode::invalid_request, "config key '" + prefix + dot + "verifier_model': this build has no built-in model");
  }
  auto cutoff = (*model)->cutoff_for(target > 0 ? target : (*model)->default_target_precision());
  if (!cutoff) {
    return fail(ErrorCode::invalid_request, "config key '" + prefix + dot + "target_precision': " + cutoff.error().message);
  }
  t.model = *model;
  t.min_probability = *cutoff;
  return {};
}

}  // namespace

OpenAiEmbedderOptions openai_embedder_options(const EmbedderConfig& e) {
  OpenAiEmbedderOptions o;
  o.base_url = e.base_url;
  o.model = e.model;
  o.api_key_env = e.api_key_env;
  o.dimension = e.dimension;
  o.request_timeout_ms = e.timeout_ms;
  o.connect_timeout_ms = e.connect_timeout_ms;
  return o;
}

BuiltinEmbedderOptions builtin_embedder_options(const EmbedderConfig& e) {
  BuiltinEmbedderOptions o;
  if (e.dimension > 0) o.dimension = e.dimension;
  return o;
}

Result<SemanticMatcherOptions> semantic_matcher_options(const Config& config) {
  SemanticMatcherOptions options;
  options.defaults.threshold = config.cache.semantic.threshold;
  options.defaults.verify = config.cache.semantic.verify;
  if (auto ok = apply_verifier_rules(options.defaults.verifier, config.cache.semantic.verifier,
                                     "cache.semantic.verifier");
      !ok) {
    return std::unexpected(ok.error());
  }
  if (auto ok = apply_model(options.defaults, config.cache.semantic.verifier_model,
                            config.cache.semantic.target_precision, "cache.semantic");
      !ok) {
    return std::unexpected(ok.error());
  }
  // A tenant with an entry of its own starts from cache.semantic, not from
  // tenants.default (as its rate limits do).
  const TenantSemanticOptions global = options.defaults;
  for (const auto& [tenant, limits] : config.tenants) {
    TenantSemanticOptions& t = tenant == "default" ? options.defaults : options.tenants.emplace(tenant, global).first->second;
    if (limits.semantic_threshold > 0) t.threshold = limits.semantic_threshold;
    // tenants.default can only switch verification off for everybody else.
    t.verify = tenant == "default" ? t.verify && limits.semantic_verify : limits.semantic_verify;
    if (auto ok = apply_verifier_rules(t.verifier, limits.semantic_verifier, "tenants." + tenant + ".semantic_verifier");
        !ok) {
      return std::unexpected(ok.error());
    }
    if (!limits.semantic_verifier_model.empty() || limits.semantic_target_precision > 0) {
      const std::string& which = limits.semantic_verifier_model.empty() ? config.cache.semantic.verifier_model
                                                                        : limits.semantic_verifier_model;
      const double target = limits.semantic_target_precision > 0 ? limits.semantic_target_precision
                                                                  : config.cache.semantic.target_precision;
      if (auto ok = apply_model(t, which, target, "tenants." + tenant + ".semantic_"); !ok) {
        return std::unexpected(ok.error());
      }
    }
  }
  return options;
}

}  // namespace cascade
