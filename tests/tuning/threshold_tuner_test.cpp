// The closed loop's tuner as specification (tuning/tuning.h): evidence with
// confidence bounds, cuts that move only on evidence, and a state per tenant
// and key that is a function of its samples.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "tuning/tuning.h"

namespace cascade {
namespace {

constexpr double kNoFloor = -std::numeric_limits<double>::infinity();

// Prompts at evenly spaced scores in [0, 1); the cheap tier's grade falls
// with the score: 5 (easy) down to 1 (hard), the reference always 4. The
// ratio over scores <= c is then known in closed form.
std::vector<PairedGrade> falling_quality(int n) {
  std::vector<PairedGrade> out;
  for (int i = 0; i < n; ++i) {
    const double s = static_cast<double>(i) / n;
    out.push_back({s, 5 - 4 * s, 4});
  }
  return out;
}

TEST(CutEvidence, RatioIsSumOfCheapGradesOverSumOfReferenceGradesUnderTheCut) {
  const std::vector<PairedGrade> samples = {{0.1, 4, 4}, {0.2, 2, 4}, {0.3, 5, 5}, {0.9, 1, 5}};
  const CutEvidence e = evidence_at(samples, kNoFloor, 0.3, 1.96);
  EXPECT_EQ(e.samples, 3u);
  EXPECT_DOUBLE_EQ(e.ratio, 11.0 / 13.0);
  EXPECT_LT(e.lower, e.ratio);
  EXPECT_GT(e.upper, e.ratio);
  // A floor leaves out what the tier below takes.
  EXPECT_EQ(evidence_at(samples, 0.1, 0.3, 1.96).samples, 2u);
  EXPECT_EQ(evidence_at(samples, kNoFloor, 0.05, 1.96).samples, 0u);
}

TEST(CutEvidence, IdenticalGradesHaveNoUncertainty) {
  std::vector<PairedGrade> samples(30, PairedGrade{0.2, 3, 4});
  const CutEvidence e = evidence_at(samples, kNoFloor, 1, 1.96);
  EXPECT_DOUBLE_EQ(e.ratio, 0.75);
  EXPECT_DOUBLE_EQ(e.lower, 0.75);
  EXPECT_DOUBLE_EQ(e.upper, 0.75);
}

TEST(CutEvidence, TheIntervalNarrowsWithMoreSamples) {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> grade(1, 5);
  std::vector<PairedGrade> samples;
  for (int i = 0; i < 1000; ++i) samples.push_back({0.5, double(grade(rng)), double(grade(rng))});
  const CutEvidence few = evidence_at(std::span(samples).first(40), kNoFloor, 1, 1.96);
  const CutEvidence many = evidence_at(samples, kNoFloor, 1, 1.96);
  EXPECT_GT(few.upper - few.lower, 3 * (many.upper - many.lower));
}

TEST(NextCut, RisesWhenTheLowerBoundAboveTheCurrentCutReachesTheTarget) {
  TuningOptions options;
  options.target = 0.9;
  options.max_step = 0.05;
  // Grades 4.2..5 vs 4 below s=0.2: ratio >= 1 everywhere low.
  const auto samples = falling_quality(1000);
  const CutDecision d = next_cut(samples, kNoFloor, 0.30, 1, options);
  EXPECT_TRUE(d.moved);
  EXPECT_GT(d.cut, 0.30);
  EXPECT_LE(d.cut, 0.35 + 1e-12);  // at most max_step
  EXPECT_GE(d.evidence.lower, 0.9);
  EXPECT_NE(d.why.find("raised"), std::string::npos) << d.why;
}

TEST(NextCut, FallsWhenTheUpperBoundAtTheCurrentCutIsBelowTheTarget) {
  TuningOptions options;
  options.target = 0.95;
  options.max_step = 0.05;
  // Ratio over s <= c is (5 - 2c) / 4: below 0.95 beyond c = 0.6.
  const auto samples = falling_quality(2000);
  const CutDecision d = next_cut(samples, kNoFloor, 0.9, 1, options);
  EXPECT_TRUE(d.moved);
  EXPECT_NEAR(d.cut, 0.85, 1e-9);  // a whole step: nothing within it reaches the target
  EXPECT_NE(d.why.find("lowered"), std::string::npos) << d.why;
}

TEST(NextCut, StepsTowardsTheCutWhereTheRatioMeetsTheTargetAndStaysThere) {
  TuningOptions options;
  options.target = 0.95;
  options.max_step = 0.05;
  options.min_samples = 50;
  const auto samples = falling_quality(4000);
  double cut = 0.05;
  for (int i = 0; i < 40; ++i) cut = next_cut(samples, kNoFloor, cut, 1, options).cut;
  // (5 - 2c) / 4 >= 0.95 up to c = 0.6; the lower bound reaches it a little below.
  EXPECT_GT(cut, 0.5);
  EXPECT_LE(cut, 0.6);
  EXPECT_GE(evidence_at(samples, kNoFloor, cut, 1.96).ratio, 0.95);
  double from_above = 1.0;
  for (int i = 0; i < 40; ++i) from_above = next_cut(samples, kNoFloor, from_above, 1, options).cut;
  EXPECT_GT(from_above, 0.5);
  EXPECT_LE(from_above, 0.65);
}

TEST(NextCut, LittleEvidenceMovesNothing) {
  TuningOptions options;
  options.min_samples = 50;
  // 40 samples, all perfect for the cheap tier: not enough to rise on...
  std::vector<PairedGrade> good;
  for (int i = 0; i < 40; ++i) good.push_back({i / 40.0, 5, 3});
  EXPECT_FALSE(next_cut(good, kNoFloor, 0.3, 1, options).moved);
  // ...nor, all bad, to fall on.
  std::vector<PairedGrade> bad;
  for (int i = 0; i < 40; ++i) bad.push_back({i / 40.0, 1, 5});
  EXPECT_FALSE(next_cut(bad, kNoFloor, 0.9, 1, options).moved);
  EXPECT_FALSE(next_cut({}, kNoFloor, 0.5, 1, options).moved);
}

TEST(NextCut, StaysWithinItsFloorAndCeiling) {
  TuningOptions options;
  options.target = 0.5;
  options.max_step = 0.5;
  std::vector<PairedGrade> perfect;
  for (int i = 0; i < 500; ++i) perfect.push_back({i / 500.0, 5, 5});
  EXPECT_LE(next_cut(perfect, kNoFloor, 0.3, 0.4, options).cut, 0.4);
  std::vector<PairedGrade> awful;
  for (int i = 0; i < 500; ++i) awful.push_back({i / 500.0, 1, 5});
  EXPECT_GE(next_cut(awful, 0.35, 0.6, 1, options).cut, 0.35);
}

// Grades that are pure noise around a ratio equal to the target, at every
// score: thousands of decisions leave the cut near where it started.
TEST(ThresholdTuner, DoesNotDriftOnNoiseAtTheTarget) {
  TuningOptions options;
  options.target = 0.75;  // E[cheap] / E[reference] = 3 / 4
  options.every = 20;
  options.min_samples = 50;
  options.window = 2000;
  ThresholdTuner tuner(options);
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> score(0, 1);
  std::uniform_int_distribution<int> cheap(1, 5);     // mean 3
  std::uniform_int_distribution<int> reference(3, 5);  // mean 4
  int moves = 0;
  double lowest = 1, highest = 0;
  for (int i = 0; i < 20000; ++i) {
    CalibrationSample s;
    s.tenant = "acme";
    s.key = "default/balanced";
    s.route_score = score(rng);
    s.cuts = s.configured = {0.3, 0.6};
    s.small = cheap(rng);
    s.medium = cheap(rng);
    s.reference = reference(rng);
    s.ts_ms = i;
    if (auto moved = tuner.add(s)) {
      moves++;
      lowest = std::min(lowest, moved->cuts.small);
      highest = std::max(highest, moved->cuts.small);
    }
  }
  const auto record = tuner.record("acme", "default/balanced");
  ASSERT_TRUE(record);
  // 1000 decisions; a cut that moves on noise does so rarely and comes back.
  EXPECT_LE(moves, 50) << record->why;
  EXPECT_NEAR(record->cuts.small, 0.3, 0.1);
  EXPECT_GT(lowest, 0.15);
  EXPECT_LT(highest, 0.45);
}

CalibrationSample sample_at(double score, double small, double medium, double reference, std::int64_t ts) {
  CalibrationSample s;
  s.tenant = "acme";
  s.key = "default/cost";
  s.route_score = score;
  s.cuts = s.configured = {0.2, 0.5};
  s.small = small;
  s.medium = medium;
  s.reference = reference;
  s.ts_ms = ts;
  return s;
}

TEST(ThresholdTuner, PublishesARecordOnlyWhenACutMovesAndCountsVersions) {
  TuningOptions options;
  options.target = 0.9;
  options.every = 10;
  options.min_samples = 20;
  ThresholdTuner tuner(options);
  std::vector<TuningRecord> published;
  // Small answers as good as the reference everywhere: the small cut rises.
  for (int i = 0; i < 400; ++i) {
    if (auto r = tuner.add(sample_at((i % 100) / 100.0, 4, 4, 4, i))) published.push_back(*r);
    if (i < 9) {
      EXPECT_TRUE(published.empty());  // no decision before `every` samples
    }
  }
  ASSERT_FALSE(published.empty());
  for (std::size_t i = 0; i < published.size(); ++i) {
    EXPECT_EQ(published[i].version, i + 1);
    EXPECT_EQ(published[i].tenant, "acme");
    EXPECT_EQ(published[i].key, "default/cost");
    EXPECT_EQ(published[i].configured, (TierCuts{0.2, 0.5}));
    EXPECT_LE(published[i].cuts.small, published[i].cuts.medium);
    EXPECT_DOUBLE_EQ(published[i].target, 0.9);
  }
  EXPECT_GT(published.back().cuts.small, 0.2);
  EXPECT_EQ(tuner.moved_records().size(), 1u);
}

TEST(ThresholdTuner, TenantsAndKeysAreTunedApart) {
  TuningOptions options;
  options.target = 0.9;
  options.every = 10;
  options.min_samples = 20;
  ThresholdTuner tuner(options);
  for (int i = 0; i < 300; ++i) {
    CalibrationSample good = sample_at((i % 100) / 100.0, 5, 5, 4, i);
    CalibrationSample bad = good;
    bad.tenant = "globex";
    bad.small = 1;
    bad.medium = 1;
    (void)tuner.add(good);
    (void)tuner.add(bad);
  }
  EXPECT_GT(tuner.record("acme", "default/cost")->cuts.small, 0.2);
  EXPECT_LT(tuner.record("globex", "default/cost")->cuts.small, 0.2);
  EXPECT_FALSE(tuner.record("acme", "default/balanced"));
}

TEST(ThresholdTuner, ANewConfigurationRestartsFromItsCutsAndKeepsTheEvidence) {
  TuningOptions options;
  options.target = 0.9;
  options.every = 10;
  options.min_samples = 20;
  ThresholdTuner tuner(options);
  for (int i = 0; i < 200; ++i) (void)tuner.add(sample_at((i % 100) / 100.0, 5, 5, 4, i));
  ASSERT_GT(tuner.record("acme", "default/cost")->cuts.small, 0.2);
  CalibrationSample changed = sample_at(0.5, 5, 5, 4, 1000);
  changed.cuts = changed.configured = {0.05, 0.1};
  (void)tuner.add(changed);
  const auto record = tuner.record("acme", "default/cost");
  EXPECT_EQ(record->configured, (TierCuts{0.05, 0.1}));
  EXPECT_EQ(record->cuts, (TierCuts{0.05, 0.1}));
}

TEST(ThresholdTuner, SameSamplesInTheSameOrderGiveTheSameRecords) {
  TuningOptions options;
  options.every = 5;
  options.min_samples = 10;
  auto run = [&] {
    ThresholdTuner tuner(options);
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<double> u(0, 1);
    std::vector<std::string> out;
    for (int i = 0; i < 2000; ++i) {
      const double s = u(rng);
      if (auto r = tuner.add(sample_at(s, s < 0.4 ? 5 : 2, 4, 4, i))) out.push_back(encode_tuning_record(*r));
    }
    return out;
  };
  const auto first = run();
  EXPECT_FALSE(first.empty());
  EXPECT_EQ(first, run());
}

TEST(ThresholdTuner, AResetPutsTheConfiguredCutsBackAtItsTimeAndDropsTheEvidence) {
  TuningOptions options;
  options.target = 0.9;
  options.every = 10;
  options.min_samples = 20;
  auto run = [&](bool replayed) {
    ThresholdTuner tuner(options);
    std::vector<std::string> reset;
    for (int i = 0; i < 400; ++i) {
      if (!replayed && i == 200) {  // live: the reset arrives after sample 199
        tuner.schedule_reset({"acme", "", 200});
        reset = tuner.apply_pending_resets();
      }
      (void)tuner.add(sample_at((i % 100) / 100.0, 5, 5, 4, i));
      if (i == 199) {
        EXPECT_GT(tuner.record("acme", "default/cost")->cuts.small, 0.2);
        if (replayed) tuner.schedule_reset({"acme", "", 200});  // replayed: known before, due at its time
      }
    }
    if (!replayed) {
      EXPECT_EQ(reset, std::vector<std::string>{tuning_record_key("acme", "default/cost")});
    }
    EXPECT_TRUE(tuner.apply_pending_resets().empty());  // applied once
    return *tuner.record("acme", "default/cost");
  };
  const TuningRecord live = run(false);
  const TuningRecord replayed = run(true);
  // The same state either way: 200 samples since the reset, from the configured cuts.
  EXPECT_EQ(live.cuts, replayed.cuts);
  EXPECT_EQ(live.version, replayed.version);

  ThresholdTuner tuner(options);
  for (int i = 0; i < 60; ++i) (void)tuner.add(sample_at((i % 100) / 100.0, 5, 5, 4, i));
  ASSERT_GT(tuner.record("acme", "default/cost")->cuts.small, 0.2);
  tuner.schedule_reset({"acme", "default/balanced", 100});  // another key: nothing to reset
  EXPECT_TRUE(tuner.apply_pending_resets().empty());
  tuner.schedule_reset({"acme", "default/cost", 100});
  EXPECT_EQ(tuner.apply_pending_resets().size(), 1u);
  const auto record = tuner.record("acme", "default/cost");
  EXPECT_EQ(record->cuts, record->configured);
  EXPECT_EQ(record->why, "reset by an operator");
  EXPECT_TRUE(tuner.moved_records().empty());  // nothing tuned to publish
  EXPECT_EQ(tuner.reset_keys(), std::vector<std::string>{tuning_record_key("acme", "default/cost")});
  // Little evidence since the reset: nothing moves for a while.
  for (int i = 60; i < 75; ++i) EXPECT_FALSE(tuner.add(sample_at((i % 100) / 100.0, 5, 5, 4, 100 + i)));
}

TEST(TuningRecord, ResetMarkersAreTheirOwnKeysAndWorkersSkipThem) {
  const TuningReset reset{"acme", "default/cost", 1700000000000};
  const std::string key = tuning_reset_key(reset.tenant, reset.key);
  EXPECT_TRUE(is_tuning_reset_key(key));
  EXPECT_TRUE(is_tuning_reset_key(tuning_reset_key("acme", "")));
  EXPECT_FALSE(is_tuning_reset_key(tuning_record_key("reset", "default/cost")));  // a tenant named "reset"
  const auto back = decode_tuning_reset(encode_tuning_reset(reset));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->tenant, "acme");
  EXPECT_EQ(back->key, "default/cost");
  EXPECT_EQ(back->ts_ms, reset.ts_ms);
  EXPECT_FALSE(decode_tuning_reset(R"({"tenant":"acme","ts":1})"));
  EXPECT_FALSE(decode_tuning_reset(R"({"reset":true,"ts":1})"));
  TunedCuts table;
  EXPECT_TRUE(table.apply(key, std::string_view(encode_tuning_reset(reset))));
  EXPECT_TRUE(table.empty());
}

TEST(TuningRecord, RoundTripsAndRejectsWhatIsNotOne) {
  TuningRecord r;
  r.tenant = "acme";
  r.key = "cheap:arm/cost";
  r.cuts = {0.25, 0.55};
  r.configured = {0.2, 0.5};
  r.version = 3;
  r.small = {120, 0.97, 0.951, 0.99};
  r.medium = {80, 0.96, 0.93, 0.99};
  r.target = 0.95;
  r.ts_ms = 1700000000123;
  r.why = "small raised";
  const auto back = decode_tuning_record(encode_tuning_record(r));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->tenant, r.tenant);
  EXPECT_EQ(back->key, r.key);
  EXPECT_EQ(back->cuts, r.cuts);
  EXPECT_EQ(back->configured, r.configured);
  EXPECT_EQ(back->version, 3u);
  EXPECT_EQ(back->small.samples, 120u);
  EXPECT_DOUBLE_EQ(back->medium.lower, 0.93);
  EXPECT_EQ(back->ts_ms, r.ts_ms);
  EXPECT_EQ(back->why, r.why);

  EXPECT_FALSE(decode_tuning_record("not json"));
  EXPECT_FALSE(decode_tuning_record(R"({"tenant":"a","key":"k","cuts":{"small":0.1},"configured_cuts":{"small":0,"medium":0},"version":1})"));
  const auto inverted = decode_tuning_record(
      R"({"tenant":"a","key":"k","cuts":{"small":0.6,"medium":0.5},"configured_cuts":{"small":0,"medium":0},"version":1})");
  ASSERT_FALSE(inverted);
  EXPECT_NE(inverted.error().message.find("cuts.small"), std::string::npos);
  EXPECT_EQ(tuning_key("", "balanced"), "default/balanced");
  EXPECT_EQ(tuning_key("exp:b", "cost"), "exp:b/cost");
}

TEST(TunedCuts, AppliesRecordsAndTombstonesByTenantAndKey) {
  TunedCuts table;
  EXPECT_TRUE(table.empty());
  TuningRecord r;
  r.tenant = "acme";
  r.key = "default/balanced";
  r.cuts = {0.4, 0.7};
  r.configured = {0.3, 0.6};
  r.version = 2;
  ASSERT_TRUE(table.apply(tuning_record_key(r.tenant, r.key), encode_tuning_record(r)));
  EXPECT_EQ(table.size(), 1u);
  const auto found = table.find("acme", "default/balanced");
  ASSERT_NE(found.record, nullptr);
  EXPECT_EQ(found.record->cuts, (TierCuts{0.4, 0.7}));
  EXPECT_EQ(table.find("globex", "default/balanced").record, nullptr);
  EXPECT_EQ(table.find("acme", "default/cost").record, nullptr);
  // A key that does not match the record's tenant and key is refused.
  EXPECT_FALSE(table.apply(tuning_record_key("globex", r.key), encode_tuning_record(r)));
  EXPECT_FALSE(table.apply(tuning_record_key(r.tenant, r.key), std::string_view("{}")));
  // The snapshot found stays valid after the table changes.
  ASSERT_TRUE(table.apply(tuning_record_key(r.tenant, r.key), std::nullopt));
  EXPECT_TRUE(table.empty());
  EXPECT_EQ(found.record->version, 2u);
  EXPECT_EQ(table.find("acme", "default/balanced").record, nullptr);
}

}  // namespace
}  // namespace cascade
