#pragma once
// A wall clock (ms since the epoch) that only the test moves.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

namespace cascade::testing {

// Copies share one time; fn() may be handed to other threads (compactions).
class ManualClock {
 public:
  explicit ManualClock(std::int64_t start_ms = 1'700'000'000'000)
      : now_(std::make_shared<std::atomic<std::int64_t>>(start_ms)) {}
  std::int64_t now() const { return now_->load(); }
  void advance_ms(std::int64_t ms) { *now_ += ms; }
  void set(std::int64_t ms) { *now_ = ms; }
  std::function<std::int64_t()> fn() const {
    auto n = now_;
    return [n] { return n->load(); };
  }

 private:
  std::shared_ptr<std::atomic<std::int64_t>> now_;
};

}  // namespace cascade::testing
