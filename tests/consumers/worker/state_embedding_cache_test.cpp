// StateEmbeddingCache over a real RocksDB StateStore in a temporary directory.
#include "consumers/worker/state_embedding_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "support/state_store.h"
#include "support/temp_dir.h"

namespace cascade {
namespace {

using testing::TempDir;

std::unique_ptr<StateStore> open_store(const std::string& dir) {
  return testing::open_state_store(testing::state_options_in(dir));
}

Embedding unit(std::size_t dimension, std::size_t seed) {
  Embedding v(dimension);
  for (std::size_t i = 0; i < dimension; ++i) v[i] = static_cast<float>((seed * 31 + i * 7) % 13) - 6.0f;
  v[seed % dimension] += 20.0f;  // never all zeros
  normalize_unit(v);
  return v;
}

constexpr std::string_view kTag = "openai-compatible:nomic-embed-text:d8";

TEST(StateEmbeddingCache, AVectorPutIsGotBackExactlyAsLittleEndianFloats) {
  TempDir dir;
  auto store = open_store(dir.path());
  StateEmbeddingCache cache(*store, std::string(kTag), 8);
  const ContentHash key = content_hash(kTag, "how do i learn python?");
  const Embedding v = unit(8, 1);
  EXPECT_FALSE(cache.get(key)) << "nothing stored yet";
  ASSERT_TRUE(cache.put(key, v));
  EXPECT_EQ(cache.get(key), v);

  // The family's documented layout: key tag \0 hex(hash), value float32 LE, version = tag.
  auto raw = store->get(StateFamily::embeddings, embedding_key(kTag, to_hex(key)), kTag);
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->payload, encode_embedding(v));
}

TEST(StateEmbeddingCache, AVectorOfAnotherTagOrDimensionIsAMiss) {
  TempDir dir;
  auto store = open_store(dir.path());
  StateEmbeddingCache cache(*store, std::string(kTag), 8);
  const ContentHash key = content_hash(kTag, "same text");
  ASSERT_TRUE(cache.put(key, unit(8, 2)));

  StateEmbeddingCache other_model(*store, "openai-compatible:text-embedding-3-small:d8", 8);
  EXPECT_FALSE(other_model.get(key)) << "another embedder's vector space";
  StateEmbeddingCache other_dimension(*store, std::string(kTag), 16);
  EXPECT_FALSE(other_dimension.get(key)) << "a vector of the wrong size is never served";
}

TEST(StateEmbeddingCache, RefusesToStoreAVectorOfAnotherDimension) {
  TempDir dir;
  auto store = open_store(dir.path());
  StateEmbeddingCache cache(*store, std::string(kTag), 8);
  const ContentHash key = content_hash(kTag, "x");
  auto put = cache.put(key, unit(4, 1));
  ASSERT_FALSE(put);
  EXPECT_EQ(put.error().code, ErrorCode::invalid_request);
  EXPECT_FALSE(cache.get(key));
}

TEST(StateEmbeddingCache, VectorsSurviveAReopenOfTheStore) {
  TempDir dir;
  const ContentHash key = content_hash(kTag, "kept across restarts");
  const Embedding v = unit(8, 3);
  {
    auto store = open_store(dir.path());
    StateEmbeddingCache cache(*store, std::string(kTag), 8);
    ASSERT_TRUE(cache.put(key, v));
    ASSERT_TRUE(store->close());
  }
  auto store = open_store(dir.path());
  StateEmbeddingCache cache(*store, std::string(kTag), 8);
  EXPECT_EQ(cache.get(key), v);
}

// Counts what reaches the inner embedder.
class CountingEmbedder final : public Embedder {
 public:
  std::size_t dimension() const override { return inner_.dimension(); }
  const std::string& tag() const override { return inner_.tag(); }
  Result<std::vector<Embedding>> embed(std::span<const std::string> texts) override {
    embedded += texts.size();
    return inner_.embed(texts);
  }
  std::size_t embedded = 0;

 private:
  BuiltinEmbedder inner_;
};

TEST(StateEmbeddingCache, ATextIsEmbeddedOnceEvenAcrossRestarts) {
  TempDir dir;
  CountingEmbedder inner;
  const std::vector<std::string> texts = {"What is the capital of France?"};
  Embedding first;
  {
    auto store = open_store(dir.path());
    StateEmbeddingCache cache(*store, inner.tag(), inner.dimension());
    CachedEmbedder embedder(inner, cache);
    auto a = embedder.embed(texts);
    auto b = embedder.embed(texts);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(*a, *b);
    first = a->front();
    ASSERT_TRUE(store->close());
  }
  auto store = open_store(dir.path());
  StateEmbeddingCache cache(*store, inner.tag(), inner.dimension());
  CachedEmbedder embedder(inner, cache);
  auto again = embedder.embed(texts);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->front(), first);
  EXPECT_EQ(inner.embedded, 1u);
}

TEST(StateEmbeddingCache, ThreadsPuttingAndGettingAtOnceSeeEveryVectorWhole) {
  TempDir dir;
  auto store = open_store(dir.path());
  StateEmbeddingCache cache(*store, std::string(kTag), 8);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 200;
  std::atomic<int> wrong{0};
  std::atomic<int> missing{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::size_t n = static_cast<std::size_t>(t * kPerThread + i);
        const ContentHash key = content_hash(kTag, "text " + std::to_string(n));
        if (!cache.put(key, unit(8, n))) wrong++;
        auto got = cache.get(key);
        if (!got) {
          missing++;
        } else if (*got != unit(8, n)) {
          wrong++;
        }
        // Another thread's earlier entry: absent or whole, never torn.
        const std::size_t other = static_cast<std::size_t>(((t + 1) % kThreads) * kPerThread + i / 2);
        if (auto seen = cache.get(content_hash(kTag, "text " + std::to_string(other))); seen && *seen != unit(8, other)) {
          wrong++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(missing.load(), 0) << "a put is visible to its own thread at once";
  for (int n = 0; n < kThreads * kPerThread; ++n) {
    EXPECT_EQ(cache.get(content_hash(kTag, "text " + std::to_string(n))), unit(8, static_cast<std::size_t>(n))) << n;
  }
}

}  // namespace
}  // namespace cascade
