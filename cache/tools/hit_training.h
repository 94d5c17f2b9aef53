#pragma once
// `cascade cache-train` (docs/cache.md, "Learned verifier"): trains the
// semantic cache's learned hit verifier on paraphrase pair files and picks
// its operating points. A tool: only the CLI, tests and benches link it.
//
// Each file's pairs are split by connected component (texts joined by any
// pair), so no question of the calibration or test split was seen in
// training. Training rows are the labelled pairs and, like the cache sees
// them, each query's nearest stored texts (same question = 1, anything else
// = 0, the conservative reading of cache-eval). Pairs a veto rejects are
// left out: the model never sees them at run time either. The operating
// points are chosen on the calibration split by running the cache exactly as
// cache-eval does; the test split's figures are reported.
#include <cstdint>
#include <string>
#include <vector>

#include "cache/tools/cache_eval.h"
#include "core/result.h"

namespace cascade {

struct NamedPairs {
  std::string name;  // e.g. "qqp", shown in the report and the model file
  std::vector<ParaphrasePair> pairs;
};

struct HitTrainingOptions {
  double train_fraction = 0.6;
  double calibration_fraction = 0.2;  // the rest is the test split
  std::uint64_t seed = 1;
  // The similarity a hit needs at run time (cache.semantic.threshold); the
  // calibration runs the cache at it.
  double similarity_threshold = 0.80;
  // Train on the labelled pairs themselves too, not only on what the cache
  // retrieves.
  bool labelled_rows = false;
  // Nearest stored texts per training query, down to this similarity.
  std::size_t neighbours = 8;
  double candidate_floor = 0.60;
  // Rules that stay certain vetoes (semantic.h, VerifierOptions names).
  std::vector<std::string> vetoes = {"numbers", "symbols", "negation", "entities"};
  int rounds = 200;
  int max_depth = 4;
  double eta = 0.1;
  int threads = 2;
  std::vector<double> target_precisions = {0.80, 0.85, 0.90, 0.92, 0.95, 0.97, 0.98};
  double default_target_precision = 0.90;
  // The set whose calibration split picks the cutoffs ("" = the first).
  std::string calibrate_on;
  // An operating point needs at least this many calibration hits.
  std::size_t min_hits = 30;
};

struct HitSetFigures {
  std::string set;
  std::size_t train_pairs = 0;
  std::size_t calibration_pairs = 0;
  std::size_t test_pairs = 0;
  CacheEvalRow test_at_default;      // the test split at the default operating point
  CacheEvalRow test_rules;           // the same split with the rule verifier, for comparison
};

struct HitTrainingReport {
  std::string model_json;  // the model file
  std::size_t training_rows = 0;
  std::size_t training_positives = 0;
  std::size_t vetoed_rows = 0;
  std::vector<HitOperatingPoint> points;  // measured on the calibration split
  std::vector<HitSetFigures> sets;
  std::vector<NamedPairs> test_splits;  // to reproduce the test figures with cache-eval
};

// Errors: invalid_request (no pairs, bad options, an unknown veto, no
// operating point reaches the default target), internal (XGBoost failed).
[[nodiscard]] Result<HitTrainingReport> train_hit_model(const std::vector<NamedPairs>& sets,
                                                        const HitTrainingOptions& options);

}  // namespace cascade
