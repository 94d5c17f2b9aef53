#pragma once
// How long a provider asks us to wait, from its response headers. Private to
// providers/: every adapter records it in Error::retry_after_ms.
#include <cstdint>
#include <optional>
#include <string_view>

namespace cascade {

// Understands Retry-After (delta-seconds; an HTTP date is ignored), OpenAI's
// retry-after-ms, and the x-ratelimit-reset-requests / -tokens durations
// ("20ms", "1s", "6m0s", "1h2m3.5s"). Returns milliseconds, or nullopt when the
// header is not one of these or cannot be read.
std::optional<std::int64_t> retry_after_ms_from_header(std::string_view name, std::string_view value);

// x-ratelimit-reset-*: when a rate-limit window resets. Weaker than an
// explicit Retry-After, which wins when both are sent.
bool is_rate_limit_reset_header(std::string_view name);

// What one response's headers ask for: an explicit Retry-After or
// retry-after-ms wins; otherwise the earliest x-ratelimit-reset-*.
class RetryAfterTracker {
 public:
  void observe(std::string_view name, std::string_view value);
  std::int64_t ms() const { return ms_; }  // -1 = nothing said
  bool explicit_wait() const { return explicit_; }

 private:
  std::int64_t ms_ = -1;
  bool explicit_ = false;
};

// Parses a Go-style duration ("6m0s", "250ms", "1.5s") into milliseconds.
std::optional<std::int64_t> parse_duration_ms(std::string_view text);

}  // namespace cascade
