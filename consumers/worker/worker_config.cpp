#include "consumers/worker/worker_config.h"

namespace cascade {

Result<WorkerConfig> read_worker_config(ConfigReader& r) {
  WorkerConfig c;
  const auto w = r.root()["worker"];
  r.read(w, "threads", c.threads, "worker");
  r.read(w, "max_in_flight", c.max_in_flight, "worker");
  r.read(w, "resume_fraction", c.resume_fraction, "worker");
  r.read(w, "commit_interval_ms", c.commit_interval_ms, "worker");
  r.read(w, "metrics_listen", c.metrics_listen, "worker");
  r.read(w, "cancel_window_ms", c.cancel_window_ms, "worker");
  r.read(w, "cancel_max_pending", c.cancel_max_pending, "worker");
  r.read(w, "coalesce_ms", c.coalesce_ms, "worker");
  if (auto ok = r.status(); !ok) return std::unexpected(ok.error());
  if (c.threads < 1) return fail(ErrorCode::invalid_request, "worker.threads must be >= 1");
  if (c.max_in_flight < 1) return fail(ErrorCode::invalid_request, "worker.max_in_flight must be >= 1");
  // Outside [0, 1] a paused worker would never resume (or never stay paused).
  if (!(0 <= c.resume_fraction && c.resume_fraction <= 1))
    return fail(ErrorCode::invalid_request, "worker.resume_fraction must be within 0..1");
  // librdkafka reads 0 as "never commit": offsets would never be committed.
  if (c.commit_interval_ms < 1) return fail(ErrorCode::invalid_request, "worker.commit_interval_ms must be >= 1");
  if (c.cancel_window_ms < 1) return fail(ErrorCode::invalid_request, "worker.cancel_window_ms must be >= 1");
  // Longer would make a stream look stalled to its reader.
  if (c.coalesce_ms < 0 || c.coalesce_ms > 1000)
    return fail(ErrorCode::invalid_request, "worker.coalesce_ms must be within 0..1000");
  if (c.cancel_max_pending < 1) return fail(ErrorCode::invalid_request, "worker.cancel_max_pending must be >= 1");
  return c;
}

Result<LimitsConfig> read_limits_config(ConfigReader& r) {
  LimitsConfig c;
  const auto limits = r.root()["limits"];
  r.read(limits, "max_event_bytes", c.max_event_bytes, "limits");
  r.read(limits, "default_max_tokens", c.default_max_tokens, "limits");
  r.read(limits, "budget_settle_ms", c.budget_settle_ms, "limits");
  r.read(limits, "budget_max_state_age_ms", c.budget_max_state_age_ms, "limits");
  if (auto ok = r.status(); !ok) return std::unexpected(ok.error());
  if (c.budget_settle_ms < 0 || c.budget_max_state_age_ms < 0)
    return fail(ErrorCode::invalid_request, "config 'limits': budget_settle_ms and budget_max_state_age_ms must be >= 0");
  return c;
}

Result<std::map<std::string, TenantLimits>> read_tenants_config(ConfigReader& r, const CacheConfig& cache) {
  std::map<std::string, TenantLimits> tenants;
  if (const auto t = r.root()["tenants"]; t.IsMap()) {
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
      r.read(kv.second, "semantic_verifier_model", limits.semantic_verifier_model, path);
      r.read(kv.second, "semantic_target_precision", limits.semantic_target_precision, path);
      // The built-in defaults name every rule under cache.semantic.verifier,
      // so each rule of a tenant is overridable from the environment even
      // when no file sets it.
      for (const auto& rule : cache.semantic.verifier) {
        if (auto from_env = r.env()(env_name_for(path + ".semantic_verifier." + rule.first)))
          limits.semantic_verifier[rule.first] = *from_env;
      }
      if (auto ok = r.status(); !ok) return std::unexpected(ok.error());
      if (!(limits.semantic_target_precision >= 0 && limits.semantic_target_precision <= 1))
        return fail(ErrorCode::invalid_request, "config '" + path + ".semantic_target_precision' must be in [0, 1]");
      if (limits.requests_per_second < 0 || limits.tokens_per_minute < 0)
        return fail(ErrorCode::invalid_request, "config '" + path + "': limits must be >= 0");
      tenants[name] = limits;
    }
  } else if (t.IsDefined() && !t.IsNull()) {
    return fail(ErrorCode::invalid_request, "config key 'tenants' must be a mapping");
  }
  tenants.try_emplace("default");
  return tenants;
}

Result<QualityConfig> read_quality_config(ConfigReader& r) {
  QualityConfig c;
  const auto quality = r.root()["quality"];
  r.read(quality, "sample_rate", c.sample_rate, "quality");
  r.read(quality, "judge_model", c.judge_model, "quality");
  r.read(quality, "timeout_ms", c.timeout_ms, "quality");
  r.read(quality, "max_in_flight", c.max_in_flight, "quality");
  r.read(quality, "calibration_rate", c.calibration_rate, "quality");
  r.read(quality, "target", c.target, "quality");
  const auto tuning = quality["tuning"];
  r.read(tuning, "enabled", c.tuning.enabled, "quality.tuning");
  r.read(tuning, "min_samples", c.tuning.min_samples, "quality.tuning");
  r.read(tuning, "confidence_z", c.tuning.confidence_z, "quality.tuning");
  r.read(tuning, "max_step", c.tuning.max_step, "quality.tuning");
  r.read(tuning, "window", c.tuning.window, "quality.tuning");
  r.read(tuning, "every", c.tuning.every, "quality.tuning");
  if (auto ok = r.status(); !ok) return std::unexpected(ok.error());
  // The judge model is checked against the catalog when the worker starts.
  if (!(c.sample_rate >= 0 && c.sample_rate <= 1))
    return fail(ErrorCode::invalid_request, "config 'quality.sample_rate' must be within 0..1");
  if (!(c.calibration_rate >= 0 && c.calibration_rate <= 1))
    return fail(ErrorCode::invalid_request, "config 'quality.calibration_rate' must be within 0..1");
  if (!(c.target > 0 && c.target <= 1))
    return fail(ErrorCode::invalid_request, "config 'quality.target' must be within (0, 1]");
  if (c.tuning.min_samples < 2 || c.tuning.window < c.tuning.min_samples || c.tuning.every < 1)
    return fail(ErrorCode::invalid_request,
                "config 'quality.tuning': min_samples must be >= 2, window >= min_samples and every >= 1");
  if (!(c.tuning.confidence_z >= 0) || !(c.tuning.max_step > 0 && c.tuning.max_step <= 1))
    return fail(ErrorCode::invalid_request,
                "config 'quality.tuning': confidence_z must be >= 0 and max_step within (0, 1]");
  if (c.timeout_ms < 1 || c.max_in_flight < 1)
    return fail(ErrorCode::invalid_request, "config 'quality': timeout_ms and max_in_flight must be >= 1");
  return c;
}

}  // namespace cascade
