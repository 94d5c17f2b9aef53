// The scorers behind RouteScorer: the heuristic complexity score, the learned
// logistic regression and k nearest neighbours, and their model files
// (docs/routing.md, "Model files").
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "router/features.h"
#include "router/model_format.h"
#include "router/router.h"

namespace cascade {

std::string_view to_string(ScorerKind kind) {
  switch (kind) {
    case ScorerKind::heuristic: return "heuristic";
    case ScorerKind::learned: return "learned";
    case ScorerKind::knn: return "knn";
  }
  return "heuristic";
}

std::optional<ScorerKind> parse_scorer_kind(std::string_view name) {
  if (name == "heuristic") return ScorerKind::heuristic;
  if (name == "learned") return ScorerKind::learned;
  if (name == "knn") return ScorerKind::knn;
  return std::nullopt;
}

nlohmann::json user_messages(std::string_view text) {
  return nlohmann::json::array({{{"role", "user"}, {"content", std::string(text)}}});
}

namespace route_model_format {

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int value_of(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}
}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) |
                            (static_cast<unsigned char>(bytes[i + 1]) << 8) | static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (const std::size_t rest = bytes.size() - i; rest > 0) {
    std::uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    int v[4];
    int padding = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text[i + k];
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        v[k] = 0;
        ++padding;
      } else {
        if (padding > 0) return std::nullopt;
        v[k] = value_of(c);
        if (v[k] < 0) return std::nullopt;
      }
    }
    const std::uint32_t bits = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out += static_cast<char>((bits >> 16) & 0xFF);
    if (padding < 2) out += static_cast<char>((bits >> 8) & 0xFF);
    if (padding < 1) out += static_cast<char>(bits & 0xFF);
  }
  return out;
}

std::string encode_floats(std::span<const float> values) {
  std::string bytes(values.size() * 4, '\0');
  for (std::size_t i = 0; i < values.size(); ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, &values[i], 4);
    for (int b = 0; b < 4; ++b) bytes[i * 4 + b] = static_cast<char>((bits >> (8 * b)) & 0xFF);
  }
  return base64_encode(bytes);
}

std::optional<std::vector<float>> decode_floats(std::string_view base64, std::size_t count) {
  const auto bytes = base64_decode(base64);
  if (!bytes || bytes->size() != count * 4) return std::nullopt;
  std::vector<float> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    std::uint32_t bits = 0;
    for (int b = 0; b < 4; ++b) bits |= static_cast<std::uint32_t>(static_cast<unsigned char>((*bytes)[i * 4 + b])) << (8 * b);
    std::memcpy(&out[i], &bits, 4);
    if (!std::isfinite(out[i])) return std::nullopt;
  }
  return out;
}

Result<LinearWeights> read_linear_weights(const nlohmann::json& model, std::size_t dense_count,
                                          std::size_t hashed_count, std::string_view what) {
  const std::string name(what);
  const auto bias = model.find("bias");
  const auto dense = model.find("dense_weights");
  const auto hashed = model.find("hashed_weights_f32");
  if (bias == model.end() || !bias->is_number() || dense == model.end() || !dense->is_array() ||
      hashed == model.end() || !hashed->is_string())
    return fail(ErrorCode::invalid_request,
                name + ": needs 'bias' (number), 'dense_weights' (array) and 'hashed_weights_f32'");
  if (dense->size() != dense_count)
    return fail(ErrorCode::invalid_request, name + ": " + std::to_string(dense->size()) +
                                                " dense weights, the features need " + std::to_string(dense_count));
  LinearWeights out;
  out.bias = bias->get<double>();
  out.dense.reserve(dense_count);
  for (const auto& w : *dense) {
    if (!w.is_number() || !std::isfinite(w.get<double>()))
      return fail(ErrorCode::invalid_request, name + ": dense_weights must be finite numbers");
    out.dense.push_back(w.get<float>());
  }
  auto decoded = decode_floats(hashed->get_ref<const std::string&>(), hashed_count);
  if (!decoded)
    return fail(ErrorCode::invalid_request,
                name + ": hashed_weights_f32 is not " + std::to_string(hashed_count) + " finite base64 float32s");
  out.hashed = std::move(*decoded);
  return out;
}

}  // namespace route_model_format

namespace {

using route_features::FeatureExtractor;
using route_features::FeatureSpec;
using route_features::PromptFeatures;

constexpr std::size_t kMaxDrivers = 8;

double sigmoid(double z) { return z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z)); }

// Largest |contribution| first, at most kMaxDrivers.
void keep_top(std::vector<std::pair<std::string, double>>& drivers) {
  std::ranges::sort(drivers, [](const auto& a, const auto& b) {
    const double ma = std::abs(a.second);
    const double mb = std::abs(b.second);
    return ma != mb ? ma > mb : a.first < b.first;
  });
  if (drivers.size() > kMaxDrivers) drivers.resize(kMaxDrivers);
}

std::string describe(const nlohmann::json& model) {
  std::string out = model.value("weak", std::string("?")) + " vs " + model.value("strong", std::string("?"));
  if (const auto t = model.find("trained"); t != model.end() && t->is_object()) {
    if (t->contains("rows")) out += ", " + t->at("rows").dump() + " training rows";
    if (t->contains("sources") && t->at("sources").is_array()) {
      out += " from";
      for (const auto& s : t->at("sources")) out += " " + (s.is_string() ? s.get<std::string>() : s.dump());
    }
  }
  return out;
}

class HeuristicScorer final : public RouteScorer {
 public:
  ScorerKind kind() const override { return ScorerKind::heuristic; }
  RouteScore score(const nlohmann::json& messages, bool) const override { return heuristic_route_score(messages, 0); }
};

class LearnedScorer final : public RouteScorer {
 public:
  LearnedScorer(FeatureSpec spec, std::vector<float> hashed, std::vector<float> dense, double bias,
                std::string description)
      : extractor_(spec),
        hashed_(std::move(hashed)),
        dense_(std::move(dense)),
        bias_(bias),
        description_(std::move(description)) {}

  ScorerKind kind() const override { return ScorerKind::learned; }
  std::string description() const override { return description_; }

  RouteScore score(const nlohmann::json& messages, bool explain) const override {
    thread_local PromptFeatures f;
    extractor_.extract(messages, f, explain);
    double z = bias_;
    for (const auto& h : f.hashed) z += static_cast<double>(hashed_[h.index]) * h.value;
    for (std::size_t j = 0; j < f.dense.size(); ++j) z += static_cast<double>(dense_[j]) * f.dense[j];
    RouteScore out;
    out.p_weak_ok = sigmoid(z);
    if (explain) out.drivers = drivers(f);
    return out;
  }

  std::size_t hashed_size() const { return hashed_.size(); }

 private:
  std::vector<std::pair<std::string, double>> drivers(const PromptFeatures& f) const {
    std::vector<std::pair<std::string, double>> out;
    const double scale = f.hashed_norm > 0 ? 1.0 / f.hashed_norm : 0.0;
    for (const auto& [name, entry] : f.named) {
      const double c = static_cast<double>(hashed_[entry.first]) * entry.second * scale;
      if (c != 0.0) out.emplace_back(name, c);
    }
    const auto& names = extractor_.dense_names();
    std::vector<bool> grouped(names.size(), false);
    for (const auto& group : extractor_.groups()) {
      double c = 0;
      for (std::size_t j = group.first; j < group.last; ++j) {
        c += static_cast<double>(dense_[j]) * f.dense[j];
        grouped[j] = true;
      }
      out.emplace_back(group.name, c);
    }
    for (std::size_t j = 0; j < names.size(); ++j) {
      if (grouped[j]) continue;
      const double c = static_cast<double>(dense_[j]) * f.dense[j];
      if (c != 0.0) out.emplace_back(names[j], c);
    }
    keep_top(out);
    out.emplace_back("bias", bias_);
    return out;
  }

  FeatureExtractor extractor_;
  std::vector<float> hashed_;
  std::vector<float> dense_;
  double bias_;
  std::string description_;
};

class KnnScorer final : public RouteScorer {
 public:
  KnnScorer(std::vector<float> vectors, std::vector<std::uint8_t> labels, std::size_t k, double prior,
            double prior_weight, std::string description)
      : vectors_(std::move(vectors)),
        labels_(std::move(labels)),
        k_(k),
        prior_(prior),
        prior_weight_(prior_weight),
        description_(std::move(description)) {}

  ScorerKind kind() const override { return ScorerKind::knn; }
  std::string description() const override { return description_; }

  RouteScore score(const nlohmann::json& messages, bool explain) const override {
    thread_local std::vector<float> query;
    thread_local std::vector<std::pair<float, std::uint32_t>> heap;  // min-heap of the best k
    const std::size_t dim = embedder_.dimension();
    query.resize(dim);
    embedder_.embed_into(normalize_text(route_features::message_text(messages)), query);
    heap.clear();
    const std::size_t n = labels_.size();
    const auto greater = [](const auto& a, const auto& b) { return a.first > b.first; };
    for (std::size_t i = 0; i < n; ++i) {
      const float s = dot(&vectors_[i * dim], query.data(), dim);
      if (heap.size() < k_) {
        heap.emplace_back(s, static_cast<std::uint32_t>(i));
        std::ranges::push_heap(heap, greater);
      } else if (s > heap.front().first) {
        std::ranges::pop_heap(heap, greater);
        heap.back() = {s, static_cast<std::uint32_t>(i)};
        std::ranges::push_heap(heap, greater);
      }
    }
    double votes = prior_weight_ * prior_;
    double weight = prior_weight_;
    for (const auto& [s, i] : heap) {
      const double w = std::max(0.0f, s);
      votes += w * labels_[i];
      weight += w;
    }
    RouteScore out;
    out.p_weak_ok = weight > 0 ? votes / weight : prior_;
    if (explain) {
      std::ranges::sort_heap(heap, greater);  // most similar first
      char name[96];
      for (std::size_t r = 0; r < heap.size() && r < kMaxDrivers; ++r) {
        const auto [s, i] = heap[r];
        std::snprintf(name, sizeof name, "neighbour #%u (similarity %.2f): %s", i, static_cast<double>(s),
                      labels_[i] ? "weak was as good" : "strong was better");
        out.drivers.emplace_back(name, labels_[i] ? std::max(0.0f, s) : -std::max(0.0f, s));
      }
      char prior_name[64];
      std::snprintf(prior_name, sizeof prior_name, "prior %.2f (weight %.1f)", prior_, prior_weight_);
      out.drivers.emplace_back(prior_name, prior_weight_ * (prior_ - 0.5));
    }
    return out;
  }

 private:
  // Eight independent sums: the compiler keeps them in vector registers
  // without reassociating a single sum (which it may not do for floats).
  static float dot(const float* a, const float* b, std::size_t n) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8)
      for (int k = 0; k < 8; ++k) s[k] += a[i + k] * b[i + k];
    float total = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; ++i) total += a[i] * b[i];
    return total;
  }

  BuiltinEmbedder embedder_;
  std::vector<float> vectors_;  // row-major, one unit vector per training prompt
  std::vector<std::uint8_t> labels_;
  std::size_t k_;
  double prior_;
  double prior_weight_;
  std::string description_;
};

Result<std::shared_ptr<const RouteScorer>> parse_learned(const nlohmann::json& model) {
  auto spec = FeatureSpec::from_json(model.value("features", nlohmann::json()));
  if (!spec) return std::unexpected(spec.error());
  const FeatureExtractor extractor(*spec);
  auto weights = route_model_format::read_linear_weights(model, extractor.dense_size(), extractor.hashed_size(),
                                                         "router model (learned)");
  if (!weights) return std::unexpected(weights.error());
  return std::make_shared<LearnedScorer>(*spec, std::move(weights->hashed), std::move(weights->dense), weights->bias,
                                         describe(model));
}

Result<std::shared_ptr<const RouteScorer>> parse_knn(const nlohmann::json& model) {
  const BuiltinEmbedder embedder;
  const auto embedding = model.find("embedding");
  if (embedding == model.end() || !embedding->is_object() || embedding->value("tag", std::string()) != embedder.tag())
    return fail(ErrorCode::invalid_request, "router model (knn): its vectors are not of the built-in embedder '" +
                                                embedder.tag() + "' (retrain with cascade route-train)");
  const auto labels = model.find("labels");
  const auto vectors = model.find("vectors_f32");
  if (labels == model.end() || !labels->is_string() || vectors == model.end() || !vectors->is_string())
    return fail(ErrorCode::invalid_request, "router model (knn): needs 'labels' and 'vectors_f32' strings");
  std::vector<std::uint8_t> label_values;
  for (const char c : labels->get_ref<const std::string&>()) {
    if (c != '0' && c != '1') return fail(ErrorCode::invalid_request, "router model (knn): labels are '0'/'1'");
    label_values.push_back(c == '1');
  }
  if (label_values.empty()) return fail(ErrorCode::invalid_request, "router model (knn): no training prompts");
  auto vector_values = route_model_format::decode_floats(vectors->get_ref<const std::string&>(),
                                                         label_values.size() * embedder.dimension());
  if (!vector_values)
    return fail(ErrorCode::invalid_request, "router model (knn): vectors_f32 is not one " +
                                                std::to_string(embedder.dimension()) +
                                                "-float vector per label");
  const int k = model.value("k", 0);
  const double prior = model.value("prior", -1.0);
  const double prior_weight = model.value("prior_weight", -1.0);
  if (k < 1 || k > 1000 || !(prior >= 0 && prior <= 1) || !(prior_weight >= 0))
    return fail(ErrorCode::invalid_request,
                "router model (knn): need 1 <= k <= 1000, 0 <= prior <= 1 and prior_weight >= 0");
  return std::make_shared<KnnScorer>(std::move(*vector_values), std::move(label_values),
                                     static_cast<std::size_t>(k), prior, prior_weight, describe(model));
}

}  // namespace

RouteScore heuristic_route_score(const nlohmann::json& messages, std::int64_t input_tokens) {
  ComplexityScore complexity = score_complexity(messages, input_tokens);
  RouteScore out;
  out.p_weak_ok = 1.0 - complexity.score;
  out.drivers = std::move(complexity.features);
  std::erase_if(out.drivers, [](const auto& f) { return f.second == 0.0; });
  keep_top(out.drivers);
  return out;
}

std::shared_ptr<const RouteScorer> make_heuristic_scorer() {
  static const auto scorer = std::make_shared<const HeuristicScorer>();
  return scorer;
}

Result<std::shared_ptr<const RouteScorer>> parse_route_model(std::string_view json_text) {
  const auto model = nlohmann::json::parse(json_text, nullptr, false);
  if (model.is_discarded() || !model.is_object())
    return fail(ErrorCode::invalid_request, "router model: not a JSON object");
  if (model.value("format", std::string()) != route_model_format::kFormat)
    return fail(ErrorCode::invalid_request,
                "router model: 'format' must be \"" + std::string(route_model_format::kFormat) + "\"");
  const auto kind = parse_scorer_kind(model.value("scorer", std::string()));
  if (!kind || *kind == ScorerKind::heuristic)
    return fail(ErrorCode::invalid_request, "router model: 'scorer' must be learned or knn");
  return *kind == ScorerKind::learned ? parse_learned(model) : parse_knn(model);
}

Result<std::shared_ptr<const RouteScorer>> load_route_model(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorCode::invalid_request, "router model: cannot open '" + path + "'");
  std::stringstream text;
  text << in.rdbuf();
  auto scorer = parse_route_model(text.str());
  if (!scorer) return fail(ErrorCode::invalid_request, scorer.error().message + " (" + path + ")");
  return scorer;
}

Result<std::shared_ptr<const RouteScorer>> load_route_scorer(const RouterConfig& config) {
  const auto kind = parse_scorer_kind(config.scorer);
  if (!kind) return fail(ErrorCode::invalid_request, "router.scorer must be heuristic, learned or knn");
  if (*kind == ScorerKind::heuristic) return make_heuristic_scorer();
  if (*kind == ScorerKind::knn && config.model_file.empty())
    return fail(ErrorCode::invalid_request,
                "router.scorer knn needs router.model_file (train one: cascade route-train --router knn)");
  // Every worker loop builds a Router: a model is read and parsed once per process.
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const RouteScorer>> loaded;
  const std::string key = config.scorer + "|" + config.model_file;
  std::lock_guard lock(mutex);
  if (auto it = loaded.find(key); it != loaded.end()) return it->second;
  if (config.model_file.empty() && builtin_learned_model_json().empty())
    return fail(ErrorCode::invalid_request,
                "this build has no built-in learned model (config/router/learned.json was absent): set "
                "router.model_file to one written by cascade route-train");
  auto scorer = config.model_file.empty() ? parse_route_model(builtin_learned_model_json())
                                          : load_route_model(config.model_file);
  if (!scorer) return scorer;
  if ((*scorer)->kind() != *kind)
    return fail(ErrorCode::invalid_request, "router.model_file holds a " + std::string(to_string((*scorer)->kind())) +
                                                " model, router.scorer says " + config.scorer);
  loaded.emplace(key, *scorer);
  return scorer;
}

}  // namespace cascade
