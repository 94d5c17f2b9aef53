#pragma once
// Single flight: identical requests in flight at the same time (same request
// fingerprint, events/request_fingerprint.h) make one upstream call. The first
// leads; the others follow it and get its answer as a cache hit. The worker's
// event loop owns the requests; this holds the table of open flights and the
// replies a follower gets.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "catalog/catalog.h"
#include "events/events.h"

namespace cascade {

// Open flights of one event loop: fingerprint -> serial of the leading request.
class FlightTable {
 public:
  // The request leading the flight of `fingerprint`, if one is open.
  std::optional<std::uint64_t> leader(const std::string& fingerprint) const;
  // Opens a flight led by `serial`; false (and no change) if one is open.
  bool open(const std::string& fingerprint, std::uint64_t serial);
  // Closes the flight of `fingerprint` if `serial` leads it; otherwise a
  // no-op, so a stale close never ends another leader's flight.
  void close(const std::string& fingerprint, std::uint64_t serial);
  std::size_t size() const { return leaders_.size(); }
  void clear() { leaders_.clear(); }

 private:
  std::unordered_map<std::string, std::uint64_t> leaders_;
};

// route.reason of a follower's final and cost events.
std::string single_flight_reason(std::string_view leader_id);

// The final a follower gets: the leader's answer (content, model, provider,
// finish_reason, tool_calls, usage, route tier and score) under the follower's
// own id, seq and metadata, as an exact cache hit that cost nothing.
FinalReply follower_final(const FinalReply& leader_final, std::string_view leader_id,
                          const PromptEvent& follower, std::int64_t seq);

// The follower's cost event: nothing paid, the usage it would have cost on
// the baseline model saved.
CostEvent follower_cost(const FinalReply& follower_final, const PromptEvent& follower,
                        const ModelInfo& baseline, std::int64_t ts_ms, double latency_ms, double ttft_ms);

}  // namespace cascade
