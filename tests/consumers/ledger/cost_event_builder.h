#pragma once
// Cost events for the ledger tests, built with only the fields a test cares about.
#include <string>
#include <vector>

#include "events/events.h"

namespace cascade::ledger_test {

struct CostEventSpec {
  std::string id;
  std::string tenant = "acme";
  std::string model = "gpt-4o-mini";
  std::string provider = "openai";
  double cost_usd = 0;
  double baseline_cost_usd = 0;
  CacheOutcome cache = CacheOutcome::miss;
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::int64_t cached_tokens = 0;
  double latency_ms = 0;
  double ttft_ms = 0;
  std::int64_t ts_ms = 1'700'000'000'000;
  std::vector<std::string> tags = {};
  std::int64_t reasoning_tokens = 0;
  std::string policy = {};  // routing policy / experiment arm; "" = none
};

inline CostEvent make_cost(const CostEventSpec& spec) {
  CostEvent event;
  event.id = spec.id;
  event.tenant = spec.tenant;
  event.ts_ms = spec.ts_ms;
  event.tags = spec.tags;
  event.price_version = "litellm-2026-07";
  event.model = spec.model;
  event.provider = spec.provider;
  event.usage = {spec.input_tokens, spec.output_tokens, spec.cached_tokens};
  event.usage.reasoning_tokens = spec.reasoning_tokens;
  event.cost_usd = spec.cost_usd;
  event.baseline_model = "gpt-4o";
  event.baseline_cost_usd = spec.baseline_cost_usd;
  event.savings_usd = spec.baseline_cost_usd - spec.cost_usd;
  event.cache = spec.cache;
  event.latency_ms = spec.latency_ms;
  event.ttft_ms = spec.ttft_ms;
  event.policy = spec.policy;
  return event;
}

}  // namespace cascade::ledger_test
