#include "events/quality_event.h"

#include <nlohmann/json.hpp>

#include <cmath>

namespace cascade {
namespace {

using nlohmann::json;

Error bad(const std::string& message) { return Error{ErrorCode::invalid_request, "quality event: " + message}; }

// Required string field; `problem` keeps the first error.
std::string string_field(const json& event, const char* key, bool required, std::string& problem) {
  const auto it = event.find(key);
  if (it == event.end() || it->is_null()) {
    if (required && problem.empty()) problem = std::string("missing required field '") + key + "'";
    return {};
  }
  if (!it->is_string()) {
    if (problem.empty()) problem = std::string("'") + key + "' must be a string";
    return {};
  }
  return it->get<std::string>();
}

double number_field(const json& event, const char* key, bool required, std::string& problem) {
  const auto it = event.find(key);
  if (it == event.end() || it->is_null()) {
    if (required && problem.empty()) problem = std::string("missing required field '") + key + "'";
    return 0;
  }
  if (!it->is_number() || !std::isfinite(it->get<double>())) {
    if (problem.empty()) problem = std::string("'") + key + "' must be a number";
    return 0;
  }
  return it->get<double>();
}

}  // namespace

std::string make_quality_event(const QualityEvent& event) {
  const json out = {
      {"v", 1},
      {"id", event.id},
      {"tenant", event.tenant},
      {"model", event.model},
      {"provider", event.provider},
      {"tier", event.tier},
      {"judge_model", event.judge_model},
      {"score", event.score},
      {"ts", event.ts_ms},
      {"route_reason", event.route_reason},
      {"judge_cost_usd", event.judge_cost_usd},
      {"sample_rate", event.sample_rate},
  };
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<QualityEvent> parse_quality_event(std::string_view payload) {
  const json event = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (event.is_discarded()) return std::unexpected(bad("not valid JSON"));
  if (!event.is_object()) return std::unexpected(bad("must be a JSON object"));
  std::string problem;
  QualityEvent out;
  out.id = string_field(event, "id", true, problem);
  out.tenant = string_field(event, "tenant", true, problem);
  out.model = string_field(event, "model", true, problem);
  out.provider = string_field(event, "provider", false, problem);
  out.tier = string_field(event, "tier", true, problem);
  out.judge_model = string_field(event, "judge_model", true, problem);
  out.score = number_field(event, "score", true, problem);
  const double ts = number_field(event, "ts", true, problem);
  out.route_reason = string_field(event, "route_reason", false, problem);
  out.judge_cost_usd = number_field(event, "judge_cost_usd", false, problem);
  out.sample_rate = number_field(event, "sample_rate", false, problem);
  if (!problem.empty()) return std::unexpected(bad(problem));
  if (!(out.score >= 1 && out.score <= 5)) return std::unexpected(bad("'score' must be within 1..5"));
  if (ts < 0 || std::trunc(ts) != ts) return std::unexpected(bad("'ts' must be a non-negative integer"));
  out.ts_ms = static_cast<std::int64_t>(ts);
  return out;
}

}  // namespace cascade
