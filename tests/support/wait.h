#pragma once
// Waiting for something another thread (a broker, a worker loop, a server)
// makes true, in tests. One helper for every test, as Redpanda's
// test_utils/async.h: poll a predicate until it holds or the time is up.
#include <chrono>
#include <thread>

namespace cascade::testing {

// How long tests wait for the embedded broker and the components around it
// unless they say otherwise: long enough for a loaded 2-core CI machine.
inline constexpr int kDefaultWaitMs = 30000;

// True as soon as pred() holds; false when it still does not after
// timeout_ms (it is asked one last time then). Polls every poll_ms.
template <class Pred>
bool eventually(Pred&& pred, int timeout_ms = kDefaultWaitMs, int poll_ms = 20) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
  }
  return pred();
}

}  // namespace cascade::testing
