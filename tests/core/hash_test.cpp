#include "core/hash.h"

#include <gtest/gtest.h>

#include <string_view>

namespace cascade {
namespace {

// Reference values from the published definitions: stored router weights and
// embedder vectors were made with these bits, so a change here must fail.
TEST(Fnv1a, MatchesThePublishedTestVectors) {
  EXPECT_EQ(fnv1a_extend(kFnv1aOffsetBasis, ""), 0xCBF29CE484222325ull);
  EXPECT_EQ(fnv1a_extend(kFnv1aOffsetBasis, "a"), 0xAF63DC4C8601EC8Cull);
  EXPECT_EQ(fnv1a_extend(kFnv1aOffsetBasis, "foobar"), 0x85944171F73967E8ull);
}

TEST(Fnv1a, ExtendingPieceByPieceEqualsHashingTheWhole) {
  EXPECT_EQ(fnv1a_extend(fnv1a_extend(kFnv1aOffsetBasis, "foo"), "bar"),
            fnv1a_extend(kFnv1aOffsetBasis, "foobar"));
}

TEST(SplitMix64, MatchesTheReferenceSequenceFromSeedZero) {
  SplitMix64 rng(0);
  EXPECT_EQ(rng.next(), 0xE220A8397B1DCDAFull);
  EXPECT_EQ(rng.next(), 0x6E789E6AA1B965F4ull);
  EXPECT_EQ(rng.next(), 0x06C45D188009454Full);
}

TEST(SplitMix64, BelowStaysInRange) {
  SplitMix64 rng(42);
  for (int i = 0; i < 1000; ++i) EXPECT_LT(rng.below(7), 7u);
}

}  // namespace
}  // namespace cascade
