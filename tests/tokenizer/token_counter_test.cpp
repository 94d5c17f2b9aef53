#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "support/temp_dir.h"
#include "tokenizer/tokenizer.h"

namespace cascade {
namespace {

std::filesystem::path rank_dir() {
  const char* shared = std::getenv("CASCADE_SHARED_DIR");
  return shared ? std::filesystem::path(shared) / "data/tokenizers" : std::filesystem::path();
}

TEST(OpenAiEncoding, ModelNamesMapToTheEncodingOpenAiUses) {
  EXPECT_EQ(openai_encoding_for("gpt-4o"), TokenEncoding::o200k_base);
  EXPECT_EQ(openai_encoding_for("gpt-4o-mini-2024-07-18"), TokenEncoding::o200k_base);
  EXPECT_EQ(openai_encoding_for("gpt-4.1-nano"), TokenEncoding::o200k_base);
  EXPECT_EQ(openai_encoding_for("o3-mini"), TokenEncoding::o200k_base);
  EXPECT_EQ(openai_encoding_for("openai/gpt-4o"), TokenEncoding::o200k_base);
  EXPECT_EQ(openai_encoding_for("ft:gpt-4o-mini:acme::abc"), TokenEncoding::o200k_base);
  EXPECT_EQ(openai_encoding_for("gpt-4-turbo"), TokenEncoding::cl100k_base);
  EXPECT_EQ(openai_encoding_for("gpt-3.5-turbo"), TokenEncoding::cl100k_base);
  EXPECT_EQ(openai_encoding_for("claude-3-5-haiku-latest"), std::nullopt);
  EXPECT_EQ(openai_encoding_for("llama-3.1-8b-instant"), std::nullopt);
}

class TokenCounterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(rank_dir() / "o200k_base.tiktoken")) GTEST_SKIP() << "rank files absent";
    auto loaded = TokenCounter::load(rank_dir());
    ASSERT_TRUE(loaded) << loaded.error().message;
    counter_ = std::move(*loaded);
  }
  std::shared_ptr<const TokenCounter> counter_;
};

// OpenAI's accounting: 3 per message, the tokens of every field's text, 1 more
// for a name, 3 to prime the reply. Token counts of the texts (from
// js-tiktoken, both encodings): "system", "user", "assistant", "bob" 1 each;
// "You are a helpful assistant." 6; "What is the capital of France?" 7;
// "Paris." 2.
TEST_F(TokenCounterTest, ChatMessagesAreCountedAsTheChatApiBillsInput) {
  const auto messages = nlohmann::json::parse(R"([
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "name": "bob", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."}
  ])");
  // (3+1+6) + (3+1+1+1+7) + (3+1+2) + 3
  const auto count = counter_->count_messages("gpt-4o-mini", messages);
  EXPECT_EQ(count.tokens, 32u);
  EXPECT_EQ(count.method, TokenCountMethod::exact);
  EXPECT_EQ(counter_->count_messages("gpt-4-turbo", messages).tokens, 32u);
}

TEST_F(TokenCounterTest, TextPartsOfAContentArrayCountAndImagesDoNot) {
  const auto messages = nlohmann::json::parse(R"([
    {"role": "user", "content": [
      {"type": "text", "text": "What is the capital of France?"},
      {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    ]}
  ])");
  EXPECT_EQ(counter_->count_messages("gpt-4o", messages).tokens, 3u + 1 + 7 + 3);
}

TEST_F(TokenCounterTest, OtherVendorsModelsAreEstimatedWithO200k) {
  const auto count = counter_->count_text("claude-3-5-haiku-latest", "What is the capital of France?");
  EXPECT_EQ(count.tokens, 7u);
  EXPECT_EQ(count.method, TokenCountMethod::estimated);
}

TEST(TokenCounterWithoutFiles, CountsAreUtf8BytesOverFourRoundedUp) {
  const auto counter = TokenCounter::bytes_only();
  const auto count = counter->count_text("gpt-4o", "12345");
  EXPECT_EQ(count.tokens, 2u);
  EXPECT_EQ(count.method, TokenCountMethod::bytes);
  EXPECT_EQ(counter->count_messages("gpt-4o", nlohmann::json::parse(R"([{"role":"user","content":"abcd"}])")).tokens,
            3u + 1 + 1 + 3);
}

TEST(TokenCounterWithoutFiles, AnEmptyDirectoryLoadsWithNoEncoding) {
  const testing::TempDir empty;
  auto counter = TokenCounter::load(empty.path());
  ASSERT_TRUE(counter);
  EXPECT_EQ((*counter)->tokenizer(TokenEncoding::o200k_base), nullptr);
  EXPECT_EQ((*counter)->count_text("gpt-4o", "abcdefgh").method, TokenCountMethod::bytes);
}

TEST(TokenCounterDirectory, TheConfiguredDirectoryWinsWhenItHoldsRankFiles) {
  if (!std::filesystem::exists(rank_dir() / "o200k_base.tiktoken")) GTEST_SKIP() << "rank files absent";
  EXPECT_EQ(TokenCounter::find_directory(rank_dir()), rank_dir());
  EXPECT_NE(TokenCounter::find_directory("/nonexistent/tokenizers"), std::filesystem::path("/nonexistent/tokenizers"));
}

TEST(LoadTokenCounter, AConfiguredDirectoryWithoutRankFilesIsAnErrorNamingTheKey) {
  auto counter = load_token_counter(TokenizerConfig{"/nonexistent/tokenizers"});
  ASSERT_FALSE(counter);
  EXPECT_NE(counter.error().message.find("tokenizer.dir"), std::string::npos) << counter.error().message;
}

TEST(LoadTokenCounter, TheConfiguredDirectoryIsLoadedExactly) {
  if (!std::filesystem::exists(rank_dir() / "o200k_base.tiktoken")) GTEST_SKIP() << "rank files absent";
  auto counter = load_token_counter(TokenizerConfig{rank_dir().string()});
  ASSERT_TRUE(counter) << counter.error().message;
  EXPECT_EQ((*counter)->count_text("gpt-4o", "hello world").method, TokenCountMethod::exact);
  EXPECT_EQ((*counter)->count_text("gpt-4o", "hello world").tokens, 2u);
}

}  // namespace
}  // namespace cascade
