#pragma once
// Waiting for something another thread (a broker, a worker loop, a server)
// makes true, in tests. One helper for every test, as Redpanda's
// test_utils/async.h: poll a predicate until it holds or the time is up.
#include <chrono>
#include <concepts>
#include <thread>
#include <type_traits>

namespace cascade::testing {

// How long tests wait for the embedded broker and the components around it
// unless they say otherwise: long enough for a loaded 2-core CI machine.
inline constexpr int kDefaultWaitMs = 30000;

// True as soon as pred() holds; false when it still does not after `timeout`
// (it is asked one last time then). Between two asks it runs step(): for a
// wait that must drive something meanwhile (a client's or an HttpClient's
// poll, a changelog applier) instead of sleeping. A step returns void, or
// bool: false (the step failed) ends the wait at once with false.
template <class Pred, class Step>
  requires std::invocable<Step&>
bool eventually(Pred&& pred, std::chrono::milliseconds timeout, Step&& step) {
  using StepResult = std::invoke_result_t<Step&>;
  static_assert(std::is_void_v<StepResult> || std::is_same_v<StepResult, bool>,
                "a step returns void, or bool (false: stop waiting)");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    if constexpr (std::is_same_v<StepResult, bool>) {
      if (!step()) return false;
    } else {
      step();
    }
  }
  return pred();
}

// The same, sleeping `poll` between two asks.
template <class Pred>
bool eventually(Pred&& pred, std::chrono::milliseconds timeout = std::chrono::milliseconds(kDefaultWaitMs),
                std::chrono::milliseconds poll = std::chrono::milliseconds(20)) {
  return eventually(pred, timeout, [poll] { std::this_thread::sleep_for(poll); });
}

// The same in milliseconds.
template <class Pred>
bool eventually(Pred&& pred, int timeout_ms, int poll_ms = 20) {
  return eventually(pred, std::chrono::milliseconds(timeout_ms), std::chrono::milliseconds(poll_ms));
}

}  // namespace cascade::testing
