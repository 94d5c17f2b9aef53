#include "resilience/resilience_config.h"

namespace cascade {

Result<ResilienceConfig> read_resilience_config(ConfigReader& r) {
  ResilienceConfig c;
  const auto resilience = r.root()["resilience"];
  r.read(resilience["retry"], "max_retries", c.retry.max_retries, "resilience.retry");
  r.read(resilience["retry"], "backoff_base_ms", c.retry.backoff_base_ms, "resilience.retry");
  r.read(resilience["retry"], "backoff_cap_ms", c.retry.backoff_cap_ms, "resilience.retry");
  r.read(resilience["retry"], "max_retry_after_ms", c.retry.max_retry_after_ms, "resilience.retry");
  r.read(resilience["breaker"], "window", c.breaker.window, "resilience.breaker");
  r.read(resilience["breaker"], "min_calls", c.breaker.min_calls, "resilience.breaker");
  r.read(resilience["breaker"], "failure_rate", c.breaker.failure_rate, "resilience.breaker");
  r.read(resilience["breaker"], "open_ms", c.breaker.open_ms, "resilience.breaker");
  if (auto ok = r.status(); !ok) return std::unexpected(ok.error());
  if (c.retry.max_retries < 0) return fail(ErrorCode::invalid_request, "resilience.retry.max_retries must be >= 0");
  if (c.breaker.window < 1 || !(0 < c.breaker.failure_rate && c.breaker.failure_rate <= 1))
    return fail(ErrorCode::invalid_request, "resilience.breaker: need window >= 1 and 0 < failure_rate <= 1");
  return c;
}

}  // namespace cascade
