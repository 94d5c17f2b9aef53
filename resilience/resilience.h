#pragma once
// What to do when a provider call fails, and which providers to avoid:
// retry decisions (safe retries only, exponential backoff with full jitter,
// Retry-After honoured) and circuit breakers per provider+model. Pure logic,
// driven by the worker's event loop; deterministic given a seed and a clock.
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "resilience/resilience_config.h"
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
// opens it again. Only outcomes of calls admitted in the breaker's current
// period count: a call that started before the breaker opened (or before the
// probe closed it) says nothing about the provider now, and a slow one would
// otherwise land in the next period's window.
//
// The window holds outcomes in the order the calls were admitted, not the
// order they ended: errors come back in milliseconds while healthy streams
// take a while to start, so in a burst of calls the failures would otherwise
// fill the window before any success could. An outcome enters the window once
// every earlier call of the period has one. Callers record a call's success
// when the provider starts answering (first token), and a failure whenever
// it fails, after a success too (a stream cut mid-way).
enum class Admission { refused, call, probe };

// What admit() hands out, to be given back to record().
struct BreakerTicket {
  Admission admission = Admission::refused;
  std::uint64_t period = 0;
  std::uint64_t call = 0;  // admission order within the period
};

class CircuitBreaker {
 public:
  explicit CircuitBreaker(BreakerConfig config);

  // May a call start now? In half-open, `probe` once until its outcome.
  BreakerTicket admit(SteadyTime now);
  void record(bool success, SteadyTime now, const BreakerTicket& ticket);
  // The call ended without an outcome that says anything about the provider
  // (its requester cancelled it before its first token): it leaves the line
  // of calls waiting to enter the window, and an abandoned probe lets the
  // next call probe. A call that already succeeded (first token) keeps its
  // success.
  void abandon(SteadyTime now, const BreakerTicket& ticket);
  // An outcome straight into the window (tests, callers without tickets).
  void record(bool success, SteadyTime now);
  BreakerState state(SteadyTime now) const;
  double failure_rate() const;

 private:
  void open(SteadyTime now);
  void close();
  void add_to_window(bool success, SteadyTime now);
  void drain_waiting(SteadyTime now);

  BreakerConfig config_;
  std::vector<bool> outcomes_;  // ring buffer, true = failure
  std::size_t next_ = 0;
  std::size_t count_ = 0;
  std::size_t failures_ = 0;
  BreakerState state_ = BreakerState::closed;
  SteadyTime open_until_{};
  std::uint64_t period_ = 0;  // bumped whenever the state changes
  // Calls admitted in this closed period whose outcomes wait for an earlier
  // call's; front() is call `first_waiting_`.
  static constexpr std::uint8_t kUnknown = 0, kSucceeded = 1, kFailed = 2, kGivenUp = 3;
  std::deque<std::uint8_t> waiting_;
  std::uint64_t first_waiting_ = 0;
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
  double burst() const { return burst_; }
  // From now on `rate_per_second`, holding at most `burst` (an event loop's
  // share of a tenant's limit changed with its partitions): what refilled
  // until now, at the old rate, stays, up to the new burst. Never adds any.
  void set_rate(double rate_per_second, double burst, SteadyTime now);

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
