#include "consumers/worker/single_flight.h"

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

CostEvent follower_cost(const FinalReply& follower_final, const PromptEvent& follower,
                        const ModelInfo& baseline, std::int64_t ts_ms, double latency_ms, double ttft_ms) {
  CostEvent cost;
  cost.id = follower.id;
  cost.tenant = follower.tenant;
  cost.ts_ms = ts_ms;
  cost.model = follower_final.model;
  cost.provider = follower_final.provider;
  cost.usage = follower_final.usage;
  cost.cost_usd = 0;
  cost.baseline_model = baseline.id;
  cost.baseline_cost_usd = cost_usd(baseline.price, follower_final.usage);
  cost.savings_usd = cost.baseline_cost_usd;
  cost.cache = CacheOutcome::exact;
  cost.latency_ms = latency_ms;
  cost.ttft_ms = ttft_ms;
  cost.route_reason = follower_final.route.reason;
  return cost;
}

}  // namespace cascade
