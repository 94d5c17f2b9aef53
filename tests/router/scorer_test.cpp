// The scorers behind RouteScorer: the heuristic wrapper, the learned
// logistic regression and knn (trained here on a toy set), their model files,
// and the router picking a tier from a scorer's probability.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "router/tools/evaluation.h"
#include "config/config.h"
#include "router/router.h"
#include "support/env.h"
#include "support/fixed_scorer.h"
#include "support/test_catalog.h"

namespace cascade {
namespace {

// Two kinds of prompt a router can tell apart by their words: chit-chat the
// weak model handles, proofs it does not.
std::vector<PairOutcome> toy_pairs() {
  const std::vector<std::string> easy = {"write a short poem about the sea", "say hello to my friend",
                                         "tell me a joke about cats", "suggest a name for a puppy",
                                         "write a haiku about spring rain", "greet the new colleague warmly"};
  const std::vector<std::string> hard = {"prove that the square root of two is irrational",
                                         "prove the theorem on the sum of an infinite geometric series",
                                         "derive the integral of x times the logarithm of x and prove it",
                                         "prove by induction that the sum of odd numbers is a square",
                                         "prove the lemma about eigenvalues of a symmetric matrix",
                                         "derive and prove the closed form of the fibonacci recurrence"};
  std::vector<PairOutcome> pairs;
  for (int variant = 0; variant < 5; ++variant) {
    const std::string suffix = " (case " + std::to_string(variant) + ")";
    for (const auto& e : easy) pairs.push_back(pair_outcome(e + suffix, 1.0, 1.0, 0.001, 0.01));
    for (const auto& h : hard) pairs.push_back(pair_outcome(h + suffix, 0.0, 1.0, 0.001, 0.01));
  }
  return pairs;
}

TrainingOptions toy_options() {
  TrainingOptions options;
  options.hash_bits = 12;
  options.weak_name = "weak";
  options.strong_name = "strong";
  return options;
}

double p_of(const RouteScorer& scorer, const std::string& text, bool explain = false) {
  return scorer.score(user_messages(text), explain).p_weak_ok;
}

TEST(HeuristicScorer, IsOneMinusTheComplexityScoreWithItsFeaturesAsDrivers) {
  const auto scorer = make_heuristic_scorer();
  const auto messages = user_messages("Prove that the integral of x^2 from 0 to 1 is 1/3, step by step.");
  const RouteScore score = scorer->score(messages);
  EXPECT_DOUBLE_EQ(score.p_weak_ok, 1.0 - score_complexity(messages).score);
  ASSERT_FALSE(score.drivers.empty());
  EXPECT_EQ(score.drivers.front().first, "math");
}

TEST(LearnedScorer, TrainedOnASeparableSetSeparatesUnseenPrompts) {
  auto trained = train_learned(toy_pairs(), toy_options());
  ASSERT_TRUE(trained) << trained.error().message;
  auto scorer = parse_route_model(trained->model.dump());
  ASSERT_TRUE(scorer) << scorer.error().message;
  EXPECT_EQ((*scorer)->kind(), ScorerKind::learned);
  EXPECT_GT(p_of(**scorer, "write a poem about my cat"), 0.5);
  EXPECT_LT(p_of(**scorer, "prove the theorem about the integral of a matrix"), 0.5);
  EXPECT_GT(p_of(**scorer, "write a poem about my cat"),
            p_of(**scorer, "prove the theorem about the integral of a matrix") + 0.2);
  // Regularization was chosen among the candidates on validation data.
  EXPECT_FALSE(trained->validation.empty());
}

TEST(LearnedScorer, TheSystemPromptFeatureLearnsAPerTaskOffset) {
  // The same questions under two tasks: the weak model is fine in one and
  // never in the other. Only the task, given as the system prompt, tells them apart.
  std::vector<PairOutcome> pairs;
  for (int i = 0; i < 60; ++i) {
    const std::string question = "question number " + std::to_string(i % 20) + " variant " + std::to_string(i);
    PairOutcome easy = pair_outcome(question, 1.0, 1.0, 0.001, 0.01);
    easy.source = "Task: greetings";
    PairOutcome hard = pair_outcome(question, 0.0, 1.0, 0.001, 0.01);
    hard.source = "Task: proofs";
    pairs.push_back(easy);
    pairs.push_back(hard);
  }
  auto options = toy_options();
  options.system_prompt_feature = true;
  options.source_as_system = true;
  auto trained = train_learned(pairs, options);
  ASSERT_TRUE(trained) << trained.error().message;
  EXPECT_TRUE(trained->model["features"]["system_prompt"].get<bool>());
  auto scorer = parse_route_model(trained->model.dump());
  ASSERT_TRUE(scorer) << scorer.error().message;
  PairOutcome unseen = pair_outcome("question number 7 variant 999", 0, 0, 0, 0);
  unseen.source = "task:   GREETINGS";  // case and spacing are folded
  const double easy_p = (*scorer)->score(pair_messages(unseen, true)).p_weak_ok;
  unseen.source = "Task: proofs";
  const double hard_p = (*scorer)->score(pair_messages(unseen, true), true).p_weak_ok;
  EXPECT_GT(easy_p, 0.7);
  EXPECT_LT(hard_p, 0.3);
  EXPECT_EQ((*scorer)->score(pair_messages(unseen, true), true).drivers.front().first, "s:task: proofs");
  // Without the task the two are the same prompt: no better than the base rate.
  options.system_prompt_feature = false;
  options.source_as_system = false;
  auto blind = train_learned(pairs, options);
  ASSERT_TRUE(blind);
  auto blind_scorer = parse_route_model(blind->model.dump());
  ASSERT_TRUE(blind_scorer);
  EXPECT_NEAR((*blind_scorer)->score(pair_messages(unseen, false)).p_weak_ok, 0.5, 0.2);
}

// Same kind of prompt; the weak answer is wrong exactly when it ends on a
// fraction (every third row; a GSM8K answer is a whole number).
std::vector<PairOutcome> apple_answer_rows(int first, int count) {
  std::vector<PairOutcome> out;
  for (int i = first; i < first + count; ++i) {
    const bool wrong = i % 3 == 0;
    const std::string answer = "She has <<4*3=12>>12 so " + std::to_string(i) + (wrong ? ".5" : "") + "\n#### " +
                               std::to_string(i) + (wrong ? ".5" : "");
    out.push_back(pair_outcome("How many apples does Tom have in case " + std::to_string(i) + "?", wrong ? 0.0 : 1.0,
                               1.0, 0.001, 0.01, answer));
  }
  return out;
}

TEST(AnswerVerifier, LearnsFromTheWeakAnswerWhatThePromptCannotTell) {
  const auto rows = apple_answer_rows;
  TrainingOptions options = toy_options();
  auto verified = train_and_apply_verifier(rows(0, 90), rows(1000, 30), options);
  ASSERT_TRUE(verified) << verified.error().message;
  ASSERT_EQ(verified->p_weak_ok.size(), 30u);
  for (int i = 0; i < 30; ++i) {
    if ((1000 + i) % 3 == 0) EXPECT_LT(verified->p_weak_ok[i], 0.4) << i;
    else EXPECT_GT(verified->p_weak_ok[i], 0.6) << i;
  }
  auto no_answer = rows(0, 20);
  no_answer[3].weak_response.reset();
  EXPECT_FALSE(train_and_apply_verifier(no_answer, rows(1000, 3), options));
}

// The live cascade's check (router.cascade.verifier_file): the model file
// route-train --router verifier writes scores answers as the offline
// verifier does.
TEST(AnswerVerifier, TheModelFileScoresAnswersAsTheOfflineVerifierDoes) {
  const auto rows = apple_answer_rows;
  TrainingOptions options = toy_options();
  options.weak_name = "cheap";
  options.strong_name = "strong";
  auto trained = train_verifier(rows(0, 90), options);
  ASSERT_TRUE(trained) << trained.error().message;
  EXPECT_EQ(trained->model.value("scorer", ""), "verifier");
  auto verifier = AnswerVerifier::parse(trained->model.dump());
  ASSERT_TRUE(verifier) << verifier.error().message;
  EXPECT_EQ((*verifier)->description(), "cheap answers vs strong, 90 training rows");
  auto offline = train_and_apply_verifier(rows(0, 90), rows(1000, 30), options);
  ASSERT_TRUE(offline);
  const auto test = rows(1000, 30);
  for (std::size_t i = 0; i < test.size(); ++i) {
    const double p = (*verifier)->p_ok(test[i].prompt, *test[i].weak_response);
    EXPECT_NEAR(p, offline->p_weak_ok[i], 1e-4) << i;  // float32 weights in the file
    EXPECT_EQ(p < 0.5, (1000 + i) % 3 == 0) << i;
  }
  // Not a verifier: a prompt scorer's file, or a verifier's read as a scorer.
  auto learned = train_learned(toy_pairs(), toy_options());
  ASSERT_TRUE(learned);
  EXPECT_FALSE(AnswerVerifier::parse(learned->model.dump()));
  EXPECT_FALSE(parse_route_model(trained->model.dump()));
  nlohmann::json cut = trained->model;
  cut["dense_weights"].erase(0);
  EXPECT_FALSE(AnswerVerifier::parse(cut.dump()));
}

// Model files outlive releases: one trained before an answer fact existed
// loads, and scores as if that fact had weight 0.
TEST(AnswerVerifier, AFileWithoutANewerAnswerFactLoadsWithThatFactAtWeightZero) {
  TrainingOptions options = toy_options();
  auto trained = train_verifier(apple_answer_rows(0, 90), options);
  ASSERT_TRUE(trained) << trained.error().message;
  nlohmann::json zeroed = trained->model;
  nlohmann::json older = trained->model;
  const auto& names = trained->model.at("dense_names");
  const auto at = std::find(names.begin(), names.end(), "answer_check:answer:unused_question_numbers");
  ASSERT_NE(at, names.end());
  const auto index = static_cast<std::size_t>(at - names.begin());
  zeroed["dense_weights"][index] = 0.0;
  older["dense_names"].erase(index);
  older["dense_weights"].erase(index);
  auto with_zero = AnswerVerifier::parse(zeroed.dump());
  auto without = AnswerVerifier::parse(older.dump());
  ASSERT_TRUE(with_zero && without) << (without ? "" : without.error().message);
  for (const auto& row : apple_answer_rows(1000, 10))
    EXPECT_DOUBLE_EQ((*without)->p_ok(row.prompt, *row.weak_response), (*with_zero)->p_ok(row.prompt, *row.weak_response));
  // A name this build does not know, or a prompt feature without a weight, is refused.
  nlohmann::json newer = trained->model;
  newer["dense_names"][0] = "prompt:from_the_future";
  auto refused = AnswerVerifier::parse(newer.dump());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("no weight for feature"), std::string::npos) << refused.error().message;
  nlohmann::json unknown = trained->model;
  unknown["dense_names"].push_back("answer_check:answer:from_the_future");
  unknown["dense_weights"].push_back(1.0);
  refused = AnswerVerifier::parse(unknown.dump());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("unknown feature 'answer_check:answer:from_the_future'"), std::string::npos);
}

TEST(LearnedScorer, TrainingIsDeterministic) {
  auto first = train_learned(toy_pairs(), toy_options());
  auto second = train_learned(toy_pairs(), toy_options());
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->model.dump(), second->model.dump());
}

TEST(LearnedScorer, ModelFileRoundTripsToTheSameScores) {
  auto trained = train_learned(toy_pairs(), toy_options());
  ASSERT_TRUE(trained);
  auto a = parse_route_model(trained->model.dump());
  auto b = parse_route_model(nlohmann::json::parse(trained->model.dump()).dump(2));
  ASSERT_TRUE(a && b);
  for (const char* text : {"hello there", "prove it", "a poem about proofs", ""})
    EXPECT_DOUBLE_EQ(p_of(**a, text), p_of(**b, text)) << text;
}

TEST(LearnedScorer, ExplainsWithTheFeaturesThatDroveTheScore) {
  auto trained = train_learned(toy_pairs(), toy_options());
  ASSERT_TRUE(trained);
  auto scorer = parse_route_model(trained->model.dump());
  ASSERT_TRUE(scorer);
  const RouteScore score = (*scorer)->score(user_messages("prove this theorem"), true);
  ASSERT_FALSE(score.drivers.empty());
  bool names_prove = false;
  for (const auto& [name, contribution] : score.drivers) {
    if (name == "w:prove") {
      names_prove = true;
      EXPECT_LT(contribution, 0) << "'prove' must push towards the strong model";
    }
  }
  EXPECT_TRUE(names_prove);
  EXPECT_EQ(score.drivers.back().first, "bias");
}

TEST(KnnScorer, VotesLikeTheNearestTrainingPrompts) {
  auto trained = train_knn(toy_pairs(), toy_options());
  ASSERT_TRUE(trained) << trained.error().message;
  auto scorer = parse_route_model(trained->model.dump());
  ASSERT_TRUE(scorer) << scorer.error().message;
  EXPECT_EQ((*scorer)->kind(), ScorerKind::knn);
  const double easy = p_of(**scorer, "write a short poem about the sea (case 9)");
  const double hard = p_of(**scorer, "prove that the square root of two is irrational (case 9)");
  EXPECT_GT(easy, 0.5);
  EXPECT_LT(hard, 0.5);
  const RouteScore explained = (*scorer)->score(user_messages("tell me a joke about cats"), true);
  ASSERT_FALSE(explained.drivers.empty());
  EXPECT_NE(explained.drivers.front().first.find("weak was as good"), std::string::npos);
}

TEST(RouteModel, RejectsFilesThatAreNotModels) {
  EXPECT_FALSE(parse_route_model("not json"));
  EXPECT_FALSE(parse_route_model(R"({"format":"something-else","scorer":"learned"})"));
  auto trained = train_learned(toy_pairs(), toy_options());
  ASSERT_TRUE(trained);
  nlohmann::json truncated = trained->model;
  truncated["hashed_weights_f32"] = truncated["hashed_weights_f32"].get<std::string>().substr(0, 100);
  const auto error = parse_route_model(truncated.dump());
  ASSERT_FALSE(error);
  EXPECT_NE(error.error().message.find("hashed_weights_f32"), std::string::npos);
  auto knn = train_knn(toy_pairs(), toy_options());
  ASSERT_TRUE(knn);
  nlohmann::json other_embedder = knn->model;
  other_embedder["embedding"]["tag"] = "builtin-v0:d3";
  EXPECT_FALSE(parse_route_model(other_embedder.dump()));
}

TEST(RouteModel, TrainingRefusesASetWithOneLabel) {
  auto pairs = toy_pairs();
  for (auto& p : pairs) p.weak_quality = 1.0;
  EXPECT_FALSE(train_learned(pairs, toy_options()));
}

TEST(LoadRouteScorer, KnnNeedsAModelFileAndBadFilesAreErrors) {
  RouterConfig config;
  config.scorer = "knn";
  EXPECT_FALSE(load_route_scorer(config));
  config.model_file = "/nonexistent/router.json";
  const auto missing = load_route_scorer(config);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("/nonexistent/router.json"), std::string::npos);
  config.scorer = "heuristic";
  auto heuristic = load_route_scorer(config);
  ASSERT_TRUE(heuristic);
  EXPECT_EQ((*heuristic)->kind(), ScorerKind::heuristic);
}

TEST(LoadRouteScorer, TheBuiltInLearnedModelLoadsWhenThisBuildHasOne) {
  if (builtin_learned_model_json().empty()) GTEST_SKIP() << "config/router/learned.json was absent at build time";
  RouterConfig config;
  config.scorer = "learned";
  auto scorer = load_route_scorer(config);
  ASSERT_TRUE(scorer) << scorer.error().message;
  const double p = p_of(**scorer, "What is the capital of France?");
  EXPECT_GT(p, 0.0);
  EXPECT_LT(p, 1.0);
}

// ------------------------------------------------------ the router ----

using testing::FixedScorer;
using testing::kThreeTierCatalog;

PromptEvent event_with(Preference preference) {
  PromptEvent event;
  event.id = "r";
  event.preference = preference;
  event.messages = user_messages("anything");
  return event;
}

TEST(RouterWithScorer, PicksTheTierFromTheProbabilityAndSaysWhy) {
  auto catalog = ModelCatalog::from_yaml(kThreeTierCatalog);
  ASSERT_TRUE(catalog);
  RouterConfig config;  // balanced: small_min 0.80, medium_min 0.72
  const struct {
    double p;
    const char* model;
    const char* reason;
  } cases[] = {
      {0.90, "s", "learned p_weak_ok=0.90 >= small_min=0.80 pref=balanced tier=small"},
      {0.75, "m", "learned p_weak_ok=0.75 >= medium_min=0.72 pref=balanced tier=medium"},
      {0.30, "l", "learned p_weak_ok=0.30 < medium_min=0.72 pref=balanced tier=large"},
  };
  for (const auto& c : cases) {
    const Router router(config, *catalog, nullptr, std::make_shared<FixedScorer>(c.p));
    auto decision = router.route(event_with(Preference::balanced));
    ASSERT_TRUE(decision) << decision.error().message;
    EXPECT_EQ(decision->model->id, c.model);
    EXPECT_EQ(decision->reason, c.reason);
    EXPECT_DOUBLE_EQ(decision->score, 1.0 - c.p);
  }
  // The quality preference asks for more confidence before the small tier.
  const Router router(config, *catalog, nullptr, std::make_shared<FixedScorer>(0.82));
  auto decision = router.route(event_with(Preference::quality));
  ASSERT_TRUE(decision);
  EXPECT_EQ(decision->model->id, "m");
}

TEST(RouterWithScorer, AMissingModelFallsBackToTheHeuristicAndEveryReasonSaysSo) {
  auto catalog = ModelCatalog::from_yaml(kThreeTierCatalog);
  ASSERT_TRUE(catalog);
  RouterConfig config;
  config.scorer = "knn";
  config.model_file = "/nonexistent/knn.json";
  const Router router(config, *catalog, nullptr);
  auto decision = router.route(event_with(Preference::balanced));
  ASSERT_TRUE(decision);
  EXPECT_TRUE(decision->reason.starts_with("heuristic score="));
  EXPECT_NE(decision->reason.find("knn scorer unavailable"), std::string::npos);
}

}  // namespace
}  // namespace cascade

namespace cascade {
namespace {

using testing::env_of;

TEST(RouterConfigKeys, BuiltInDefaultsMatchTheStructAndEnvOverridesThem) {
  auto defaults = load_config("", env_of({}));
  ASSERT_TRUE(defaults) << defaults.error().message;
  const RouterConfig plain;
  EXPECT_EQ(defaults->router.scorer, "heuristic");
  EXPECT_EQ(defaults->router.model_file, "");
  EXPECT_DOUBLE_EQ(defaults->router.balanced_p.small_min, plain.balanced_p.small_min);
  EXPECT_DOUBLE_EQ(defaults->router.balanced_p.medium_min, plain.balanced_p.medium_min);
  EXPECT_DOUBLE_EQ(defaults->router.quality_p.small_min, plain.quality_p.small_min);
  EXPECT_DOUBLE_EQ(defaults->router.cost_p.medium_min, plain.cost_p.medium_min);
  EXPECT_DOUBLE_EQ(defaults->router.speed_p.small_min, plain.speed_p.small_min);

  auto overridden = load_config("", env_of({{"CASCADE_ROUTER_SCORER", "knn"},
                                            {"CASCADE_ROUTER_MODEL_FILE", "/models/knn.json"},
                                            {"CASCADE_ROUTER_PROBABILITY_QUALITY_SMALL_MIN", "0.95"}}));
  ASSERT_TRUE(overridden) << overridden.error().message;
  EXPECT_EQ(overridden->router.scorer, "knn");
  EXPECT_EQ(overridden->router.model_file, "/models/knn.json");
  EXPECT_DOUBLE_EQ(overridden->router.quality_p.small_min, 0.95);
}

TEST(RouterConfigKeys, RejectUnknownScorersAndInvertedThresholds) {
  EXPECT_FALSE(load_config("", env_of({{"CASCADE_ROUTER_SCORER", "oracle"}})));
  EXPECT_FALSE(load_config("", env_of({{"CASCADE_ROUTER_PROBABILITY_BALANCED_MEDIUM_MIN", "0.95"}})));
}

// config/router/chat_verifier.json: `route-data alpaca-eval --pool-as cheap`
// then `route-train --router verifier` (docs/routing.md, "Chat traffic").
TEST(ChatVerifier, TheShippedFileScoresAWholeAnswerAboveAnEmptyOrRefusingOne) {
  auto verifier = AnswerVerifier::load(std::string(CASCADE_ROUTER_MODELS) + "/chat_verifier.json");
  ASSERT_TRUE(verifier) << verifier.error().message;
  const std::string prompt = "How did US states get their names?";
  const double whole = (*verifier)->p_ok(
      prompt,
      "State names come from several sources.\n\n1. **Native American words**: Many states, such as Alabama, "
      "Connecticut, Massachusetts, Michigan and Ohio, take their names from Native American languages, often "
      "describing a river, a people or a landscape.\n2. **European monarchs and nobles**: Virginia honors Queen "
      "Elizabeth I, Georgia King George II, Maryland Queen Henrietta Maria and the Carolinas King Charles I.\n3. "
      "**Spanish and French words**: Florida means 'flowery', Nevada 'snow-covered', Vermont comes from the French "
      "for 'green mountain'.\n4. **People**: Washington is named for George Washington, Pennsylvania for William "
      "Penn's father.\n\nIn short, the names record the languages and history of the people who lived there.");
  const double empty = (*verifier)->p_ok(prompt, "");
  const double refusal = (*verifier)->p_ok(prompt, "I'm sorry, but I can't help with that.");
  EXPECT_GT(whole, empty);
  EXPECT_GT(whole, refusal);
  EXPECT_NE((*verifier)->description().find("cheap"), std::string::npos) << (*verifier)->description();
}

}  // namespace
}  // namespace cascade
