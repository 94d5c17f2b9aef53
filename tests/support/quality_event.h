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

// A calibration sample (docs/routing.md, "Closed loop"): the served answer
// graded `served`, the reference model's answer to the same prompt `reference`.
inline QualityEvent calibration_event(std::string id, std::string tenant, std::string model, std::string tier,
                                      double served, double reference, std::int64_t ts_ms = 1700000000000) {
  QualityEvent e = graded_event(std::move(id), std::move(tenant), std::move(model), std::move(tier), served);
  e.ts_ms = ts_ms;
  QualityCalibration& c = e.calibration.emplace();
  c.key = "default/balanced";
  c.route_score = 0.2;
  c.small_cut = c.configured_small_cut = 0.3;
  c.medium_cut = c.configured_medium_cut = 0.6;
  c.small = GradedAnswer{e.model, e.tier, served, true};
  c.reference = GradedAnswer{"gpt-4o", "large", reference, false};
  c.answers_cost_usd = 0.002;
  return e;
}

}  // namespace cascade::testing
