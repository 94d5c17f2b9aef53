#include <gtest/gtest.h>

#include <string>

#include "router/router.h"

namespace cascade {
namespace {

nlohmann::json user(const std::string& text) {
  return nlohmann::json::array({{{"role", "user"}, {"content", text}}});
}

double score_of(const std::string& text) { return score_complexity(user(text)).score; }

double feature(const ComplexityScore& score, std::string_view name) {
  for (const auto& [feature_name, value] : score.features)
    if (feature_name == name) return value;
  ADD_FAILURE() << "no feature " << name;
  return 0;
}

double feature_of(const std::string& text, std::string_view name) {
  return feature(score_complexity(user(text)), name);
}

constexpr const char* kBase = "Tell me about the rivers of France.";

TEST(Complexity, TrivialQuestionScoresFarBelowALongMultiStepCodeAndMathTask) {
  const double trivial = score_of("What is the capital of France?");
  std::string hard =
      "You are reviewing a numerical library. Do the following:\n"
      "1. Explain why the function below loses precision for large n, step by step.\n"
      "2. Derive the closed form of \\sum_{k=1}^{n} k^2 and prove it by induction.\n"
      "3. Then rewrite the function in C++ so that it is exact, and compare the trade-offs.\n\n"
      "```cpp\n"
      "double sum_squares(int n) {\n"
      "  double total = 0;\n"
      "  for (int k = 1; k <= n; ++k) total += std::pow(k, 2);\n"
      "  return total;\n"
      "}\n"
      "```\n";
  for (int i = 0; i < 20; ++i)
    hard += "Context paragraph: the library is used in billing, where rounding errors cost money. ";
  const double complex = score_of(hard);
  EXPECT_LT(trivial, 0.1);
  EXPECT_GT(complex, 0.8);
}

TEST(Complexity, TheLengthIsTheTokenizersCountWhenGiven) {
  const auto messages = user("Summarize this.");
  const ComplexityScore estimated = score_complexity(messages);
  const ComplexityScore counted = score_complexity(messages, 6000);  // e.g. a long document in a part not scanned
  EXPECT_EQ(feature(estimated, "length"), 0.0);
  EXPECT_GT(feature(counted, "length"), 0.0);
  EXPECT_GT(counted.score, estimated.score);
  EXPECT_EQ(score_complexity(messages, 0).score, estimated.score);  // 0 = unknown: estimated
}

TEST(Complexity, ScoresStayInTheUnitInterval) {
  std::string huge;
  for (int i = 0; i < 5000; ++i)
    huge += "```cpp\nint f(int x) { return x * 2 + 1; }\n```\nExplain why and prove that 2x + 1 = y. Then ";
  for (const auto& messages :
       {nlohmann::json::array(), nlohmann::json(nullptr), nlohmann::json("not an array"), user(""),
        user(huge), nlohmann::json::array({42, {{"role", "user"}}, {{"content", 7}}})}) {
    const auto score = score_complexity(messages);
    EXPECT_GE(score.score, 0.0);
    EXPECT_LE(score.score, 1.0);
    for (const auto& [name, value] : score.features) EXPECT_GE(value, 0.0) << name;
  }
  EXPECT_EQ(score_of(huge), 1.0);
  EXPECT_EQ(score_complexity(nlohmann::json::array()).score, 0.0);
}

TEST(Complexity, ScoreIsTheCappedSumOfNamedFeatures) {
  const auto score = score_complexity(user("Explain why 3 + 4 = 7, then write a poem about it."));
  ASSERT_EQ(score.features.size(), 7u);
  double sum = 0;
  for (const auto& [name, value] : score.features) sum += value;
  EXPECT_NEAR(score.score, std::min(sum, 1.0), 1e-12);
  for (const char* name : {"length", "code", "math", "reasoning", "open_ended", "multi_step", "system"})
    feature(score, name);
}

TEST(Complexity, LongerPromptsScoreHigher) {
  std::string context;
  for (int i = 0; i < 200; ++i) context += "The river flows north through the old town and past the mill. ";
  EXPECT_EQ(feature_of(kBase, "length"), 0.0);
  EXPECT_GT(feature_of(std::string(kBase) + "\n" + context, "length"), 0.1);
  EXPECT_GT(score_of(std::string(kBase) + "\n" + context), score_of(kBase));
}

TEST(Complexity, CodeRaisesTheScore) {
  const std::string with_code = std::string(kBase) +
                                "\n```python\ndef flow(river):\n    return river.length_km * 2\n```";
  EXPECT_EQ(feature_of(kBase, "code"), 0.0);
  EXPECT_GT(feature_of(with_code, "code"), 0.2);
  EXPECT_GT(score_of(with_code), score_of(kBase));
  EXPECT_GT(feature_of("How do I fix this Python function?", "code"), 0.0);
}

TEST(Complexity, MathRaisesTheScore) {
  EXPECT_EQ(feature_of(kBase, "math"), 0.0);
  EXPECT_GT(feature_of("Solve 3x + 7 = 22 for x.", "math"), 0.1);
  EXPECT_GT(feature_of("Compute \\int_0^1 x^2 dx.", "math"), 0.1);
  EXPECT_GT(feature_of("Find the derivative of the polynomial.", "math"), 0.1);
  EXPECT_GT(score_of(std::string(kBase) + " Prove that 2 + 2 = 4."), score_of(kBase));
}

TEST(Complexity, WordProblemsCountAsMath) {
  const std::string problem =
      "Janet's ducks lay 16 eggs per day. She eats 3 and bakes with 4. She sells the remainder "
      "for $2 each. How much does she make in total?";
  EXPECT_GT(feature_of(problem, "math"), 0.1);
}

TEST(Complexity, DatesAndProseAreNotMath) {
  EXPECT_EQ(feature_of("Who won the 2019-2020 season and/or the cup in 1998?", "math"), 0.0);
  EXPECT_EQ(feature_of("Is a **bold** claim a well-known trick?", "math"), 0.0);
}

TEST(Complexity, LatexCountsButEscapedNewlinesDoNot) {
  EXPECT_GT(feature_of("Simplify \\frac{a}{b} + \\sqrt{c}", "math"), 0.1);
  EXPECT_EQ(feature_of("Answer:\\nWhich one?\\nA) dry\\nB) wet", "math"), 0.0);
}

TEST(Complexity, BrandNamesAreNotCode) {
  EXPECT_EQ(feature_of("Is the iPhone better than a YouTube TV box from McDonald?", "code"), 0.0);
}

TEST(Complexity, ReasoningWordsRaiseTheScore) {
  EXPECT_EQ(feature_of(kBase, "reasoning"), 0.0);
  const std::string reasoning =
      std::string(kBase) + " Explain why they flood and analyze the trade-offs of dams.";
  EXPECT_GT(feature_of(reasoning, "reasoning"), 0.15);
  EXPECT_GT(score_of(reasoning), score_of(kBase));
  EXPECT_GT(feature_of("Solve it step by step.", "reasoning"), feature_of("Solve it in one step.", "reasoning"));
}

TEST(Complexity, OpenEndedWritingRaisesTheScore) {
  EXPECT_GT(feature_of("Write a short story about a river.", "open_ended"), 0.05);
  EXPECT_GT(score_of("Write a poem about the rivers of France."), score_of(kBase));
}

TEST(Complexity, MultiStepInstructionsRaiseTheScore) {
  const std::string steps =
      "About the rivers of France:\n1. List the five longest.\n2. Give each one's source.\n"
      "3. Describe their basins. Then summarize. Which is oldest? Which floods most?";
  EXPECT_EQ(feature_of(kBase, "multi_step"), 0.0);
  EXPECT_GT(feature_of(steps, "multi_step"), 0.15);
  EXPECT_GT(feature_of("- one thing\n- another thing\n- a third", "multi_step"), 0.0);
}

TEST(Complexity, ASystemPromptRaisesTheScore) {
  auto with_system = nlohmann::json::array(
      {{{"role", "system"}, {"content", "You are a meticulous assistant. Always answer in valid YAML."}},
       {{"role", "user"}, {"content", kBase}}});
  const auto score = score_complexity(with_system);
  EXPECT_EQ(feature_of(kBase, "system"), 0.0);
  EXPECT_GT(feature(score, "system"), 0.0);
  EXPECT_GT(score.score, score_of(kBase));
}

TEST(Complexity, ContentPartsScoreLikeAString) {
  const std::string text = "Explain why 3 + 4 = 7, then write a poem about it.";
  auto parts = nlohmann::json::array(
      {{{"role", "user"},
        {"content", nlohmann::json::array({{{"type", "text"}, {"text", text}},
                                           {{"type", "image_url"}, {"image_url", {{"url", "x"}}}}})}}});
  EXPECT_DOUBLE_EQ(score_complexity(parts).score, score_of(text));
}

TEST(Complexity, AllMessagesOfAConversationCount) {
  auto conversation = nlohmann::json::array({{{"role", "user"}, {"content", "Prove that sqrt(2) is irrational."}},
                                             {{"role", "assistant"}, {"content", "Suppose it were rational."}},
                                             {{"role", "user"}, {"content", "Go on."}}});
  EXPECT_GT(feature(score_complexity(conversation), "math"), 0.0);
}

}  // namespace
}  // namespace cascade
