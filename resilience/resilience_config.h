#pragma once
// resilience.* of cascade.yaml: retries and circuit breakers of provider calls.
#include "core/config_reader.h"
#include "core/result.h"

namespace cascade {

struct RetryConfig {
  int max_retries = 2;             // retries on the same model before falling back
  int backoff_base_ms = 200;       // first backoff ceiling; doubles per retry
  int backoff_cap_ms = 5000;       // ceiling of any backoff
  int max_retry_after_ms = 20000;  // a provider asking to wait longer is fallen back from
};

struct BreakerConfig {
  int window = 20;            // outcomes remembered per provider+model
  int min_calls = 10;         // no verdict on fewer outcomes than this
  double failure_rate = 0.5;  // opens at this share of failures in the window
  int open_ms = 30000;        // how long an open breaker refuses calls
};

struct ResilienceConfig {
  RetryConfig retry;
  BreakerConfig breaker;
};

[[nodiscard]] Result<ResilienceConfig> read_resilience_config(ConfigReader& reader);

}  // namespace cascade
