// PartitionShare: what part of the tenants' cluster-wide rate limits an event
// loop admits, from its partitions of the requests topic.
#include "consumers/worker/partition_share.h"

#include <gtest/gtest.h>

namespace cascade {
namespace {

TEST(PartitionShare, BeforeItsFirstAssignmentALoopAdmitsWhatItIsToldTo) {
  PartitionShare share;
  EXPECT_DOUBLE_EQ(share.fraction(0.5), 0.5);
  EXPECT_EQ(share.generation(), 0u);
}

TEST(PartitionShare, ALoopAdmitsItsPartitionsPartOfTheTopic) {
  PartitionShare share;
  share.update(4, 16);
  EXPECT_DOUBLE_EQ(share.fraction(0.5), 0.25);
  EXPECT_EQ(share.assigned(), 4u);
  EXPECT_EQ(share.partitions(), 16);
  share.update(16, 16);  // the only member
  EXPECT_DOUBLE_EQ(share.fraction(0.5), 1.0);
  share.update(20, 16);  // a stale count after partitions were added: never more than everything
  EXPECT_DOUBLE_EQ(share.fraction(0.5), 1.0);
}

TEST(PartitionShare, TheLoopsOfAGroupHoldingEveryPartitionOnceAdmitTheWholeLimitBetweenThem) {
  // 16 partitions over 3 workers of 2 loops: 3, 3, 3, 3, 2, 2.
  double sum = 0;
  for (std::size_t assigned : {3u, 3u, 3u, 3u, 2u, 2u}) {
    PartitionShare share;
    share.update(assigned, 16);
    sum += share.fraction(0.5);
  }
  EXPECT_DOUBLE_EQ(sum, 1.0);
}

TEST(PartitionShare, WhileItHoldsNothingALoopKeepsItsLastShareForTheRequestsItStillHas) {
  PartitionShare share;
  share.update(8, 16);
  const auto generation = share.generation();
  share.update(0, 16);  // an eager rebalance revoked everything; the next assignment is coming
  EXPECT_DOUBLE_EQ(share.fraction(1.0), 0.5);
  EXPECT_EQ(share.generation(), generation);
  share.update(4, 16);
  EXPECT_DOUBLE_EQ(share.fraction(1.0), 0.25);
  EXPECT_GT(share.generation(), generation);
}

TEST(PartitionShare, AnUnknownPartitionCountKeepsTheLastKnownOne) {
  PartitionShare share;
  share.update(4, 0);  // the metadata never answered: nothing to go by yet
  EXPECT_DOUBLE_EQ(share.fraction(0.5), 0.5);
  share.update(4, 8);
  share.update(2, 0);  // it did not answer this time
  EXPECT_DOUBLE_EQ(share.fraction(0.5), 0.25);
  EXPECT_EQ(share.partitions(), 8);
}

TEST(PartitionShare, TheGenerationMovesOnlyWhenTheShareDoes) {
  PartitionShare share;
  share.update(4, 16);
  const auto generation = share.generation();
  share.update(4, 16);
  share.update(8, 32);
  EXPECT_EQ(share.generation(), generation);
  share.update(5, 16);
  EXPECT_EQ(share.generation(), generation + 1);
}

}  // namespace
}  // namespace cascade
