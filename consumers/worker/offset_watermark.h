#pragma once
// Per-partition commit watermark. Requests finish out of order; the offset we
// may commit is the first offset whose terminal event is not yet delivered
// (everything before it is done), so a crash never skips an unfinished request.
#include <cstdint>
#include <deque>
#include <optional>

namespace cascade {

class PartitionWatermark {
 public:
  // Registers a consumed offset. Offsets arrive in increasing order (gaps allowed).
  void track(std::int64_t offset);
  // Marks an offset's request as terminal-delivered. Unknown offsets are ignored.
  void complete(std::int64_t offset);
  // The offset to commit (next to consume after the contiguous done prefix),
  // or nullopt when nothing has completed since the last call.
  std::optional<std::int64_t> take_committable();
  // The offset to commit now, regardless of whether it changed.
  std::optional<std::int64_t> committable() const { return committed_next_; }
  std::size_t in_flight() const { return pending_.size(); }

 private:
  struct Entry {
    std::int64_t offset;
    bool done;
  };
  std::deque<Entry> pending_;  // sorted by offset
  std::optional<std::int64_t> committed_next_;
  bool changed_ = false;
};

}  // namespace cascade
