// UTC days as every figure by day names them (core/utc_day.h).
#include <gtest/gtest.h>

#include "core/utc_day.h"

namespace cascade {
namespace {

TEST(UtcDay, NamesTheUtcCalendarDayOfATimeAndParsesItBackToItsMidnight) {
  constexpr std::int64_t kDay = 86'400'000;
  const std::int64_t midnight = 1767225600000;  // 2026-01-01T00:00:00Z
  EXPECT_EQ(utc_day(midnight), "2026-01-01");
  EXPECT_EQ(utc_day(midnight + kDay - 1), "2026-01-01");
  EXPECT_EQ(utc_day(midnight - 1), "2025-12-31");
  EXPECT_EQ(utc_day(0), "1970-01-01");
  EXPECT_EQ(parse_utc_day("2026-01-01"), midnight);
  EXPECT_EQ(parse_utc_day(utc_day(midnight + 12345)), midnight);
  EXPECT_EQ(parse_utc_day("2024-02-29"), *parse_utc_day("2024-02-28") + kDay);  // a leap day
  EXPECT_FALSE(parse_utc_day("2026-02-29"));
  EXPECT_FALSE(parse_utc_day("2026-13-01"));
  EXPECT_FALSE(parse_utc_day("2026-1-01"));
  EXPECT_FALSE(parse_utc_day("2026/01/01"));
  EXPECT_FALSE(parse_utc_day(""));
}

}  // namespace
}  // namespace cascade
