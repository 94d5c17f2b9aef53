#pragma once
// What to do when a provider call fails, and which providers to avoid:
// retry decisions (safe retries only, exponential backoff with full jitter,
// Retry-After honoured) and circuit breakers per provider+model. Pure logic,
// driven by the worker's event loop; deterministic given a seed and a clock.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/result.h"

namespace cascade {

using SteadyTime = std::chrono::steady_clock::time_point;

enum class FailureAction { retry, fall_back, give_up };
std::string_view to_string(FailureAction action);

struct FailureVerdict {
  FailureAction action = FailureAction::give_up;
  std::int64_t wait_ms = 0;  // for retry
  std::string why;           // short, for logs and the route reason
};

// Whether a failure is the provider's (it counts against its breaker and may
// succeed on retry) rather than the request's (400, 404, 422, adapter rejections).
bool provider_side_failure(const Error& error);

class RetryPolicy {
 public:
  explicit RetryPolicy(RetryConfig config, std::uint64_t seed = std::random_device{}());

  // `attempts_on_model`: attempts already made on this model (1 after the first
  // failure). `delta_published`: part of the answer already reached the reply
  // topic, so neither a retry nor a fallback can be made invisible: give up.
  FailureVerdict on_failure(const Error& error, int attempts_on_model, bool delta_published);

  // Full jitter: uniform in [0, min(cap, base * 2^(retry-1))].
  std::int64_t backoff_ms(int retry);

 private:
  RetryConfig config_;
  std::mt19937_64 rng_;
};

enum class BreakerState { closed, open, half_open };
std::string_view to_string(BreakerState state);

// Closed: calls pass, outcomes fill a rolling window; at failure_rate over at
// least min_calls it opens. Open: calls are refused for open_ms, then one probe
// is let through (half-open); its success closes the breaker, its failure
// opens it again.
class CircuitBreaker {
 public:
  explicit CircuitBreaker(BreakerConfig config);

  // May a call start now? In half-open, true once (the probe) until its outcome.
  bool allow(SteadyTime now);
  void record(bool success, SteadyTime now);
  BreakerState state(SteadyTime now) const;
  double failure_rate() const;

 private:
  void open(SteadyTime now);

  BreakerConfig config_;
  std::vector<bool> outcomes_;  // ring buffer, true = failure
  std::size_t next_ = 0;
  std::size_t count_ = 0;
  std::size_t failures_ = 0;
  BreakerState state_ = BreakerState::closed;
  SteadyTime open_until_{};
  bool probe_in_flight_ = false;
};

// A token bucket: `rate` units per second, holding at most `burst`. Rate 0 =
// unlimited. Taking more than is there is refused; available_at() says when
// it would succeed. give_back() settles an estimate against the actual use
// (a negative amount takes more, possibly into debt).
class TokenBucket {
 public:
  TokenBucket(double rate_per_second, double burst);
  bool unlimited() const { return rate_ <= 0; }
  bool try_take(double amount, SteadyTime now);
  SteadyTime available_at(double amount, SteadyTime now);
  void give_back(double amount, SteadyTime now);
  double level(SteadyTime now);

 private:
  void refill(SteadyTime now);
  double rate_;
  double burst_;
  double level_;
  SteadyTime last_{};
  bool started_ = false;
};

// Breakers by provider and model, for one event loop (no locks).
class BreakerBoard {
 public:
  explicit BreakerBoard(BreakerConfig config) : config_(config) {}
  CircuitBreaker& at(std::string_view provider, std::string_view model);
  void for_each(const std::function<void(const std::string& provider, const std::string& model,
                                         const CircuitBreaker&)>& fn) const;

 private:
  BreakerConfig config_;
  struct Entry {
    std::string provider;
    std::string model;
    CircuitBreaker breaker;
  };
  std::map<std::string, Entry> breakers_;  // key: provider '\0' model
};

}  // namespace cascade
