// AnswerVerifier: the model file `cascade route-train --verifier` writes,
// scored the way training laid out its columns (router/training.cpp,
// featurize_answers).
#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "router/answer_facts.h"
#include "router/features.h"
#include "router/model_format.h"
#include "router/route_policies.h"
#include "router/router.h"

namespace cascade {

using route_features::FeatureExtractor;
using route_features::FeatureSpec;
using route_features::PromptFeatures;

struct AnswerVerifier::Weights {
  explicit Weights(const FeatureSpec& spec) : extractor(spec) {}
  FeatureExtractor extractor;
  std::vector<float> hashed;  // [prompt | answer], hashed_size() each
  std::vector<float> dense;   // [prompt dense | answer dense | answer_features]
  double bias = 0;
};

AnswerVerifier::AnswerVerifier(std::shared_ptr<const Weights> weights, std::string description)
    : weights_(std::move(weights)), description_(std::move(description)) {}

Result<std::shared_ptr<const AnswerVerifier>> AnswerVerifier::parse(std::string_view json_text) {
  const auto model = nlohmann::json::parse(json_text, nullptr, false);
  if (model.is_discarded() || !model.is_object())
    return fail(ErrorCode::invalid_request, "verifier model: not a JSON object");
  if (model.value("format", std::string()) != route_model_format::kFormat || model.value("scorer", std::string()) != "verifier")
    return fail(ErrorCode::invalid_request, "verifier model: needs format \"" + std::string(route_model_format::kFormat) +
                                                "\" and scorer \"verifier\" (cascade route-train --verifier)");
  auto spec = FeatureSpec::from_json(model.value("features", nlohmann::json()));
  if (!spec) return std::unexpected(spec.error());
  auto weights = std::make_shared<Weights>(*spec);
  const std::size_t h = weights->extractor.hashed_size();
  // The prompt's dense features and the answer's, then the answer facts.
  std::vector<std::string> expected;
  for (const std::string_view part : {"prompt:", "answer:"})
    for (const auto& name : weights->extractor.dense_names()) expected.push_back(std::string(part) + name);
  for (const auto& [name, value] : answer_features("", "")) expected.push_back("answer_check:" + name);
  const auto names = model.find("dense_names");
  const bool named = names != model.end();
  if (named && (!names->is_array() || !std::all_of(names->begin(), names->end(), [](const auto& n) { return n.is_string(); })))
    return fail(ErrorCode::invalid_request, "verifier model: 'dense_names' must be an array of strings");
  auto linear =
      route_model_format::read_linear_weights(model, named ? names->size() : expected.size(), 2 * h, "verifier model");
  if (!linear) return std::unexpected(linear.error());
  if (!named) {
    weights->dense = std::move(linear->dense);
  } else {
    // By name, so that a file trained before an answer fact was added still
    // loads: the new fact gets weight 0, which is what that model gave it.
    std::unordered_map<std::string, float> by_name;
    for (std::size_t j = 0; j < names->size(); ++j) by_name[names->at(j).get<std::string>()] = linear->dense[j];
    weights->dense.assign(expected.size(), 0.0f);
    for (std::size_t j = 0; j < expected.size(); ++j) {
      if (const auto found = by_name.find(expected[j]); found != by_name.end()) {
        weights->dense[j] = found->second;
        by_name.erase(found);
      } else if (!expected[j].starts_with("answer_check:")) {
        return fail(ErrorCode::invalid_request, "verifier model: no weight for feature '" + expected[j] + "'");
      }
    }
    if (!by_name.empty())
      return fail(ErrorCode::invalid_request, "verifier model: unknown feature '" + by_name.begin()->first +
                                                  "' (written by a newer Cascade?)");
  }
  weights->hashed = std::move(linear->hashed);
  weights->bias = linear->bias;
  std::string description = model.value("weak", std::string("?")) + " answers vs " + model.value("strong", std::string("?"));
  if (const auto t = model.find("trained"); t != model.end() && t->is_object() && t->contains("rows"))
    description += ", " + t->at("rows").dump() + " training rows";
  return std::make_shared<const AnswerVerifier>(std::move(weights), std::move(description));
}

Result<std::shared_ptr<const AnswerVerifier>> AnswerVerifier::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorCode::invalid_request, "verifier model: cannot open '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  auto verifier = parse(text.str());
  if (!verifier) return fail(ErrorCode::invalid_request, verifier.error().message + " ('" + path + "')");
  return verifier;
}

double AnswerVerifier::p_ok(std::string_view prompt, std::string_view answer) const {
  const Weights& w = *weights_;
  const std::size_t h = w.extractor.hashed_size();
  const std::size_t d = w.extractor.dense_size();
  thread_local PromptFeatures f;
  double z = w.bias;
  for (int part = 0; part < 2; ++part) {
    w.extractor.extract(user_messages(part == 0 ? prompt : answer), f);
    for (const auto& hf : f.hashed) z += static_cast<double>(w.hashed[hf.index + part * h]) * hf.value;
    for (std::size_t j = 0; j < f.dense.size(); ++j) z += static_cast<double>(w.dense[part * d + j]) * f.dense[j];
  }
  const auto facts = answer_features(prompt, answer);
  for (std::size_t j = 0; j < facts.size(); ++j) z += static_cast<double>(w.dense[2 * d + j]) * facts[j].second;
  return z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z));
}

double AnswerVerifier::p_ok_for_messages(const nlohmann::json& messages, std::string_view answer) const {
  std::string scratch;
  return p_ok(last_user_text(messages, scratch), answer);
}

std::optional<std::string> final_answer_in_conversation(const nlohmann::json& messages, std::string_view response) {
  std::string scratch;
  return final_answer(last_user_text(messages, scratch), response);
}

}  // namespace cascade
