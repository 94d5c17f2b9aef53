#pragma once
// Quality event on kafka.topics.quality (default cascade.quality, key =
// tenant): a judge model's 1-5 grade of one answer of a cheaper tier, from
// quality sampling (docs/routing.md, "Quality sampling"; schema in
// docs/events.md, "Quality event"). Extend, never break, as every event.
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace cascade {

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
};

std::string make_quality_event(const QualityEvent& event);
// invalid_request naming the field when the payload is not a quality event
// (missing or mistyped field, score outside 1..5). Unknown fields are ignored.
[[nodiscard]] Result<QualityEvent> parse_quality_event(std::string_view payload);

}  // namespace cascade
