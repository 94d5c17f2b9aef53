#include "providers/retry_after.h"

#include <gtest/gtest.h>

namespace cascade {
namespace {

TEST(RetryAfterHeader, ReadsDeltaSecondsAndMilliseconds) {
  EXPECT_EQ(retry_after_ms_from_header("Retry-After", "7"), 7000);
  EXPECT_EQ(retry_after_ms_from_header("retry-after", " 0.5 "), 500);
  EXPECT_EQ(retry_after_ms_from_header("retry-after-ms", "1234"), 1234);
}

TEST(RetryAfterHeader, IgnoresHttpDatesAndOtherHeaders) {
  EXPECT_EQ(retry_after_ms_from_header("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"), std::nullopt);
  EXPECT_EQ(retry_after_ms_from_header("Content-Type", "5"), std::nullopt);
  EXPECT_EQ(retry_after_ms_from_header("Retry-After", "-3"), std::nullopt);
}

TEST(RetryAfterHeader, ReadsOpenAiRateLimitResetDurations) {
  EXPECT_EQ(retry_after_ms_from_header("x-ratelimit-reset-requests", "6m0s"), 360000);
  EXPECT_EQ(retry_after_ms_from_header("X-RateLimit-Reset-Tokens", "20ms"), 20);
  EXPECT_EQ(retry_after_ms_from_header("x-ratelimit-reset-tokens", "1.5s"), 1500);
  EXPECT_TRUE(is_rate_limit_reset_header("x-ratelimit-reset-requests"));
  EXPECT_FALSE(is_rate_limit_reset_header("retry-after"));
}

TEST(RetryAfterTracker, ExplicitRetryAfterWinsOverRateLimitResetsInAnyOrder) {
  RetryAfterTracker before;
  before.observe("x-ratelimit-reset-requests", "200ms");
  before.observe("retry-after", "3");
  EXPECT_EQ(before.ms(), 3000);
  EXPECT_TRUE(before.explicit_wait());

  RetryAfterTracker after;
  after.observe("retry-after-ms", "1500");
  after.observe("x-ratelimit-reset-tokens", "10ms");
  EXPECT_EQ(after.ms(), 1500);
}

TEST(RetryAfterTracker, TakesTheEarliestResetWhenNothingExplicitIsSaid) {
  RetryAfterTracker t;
  EXPECT_EQ(t.ms(), -1);
  t.observe("x-ratelimit-reset-requests", "6m0s");
  t.observe("x-ratelimit-reset-tokens", "2s");
  t.observe("content-type", "text/event-stream");
  EXPECT_EQ(t.ms(), 2000);
  EXPECT_FALSE(t.explicit_wait());
}

TEST(Duration, ParsesCompoundAndRejectsGarbage) {
  EXPECT_EQ(parse_duration_ms("1h2m3.5s"), 3723500);
  EXPECT_EQ(parse_duration_ms("250ms"), 250);
  EXPECT_EQ(parse_duration_ms("abc"), std::nullopt);
  EXPECT_EQ(parse_duration_ms("5d"), std::nullopt);
  EXPECT_EQ(parse_duration_ms(""), std::nullopt);
}

}  // namespace
}  // namespace cascade
