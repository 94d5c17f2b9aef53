// `cascade cache-train` as specification on a synthetic paraphrase set: the
// splits never share a question, the converted trees give XGBoost's own
// probabilities (train_hit_model checks every training row and fails
// otherwise), operating points come from the calibration split, and the
// same seed gives the same model.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "cache/tools/hit_training.h"

namespace cascade {
namespace {

// Rewordings (label 1) of "How do I <verb> <object>?" and, in pairs of their
// own, questions about another object (label 0); no text is in two pairs.
std::vector<ParaphrasePair> synthetic_pairs() {
  const std::vector<std::string> verbs = {"clean", "paint", "repair", "sell", "buy", "store", "cook", "grow",
                                          "wash", "build", "fold", "price", "ship", "insure", "rent", "polish",
                                          "measure", "decorate", "heat", "cool"};
  const std::vector<std::string> objects = {"a bicycle", "a kitchen", "old shoes", "a piano", "wooden floors",
                                            "a sofa", "leather boots", "a guitar", "copper pipes", "a tent",
                                            "winter tires", "a canoe", "silk shirts", "a fence", "garden tools",
                                            "a camera", "marble tiles", "a mattress", "wool sweaters", "a kayak"};
  std::vector<ParaphrasePair> pairs;
  for (std::size_t v = 0; v < verbs.size(); ++v) {
    for (std::size_t o = 0; o < objects.size(); ++o) {
      pairs.push_back({"How do I " + verbs[v] + " " + objects[o] + "?", "How can I " + verbs[v] + " " + objects[o] + "?", 1});
      if (o % 2 == 0) {
        pairs.push_back({"What is the best way to " + verbs[v] + " " + objects[o] + "?",
                         "What is the best way to " + verbs[v] + " " + objects[o + 1] + "?", 0});
      }
    }
  }
  return pairs;
}

HitTrainingOptions small_options() {
  HitTrainingOptions o;
  o.rounds = 20;
  o.max_depth = 3;
  o.threads = 1;
  o.min_hits = 5;
  o.similarity_threshold = 0.5;
  o.candidate_floor = 0.3;
  o.target_precisions = {0.5, 0.8, 0.9};
  o.default_target_precision = 0.8;
  return o;
}

TEST(HitTraining, TrainsAModelThatLoadsWithOperatingPointsAndHeldOutFigures) {
  const std::vector<NamedPairs> sets = {{"synthetic", synthetic_pairs()}};
  auto report = train_hit_model(sets, small_options());
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_GT(report->training_rows, 100u);
  EXPECT_GT(report->training_positives, 0u);
  EXPECT_LT(report->training_positives, report->training_rows);
  ASSERT_FALSE(report->points.empty());
  for (const auto& p : report->points) EXPECT_GE(p.precision, p.target_precision);

  auto model = HitModel::parse(report->model_json);
  ASSERT_TRUE(model) << model.error().message;
  EXPECT_DOUBLE_EQ((*model)->default_target_precision(), 0.8);
  EXPECT_TRUE((*model)->vetoes().numbers);
  EXPECT_FALSE((*model)->vetoes().persons);
  const nlohmann::json file = nlohmann::json::parse(report->model_json);
  EXPECT_EQ(file["trained_on"][0]["name"], "synthetic");
  EXPECT_DOUBLE_EQ(file["similarity_threshold"].get<double>(), 0.5);

  ASSERT_EQ(report->sets.size(), 1u);
  const HitSetFigures& figures = report->sets.front();
  EXPECT_EQ(figures.train_pairs + figures.calibration_pairs + figures.test_pairs, sets.front().pairs.size());
  EXPECT_GT(figures.test_pairs, 0u);
  ASSERT_EQ(report->test_splits.size(), 1u);
  EXPECT_EQ(report->test_splits.front().pairs.size(), figures.test_pairs);
  // On held-out questions the model serves rewordings and not the other object.
  EXPECT_GT(figures.test_at_default.correct_hits, 0u);
  EXPECT_GE(figures.test_at_default.precision, 0.8);
}

TEST(HitTraining, NoQuestionIsOnTwoSidesOfTheSplit) {
  const auto pairs = synthetic_pairs();
  auto report = train_hit_model({{"synthetic", pairs}}, small_options());
  ASSERT_TRUE(report) << report.error().message;
  std::set<std::string> held_out;
  for (const auto& p : report->test_splits.front().pairs) {
    held_out.insert(normalize_text(p.text_a));
    held_out.insert(normalize_text(p.text_b));
  }
  std::size_t test_pairs = 0;
  for (const auto& p : pairs) {
    const bool a = held_out.contains(normalize_text(p.text_a));
    const bool b = held_out.contains(normalize_text(p.text_b));
    EXPECT_EQ(a, b) << p.text_a << " / " << p.text_b;
    test_pairs += a && b;
  }
  EXPECT_EQ(test_pairs, report->test_splits.front().pairs.size());
}

TEST(HitTraining, TheSameSeedGivesTheSameModelAndAnotherSeedAnotherSplit) {
  const std::vector<NamedPairs> sets = {{"synthetic", synthetic_pairs()}};
  auto without_time = [](const std::string& text) {
    nlohmann::json file = nlohmann::json::parse(text);
    file.erase("trained_at");
    return file.dump();
  };
  auto first = train_hit_model(sets, small_options());
  auto second = train_hit_model(sets, small_options());
  ASSERT_TRUE(first && second);
  EXPECT_EQ(without_time(first->model_json), without_time(second->model_json));
  HitTrainingOptions reseeded = small_options();
  reseeded.seed = 7;
  auto third = train_hit_model(sets, reseeded);
  ASSERT_TRUE(third) << third.error().message;
  EXPECT_NE(third->sets.front().test_pairs, first->sets.front().test_pairs);
}

TEST(HitTraining, RefusesWhatItCannotTrainOn) {
  EXPECT_EQ(train_hit_model({}, small_options()).error().code, ErrorCode::invalid_request);
  HitTrainingOptions veto = small_options();
  veto.vetoes = {"moon_phase"};
  auto unknown = train_hit_model({{"synthetic", synthetic_pairs()}}, veto);
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("moon_phase"), std::string::npos);
  HitTrainingOptions no_test = small_options();
  no_test.train_fraction = 0.8;
  no_test.calibration_fraction = 0.2;
  EXPECT_FALSE(train_hit_model({{"synthetic", synthetic_pairs()}}, no_test));
  // Every pair and every neighbour differs in its numbers: the veto leaves nothing to learn from.
  std::vector<ParaphrasePair> numbered;
  for (int i = 1; i <= 60; ++i) {
    numbered.push_back({"Top " + std::to_string(i) + " cities to visit?", "Top " + std::to_string(i + 100) + " cities to visit?", 1});
  }
  auto vetoed = train_hit_model({{"numbered", numbered}}, small_options());
  ASSERT_FALSE(vetoed);
  EXPECT_NE(vetoed.error().message.find("both labels"), std::string::npos);
}

}  // namespace
}  // namespace cascade
