#pragma once
// An event loop's part of the requests topic, and so of every tenant's
// cluster-wide rate limits (tenants.<t>.requests_per_second and
// tokens_per_minute; docs/architecture.md, "Rate limits over several workers").
//
// Prompt events are keyed by prompt_event_key (events/request_fingerprint.h),
// which spreads a tenant's distinct requests evenly over the topic's
// partitions. A loop holding k of the P partitions so sees about k/P of each
// tenant's requests, and admits k/P of its limits. The consumer group's
// loops hold every partition once, so their shares add up to 1 and what
// they admit to the limit: Kafka's assignment is the only coordination.
//
// Threading: one event loop's thread (set in its rebalance callbacks, read by
// its admission stage).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kafka/kafka.h"

namespace cascade {

class PartitionShare {
 public:
  // The loop holds `assigned` of the topic's `partitions` partitions, as a
  // rebalance left it. partitions <= 0: not known (the metadata did not
  // answer), the last known count stands.
  void update(std::size_t assigned, int partitions) {
    if (partitions > 0) partitions_ = partitions;
    assigned_ = assigned;
    if (assigned_ == 0 || partitions_ <= 0) return;
    const double share = std::min(1.0, static_cast<double>(assigned_) / partitions_);
    if (share == share_) return;
    share_ = share;
    ++generation_;
  }

  void update(const TopicShare& share) { update(share.assigned, share.partitions); }

  // The part of a cluster-wide limit this loop admits:
  //   - assigned / partitions while it holds partitions;
  //   - the last such share while it holds none (between a revoke and the
  //     next assignment), for the requests it still has in flight;
  //   - `before_assignment` until it has held any (it reads nothing then;
  //     a loop without Kafka, in unit tests, stays there).
  double fraction(double before_assignment) const { return share_ > 0 ? share_ : before_assignment; }

  // Moves whenever fraction() does: rates derived from it are derived again.
  std::uint64_t generation() const { return generation_; }
  std::size_t assigned() const { return assigned_; }
  int partitions() const { return partitions_; }

 private:
  std::size_t assigned_ = 0;
  int partitions_ = 0;
  double share_ = 0;  // 0: never held a partition
  std::uint64_t generation_ = 0;
};

}  // namespace cascade
