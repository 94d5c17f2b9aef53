#pragma once
// Single flight: identical requests in flight at the same time (same request
// fingerprint, events/request_fingerprint.h) make one upstream call. The first
// leads; the others follow it and get its answer as a cache hit.
//
// The first leads and goes on as any request; the others follow it: no
// admission (they reserve no tenant tokens), no router call, no provider
// call. They get the leader's deltas as their own chunks and, when it ends,
// its answer (an exact cache hit that cost nothing) or its error. One table
// per event loop is enough: prompt events are keyed by prompt_event_key,
// which identical requests share, so they land on one partition, and a
// partition has one owner in the group, hence one loop. Events produced with
// another key (an app keying by tenant only spreads less), or moved by a
// rebalance, at worst miss a flight and call upstream themselves.
//
// Threading: one event loop's thread.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "catalog/catalog.h"
#include "consumers/worker/stage_context.h"
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

// The single-flight stage of one event loop: which request leads which
// flight, and what its followers are sent while it runs.
class SingleFlight {
 public:
  explicit SingleFlight(StageContext& context) : ctx_(context) {}

  // True when `r` now follows an identical request in flight (state
  // following); otherwise it leads a new flight, unless it has no
  // fingerprint (cache off: "off always calls a model"), and goes on.
  bool follow_or_lead(Request& r);
  // A piece of the leader's answer went out: its followers get it too.
  void pass_to_followers(const Request& leader, std::string_view text);
  // Sends one follower a piece of its leader's answer as its own chunk.
  void pass_delta(Request& follower, const Request& leader, std::string_view text);
  // The leader ends: its flight closes (later identical requests call again
  // or hit the cache) and its followers still in flight are handed over.
  std::vector<Request*> end_flight(Request& leader);
  // A follower stops following (it was cancelled): its leader sends it
  // nothing more and does not hand it over when it ends.
  void leave(Request& follower);
  std::size_t open_flights() const { return table_.size(); }
  void clear() { table_.clear(); }

 private:
  StageContext& ctx_;
  FlightTable table_;
};

}  // namespace cascade
