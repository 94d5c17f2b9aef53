#pragma once
// What a run of the pipeline benchmark exercises besides the plain path, and
// how to tell from the worker's own records that it really happened.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "consumers/worker/worker.h"

namespace cascade::bench {

enum class Scenario {
  baseline,      // every attempt succeeds (the benchmark as it always was)
  retry,         // every request's first attempt fails with HTTP 500, the retry succeeds
  fallback,      // the routed model always fails, a configured fallback answers
  slow_streams,  // many long streams at once: memory per in-flight stream
};

std::optional<Scenario> parse_scenario(std::string_view text);
std::string_view to_string(Scenario scenario);

// The worker's counters as plain numbers, so a measured run's share can be
// taken as the difference of two snapshots (WorkerStats counts the warm-up too).
struct WorkerCounters {
  std::uint64_t consumed = 0, completed = 0, failed = 0, provider_calls = 0;
  std::uint64_t retries = 0, fallbacks = 0, breaker_rejections = 0, timeouts = 0, pauses = 0;
};
WorkerCounters snapshot(const WorkerStats& stats);
WorkerCounters operator-(const WorkerCounters& after, const WorkerCounters& before);

// A request's retries and fallbacks after failed attempts, as the worker
// recorded them in the route reason of its cost event
// ("... | <model>: HTTP 500 -> retry; <model>: HTTP 500 -> fall_back").
struct AttemptOutcomes {
  int retries = 0;
  int fallbacks = 0;
};
AttemptOutcomes attempt_outcomes(std::string_view route_reason);

// "0: 12, 1: 4988" for a histogram of per-request counts.
std::string format_histogram(const std::map<int, std::size_t>& histogram);

// Fault counts of an upstream gained between two fault_counts() readings.
std::map<std::string, std::uint64_t> difference(const std::map<std::string, std::uint64_t>& after,
                                                 const std::map<std::string, std::uint64_t>& before);
std::string format_counts(const std::map<std::string, std::uint64_t>& counts);

}  // namespace cascade::bench
