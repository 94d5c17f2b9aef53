#include "consumers/worker/chunk_coalescer.h"

namespace cascade {

void ChunkCoalescer::note(Request& r, Clock::time_point now) {
  if (r.reply.flush_queued) return;
  r.reply.flush_queued = true;
  if (window_.count() == 0 || r.reply.next_seq == 0) {
    now_.push_back(r.serial);
  } else {
    windowed_.push_back({now + window_, r.serial});
  }
}

std::optional<Clock::time_point> ChunkCoalescer::next_due() const {
  if (!now_.empty()) return Clock::time_point::min();
  if (windowed_.empty()) return std::nullopt;
  return windowed_.front().due;
}

}  // namespace cascade
