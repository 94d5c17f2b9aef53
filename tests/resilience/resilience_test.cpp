#include "resilience/resilience.h"

#include <gtest/gtest.h>

namespace cascade {
namespace {

using namespace std::chrono_literals;

Error http(int status, std::int64_t retry_after_ms = -1) {
  Error e{ErrorCode::provider_error, "HTTP " + std::to_string(status)};
  e.http_status = status;
  e.retry_after_ms = retry_after_ms;
  return e;
}

TEST(RetryPolicy, RetriesRateLimitsAndServerErrorsUpToTheLimitThenFallsBack) {
  RetryPolicy policy(RetryConfig{2, 100, 1000, 20000}, 7);
  for (int status : {429, 500, 502, 503, 504, 529}) {
    EXPECT_EQ(policy.on_failure(http(status), 1, false).action, FailureAction::retry) << status;
    EXPECT_EQ(policy.on_failure(http(status), 2, false).action, FailureAction::retry) << status;
    EXPECT_EQ(policy.on_failure(http(status), 3, false).action, FailureAction::fall_back) << status;
  }
}

TEST(RetryPolicy, TransportFailuresAreRetriable) {
  RetryPolicy policy(RetryConfig{}, 1);
  EXPECT_EQ(policy.on_failure(Error{ErrorCode::timeout, "t"}, 1, false).action, FailureAction::retry);
  EXPECT_EQ(policy.on_failure(Error{ErrorCode::unavailable, "refused"}, 1, false).action, FailureAction::retry);
  Error cut{ErrorCode::provider_error, "stream ended before [DONE]"};
  cut.http_status = 200;
  EXPECT_EQ(policy.on_failure(cut, 1, false).action, FailureAction::retry);
}

TEST(RetryPolicy, RequestErrorsAndAuthFailuresFallBackWithoutRetry) {
  RetryPolicy policy(RetryConfig{}, 1);
  for (int status : {400, 401, 403, 404, 422}) {
    EXPECT_EQ(policy.on_failure(http(status), 1, false).action, FailureAction::fall_back) << status;
  }
  EXPECT_EQ(policy.on_failure(Error{ErrorCode::invalid_request, "tool role"}, 1, false).action,
            FailureAction::fall_back);
}

TEST(RetryPolicy, NeverRetriesOnceADeltaReachedTheReplyTopic) {
  RetryPolicy policy(RetryConfig{}, 1);
  EXPECT_EQ(policy.on_failure(http(503), 1, true).action, FailureAction::give_up);
  EXPECT_EQ(policy.on_failure(Error{ErrorCode::timeout, "idle"}, 1, true).action, FailureAction::give_up);
}

TEST(RetryPolicy, HonoursRetryAfterAndFallsBackWhenItIsTooLong) {
  RetryPolicy policy(RetryConfig{2, 10, 50, 5000}, 3);
  const auto v = policy.on_failure(http(429, 1500), 1, false);
  EXPECT_EQ(v.action, FailureAction::retry);
  EXPECT_EQ(v.wait_ms, 1500);  // longer than any backoff here
  EXPECT_EQ(policy.on_failure(http(429, 60000), 1, false).action, FailureAction::fall_back);
}

TEST(RetryPolicy, BackoffIsFullJitterUnderADoublingCappedCeiling) {
  RetryPolicy policy(RetryConfig{10, 100, 800, 20000}, 42);
  for (int retry = 1; retry <= 6; ++retry) {
    const std::int64_t ceiling = std::min<std::int64_t>(800, 100LL << (retry - 1));
    std::int64_t lo = ceiling, hi = 0;
    for (int i = 0; i < 2000; ++i) {
      const auto b = policy.backoff_ms(retry);
      ASSERT_GE(b, 0);
      ASSERT_LE(b, ceiling);
      lo = std::min(lo, b);
      hi = std::max(hi, b);
    }
    // Spread over the whole range, not a fixed delay.
    EXPECT_LT(lo, ceiling / 10 + 1) << retry;
    EXPECT_GT(hi, ceiling * 9 / 10) << retry;
  }
}

TEST(RetryPolicy, SameSeedGivesTheSameBackoffs) {
  RetryPolicy a(RetryConfig{}, 99), b(RetryConfig{}, 99);
  for (int i = 1; i < 50; ++i) EXPECT_EQ(a.backoff_ms(i % 5 + 1), b.backoff_ms(i % 5 + 1));
}

TEST(ProviderSideFailure, CountsProviderFaultsNotRequestFaults) {
  EXPECT_TRUE(provider_side_failure(http(429)));
  EXPECT_TRUE(provider_side_failure(http(503)));
  EXPECT_TRUE(provider_side_failure(http(401)));
  EXPECT_TRUE(provider_side_failure(Error{ErrorCode::timeout, ""}));
  EXPECT_FALSE(provider_side_failure(http(400)));
  EXPECT_FALSE(provider_side_failure(http(422)));
  EXPECT_FALSE(provider_side_failure(Error{ErrorCode::invalid_request, ""}));
}

TEST(CircuitBreaker, StaysClosedBelowMinCallsAndOpensAtTheFailureRate) {
  CircuitBreaker b(BreakerConfig{10, 4, 0.5, 1000});
  const auto t0 = SteadyTime{} + 1h;
  b.record(false, t0);
  b.record(false, t0);
  b.record(false, t0);
  EXPECT_EQ(b.state(t0), BreakerState::closed);  // 3 < min_calls
  b.record(true, t0);
  EXPECT_EQ(b.state(t0), BreakerState::open);  // 3 of 4 failed
  EXPECT_EQ(b.admit(t0 + 999ms).admission, Admission::refused);
}

TEST(CircuitBreaker, HalfOpenLetsOneProbeThroughAndItsSuccessCloses) {
  CircuitBreaker b(BreakerConfig{10, 2, 0.5, 1000});
  const auto t0 = SteadyTime{} + 1h;
  b.record(false, t0);
  b.record(false, t0);
  ASSERT_EQ(b.state(t0), BreakerState::open);
  const auto later = t0 + 1000ms;
  EXPECT_EQ(b.state(later), BreakerState::half_open);
  const BreakerTicket probe = b.admit(later);
  EXPECT_EQ(probe.admission, Admission::probe);
  EXPECT_EQ(b.admit(later).admission, Admission::refused);  // nobody else while it runs
  b.record(true, later, probe);
  EXPECT_EQ(b.state(later), BreakerState::closed);
  EXPECT_EQ(b.admit(later).admission, Admission::call);
  EXPECT_DOUBLE_EQ(b.failure_rate(), 0.0);
}

TEST(CircuitBreaker, AFailedProbeOpensAgainForAnotherPeriod) {
  CircuitBreaker b(BreakerConfig{10, 2, 0.5, 1000});
  const auto t0 = SteadyTime{} + 1h;
  b.record(false, t0);
  b.record(false, t0);
  const auto probe = t0 + 1500ms;
  const BreakerTicket ticket = b.admit(probe);
  ASSERT_EQ(ticket.admission, Admission::probe);
  b.record(false, probe, ticket);
  EXPECT_EQ(b.state(probe), BreakerState::open);
  EXPECT_EQ(b.admit(probe + 999ms).admission, Admission::refused);
  EXPECT_EQ(b.admit(probe + 1000ms).admission, Admission::probe);
}

TEST(CircuitBreaker, CallsOfAnEarlierPeriodNeitherDecideTheProbeNorFillTheNextWindow) {
  CircuitBreaker b(BreakerConfig{10, 2, 0.5, 1000});
  const auto t0 = SteadyTime{} + 1h;
  const BreakerTicket old_success = b.admit(t0);
  const BreakerTicket old_failure_1 = b.admit(t0);
  const BreakerTicket old_failure_2 = b.admit(t0);
  b.record(false, t0);
  b.record(false, t0);
  ASSERT_EQ(b.state(t0), BreakerState::open);
  b.record(true, t0 + 10ms, old_success);  // a call from before, ending while open
  EXPECT_EQ(b.state(t0 + 10ms), BreakerState::open);
  const auto t1 = t0 + 1000ms;
  const BreakerTicket probe = b.admit(t1);
  ASSERT_EQ(probe.admission, Admission::probe);
  b.record(true, t1 + 1ms, old_success);     // old calls ending in half-open
  b.record(false, t1 + 2ms, old_failure_1);  // decide nothing
  EXPECT_EQ(b.state(t1 + 2ms), BreakerState::half_open);
  EXPECT_EQ(b.admit(t1 + 2ms).admission, Admission::refused);  // the probe still runs
  b.record(true, t1 + 3ms, probe);
  EXPECT_EQ(b.state(t1 + 3ms), BreakerState::closed);
  // Slow calls from before the breaker opened land after it closed again:
  // the fresh window ignores them.
  b.record(false, t1 + 4ms, old_failure_1);
  b.record(false, t1 + 4ms, old_failure_2);
  b.record(false, t1 + 4ms, probe);  // a probe reports once
  EXPECT_EQ(b.state(t1 + 4ms), BreakerState::closed);
  EXPECT_DOUBLE_EQ(b.failure_rate(), 0.0);
}

TEST(CircuitBreaker, OutcomesEnterTheWindowInAdmissionOrderSoABurstsFastFailuresDoNotOpenIt) {
  CircuitBreaker b(BreakerConfig{10, 3, 0.5, 1000});
  const auto t = SteadyTime{} + 1h;
  std::vector<BreakerTicket> burst;
  for (int i = 0; i < 10; ++i) burst.push_back(b.admit(t));
  // The three failures come back first, as errors do.
  for (int i = 7; i < 10; ++i) b.record(false, t + 1ms, burst[static_cast<std::size_t>(i)]);
  EXPECT_EQ(b.state(t + 1ms), BreakerState::closed);
  EXPECT_DOUBLE_EQ(b.failure_rate(), 0.0);  // waiting for calls 0..6
  for (int i = 0; i < 7; ++i) b.record(true, t + 300ms, burst[static_cast<std::size_t>(i)]);
  EXPECT_EQ(b.state(t + 300ms), BreakerState::closed);
  EXPECT_DOUBLE_EQ(b.failure_rate(), 0.3);
}

TEST(CircuitBreaker, AFailureAfterTheCallsSuccessCountsOnItsOwn) {
  CircuitBreaker b(BreakerConfig{10, 2, 0.5, 1000});
  const auto t = SteadyTime{} + 1h;
  const BreakerTicket call = b.admit(t);
  b.record(true, t, call);   // first token
  b.record(false, t, call);  // then the stream is cut
  EXPECT_DOUBLE_EQ(b.failure_rate(), 0.5);
  EXPECT_EQ(b.state(t), BreakerState::open);
}

TEST(CircuitBreaker, AFailureAfterASuccessStillWaitingInLineReplacesIt) {
  CircuitBreaker b(BreakerConfig{10, 2, 0.5, 1000});
  const auto t = SteadyTime{} + 1h;
  const BreakerTicket slow = b.admit(t);
  const BreakerTicket cut = b.admit(t);
  b.record(true, t, cut);   // first token, waits behind `slow`
  b.record(false, t, cut);  // then cut: the call's one outcome is a failure
  EXPECT_EQ(b.state(t), BreakerState::closed);
  b.record(true, t, slow);
  EXPECT_DOUBLE_EQ(b.failure_rate(), 0.5);  // one success, one failure: not two failures
}

TEST(CircuitBreaker, AnAbandonedCallLeavesTheLineWithoutAnOutcome) {
  CircuitBreaker b(BreakerConfig{10, 2, 0.5, 1000});
  const auto t = SteadyTime{} + 1h;
  const BreakerTicket cancelled = b.admit(t);
  const BreakerTicket failed = b.admit(t);
  const BreakerTicket answered = b.admit(t);
  b.record(false, t, failed);
  b.record(true, t, answered);
  EXPECT_DOUBLE_EQ(b.failure_rate(), 0.0);  // both wait behind the first call
  b.abandon(t, cancelled);
  EXPECT_DOUBLE_EQ(b.failure_rate(), 0.5);  // one failure, one success: the cancelled call is not counted
  b.record(false, t, cancelled);            // nor does it report later
  EXPECT_DOUBLE_EQ(b.failure_rate(), 0.5);
}

TEST(CircuitBreaker, AnAbandonedCallKeepsASuccessItAlreadyHad) {
  CircuitBreaker b(BreakerConfig{10, 1, 0.5, 1000});
  const auto t = SteadyTime{} + 1h;
  const BreakerTicket call = b.admit(t);
  b.record(true, t, call);  // first token, then cancelled by its requester
  b.abandon(t, call);
  EXPECT_DOUBLE_EQ(b.failure_rate(), 0.0);
  EXPECT_EQ(b.state(t), BreakerState::closed);
}

TEST(CircuitBreaker, AnAbandonedProbeLetsTheNextCallProbe) {
  CircuitBreaker b(BreakerConfig{10, 2, 0.5, 1000});
  const auto t0 = SteadyTime{} + 1h;
  b.record(false, t0);
  b.record(false, t0);
  const auto t1 = t0 + 1000ms;
  const BreakerTicket probe = b.admit(t1);
  ASSERT_EQ(probe.admission, Admission::probe);
  EXPECT_EQ(b.admit(t1).admission, Admission::refused);
  b.abandon(t1, probe);
  EXPECT_EQ(b.state(t1), BreakerState::half_open);
  const BreakerTicket next = b.admit(t1);
  EXPECT_EQ(next.admission, Admission::probe);
  b.record(true, t1, probe);  // the abandoned probe decides nothing
  EXPECT_EQ(b.state(t1), BreakerState::half_open);
  b.record(true, t1, next);
  EXPECT_EQ(b.state(t1), BreakerState::closed);
}

TEST(CircuitBreaker, AnOutageOpensItAsSoonAsTheOldestCallsFail) {
  CircuitBreaker b(BreakerConfig{20, 5, 0.5, 1000});
  const auto t = SteadyTime{} + 1h;
  std::vector<BreakerTicket> calls;
  for (int i = 0; i < 50; ++i) calls.push_back(b.admit(t));
  for (std::size_t i = 0; i < 5; ++i) b.record(false, t + 2s, calls[i]);  // timeouts, oldest first
  EXPECT_EQ(b.state(t + 2s), BreakerState::open);
  EXPECT_EQ(b.admit(t + 2s).admission, Admission::refused);
}

TEST(CircuitBreaker, TheWindowForgetsOldFailures) {
  CircuitBreaker b(BreakerConfig{4, 4, 0.75, 1000});
  const auto t = SteadyTime{} + 1h;
  b.record(false, t);
  b.record(false, t);
  for (int i = 0; i < 4; ++i) b.record(true, t);  // pushes both failures out
  EXPECT_DOUBLE_EQ(b.failure_rate(), 0.0);
  b.record(false, t);
  b.record(false, t);
  EXPECT_EQ(b.state(t), BreakerState::closed);  // 2 of 4 < 0.75
  b.record(false, t);
  EXPECT_EQ(b.state(t), BreakerState::open);  // 3 of 4
}

TEST(BreakerBoard, KeepsOneBreakerPerProviderAndModel) {
  BreakerBoard board(BreakerConfig{10, 1, 0.5, 1000});
  const auto t = SteadyTime{} + 1h;
  board.at("openai", "gpt-4o-mini").record(false, t);
  EXPECT_EQ(board.at("openai", "gpt-4o-mini").state(t), BreakerState::open);
  EXPECT_EQ(board.at("openai", "gpt-4o").state(t), BreakerState::closed);
  EXPECT_EQ(board.at("groq", "gpt-4o-mini").state(t), BreakerState::closed);
  int n = 0;
  board.for_each([&](const std::string&, const std::string&, const CircuitBreaker&) { ++n; });
  EXPECT_EQ(n, 3);
}

}  // namespace
}  // namespace cascade

namespace cascade {
namespace {

using namespace std::chrono_literals;

TEST(TokenBucket, AllowsABurstThenRefillsAtTheRate) {
  TokenBucket bucket(10, 5);  // 10/s, burst 5
  const auto t0 = SteadyTime{} + 1h;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(bucket.try_take(1, t0));
  EXPECT_FALSE(bucket.try_take(1, t0));
  EXPECT_EQ(bucket.available_at(1, t0), t0 + 100ms);
  EXPECT_FALSE(bucket.try_take(1, t0 + 99ms));
  EXPECT_TRUE(bucket.try_take(1, t0 + 100ms));
  // Never more than the burst, however long it rests.
  EXPECT_DOUBLE_EQ(bucket.level(t0 + 1h), 5.0);
}

TEST(TokenBucket, SettlesEstimatesAndCanGoIntoDebt) {
  TokenBucket bucket(100, 1000);
  const auto t0 = SteadyTime{} + 1h;
  ASSERT_TRUE(bucket.try_take(800, t0));  // estimate
  bucket.give_back(-500, t0);             // the call used 500 more than estimated
  EXPECT_DOUBLE_EQ(bucket.level(t0), -300.0);
  EXPECT_FALSE(bucket.try_take(1, t0 + 1s));  // -300 + 100
  const auto wait = bucket.available_at(1, t0 + 1s) - (t0 + 1s);  // 201 missing at 100/s
  const double wait_ms = std::chrono::duration<double, std::milli>(wait).count();
  EXPECT_NEAR(wait_ms, 2010.0, 0.001);
}

TEST(TokenBucket, ANewRateKeepsWhatRefilledAtTheOldOneUpToTheNewBurstAndAddsNothing) {
  TokenBucket bucket(10, 10);
  const auto t0 = SteadyTime{} + 1h;
  ASSERT_TRUE(bucket.try_take(10, t0));
  // Half a second at 10/s refilled 5; from then on 2/s with a burst of 4.
  bucket.set_rate(2, 4, t0 + 500ms);
  EXPECT_DOUBLE_EQ(bucket.burst(), 4.0);
  EXPECT_DOUBLE_EQ(bucket.level(t0 + 500ms), 4.0);
  ASSERT_TRUE(bucket.try_take(4, t0 + 500ms));
  EXPECT_EQ(bucket.available_at(1, t0 + 500ms), t0 + 1000ms);
  // A larger share: the refill speeds up, but no tokens appear from nowhere.
  bucket.set_rate(20, 20, t0 + 1000ms);
  EXPECT_DOUBLE_EQ(bucket.level(t0 + 1000ms), 1.0);
  EXPECT_DOUBLE_EQ(bucket.level(t0 + 1500ms), 11.0);
  EXPECT_DOUBLE_EQ(bucket.level(t0 + 1h), 20.0);
}

TEST(TokenBucket, RateZeroIsUnlimited) {
  TokenBucket bucket(0, 0);
  const auto t0 = SteadyTime{} + 1h;
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(bucket.try_take(1e6, t0));
  EXPECT_EQ(bucket.available_at(1e9, t0), t0);
}

}  // namespace
}  // namespace cascade
