// The learned verifier's pieces as specification: the pair features, the
// model file (trees read by feature name, operating points, vetoes), and the
// matcher serving by the model's probability.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>

#include "cache/semantic.h"

namespace cascade {
namespace {

double feature(const PairFeatures& f, std::string_view name) {
  const auto names = pair_feature_names();
  const auto it = std::find(names.begin(), names.end(), name);
  if (it == names.end()) ADD_FAILURE() << "no feature " << name;
  return f[static_cast<std::size_t>(it - names.begin())];
}

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

// Features listed out of this build's order on purpose: they are read by name.
// Tree 0: unmatched_query < 1.5 ? +2 : -2. Tree 1: a single leaf, +0.5.
constexpr const char* kModel = R"({
  "format": "cascade-hit-model/1",
  "features": ["numbers_differ", "unmatched_query"],
  "base_margin": 0.0,
  "vetoes": ["numbers"],
  "trees": [
    {"left": [1, 0, 0], "right": [2, 0, 0], "feature": [1, -1, -1], "value": [1.5, 2.0, -2.0]},
    {"left": [0], "right": [0], "feature": [-1], "value": [0.5]}
  ],
  "operating_points": [
    {"target_precision": 0.9, "min_probability": 0.8, "precision": 0.91, "recall": 0.1},
    {"target_precision": 0.8, "min_probability": 0.3, "precision": 0.81, "recall": 0.2}
  ],
  "default_target_precision": 0.9,
  "trained_at": "2026-12-07T00:00:00Z"
})";

std::string with(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return text.replace(at, from.size(), to);
}

TEST(PairFeatures, HaveOneUniqueNameEach) {
  const auto names = pair_feature_names();
  ASSERT_EQ(names.size(), kPairFeatureCount);
  std::set<std::string_view> unique(names.begin(), names.end());
  EXPECT_EQ(unique.size(), names.size());
}

TEST(PairFeatures, IdenticalTextsAreSimilarAndHaveNothingUnmatched) {
  const PairFeatures f = pair_features("How can I learn Python quickly?", "How can I learn Python quickly?");
  EXPECT_NEAR(feature(f, "similarity"), 1.0, 1e-5);
  EXPECT_EQ(feature(f, "unmatched_query"), 0);
  EXPECT_EQ(feature(f, "unmatched_candidate"), 0);
  EXPECT_EQ(feature(f, "order_inversions"), 0);
  EXPECT_EQ(feature(f, "char_trigram_jaccard"), 1);
  EXPECT_EQ(feature(f, "length_ratio"), 1);
  EXPECT_EQ(feature(f, "same_first_word"), 1);
}

TEST(PairFeatures, CountWhatTheRulesOnlyAcceptOrReject) {
  const PairFeatures numbers = pair_features("What is the price of the iPhone 6?", "What is the price of the iPhone 7?");
  EXPECT_EQ(feature(numbers, "numbers_differ"), 1);
  EXPECT_EQ(feature(numbers, "numbers_query"), 1);

  const PairFeatures swapped = pair_features("Flights from New York to Florida", "Flights from Florida to New York");
  EXPECT_GT(feature(swapped, "order_inversions"), 0);
  EXPECT_EQ(feature(swapped, "unmatched_query"), 0);

  const PairFeatures substituted = pair_features("Is an MBA in zoology useful?", "Is an MBA in aviation useful?");
  EXPECT_EQ(feature(substituted, "unmatched_query"), 1);
  EXPECT_EQ(feature(substituted, "unmatched_candidate"), 1);
  EXPECT_EQ(feature(substituted, "longest_unmatched_query"), 7);  // "zoology"

  const PairFeatures reworded = pair_features("How do I learn Python?", "How can I learn Python?");
  EXPECT_EQ(feature(reworded, "function_word_difference"), 2);  // do / can
  const PairFeatures inflected = pair_features("Best exercise for the back?", "Best exercises for the back?");
  EXPECT_EQ(feature(inflected, "stem_only_matches"), 2);  // one each way
}

TEST(PairFeatures, CountUnmatchedWordsThatWordNetPairs) {
  if (!Synonyms::system()) GTEST_SKIP() << "WordNet is not installed (Debian: wordnet-base; make deps installs it)";
  const PairFeatures f = pair_features("Where can I buy a big car?", "Where can I purchase a large car?");
  EXPECT_EQ(feature(f, "unmatched_query"), 2);
  EXPECT_EQ(feature(f, "synonym_matches"), 2);
  EXPECT_EQ(feature(pair_features("Where can I buy a car?", "Where can I sell a car?"), "synonym_matches"), 0);
}

TEST(HitModel, WalksEveryTreeAndReadsFeaturesByName) {
  auto model = HitModel::parse(kModel);
  ASSERT_TRUE(model) << model.error().message;
  PairFeatures f{};
  EXPECT_NEAR((*model)->probability(f), sigmoid(2.5), 1e-9);
  f[static_cast<std::size_t>(std::find(pair_feature_names().begin(), pair_feature_names().end(), "unmatched_query") -
                             pair_feature_names().begin())] = 2;
  EXPECT_NEAR((*model)->probability(f), sigmoid(-1.5), 1e-9);
  EXPECT_NE((*model)->tag().find("hit-model:2026-12-07T00:00:00Z:"), std::string::npos);
}

TEST(HitModel, AnOperatingPointIsTheLeastStrictOneThatMeetsTheTarget) {
  auto model = HitModel::parse(kModel);
  ASSERT_TRUE(model);
  EXPECT_DOUBLE_EQ(*(*model)->cutoff_for(0.8), 0.3);
  EXPECT_DOUBLE_EQ(*(*model)->cutoff_for(0.85), 0.8);
  EXPECT_DOUBLE_EQ(*(*model)->cutoff_for(0.9), 0.8);
  EXPECT_FALSE((*model)->cutoff_for(0.95));
  EXPECT_DOUBLE_EQ((*model)->default_target_precision(), 0.9);
}

TEST(HitModel, KeepsOnlyTheNamedRulesAsVetoes) {
  auto model = HitModel::parse(kModel);
  ASSERT_TRUE(model);
  const VerifierOptions& vetoes = (*model)->vetoes();
  EXPECT_TRUE(vetoes.numbers);
  EXPECT_FALSE(vetoes.negation);
  EXPECT_FALSE(vetoes.persons);
  EXPECT_FALSE(vetoes.word_order);
  EXPECT_LT(vetoes.max_unmatched_content_words, 0);
}

TEST(HitModel, RefusesFilesItCannotEvaluateSafely) {
  const std::string model = kModel;
  auto error_of = [](const std::string& text) {
    auto parsed = HitModel::parse(text);
    return parsed ? std::string("parsed") : parsed.error().message;
  };
  EXPECT_NE(error_of(with(model, "\"numbers_differ\"", "\"moon_phase\"")).find("moon_phase"), std::string::npos);
  // A node that points back at an ancestor would loop forever.
  EXPECT_NE(error_of(with(model, "\"right\": [2, 0, 0], \"feature\": [1, -1, -1]",
                          "\"right\": [0, 0, 0], \"feature\": [1, -1, -1]"))
                .find("reached twice"),
            std::string::npos);
  EXPECT_NE(error_of(with(model, "\"right\": [2, 0, 0]", "\"right\": [7, 0, 0]")).find("outside its tree"),
            std::string::npos);
  EXPECT_NE(error_of(with(model, "\"vetoes\": [\"numbers\"]", "\"vetoes\": [\"max_order_inversions\"]"))
                .find("not a rule"),
            std::string::npos);
  EXPECT_NE(error_of(with(model, "\"default_target_precision\": 0.9", "\"default_target_precision\": 0.99"))
                .find("default_target_precision"),
            std::string::npos);
  EXPECT_NE(error_of(with(model, "cascade-hit-model/1", "xgboost")).find("format"), std::string::npos);
  EXPECT_NE(error_of("[1, 2]").find("not a JSON object"), std::string::npos);
}

TEST(HitModel, TheShippedModelLoadsAndPrefersARewordingToAnotherQuestion) {
  const auto model = HitModel::builtin();
  ASSERT_TRUE(model) << "config/cache/hit_model.json was not compiled in";
  EXPECT_FALSE(model->operating_points().empty());
  EXPECT_TRUE(model->cutoff_for(model->default_target_precision()));
  const double same = model->probability(pair_features("How do I learn Python quickly?", "How can I learn Python quickly?"));
  const double other = model->probability(pair_features("How do I learn Python quickly?", "How do I cook rice quickly?"));
  EXPECT_GT(same, other);
  EXPECT_GT(same, 0.5);
  EXPECT_LT(other, 0.5);
}

TEST(SemanticMatcherWithModel, ServesByTheModelsProbabilityAfterItsVetoes) {
  auto model = HitModel::parse(kModel);
  ASSERT_TRUE(model);
  BuiltinEmbedder embedder;
  SemanticMatcherOptions options;
  options.defaults.threshold = 0.5;
  options.defaults.model = *model;
  options.defaults.min_probability = 0.8;
  SemanticMatcher matcher(embedder, options);
  ASSERT_TRUE(matcher.insert("acme", 1, "How do I learn Python quickly?"));

  // One content word more: the rules would refuse it, this model serves it.
  auto extra_word = matcher.lookup("acme", "How can I learn Python quickly today?");
  ASSERT_TRUE(extra_word);
  ASSERT_TRUE(extra_word->hit);
  EXPECT_NEAR(extra_word->hit->probability, sigmoid(2.5), 1e-6);

  // Three more: below the cutoff, a miss that names the model.
  auto many_words = matcher.lookup("acme", "How can I learn Python, Java and Rust quickly?");
  ASSERT_TRUE(many_words);
  EXPECT_FALSE(many_words->hit);
  ASSERT_FALSE(many_words->candidates.empty());
  EXPECT_EQ(many_words->candidates.front().verdict.rule, "model");
  EXPECT_NEAR(many_words->candidates.front().probability, sigmoid(-1.5), 1e-6);

  // A veto rejects before the model is asked.
  auto numbers = matcher.lookup("acme", "How do I learn Python quickly in 2 weeks?");
  ASSERT_TRUE(numbers);
  EXPECT_FALSE(numbers->hit);
  ASSERT_FALSE(numbers->candidates.empty());
  EXPECT_EQ(numbers->candidates.front().verdict.rule, "numbers");
  EXPECT_LT(numbers->candidates.front().probability, 0);
}

}  // namespace
}  // namespace cascade
