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

json graded_json(const GradedAnswer& a) {
  return {{"model", a.model}, {"tier", a.tier}, {"score", a.score}, {"served", a.served}};
}

bool valid_score(double score) { return score >= 1 && score <= 5; }

std::optional<GradedAnswer> graded_field(const json& object, const char* key, bool required, std::string& problem) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    if (required && problem.empty()) problem = std::string("missing required field 'calibration.") + key + "'";
    return std::nullopt;
  }
  if (!it->is_object()) {
    if (problem.empty()) problem = std::string("'calibration.") + key + "' must be an object";
    return std::nullopt;
  }
  GradedAnswer a;
  a.model = string_field(*it, "model", true, problem);
  a.tier = string_field(*it, "tier", false, problem);
  a.score = number_field(*it, "score", true, problem);
  const auto served = it->find("served");
  a.served = served != it->end() && served->is_boolean() && served->get<bool>();
  if (problem.empty() && !valid_score(a.score)) problem = std::string("'calibration.") + key + ".score' must be within 1..5";
  return a;
}

void read_cuts(const json& object, const char* key, double& small, double& medium, std::string& problem) {
  const auto it = object.find(key);
  if (it == object.end() || !it->is_object()) {
    if (problem.empty()) problem = std::string("'calibration.") + key + "' must be an object";
    return;
  }
  small = number_field(*it, "small", true, problem);
  medium = number_field(*it, "medium", true, problem);
}

std::optional<QualityCalibration> calibration_field(const json& event, std::string& problem) {
  const auto it = event.find("calibration");
  if (it == event.end() || it->is_null()) return std::nullopt;
  if (!it->is_object()) {
    if (problem.empty()) problem = "'calibration' must be an object";
    return std::nullopt;
  }
  QualityCalibration c;
  c.key = string_field(*it, "key", true, problem);
  c.route_score = number_field(*it, "route_score", true, problem);
  read_cuts(*it, "cuts", c.small_cut, c.medium_cut, problem);
  read_cuts(*it, "configured_cuts", c.configured_small_cut, c.configured_medium_cut, problem);
  c.small = graded_field(*it, "small", false, problem);
  c.medium = graded_field(*it, "medium", false, problem);
  if (auto reference = graded_field(*it, "reference", true, problem)) c.reference = *reference;
  c.answers_cost_usd = number_field(*it, "answers_cost_usd", false, problem);
  return c;
}

}  // namespace

std::string make_quality_event(const QualityEvent& event) {
  json out = {
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
  if (const auto& c = event.calibration) {
    json calibration = {
        {"key", c->key},
        {"route_score", c->route_score},
        {"cuts", {{"small", c->small_cut}, {"medium", c->medium_cut}}},
        {"configured_cuts", {{"small", c->configured_small_cut}, {"medium", c->configured_medium_cut}}},
        {"reference", graded_json(c->reference)},
        {"answers_cost_usd", c->answers_cost_usd},
    };
    if (c->small) calibration["small"] = graded_json(*c->small);
    if (c->medium) calibration["medium"] = graded_json(*c->medium);
    out["calibration"] = std::move(calibration);
  }
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
  out.calibration = calibration_field(event, problem);
  if (!problem.empty()) return std::unexpected(bad(problem));
  if (!valid_score(out.score)) return std::unexpected(bad("'score' must be within 1..5"));
  if (ts < 0 || std::trunc(ts) != ts) return std::unexpected(bad("'ts' must be a non-negative integer"));
  out.ts_ms = static_cast<std::int64_t>(ts);
  return out;
}

}  // namespace cascade
