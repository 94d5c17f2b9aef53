#include "cache/tools/hit_training.h"

#include <xgboost/c_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <unordered_map>

#include "cache/tools/same_question.h"
#include "core/hash.h"

namespace cascade {

namespace {

using nlohmann::json;

enum class Split { train, calibration, test };

// Splits a file's pairs by connected component of the texts they join (label
// 0 or 1), so a question never sits on two sides.
std::vector<Split> split_pairs(const std::vector<ParaphrasePair>& pairs, const HitTrainingOptions& o) {
  std::unordered_map<std::string, std::size_t> ids;
  std::vector<std::size_t> parent;
  auto id = [&](std::string text) {
    const auto [it, inserted] = ids.emplace(std::move(text), parent.size());
    if (inserted) parent.push_back(parent.size());
    return it->second;
  };
  auto root = [&](std::size_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  std::vector<std::pair<std::size_t, std::size_t>> ends;
  for (const auto& p : pairs) {
    const std::size_t a = id(normalize_text(p.text_a));
    const std::size_t b = id(normalize_text(p.text_b));
    parent[root(a)] = root(b);
    ends.emplace_back(a, b);
  }
  // A component's draw is keyed by its smallest text: the split does not
  // depend on the order of the file.
  std::vector<const std::string*> smallest(parent.size(), nullptr);
  for (const auto& [text, i] : ids) {
    const std::size_t r = root(i);
    if (!smallest[r] || text < *smallest[r]) smallest[r] = &text;
  }
  std::vector<Split> out;
  for (const auto& [a, b] : ends) {
    const std::string& key = *smallest[root(a)];
    const double u = static_cast<double>(
                         SplitMix64(fnv1a_extend(kFnv1aOffsetBasis ^ o.seed, key)).next() >> 11) * 0x1.0p-53;
    out.push_back(u < o.train_fraction                          ? Split::train
                  : u < o.train_fraction + o.calibration_fraction ? Split::calibration
                                                                  : Split::test);
  }
  return out;
}

struct Rows {
  std::vector<float> features;  // row-major, kPairFeatureCount per row
  std::vector<float> labels;
  std::set<std::pair<std::string, std::string>> seen;  // (query, candidate) normalized
  std::size_t vetoed = 0;

  void add(const HitVerifier& vetoes, const std::string& query, const std::string& candidate, bool same) {
    if (!seen.emplace(normalize_text(query), normalize_text(candidate)).second) return;
    if (!vetoes.verify(query, candidate).accepted) {
      ++vetoed;
      return;
    }
    const PairFeatures f = pair_features(query, candidate);
    features.insert(features.end(), f.begin(), f.end());
    labels.push_back(same ? 1.0f : 0.0f);
  }
};

// The training rows of one file's training split: its labelled pairs, then
// each query's nearest stored texts as the cache would retrieve them.
Result<void> add_training_rows(const std::vector<ParaphrasePair>& pairs, const HitVerifier& vetoes,
                               const HitTrainingOptions& o, Rows& rows) {
  SameQuestion same_question(pairs);
  if (o.labelled_rows) {
    for (const auto& p : pairs) rows.add(vetoes, p.text_b, p.text_a, p.label == 1);
  }

  BuiltinEmbedder embedder;
  SemanticIndex index(SemanticIndexOptions{.dimension = embedder.dimension()});
  // Every text of the split is stored and looked up (its own entry left
  // out): twice the queries of the pairs alone, from the same distribution.
  std::vector<std::string> stored;
  std::unordered_map<std::string, std::size_t> entry_of;
  std::vector<float> vector(embedder.dimension());
  for (const auto& p : pairs) {
    for (const std::string* text : {&p.text_a, &p.text_b}) {
      std::string normalized = normalize_text(*text);
      if (entry_of.contains(normalized)) continue;
      embedder.embed_into(normalized, vector);
      // A text with nothing to embed cannot be stored (as in cache-eval).
      if (!index.add("train", stored.size(), vector)) continue;
      entry_of.emplace(std::move(normalized), stored.size());
      stored.push_back(*text);
    }
  }
  for (std::size_t q = 0; q < stored.size(); ++q) {
    const std::string query = normalize_text(stored[q]);
    embedder.embed_into(query, vector);
    for (const Neighbor& n : index.search("train", vector, o.neighbours + 1)) {
      if (n.entry_id == q) continue;
      if (n.similarity < o.candidate_floor) break;
      const std::string& candidate = stored[n.entry_id];
      rows.add(vetoes, stored[q], candidate, same_question.same(normalize_text(candidate), query));
    }
  }
  return {};
}

Result<void> xgb(int status, std::string_view what) {
  if (status == 0) return {};
  return fail(ErrorCode::internal, std::string("XGBoost ") + std::string(what) + ": " + XGBGetLastError());
}

// The trees of an XGBoost JSON model in the form HitModel reads.
Result<json> convert_trees(const std::string& xgboost_json, const std::vector<std::string>& vetoes) {
  const json model = json::parse(xgboost_json, nullptr, false);
  if (!model.is_object()) return fail(ErrorCode::internal, "XGBoost saved an unreadable model");
  const json& learner = model["learner"];
  const double base_score = std::stod(learner["learner_model_param"]["base_score"].get<std::string>());
  json out = {{"format", "cascade-hit-model/1"},
              {"features", json::array()},
              {"base_margin", std::log(base_score / (1 - base_score))},
              {"vetoes", vetoes},
              {"trees", json::array()}};
  for (const std::string_view name : pair_feature_names()) out["features"].push_back(name);
  for (const json& tree : learner["gradient_booster"]["model"]["trees"]) {
    json t = {{"left", json::array()}, {"right", json::array()}, {"feature", json::array()}, {"value", json::array()}};
    const auto& left = tree["left_children"];
    for (std::size_t i = 0; i < left.size(); ++i) {
      const bool leaf = left[i].get<int>() == -1;
      t["left"].push_back(leaf ? 0 : left[i].get<int>());
      t["right"].push_back(leaf ? 0 : tree["right_children"][i].get<int>());
      t["feature"].push_back(leaf ? -1 : tree["split_indices"][i].get<int>());
      t["value"].push_back(tree["split_conditions"][i].get<float>());
    }
    out["trees"].push_back(std::move(t));
  }
  return out;
}

Result<std::string> train_trees(const Rows& rows, const HitTrainingOptions& o, std::vector<float>& reference) {
  const auto n = static_cast<bst_ulong>(rows.labels.size());
  DMatrixHandle matrix = nullptr;
  if (auto ok = xgb(XGDMatrixCreateFromMat(rows.features.data(), n, kPairFeatureCount, std::nanf(""), &matrix),
                    "matrix");
      !ok) {
    return std::unexpected(ok.error());
  }
  BoosterHandle booster = nullptr;
  auto cleanup = [&] {
    if (booster) XGBoosterFree(booster);
    XGDMatrixFree(matrix);
  };
  auto run = [&]() -> Result<std::string> {
    if (auto ok = xgb(XGDMatrixSetFloatInfo(matrix, "label", rows.labels.data(), n), "labels"); !ok) {
      return std::unexpected(ok.error());
    }
    if (auto ok = xgb(XGBoosterCreate(&matrix, 1, &booster), "booster"); !ok) return std::unexpected(ok.error());
    const std::vector<std::pair<std::string, std::string>> params = {
        {"objective", "binary:logistic"},
        {"tree_method", "exact"},  // deterministic on any thread count
        {"max_depth", std::to_string(o.max_depth)},
        {"eta", std::to_string(o.eta)},
        {"min_child_weight", "2"},
        {"seed", std::to_string(o.seed)},
        {"nthread", std::to_string(o.threads)},
        {"verbosity", "0"},
    };
    for (const auto& [key, value] : params) {
      if (auto ok = xgb(XGBoosterSetParam(booster, key.c_str(), value.c_str()), "parameter " + key); !ok) {
        return std::unexpected(ok.error());
      }
    }
    for (int round = 0; round < o.rounds; ++round) {
      if (auto ok = xgb(XGBoosterUpdateOneIter(booster, round, matrix), "training"); !ok) {
        return std::unexpected(ok.error());
      }
    }
    // XGBoost's own probabilities of the training rows: the converted trees must give the same.
    bst_ulong predicted = 0;
    const float* probabilities = nullptr;
    if (auto ok = xgb(XGBoosterPredict(booster, matrix, 0, 0, 0, &predicted, &probabilities), "predict"); !ok) {
      return std::unexpected(ok.error());
    }
    reference.assign(probabilities, probabilities + predicted);
    bst_ulong length = 0;
    const char* buffer = nullptr;
    if (auto ok = xgb(XGBoosterSaveModelToBuffer(booster, R"({"format": "json"})", &length, &buffer), "save"); !ok) {
      return std::unexpected(ok.error());
    }
    return std::string(buffer, length);
  };
  auto out = run();
  cleanup();
  return out;
}

std::vector<ParaphrasePair> pick(const std::vector<ParaphrasePair>& pairs, const std::vector<Split>& splits, Split s) {
  std::vector<ParaphrasePair> out;
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    if (splits[i] == s) out.push_back(pairs[i]);
  }
  return out;
}

// For each target, the least cutoff whose hits reach it (at least min_hits
// of them), scanning cutoffs from the most confident hit down.
std::vector<HitOperatingPoint> choose_points(const CacheEvalReport& calibration, const HitTrainingOptions& o) {
  std::vector<const CacheEvalOutcome*> hits;
  for (const auto& outcome : calibration.outcomes) {
    if (outcome.hit && outcome.similarity >= o.similarity_threshold) hits.push_back(&outcome);
  }
  std::sort(hits.begin(), hits.end(), [](auto* a, auto* b) { return a->probability > b->probability; });
  std::vector<HitOperatingPoint> points;
  for (const double target : o.target_precisions) {
    std::optional<HitOperatingPoint> best;
    std::size_t correct = 0;
    for (std::size_t k = 0; k < hits.size(); ++k) {
      correct += hits[k]->correct;
      // Cut only between distinct probabilities.
      if (k + 1 < hits.size() && hits[k + 1]->probability == hits[k]->probability) continue;
      const double precision = static_cast<double>(correct) / static_cast<double>(k + 1);
      if (k + 1 >= o.min_hits && precision >= target) {
        best = HitOperatingPoint{target, hits[k]->probability, precision,
                                 static_cast<double>(correct) / std::max<std::size_t>(1, calibration.answerable_pairs)};
      }
    }
    if (best) points.push_back(*best);
  }
  return points;
}

json points_json(const std::vector<HitOperatingPoint>& points) {
  json out = json::array();
  for (const auto& p : points) {
    out.push_back({{"target_precision", p.target_precision},
                   {"min_probability", p.min_probability},
                   {"precision", std::round(p.precision * 1e4) / 1e4},
                   {"recall", std::round(p.recall * 1e4) / 1e4}});
  }
  return out;
}

std::string utc_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

}  // namespace

Result<HitTrainingReport> train_hit_model(const std::vector<NamedPairs>& sets, const HitTrainingOptions& o) {
  if (sets.empty()) return fail(ErrorCode::invalid_request, "cache-train: no pair files");
  if (!(o.train_fraction > 0 && o.calibration_fraction > 0 && o.train_fraction + o.calibration_fraction < 1)) {
    return fail(ErrorCode::invalid_request, "cache-train: the train and calibration fractions must leave a test split");
  }
  if (o.rounds < 1 || o.max_depth < 1 || !(o.eta > 0) || o.neighbours < 1) {
    return fail(ErrorCode::invalid_request, "cache-train: rounds, max_depth, eta and neighbours must be positive");
  }
  auto veto_rules = veto_options(o.vetoes);
  if (!veto_rules) return fail(ErrorCode::invalid_request, "cache-train: " + veto_rules.error().message);
  const HitVerifier vetoes(*veto_rules);

  HitTrainingReport report;
  Rows rows;
  std::vector<std::vector<Split>> splits;
  const NamedPairs* calibrate = &sets.front();
  for (const auto& set : sets) {
    if (set.name == o.calibrate_on) calibrate = &set;
    splits.push_back(split_pairs(set.pairs, o));
    if (auto ok = add_training_rows(pick(set.pairs, splits.back(), Split::train), vetoes, o, rows); !ok) {
      return std::unexpected(ok.error());
    }
  }
  if (!o.calibrate_on.empty() && calibrate->name != o.calibrate_on) {
    return fail(ErrorCode::invalid_request, "cache-train: no pair file named " + o.calibrate_on);
  }
  report.training_rows = rows.labels.size();
  report.training_positives = static_cast<std::size_t>(std::count(rows.labels.begin(), rows.labels.end(), 1.0f));
  report.vetoed_rows = rows.vetoed;
  if (report.training_positives == 0 || report.training_positives == report.training_rows) {
    return fail(ErrorCode::invalid_request, "cache-train: the training split needs pairs of both labels");
  }

  std::vector<float> reference;
  auto trained = train_trees(rows, o, reference);
  if (!trained) return std::unexpected(trained.error());
  auto model = convert_trees(*trained, o.vetoes);
  if (!model) return std::unexpected(model.error());
  (*model)["trained_at"] = utc_now();
  json trained_on = json::array();
  for (const auto& set : sets) trained_on.push_back({{"name", set.name}, {"pairs", set.pairs.size()}});
  (*model)["trained_on"] = trained_on;
  (*model)["similarity_threshold"] = o.similarity_threshold;

  // Calibrate: the cache as cache-eval runs it, every hit kept with its probability.
  (*model)["operating_points"] = json::array({{{"target_precision", 1.0}, {"min_probability", 0.0}}});
  (*model)["default_target_precision"] = 1.0;
  auto draft = HitModel::parse(model->dump());
  if (!draft) return std::unexpected(draft.error());
  for (std::size_t r = 0; r < reference.size(); ++r) {
    PairFeatures f;
    std::copy_n(rows.features.begin() + static_cast<std::ptrdiff_t>(r * kPairFeatureCount), kPairFeatureCount, f.begin());
    const double mine = (*draft)->probability(f);
    if (std::abs(mine - reference[r]) > 1e-4) {
      return fail(ErrorCode::internal, "cache-train: the converted trees give " + std::to_string(mine) + " for row " +
                                           std::to_string(r) + ", XGBoost " + std::to_string(reference[r]));
    }
  }
  BuiltinEmbedder embedder;
  CacheEvalOptions eval;
  eval.thresholds = {o.similarity_threshold};
  eval.tenant.model = *draft;
  eval.tenant.min_probability = 0;
  const std::size_t calibrate_index = static_cast<std::size_t>(calibrate - sets.data());
  auto calibration = run_cache_eval(pick(calibrate->pairs, splits[calibrate_index], Split::calibration), embedder, eval);
  if (!calibration) return std::unexpected(calibration.error());
  report.points = choose_points(*calibration, o);
  (*model)["operating_points"] = points_json(report.points);
  (*model)["default_target_precision"] = o.default_target_precision;
  report.model_json = model->dump();
  auto final_model = HitModel::parse(report.model_json);
  if (!final_model) {
    return fail(ErrorCode::invalid_request, "cache-train: no cutoff reaches precision " +
                                                std::to_string(o.default_target_precision) + " on the calibration split");
  }

  // The test splits, at the default operating point and with the rules.
  for (std::size_t s = 0; s < sets.size(); ++s) {
    HitSetFigures figures;
    figures.set = sets[s].name;
    for (const Split split : splits[s]) {
      figures.train_pairs += split == Split::train;
      figures.calibration_pairs += split == Split::calibration;
      figures.test_pairs += split == Split::test;
    }
    NamedPairs test{sets[s].name, pick(sets[s].pairs, splits[s], Split::test)};
    CacheEvalOptions learned = eval;
    learned.tenant.model = *final_model;
    learned.tenant.min_probability = *(*final_model)->cutoff_for(o.default_target_precision);
    auto at_default = run_cache_eval(test.pairs, embedder, learned);
    if (!at_default) return std::unexpected(at_default.error());
    figures.test_at_default = at_default->rows.front();
    CacheEvalOptions rules;
    rules.thresholds = {0.90};
    auto with_rules = run_cache_eval(test.pairs, embedder, rules);
    if (!with_rules) return std::unexpected(with_rules.error());
    figures.test_rules = with_rules->rows.front();
    report.sets.push_back(std::move(figures));
    report.test_splits.push_back(std::move(test));
  }
  return report;
}

}  // namespace cascade
