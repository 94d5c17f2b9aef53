#include "resilience/resilience.h"

#include <algorithm>

namespace cascade {

std::string_view to_string(FailureAction action) {
  switch (action) {
    case FailureAction::retry: return "retry";
    case FailureAction::fall_back: return "fall_back";
    case FailureAction::give_up: return "give_up";
  }
  return "give_up";
}

std::string_view to_string(BreakerState state) {
  switch (state) {
    case BreakerState::closed: return "closed";
    case BreakerState::open: return "open";
    case BreakerState::half_open: return "half_open";
  }
  return "closed";
}

bool provider_side_failure(const Error& error) {
  if (error.code == ErrorCode::invalid_request || error.code == ErrorCode::budget_exceeded) return false;
  const int s = error.http_status;
  if (s >= 400 && s < 500) {
    // The request's own fault: the same request fails on every retry.
    return s == 401 || s == 403 || s == 408 || s == 409 || s == 425 || s == 429;
  }
  return true;  // 5xx, 529, timeouts, connection failures, cut or malformed streams
}

RetryPolicy::RetryPolicy(RetryConfig config, std::uint64_t seed) : config_(config), rng_(seed) {}

std::int64_t RetryPolicy::backoff_ms(int retry) {
  const int shift = std::clamp(retry - 1, 0, 20);
  const std::int64_t ceiling =
      std::min<std::int64_t>(config_.backoff_cap_ms, static_cast<std::int64_t>(config_.backoff_base_ms) << shift);
  return std::uniform_int_distribution<std::int64_t>(0, std::max<std::int64_t>(ceiling, 0))(rng_);
}

FailureVerdict RetryPolicy::on_failure(const Error& error, int attempts_on_model, bool delta_published) {
  if (delta_published) return {FailureAction::give_up, 0, "failed after streaming began"};
  const bool auth = error.http_status == 401 || error.http_status == 403;
  if (!provider_side_failure(error) || auth) {
    // Another model may take a request this one refuses; retrying this one won't.
    return {FailureAction::fall_back, 0, "not retriable"};
  }
  if (attempts_on_model > config_.max_retries) return {FailureAction::fall_back, 0, "retries exhausted"};
  if (error.retry_after_ms > config_.max_retry_after_ms) {
    return {FailureAction::fall_back, 0, "provider asked to wait too long"};
  }
  const std::int64_t backoff = backoff_ms(attempts_on_model);
  return {FailureAction::retry, std::max(backoff, error.retry_after_ms), "retriable"};
}

CircuitBreaker::CircuitBreaker(BreakerConfig config)
    : config_(config), outcomes_(static_cast<std::size_t>(std::max(config.window, 1)), false) {}

void CircuitBreaker::open(SteadyTime now) {
  state_ = BreakerState::open;
  period_++;
  open_until_ = now + std::chrono::milliseconds(config_.open_ms);
  probe_in_flight_ = false;
  waiting_.clear();
}

void CircuitBreaker::close() {
  state_ = BreakerState::closed;
  period_++;
  std::fill(outcomes_.begin(), outcomes_.end(), false);
  next_ = count_ = failures_ = 0;
  probe_in_flight_ = false;
  waiting_.clear();
  first_waiting_ = 0;
}

BreakerTicket CircuitBreaker::admit(SteadyTime now) {
  if (state_ == BreakerState::open) {
    if (now < open_until_) return {Admission::refused, period_, 0};
    state_ = BreakerState::half_open;
    period_++;
    probe_in_flight_ = false;
  }
  if (state_ == BreakerState::half_open) {
    if (probe_in_flight_) return {Admission::refused, period_, 0};
    probe_in_flight_ = true;
    return {Admission::probe, period_, 0};
  }
  // A leaked ticket must not hold the window forever: past this many calls
  // waiting, the oldest unknown outcome is given up on.
  constexpr std::size_t kMaxWaiting = 1 << 16;
  if (waiting_.size() >= kMaxWaiting) {
    if (waiting_.front() == kUnknown) waiting_.front() = kGivenUp;
    drain_waiting(now);
    if (state_ != BreakerState::closed) return {Admission::refused, period_, 0};
  }
  waiting_.push_back(kUnknown);
  return {Admission::call, period_, first_waiting_ + waiting_.size() - 1};
}

void CircuitBreaker::record(bool success, SteadyTime now, const BreakerTicket& ticket) {
  if (ticket.period != period_ || ticket.admission == Admission::refused) return;  // another period's call
  if (ticket.admission == Admission::probe) {
    if (state_ != BreakerState::half_open || !probe_in_flight_) return;
    if (success) {
      close();
    } else {
      open(now);
    }
    return;
  }
  if (state_ != BreakerState::closed) return;
  if (ticket.call < first_waiting_ || ticket.call - first_waiting_ >= waiting_.size()) {
    // In the window already (it succeeded at its first token): a later
    // failure, a stream cut mid-way, counts on its own.
    if (!success) add_to_window(false, now);
    return;
  }
  std::uint8_t& outcome = waiting_[ticket.call - first_waiting_];
  if (outcome == kUnknown || !success) outcome = success ? kSucceeded : kFailed;  // a failure overrides
  drain_waiting(now);
}

void CircuitBreaker::abandon(SteadyTime now, const BreakerTicket& ticket) {
  if (ticket.period != period_ || ticket.admission == Admission::refused) return;  // another period's call
  if (ticket.admission == Admission::probe) {
    if (state_ != BreakerState::half_open || !probe_in_flight_) return;
    // Still half-open, in a period of its own: a word from the abandoned
    // probe can no longer decide for the next one.
    period_++;
    probe_in_flight_ = false;
    return;
  }
  if (state_ != BreakerState::closed) return;
  if (ticket.call < first_waiting_ || ticket.call - first_waiting_ >= waiting_.size()) return;  // in the window
  std::uint8_t& outcome = waiting_[ticket.call - first_waiting_];
  if (outcome == kUnknown) outcome = kGivenUp;
  drain_waiting(now);
}

void CircuitBreaker::drain_waiting(SteadyTime now) {
  while (!waiting_.empty() && waiting_.front() != kUnknown && state_ == BreakerState::closed) {
    const std::uint8_t outcome = waiting_.front();
    waiting_.pop_front();
    first_waiting_++;
    if (outcome != kGivenUp) add_to_window(outcome == kSucceeded, now);
  }
}

void CircuitBreaker::record(bool success, SteadyTime now) {
  if (state_ == BreakerState::closed) add_to_window(success, now);
}

void CircuitBreaker::add_to_window(bool success, SteadyTime now) {
  if (count_ == outcomes_.size()) {
    if (outcomes_[next_]) failures_--;
  } else {
    count_++;
  }
  outcomes_[next_] = !success;
  if (!success) failures_++;
  next_ = (next_ + 1) % outcomes_.size();
  if (static_cast<int>(count_) >= config_.min_calls && failure_rate() >= config_.failure_rate) open(now);
}

BreakerState CircuitBreaker::state(SteadyTime now) const {
  if (state_ == BreakerState::open && now >= open_until_) return BreakerState::half_open;
  return state_;
}

double CircuitBreaker::failure_rate() const {
  return count_ == 0 ? 0.0 : static_cast<double>(failures_) / static_cast<double>(count_);
}

TokenBucket::TokenBucket(double rate_per_second, double burst)
    : rate_(rate_per_second), burst_(std::max(burst, 0.0)), level_(std::max(burst, 0.0)) {}

void TokenBucket::refill(SteadyTime now) {
  if (!started_) {
    started_ = true;
    last_ = now;
    return;
  }
  if (now <= last_) return;
  const double seconds = std::chrono::duration<double>(now - last_).count();
  level_ = std::min(burst_, level_ + seconds * rate_);
  last_ = now;
}

bool TokenBucket::try_take(double amount, SteadyTime now) {
  if (unlimited()) return true;
  refill(now);
  if (level_ < amount) return false;
  level_ -= amount;
  return true;
}

SteadyTime TokenBucket::available_at(double amount, SteadyTime now) {
  if (unlimited()) return now;
  refill(now);
  if (level_ >= amount) return now;
  // More than the bucket can ever hold waits for a full bucket.
  const double missing = std::min(amount, burst_) - level_;
  return now + std::chrono::duration_cast<SteadyTime::duration>(std::chrono::duration<double>(missing / rate_));
}

void TokenBucket::give_back(double amount, SteadyTime now) {
  if (unlimited()) return;
  refill(now);
  level_ = std::min(burst_, level_ + amount);
}

void TokenBucket::set_rate(double rate_per_second, double burst, SteadyTime now) {
  if (!unlimited()) refill(now);
  rate_ = rate_per_second;
  burst_ = std::max(burst, 0.0);
  level_ = std::min(level_, burst_);
  if (!started_) {
    started_ = true;
    last_ = now;
  }
}

double TokenBucket::level(SteadyTime now) {
  refill(now);
  return level_;
}

CircuitBreaker& BreakerBoard::at(std::string_view provider, std::string_view model) {
  std::string key;
  key.reserve(provider.size() + model.size() + 1);
  key.append(provider).push_back('\0');
  key.append(model);
  auto it = breakers_.find(key);
  if (it == breakers_.end()) {
    it = breakers_.emplace(std::move(key), Entry{std::string(provider), std::string(model), CircuitBreaker(config_)})
             .first;
  }
  return it->second.breaker;
}

void BreakerBoard::for_each(const std::function<void(const std::string&, const std::string&,
                                                     const CircuitBreaker&)>& fn) const {
  for (const auto& [key, entry] : breakers_) fn(entry.provider, entry.model, entry.breaker);
}

}  // namespace cascade
