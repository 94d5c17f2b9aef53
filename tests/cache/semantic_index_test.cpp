#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "cache/semantic.h"

namespace cascade {
namespace {

constexpr std::size_t kDim = 32;

std::vector<float> random_unit(std::mt19937& rng) {
  std::normal_distribution<float> normal;
  std::vector<float> v(kDim);
  for (float& x : v) x = normal(rng);
  normalize_unit(v);
  return v;
}

std::vector<float> axis(std::size_t i) {
  std::vector<float> v(kDim, 0.0f);
  v[i] = 1.0f;
  return v;
}

SemanticIndexOptions options(std::size_t flat_limit = 1024) {
  SemanticIndexOptions o;
  o.dimension = kDim;
  o.initial_capacity = 16;
  o.flat_limit = flat_limit;
  return o;
}

TEST(SemanticIndex, FindsTheNearestEntryWithItsCosineSimilarity) {
  SemanticIndex index(options());
  ASSERT_TRUE(index.add("acme", 1, axis(0)));
  ASSERT_TRUE(index.add("acme", 2, axis(1)));
  std::vector<float> q(kDim, 0.0f);
  q[0] = 0.8f;
  q[1] = 0.6f;
  const auto found = index.search("acme", q, 2);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].entry_id, 1u);
  EXPECT_NEAR(found[0].similarity, 0.8f, 1e-6);
  EXPECT_EQ(found[1].entry_id, 2u);
  EXPECT_NEAR(found[1].similarity, 0.6f, 1e-6);
}

TEST(SemanticIndex, NeverReturnsAnotherTenantsEntries) {
  SemanticIndex index(options());
  ASSERT_TRUE(index.add("acme", 1, axis(0)));
  ASSERT_TRUE(index.add("globex", 2, axis(1)));
  // globex searches acme's exact vector: it must only ever see its own entry.
  const auto found = index.search("globex", axis(0), 5);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].entry_id, 2u);
  EXPECT_TRUE(index.search("initech", axis(0), 5).empty());
  EXPECT_EQ(index.size("acme"), 1u);
  EXPECT_EQ(index.size("globex"), 1u);
}

TEST(SemanticIndex, SameEntryIdInTwoTenantsStaysTwoEntries) {
  SemanticIndex index(options());
  ASSERT_TRUE(index.add("acme", 7, axis(0)));
  ASSERT_TRUE(index.add("globex", 7, axis(1)));
  EXPECT_NEAR(index.search("acme", axis(0), 1).at(0).similarity, 1.0f, 1e-6);
  EXPECT_NEAR(index.search("globex", axis(0), 1).at(0).similarity, 0.0f, 1e-6);
}

TEST(SemanticIndex, RemovedEntriesAreNeverFoundAgain) {
  SemanticIndex index(options());
  ASSERT_TRUE(index.add("acme", 1, axis(0)));
  ASSERT_TRUE(index.add("acme", 2, axis(1)));
  EXPECT_TRUE(index.remove("acme", 1));
  EXPECT_FALSE(index.remove("acme", 1));
  EXPECT_FALSE(index.remove("globex", 2));
  const auto found = index.search("acme", axis(0), 5);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].entry_id, 2u);
  EXPECT_EQ(index.size("acme"), 1u);
  EXPECT_EQ(index.deleted("acme"), 0u);  // a flat namespace leaves no tombstone
}

TEST(SemanticIndex, ReaddingARemovedEntryRevivesItWithTheNewVector) {
  SemanticIndex index(options());
  ASSERT_TRUE(index.add("acme", 1, axis(0)));
  ASSERT_TRUE(index.remove("acme", 1));
  ASSERT_TRUE(index.add("acme", 1, axis(3)));
  const auto found = index.search("acme", axis(3), 1);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_NEAR(found[0].similarity, 1.0f, 1e-6);
  EXPECT_EQ(index.size("acme"), 1u);
}

TEST(SemanticIndex, SearchingATenantWhoseEntriesWereAllRemovedFindsNothing) {
  SemanticIndex index(options());
  ASSERT_TRUE(index.add("acme", 1, axis(0)));
  ASSERT_TRUE(index.remove("acme", 1));
  EXPECT_TRUE(index.search("acme", axis(0), 1).empty());
}

TEST(SemanticIndex, GrowsPastItsInitialCapacityAndFindsEveryEntry) {
  SemanticIndex index(options());
  std::mt19937 rng(7);
  std::vector<std::vector<float>> vectors;
  for (std::uint64_t id = 0; id < 2000; ++id) {
    vectors.push_back(random_unit(rng));
    ASSERT_TRUE(index.add("acme", id, vectors.back())) << id;
  }
  EXPECT_EQ(index.size("acme"), 2000u);
  std::size_t found_itself = 0;
  for (std::uint64_t id = 0; id < vectors.size(); id += 10) {
    const auto found = index.search("acme", vectors[id], 1);
    found_itself += !found.empty() && found[0].entry_id == id;
  }
  EXPECT_GE(found_itself, 198u);  // HNSW is approximate, but not for exact copies at this size
}

TEST(SemanticIndex, CompactionDropsTombstonesAndKeepsLiveEntries) {
  SemanticIndex index(options(16));
  std::mt19937 rng(3);
  std::vector<std::vector<float>> vectors;
  for (std::uint64_t id = 0; id < 200; ++id) {
    vectors.push_back(random_unit(rng));
    ASSERT_TRUE(index.add("acme", id, vectors.back()));
  }
  for (std::uint64_t id = 0; id < 200; id += 2) ASSERT_TRUE(index.remove("acme", id));
  EXPECT_EQ(index.deleted("acme"), 100u);
  const std::size_t before = index.memory_bytes();
  ASSERT_TRUE(index.compact("acme"));
  EXPECT_EQ(index.deleted("acme"), 0u);
  EXPECT_EQ(index.size("acme"), 100u);
  EXPECT_LE(index.memory_bytes(), before);
  for (std::uint64_t id = 1; id < 200; id += 2) {
    const auto found = index.search("acme", vectors[id], 1);
    ASSERT_FALSE(found.empty());
    EXPECT_EQ(found[0].entry_id, id);
  }
  EXPECT_TRUE(index.remove("acme", 1));  // ids survive compaction
}

// The tests above run each namespace in its flat stage or past it; these
// pin the stages themselves.
class SemanticIndexStages : public ::testing::TestWithParam<std::size_t> {};

TEST_P(SemanticIndexStages, BehaveAlikeForAddReplaceRemoveAndSearch) {
  SemanticIndex index(options(GetParam()));
  std::mt19937 rng(5);
  std::vector<std::vector<float>> vectors;
  for (std::uint64_t id = 0; id < 100; ++id) {
    vectors.push_back(random_unit(rng));
    ASSERT_TRUE(index.add("acme", id, vectors.back()));
  }
  for (std::uint64_t id = 0; id < 100; id += 3) ASSERT_TRUE(index.remove("acme", id));
  ASSERT_TRUE(index.add("acme", 1, axis(2)));  // replaces entry 1's vector
  EXPECT_EQ(index.size("acme"), 66u);
  for (std::uint64_t id = 0; id < 100; ++id) {
    const auto found = index.search("acme", id == 1 ? axis(2) : vectors[id], 1);
    ASSERT_FALSE(found.empty());
    if (id % 3 == 0) {
      EXPECT_NE(found[0].entry_id, id);
    } else {
      EXPECT_EQ(found[0].entry_id, id);
      EXPECT_NEAR(found[0].similarity, 1.0f, 1e-5);
    }
  }
  const auto three = index.search("acme", vectors[2], 3);
  ASSERT_EQ(three.size(), 3u);
  EXPECT_GE(three[0].similarity, three[1].similarity);
  EXPECT_GE(three[1].similarity, three[2].similarity);
}

INSTANTIATE_TEST_SUITE_P(FlatAndGraph, SemanticIndexStages, ::testing::Values(1024u, 8u, 0u));

TEST(SemanticIndex, KeepsASmallNamespaceCheap) {
  SemanticIndex index(options());
  for (int t = 0; t < 100; ++t) ASSERT_TRUE(index.add("tenant-" + std::to_string(t), 1, axis(0)));
  // An hnswlib graph alone costs ~2.6 MB before its first entry.
  EXPECT_LT(index.memory_bytes() / 100, 4096u);
}

TEST(SemanticIndex, BecomesAGraphPastItsFlatLimitKeepingEveryEntry) {
  SemanticIndex index(options(32));
  std::mt19937 rng(9);
  std::vector<std::vector<float>> vectors;
  for (std::uint64_t id = 0; id < 32; ++id) {
    vectors.push_back(random_unit(rng));
    ASSERT_TRUE(index.add("acme", id, vectors.back()));
  }
  ASSERT_TRUE(index.remove("acme", 5));
  const std::size_t flat_bytes = index.memory_bytes();
  for (std::uint64_t id = 32; id < 64; ++id) {
    vectors.push_back(random_unit(rng));
    ASSERT_TRUE(index.add("acme", id, vectors.back()));
  }
  EXPECT_GT(index.memory_bytes(), flat_bytes + (1u << 20));  // the graph's fixed cost: it is a graph now
  EXPECT_EQ(index.size("acme"), 63u);
  for (std::uint64_t id = 0; id < 64; ++id) {
    const auto found = index.search("acme", vectors[id], 1);
    ASSERT_FALSE(found.empty());
    EXPECT_EQ(found[0].entry_id == id, id != 5) << id;
  }
  EXPECT_TRUE(index.remove("acme", 40));
  EXPECT_EQ(index.deleted("acme"), 1u);
}

TEST(SemanticIndex, CompactionTurnsAShrunkGraphFlatAgain) {
  SemanticIndex index(options(32));
  std::mt19937 rng(13);
  std::vector<std::vector<float>> vectors;
  for (std::uint64_t id = 0; id < 100; ++id) {
    vectors.push_back(random_unit(rng));
    ASSERT_TRUE(index.add("acme", id, vectors.back()));
  }
  for (std::uint64_t id = 10; id < 100; ++id) ASSERT_TRUE(index.remove("acme", id));
  const std::size_t graph_bytes = index.memory_bytes();
  ASSERT_TRUE(index.compact("acme"));
  EXPECT_LT(index.memory_bytes() * 10, graph_bytes);
  EXPECT_EQ(index.size("acme"), 10u);
  EXPECT_EQ(index.deleted("acme"), 0u);
  for (std::uint64_t id = 0; id < 10; ++id) EXPECT_EQ(index.search("acme", vectors[id], 1).at(0).entry_id, id);
  EXPECT_TRUE(index.search("acme", vectors[50], 5).size() == 5u);
}

TEST(SemanticIndex, RejectsVectorsOfTheWrongShape) {
  SemanticIndex index(options());
  auto wrong_dimension = index.add("acme", 1, std::vector<float>(kDim + 1, 0.1f));
  ASSERT_FALSE(wrong_dimension);
  EXPECT_EQ(wrong_dimension.error().code, ErrorCode::invalid_request);
  auto not_unit = index.add("acme", 1, std::vector<float>(kDim, 1.0f));
  ASSERT_FALSE(not_unit);
  auto zero = index.add("acme", 1, std::vector<float>(kDim, 0.0f));
  ASSERT_FALSE(zero);
  EXPECT_EQ(index.size("acme"), 0u);
  EXPECT_TRUE(index.search("acme", std::vector<float>(kDim - 1, 0.0f), 1).empty());
}

TEST(SemanticIndex, SearchesRunConcurrentlyWithInserts) {
  SemanticIndex index(options(256));  // crosses from flat to graph while searched
  std::mt19937 rng(11);
  for (std::uint64_t id = 0; id < 100; ++id) ASSERT_TRUE(index.add("acme", id, random_unit(rng)));
  std::atomic<bool> done{false};
  std::atomic<std::size_t> searches{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937 local(100 + t);
      while (!done.load()) {
        const auto found = index.search("acme", random_unit(local), 3);
        EXPECT_FALSE(found.empty());
        ++searches;
      }
    });
  }
  for (std::uint64_t id = 100; id < 1500; ++id) ASSERT_TRUE(index.add("acme", id, random_unit(rng)));
  done.store(true);
  for (auto& r : readers) r.join();
  EXPECT_EQ(index.size("acme"), 1500u);
  EXPECT_GT(searches.load(), 0u);
}

}  // namespace
}  // namespace cascade
