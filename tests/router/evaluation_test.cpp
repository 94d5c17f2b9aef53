// RouteLLM's metrics on a four-prompt example worked out by hand, the
// cascade's accounting, the weak-answer check, and the split.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "router/tools/evaluation.h"

namespace cascade {
namespace {

// prompt  weak q  strong q  weak $  strong $  p_weak_ok
//   a       0       1         1       10        0.1   (only the strong model is right)
//   b       1       1         1       10        0.9
//   c       0       0         1       10        0.5   (both wrong)
//   d       1       1         1       10        0.7
// weak quality 0.5, strong 0.75; always-strong costs 40, always-weak 4.
std::vector<PairOutcome> four_prompts() {
  return {pair_outcome("a", 0, 1, 1, 10),
          pair_outcome("b", 1, 1, 1, 10),
          pair_outcome("c", 0, 0, 1, 10),
          pair_outcome("d", 1, 1, 1, 10)};
}
const std::vector<double> kP = {0.1, 0.9, 0.5, 0.7};

TEST(RoutingMetrics, MatchTheHandComputedCurveOfFourPrompts) {
  const RoutingEvaluation e = evaluate_routing(four_prompts(), kP);
  EXPECT_DOUBLE_EQ(e.weak_quality, 0.5);
  EXPECT_DOUBLE_EQ(e.strong_quality, 0.75);
  EXPECT_DOUBLE_EQ(e.weak_cost_fraction, 0.1);
  // Ascending p: a, c, d, b go to the strong model one by one.
  ASSERT_EQ(e.curve.size(), 5u);
  const double share[] = {0, 0.25, 0.5, 0.75, 1};
  const double quality[] = {0.5, 0.75, 0.75, 0.75, 0.75};
  const double cost[] = {4.0 / 40, 13.0 / 40, 22.0 / 40, 31.0 / 40, 1.0};
  const double threshold[] = {0.1, 0.5, 0.7, 0.9};
  for (int k = 0; k < 5; ++k) {
    EXPECT_DOUBLE_EQ(e.curve[k].strong_share, share[k]) << k;
    EXPECT_DOUBLE_EQ(e.curve[k].quality, quality[k]) << k;
    EXPECT_NEAR(e.curve[k].cost_fraction, cost[k], 1e-12) << k;
    if (k < 4) {
      EXPECT_DOUBLE_EQ(e.curve[k].threshold, threshold[k]) << k;
    }
  }
  EXPECT_GT(e.curve[4].threshold, 0.9);  // above every score: all go strong
  // APGR: PGR 0 -> 1 over the first quarter, then 1: 0.125 + 0.75.
  ASSERT_TRUE(e.apgr);
  EXPECT_DOUBLE_EQ(*e.apgr, 0.875);
  // CPT: half and 80% of the gap are reached an eighth and a fifth of the way.
  EXPECT_DOUBLE_EQ(*e.cpt_50, 0.125);
  EXPECT_DOUBLE_EQ(*e.cpt_80, 0.2);
  // 50% of strong quality (0.375): always-weak already has it.
  ASSERT_EQ(e.cost_at.size(), 3u);
  EXPECT_DOUBLE_EQ(*e.cost_at[0].cost_fraction, 0.1);
  EXPECT_DOUBLE_EQ(*e.cost_at[0].strong_share, 0.0);
  // 80% (0.6): 40% of the way from point 0 to point 1.
  EXPECT_NEAR(*e.cost_at[1].cost_fraction, 0.1 + 0.4 * 0.225, 1e-12);
  // 95% (0.7125): 85% of the way.
  EXPECT_NEAR(*e.cost_at[2].cost_fraction, 0.1 + 0.85 * 0.225, 1e-12);
  EXPECT_NEAR(*e.cost_at[2].strong_share, 0.85 * 0.25, 1e-12);
  EXPECT_DOUBLE_EQ(*e.cost_at[2].threshold, 0.5);
  // Random routing reaches 95% at share 0.85 in expectation: 0.1 + 0.85 * 0.9.
  EXPECT_NEAR(*e.random_cost_at_95, 0.865, 1e-12);
  // The oracle sends only `a` first: the same curve here.
  EXPECT_DOUBLE_EQ(*e.oracle_apgr, 0.875);
}

TEST(RoutingMetrics, RandomApgrIsThatOfRandomOrdersOfTheSamePrompts) {
  // Whichever position `a` takes in a random order, APGR is 0.875, 0.625,
  // 0.375 or 0.125: a mean near 0.5 and those extremes as its 95% range.
  const RoutingEvaluation e = evaluate_routing(four_prompts(), kP, {.seed = 7, .random_repeats = 400});
  ASSERT_TRUE(e.random_apgr);
  EXPECT_NEAR(*e.random_apgr, 0.5, 0.06);
  EXPECT_DOUBLE_EQ(*e.random_apgr_low, 0.125);
  EXPECT_DOUBLE_EQ(*e.random_apgr_high, 0.875);
  const RoutingEvaluation again = evaluate_routing(four_prompts(), kP, {.seed = 7, .random_repeats = 400});
  EXPECT_EQ(*again.random_apgr, *e.random_apgr);
}

TEST(RoutingMetrics, EqualScoresAreOneStepOfTheSweep) {
  const RoutingEvaluation e = evaluate_routing(four_prompts(), {0.5, 0.5, 0.5, 0.5});
  ASSERT_EQ(e.curve.size(), 2u);
  EXPECT_DOUBLE_EQ(*e.apgr, 0.5);  // a straight line from weak to strong
}

TEST(RoutingMetrics, NoGapMeansNoApgr) {
  std::vector<PairOutcome> same = {pair_outcome("x", 1, 1, 1, 10), pair_outcome("y", 0, 0, 1, 10)};
  const RoutingEvaluation e = evaluate_routing(same, {0.2, 0.4});
  EXPECT_FALSE(e.apgr);
  EXPECT_FALSE(e.random_apgr);
  const auto j = to_json(e);
  EXPECT_TRUE(j["apgr"].is_null());
  EXPECT_TRUE(j.contains("cost_at_95"));
}

TEST(CascadeMetrics, PayForTheWeakCallOfEveryEscalatedPrompt) {
  // `a` fails the check; with every prompt weak-first, `a` costs 1 + 10.
  const std::vector<bool> fails = {true, false, false, false};
  const RoutingEvaluation e = evaluate_cascade(four_prompts(), kP, fails);
  ASSERT_FALSE(e.curve.empty());
  EXPECT_DOUBLE_EQ(e.curve[0].strong_share, 0.25);
  EXPECT_DOUBLE_EQ(e.curve[0].quality, 0.75);
  EXPECT_NEAR(e.curve[0].cost_fraction, 14.0 / 40, 1e-12);
  // Sending `a` straight to the strong model saves its weak call.
  EXPECT_NEAR(e.curve[1].cost_fraction, 13.0 / 40, 1e-12);
  EXPECT_NEAR(*e.cost_at[2].cost_fraction, 13.0 / 40, 1e-12);
  // PGR is 1 over the whole share range the cascade covers.
  EXPECT_DOUBLE_EQ(*e.apgr, 1.0);
  // A check against a second model is paid on every weak-first prompt.
  auto with_check = four_prompts();
  for (auto& p : with_check) p.check_cost = 2;
  const RoutingEvaluation paid = evaluate_cascade(with_check, kP, fails, {}, true);
  EXPECT_NEAR(paid.curve[0].cost_fraction, (14.0 + 8.0) / 40, 1e-12);
}

TEST(VerifiedCascadeMetrics, EveryPromptPaysTheWeakCallAndEscalationsPayBoth) {
  // `c` fails the check: escalated whatever the threshold. Then ascending
  // verifier score: a, c (already escalated), d, b.
  const std::vector<bool> fails = {false, false, true, false};
  const RoutingEvaluation e = evaluate_verified_cascade(four_prompts(), kP, fails);
  ASSERT_EQ(e.curve.size(), 5u);
  const double share[] = {0.25, 0.5, 0.5, 0.75, 1};
  const double quality[] = {0.5, 0.75, 0.75, 0.75, 0.75};
  const double cost[] = {14.0 / 40, 24.0 / 40, 24.0 / 40, 34.0 / 40, 44.0 / 40};
  for (int k = 0; k < 5; ++k) {
    EXPECT_DOUBLE_EQ(e.curve[k].strong_share, share[k]) << k;
    EXPECT_DOUBLE_EQ(e.curve[k].quality, quality[k]) << k;
    EXPECT_NEAR(e.curve[k].cost_fraction, cost[k], 1e-12) << k;
  }
  // 95% of 0.75 is reached 85% of the way from the first point to the second.
  EXPECT_NEAR(*e.cost_at[2].cost_fraction, (14.0 + 0.85 * 10.0) / 40, 1e-12);
}

TEST(GainPerCost, RanksByExpectedGainPerExpectedExtraDollar) {
  // Costs linear in prompt bytes: weak 0.1 per byte, strong 1 per byte.
  std::vector<PairOutcome> train;
  for (const std::string prompt : {"a", "bb", "bbbb", "bbbbbbbbbb"}) {
    const double bytes = static_cast<double>(prompt.size());
    train.push_back(pair_outcome(prompt, 0, 1, 0.1 * bytes, bytes));
  }
  const CostModel costs = fit_cost_model(train);
  EXPECT_NEAR(costs.weak_b, 0.1, 1e-12);
  EXPECT_NEAR(costs.strong_b, 1.0, 1e-12);
  EXPECT_NEAR(costs.weak_a, 0.0, 1e-12);
  EXPECT_NEAR(costs.strong_a, 0.0, 1e-12);
  EXPECT_NEAR(costs.mean_extra, 0.9 * 17 / 4, 1e-12);
  EXPECT_NEAR(costs.extra_cost("ccc"), 2.7, 1e-12);
  // Same probability: the short prompt's upgrade is ten times cheaper, so it
  // goes to the strong model first; a likelier gain can outrank a cheaper one.
  const std::vector<PairOutcome> test = {pair_outcome("a", 0, 1, 0, 0),
                                         pair_outcome("bbbbbbbbbb", 0, 1, 0, 0),
                                         pair_outcome("bbbbbbbbbb", 0, 1, 0, 0)};
  const auto scores = gain_per_cost_scores(test, {0.5, 0.5, 0.0}, costs);
  EXPECT_NEAR(scores[0], -0.5 / (0.9 / costs.mean_extra), 1e-9);
  EXPECT_NEAR(scores[1], -0.5 / (9.0 / costs.mean_extra), 1e-9);
  EXPECT_LT(scores[0], scores[1]);
  EXPECT_LT(scores[2], scores[1]);
}

TEST(AnswerFeatures, FlagWhatMakesAWorkedAnswerSuspect) {
  auto features = [](std::string_view prompt, std::string_view answer) {
    std::map<std::string, float> out;
    for (const auto& [name, value] : answer_features(prompt, answer)) out[name] = value;
    return out;
  };
  const auto good = features("Tom has 3 apples and buys 4. How many?", "3 + 4 = <<3+4=7>>7 apples.\n#### 7");
  EXPECT_EQ(good.at("answer:fails_check"), 0.0f);
  EXPECT_EQ(good.at("answer:no_final_mark"), 0.0f);
  EXPECT_EQ(good.at("answer:not_integer"), 0.0f);
  EXPECT_EQ(good.at("answer:copies_prompt_number"), 0.0f);
  EXPECT_EQ(good.at("answer:differs_from_last_calculation"), 0.0f);
  EXPECT_GT(good.at("answer:log_calculations"), 0.0f);
  const auto bad = features("Tom has 3 apples and buys 4. How many?", "He has <<3+4=7>>7, so 3.5 each\n#### 3.5");
  EXPECT_EQ(bad.at("answer:not_integer"), 1.0f);
  EXPECT_EQ(bad.at("answer:differs_from_last_calculation"), 1.0f);
  const auto copied = features("Tom has 3 apples and buys 4. How many?", "#### 4");
  EXPECT_EQ(copied.at("answer:copies_prompt_number"), 1.0f);
  const auto negative = features("How many?", "It is -2 apples");
  EXPECT_EQ(negative.at("answer:negative"), 1.0f);
  EXPECT_EQ(negative.at("answer:no_final_mark"), 1.0f);
  EXPECT_EQ(features("How many?", "").at("answer:no_number"), 1.0f);
}

TEST(AnswerFeatures, CountTheQuestionsNumbersTheAnswerLeavesOutAndTheAnswersSize) {
  auto feature = [](std::string_view prompt, std::string_view answer, const std::string& name) {
    for (const auto& [n, value] : answer_features(prompt, answer))
      if (n == name) return value;
    ADD_FAILURE() << "no feature " << name;
    return -1.0f;
  };
  const char* question = "Example: 9 + 9 = 18.\n\nAnn earns $1,200 a week and spends 300.5 of it for 4 weeks. Savings?";
  // Only the question after the few-shot examples counts: 1200, 300.5, 4.
  EXPECT_EQ(feature(question, "(1200 - 300.5) * 4 = <<899.5*4=3598>>3598\n#### 3598", "answer:unused_question_numbers"), 0.0f);
  EXPECT_NEAR(feature(question, "1,200 * 4 = 4800.\n#### 4800", "answer:unused_question_numbers"), 1.0f / 3.0f, 1e-6);
  EXPECT_EQ(feature("Say hello.", "#### 5", "answer:unused_question_numbers"), 0.0f);
  EXPECT_NEAR(feature("How many?", "#### 999999", "answer:log_magnitude"), 1.0f, 1e-6);
  EXPECT_LT(feature("How many?", "#### 9", "answer:log_magnitude"), feature("How many?", "#### -99", "answer:log_magnitude"));
  EXPECT_EQ(feature("How many?", "no idea", "answer:log_magnitude"), 0.0f);
}

// Forty prompts; "cheap-a" (1% of strong's price) is right on the test
// side of the seed-7 split only, "cheap-b" (5%) on the training side only.
// Over all rows "cheap-a" looks cheaper to route with; on the training rows,
// all the chooser may see, "cheap-b" does.
std::vector<OutcomeRow> weak_candidate_rows(std::set<std::string>& train_prompts) {
  std::vector<OutcomeRow> rows;
  for (int i = 0; i < 40; ++i) {
    OutcomeRow row;
    row.prompt = "question " + std::to_string(i);
    row.outcomes["strong"] = {1.0, 1.0, std::nullopt};
    row.outcomes["cheap-a"] = {0.0, 0.01, std::nullopt};
    row.outcomes["cheap-b"] = {0.0, 0.05, std::nullopt};
    rows.push_back(row);
  }
  auto pairs = select_pair(rows, "cheap-a", "strong");
  EXPECT_TRUE(pairs);
  const Split split = split_by_prompt(pairs->pairs, 0.5, 7);
  for (const std::size_t i : split.train) train_prompts.insert(pairs->pairs[i].prompt);
  for (auto& row : rows) {
    const bool train = train_prompts.contains(row.prompt);
    row.outcomes["cheap-a"].quality = train ? 0.5 : 1.0;
    row.outcomes["cheap-b"].quality = train ? 1.0 : 0.0;
  }
  return rows;
}

TEST(ChooseWeakModel, PicksTheCandidateCheapestToRouteWithOnTrainingRowsOnly) {
  std::set<std::string> train_prompts;
  const auto rows = weak_candidate_rows(train_prompts);
  ASSERT_EQ(train_prompts.size(), 20u);
  auto choice = choose_weak_model(rows, {"cheap-a", "cheap-b"}, "strong", "", 0.5, 7);
  ASSERT_TRUE(choice) << choice.error().message;
  EXPECT_EQ(choice->model, "cheap-b");
  ASSERT_EQ(choice->candidates.size(), 2u);
  const auto& a = choice->candidates[0];
  const auto& b = choice->candidates[1];
  EXPECT_EQ(a.model, "cheap-a");
  EXPECT_EQ(a.rows, 20u);
  EXPECT_DOUBLE_EQ(a.weak_quality, 0.5);
  EXPECT_DOUBLE_EQ(a.strong_quality, 1.0);
  EXPECT_NEAR(a.weak_cost_fraction, 0.01, 1e-12);
  // 90% of the prompts to the strong model to reach 95%: 0.01 + 0.9 * 0.99.
  EXPECT_NEAR(a.random_cost_at_95, 0.901, 1e-12);
  EXPECT_DOUBLE_EQ(b.weak_quality, 1.0);
  EXPECT_NEAR(b.random_cost_at_95, 0.05, 1e-12);  // already at strong's quality alone
  // Judged on every row, cheap-a would have won (0.80 against 0.905).
  auto all_rows = choose_weak_model(rows, {"cheap-a", "cheap-b"}, "strong", "", 1.0, 7);
  ASSERT_TRUE(all_rows);
  EXPECT_EQ(all_rows->model, "cheap-a");
}

TEST(ChooseWeakModel, CountsOnlyPromptsEveryCandidateTrainsOnAndRefusesBadCandidates) {
  std::set<std::string> train_prompts;
  auto rows = weak_candidate_rows(train_prompts);
  rows[0].outcomes.erase("cheap-b");  // cheap-b has 39 rows: its own split differs a little
  auto choice = choose_weak_model(rows, {"cheap-a", "cheap-b"}, "strong", "", 0.5, 7);
  ASSERT_TRUE(choice) << choice.error().message;
  EXPECT_EQ(choice->candidates[0].rows, choice->candidates[1].rows);
  EXPECT_LE(choice->candidates[0].rows, 20u);
  EXPECT_GT(choice->candidates[0].rows, 15u);

  auto strong = choose_weak_model(rows, {"cheap-a", "strong"}, "strong", "", 0.5, 7);
  ASSERT_FALSE(strong);
  EXPECT_NE(strong.error().message.find("'strong' is the strong or the check model"), std::string::npos);
  auto unknown = choose_weak_model(rows, {"cheap-a", "cheap-z"}, "strong", "", 0.5, 7);
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("'cheap-z'"), std::string::npos);
  EXPECT_FALSE(choose_weak_model(rows, {}, "strong", "", 0.5, 7));
}

TEST(WeakAnswerCheck, FailsWrongArithmeticCutOffWorkAndNonOptions) {
  EXPECT_FALSE(weak_answer_fails_check("Tom has 3 apples and buys 4.", "3 + 4 = <<3+4=7>>7 apples.\n#### 7"));
  EXPECT_TRUE(weak_answer_fails_check("5 pens at $2?", "5 * 2 = <<5*2=12>>12 dollars.\n#### 12"));
  EXPECT_TRUE(weak_answer_fails_check("eggs?", "She has <<16-3=13>>13 eggs, so she sells 13 * 2 = $<<13*2=26>>26"));
  EXPECT_FALSE(weak_answer_fails_check("1,200 / 4?", "<<1,200/4=300>>300\n#### 300"));
  EXPECT_TRUE(weak_answer_fails_check("anything", "   \n"));
  const char* mc = "Which is a mammal?\nA) shark\nB) whale\nAnswer:";
  EXPECT_FALSE(weak_answer_fails_check(mc, "B\n"));
  EXPECT_FALSE(weak_answer_fails_check(mc, "The answer is (B)"));
  EXPECT_TRUE(weak_answer_fails_check(mc, "whale"));
  EXPECT_TRUE(weak_answer_fails_check(mc, "C"));
  // Free text with no format to check passes.
  EXPECT_FALSE(weak_answer_fails_check("Write a function that adds two numbers.", "def add(a, b):\n    return a + b"));
}

TEST(WeakAnswerCheck, AgreementComparesFinalAnswers) {
  const char* mc = "Pick one.\nA) red\nB) blue\nC) green\n";
  EXPECT_EQ(final_answer(mc, "(C)"), "C");
  EXPECT_EQ(final_answer("How many?", "2 + 2 = <<2+2=4>>4\n#### 1,200"), "1200");
  EXPECT_EQ(final_answer("How much?", "It costs 18.00 dollars"), "18");
  EXPECT_FALSE(final_answer("Write code.", "def f():\n    pass"));
  EXPECT_FALSE(answers_disagree(mc, "B", "B\n"));
  EXPECT_TRUE(answers_disagree(mc, "B", "A"));
  EXPECT_TRUE(answers_disagree(mc, "B", "I am not sure"));
  EXPECT_FALSE(answers_disagree("How many?", "#### 18", "The answer is 18."));
  EXPECT_FALSE(answers_disagree("Write code.", "def f(): pass", "function f() {}"));  // nothing comparable
}

TEST(Split, IsDeterministicSeededAndKeepsIdenticalPromptsTogether) {
  std::vector<PairOutcome> pairs;
  for (int i = 0; i < 200; ++i) pairs.push_back(pair_outcome("prompt " + std::to_string(i % 150), 1, 1, 1, 1));
  const Split a = split_by_prompt(pairs, 0.5, 1);
  const Split b = split_by_prompt(pairs, 0.5, 1);
  EXPECT_EQ(a.train, b.train);
  EXPECT_NEAR(static_cast<double>(a.train.size()), 100, 2);
  EXPECT_EQ(a.train.size() + a.test.size(), 200u);
  std::set<std::string> train_prompts;
  for (const auto i : a.train) train_prompts.insert(pairs[i].prompt);
  for (const auto i : a.test) EXPECT_FALSE(train_prompts.contains(pairs[i].prompt)) << pairs[i].prompt;
  EXPECT_NE(split_by_prompt(pairs, 0.5, 2).train, a.train);
  // File order does not matter.
  std::vector<PairOutcome> reversed(pairs.rbegin(), pairs.rend());
  std::set<std::string> reversed_train;
  for (const auto i : split_by_prompt(reversed, 0.5, 1).train) reversed_train.insert(reversed[i].prompt);
  EXPECT_EQ(reversed_train, train_prompts);
}

TEST(Outcomes, ParseAndRejectLinesOfTheDocumentedFormat) {
  auto row = parse_outcome_line(
      R"({"prompt":"p","outcomes":{"w":{"quality":1,"cost_usd":0.5,"response":"B"},"s":{"quality":0,"cost_usd":2}}})");
  ASSERT_TRUE(row) << row.error().message;
  EXPECT_EQ(row->outcomes.at("w").response, "B");
  EXPECT_FALSE(parse_outcome_line(R"({"prompt":"p","outcomes":{"w":{"quality":2,"cost_usd":1}}})"));
  EXPECT_FALSE(parse_outcome_line(R"({"prompt":"p","outcomes":{}})"));
  EXPECT_FALSE(parse_outcome_line(R"({"outcomes":{"w":{"quality":1,"cost_usd":1}}})"));
  auto again = parse_outcome_line(to_json(*row).dump());
  ASSERT_TRUE(again);
  EXPECT_EQ(to_json(*again), to_json(*row));
  // Alternative names pick whichever a row has.
  auto pair = select_pair({*row}, "x,w", "s");
  ASSERT_TRUE(pair);
  EXPECT_EQ(pair->pairs.at(0).weak_cost, 0.5);
  EXPECT_FALSE(select_pair({*row}, "w", "nope"));
}

}  // namespace
}  // namespace cascade
