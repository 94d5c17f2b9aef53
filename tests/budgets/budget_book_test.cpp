#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "budgets/budgets.h"
#include "support/config_file.h"

namespace cascade {
namespace {

// 2026-07-14T12:00:00Z.
constexpr std::int64_t kNoon = 1'784'030'400'000;
constexpr std::int64_t kDay = 86'400'000;

SpendRecord spend_of(std::string tenant, std::string scope, BudgetPeriod period, double usd, std::int64_t at = kNoon) {
  return {std::move(tenant), std::move(scope), period, period_id(period, at), usd, 1, at};
}

TEST(BudgetPeriods, AreUtcCalendarDaysAndMonths) {
  EXPECT_EQ(utc_day(kNoon), "2026-07-14");
  EXPECT_EQ(period_id(BudgetPeriod::daily, kNoon), "2026-07-14");
  EXPECT_EQ(period_id(BudgetPeriod::monthly, kNoon), "2026-07");
  const std::int64_t midnight = *parse_utc_day("2026-07-14");
  EXPECT_EQ(utc_day(midnight), "2026-07-14");
  EXPECT_EQ(utc_day(midnight - 1), "2026-07-13");
  EXPECT_EQ(period_id(BudgetPeriod::monthly, *parse_utc_day("2026-08-01") - 1), "2026-07");
  EXPECT_FALSE(parse_utc_day("2026-02-30"));
  EXPECT_FALSE(parse_utc_day("2026-7-14"));
  EXPECT_FALSE(parse_utc_day("yesterday"));
}

TEST(BudgetBook, NoBudgetMeansOkWithUnlimitedRemaining) {
  BudgetBook book;
  const auto d = book.check("acme", "gpt-4o", {}, 100.0, kNoon);
  EXPECT_EQ(d.verdict, BudgetVerdict::ok);
  EXPECT_TRUE(std::isinf(d.remaining_usd));
  EXPECT_EQ(d.state_age_ms, -1);
}

TEST(BudgetBook, VerdictFollowsSpendPlusEstimateAgainstSoftAndHardLimits) {
  BudgetBook book({{"acme", "", {10, 100, 80}}});
  book.set_spend(spend_of("acme", "", BudgetPeriod::daily, 7.0));
  EXPECT_EQ(book.check("acme", "m", {}, 0.5, kNoon).verdict, BudgetVerdict::ok);  // 7.5 <= 8
  auto soft = book.check("acme", "m", {}, 1.5, kNoon);                             // 8.5 > 8
  EXPECT_EQ(soft.verdict, BudgetVerdict::soft_exceeded);
  EXPECT_NE(soft.reason.find("daily"), std::string::npos) << soft.reason;
  auto hard = book.check("acme", "m", {}, 3.5, kNoon);  // 10.5 > 10
  EXPECT_EQ(hard.verdict, BudgetVerdict::hard_exceeded);
  EXPECT_DOUBLE_EQ(hard.remaining_usd, 3.0);
  EXPECT_EQ(hard.period, BudgetPeriod::daily);
  EXPECT_NE(hard.reason.find("budget exceeded"), std::string::npos) << hard.reason;
  EXPECT_EQ(hard.state_age_ms, 0);
}

TEST(BudgetBook, MonthlyLimitBindsWhenTheDayIsFine) {
  BudgetBook book({{"acme", "", {10, 100, 80}}});
  book.set_spend(spend_of("acme", "", BudgetPeriod::daily, 1.0));
  book.set_spend(spend_of("acme", "", BudgetPeriod::monthly, 99.5));
  const auto d = book.check("acme", "m", {}, 1.0, kNoon);
  EXPECT_EQ(d.verdict, BudgetVerdict::hard_exceeded);
  EXPECT_EQ(d.period, BudgetPeriod::monthly);
  EXPECT_DOUBLE_EQ(d.remaining_usd, 0.5);
}

TEST(BudgetBook, SpendOfAnEarlierPeriodDoesNotCount) {
  BudgetBook book({{"acme", "", {10, 0, 80}}});
  book.set_spend(spend_of("acme", "", BudgetPeriod::daily, 9.99, kNoon - kDay));
  EXPECT_DOUBLE_EQ(book.spend("acme", "", BudgetPeriod::daily, kNoon), 0);
  EXPECT_EQ(book.check("acme", "m", {}, 1.0, kNoon).verdict, BudgetVerdict::ok);
  // Seen from the day before, the same record counts.
  EXPECT_DOUBLE_EQ(book.spend("acme", "", BudgetPeriod::daily, kNoon - kDay), 9.99);
}

TEST(BudgetBook, AnOlderPeriodNeverReplacesANewerOne) {
  BudgetBook book;
  book.set_spend(spend_of("acme", "", BudgetPeriod::daily, 2.0, kNoon));
  book.set_spend(spend_of("acme", "", BudgetPeriod::daily, 9.0, kNoon - kDay));
  EXPECT_DOUBLE_EQ(book.spend("acme", "", BudgetPeriod::daily, kNoon), 2.0);
}

TEST(BudgetBook, ModelAndTagBudgetsApplyOnlyToTheirRequests) {
  BudgetBook book({{"acme", model_scope("gpt-4o"), {1, 0, 80}}, {"acme", tag_scope("research"), {0, 5, 80}}});
  book.set_spend(spend_of("acme", model_scope("gpt-4o"), BudgetPeriod::daily, 0.99));
  book.set_spend(spend_of("acme", tag_scope("research"), BudgetPeriod::monthly, 4.99));
  EXPECT_EQ(book.check("acme", "gpt-4o-mini", {}, 0.5, kNoon).verdict, BudgetVerdict::ok);
  const auto model = book.check("acme", "gpt-4o", {}, 0.5, kNoon);
  EXPECT_EQ(model.verdict, BudgetVerdict::hard_exceeded);
  EXPECT_EQ(model.scope, model_scope("gpt-4o"));
  const std::vector<std::string> tags{"research"};
  const auto tag = book.check("acme", "gpt-4o-mini", tags, 0.5, kNoon);
  EXPECT_EQ(tag.verdict, BudgetVerdict::hard_exceeded);
  EXPECT_EQ(tag.scope, tag_scope("research"));
  EXPECT_EQ(tag.period, BudgetPeriod::monthly);
}

TEST(BudgetBook, TenantsNeverSeeEachOthersBudgetsOrSpend) {
  BudgetBook book({{"acme", "", {1, 0, 80}}});
  book.set_spend(spend_of("acme", "", BudgetPeriod::daily, 5.0));
  book.set_spend(spend_of("globex", "", BudgetPeriod::daily, 0.1));
  EXPECT_EQ(book.check("globex", "m", {}, 10.0, kNoon).verdict, BudgetVerdict::ok);
  EXPECT_EQ(book.check("acme", "m", {}, 0.0, kNoon).verdict, BudgetVerdict::hard_exceeded);
}

TEST(BudgetBook, RuntimeBudgetOverridesTheConfiguredOneUntilRemoved) {
  BudgetBook book({{"acme", "", {10, 0, 80}}});
  const Budget runtime{"acme", "", {2, 50, 90}};
  ASSERT_TRUE(book.apply_budget_record(budget_record_key("acme", ""), encode_budget_record(runtime, kNoon)));
  EXPECT_DOUBLE_EQ(book.limits("acme", "")->daily_usd, 2);
  EXPECT_DOUBLE_EQ(book.limits("acme", "")->soft_percent, 90);
  auto statuses = book.statuses("acme", kNoon);
  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_TRUE(statuses[0].runtime);
  ASSERT_TRUE(book.apply_budget_record(budget_record_key("acme", ""), std::nullopt));
  EXPECT_DOUBLE_EQ(book.limits("acme", "")->daily_usd, 10);
  EXPECT_FALSE(book.statuses("acme", kNoon)[0].runtime);
}

TEST(BudgetRecords, RoundTripAndRejectBadShapes) {
  const Budget b{"a \"quoted\" tenant", model_scope("gpt-4o"), {1.5, 20, 75}};
  auto decoded = decode_budget_record(encode_budget_record(b, kNoon));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(decoded->tenant, b.tenant);
  EXPECT_EQ(decoded->scope, b.scope);
  EXPECT_DOUBLE_EQ(decoded->limits.daily_usd, 1.5);
  EXPECT_DOUBLE_EQ(decoded->limits.monthly_usd, 20);
  EXPECT_DOUBLE_EQ(decoded->limits.soft_percent, 75);
  auto key = decode_budget_key(budget_record_key(b.tenant, b.scope));
  ASSERT_TRUE(key);
  EXPECT_EQ(key->first, b.tenant);
  EXPECT_FALSE(decode_budget_record(R"({"tenant":"a","daily_usd":-1})"));
  EXPECT_FALSE(decode_budget_record(R"({"tenant":"a","scope":"team:x"})"));
  EXPECT_FALSE(decode_budget_record(R"({"tenant":"a","soft_percent":0})"));
  EXPECT_FALSE(decode_budget_record("not json"));

  const SpendRecord s = spend_of("acme", tag_scope("x"), BudgetPeriod::monthly, 3.25);
  auto spend = decode_spend_record(encode_spend_record(s));
  ASSERT_TRUE(spend) << spend.error().message;
  EXPECT_EQ(spend->period_id, "2026-07");
  EXPECT_DOUBLE_EQ(spend->spend_usd, 3.25);
  EXPECT_EQ(spend->period, BudgetPeriod::monthly);
}

TEST(BudgetBook, HeartbeatGivesTheAgeOfTheSpendState) {
  BudgetBook book;
  ASSERT_TRUE(book.apply_spend_record(kSpendHeartbeatKey, encode_spend_heartbeat(kNoon - 1500)));
  EXPECT_EQ(book.check("acme", "m", {}, 0, kNoon).state_age_ms, 1500);
}

TEST(BudgetBook, HasBudgetsOnlyForTenantsABudgetNames) {
  BudgetBook book({{"acme", "tag:research", {0, 30, 80}}});
  EXPECT_TRUE(book.has_budgets("acme"));
  EXPECT_FALSE(book.has_budgets("acm"));
  EXPECT_FALSE(book.has_budgets("acme2"));
  book.set_runtime_budget({"globex", "", {5, 0, 80}});
  EXPECT_TRUE(book.has_budgets("globex"));
  book.remove_runtime_budget("globex", "");
  EXPECT_FALSE(book.has_budgets("globex"));
}

TEST(PendingSpend, RequestsInFlightCountAgainstTheLimitSoConcurrentOnesCannotOvershoot) {
  BudgetBook book({{"acme", "", {10, 0, 100}}});
  book.set_spend(spend_of("acme", "", BudgetPeriod::daily, 7.0));
  PendingSpend pending(2000);
  // Three requests estimated at $1 each fit ($7 + 3); the fourth would not.
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(book.check("acme", "m", {}, 1.0, kNoon, &pending).verdict, BudgetVerdict::ok) << i;
    pending.reserve("acme", "m", {}, 1.0);
  }
  const auto fourth = book.check("acme", "m", {}, 1.0, kNoon, &pending);
  EXPECT_EQ(fourth.verdict, BudgetVerdict::hard_exceeded);
  EXPECT_NE(fourth.reason.find("pending $3.00"), std::string::npos) << fourth.reason;
  EXPECT_DOUBLE_EQ(fourth.remaining_usd, 0.0);
  // Without the pending spend the state alone would have let it through.
  EXPECT_EQ(book.check("acme", "m", {}, 1.0, kNoon).verdict, BudgetVerdict::ok);
  // Other tenants are not charged with acme's requests.
  EXPECT_DOUBLE_EQ(pending.amount("globex", ""), 0.0);
}

TEST(PendingSpend, AFinishedRequestCountsItsActualCostUntilTheLedgerStateIncludesIt) {
  PendingSpend pending(2000);
  const std::vector<std::string> tags{"research", "research"};
  const auto id = pending.reserve("acme", "gpt-4o", tags, 1.0);
  EXPECT_DOUBLE_EQ(pending.amount("acme", ""), 1.0);
  EXPECT_DOUBLE_EQ(pending.amount("acme", model_scope("gpt-4o")), 1.0);
  EXPECT_DOUBLE_EQ(pending.amount("acme", tag_scope("research")), 1.0);  // a tag named twice counts once
  pending.settle(id, 0.25, kNoon);
  EXPECT_EQ(pending.reservations(), 0u);
  EXPECT_DOUBLE_EQ(pending.amount("acme", ""), 0.25);
  pending.settle(id, 0.25, kNoon);  // settled already: ignored
  EXPECT_DOUBLE_EQ(pending.amount("acme", ""), 0.25);
  // The ledger was heard from, but not settle_ms after the request finished.
  pending.forget_included(kNoon + 1999, kNoon + 1999);
  EXPECT_DOUBLE_EQ(pending.amount("acme", ""), 0.25);
  pending.forget_included(kNoon + 2000, kNoon + 2000);
  EXPECT_DOUBLE_EQ(pending.amount("acme", ""), 0.0);
  EXPECT_EQ(pending.settled(), 0u);
}

TEST(PendingSpend, WithTheLedgerSilentFinishedCostsAreKeptUpToTheirMaximumAge) {
  PendingSpend pending(2000);
  pending.settle(pending.reserve("acme", "", {}, 1.0), 0.5, kNoon);
  pending.forget_included(0, kNoon + 60'000, 120'000);
  EXPECT_DOUBLE_EQ(pending.amount("acme", ""), 0.5);
  pending.forget_included(0, kNoon + 120'001, 120'000);
  EXPECT_DOUBLE_EQ(pending.amount("acme", ""), 0.0);
}

TEST(PendingSpend, ARequestThatPaidNothingLeavesNothingPending) {
  PendingSpend pending(2000);
  const auto a = pending.reserve("acme", "m", {}, 0.3);
  const auto b = pending.reserve("acme", "m", {}, 0.1);
  pending.settle(a, 0.0, kNoon);
  EXPECT_NEAR(pending.amount("acme", ""), 0.1, 1e-12);
  pending.settle(b, 0.0, kNoon);
  EXPECT_EQ(pending.amount("acme", ""), 0.0);  // exactly: no rounding residue
  EXPECT_EQ(pending.settled(), 0u);
}

TEST(BudgetConfig, YamlBudgetsBecomeOneBudgetPerTenantAndScope) {
  auto config = testing::load_config_text(
      "budgets:\n  acme:\n    daily_usd: 10\n    monthly_usd: 100\n    soft_percent: 70\n"
      "    models:\n      gpt-4o: {daily_usd: 2}\n    tags:\n      research: {monthly_usd: 30}\n");
  ASSERT_TRUE(config) << config.error().message;
  BudgetBook book(budgets_from_config(*config));
  ASSERT_TRUE(book.limits("acme", ""));
  EXPECT_DOUBLE_EQ(book.limits("acme", "")->monthly_usd, 100);
  ASSERT_TRUE(book.limits("acme", model_scope("gpt-4o")));
  EXPECT_DOUBLE_EQ(book.limits("acme", model_scope("gpt-4o"))->daily_usd, 2);
  // A scoped budget inherits its tenant's soft share.
  EXPECT_DOUBLE_EQ(book.limits("acme", model_scope("gpt-4o"))->soft_percent, 70);
  EXPECT_DOUBLE_EQ(book.limits("acme", tag_scope("research"))->monthly_usd, 30);
  EXPECT_FALSE(book.limits("globex", ""));

  auto typo = testing::load_config_text("budgets:\n  acme:\n    dayly_usd: 10\n");
  ASSERT_FALSE(typo);
  EXPECT_NE(typo.error().message.find("dayly_usd"), std::string::npos) << typo.error().message;
}

}  // namespace
}  // namespace cascade
