#pragma once
// Which requests have streamed answer text not yet published as a chunk
// event, and when each is due (worker.coalesce_ms, docs/events.md "Chunk
// event").
//
// Why: an instant upstream (or a fast one read in large gulps) hands the
// loop many deltas in one read; one chunk event each costs a JSON encoding,
// a Kafka message, and the client's and the gateway's decoding of it. The
// text a client reassembles is the same whatever the chunking.
//
// Rules:
// - The requester's first chunk is never held: it is due at the end of the
//   loop iteration in which its text arrived (time to first token is what
//   streaming is for).
// - With window 0, every later delta is due at the end of its iteration too:
//   only deltas that arrived together are merged.
// - With a window W > 0, text that arrives after a flush waits at most W
//   (from its first delta) for more to join it.
// - Before a request's terminal event its pending text is flushed (the
//   lifecycle calls its flush first), so chunks always precede the final.
//
// The pending text is not copied: it is the tail of Request::Reply::content
// past published_bytes.
//
// Threading: one event loop's thread. Pure logic: the clock is an argument.
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "consumers/worker/request.h"

namespace cascade {

class ChunkCoalescer {
 public:
  explicit ChunkCoalescer(std::chrono::milliseconds window) : window_(window) {}

  // r's pending text grew at `now`: queue it, unless it is queued already.
  void note(Request& r, Clock::time_point now);

  // Calls flush(serial) for every queued request whose text is due by `now`,
  // in the order they were queued. The request may be gone or flushed
  // already (a terminal came first): flush must check.
  template <typename Flush>
  void take_due(Clock::time_point now, Flush&& flush) {
    for (const auto serial : std::exchange(now_, {})) flush(serial);
    while (!windowed_.empty() && windowed_.front().due <= now) {
      const auto serial = windowed_.front().serial;
      windowed_.pop_front();
      flush(serial);
    }
  }

  // When the next held text is due (the loop must wake by then), if any.
  std::optional<Clock::time_point> next_due() const;

  std::chrono::milliseconds window() const { return window_; }

 private:
  struct Held {
    Clock::time_point due;
    std::uint64_t serial;
  };
  std::chrono::milliseconds window_;
  std::vector<std::uint64_t> now_;  // due at the end of this iteration
  std::deque<Held> windowed_;       // due in queue order (now + window is monotonic)
};

}  // namespace cascade
