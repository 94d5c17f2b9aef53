#include "consumers/worker/single_flight.h"

#include <spdlog/spdlog.h>

#include <utility>

namespace cascade {

std::optional<std::uint64_t> FlightTable::leader(const std::string& fingerprint) const {
  auto it = leaders_.find(fingerprint);
  if (it == leaders_.end()) return std::nullopt;
  return it->second;
}

bool FlightTable::open(const std::string& fingerprint, std::uint64_t serial) {
  return leaders_.emplace(fingerprint, serial).second;
}

void FlightTable::close(const std::string& fingerprint, std::uint64_t serial) {
  auto it = leaders_.find(fingerprint);
  if (it != leaders_.end() && it->second == serial) leaders_.erase(it);
}

std::string single_flight_reason(std::string_view leader_id) {
  return "single flight: answer shared with request " + std::string(leader_id);
}

FinalReply follower_final(const FinalReply& leader_final, std::string_view leader_id,
                          const PromptEvent& follower, std::int64_t seq) {
  FinalReply final;
  final.id = follower.id;
  final.seq = seq;
  final.content = leader_final.content;
  final.model = leader_final.model;
  final.provider = leader_final.provider;
  final.finish_reason = leader_final.finish_reason;
  final.tool_calls = leader_final.tool_calls;
  final.usage = leader_final.usage;
  final.cost_usd = 0;
  final.cache = CacheOutcome::exact;
  // Served from the leader's answer: no policy decided this request.
  final.route = RouteInfo{leader_final.route.tier, leader_final.route.score, single_flight_reason(leader_id), {}};
  final.metadata = follower.metadata;
  return final;
}

bool SingleFlight::follow_or_lead(Request& r) {
  if (r.fingerprint.empty()) return false;
  if (auto serial = table_.leader(r.fingerprint)) {
    if (Request* leader = ctx_.requests.find(*serial)) {
      ctx_.stats.single_flight_followers++;
      if (ctx_.metrics) ctx_.metrics->single_flight_join();
      r.flight.duplicate_of_leader = r.event.id == leader->event.id;
      leader->flight.followers.push_back(r.serial);
      enter(r, RequestState::following);
      spdlog::debug("worker: request {} tenant {} follows identical request {} in flight (single flight{})", r.event.id,
                    r.event.tenant, leader->event.id, r.flight.duplicate_of_leader ? ", same id" : "");
      // A streaming leader's content is exactly the deltas it has published:
      // retries and fallbacks happen only before the first one. The follower
      // catches up with them in one chunk; live deltas follow. A cascaded
      // leader holding back its cheap answer has published nothing.
      if (leader->event.stream && !leader->cascade.holding && leader->reply.published_bytes > 0)
        pass_delta(r, *leader, std::string_view(leader->reply.content).substr(0, leader->reply.published_bytes));
      return true;
    }
    table_.close(r.fingerprint, *serial);  // not reached: a flight closes when its leader ends
  }
  table_.open(r.fingerprint, r.serial);
  r.flight.leading = r.fingerprint;
  return false;
}

void SingleFlight::pass_to_followers(const Request& leader, std::string_view text) {
  for (const auto serial : leader.flight.followers) {
    if (Request* f = ctx_.requests.find(serial)) pass_delta(*f, leader, text);
  }
}

void SingleFlight::pass_delta(Request& f, const Request& leader, std::string_view text) {
  // A second delivery of the leader's own request shares its (id, seq)
  // space: it gets the leader's terminal events and no chunks of its own.
  if (f.flight.duplicate_of_leader) return;
  if (!f.first_token) f.first_token = ctx_.host.now();
  if (!f.event.stream) return;
  if (f.reply.next_seq == 0 && leader.attempts.index < leader.attempts.chain.size()) {
    // Named as its final will be: the leader's model, an exact hit.
    const ModelInfo& model = *leader.attempts.chain[leader.attempts.index];
    const std::string reason = single_flight_reason(leader.event.id);
    const ChunkHead head{.model = model.id, .provider = model.provider, .cache = CacheOutcome::exact,
                         .tier = to_string(model.tier), .reason = reason};
    ctx_.publish_chunk(f, text, &head);
    return;
  }
  ctx_.publish_chunk(f, text);
}

void SingleFlight::leave(Request& f) {
  const auto serial = table_.leader(f.fingerprint);
  if (!serial) return;
  if (Request* leader = ctx_.requests.find(*serial)) std::erase(leader->flight.followers, f.serial);
}

std::vector<Request*> SingleFlight::end_flight(Request& leader) {
  if (!leader.flight.leading.empty()) {
    table_.close(leader.flight.leading, leader.serial);
    leader.flight.leading.clear();
  }
  std::vector<Request*> followers;
  for (const auto serial : std::exchange(leader.flight.followers, {})) {
    if (Request* f = ctx_.requests.find(serial)) followers.push_back(f);
  }
  return followers;
}

}  // namespace cascade
