#include "cache/cache_config.h"

namespace cascade {

Result<CacheConfig> read_cache_config(ConfigReader& r) {
  CacheConfig c;
  const auto cache = r.root()["cache"];
  r.read(cache, "enabled", c.enabled, "cache");
  r.read(cache, "version", c.version, "cache");
  r.read(cache, "max_temperature", c.max_temperature, "cache");
  r.read(cache, "replay_chunk_bytes", c.replay_chunk_bytes, "cache");
  r.read(cache["semantic"], "threshold", c.semantic.threshold, "cache.semantic");
  r.read(cache["semantic"], "verify", c.semantic.verify, "cache.semantic");
  // Rule names and values are the cache's to check (set_verifier_option).
  r.read(cache["semantic"], "verifier", c.semantic.verifier, "cache.semantic");
  r.read(cache["semantic"], "verifier_model", c.semantic.verifier_model, "cache.semantic");
  r.read(cache["semantic"], "target_precision", c.semantic.target_precision, "cache.semantic");
  if (!r.failed()) {
    const auto embedder = cache["semantic"]["embedder"];
    const std::string path = "cache.semantic.embedder";
    EmbedderConfig& e = c.semantic.embedder;
    r.read(embedder, "kind", e.kind, path);
    r.read(embedder, "base_url", e.base_url, path);
    r.read(embedder, "model", e.model, path);
    r.read(embedder, "api_key_env", e.api_key_env, path);
    r.read(embedder, "dimension", e.dimension, path);
    r.read(embedder, "timeout_ms", e.timeout_ms, path);
    r.read(embedder, "connect_timeout_ms", e.connect_timeout_ms, path);
  }
  if (auto ok = r.status(); !ok) return std::unexpected(ok.error());
  if (c.semantic.verifier_model.empty()) {
    return fail(ErrorCode::invalid_request, "cache.semantic.verifier_model must be rules, builtin or a model file");
  }
  if (!(c.semantic.target_precision >= 0 && c.semantic.target_precision <= 1)) {
    return fail(ErrorCode::invalid_request, "cache.semantic.target_precision must be in [0, 1] (0 = the model's default)");
  }
  if (const EmbedderConfig& e = c.semantic.embedder; e.kind != "builtin" && e.kind != "openai") {
    return fail(ErrorCode::invalid_request,
                "cache.semantic.embedder.kind must be builtin or openai, not '" + e.kind + "'");
  } else if (e.kind == "openai" && (e.base_url.empty() || e.model.empty())) {
    return fail(ErrorCode::invalid_request, "cache.semantic.embedder: kind openai needs base_url and model");
  } else if (e.timeout_ms < 1 || e.connect_timeout_ms < 1) {
    return fail(ErrorCode::invalid_request, "cache.semantic.embedder.timeout_ms and connect_timeout_ms must be >= 1");
  }
  return c;
}

}  // namespace cascade
