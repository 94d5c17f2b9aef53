#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "embeddings/embeddings.h"

namespace cascade {
namespace {

float dot(const Embedding& a, const Embedding& b) {
  float s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

Embedding embed_one(BuiltinEmbedder& e, const std::string& text) {
  const std::string texts[] = {normalize_text(text)};
  auto out = e.embed(texts);
  EXPECT_TRUE(out);
  return out->front();
}

TEST(BuiltinEmbedder, IsDeterministicAcrossCallsAndInstances) {
  BuiltinEmbedder a;
  BuiltinEmbedder b;
  const std::string text = "How do I learn Python quickly?";
  EXPECT_EQ(embed_one(a, text), embed_one(a, text));
  EXPECT_EQ(embed_one(a, text), embed_one(b, text));
}

TEST(BuiltinEmbedder, ProducesUnitVectorsOfItsDimension) {
  BuiltinEmbedder e(BuiltinEmbedderOptions{.dimension = 128});
  const std::vector<std::string> texts = {"a", "What is the capital of France?",
                                          "caf\xC3\xA9 cr\xC3\xA8" "me br\xC3\xBBl\xC3\xA9" "e",
                                          std::string(5000, 'x') + " long"};
  for (const std::string& text : texts) {
    const Embedding v = embed_one(e, text);
    ASSERT_EQ(v.size(), 128u);
    EXPECT_NEAR(dot(v, v), 1.0f, 1e-5) << text;
  }
}

TEST(BuiltinEmbedder, EmbedsATextWithoutWordsAsTheZeroVector) {
  BuiltinEmbedder e;
  const Embedding v = embed_one(e, "?!");
  EXPECT_EQ(dot(v, v), 0.0f);
}

TEST(BuiltinEmbedder, PlacesParaphrasesCloserThanUnrelatedTexts) {
  BuiltinEmbedder e;
  const Embedding q = embed_one(e, "What are some good pick up lines which actually work?");
  const Embedding paraphrase = embed_one(e, "What are some good pick up lines that work?");
  const Embedding related = embed_one(e, "What are some good books about lines of work?");
  const Embedding unrelated = embed_one(e, "How much important is marks of internal exams in Delhi university?");
  EXPECT_GT(dot(q, paraphrase), 0.75f);
  EXPECT_GT(dot(q, paraphrase), dot(q, related));
  EXPECT_GT(dot(q, related), dot(q, unrelated));
  EXPECT_LT(dot(q, unrelated), 0.3f);
}

TEST(BuiltinEmbedder, MatchesInflectionsThroughStemsAndCharacterNgrams) {
  BuiltinEmbedder e;
  const Embedding a = embed_one(e, "best programming languages for beginners");
  const Embedding b = embed_one(e, "best programming language for a beginner");
  EXPECT_GT(dot(a, b), 0.8f);
}

TEST(BuiltinEmbedder, TagNamesEveryOptionThatChangesVectors) {
  BuiltinEmbedder base;
  BuiltinEmbedder wider(BuiltinEmbedderOptions{.dimension = 512});
  BuiltinEmbedder no_chars(BuiltinEmbedderOptions{.char_ngram_weight = 0});
  EXPECT_EQ(base.tag().rfind("builtin-hash-v1:", 0), 0u);
  EXPECT_NE(base.tag(), wider.tag());
  EXPECT_NE(base.tag(), no_chars.tag());
  EXPECT_EQ(base.tag(), BuiltinEmbedder().tag());
}

TEST(BuiltinEmbedder, EmbedsABatchInOrder) {
  BuiltinEmbedder e;
  const std::vector<std::string> texts = {"first question", "second question", "first question"};
  auto out = e.embed(texts);
  ASSERT_TRUE(out);
  ASSERT_EQ(out->size(), 3u);
  EXPECT_EQ((*out)[0], (*out)[2]);
  EXPECT_NE((*out)[0], (*out)[1]);
}

}  // namespace
}  // namespace cascade
