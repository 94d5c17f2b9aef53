#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/temp_dir.h"
#include "tokenizer/tokenizer.h"

namespace cascade {
namespace {

std::filesystem::path rank_dir() {
  const char* shared = std::getenv("CASCADE_SHARED_DIR");
  return shared ? std::filesystem::path(shared) / "data/tokenizers" : std::filesystem::path();
}

nlohmann::json read_json(const std::string& name) {
  std::ifstream in(std::string(CASCADE_TOKENIZER_TEST_DATA) + "/" + name);
  return nlohmann::json::parse(in);
}

class BpeTokenizerTest : public ::testing::TestWithParam<TokenEncoding> {
 protected:
  void SetUp() override {
    const auto file = rank_dir() / rank_file_name(GetParam());
    if (!std::filesystem::exists(file)) GTEST_SKIP() << file << " absent (../shared not beside the repo)";
    auto loaded = BpeTokenizer::load(GetParam(), file);
    ASSERT_TRUE(loaded) << loaded.error().message;
    tokenizer_ = std::move(*loaded);
  }
  std::unique_ptr<const BpeTokenizer> tokenizer_;
};

// Reference ids from js-tiktoken, an independent implementation of tiktoken
// (tests/tokenizer/data/encodings.json): English, code, numbers, contractions,
// CJK, emoji with joiners, RTL scripts, odd whitespace, special-token text,
// and long pieces without spaces (the merge's worst case).
TEST_P(BpeTokenizerTest, EncodesEveryReferenceCaseToTiktokensIds) {
  const auto reference = read_json("encodings.json");
  const std::string name(to_string(GetParam()));
  ASSERT_GE(reference["cases"].size(), 20u);
  for (const auto& row : reference["cases"]) {
    const std::string text = row["text"];
    const auto expected = row[name].get<std::vector<std::uint32_t>>();
    const auto ids = tokenizer_->encode(text);
    EXPECT_EQ(ids, expected) << name << " on: " << text.substr(0, 80);
    EXPECT_EQ(tokenizer_->count(text), expected.size());
    EXPECT_EQ(tokenizer_->decode(ids), text);
  }
}

// Token counts of 1,500 real texts (questions, instructions, answers) from
// ../shared/data/prompts against the counts js-tiktoken gives for them.
TEST_P(BpeTokenizerTest, CountsRealPromptsExactlyAsTiktoken) {
  const auto reference = read_json("prompt_counts.json");
  const std::string name(to_string(GetParam()));
  const char* shared = std::getenv("CASCADE_SHARED_DIR");
  std::vector<std::pair<std::string, std::string>> texts;  // file, field
  std::vector<std::string> values;
  for (const char* file : {"NQ-open.dev.jsonl", "dolly_6400_categories.jsonl"}) {
    std::ifstream in(std::string(shared) + "/data/prompts/" + file);
    if (!in) GTEST_SKIP() << "prompts absent";
    std::string line;
    for (int i = 0; i < 500 && std::getline(in, line); ++i) {
      const auto j = nlohmann::json::parse(line);
      for (const char* field : {"question", "instruction", "reference_response"}) {
        if (j.contains(field) && j[field].is_string() && !j[field].get<std::string>().empty()) {
          texts.emplace_back(file, field);
          values.push_back(j[field]);
        }
      }
    }
  }
  const auto& rows = reference["rows"];
  ASSERT_EQ(rows.size(), values.size());
  std::size_t mismatches = 0, tokens = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    ASSERT_EQ(rows[i]["field"], texts[i].second) << i;
    const std::size_t expected = rows[i][name];
    tokens += expected;
    if (tokenizer_->count(values[i]) != expected) {
      ++mismatches;
      ADD_FAILURE() << name << " row " << i << ": " << values[i].substr(0, 80);
    }
  }
  EXPECT_EQ(mismatches, 0u);
  EXPECT_GT(tokens, 20000u);
}

// Bytes that are not UTF-8 still encode (byte-level BPE), and decode back.
TEST_P(BpeTokenizerTest, InvalidUtf8IsEncodedByteWiseAndDecodesBack) {
  const std::string text = std::string("ok \xff\xfe broken \xc3") + " tail \xe2\x82";
  const auto ids = tokenizer_->encode(text);
  EXPECT_FALSE(ids.empty());
  EXPECT_EQ(tokenizer_->decode(ids), text);
}

INSTANTIATE_TEST_SUITE_P(Encodings, BpeTokenizerTest,
                         ::testing::Values(TokenEncoding::cl100k_base, TokenEncoding::o200k_base),
                         [](const auto& info) { return std::string(to_string(info.param)); });

class RankFileTest : public ::testing::Test {
 protected:
  std::filesystem::path write(const std::string& content) { return dir_.write("ranks.tiktoken", content); }
  testing::TempDir dir_;
};

// Every single byte, base64-encoded, ranked by its value.
std::string byte_ranks() {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (int b = 0; b < 256; ++b) {
    out += kAlphabet[b >> 2];
    out += kAlphabet[(b & 3) << 4];
    out += "== " + std::to_string(b) + "\n";
  }
  return out;
}

TEST_F(RankFileTest, AMinimalByteLevelVocabularyLoadsAndMergesByRank) {
  // "ab" -> 256, "abc" -> 257 ("YWI=" is "ab", "YWJj" is "abc").
  auto tokenizer = BpeTokenizer::load(TokenEncoding::cl100k_base, write(byte_ranks() + "YWI= 256\nYWJj 257\n"));
  ASSERT_TRUE(tokenizer) << tokenizer.error().message;
  EXPECT_EQ((*tokenizer)->vocabulary_size(), 258u);
  EXPECT_EQ((*tokenizer)->encode("abc"), (std::vector<std::uint32_t>{257}));
  EXPECT_EQ((*tokenizer)->encode("abd"), (std::vector<std::uint32_t>{256, 'd'}));
  EXPECT_EQ((*tokenizer)->encode("xabcab"), (std::vector<std::uint32_t>{'x', 257, 256}));
}

TEST_F(RankFileTest, ALineThatIsNotBase64AndRankIsAnErrorNamingTheLine) {
  auto tokenizer = BpeTokenizer::load(TokenEncoding::cl100k_base, write(byte_ranks() + "not-base64! 300\n"));
  ASSERT_FALSE(tokenizer);
  EXPECT_NE(tokenizer.error().message.find(":257:"), std::string::npos) << tokenizer.error().message;
}

TEST_F(RankFileTest, AVocabularyMissingASingleByteIsRejected) {
  std::string ranks = byte_ranks();
  ranks.erase(0, ranks.find('\n') + 1);  // drop byte 0
  auto tokenizer = BpeTokenizer::load(TokenEncoding::cl100k_base, write(ranks));
  ASSERT_FALSE(tokenizer);
  EXPECT_NE(tokenizer.error().message.find("byte 0"), std::string::npos);
}

TEST_F(RankFileTest, AMissingFileIsAnError) {
  EXPECT_FALSE(BpeTokenizer::load(TokenEncoding::o200k_base, "/nonexistent/o200k_base.tiktoken"));
}

}  // namespace
}  // namespace cascade
