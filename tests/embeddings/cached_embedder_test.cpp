#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "embeddings/embeddings.h"

namespace cascade {
namespace {

// Records what it is asked to embed; answers with the builtin embedder.
class CountingEmbedder final : public Embedder {
 public:
  explicit CountingEmbedder(std::string tag = "counting:v1") : tag_(std::move(tag)) {}
  std::size_t dimension() const override { return inner_.dimension(); }
  const std::string& tag() const override { return tag_; }
  Result<std::vector<Embedding>> embed(std::span<const std::string> texts) override {
    calls.emplace_back(texts.begin(), texts.end());
    if (failing) return fail(ErrorCode::unavailable, "down");
    return inner_.embed(texts);
  }
  std::vector<std::vector<std::string>> calls;
  bool failing = false;

 private:
  BuiltinEmbedder inner_;
  std::string tag_;
};

class FailingCache final : public EmbeddingCache {
 public:
  std::optional<Embedding> get(const ContentHash&) override { return std::nullopt; }
  Result<void> put(const ContentHash&, std::span<const float>) override { return fail(ErrorCode::internal, "disk full"); }
};

TEST(CachedEmbedder, EmbedsANormalizedTextOnce) {
  CountingEmbedder inner;
  InMemoryEmbeddingCache cache;
  CachedEmbedder cached(inner, cache);
  const std::vector<std::string> first = {"How do I learn  Python?"};
  const std::vector<std::string> again = {"  how do i LEARN python?"};
  auto a = cached.embed(first);
  auto b = cached.embed(again);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->front(), b->front());
  ASSERT_EQ(inner.calls.size(), 1u);
  EXPECT_EQ(inner.calls[0], std::vector<std::string>{"how do i learn python?"});  // what is hashed is embedded
  EXPECT_EQ(cached.stats().hits, 1u);
  EXPECT_EQ(cached.stats().misses, 1u);
}

TEST(CachedEmbedder, EmbedsOnlyTheMissesOfABatchAndKeepsOrder) {
  CountingEmbedder inner;
  InMemoryEmbeddingCache cache;
  CachedEmbedder cached(inner, cache);
  const std::vector<std::string> warm = {"b"};
  ASSERT_TRUE(cached.embed(warm));
  const std::vector<std::string> batch = {"a", "b", "c"};
  auto out = cached.embed(batch);
  ASSERT_TRUE(out);
  ASSERT_EQ(inner.calls.size(), 2u);
  EXPECT_EQ(inner.calls[1], (std::vector<std::string>{"a", "c"}));
  BuiltinEmbedder reference;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const std::string one[] = {batch[i]};
    EXPECT_EQ((*out)[i], reference.embed(one)->front()) << i;
  }
}

TEST(CachedEmbedder, NeverServesVectorsOfAnotherEmbedder) {
  CountingEmbedder old_model("model:v1");
  CountingEmbedder new_model("model:v2");
  InMemoryEmbeddingCache cache;
  CachedEmbedder a(old_model, cache);
  CachedEmbedder b(new_model, cache);
  const std::vector<std::string> texts = {"same text"};
  ASSERT_TRUE(a.embed(texts));
  ASSERT_TRUE(b.embed(texts));
  EXPECT_EQ(new_model.calls.size(), 1u);
  EXPECT_EQ(cache.size(), 2u);
}

TEST(CachedEmbedder, ServesVectorsWhenTheCacheCannotKeepThem) {
  CountingEmbedder inner;
  FailingCache cache;
  CachedEmbedder cached(inner, cache);
  const std::vector<std::string> texts = {"x", "y"};
  auto out = cached.embed(texts);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->size(), 2u);
  EXPECT_EQ(cached.stats().put_failures, 2u);
}

TEST(CachedEmbedder, PassesTheInnerEmbeddersErrorOn) {
  CountingEmbedder inner;
  inner.failing = true;
  InMemoryEmbeddingCache cache;
  CachedEmbedder cached(inner, cache);
  const std::vector<std::string> texts = {"x"};
  auto out = cached.embed(texts);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::unavailable);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(InMemoryEmbeddingCache, EvictsTheOldestEntryWhenFull) {
  InMemoryEmbeddingCache cache(2);
  const std::vector<float> v = {1, 0};
  ASSERT_TRUE(cache.put(content_hash("t", "1"), v));
  ASSERT_TRUE(cache.put(content_hash("t", "2"), v));
  ASSERT_TRUE(cache.put(content_hash("t", "3"), v));
  EXPECT_FALSE(cache.get(content_hash("t", "1")));
  EXPECT_TRUE(cache.get(content_hash("t", "2")));
  EXPECT_TRUE(cache.get(content_hash("t", "3")));
  EXPECT_EQ(cache.size(), 2u);
}

}  // namespace
}  // namespace cascade
