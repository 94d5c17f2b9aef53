#pragma once
// Runs an HttpClient's loop the way a worker does, for tests.
#include <chrono>
#include <functional>

#include "providers/provider.h"

namespace cascade::testing {

// Polls until `done` holds or `limit` passes (a generous bound: it only
// decides when a broken build gives up, never whether a test passes).
inline bool drive_until(HttpClient& http, const std::function<bool()>& done,
                        std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    http.poll(20);
  }
  return true;
}

// Polls for a while regardless; for checking that nothing more happens.
inline void drive_for(HttpClient& http, std::chrono::milliseconds duration) {
  const auto deadline = std::chrono::steady_clock::now() + duration;
  while (std::chrono::steady_clock::now() < deadline) http.poll(10);
}

}  // namespace cascade::testing
