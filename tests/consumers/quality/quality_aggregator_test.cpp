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
