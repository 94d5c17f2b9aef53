#pragma once
// Runs an HttpClient's loop the way a worker does, for tests; and records
// what a provider streams.
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "providers/provider.h"
#include "support/wait.h"

namespace cascade::testing {

// Polls until `done` holds or `limit` passes (a generous bound: it only
// decides when a broken build gives up, never whether a test passes).
inline bool drive_until(HttpClient& http, const std::function<bool()>& done,
                        std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  return eventually(done, limit, [&] { http.poll(20); });
}

// Polls for a while regardless; for checking that nothing more happens.
inline void drive_for(HttpClient& http, std::chrono::milliseconds duration) {
  const auto deadline = std::chrono::steady_clock::now() + duration;
  while (std::chrono::steady_clock::now() < deadline) http.poll(10);
}

// Records what a provider streams to its observer.
class RecordingObserver : public ChatStreamObserver {
 public:
  void on_delta(std::string_view text) override {
    deltas.emplace_back(text);
    if (delta_hook) delta_hook();
  }
  void on_complete(Result<ChatCompletion> result) override {
    ++completions;
    outcome = std::move(result);
  }

  std::string text() const {
    std::string all;
    for (const auto& d : deltas) all += d;
    return all;
  }
  bool finished() const { return completions > 0; }

  std::vector<std::string> deltas;
  int completions = 0;
  std::optional<Result<ChatCompletion>> outcome;
  std::function<void()> delta_hook;
};

}  // namespace cascade::testing
