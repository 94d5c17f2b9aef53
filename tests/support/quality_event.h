#pragma once
// A quality event (one judge grade) with only what a test cares about.
#include <string>
#include <utility>

#include "events/quality_event.h"

namespace cascade::testing {

inline QualityEvent graded_event(std::string id, std::string tenant, std::string model, std::string tier,
                                 double score) {
  QualityEvent e;
  e.id = std::move(id);
  e.tenant = std::move(tenant);
  e.model = std::move(model);
  e.provider = "openai";
  e.tier = std::move(tier);
  e.judge_model = "gpt-4o";
  e.score = score;
  e.ts_ms = 1700000000000;
  e.route_reason = "heuristic";
  e.judge_cost_usd = 0.001;
  e.sample_rate = 0.1;
  return e;
}

}  // namespace cascade::testing
