// Training the learned (logistic regression) and knn scorers. Deterministic:
// the only randomness is the seeded validation split, the optimizer is
// full-batch L-BFGS in a fixed order.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "router/tools/evaluation.h"
#include "router/features.h"
#include "router/model_format.h"

namespace cascade {
namespace {

using route_features::FeatureExtractor;
using route_features::FeatureSpec;
using route_features::PromptFeatures;

const std::vector<double> kDefaultL2 = {1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1};
const std::vector<int> kDefaultK = {5, 10, 20, 50, 100};
// knn: the base rate counts as this many perfectly similar neighbours, so a
// prompt with no similar neighbour gets about the base rate.
constexpr double kKnnPriorWeight = 1.0;

// Training features, rows in CSR form over [hashed | dense] columns.
struct Matrix {
  std::size_t columns = 0;
  std::vector<std::size_t> row_start{0};
  std::vector<std::uint32_t> column;
  std::vector<float> value;
  std::size_t rows() const { return row_start.size() - 1; }
};

Matrix featurize(const std::vector<PairOutcome>& pairs, const FeatureExtractor& extractor, bool source_as_system) {
  Matrix m;
  m.columns = extractor.hashed_size() + extractor.dense_size();
  PromptFeatures f;
  for (const auto& pair : pairs) {
    extractor.extract(pair_messages(pair, source_as_system), f);
    std::ranges::sort(f.hashed, {}, &route_features::HashedFeature::index);
    for (const auto& h : f.hashed) {
      m.column.push_back(h.index);
      m.value.push_back(h.value);
    }
    for (std::size_t j = 0; j < f.dense.size(); ++j) {
      if (f.dense[j] == 0.0f) continue;
      m.column.push_back(static_cast<std::uint32_t>(extractor.hashed_size() + j));
      m.value.push_back(f.dense[j]);
    }
    m.row_start.push_back(m.column.size());
  }
  return m;
}

double sigmoid(double z) { return z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z)); }

// log(1 + e^-m), stable for any margin m.
double log_loss_of_margin(double m) { return m > 0 ? std::log1p(std::exp(-m)) : -m + std::log1p(std::exp(m)); }

// Weights: [columns..., bias]. Mean logistic loss over `rows` + l2/2 |w|^2
// (bias not regularized); writes the gradient.
double objective(const Matrix& x, const std::vector<int>& y, const std::vector<std::size_t>& rows, double l2,
                 const std::vector<double>& w, std::vector<double>& grad) {
  const std::size_t bias = x.columns;
  std::fill(grad.begin(), grad.end(), 0.0);
  double loss = 0;
  const double inv_n = 1.0 / static_cast<double>(rows.size());
  for (const std::size_t r : rows) {
    double z = w[bias];
    for (std::size_t k = x.row_start[r]; k < x.row_start[r + 1]; ++k) z += w[x.column[k]] * x.value[k];
    const double sign = y[r] ? 1.0 : -1.0;
    loss += log_loss_of_margin(sign * z);
    // d/dz of log(1 + e^{-s z}) = -s * sigmoid(-s z)
    const double g = -sign * sigmoid(-sign * z) * inv_n;
    for (std::size_t k = x.row_start[r]; k < x.row_start[r + 1]; ++k) grad[x.column[k]] += g * x.value[k];
    grad[bias] += g;
  }
  loss *= inv_n;
  double reg = 0;
  for (std::size_t j = 0; j < bias; ++j) {
    reg += w[j] * w[j];
    grad[j] += l2 * w[j];
  }
  return loss + 0.5 * l2 * reg;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// L-BFGS (10 corrections) with a backtracking Armijo line search.
std::vector<double> fit(const Matrix& x, const std::vector<int>& y, const std::vector<std::size_t>& rows, double l2,
                        int max_iterations) {
  const std::size_t n = x.columns + 1;
  std::vector<double> w(n, 0.0);
  // Start the bias at the base rate's log-odds.
  double positives = 0;
  for (const std::size_t r : rows) positives += y[r];
  const double rate = std::clamp(positives / static_cast<double>(rows.size()), 1e-3, 1 - 1e-3);
  w[x.columns] = std::log(rate / (1 - rate));

  std::vector<double> grad(n), next_grad(n), direction(n), next(n);
  double f = objective(x, y, rows, l2, w, grad);
  constexpr std::size_t kMemory = 10;
  std::vector<std::vector<double>> s_hist, y_hist;
  std::vector<double> rho_hist;
  for (int iteration = 0; iteration < max_iterations; ++iteration) {
    const double gnorm = std::sqrt(dot(grad, grad));
    if (gnorm < 1e-6) break;
    // Two-loop recursion: direction = -H grad.
    direction = grad;
    std::vector<double> alpha(s_hist.size());
    for (std::size_t i = s_hist.size(); i-- > 0;) {
      alpha[i] = rho_hist[i] * dot(s_hist[i], direction);
      for (std::size_t j = 0; j < n; ++j) direction[j] -= alpha[i] * y_hist[i][j];
    }
    if (!s_hist.empty()) {
      const double gamma = dot(s_hist.back(), y_hist.back()) / dot(y_hist.back(), y_hist.back());
      for (double& d : direction) d *= gamma;
    } else {
      for (double& d : direction) d /= std::max(1.0, gnorm);
    }
    for (std::size_t i = 0; i < s_hist.size(); ++i) {
      const double beta = rho_hist[i] * dot(y_hist[i], direction);
      for (std::size_t j = 0; j < n; ++j) direction[j] += s_hist[i][j] * (alpha[i] - beta);
    }
    for (double& d : direction) d = -d;
    double slope = dot(grad, direction);
    if (slope >= 0) {  // not a descent direction: restart from the gradient
      s_hist.clear();
      y_hist.clear();
      rho_hist.clear();
      for (std::size_t j = 0; j < n; ++j) direction[j] = -grad[j] / std::max(1.0, gnorm);
      slope = dot(grad, direction);
    }
    double step = 1.0;
    double next_f = 0;
    bool accepted = false;
    for (int tries = 0; tries < 40; ++tries) {
      for (std::size_t j = 0; j < n; ++j) next[j] = w[j] + step * direction[j];
      next_f = objective(x, y, rows, l2, next, next_grad);
      if (next_f <= f + 1e-4 * step * slope) {
        accepted = true;
        break;
      }
      step *= 0.5;
    }
    if (!accepted) break;
    std::vector<double> s(n), yv(n);
    for (std::size_t j = 0; j < n; ++j) {
      s[j] = next[j] - w[j];
      yv[j] = next_grad[j] - grad[j];
    }
    const double sy = dot(s, yv);
    if (sy > 1e-12) {
      if (s_hist.size() == kMemory) {
        s_hist.erase(s_hist.begin());
        y_hist.erase(y_hist.begin());
        rho_hist.erase(rho_hist.begin());
      }
      s_hist.push_back(std::move(s));
      y_hist.push_back(std::move(yv));
      rho_hist.push_back(1.0 / sy);
    }
    const double improvement = f - next_f;
    w.swap(next);
    grad.swap(next_grad);
    f = next_f;
    if (improvement < 1e-10 * std::max(1.0, std::abs(f))) break;
  }
  return w;
}

// Area under the ROC curve of scores for label 1 (ties count half).
double auc(const std::vector<double>& scores, const std::vector<int>& labels) {
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::ranges::sort(order, [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
  double positives = 0, negatives = 0, rank_sum = 0;
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j < order.size() && scores[order[j]] == scores[order[i]]) ++j;
    const double mid_rank = (static_cast<double>(i) + static_cast<double>(j) + 1) / 2;  // 1-based average
    for (std::size_t k = i; k < j; ++k) {
      if (labels[order[k]]) {
        positives += 1;
        rank_sum += mid_rank;
      } else {
        negatives += 1;
      }
    }
    i = j;
  }
  if (positives == 0 || negatives == 0) return 0.5;
  return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
}

double mean_log_loss(const std::vector<double>& p, const std::vector<int>& labels) {
  double loss = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const double q = std::clamp(p[i], 1e-9, 1 - 1e-9);
    loss -= labels[i] ? std::log(q) : std::log(1 - q);
  }
  return p.empty() ? 0 : loss / static_cast<double>(p.size());
}

// The validation split of the training rows (seed + 1, so it is not the
// train/test split again).
Split validation_split(const std::vector<PairOutcome>& pairs, const TrainingOptions& options) {
  return split_by_prompt(pairs, 1.0 - options.validation_fraction, options.seed + 1);
}

nlohmann::json trained_info(const std::vector<PairOutcome>& pairs, const TrainingOptions& options) {
  std::size_t positives = 0;
  for (const auto& p : pairs) positives += p.weak_ok();
  return {{"rows", pairs.size()},
          {"weak_ok", positives},
          {"seed", options.seed},
          {"validation_fraction", options.validation_fraction},
          {"sources", options.sources}};
}

Result<void> check_trainable(const std::vector<PairOutcome>& pairs) {
  std::size_t positives = 0;
  for (const auto& p : pairs) positives += p.weak_ok();
  if (pairs.size() < 10) return fail(ErrorCode::invalid_request, "need at least 10 training rows");
  if (positives == 0 || positives == pairs.size())
    return fail(ErrorCode::invalid_request,
                "every training row has the same label (weak as good as strong: " + std::to_string(positives) + " of " +
                    std::to_string(pairs.size()) + "): nothing to learn");
  return {};
}

double margin(const Matrix& x, const std::vector<double>& w, std::size_t r) {
  double z = w[x.columns];
  for (std::size_t k = x.row_start[r]; k < x.row_start[r + 1]; ++k) z += w[x.column[k]] * x.value[k];
  return z;
}

struct Selected {
  std::vector<double> weights;  // fitted on every row with the chosen l2
  double l2 = 0;
  std::vector<ValidationResult> validation;
};

// Each L2 strength fitted on the validation split's training side and scored
// by log-loss on its other side; the best one refitted on every row.
Selected select_and_fit(const Matrix& x, const std::vector<int>& y, const std::vector<PairOutcome>& pairs,
                        const TrainingOptions& options) {
  Selected out;
  const auto& candidates = options.l2_candidates.empty() ? kDefaultL2 : options.l2_candidates;
  const Split validation = validation_split(pairs, options);
  double best_loss = INFINITY;
  out.l2 = candidates.front();
  if (!validation.test.empty() && !validation.train.empty()) {
    for (const double l2 : candidates) {
      const auto w = fit(x, y, validation.train, l2, options.max_iterations);
      std::vector<double> p;
      std::vector<int> labels;
      for (const std::size_t r : validation.test) {
        p.push_back(sigmoid(margin(x, w, r)));
        labels.push_back(y[r]);
      }
      const ValidationResult result{l2, mean_log_loss(p, labels), auc(p, labels)};
      out.validation.push_back(result);
      if (result.log_loss < best_loss) {
        best_loss = result.log_loss;
        out.l2 = l2;
      }
    }
  }
  std::vector<std::size_t> all(pairs.size());
  std::iota(all.begin(), all.end(), 0);
  out.weights = fit(x, y, all, out.l2, options.max_iterations);
  return out;
}

// The verifier's rows: [prompt hashed | answer hashed | prompt dense | answer
// dense | answer_features], the answer's n-grams in their own block.
Matrix featurize_answers(const std::vector<PairOutcome>& pairs, const FeatureExtractor& extractor) {
  Matrix m;
  const std::size_t h = extractor.hashed_size();
  const std::size_t d = extractor.dense_size();
  const std::size_t a = answer_features("", "").size();
  m.columns = 2 * h + 2 * d + a;
  PromptFeatures f;
  for (const auto& pair : pairs) {
    const std::string& answer = *pair.weak_response;
    for (int part = 0; part < 2; ++part) {
      extractor.extract(user_messages(part == 0 ? pair.prompt : answer), f);
      std::ranges::sort(f.hashed, {}, &route_features::HashedFeature::index);
      for (const auto& hf : f.hashed) {
        m.column.push_back(static_cast<std::uint32_t>(hf.index + part * h));
        m.value.push_back(hf.value);
      }
      for (std::size_t j = 0; j < f.dense.size(); ++j) {
        if (f.dense[j] == 0.0f) continue;
        m.column.push_back(static_cast<std::uint32_t>(2 * h + part * d + j));
        m.value.push_back(f.dense[j]);
      }
    }
    const auto features = answer_features(pair.prompt, answer);
    for (std::size_t j = 0; j < features.size(); ++j) {
      if (features[j].second == 0.0f) continue;
      m.column.push_back(static_cast<std::uint32_t>(2 * h + 2 * d + j));
      m.value.push_back(features[j].second);
    }
    m.row_start.push_back(m.column.size());
  }
  return m;
}

}  // namespace

namespace {

// The verifier's fit: rows checked, features extracted, L2 chosen and the
// model refitted on every row.
struct FittedVerifier {
  FeatureSpec spec;
  Selected selected;
};
Result<FittedVerifier> fit_verifier(const std::vector<PairOutcome>& train, const TrainingOptions& options) {
  if (auto ok = check_trainable(train); !ok) return std::unexpected(ok.error());
  for (const auto& p : train)
    if (!p.weak_response) return fail(ErrorCode::invalid_request, "the verifier needs the weak model's answer of every row");
  if (options.hash_bits < 4 || options.hash_bits > 24)
    return fail(ErrorCode::invalid_request, "hash_bits must be within 4..24");
  FittedVerifier out;
  out.spec.hash_bits = options.hash_bits;
  const FeatureExtractor extractor(out.spec);
  const Matrix x = featurize_answers(train, extractor);
  std::vector<int> y(train.size());
  for (std::size_t i = 0; i < train.size(); ++i) y[i] = train[i].weak_ok() ? 1 : 0;
  out.selected = select_and_fit(x, y, train, options);
  return out;
}

}  // namespace

Result<VerifierResult> train_and_apply_verifier(const std::vector<PairOutcome>& train,
                                                const std::vector<PairOutcome>& test, const TrainingOptions& options) {
  for (const auto& p : test)
    if (!p.weak_response) return fail(ErrorCode::invalid_request, "the verifier needs the weak model's answer of every row");
  auto fitted = fit_verifier(train, options);
  if (!fitted) return std::unexpected(fitted.error());
  VerifierResult out;
  out.validation = fitted->selected.validation;
  out.chosen_l2 = fitted->selected.l2;
  const FeatureExtractor extractor(fitted->spec);
  const Matrix t = featurize_answers(test, extractor);
  for (std::size_t r = 0; r < test.size(); ++r)
    out.p_weak_ok.push_back(sigmoid(margin(t, fitted->selected.weights, r)));
  return out;
}

Result<TrainedModel> train_verifier(const std::vector<PairOutcome>& pairs, const TrainingOptions& options) {
  auto fitted = fit_verifier(pairs, options);
  if (!fitted) return std::unexpected(fitted.error());
  const FeatureExtractor extractor(fitted->spec);
  const std::size_t h = extractor.hashed_size();
  const auto& w = fitted->selected.weights;
  // Columns as featurize_answers lays them out: [prompt hashed | answer
  // hashed | prompt dense | answer dense | answer_features], then the bias.
  std::vector<float> hashed(2 * h);
  for (std::size_t j = 0; j < hashed.size(); ++j) hashed[j] = static_cast<float>(w[j]);
  nlohmann::json dense = nlohmann::json::array();
  nlohmann::json dense_names = nlohmann::json::array();
  for (int part = 0; part < 2; ++part)
    for (const auto& name : extractor.dense_names()) dense_names.push_back((part == 0 ? "prompt:" : "answer:") + name);
  for (const auto& [name, value] : answer_features("", "")) dense_names.push_back("answer_check:" + name);
  for (std::size_t j = 2 * h; j < w.size() - 1; ++j) dense.push_back(static_cast<float>(w[j]));
  nlohmann::json candidates_json = nlohmann::json::array();
  for (const auto& v : fitted->selected.validation)
    candidates_json.push_back({{"l2", v.setting}, {"validation_log_loss", v.log_loss}, {"validation_auc", v.auc}});
  TrainedModel trained;
  trained.validation = fitted->selected.validation;
  trained.chosen = fitted->selected.l2;
  trained.model = {
      {"format", route_model_format::kFormat},
      {"scorer", "verifier"},
      {"predicts", "probability that the weak model's answer, given the prompt, is as good as the strong model's"},
      {"weak", options.weak_name},
      {"strong", options.strong_name},
      {"trained", trained_info(pairs, options)},
      {"regularization", {{"l2", trained.chosen}, {"candidates", candidates_json}}},
      {"features", fitted->spec.to_json()},
      {"bias", w.back()},
      {"dense_names", dense_names},
      {"dense_weights", dense},
      {"hashed_weights_f32", route_model_format::encode_floats(hashed)},
  };
  return trained;
}

Result<TrainedModel> train_learned(const std::vector<PairOutcome>& pairs, const TrainingOptions& options) {
  if (auto ok = check_trainable(pairs); !ok) return std::unexpected(ok.error());
  FeatureSpec spec;
  spec.hash_bits = options.hash_bits;
  spec.embedding_tail_bytes = options.embedding_tail_bytes;
  spec.embedding = options.embedding;
  spec.system_prompt = options.system_prompt_feature;
  if (spec.hash_bits < 4 || spec.hash_bits > 24) return fail(ErrorCode::invalid_request, "hash_bits must be within 4..24");
  const FeatureExtractor extractor(spec);
  const Matrix x = featurize(pairs, extractor, options.source_as_system);
  std::vector<int> y(pairs.size());
  for (std::size_t i = 0; i < pairs.size(); ++i) y[i] = pairs[i].weak_ok() ? 1 : 0;

  TrainedModel trained;
  const Selected selected = select_and_fit(x, y, pairs, options);
  trained.validation = selected.validation;
  trained.chosen = selected.l2;
  const auto& w = selected.weights;

  std::vector<float> hashed(extractor.hashed_size());
  for (std::size_t j = 0; j < hashed.size(); ++j) hashed[j] = static_cast<float>(w[j]);
  nlohmann::json dense = nlohmann::json::array();
  for (std::size_t j = 0; j < extractor.dense_size(); ++j) dense.push_back(static_cast<float>(w[extractor.hashed_size() + j]));
  nlohmann::json candidates_json = nlohmann::json::array();
  for (const auto& v : trained.validation)
    candidates_json.push_back({{"l2", v.setting}, {"validation_log_loss", v.log_loss}, {"validation_auc", v.auc}});
  trained.model = {
      {"format", route_model_format::kFormat},
      {"scorer", "learned"},
      {"predicts", "probability that the weak model's answer is as good as the strong model's"},
      {"weak", options.weak_name},
      {"strong", options.strong_name},
      {"trained", trained_info(pairs, options)},
      {"regularization", {{"l2", trained.chosen}, {"candidates", candidates_json}}},
      {"features", spec.to_json()},
      {"bias", w[x.columns]},
      {"dense_names", extractor.dense_names()},
      {"dense_weights", dense},
      {"hashed_weights_f32", route_model_format::encode_floats(hashed)},
  };
  return trained;
}

Result<TrainedModel> train_knn(const std::vector<PairOutcome>& pairs, const TrainingOptions& options) {
  if (auto ok = check_trainable(pairs); !ok) return std::unexpected(ok.error());
  const BuiltinEmbedder embedder;
  const std::size_t dim = embedder.dimension();
  std::vector<float> vectors(pairs.size() * dim);
  std::vector<int> y(pairs.size());
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    embedder.embed_into(normalize_text(pairs[i].prompt), std::span<float>(&vectors[i * dim], dim));
    y[i] = pairs[i].weak_ok() ? 1 : 0;
  }
  auto similarity = [&](std::size_t a, std::size_t b) {
    double s = 0;
    for (std::size_t d = 0; d < dim; ++d) s += static_cast<double>(vectors[a * dim + d]) * vectors[b * dim + d];
    return s;
  };
  // The most similar reference rows first, at most `count`.
  auto neighbours = [&](std::size_t query, const std::vector<std::size_t>& reference, std::size_t count) {
    std::vector<std::pair<double, std::size_t>> sims;
    sims.reserve(reference.size());
    for (const std::size_t r : reference) sims.emplace_back(similarity(query, r), r);
    const std::size_t take = std::min(count, sims.size());
    std::ranges::partial_sort(sims, sims.begin() + static_cast<std::ptrdiff_t>(take), std::greater<>());
    sims.resize(take);
    return sims;
  };
  auto vote = [&](const std::vector<std::pair<double, std::size_t>>& nearest, int k, double prior) {
    double votes = kKnnPriorWeight * prior, weight = kKnnPriorWeight;
    for (std::size_t i = 0; i < nearest.size() && i < static_cast<std::size_t>(k); ++i) {
      const double w = std::max(0.0, nearest[i].first);
      votes += w * y[nearest[i].second];
      weight += w;
    }
    return votes / weight;
  };

  double positives = 0;
  for (const int label : y) positives += label;
  const double prior = positives / static_cast<double>(y.size());
  TrainedModel trained;
  const auto& candidates = options.k_candidates.empty() ? kDefaultK : options.k_candidates;
  trained.chosen = candidates.front();
  const Split validation = validation_split(pairs, options);
  double best_loss = INFINITY;
  if (!validation.test.empty() && !validation.train.empty()) {
    double train_positives = 0;
    for (const std::size_t r : validation.train) train_positives += y[r];
    const double train_prior = train_positives / static_cast<double>(validation.train.size());
    const int max_k = *std::ranges::max_element(candidates);
    std::vector<std::vector<std::pair<double, std::size_t>>> nearest;
    std::vector<int> labels;
    for (const std::size_t q : validation.test) {
      nearest.push_back(neighbours(q, validation.train, static_cast<std::size_t>(std::max(max_k, 1))));
      labels.push_back(y[q]);
    }
    for (const int k : candidates) {
      if (k < 1) return fail(ErrorCode::invalid_request, "knn: k must be >= 1");
      std::vector<double> p;
      for (const auto& n : nearest) p.push_back(vote(n, k, train_prior));
      const ValidationResult result{static_cast<double>(k), mean_log_loss(p, labels), auc(p, labels)};
      trained.validation.push_back(result);
      if (result.log_loss < best_loss) {
        best_loss = result.log_loss;
        trained.chosen = k;
      }
    }
  }
  std::string labels;
  for (const int label : y) labels += label ? '1' : '0';
  nlohmann::json candidates_json = nlohmann::json::array();
  for (const auto& v : trained.validation)
    candidates_json.push_back({{"k", v.setting}, {"validation_log_loss", v.log_loss}, {"validation_auc", v.auc}});
  trained.model = {
      {"format", route_model_format::kFormat},
      {"scorer", "knn"},
      {"predicts", "probability that the weak model's answer is as good as the strong model's"},
      {"weak", options.weak_name},
      {"strong", options.strong_name},
      {"trained", trained_info(pairs, options)},
      {"k", static_cast<int>(trained.chosen)},
      {"k_candidates", candidates_json},
      {"prior", prior},
      {"prior_weight", kKnnPriorWeight},
      {"embedding", {{"tag", embedder.tag()}, {"dimension", dim}}},
      {"labels", labels},
      {"vectors_f32", route_model_format::encode_floats(vectors)},
  };
  return trained;
}

}  // namespace cascade
