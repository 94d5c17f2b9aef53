#include "consumers/worker/offset_watermark.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <iterator>
#include <optional>
#include <random>
#include <set>
#include <vector>

namespace cascade {
namespace {

TEST(PartitionWatermark, FreshWatermarkHasNothingToCommit) {
  PartitionWatermark w;
  EXPECT_EQ(w.committable(), std::nullopt);
  EXPECT_EQ(w.take_committable(), std::nullopt);
  EXPECT_EQ(w.in_flight(), 0u);
}

TEST(PartitionWatermark, TrackedButUnfinishedOffsetsAreNotCommittable) {
  PartitionWatermark w;
  w.track(0);
  w.track(1);
  EXPECT_EQ(w.in_flight(), 2u);
  EXPECT_EQ(w.committable(), std::nullopt);
  EXPECT_EQ(w.take_committable(), std::nullopt);
}

TEST(PartitionWatermark, InOrderCompletionAdvancesToTheNextOffset) {
  PartitionWatermark w;
  for (std::int64_t o = 100; o < 103; ++o) w.track(o);
  w.complete(100);
  EXPECT_EQ(w.take_committable(), 101);
  w.complete(101);
  EXPECT_EQ(w.take_committable(), 102);
  w.complete(102);
  EXPECT_EQ(w.take_committable(), 103);
  EXPECT_EQ(w.in_flight(), 0u);
}

TEST(PartitionWatermark, OutOfOrderCompletionHoldsAtTheFirstUnfinishedOffsetThenJumps) {
  PartitionWatermark w;
  for (std::int64_t o = 10; o < 15; ++o) w.track(o);
  w.complete(12);
  w.complete(11);
  EXPECT_EQ(w.take_committable(), std::nullopt) << "10 is unfinished: nothing may be committed";
  EXPECT_EQ(w.committable(), std::nullopt);

  w.complete(10);
  EXPECT_EQ(w.take_committable(), 13) << "10..12 are done; 13 is the first unfinished";
  EXPECT_EQ(w.in_flight(), 2u);

  w.complete(14);
  EXPECT_EQ(w.take_committable(), std::nullopt) << "13 still holds the watermark";
  EXPECT_EQ(w.committable(), 13);

  w.complete(13);
  EXPECT_EQ(w.take_committable(), 15);
  EXPECT_EQ(w.in_flight(), 0u);
}

TEST(PartitionWatermark, GapsInOffsetsDoNotHoldTheWatermark) {
  // 6, 8 and 9 never reach the consumer (compacted away or transaction markers).
  PartitionWatermark w;
  w.track(5);
  w.track(7);
  w.track(10);
  w.complete(7);
  EXPECT_EQ(w.take_committable(), std::nullopt);
  w.complete(5);
  EXPECT_EQ(w.take_committable(), 8);
  w.complete(10);
  EXPECT_EQ(w.take_committable(), 11);
  EXPECT_EQ(w.in_flight(), 0u);
}

TEST(PartitionWatermark, FirstTrackedOffsetNeedNotBeZero) {
  PartitionWatermark w;
  w.track(1'000'000'000'000);
  w.complete(1'000'000'000'000);
  EXPECT_EQ(w.take_committable(), 1'000'000'000'001);
}

TEST(PartitionWatermark, DuplicateTrackOfAPendingOffsetIsIgnored) {
  PartitionWatermark w;
  w.track(3);
  w.track(4);
  w.track(4);
  w.track(3);
  EXPECT_EQ(w.in_flight(), 2u);
  w.complete(3);
  w.complete(4);
  EXPECT_EQ(w.take_committable(), 5);
  EXPECT_EQ(w.in_flight(), 0u);
}

TEST(PartitionWatermark, RedeliveryOfAnAlreadyCommittedOffsetIsIgnored) {
  PartitionWatermark w;
  w.track(3);
  w.track(4);
  w.complete(3);
  w.complete(4);
  ASSERT_EQ(w.take_committable(), 5);

  w.track(4);
  w.track(2);
  EXPECT_EQ(w.in_flight(), 0u);
  w.complete(4);
  EXPECT_EQ(w.take_committable(), std::nullopt);
  EXPECT_EQ(w.committable(), 5) << "the watermark never moves backwards";
}

TEST(PartitionWatermark, TakeCommittableReturnsAValueOnlyWhenItChanged) {
  PartitionWatermark w;
  w.track(0);
  w.track(1);
  w.complete(0);
  EXPECT_EQ(w.take_committable(), 1);
  EXPECT_EQ(w.take_committable(), std::nullopt);
  EXPECT_EQ(w.committable(), 1) << "committable() still reports the current value";

  w.complete(1);
  EXPECT_EQ(w.take_committable(), 2);
  EXPECT_EQ(w.take_committable(), std::nullopt);
}

TEST(PartitionWatermark, SeveralAdvancesBetweenTakesAreReportedOnceWithTheLatestValue) {
  PartitionWatermark w;
  for (std::int64_t o = 0; o < 4; ++o) w.track(o);
  w.complete(0);
  w.complete(1);
  w.complete(2);
  EXPECT_EQ(w.take_committable(), 3);
  EXPECT_EQ(w.take_committable(), std::nullopt);
}

TEST(PartitionWatermark, CompletingAnUnknownOffsetIsIgnored) {
  PartitionWatermark w;
  w.complete(42);  // nothing tracked at all
  EXPECT_EQ(w.committable(), std::nullopt);

  w.track(5);
  w.track(7);
  w.complete(6);  // a gap, never tracked
  w.complete(4);  // before everything
  w.complete(8);  // after everything
  EXPECT_EQ(w.take_committable(), std::nullopt);
  EXPECT_EQ(w.in_flight(), 2u);

  w.complete(5);
  EXPECT_EQ(w.take_committable(), 6);
  w.complete(5);  // already done and released
  EXPECT_EQ(w.take_committable(), std::nullopt);
  EXPECT_EQ(w.committable(), 6);
}

TEST(PartitionWatermark, CompletingTheSameOffsetTwiceWhileHeldDoesNotReleaseOthers) {
  PartitionWatermark w;
  w.track(0);
  w.track(1);
  w.track(2);
  w.complete(1);
  w.complete(1);
  EXPECT_EQ(w.take_committable(), std::nullopt);
  EXPECT_EQ(w.in_flight(), 3u);
  w.complete(0);
  EXPECT_EQ(w.take_committable(), 2);
}

// The watermark's contract stated directly on sets: the committable offset is
// one past the last tracked offset below the smallest unfinished one.
class ReferenceWatermark {
 public:
  void track(std::int64_t offset) {
    if (!tracked_.empty() && offset <= *tracked_.rbegin()) return;
    tracked_.insert(offset);
    unfinished_.insert(offset);
  }
  void complete(std::int64_t offset) { unfinished_.erase(offset); }

  std::optional<std::int64_t> committable() const {
    auto end = unfinished_.empty() ? tracked_.end() : tracked_.lower_bound(*unfinished_.begin());
    if (end == tracked_.begin()) return std::nullopt;
    return *std::prev(end) + 1;
  }
  std::size_t in_flight() const {
    if (unfinished_.empty()) return 0;
    auto from = tracked_.lower_bound(*unfinished_.begin());
    return static_cast<std::size_t>(std::distance(from, tracked_.end()));
  }
  std::optional<std::int64_t> take_committable() {
    auto now = committable();
    if (now == last_taken_) return std::nullopt;
    last_taken_ = now;
    return now;
  }

  const std::set<std::int64_t>& unfinished() const { return unfinished_; }
  std::int64_t next_offset() const { return tracked_.empty() ? 0 : *tracked_.rbegin() + 1; }

 private:
  std::set<std::int64_t> tracked_;
  std::set<std::int64_t> unfinished_;
  std::optional<std::int64_t> last_taken_;
};

TEST(PartitionWatermark, MatchesTheReferenceModelOverRandomOperations) {
  for (std::uint32_t seed : {1u, 2u, 3u, 42u, 2024u}) {
    SCOPED_TRACE(testing::Message() << "seed " << seed);
    std::mt19937 rng(seed);
    auto roll = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    PartitionWatermark w;
    ReferenceWatermark ref;

    for (int step = 0; step < 5000; ++step) {
      const int op = roll(100);
      if (op < 35) {
        // Next consumed offset, sometimes after a gap.
        const std::int64_t offset = ref.next_offset() + (roll(4) == 0 ? roll(5) : 0);
        w.track(offset);
        ref.track(offset);
      } else if (op < 70) {
        if (ref.unfinished().empty()) continue;
        auto it = ref.unfinished().begin();
        std::advance(it, roll(static_cast<int>(ref.unfinished().size())));
        const std::int64_t offset = *it;
        w.complete(offset);
        ref.complete(offset);
      } else if (op < 80) {
        // Anything: unknown, gap, already released or still pending.
        const std::int64_t offset = roll(static_cast<int>(ref.next_offset()) + 5) - 2;
        w.complete(offset);
        ref.complete(offset);
      } else if (op < 85) {
        // Redelivery of an offset seen before.
        const std::int64_t offset = ref.next_offset() - 1 - roll(10);
        w.track(offset);
        ref.track(offset);
      } else {
        ASSERT_EQ(w.take_committable(), ref.take_committable()) << "step " << step;
      }
      ASSERT_EQ(w.committable(), ref.committable()) << "step " << step;
      ASSERT_EQ(w.in_flight(), ref.in_flight()) << "step " << step;
    }
  }
}

}  // namespace
}  // namespace cascade
