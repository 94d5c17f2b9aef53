#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "cache/tools/cache_eval.h"
#include "support/temp_dir.h"

namespace cascade {
namespace {

using nlohmann::json;
using testing::TempFile;

const char* kJsonLines =
    R"({"text_a": "How can I learn Python quickly?", "text_b": "How do I learn Python quickly?", "label": 1})"
    "\n"
    R"({"text_a": "What is the capital of France?", "text_b": "What is the capital of Germany?", "label": 0})"
    "\n"
    R"({"text_a": "Flights from New York to Florida", "text_b": "Flights from Florida to New York", "label": 0})"
    "\n"
    R"({"text_a": "Why is the sky blue?", "text_b": "What makes the sky look blue during the day?", "label": 1})"
    "\n"
    R"({"text_a": "What is the capital of France?", "text_b": "what is the capital of   france?", "label": 1})"
    "\n";

TEST(CacheEval, PrintsExactlyTheContractKeysPerThreshold) {
  TempFile file(kJsonLines, "pairs.jsonl");
  auto pairs = load_paraphrase_pairs(file.path());
  ASSERT_TRUE(pairs) << pairs.error().message;
  ASSERT_EQ(pairs->size(), 5u);
  BuiltinEmbedder embedder;
  CacheEvalOptions options;
  options.thresholds = {0.8, 0.9};
  auto report = run_cache_eval(*pairs, embedder, options);
  ASSERT_TRUE(report) << report.error().message;
  ASSERT_EQ(report->rows.size(), 2u);
  for (const auto& row : report->rows) {
    const json line = json::parse(to_json_line(row));
    std::vector<std::string> keys;
    for (const auto& [key, value] : line.items()) {
      keys.push_back(key);
      EXPECT_TRUE(value.is_number()) << key;
    }
    std::sort(keys.begin(), keys.end());
    // The original contract's keys, then precision_labelled and negative_hit_rate; no "default" or
    // "min_probability" unless asked for.
    EXPECT_EQ(keys, (std::vector<std::string>{"correct_hits", "hit_rate", "hits", "lookup_p50_us", "lookup_p99_us",
                                              "negative_hit_rate", "precision", "precision_labelled", "recall",
                                              "threshold", "wrong_hits"}));
    EXPECT_EQ(line["hits"].get<int>(), line["correct_hits"].get<int>() + line["wrong_hits"].get<int>());
  }
  EXPECT_DOUBLE_EQ(report->rows[0].threshold, 0.8);
  EXPECT_EQ(report->entries, 4u);      // the repeated text_a is stored once
  EXPECT_EQ(report->exact_pairs, 1u);  // text_b identical to a stored text: the exact cache's hit
  EXPECT_EQ(report->pairs, 4u);
  EXPECT_EQ(report->positive_pairs, 2u);
  // The rewording is served, the swapped flight and the other capital are not.
  EXPECT_EQ(report->rows[0].correct_hits, 1u);
  EXPECT_EQ(report->rows[0].wrong_hits, 0u);
  EXPECT_DOUBLE_EQ(report->rows[0].precision, 1.0);
  EXPECT_DOUBLE_EQ(report->rows[0].recall, 0.5);
  EXPECT_DOUBLE_EQ(report->rows[0].hit_rate, 0.25);
}

TEST(CacheEval, ReadsPawsTsvWithOrWithoutAHeader) {
  TempFile with_header(
      "id\tsentence1\tsentence2\tlabel\n"
      "1\tThey went from A to B .\tThey went from B to A .\t0\n"
      "2\tHe was born in 1950 .\tIn 1950 , he was born .\t1\n",
      "pairs.tsv");
  auto pairs = load_paraphrase_pairs(with_header.path());
  ASSERT_TRUE(pairs) << pairs.error().message;
  ASSERT_EQ(pairs->size(), 2u);
  EXPECT_EQ((*pairs)[0].text_a, "They went from A to B .");
  EXPECT_EQ((*pairs)[0].text_b, "They went from B to A .");
  EXPECT_EQ((*pairs)[0].label, 0);
  EXPECT_EQ((*pairs)[1].label, 1);

  // No .tsv extension: recognized by its tab-separated first line.
  TempFile headerless("7\tOne sentence .\tAnother sentence .\t1\r\n", "pairs.txt");
  auto more = load_paraphrase_pairs(headerless.path());
  ASSERT_TRUE(more) << more.error().message;
  ASSERT_EQ(more->size(), 1u);
  EXPECT_EQ((*more)[0].text_b, "Another sentence .");
}

TEST(CacheEval, NamesTheLineOfAMalformedPair) {
  TempFile bad_json(std::string(kJsonLines) + R"({"text_a": "x", "label": 1})" + "\n", "pairs.jsonl");
  auto pairs = load_paraphrase_pairs(bad_json.path());
  ASSERT_FALSE(pairs);
  EXPECT_EQ(pairs.error().code, ErrorCode::invalid_request);
  EXPECT_NE(pairs.error().message.find(":6:"), std::string::npos) << pairs.error().message;

  TempFile bad_label("1\ta\tb\t0\n2\ta\tb\tyes\n", "pairs.tsv");
  auto tsv = load_paraphrase_pairs(bad_label.path());
  ASSERT_FALSE(tsv);
  EXPECT_NE(tsv.error().message.find(":2:"), std::string::npos) << tsv.error().message;

  EXPECT_FALSE(load_paraphrase_pairs("/nonexistent/pairs.jsonl"));
}

TEST(CacheEval, CountsAHitOnAnotherTextOfTheSameDuplicateClusterAsCorrect) {
  // b1 and a2 are one question by a chain of label-1 pairs; a hit of b1 on
  // a2 (stored by another pair) is right, although not b1's own text_a.
  const std::vector<ParaphrasePair> pairs = {
      {"How do I lose weight fast?", "How can I lose weight fast?", 1},
      {"How can I lose weight quickly?", "How do I lose weight fast?", 1},
  };
  BuiltinEmbedder embedder;
  CacheEvalOptions options;
  options.thresholds = {0.5};
  auto report = run_cache_eval(pairs, embedder, options);
  ASSERT_TRUE(report);
  EXPECT_EQ(report->exact_pairs, 1u);  // the second pair's text_b is stored verbatim
  EXPECT_EQ(report->rows[0].correct_hits, 1u);
  EXPECT_EQ(report->rows[0].wrong_hits, 0u);
}

TEST(CacheEval, LabelledPrecisionLeavesOutHitsNoLabelJudges) {
  // Each query's nearest stored text is its own text_a: two label-1 pairs
  // (correct hits) and two label-0 pairs (hits a label contradicts).
  const std::vector<ParaphrasePair> pairs = {
      {"How do I bake an apple pie at home?", "How can I bake an apple pie at home?", 1},
      {"How do I bake a cherry pie at home?", "How to bake a cherry pie at home?", 0},
      {"What is the tallest mountain in Europe?", "Which is the tallest mountain in Europe?", 0},
      {"How do I learn to swim as an adult?", "Is it hard to learn to swim as an adult?", 1},
  };
  BuiltinEmbedder embedder;
  CacheEvalOptions options;
  options.thresholds = {0.5};
  options.tenant.verify = false;  // serve the nearest entry whatever it is
  auto report = run_cache_eval(pairs, embedder, options);
  ASSERT_TRUE(report) << report.error().message;
  const CacheEvalRow& row = report->rows.front();
  ASSERT_EQ(report->pairs, 4u);
  EXPECT_EQ(report->negative_pairs, 2u);
  // Every query's nearest stored text is its own text_a: 2 correct, 2 contradicted by their label-0 pairs.
  EXPECT_EQ(row.hits, 4u);
  EXPECT_EQ(row.correct_hits, 2u);
  EXPECT_EQ(row.wrong_hits_known, 2u);
  EXPECT_DOUBLE_EQ(row.precision_labelled, 0.5);
  EXPECT_EQ(row.negative_hits, 2u);
  EXPECT_DOUBLE_EQ(row.negative_hit_rate, 1.0);

  // Without the label-0 pairs, their queries' hits are unlabelled: wrong for
  // the conservative precision, not judged by the labelled one.
  // "Who wrote the play Macbeth?" is served "Who wrote Hamlet?", which no pair relates to it.
  const std::vector<ParaphrasePair> unlabelled = {pairs[0], pairs[3], {"Who wrote Hamlet?", "Who wrote the play Hamlet?", 1},
                                                  {"What is the capital of Peru?", "Who wrote the play Macbeth?", 0}};
  options.thresholds = {-1};  // whatever is nearest is served
  auto second = run_cache_eval(unlabelled, embedder, options);
  ASSERT_TRUE(second);
  const CacheEvalRow& r = second->rows.front();
  EXPECT_EQ(r.correct_hits + r.wrong_hits, r.hits);
  EXPECT_EQ(r.correct_hits, 3u);
  EXPECT_EQ(r.wrong_hits, 1u);
  EXPECT_EQ(r.wrong_hits_known, 0u);
  EXPECT_DOUBLE_EQ(r.precision, 0.75);
  EXPECT_DOUBLE_EQ(r.precision_labelled, 1.0);
}

TEST(CacheEval, MarksTheDefaultRowAndOnlyIt) {
  TempFile file(kJsonLines, "pairs.jsonl");
  auto pairs = load_paraphrase_pairs(file.path());
  ASSERT_TRUE(pairs);
  BuiltinEmbedder embedder;
  CacheEvalOptions options;
  options.thresholds = {0.8, 0.9, 0.95};
  options.default_threshold = 0.9;
  auto report = run_cache_eval(*pairs, embedder, options);
  ASSERT_TRUE(report);
  std::vector<bool> marked;
  for (const auto& row : report->rows) {
    marked.push_back(row.is_default);
    const json line = json::parse(to_json_line(row));
    EXPECT_EQ(line.contains("default"), row.is_default);
    if (row.is_default) {
      EXPECT_EQ(line["default"], true);
    }
  }
  EXPECT_EQ(marked, (std::vector<bool>{false, true, false}));
}

}  // namespace
}  // namespace cascade
