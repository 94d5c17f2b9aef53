#include "bench/pipeline/scenario.h"

namespace cascade::bench {
namespace {

int occurrences(std::string_view text, std::string_view needle) {
  int count = 0;
  for (auto at = text.find(needle); at != std::string_view::npos; at = text.find(needle, at + needle.size())) ++count;
  return count;
}

}  // namespace

std::optional<Scenario> parse_scenario(std::string_view text) {
  for (Scenario s : {Scenario::baseline, Scenario::retry, Scenario::fallback, Scenario::slow_streams}) {
    if (text == to_string(s)) return s;
  }
  return std::nullopt;
}

std::string_view to_string(Scenario scenario) {
  switch (scenario) {
    case Scenario::baseline: return "baseline";
    case Scenario::retry: return "retry";
    case Scenario::fallback: return "fallback";
    case Scenario::slow_streams: return "slow-streams";
  }
  return "baseline";
}

WorkerCounters snapshot(const WorkerStats& stats) {
  WorkerCounters c;
  c.consumed = stats.consumed.load();
  c.completed = stats.completed.load();
  c.failed = stats.failed.load();
  c.provider_calls = stats.provider_calls.load();
  c.retries = stats.retries.load();
  c.fallbacks = stats.fallbacks.load();
  c.breaker_rejections = stats.breaker_rejections.load();
  c.timeouts = stats.timeouts.load();
  c.pauses = stats.pauses.load();
  return c;
}

WorkerCounters operator-(const WorkerCounters& after, const WorkerCounters& before) {
  WorkerCounters d;
  d.consumed = after.consumed - before.consumed;
  d.completed = after.completed - before.completed;
  d.failed = after.failed - before.failed;
  d.provider_calls = after.provider_calls - before.provider_calls;
  d.retries = after.retries - before.retries;
  d.fallbacks = after.fallbacks - before.fallbacks;
  d.breaker_rejections = after.breaker_rejections - before.breaker_rejections;
  d.timeouts = after.timeouts - before.timeouts;
  d.pauses = after.pauses - before.pauses;
  return d;
}

AttemptOutcomes attempt_outcomes(std::string_view route_reason) {
  // Only the attempt notes after " | " carry verdicts; the heuristic part
  // before it never contains " -> ".
  const auto notes_at = route_reason.find(" | ");
  if (notes_at == std::string_view::npos) return {};
  const auto notes = route_reason.substr(notes_at);
  return {occurrences(notes, " -> retry"), occurrences(notes, " -> fall_back")};
}

std::string format_histogram(const std::map<int, std::size_t>& histogram) {
  std::string out;
  for (const auto& [value, count] : histogram) {
    if (!out.empty()) out += ", ";
    out += std::to_string(value) + ": " + std::to_string(count);
  }
  return out.empty() ? "none" : out;
}

std::map<std::string, std::uint64_t> difference(const std::map<std::string, std::uint64_t>& after,
                                                 const std::map<std::string, std::uint64_t>& before) {
  std::map<std::string, std::uint64_t> out;
  for (const auto& [label, count] : after) {
    const auto it = before.find(label);
    const std::uint64_t gained = count - (it == before.end() ? 0 : it->second);
    if (gained > 0) out[label] = gained;
  }
  return out;
}

std::string format_counts(const std::map<std::string, std::uint64_t>& counts) {
  std::string out;
  for (const auto& [label, count] : counts) {
    if (!out.empty()) out += ", ";
    out += label + " " + std::to_string(count);
  }
  return out.empty() ? "none" : out;
}

}  // namespace cascade::bench
