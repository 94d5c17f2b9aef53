#pragma once
// Fault injection logic of the simulator that needs no networking: checking a
// fault, choosing one per request from a plan, counting what was given, and
// the bytes a fault sends in place of (or inside) a normal answer.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/result.h"
#include "simulator/chat_completion.h"
#include "simulator/simulated_upstream.h"

namespace cascade::simulator {

inline constexpr std::string_view kFaultHeader = "X-Cascade-Fault";

[[nodiscard]] Result<void> validate_fault(const UpstreamFault& fault);

// The body of an http_status fault, shaped like the provider's own errors.
ApiError fault_status_error(int status);

void append_huge_chunk_text(std::string& out, std::size_t bytes);

// The content delta index at which a mid-stream fault strikes.
std::size_t fault_piece_index(const UpstreamFault& fault, std::size_t pieces_to_send);

class FaultPlanner {
 public:
  // Fails (leaving the planner empty) on a plan that cannot be followed.
  [[nodiscard]] Result<void> configure(const FaultInjectionOptions& options);

  bool empty() const { return faults_.empty(); }
  // The fault for the next request that consults the plan; thread-safe.
  const UpstreamFault& next() {
    return at(next_ordinal_.fetch_add(1, std::memory_order_relaxed));
  }
  const UpstreamFault& at(std::uint64_t ordinal) const;

 private:
  FaultPlanOrder order_ = FaultPlanOrder::seeded_random;
  std::uint64_t seed_ = 0;
  std::vector<UpstreamFault> faults_;
  std::vector<std::uint64_t> cumulative_weights_;  // seeded_random: upper bounds of each entry
  std::vector<std::uint32_t> interleaved_slots_;   // interleaved: entry index per slot
  std::atomic<std::uint64_t> next_ordinal_{0};
};

class FaultCounter {
 public:
  void count(const UpstreamFault& fault);
  std::map<std::string, std::uint64_t> snapshot() const;

 private:
  static constexpr std::size_t kKinds = static_cast<std::size_t>(UpstreamFaultKind::slow) + 1;
  static constexpr std::size_t kStatuses = 600;
  std::array<std::atomic<std::uint64_t>, kKinds> by_kind_{};
  std::array<std::atomic<std::uint64_t>, kStatuses> by_status_{};
};

}  // namespace cascade::simulator
