// The learned verifier's tree ensemble (semantic.h, "learned verifier").
#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cache/semantic.h"
#include "core/hash.h"

namespace cascade {

std::string_view builtin_hit_model_json();  // embedded_hit_model.cpp, generated

namespace {

using nlohmann::json;

constexpr std::string_view kFormat = "cascade-hit-model/1";

Result<void> bad(const std::string& what) {
  return fail(ErrorCode::invalid_request, "hit model: " + what);
}

}  // namespace

Result<std::shared_ptr<const HitModel>> HitModel::parse(std::string_view json_text) {
  const json doc = json::parse(json_text, nullptr, false);
  if (!doc.is_object()) return std::unexpected(bad("not a JSON object").error());
  if (doc.value("format", "") != kFormat) {
    return std::unexpected(bad("format is not " + std::string(kFormat)).error());
  }
  std::shared_ptr<HitModel> model(new HitModel());

  // The model's feature order, mapped to this build's by name.
  std::vector<std::uint16_t> feature_index;
  const auto names = pair_feature_names();
  for (const json& name : doc.value("features", json::array())) {
    if (!name.is_string()) return std::unexpected(bad("features must be names").error());
    const auto it = std::find(names.begin(), names.end(), name.get<std::string>());
    if (it == names.end()) {
      return std::unexpected(bad("feature " + name.get<std::string>() + " is not computed by this build").error());
    }
    feature_index.push_back(static_cast<std::uint16_t>(it - names.begin()));
  }
  if (!doc.contains("base_margin") || !doc["base_margin"].is_number()) {
    return std::unexpected(bad("base_margin is missing").error());
  }
  model->base_margin_ = doc["base_margin"].get<double>();

  const json trees = doc.value("trees", json::array());
  if (!trees.is_array() || trees.empty()) return std::unexpected(bad("no trees").error());
  for (std::size_t t = 0; t < trees.size(); ++t) {
    const json& tree = trees[t];
    const std::string where = "tree " + std::to_string(t) + ": ";
    if (!tree.is_object()) return std::unexpected(bad(where + "not an object").error());
    const json left = tree.value("left", json::array());
    const json right = tree.value("right", json::array());
    const json feature = tree.value("feature", json::array());
    const json value = tree.value("value", json::array());
    const std::size_t n = left.size();
    if (n == 0 || right.size() != n || feature.size() != n || value.size() != n) {
      return std::unexpected(bad(where + "left, right, feature and value need one entry per node").error());
    }
    const auto offset = static_cast<std::uint32_t>(model->nodes_.size());
    model->roots_.push_back(offset);
    for (std::size_t i = 0; i < n; ++i) {
      if (!left[i].is_number_integer() || !right[i].is_number_integer() || !feature[i].is_number_integer() ||
          !value[i].is_number()) {
        return std::unexpected(bad(where + "node " + std::to_string(i) + " is malformed").error());
      }
      Node node;
      node.value = value[i].get<float>();
      const auto f = feature[i].get<std::int64_t>();
      if (f >= 0) {
        const auto l = left[i].get<std::int64_t>();
        const auto r = right[i].get<std::int64_t>();
        if (static_cast<std::size_t>(f) >= feature_index.size() || l < 0 || r < 0 ||
            l >= static_cast<std::int64_t>(n) || r >= static_cast<std::int64_t>(n)) {
          return std::unexpected(bad(where + "node " + std::to_string(i) + " points outside its tree").error());
        }
        node.feature = feature_index[static_cast<std::size_t>(f)];
        node.left = offset + static_cast<std::uint32_t>(l);
        node.right = offset + static_cast<std::uint32_t>(r);
      }
      model->nodes_.push_back(node);
    }
    // Every node reachable once from the root: a walk always ends at a leaf.
    std::vector<bool> seen(n, false);
    std::vector<std::uint32_t> pending = {0};
    while (!pending.empty()) {
      const std::uint32_t i = pending.back();
      pending.pop_back();
      if (seen[i]) return std::unexpected(bad(where + "is not a tree (node " + std::to_string(i) + " is reached twice)").error());
      seen[i] = true;
      const Node& node = model->nodes_[offset + i];
      if (node.feature == Node::kLeaf) continue;
      pending.push_back(node.left - offset);
      pending.push_back(node.right - offset);
    }
  }

  // Rules that are certain stay vetoes: the model never sees pairs they reject.
  std::vector<std::string> veto_names;
  for (const json& rule : doc.value("vetoes", json::array())) veto_names.push_back(rule.is_string() ? rule.get<std::string>() : rule.dump());
  auto vetoes = veto_options(veto_names);
  if (!vetoes) return std::unexpected(bad(vetoes.error().message).error());
  model->vetoes_ = *vetoes;

  for (const json& point : doc.value("operating_points", json::array())) {
    HitOperatingPoint p;
    p.target_precision = point.value("target_precision", 0.0);
    p.min_probability = point.value("min_probability", 1.0);
    p.precision = point.value("precision", 0.0);
    p.recall = point.value("recall", 0.0);
    if (!(p.target_precision > 0 && p.target_precision <= 1 && p.min_probability >= 0 && p.min_probability <= 1)) {
      return std::unexpected(bad("an operating point needs target_precision in (0, 1] and min_probability in [0, 1]").error());
    }
    model->points_.push_back(p);
  }
  if (model->points_.empty()) return std::unexpected(bad("no operating_points").error());
  std::sort(model->points_.begin(), model->points_.end(),
            [](const auto& a, const auto& b) { return a.target_precision < b.target_precision; });
  model->default_target_ = doc.value("default_target_precision", model->points_.back().target_precision);
  if (!model->cutoff_for(model->default_target_)) {
    return std::unexpected(bad("default_target_precision has no operating point").error());
  }
  std::ostringstream tag;
  tag << "hit-model:" << doc.value("trained_at", "unknown") << ':' << std::hex
      << (fnv1a_extend(kFnv1aOffsetBasis, json_text) >> 32);
  model->tag_ = tag.str();
  return std::shared_ptr<const HitModel>(std::move(model));
}

Result<std::shared_ptr<const HitModel>> HitModel::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorCode::invalid_request, "hit model: cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  auto model = parse(text.str());
  if (!model) return fail(ErrorCode::invalid_request, path + ": " + model.error().message);
  return model;
}

std::shared_ptr<const HitModel> HitModel::builtin() {
  // Parsed once; the build checked that the shipped file parses (a test does too).
  static const std::shared_ptr<const HitModel> model = [] {
    auto parsed = parse(builtin_hit_model_json());
    return parsed ? *parsed : std::shared_ptr<const HitModel>();
  }();
  return model;
}

double HitModel::probability(const PairFeatures& features) const {
  double margin = base_margin_;
  for (const std::uint32_t root : roots_) {
    const Node* node = &nodes_[root];
    while (node->feature != Node::kLeaf) {
      node = &nodes_[features[node->feature] < node->value ? node->left : node->right];
    }
    margin += node->value;
  }
  return 1.0 / (1.0 + std::exp(-margin));
}

Result<double> HitModel::cutoff_for(double target_precision) const {
  for (const HitOperatingPoint& p : points_) {
    if (p.target_precision >= target_precision - 1e-9) return p.min_probability;
  }
  return fail(ErrorCode::invalid_request,
              "hit model has no operating point for precision " + std::to_string(target_precision));
}

}  // namespace cascade
