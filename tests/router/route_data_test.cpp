// `cascade route-data`'s converters on tiny hand-made files in each source
// format (tests/router/fixtures), and on the real RouteLLM MMLU set when
// ../shared is present.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "router/tools/evaluation.h"

namespace cascade {
namespace {

const std::string kFixtures = CASCADE_ROUTER_FIXTURES;
constexpr const char* kMixtral = "mistralai/Mixtral-8x7B-Instruct-v0.1";
constexpr const char* kGpt4 = "gpt-4-1106-preview";

std::vector<OutcomeRow> rows_of(const std::string& jsonl) {
  std::vector<OutcomeRow> rows;
  std::istringstream in(jsonl);
  for (std::string line; std::getline(in, line);) {
    auto row = parse_outcome_line(line);
    if (!row) ADD_FAILURE() << row.error().message << ": " << line;
    else rows.push_back(std::move(*row));
  }
  return rows;
}

const RouteLlmPrices kPrices{{0.6e-6, 0.6e-6}, {10e-6, 30e-6}, nullptr};  // bytes / 4 token estimates

TEST(PythonStringList, DecodesPythonLiterals) {
  EXPECT_EQ(parse_python_string_list(R"(['a', "b"])"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(parse_python_string_list(R"(['It\'s', 'tab\there', 'caf\u00e9', 'back\\slash\n'])"),
            (std::vector<std::string>{"It's", "tab\there", "caf\xC3\xA9", "back\\slash\n"}));
  EXPECT_EQ(parse_python_string_list("[]"), std::vector<std::string>{});
  EXPECT_EQ(parse_python_string_list("['trailing',]"), std::vector<std::string>{"trailing"});
  EXPECT_FALSE(parse_python_string_list("'not a list'"));
  EXPECT_FALSE(parse_python_string_list("['unterminated]"));
  EXPECT_FALSE(parse_python_string_list("['a'] extra"));
}

TEST(Csv, ReadsQuotedFieldsWithNewlinesAndDoubledQuotes) {
  auto rows = read_csv(kFixtures + "/routellm_mmlu/mmlu_toy_subject.csv");
  ASSERT_TRUE(rows) << rows.error().message;
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[0], (std::vector<std::string>{"prompt", kMixtral, kGpt4}));
  EXPECT_EQ((*rows)[2][0], "Which \"prime\" is even?\nA. 2\nB. 3\nC. 9\nD. 15\nAnswer:");
  EXPECT_EQ((*rows)[2][1], "False");
}

TEST(RouteData, RouteLlmMmluCostsAreTokenEstimatesTimesPrices) {
  std::ostringstream out;
  auto written = convert_routellm_mmlu(kFixtures + "/routellm_mmlu", kPrices, out);
  ASSERT_TRUE(written) << written.error().message;
  EXPECT_EQ(*written, 2u);
  const auto rows = rows_of(out.str());
  ASSERT_EQ(rows.size(), 2u);
  const OutcomeRow& second = rows[1];
  EXPECT_EQ(second.source, "mmlu_toy_subject");
  EXPECT_EQ(second.outcomes.at(kMixtral).quality, 0.0);
  EXPECT_EQ(second.outcomes.at(kGpt4).quality, 1.0);
  // ceil(bytes / 4) prompt tokens and one answer token.
  const double tokens = static_cast<double>((second.prompt.size() + 3) / 4);
  EXPECT_DOUBLE_EQ(second.outcomes.at(kGpt4).cost_usd, tokens * 10e-6 + 30e-6);
  EXPECT_DOUBLE_EQ(second.outcomes.at(kMixtral).cost_usd, tokens * 0.6e-6 + 0.6e-6);
}

TEST(RouteData, RouteLlmGsm8kKeepsResponsesAndLeavesOutContaminatedPrompts) {
  std::ostringstream out;
  auto written = convert_routellm_gsm8k(kFixtures + "/routellm_gsm8k.csv", kFixtures + "/routellm_contaminated.jsonl",
                                        kPrices, out);
  ASSERT_TRUE(written) << written.error().message;
  EXPECT_EQ(*written, 2u);
  const auto rows = rows_of(out.str());
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].outcomes.at(kMixtral).response, "5 pens cost 5 * 2 = <<5*2=12>>12 dollars.\n#### 12");
  const std::string& response = *rows[1].outcomes.at(kGpt4).response;
  EXPECT_DOUBLE_EQ(rows[1].outcomes.at(kGpt4).cost_usd,
                   static_cast<double>((rows[1].prompt.size() + 3) / 4) * 10e-6 +
                       static_cast<double>((response.size() + 3) / 4) * 30e-6);
  // The weak answer of row 2 fails the cascade's arithmetic check.
  EXPECT_TRUE(weak_answer_fails_check(rows[1].prompt, *rows[1].outcomes.at(kMixtral).response));
  EXPECT_FALSE(weak_answer_fails_check(rows[0].prompt, *rows[0].outcomes.at(kMixtral).response));
}

TEST(RouteData, RouteLlmCostsCountRealTokensWhenTheRankFilesAreThere) {
  const char* shared = std::getenv("CASCADE_SHARED_DIR");
  const auto dir = TokenCounter::find_directory(std::filesystem::path(shared ? shared : "../shared") / "data/tokenizers");
  if (dir.empty()) GTEST_SKIP() << "no tiktoken rank files (set CASCADE_SHARED_DIR)";
  auto counter = TokenCounter::load(dir);
  ASSERT_TRUE(counter) << counter.error().message;
  RouteLlmPrices prices = kPrices;
  prices.tokens = *counter;
  std::ostringstream out;
  ASSERT_TRUE(convert_routellm_gsm8k(kFixtures + "/routellm_gsm8k.csv", "", prices, out));
  const auto rows = rows_of(out.str());
  ASSERT_FALSE(rows.empty());
  const OutcomeRow& row = rows[0];
  // gpt-4: the prompt billed as one chat message and the answer, in cl100k_base tokens.
  const auto input = (*counter)->count_messages(kGpt4, user_messages(row.prompt));
  EXPECT_EQ(input.method, TokenCountMethod::exact);
  const auto output = (*counter)->count_text(kGpt4, *row.outcomes.at(kGpt4).response);
  EXPECT_DOUBLE_EQ(row.outcomes.at(kGpt4).cost_usd,
                   static_cast<double>(input.tokens) * 10e-6 + static_cast<double>(output.tokens) * 30e-6);
  // Not bytes / 4 any more (the counts differ on these texts).
  EXPECT_NE(input.tokens, (row.prompt.size() + 3) / 4);
  // Mixtral: an o200k_base estimate.
  const auto weak_input = (*counter)->count_messages(kMixtral, user_messages(row.prompt));
  EXPECT_EQ(weak_input.method, TokenCountMethod::estimated);
  const auto weak_output = (*counter)->count_text(kMixtral, *row.outcomes.at(kMixtral).response);
  EXPECT_DOUBLE_EQ(row.outcomes.at(kMixtral).cost_usd, static_cast<double>(weak_input.tokens) * 0.6e-6 +
                                                           static_cast<double>(weak_output.tokens) * 0.6e-6);
}

// The fixture's two priced models (prices.json), bytes / 4 token counts.
AlpacaEvalPricing fixture_pricing(std::string pool_as = "") {
  return {{{"gpt4_1106_preview", "strong-key"}, {"cheap", "cheap-key"}}, kFixtures + "/alpaca_eval/prices.json", nullptr,
          std::move(pool_as)};
}

TEST(RouteData, AlpacaEvalQualityIsTheWeightedPreferenceAgainstTheBaselineAndCostIsTokensAtPrices) {
  const AlpacaEvalPricing pricing = fixture_pricing();
  std::ostringstream out;
  auto converted = convert_alpaca_eval(kFixtures + "/alpaca_eval", pricing, out);
  ASSERT_TRUE(converted) << converted.error().message;
  EXPECT_EQ(converted->rows, 3u);
  EXPECT_EQ(converted->unpriced, std::vector<std::string>{"unpriced"});
  // cheap: idx 1 has no answer (null); idx 2 answered "" and was judged: kept.
  EXPECT_EQ(converted->answers.at("cheap"), 2u);
  EXPECT_EQ(converted->answers.at("gpt4_1106_preview"), 3u);
  const auto rows = rows_of(out.str());
  ASSERT_EQ(rows.size(), 3u);
  const OutcomeRow& first = rows[0];
  EXPECT_EQ(first.prompt, "Name three famous Broadway actors.");
  EXPECT_EQ(first.source, "alpaca_eval/helpful_base");
  EXPECT_DOUBLE_EQ(first.outcomes.at("gpt4_1106_preview").quality, 0.5);
  // The weighted annotator's 1.25, not the other annotator's 2.
  EXPECT_DOUBLE_EQ(first.outcomes.at("cheap").quality, 0.25);
  EXPECT_EQ(first.outcomes.at("cheap").response, "Hugh Jackman.");
  const double prompt_tokens = static_cast<double>((first.prompt.size() + 3) / 4);
  EXPECT_DOUBLE_EQ(first.outcomes.at("cheap").cost_usd, prompt_tokens * 1e-7 + 4 * 2e-7);  // "Hugh Jackman." = 13 bytes
  EXPECT_FALSE(rows[1].outcomes.contains("cheap"));
  EXPECT_FALSE(first.outcomes.contains("unpriced"));
  EXPECT_DOUBLE_EQ(rows[2].outcomes.at("cheap").quality, 0.75);
}

TEST(RouteData, AlpacaEvalPooledRowsPairEachCheapAnswerWithTheBaselines) {
  const AlpacaEvalPricing pricing = fixture_pricing("any-cheap");
  std::ostringstream out;
  auto converted = convert_alpaca_eval(kFixtures + "/alpaca_eval", pricing, out);
  ASSERT_TRUE(converted) << converted.error().message;
  // cheap answered prompts 0 and 2: one row each, nothing for the baseline alone.
  EXPECT_EQ(converted->rows, 2u);
  const auto rows = rows_of(out.str());
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].source, "alpaca_eval/helpful_base/cheap");
  ASSERT_EQ(rows[0].outcomes.size(), 2u);
  EXPECT_DOUBLE_EQ(rows[0].outcomes.at("any-cheap").quality, 0.25);
  EXPECT_EQ(rows[0].outcomes.at("any-cheap").response, "Hugh Jackman.");
  EXPECT_DOUBLE_EQ(rows[0].outcomes.at("gpt4_1106_preview").quality, 0.5);
  EXPECT_DOUBLE_EQ(rows[1].outcomes.at("any-cheap").quality, 0.75);
}

TEST(RouteData, AlpacaEvalRefusesAPriceKeyTheCatalogLacksAndAMissingFolder) {
  std::ostringstream out;
  const AlpacaEvalPricing wrong_key{{{"gpt4_1106_preview", "no-such-key"}}, kFixtures + "/alpaca_eval/prices.json", nullptr, ""};
  auto converted = convert_alpaca_eval(kFixtures + "/alpaca_eval", wrong_key, out);
  ASSERT_FALSE(converted);
  EXPECT_NE(converted.error().message.find("no-such-key"), std::string::npos);
  EXPECT_FALSE(convert_alpaca_eval(kFixtures + "/no_such_folder", wrong_key, out));
}

TEST(RouteData, AlpacaEvalDefaultPriceKeysAreInTheSharedCatalog) {
  const char* shared = std::getenv("CASCADE_SHARED_DIR");
  const std::string prices = std::string(shared ? shared : "../shared") + "/data/pricing/model_prices_and_context_window.json";
  if (!std::filesystem::exists(prices)) GTEST_SKIP() << "no " << prices << " (../shared absent)";
  for (const auto& [model, key] : default_alpaca_eval_price_keys()) {
    EXPECT_TRUE(read_token_price(prices, key)) << model << " -> " << key;
  }
}

TEST(RouteData, RouterBenchKeepsRealCostsAndSkipsModelsWithoutResults) {
  std::ostringstream out;
  auto written = convert_routerbench(kFixtures + "/routerbench_tiny.csv", out);
  ASSERT_TRUE(written) << written.error().message;
  EXPECT_EQ(*written, 3u);
  const auto rows = rows_of(out.str());
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].prompt, "Which is a mammal?\nA) shark\nB) whale\nAnswer:");
  EXPECT_EQ(rows[0].source, "toy");
  EXPECT_EQ(rows[0].outcomes.at("small-model").response, "A\n");
  EXPECT_DOUBLE_EQ(rows[0].outcomes.at("big-model").cost_usd, 0.002);
  EXPECT_EQ(rows[1].prompt, "It's \"quoted\" caf\xC3\xA9\n\nsecond turn");
  EXPECT_FALSE(rows[2].outcomes.contains("small-model"));
  EXPECT_TRUE(rows[2].outcomes.contains("big-model"));
}

TEST(RouteData, PricesComeFromTheLiteLlmCatalog) {
  const char* shared = std::getenv("CASCADE_SHARED_DIR");
  const std::filesystem::path prices =
      std::filesystem::path(shared ? shared : "../shared") / "data/pricing/model_prices_and_context_window.json";
  if (!std::filesystem::exists(prices)) GTEST_SKIP() << prices << " is absent (set CASCADE_SHARED_DIR)";
  auto gpt4 = read_token_price(prices.string(), kGpt4);
  ASSERT_TRUE(gpt4) << gpt4.error().message;
  EXPECT_DOUBLE_EQ(gpt4->input, 10e-6);
  EXPECT_DOUBLE_EQ(gpt4->output, 30e-6);
  EXPECT_FALSE(read_token_price(prices.string(), "no-such-model"));
}

TEST(RouteData, RealRouteLlmMmluHasEveryQuestion) {
  const char* shared = std::getenv("CASCADE_SHARED_DIR");
  const std::filesystem::path dir =
      std::filesystem::path(shared ? shared : "../shared") / "data/router/routellm/mmlu_responses";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << dir << " is absent (set CASCADE_SHARED_DIR)";
  std::ostringstream out;
  auto written = convert_routellm_mmlu(dir.string(), kPrices, out);
  ASSERT_TRUE(written) << written.error().message;
  EXPECT_EQ(*written, 14042u);  // RouteLLM's MMLU: 14,042 questions over 57 subjects
  auto pairs = select_pair(rows_of(out.str()), kMixtral, kGpt4);
  ASSERT_TRUE(pairs);
  double weak = 0, strong = 0;
  for (const auto& p : pairs->pairs) {
    weak += p.weak_quality;
    strong += p.strong_quality;
  }
  // The published accuracies of the two models on this set: ~68% and ~81%.
  EXPECT_NEAR(weak / 14042, 0.68, 0.01);
  EXPECT_NEAR(strong / 14042, 0.806, 0.01);
}

}  // namespace
}  // namespace cascade
