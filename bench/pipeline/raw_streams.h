#pragma once
// Streaming chat completions opened straight against the simulated upstream
// over bare sockets, bypassing worker, Kafka and client. Everything runs in
// one process, so this is how the upstream's share of the memory per
// in-flight stream is measured on its own: the sockets here hold no user-space
// state beyond their descriptors, and what they receive stays in the kernel's
// socket buffers, which are not part of RSS.
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/result.h"

namespace cascade::bench {

class RawUpstreamStreams {
 public:
  RawUpstreamStreams() = default;
  ~RawUpstreamStreams();
  RawUpstreamStreams(const RawUpstreamStreams&) = delete;
  RawUpstreamStreams& operator=(const RawUpstreamStreams&) = delete;

  // Opens one connection per JSON body and posts it to /v1/chat/completions;
  // returns once `received()` (the upstream's requests_served()) has grown by
  // bodies.size(), i.e. every stream has started, or fails after `timeout`.
  [[nodiscard]] Result<void> open(std::uint16_t port, const std::vector<std::string>& bodies,
                    const std::function<std::uint64_t()>& received, std::chrono::milliseconds timeout);
  // Resets every connection (no TIME_WAIT left behind to use up local ports).
  void close_all();
  std::size_t size() const { return fds_.size(); }

 private:
  std::vector<int> fds_;
};

}  // namespace cascade::bench
