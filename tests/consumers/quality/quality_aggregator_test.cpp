// QualityAggregator: quality events counted per tenant, model and tier,
// duplicates once, exported as the cascade_quality_score histogram.
#include <gtest/gtest.h>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "consumers/quality/quality_aggregator.h"
#include "support/quality_event.h"

namespace cascade {
namespace {

QualityEvent graded(std::string id, std::string tenant, std::string model, std::string tier, double score) {
  return testing::graded_event(std::move(id), std::move(tenant), std::move(model), std::move(tier), score);
}

TEST(QualityAggregator, CalibrationSamplesGiveTheServedQualityAsAShareOfTheReferencesPerTenantAndDay) {
  prometheus::Registry registry;
  QualityAggregator quality(&registry);
  constexpr std::int64_t kDay1 = 1767225600000;  // 2026-01-01T00:00Z
  constexpr std::int64_t kDay2 = kDay1 + 86400000;
  ASSERT_TRUE(quality.add(testing::calibration_event("a", "acme", "mini", "small", 4, 5, kDay1)));
  ASSERT_TRUE(quality.add(testing::calibration_event("b", "acme", "mini", "small", 2, 4, kDay1 + 1000)));
  ASSERT_TRUE(quality.add(testing::calibration_event("c", "acme", "mini", "small", 3, 3, kDay2)));
  ASSERT_TRUE(quality.add(testing::graded_event("d", "acme", "mini", "small", 1)));  // no reference grade
  ASSERT_TRUE(quality.add(testing::calibration_event("e", "globex", "mini", "small", 1, 5, kDay1)));
  EXPECT_FALSE(quality.add(testing::calibration_event("a", "acme", "mini", "small", 4, 5, kDay1)));  // duplicate

  const auto days = quality.daily(std::string("acme"));
  ASSERT_EQ(days.size(), 3u);  // 2023-11-14 (the plain sample's day), 2026-01-01, 2026-01-02
  EXPECT_EQ(days[1].day, "2026-01-01");
  EXPECT_EQ(days[1].graded, 2u);
  EXPECT_EQ(days[1].paired, 2u);
  EXPECT_DOUBLE_EQ(days[1].reference_ratio(), 6.0 / 9.0);
  EXPECT_EQ(days[1].reference_model, "gpt-4o");
  EXPECT_DOUBLE_EQ(days[1].answers_cost_usd, 0.004);
  EXPECT_EQ(days[2].day, "2026-01-02");
  EXPECT_DOUBLE_EQ(days[2].reference_ratio(), 1.0);
  EXPECT_EQ(days[0].paired, 0u);
  EXPECT_EQ(days[0].graded, 1u);

  const DailyQuality acme = quality.overall(std::string("acme"));
  EXPECT_EQ(acme.graded, 4u);
  EXPECT_EQ(acme.paired, 3u);
  EXPECT_DOUBLE_EQ(acme.reference_ratio(), 9.0 / 12.0);
  const DailyQuality everyone = quality.overall();
  EXPECT_EQ(everyone.paired, 4u);
  EXPECT_DOUBLE_EQ(everyone.reference_ratio(), 10.0 / 17.0);
  EXPECT_EQ(quality.overall(std::string("initech")).paired, 0u);

  const std::string text = prometheus::TextSerializer().Serialize(registry.Collect());
  EXPECT_NE(text.find(R"(cascade_quality_calibration_samples_total{tenant="acme"} 3)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(cascade_quality_calibration_grade_total{answer="served",tenant="acme"} 9)"), std::string::npos);
  EXPECT_NE(text.find(R"(cascade_quality_calibration_grade_total{answer="reference",tenant="acme"} 12)"),
            std::string::npos);
}

TEST(QualityAggregator, CountsSamplesPerTenantModelAndTierWithTheirMeanAndGrades) {
  QualityAggregator quality;
  EXPECT_TRUE(quality.add(graded("a", "acme", "gpt-4o-mini", "small", 5)));
  EXPECT_TRUE(quality.add(graded("b", "acme", "gpt-4o-mini", "small", 2)));
  EXPECT_TRUE(quality.add(graded("c", "acme", "gpt-4o-mini", "small", 3.6)));
  EXPECT_TRUE(quality.add(graded("d", "acme", "gpt-5-mini", "medium", 4)));
  EXPECT_TRUE(quality.add(graded("e", "globex", "gpt-4o-mini", "small", 1)));

  const auto acme = quality.rows(std::string("acme"));
  ASSERT_EQ(acme.size(), 2u);
  EXPECT_EQ(acme[0].model, "gpt-4o-mini");
  EXPECT_EQ(acme[0].samples, 3u);
  EXPECT_NEAR(acme[0].mean_score(), (5 + 2 + 3.6) / 3, 1e-12);
  EXPECT_EQ(acme[0].by_grade, (std::array<std::uint64_t, 5>{0, 1, 0, 1, 1}));  // 3.6 counts as a 4
  EXPECT_NEAR(acme[0].judge_cost_usd, 0.003, 1e-12);
  EXPECT_EQ(acme[1].model, "gpt-5-mini");
  EXPECT_EQ(acme[1].tier, "medium");

  const QualityRow small = quality.total("gpt-4o-mini", "small");
  EXPECT_EQ(small.samples, 4u);
  EXPECT_NEAR(small.mean_score(), (5 + 2 + 3.6 + 1) / 4, 1e-12);
  EXPECT_EQ(quality.rows().size(), 3u);
  EXPECT_EQ(quality.total("gpt-4o", "medium").samples, 0u);
}

TEST(QualityAggregator, TheSameRequestOfTheSameTenantCountsOnce) {
  QualityAggregator quality;
  EXPECT_TRUE(quality.add(graded("a", "acme", "gpt-4o-mini", "small", 5)));
  EXPECT_FALSE(quality.add(graded("a", "acme", "gpt-4o-mini", "small", 1)));
  EXPECT_TRUE(quality.add(graded("a", "globex", "gpt-4o-mini", "small", 1)));  // ids are per tenant
  EXPECT_EQ(quality.total("gpt-4o-mini", "small").samples, 2u);
}

TEST(QualityAggregator, ForgetsIdsBeyondItsDedupeWindow) {
  QualityAggregator quality(nullptr, /*dedupe_window=*/2);
  EXPECT_TRUE(quality.add(graded("a", "acme", "m", "small", 3)));
  EXPECT_TRUE(quality.add(graded("b", "acme", "m", "small", 3)));
  EXPECT_TRUE(quality.add(graded("c", "acme", "m", "small", 3)));
  EXPECT_TRUE(quality.add(graded("a", "acme", "m", "small", 3)));  // "a" fell out of the window
  EXPECT_FALSE(quality.add(graded("c", "acme", "m", "small", 3)));
}

TEST(QualityAggregator, AppliesSerializedEventsAndRefusesOthersWithTheReason) {
  QualityAggregator quality;
  auto ok = quality.apply(make_quality_event(graded("a", "acme", "gpt-4o-mini", "small", 4)));
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_TRUE(*ok);
  auto bad = quality.apply(R"({"v":1,"id":"x","tenant":"acme","model":"m","tier":"small","judge_model":"j","score":9,"ts":1})");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("score"), std::string::npos) << bad.error().message;
  EXPECT_FALSE(quality.apply("not json"));
  EXPECT_EQ(quality.total("gpt-4o-mini", "small").samples, 1u);
}

TEST(QualityAggregator, ExportsAHistogramOfGradesByTenantModelAndTierAndTheJudgeCost) {
  prometheus::Registry registry;
  QualityAggregator quality(&registry);
  quality.add(graded("a", "acme", "gpt-4o-mini", "small", 5));
  quality.add(graded("b", "acme", "gpt-4o-mini", "small", 2));
  const std::string text = prometheus::TextSerializer().Serialize(registry.Collect());
  EXPECT_NE(text.find(R"(cascade_quality_score_count{model="gpt-4o-mini",tenant="acme",tier="small"} 2)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(cascade_quality_score_sum{model="gpt-4o-mini",tenant="acme",tier="small"} 7)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(cascade_quality_score_bucket{model="gpt-4o-mini",tenant="acme",tier="small",le="2"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(cascade_quality_judge_cost_usd_total{judge_model="gpt-4o",tenant="acme"} 0.002)"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace cascade
