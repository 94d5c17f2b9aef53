#pragma once
// Quality event on kafka.topics.quality (default cascade.quality, key =
// tenant): a judge model's 1-5 grade of one answer of a cheaper tier, from
// quality sampling (docs/routing.md, "Quality sampling"; schema in
// docs/events.md, "Quality event"). Extend, never break, as every event.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace cascade {

// One answer of a calibration sample and the judge's grade of it.
struct GradedAnswer {
  std::string model;  // catalog id
  std::string tier;
  double score = 0;   // 1..5
  bool served = false;  // the answer the request got (else asked for the sample only)
};

// A calibration sample (quality.calibration_rate; docs/routing.md, "Closed
// loop"): the request's prompt answered by the routed model of each cheaper
// tier and by the reference model (catalog.baseline_model), every answer
// graded by the judge, with what the router saw: the evidence that moves
// the tier cuts of the request's tenant and tuning key.
struct QualityCalibration {
  std::string key;          // tuning key: "<policy label or default>/<preference>"
  double route_score = 0;   // the request's RouteDecision::score (higher = needs a stronger model)
  double small_cut = 0;     // the cuts in force when it was routed
  double medium_cut = 0;
  double configured_small_cut = 0;  // the configuration's cuts
  double configured_medium_cut = 0;
  std::optional<GradedAnswer> small;   // none when the small tier has no usable model
  std::optional<GradedAnswer> medium;
  GradedAnswer reference;
  double answers_cost_usd = 0;  // the answers asked for the sample only (not on the request's cost event)
};

struct QualityEvent {
  std::string id;      // the graded request's id
  std::string tenant;
  std::string model;   // catalog id of the model that answered
  std::string provider;
  std::string tier;    // small | medium | large: the answering model's tier
  std::string judge_model;  // catalog id of the grader
  double score = 0;         // 1..5 (5 = correct, complete and helpful)
  std::int64_t ts_ms = 0;   // when graded, unix epoch milliseconds ("ts")
  std::string route_reason; // the request's route reason, as on its final and cost events
  double judge_cost_usd = 0;  // what the grading call cost (not on the request's cost event)
  double sample_rate = 0;     // quality.sample_rate when sampled: 1/sample_rate answers per event
  // A calibration sample: model, tier and score above are the served
  // answer's, whatever its tier; judge_cost_usd covers every grade.
  std::optional<QualityCalibration> calibration;
};

std::string make_quality_event(const QualityEvent& event);
// invalid_request naming the field when the payload is not a quality event
// (missing or mistyped field, score outside 1..5). Unknown fields are ignored.
[[nodiscard]] Result<QualityEvent> parse_quality_event(std::string_view payload);

}  // namespace cascade
