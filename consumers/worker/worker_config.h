#pragma once
// The worker's sections of cascade.yaml, owned and checked here: worker.*
// (event loops, in-flight bound, commits), limits.* (event size, default
// max_tokens, budget enforcement), tenants.* (per-tenant rate limits and
// semantic cache settings) and quality.* (quality sampling).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "cache/cache_config.h"
#include "core/config_reader.h"
#include "core/result.h"

namespace cascade {

struct WorkerConfig {
  int threads = 1;
  int max_in_flight = 512;
  double resume_fraction = 0.5;
  int commit_interval_ms = 500;
  std::string metrics_listen = "127.0.0.1:9465";  // "" = no metrics endpoint
  // Cancels (docs/events.md, "Cancel event"): one older than this (its
  // record's timestamp, else its ts_ms) is ignored, and one for a request
  // not read yet is remembered this long; each event loop remembers at
  // most cancel_max_pending of them (the oldest are forgotten first).
  std::int64_t cancel_window_ms = 600000;
  std::size_t cancel_max_pending = 10000;
  // Streamed deltas (docs/events.md, "Chunk event"): 0 = those that arrive
  // together (one read of the loop) go out as one chunk event; > 0 = later
  // chunks also wait up to this long for more text. The first chunk is never held.
  int coalesce_ms = 0;
};

struct LimitsConfig {
  std::size_t max_event_bytes = 1 << 20;
  int default_max_tokens = 1024;
  // Budget enforcement (docs/ledger.md): how long a worker counts a finished
  // request's cost itself before trusting the ledger's spend state to include
  // it; and past what age of that state a tenant with a budget is refused
  // (fail closed; 0 = never).
  std::int64_t budget_settle_ms = 2000;
  std::int64_t budget_max_state_age_ms = 0;
};

// Per-tenant rate limits, enforced by each worker process before a provider is
// called. tenants.default applies to tenants without an entry of their own.
struct TenantLimits {
  double requests_per_second = 0;  // 0 = unlimited
  double tokens_per_minute = 0;    // estimated prompt + max_tokens, settled with actual usage
  long max_wait_ms = 5000;         // a request over the limit waits this long, then fails
  // Semantic cache of this tenant: 0 = cache.semantic.threshold.
  double semantic_threshold = 0;
  bool semantic_verify = true;
  // Verifier rules of this tenant over cache.semantic.verifier (same names
  // and values); only the rules set here.
  std::map<std::string, std::string> semantic_verifier;
  // This tenant's verifier (rules | builtin | a model file; "" =
  // cache.semantic.verifier_model) and the model's operating point (0 =
  // cache.semantic.target_precision).
  std::string semantic_verifier_model;
  double semantic_target_precision = 0;
};

// Quality sampling (docs/routing.md, "Quality sampling"): a share of the
// answers of tiers below the judge's is graded 1-5 by the judge, off the
// request's path, and published to kafka.topics.quality.
// quality.tuning: the ledger's tuner of the closed loop (tuning/tuning.h,
// TuningOptions; docs/routing.md, "Closed loop").
struct QualityTuningConfig {
  bool enabled = false;          // the ledger publishes router updates
  std::size_t min_samples = 50;
  double confidence_z = 2.58;
  double max_step = 0.05;
  std::size_t window = 2000;
  std::size_t every = 20;
};

struct QualityConfig {
  double sample_rate = 0;   // 0..1; 0 = off
  std::string judge_model;  // catalog id; "" = catalog.baseline_model
  long timeout_ms = 30000;  // one grading call; a later one is dropped (counted)
  int max_in_flight = 64;   // grading calls (and calibration samples) at once per event loop; more are skipped (counted)
  // 0..1: share of auto-routed requests whose prompt every tier and the
  // reference model also answer, all graded (a calibration sample). 0 = off.
  double calibration_rate = 0;
  // The judged quality each cheaper tier keeps, as a share of the reference
  // model's on the same prompts (the closed loop's aim and the report's).
  double target = 0.95;
  QualityTuningConfig tuning;
};

// Each: invalid_request naming the key.
[[nodiscard]] Result<WorkerConfig> read_worker_config(ConfigReader& reader);
[[nodiscard]] Result<LimitsConfig> read_limits_config(ConfigReader& reader);
// tenants.*, with "default" always present. `cache` names the verifier rules
// a tenant's own may override from the environment.
[[nodiscard]] Result<std::map<std::string, TenantLimits>> read_tenants_config(ConfigReader& reader,
                                                                            const CacheConfig& cache);
[[nodiscard]] Result<QualityConfig> read_quality_config(ConfigReader& reader);

}  // namespace cascade
