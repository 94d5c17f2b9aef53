#include "consumers/worker/offset_watermark.h"

#include <algorithm>

namespace cascade {

void PartitionWatermark::track(std::int64_t offset) {
  if (!pending_.empty() && offset <= pending_.back().offset) return;  // redelivered duplicate
  if (committed_next_ && offset < *committed_next_) return;
  pending_.push_back({offset, false});
}

void PartitionWatermark::complete(std::int64_t offset) {
  auto it = std::lower_bound(pending_.begin(), pending_.end(), offset,
                             [](const Entry& e, std::int64_t o) { return e.offset < o; });
  if (it == pending_.end() || it->offset != offset) return;
  it->done = true;
  while (!pending_.empty() && pending_.front().done) {
    committed_next_ = pending_.front().offset + 1;
    pending_.pop_front();
    changed_ = true;
  }
}

std::optional<std::int64_t> PartitionWatermark::take_committable() {
  if (!changed_) return std::nullopt;
  changed_ = false;
  return committed_next_;
}

}  // namespace cascade
