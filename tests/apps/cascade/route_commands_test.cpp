// `cascade route-train` and `route-eval` end to end on a small outcomes
// file, as the CLI runs them: the contract's keys, a learned router that
// beats random on a learnable set, and a cascade that refuses to run without
// the weak model's answers.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "apps/cascade/commands.h"
#include "router/router.h"
#include "support/temp_dir.h"

namespace cascade::cli {
namespace {

class RouteCommands : public ::testing::Test {
 protected:
  // 120 prompts: small talk the weak model answers as well as the strong
  // one, and proofs only the strong one gets right. Weak calls cost 1, strong 10.
  std::string write_outcomes(bool with_responses) {
    const std::string path = dir_.sub("outcomes.jsonl");
    std::ofstream out(path);
    const char* easy[] = {"write a friendly greeting for", "tell a short joke about", "suggest a nice name for"};
    const char* hard[] = {"prove the theorem about", "derive and prove the identity for", "prove by induction the bound on"};
    for (int i = 0; i < 60; ++i) {
      const std::string topic = " topic " + std::to_string(i);
      nlohmann::json e = {{"prompt", std::string(easy[i % 3]) + topic},
                          {"outcomes",
                           {{"weak", {{"quality", 1}, {"cost_usd", 1}}}, {"strong", {{"quality", 1}, {"cost_usd", 10}}}}}};
      nlohmann::json h = {{"prompt", std::string(hard[i % 3]) + topic},
                          {"outcomes",
                           {{"weak", {{"quality", 0}, {"cost_usd", 1}}}, {"strong", {{"quality", 1}, {"cost_usd", 10}}}}}};
      if (with_responses) {
        e["outcomes"]["weak"]["response"] = "Hello!";
        h["outcomes"]["weak"]["response"] = "<<2+2=5>>5\n#### 5";  // fails the arithmetic check
      }
      out << e.dump() << '\n' << h.dump() << '\n';
    }
    return path;
  }

  static std::pair<int, std::string> run_eval(const RouteEvalOptions& options) {
    ::testing::internal::CaptureStdout();
    const int code = run_route_eval(CommonOptions{}, options);
    return {code, ::testing::internal::GetCapturedStdout()};
  }

  testing::TempDir dir_{"cascade-route-commands"};
};

TEST_F(RouteCommands, EvalPrintsTheContractKeysAndALearnedRouterBeatsRandom) {
  RouteEvalOptions options;
  options.outcomes = write_outcomes(false);
  options.weak = "weak";
  options.strong = "strong";
  options.router = "learned";
  options.train_fraction = 0.5;
  const auto [code, out] = run_eval(options);
  ASSERT_EQ(code, 0) << out;
  const auto j = nlohmann::json::parse(out);
  for (const char* key : {"apgr", "random_apgr", "cost_at_50", "cost_at_80", "cost_at_95", "strong_calls_at_95", "curve"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["train_rows"].get<int>() + j["test_rows"].get<int>(), 120);
  EXPECT_GT(j["apgr"].get<double>(), j["random_apgr_ci95"][1].get<double>());
  // Sending only the proofs to the strong model reaches its quality at
  // about half the cost of always-strong (half the prompts at 10, half at 1).
  EXPECT_LT(j["cost_at_95"].get<double>(), 0.6);
  EXPECT_LT(j["cost_at_95"].get<double>(), j["random_cost_at_95"].get<double>());
  EXPECT_GE(j["curve"].size(), 2u);
}

TEST_F(RouteCommands, ChooseWeakEvaluatesTheCandidateCheapestToRouteWithOnTheTrainingRows) {
  // A second cheap model that is right on every prompt at twice the weak one's price.
  const std::string path = dir_.sub("candidates.jsonl");
  {
    std::ifstream in(write_outcomes(false));
    std::ofstream out(path);
    for (std::string line; std::getline(in, line);) {
      auto row = nlohmann::json::parse(line);
      row["outcomes"]["able"] = {{"quality", 1}, {"cost_usd", 2}};
      out << row.dump() << '\n';
    }
  }
  RouteEvalOptions options;
  options.outcomes = path;
  options.strong = "strong";
  options.choose_weak = "weak,able";
  options.router = "random";  // nothing for a learned router to learn with "able": it is always right
  options.train_fraction = 0.5;
  const auto [code, out] = run_eval(options);
  ASSERT_EQ(code, 0) << out;
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["weak"], "able");
  EXPECT_EQ(j["weak_selection"]["chosen"], "able");
  ASSERT_EQ(j["weak_selection"]["candidates"].size(), 2u);
  EXPECT_EQ(j["weak_selection"]["candidates"][0]["model"], "weak");
  EXPECT_NEAR(j["weak_selection"]["candidates"][1]["random_cost_at_95"].get<double>(), 0.2, 1e-9);
  EXPECT_NEAR(j["cost_at_95"].get<double>(), 0.2, 1e-9);  // the able model alone is the strong one's equal
  EXPECT_EQ(j["train_rows"].get<int>() + j["test_rows"].get<int>(), 120);

  // It chooses on training rows, so it needs a split; and it replaces --weak.
  options.train_fraction = -1;
  EXPECT_EQ(run_eval(options).first, 2);
  options.train_fraction = 0.5;
  options.weak = "weak";
  EXPECT_EQ(run_eval(options).first, 2);
}

TEST_F(RouteCommands, EvalOfTheRandomAndHeuristicRoutersRuns) {
  RouteEvalOptions options;
  options.outcomes = write_outcomes(false);
  options.weak = "weak";
  options.strong = "strong";
  for (const char* router : {"random", "heuristic"}) {
    options.router = router;
    const auto [code, out] = run_eval(options);
    ASSERT_EQ(code, 0) << router;
    const auto j = nlohmann::json::parse(out);
    EXPECT_EQ(j["router"], router);
    EXPECT_EQ(j["test_rows"], 120);
  }
}

TEST_F(RouteCommands, CascadeNeedsTheWeakAnswersAndUsesTheCheckWhenItHasThem) {
  RouteEvalOptions options;
  options.outcomes = write_outcomes(false);
  options.weak = "weak";
  options.strong = "strong";
  options.router = "cascade";
  options.train_fraction = 0.5;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_eval(options).first, 1);
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("oracle"), std::string::npos);

  options.outcomes = write_outcomes(true);
  const auto [code, out] = run_eval(options);
  ASSERT_EQ(code, 0) << out;
  const auto j = nlohmann::json::parse(out);
  // Every proof's weak answer fails the check: escalated, with both calls paid.
  EXPECT_NEAR(j["check_failed_share"].get<double>(), 0.5, 0.1);
  EXPECT_NEAR(j["curve"][0]["pgr"].get<double>(), 1.0, 1e-9);
}

TEST_F(RouteCommands, TrainWritesAModelTheRouterLoads) {
  RouteTrainOptions options;
  options.outcomes = {write_outcomes(false)};
  options.out = dir_.sub("learned.json");
  options.hash_bits = 12;
  ::testing::internal::CaptureStderr();
  ASSERT_EQ(run_route_train(options), 0) << ::testing::internal::GetCapturedStderr();
  ::testing::internal::GetCapturedStderr();
  auto scorer = load_route_model(options.out);
  ASSERT_TRUE(scorer) << scorer.error().message;
  EXPECT_GT((*scorer)->score(user_messages("write a friendly greeting for topic 999")).p_weak_ok,
            (*scorer)->score(user_messages("prove the theorem about topic 999")).p_weak_ok);
  // The weak model was taken to be the cheaper one of the file's two.
  const auto model = nlohmann::json::parse(std::ifstream(options.out));
  EXPECT_EQ(model["weak"], "weak");
  EXPECT_EQ(model["strong"], "strong");
}

// `cascade route --explain` with router policies (docs/routing.md, "Policies").
TEST_F(RouteCommands, ExplainShowsTheConstraintsTheRuleAndTheExperimentArm) {
  const std::string config = dir_.write("policies.yaml", R"(
router:
  policies:
    frugal: {preference: cost}
  rules:
    - name: legal-eu
      match: {tenant: acme, tag: legal}
      tier: large
      residency: eu
  experiment: {name: thrift, policies: [frugal, default], split: 1.0}
)");
  auto run = [&](RouteOptions options) {
    options.explain = true;
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    const int code = run_route(CommonOptions{config, ""}, options);
    std::string out = ::testing::internal::GetCapturedStdout() + ::testing::internal::GetCapturedStderr();
    return std::pair{code, out};
  };
  RouteOptions legal;
  legal.prompt = "Draft a confidentiality clause";
  legal.tenant = "acme";
  legal.metadata = R"({"tags":["legal"]})";
  auto [legal_code, legal_out] = run(legal);
  ASSERT_EQ(legal_code, 0) << legal_out;
  // Counted when the tokenizer's rank files are found, else "~" estimated.
  EXPECT_NE(legal_out.find("constraints: tokens "), std::string::npos) << legal_out;
  EXPECT_NE(legal_out.find("residency eu"), std::string::npos) << legal_out;
  EXPECT_NE(legal_out.find("rule:    legal-eu"), std::string::npos) << legal_out;
  EXPECT_NE(legal_out.find("arm none: a rule decided"), std::string::npos) << legal_out;
  EXPECT_NE(legal_out.find("(mistral, tier"), std::string::npos) << legal_out;  // the eu provider

  RouteOptions other;
  other.prompt = "Summarise this paragraph";
  auto [other_code, other_out] = run(other);
  ASSERT_EQ(other_code, 0) << other_out;
  EXPECT_NE(other_out.find("rule:    none matched"), std::string::npos) << other_out;
  EXPECT_NE(other_out.find("experiment: thrift, arm thrift:frugal"), std::string::npos) << other_out;

  dir_.write("policies.yaml", "router:\n  rules:\n    - match: {prompt: \"(broken\"}\n      tier: large\n");
  auto [bad_code, bad_out] = run(other);
  EXPECT_NE(bad_code, 0);
  EXPECT_NE(bad_out.find("router.rules[0].match.prompt: invalid regex"), std::string::npos) << bad_out;
}

// The heuristic's length feature counts tokens when the tokenizer is found:
// --explain shows the score the decision used, not a chars/4 estimate.
TEST_F(RouteCommands, ExplainShowsTheHeuristicScoreTheDecisionUsed) {
  RouteOptions options;
  std::string prompt = "Compare these numbers and say which is largest:";
  for (int i = 0; i < 400; ++i) prompt += " " + std::to_string(i * 7919 % 1000);
  options.prompt = prompt;
  options.explain = true;
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  const int code = run_route(CommonOptions{}, options);
  const std::string out = ::testing::internal::GetCapturedStdout() + ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(code, 0) << out;
  const auto score_at = out.find("heuristic score=");
  const auto p_at = out.find("p_weak_ok: ");
  ASSERT_NE(score_at, std::string::npos) << out;
  ASSERT_NE(p_at, std::string::npos) << out;
  const double score = std::stod(out.substr(score_at + 16, 4));
  const double p_weak_ok = std::stod(out.substr(p_at + 11, 6));
  EXPECT_NEAR(score, 1.0 - p_weak_ok, 0.005 + 1e-9) << out;
}

// Cost-aware routing (docs/routing.md, "Cost-aware routing") in the reason
// and in --explain.
TEST_F(RouteCommands, ExplainShowsTheCostAwareAdjustment) {
  const std::string config = dir_.write(
      "cost-aware.yaml", "router:\n  scorer: learned\n  cost_aware: {enabled: true, reference_input_tokens: 1000}\n");
  RouteOptions options;
  options.prompt = "Prove that the sum of the first n odd numbers is n^2.";
  options.explain = true;
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  const int code = run_route(CommonOptions{config, ""}, options);
  const std::string out = ::testing::internal::GetCapturedStdout() + ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("reason:  learned p_weak_ok="), std::string::npos) << out;
  EXPECT_NE(out.find(" cost_adjusted="), std::string::npos) << out;
  EXPECT_NE(out.find("cost-aware: the large tier costs $"), std::string::npos) << out;
  EXPECT_NE(out.find("reference one (1000 input + 256 output tokens)"), std::string::npos) << out;
}

}  // namespace
}  // namespace cascade::cli
