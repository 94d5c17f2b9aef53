#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "consumers/ledger/ledger.h"
#include "cost_event_builder.h"
#include "support/quality_event.h"

namespace cascade {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ledger_test::make_cost;

// The line of the model mix table (or summary) that starts with `prefix`.
std::string line_starting_with(const std::string& report, const std::string& prefix) {
  std::size_t at = report.find("\n" + prefix);
  if (at == std::string::npos) return "";
  std::size_t end = report.find('\n', at + 1);
  return report.substr(at + 1, end - at - 1);
}

TEST(SavingsReport, ShowsCostBaselineSavingsAndPercentage) {
  LedgerAggregator ledger;
  ledger.apply(make_cost({.id = "1", .model = "small", .cost_usd = 1, .baseline_cost_usd = 5,
                          .latency_ms = 400, .ttft_ms = 100}));
  ledger.apply(make_cost({.id = "2", .model = "small", .cost_usd = 3, .baseline_cost_usd = 3,
                          .latency_ms = 600, .ttft_ms = 300}));
  ledger.apply(make_cost({.id = "3", .model = "large", .cost_usd = 0, .baseline_cost_usd = 2,
                          .cache = CacheOutcome::exact, .latency_ms = 2000, .ttft_ms = 200}));
  ledger.apply(make_cost({.id = "4", .model = "small", .cost_usd = 0, .baseline_cost_usd = 0,
                          .cache = CacheOutcome::semantic, .latency_ms = 1000, .ttft_ms = 200}));

  const std::string report = format_savings_report(ledger, "gpt-4o");

  EXPECT_THAT(report, HasSubstr("all tenants"));
  EXPECT_THAT(line_starting_with(report, "Requests"), HasSubstr("4"));
  EXPECT_THAT(line_starting_with(report, "Cache hits"), HasSubstr("2 (50.0% hit rate)"));
  EXPECT_THAT(line_starting_with(report, "Actual cost"), HasSubstr("$4.00"));
  EXPECT_THAT(line_starting_with(report, "Baseline cost"),
              HasSubstr("$10.00 (if every request had gone to gpt-4o)"));
  EXPECT_THAT(line_starting_with(report, "Savings"), HasSubstr("$6.00 (60.0% of baseline)"));
  EXPECT_THAT(line_starting_with(report, "Avg latency"), HasSubstr("1.00 s"));
  EXPECT_THAT(line_starting_with(report, "Avg TTFT"), HasSubstr("200 ms"));

  const std::string small = line_starting_with(report, "small ");
  EXPECT_THAT(small, HasSubstr(" 3 "));
  EXPECT_THAT(small, HasSubstr("75.0%"));
  EXPECT_THAT(small, HasSubstr(std::string(23, '#') + " "));  // 0.75 * 30 columns, rounded
  EXPECT_THAT(small, HasSubstr("$4.00"));
  const std::string large = line_starting_with(report, "large ");
  EXPECT_THAT(large, HasSubstr("25.0%"));
  EXPECT_THAT(large, HasSubstr(" " + std::string(8, '#') + " "));
  EXPECT_THAT(large, HasSubstr("$0.00"));
  // Busiest model first.
  EXPECT_LT(report.find("\nsmall "), report.find("\nlarge "));
}

TEST(SavingsReport, ShowsAPolicySectionOnlyWhenSomeEventHasAPolicy) {
  LedgerAggregator ledger;
  ledger.apply(make_cost({.id = "1", .cost_usd = 1, .baseline_cost_usd = 4}));
  EXPECT_THAT(format_savings_report(ledger, "gpt-4o"), Not(HasSubstr("Policies")));

  ledger.apply(make_cost({.id = "2", .cost_usd = 1, .baseline_cost_usd = 4, .policy = "thrift:frugal"}));
  ledger.apply(make_cost({.id = "3", .cost_usd = 2, .baseline_cost_usd = 4, .policy = "thrift:frugal"}));
  ledger.apply(make_cost({.id = "4", .cost_usd = 4, .baseline_cost_usd = 4, .policy = "thrift:careful"}));
  ledger.apply(make_cost({.id = "5", .tenant = "globex", .cost_usd = 8, .baseline_cost_usd = 8,
                          .policy = "thrift:careful"}));
  const std::string report = format_savings_report(ledger, "gpt-4o");
  EXPECT_THAT(report, HasSubstr("Policies (routing policy or experiment arm)"));
  const std::string frugal = line_starting_with(report, "thrift:frugal");
  EXPECT_THAT(frugal, HasSubstr(" 2 "));
  EXPECT_THAT(frugal, HasSubstr("$3.00"));   // cost
  EXPECT_THAT(frugal, HasSubstr("$1.50"));   // cost per request
  EXPECT_THAT(frugal, HasSubstr("$5.00"));   // savings
  EXPECT_THAT(frugal, HasSubstr("62.5%"));   // of the $8 baseline
  const std::string careful = line_starting_with(report, "thrift:careful");
  EXPECT_THAT(careful, HasSubstr(" 2 "));
  EXPECT_THAT(careful, HasSubstr("0.0%"));

  // A tenant's report shows only its own policy figures.
  const std::string globex = format_savings_report(ledger, "gpt-4o", "globex");
  EXPECT_THAT(line_starting_with(globex, "thrift:careful"), HasSubstr(" 1 "));
  EXPECT_THAT(globex, Not(HasSubstr("thrift:frugal")));
}

TEST(SavingsReport, ShowsFractionsOfACentWithSixDecimals) {
  LedgerAggregator ledger;
  ledger.apply(make_cost({.id = "1", .cost_usd = 0.000123, .baseline_cost_usd = 0.0041}));

  const std::string report = format_savings_report(ledger, "gpt-4o");

  EXPECT_THAT(line_starting_with(report, "Actual cost"), HasSubstr("$0.000123"));
  EXPECT_THAT(line_starting_with(report, "Baseline cost"), HasSubstr("$0.004100"));
  EXPECT_THAT(line_starting_with(report, "Savings"), HasSubstr("$0.003977 (97.0% of baseline)"));
}

TEST(SavingsReport, ShowsNegativeSavingsWhenRoutingCostMoreThanBaseline) {
  LedgerAggregator ledger;
  ledger.apply(make_cost({.id = "1", .cost_usd = 12.5, .baseline_cost_usd = 10}));

  const std::string report = format_savings_report(ledger, "gpt-4o");

  EXPECT_THAT(line_starting_with(report, "Savings"), HasSubstr("-$2.50 (-25.0% of baseline)"));
}

TEST(SavingsReport, TenantReportContainsOnlyThatTenant) {
  LedgerAggregator ledger;
  ledger.apply(make_cost({.id = "1", .tenant = "acme", .model = "small", .cost_usd = 1, .baseline_cost_usd = 2}));
  ledger.apply(make_cost({.id = "2", .tenant = "globex", .model = "globex-private-model", .cost_usd = 777,
                          .baseline_cost_usd = 999}));

  const std::string report = format_savings_report(ledger, "gpt-4o", "acme");

  EXPECT_THAT(report, HasSubstr("tenant acme"));
  EXPECT_THAT(report, Not(HasSubstr("globex")));
  EXPECT_THAT(report, Not(HasSubstr("777")));
  EXPECT_THAT(report, Not(HasSubstr("999")));
  EXPECT_THAT(line_starting_with(report, "Requests"), HasSubstr("1"));
  EXPECT_THAT(line_starting_with(report, "Actual cost"), HasSubstr("$1.00"));
  EXPECT_THAT(line_starting_with(report, "Savings"), HasSubstr("$1.00 (50.0% of baseline)"));
  EXPECT_THAT(line_starting_with(report, "small "), HasSubstr("100.0%"));
}

TEST(SavingsReport, SaysSoWhenNothingWasRecorded) {
  LedgerAggregator ledger;
  ledger.apply(make_cost({.id = "1", .tenant = "acme", .cost_usd = 1}));

  const std::string report = format_savings_report(ledger, "gpt-4o", "nobody");

  EXPECT_THAT(report, HasSubstr("tenant nobody"));
  EXPECT_THAT(report, HasSubstr("No requests recorded."));
  EXPECT_THAT(report, Not(HasSubstr("$1.00")));
}

TEST(SavingsReport, ShowsCentsToFourDecimalsBelowADollar) {
  LedgerAggregator ledger;
  ledger.apply(make_cost({.id = "1", .cost_usd = 0.0186, .baseline_cost_usd = 0.21}));

  const std::string report = format_savings_report(ledger, "gpt-4o");

  EXPECT_THAT(line_starting_with(report, "Actual cost"), ::testing::EndsWith("$0.0186"));
  EXPECT_THAT(line_starting_with(report, "Baseline cost"), HasSubstr("$0.2100 "));
}

TEST(SavingsReport, GroupsThousandsInLargeAmounts) {
  LedgerAggregator ledger;
  ledger.apply(make_cost({.id = "1", .cost_usd = 1234567.891, .baseline_cost_usd = 2000000}));

  const std::string report = format_savings_report(ledger, "gpt-4o");

  EXPECT_THAT(line_starting_with(report, "Actual cost"), HasSubstr("$1,234,567.89"));
  EXPECT_THAT(line_starting_with(report, "Baseline cost"), HasSubstr("$2,000,000.00"));
}

TEST(SavingsReport, SinceCountsOnlyRecentRequestsButBudgetSpendCountsTheWholePeriod) {
  const std::int64_t now = now_ms();
  LedgerAggregator ledger(now - 3'600'000);  // the last hour
  ledger.apply(make_cost({.id = "old", .model = "small", .cost_usd = 2, .baseline_cost_usd = 4,
                          .ts_ms = now - 7'200'000}));
  ledger.apply(make_cost({.id = "new", .model = "large", .cost_usd = 1, .baseline_cost_usd = 4, .ts_ms = now}));
  ledger.apply(make_cost({.id = "old", .model = "small", .cost_usd = 2, .ts_ms = now - 7'200'000}));  // again
  SavingsReportOptions options;
  options.window = "last 1h";
  BudgetStatus status;
  status.budget = {"acme", "", {4, 100, 80}};
  // Two hours ago may be yesterday (UTC); the day's spend is whatever this day holds.
  status.spent_daily_usd = ledger.spend("acme", "", BudgetPeriod::daily, now);
  status.spent_monthly_usd = ledger.spend("acme", "", BudgetPeriod::monthly, now);
  options.budgets.push_back(status);
  const std::string report = format_savings_report(ledger, "gpt-4o", options);
  EXPECT_THAT(report, HasSubstr("all tenants, last 1h"));
  EXPECT_THAT(line_starting_with(report, "Requests"), HasSubstr("1"));
  EXPECT_THAT(line_starting_with(report, "Actual cost"), HasSubstr("$1.00"));
  EXPECT_THAT(report, Not(HasSubstr("\nsmall ")));
  EXPECT_EQ(ledger.duplicates(), 1u);
  if (utc_day(now) == utc_day(now - 7'200'000)) {
    EXPECT_DOUBLE_EQ(status.spent_daily_usd, 3.0);
    EXPECT_THAT(report, HasSubstr("daily $3.00 of $4.00 (75.0%)"));
  }
  EXPECT_THAT(report, HasSubstr("Budget use"));
  EXPECT_THAT(line_starting_with(report, "acme tenant"), HasSubstr("of $100.00"));
}

TEST(SavingsReport, FlagsBudgetsPastTheirSoftAndHardLimits) {
  LedgerAggregator ledger;
  ledger.apply(make_cost({.id = "1", .cost_usd = 1, .ts_ms = now_ms()}));
  SavingsReportOptions options;
  BudgetStatus soft;
  soft.budget = {"acme", "", {10, 0, 80}};
  soft.spent_daily_usd = 8.5;
  BudgetStatus hard;
  hard.budget = {"acme", model_scope("gpt-4o"), {1, 0, 80}};
  hard.spent_daily_usd = 1.2;
  hard.runtime = true;
  options.budgets = {soft, hard};
  const std::string report = format_savings_report(ledger, "gpt-4o", options);
  EXPECT_THAT(line_starting_with(report, "acme tenant"), HasSubstr("(85.0%) soft limit passed"));
  EXPECT_THAT(line_starting_with(report, "acme model gpt-4o"), HasSubstr("EXCEEDED"));
  EXPECT_THAT(line_starting_with(report, "acme model gpt-4o"), HasSubstr("[set at run time]"));
}

TEST(SavingsReport, ShowsTheJudgedQualityOfTheCheaperAnswersBesideTheSavings) {
  LedgerAggregator ledger;
  ledger.apply(make_cost({.id = "1", .model = "small", .cost_usd = 1, .baseline_cost_usd = 5}));
  QualityAggregator quality;
  int n = 0;
  // small: 5, 4, 3 from two tenants; medium: 2.
  for (const auto& [tenant, model, tier, score] : std::vector<std::tuple<std::string, std::string, std::string, double>>{
           {"acme", "small", "small", 5}, {"acme", "small", "small", 4}, {"globex", "small", "small", 3},
           {"acme", "medium", "medium", 2}}) {
    ASSERT_TRUE(quality.add(testing::graded_event("q" + std::to_string(++n), tenant, model, tier, score)));
  }
  SavingsReportOptions options;
  options.quality = quality.rows();
  const std::string report = format_savings_report(ledger, "gpt-4o", options);

  EXPECT_THAT(line_starting_with(report, "Quality"),
              HasSubstr("3.50 / 5 mean judged grade of 4 graded answers (50% graded 4 or 5)"));
  EXPECT_LT(report.find("\nSavings"), report.find("\nQuality"));
  ASSERT_THAT(report, HasSubstr("Judged quality"));
  const std::string section = report.substr(report.find("Judged quality"));
  const std::string small = line_starting_with(section, "small  ");
  EXPECT_THAT(small, HasSubstr(" 3 "));     // both tenants' grades together
  EXPECT_THAT(small, HasSubstr("4.00"));    // mean
  EXPECT_THAT(small, HasSubstr("67%"));     // two of three graded 4 or 5
  EXPECT_THAT(small, HasSubstr("$0.0030"));  // judge cost, $0.001 a grade
  EXPECT_THAT(line_starting_with(section, "medium  "), HasSubstr("2.00"));
}

TEST(SavingsReport, AKnownBaselineGradePutsQualityAndCostAsSharesOfTheBaselinesSideBySide) {
  LedgerAggregator ledger;
  ledger.apply(make_cost({.id = "1", .model = "small", .cost_usd = 1, .baseline_cost_usd = 4}));
  QualityAggregator quality;
  ASSERT_TRUE(quality.add(testing::graded_event("q1", "acme", "small", "small", 2.4)));
  SavingsReportOptions options;
  options.quality = quality.rows();
  options.baseline_grade = 3;
  const std::string report = format_savings_report(ledger, "gpt-4o", options);
  EXPECT_THAT(report, HasSubstr("= 80% of gpt-4o's judged quality (its answers grade 3.00) at 25.0% of its cost"));
  options.baseline_grade = 0;
  EXPECT_THAT(format_savings_report(ledger, "gpt-4o", options), Not(HasSubstr("judged quality (its answers")));
}

TEST(SavingsReport, CalibrationSamplesGiveTheMeasuredShareOfTheReferencesQualityAndItsCourseByDay) {
  LedgerAggregator ledger;
  ledger.apply(make_cost({.id = "1", .model = "small", .cost_usd = 1, .baseline_cost_usd = 4}));
  QualityAggregator quality;
  constexpr std::int64_t kDay1 = 1767225600000;  // 2026-01-01
  ASSERT_TRUE(quality.add(testing::calibration_event("q1", "acme", "small", "small", 4, 5, kDay1)));
  ASSERT_TRUE(quality.add(testing::calibration_event("q2", "acme", "small", "small", 3, 3, kDay1 + 86400000)));
  SavingsReportOptions options;
  options.quality = quality.rows();
  options.quality_by_day = quality.daily();
  options.baseline_grade = 3;  // not needed: the measured figure wins
  const std::string report = format_savings_report(ledger, "gpt-4o", options);
  EXPECT_THAT(report, HasSubstr("= 88% of gpt-4o's judged quality on the same prompts (2 calibration samples: "
                                "served 3.50, reference 4.00) at 25.0% of its cost"));
  EXPECT_THAT(report, Not(HasSubstr("its answers grade")));
  ASSERT_THAT(report, HasSubstr("Judged quality by day (UTC)"));
  const std::string section = report.substr(report.find("Judged quality by day"));
  EXPECT_THAT(line_starting_with(section, "2026-01-01"), HasSubstr("80%"));
  EXPECT_THAT(line_starting_with(section, "2026-01-02"), HasSubstr("100%"));
}

TEST(SavingsReport, SaysSoWhenNoAnswerWasGraded) {
  LedgerAggregator ledger;
  ledger.apply(make_cost({.id = "1", .model = "small", .cost_usd = 1, .baseline_cost_usd = 5}));
  SavingsReportOptions options;
  options.quality = std::vector<QualityRow>{};
  const std::string report = format_savings_report(ledger, "gpt-4o", options);
  EXPECT_THAT(line_starting_with(report, "Quality"), HasSubstr("not measured: no answer was graded"));
  EXPECT_THAT(report, Not(HasSubstr("Judged quality")));
  // Not read at all: no line.
  EXPECT_THAT(format_savings_report(ledger, "gpt-4o"), Not(HasSubstr("\nQuality")));
}

}  // namespace
}  // namespace cascade
