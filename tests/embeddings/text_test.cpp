#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "embeddings/embeddings.h"

namespace cascade {
namespace {

TEST(NormalizeText, LowercasesAsciiAndCollapsesWhitespace) {
  EXPECT_EQ(normalize_text("  What IS\tthe  Capital\n of France?  "), "what is the capital of france?");
}

TEST(NormalizeText, KeepsNonAsciiBytesAndTreatsUnicodeSpacesAsWhitespace) {
  // "Café" keeps its é (UTF-8 C3 A9) and É stays uppercase: no locale tables.
  EXPECT_EQ(normalize_text("Caf\xC3\xA9\xC2\xA0\xC3\x89T\xC3\x89\xE3\x80\x80Z"), "caf\xC3\xA9 \xC3\x89t\xC3\x89 z");
}

TEST(NormalizeText, EmptyAndBlankTextsNormalizeToEmpty) {
  EXPECT_EQ(normalize_text(""), "");
  EXPECT_EQ(normalize_text(" \t\n"), "");
}

TEST(NormalizeText, IsIdempotent) {
  const std::string once = normalize_text("  Mixed   CASE\ttext ");
  EXPECT_EQ(normalize_text(once), once);
}

TEST(ContentHash, IsSha256OfTagNulAndText) {
  EXPECT_EQ(to_hex(content_hash("builtin-test", "hello world")),
            "689b260224b6a744257ed720bcad3b2a139486001dde61e5f8a04b5104eaba45");
}

TEST(ContentHash, ChangesWithTheEmbedderTag) {
  EXPECT_NE(content_hash("builtin-hash-v1:d256", "hello"), content_hash("builtin-hash-v1:d384", "hello"));
  // The separator keeps (tag, text) pairs from colliding by moving bytes across.
  EXPECT_NE(content_hash("ab", "c"), content_hash("a", "bc"));
}

TEST(EmbeddingEncoding, RoundTripsExactly) {
  const std::vector<float> v = {0.5f, -0.25f, 1e-20f, -0.0f, 3.14159f};
  const std::string bytes = encode_embedding(v);
  ASSERT_EQ(bytes.size(), v.size() * 4);
  const auto decoded = decode_embedding(bytes, v.size());
  ASSERT_TRUE(decoded);
  for (std::size_t i = 0; i < v.size(); ++i) EXPECT_EQ(std::signbit((*decoded)[i]), std::signbit(v[i]));
  EXPECT_EQ(*decoded, v);
}

TEST(EmbeddingEncoding, RejectsTruncatedOrWrongDimensionBytes) {
  const std::string bytes = encode_embedding(std::vector<float>{1, 2, 3});
  EXPECT_FALSE(decode_embedding(bytes.substr(0, 7)));
  EXPECT_FALSE(decode_embedding(bytes, 4));
  EXPECT_TRUE(decode_embedding(bytes, 0));
}

TEST(NormalizeUnit, ScalesToLengthOneAndRefusesZeroVectors) {
  std::vector<float> v = {3, 4};
  ASSERT_TRUE(normalize_unit(v));
  EXPECT_FLOAT_EQ(v[0], 0.6f);
  EXPECT_FLOAT_EQ(v[1], 0.8f);
  std::vector<float> zero = {0, 0};
  EXPECT_FALSE(normalize_unit(zero));
}

TEST(FunctionWords, CoverQuestionScaffoldingButNotNegationsOrComparatives) {
  for (const char* w : {"the", "what", "how", "is", "of", "you"}) EXPECT_TRUE(is_function_word(w)) << w;
  for (const char* w : {"not", "no", "never", "more", "most", "python", "own"}) EXPECT_FALSE(is_function_word(w)) << w;
}

TEST(StemWord, MapsInflectionsOfOneWordTogether) {
  EXPECT_EQ(stem_word("works"), stem_word("work"));
  EXPECT_EQ(stem_word("learning"), "learn");
  EXPECT_EQ(stem_word("companies"), "company");
  EXPECT_EQ(stem_word("boss"), "boss");
  EXPECT_EQ(stem_word("bus"), "bus");
}

}  // namespace
}  // namespace cascade
