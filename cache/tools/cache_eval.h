#pragma once
// Offline evaluation of the semantic cache (`cascade cache-eval`,
// docs/cache.md): paraphrase pair files, and the precision and recall of the
// cache's hits at each similarity threshold. A tool: nothing here runs on
// the request path, and only the CLI, tests and benches link it.
#include <cstddef>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "cache/semantic.h"
#include "core/result.h"

namespace cascade {

// One pair of a paraphrase set: label 1 = the same question.
struct ParaphrasePair {
  std::string text_a;
  std::string text_b;
  int label = 0;
};

// JSON lines {"text_a","text_b","label"} or PAWS TSV (id, sentence1,
// sentence2, label; a header line is skipped). TSV is recognized by the .tsv
// extension or a tab-separated first line. Malformed lines are errors with
// their line number.
[[nodiscard]] Result<std::vector<ParaphrasePair>> load_paraphrase_pairs(const std::string& path);

struct CacheEvalRow {
  double threshold = 0;
  std::size_t hits = 0;
  std::size_t correct_hits = 0;
  std::size_t wrong_hits = 0;
  double precision = 0;  // correct_hits / hits (1 when there are no hits)
  double recall = 0;     // correct_hits / answerable pairs (label 1, or a duplicate of text_b stored)
  double hit_rate = 0;   // hits / pairs evaluated
  double lookup_p50_us = 0;
  double lookup_p99_us = 0;
  // Wrong hits on a text a label-0 pair says is a different question (the
  // rest of the wrong hits have no label either way).
  std::size_t wrong_hits_known = 0;
  // correct / (correct + wrong_hits_known): precision over the hits a label
  // can judge (1 when there are none).
  double precision_labelled = 1;
  // The learned verifier's cutoff of this row; -1 without a model.
  double min_probability = -1;
  // Label-0 pairs (the hard negatives) whose lookup served a text that is
  // not the same question, and their share of the label-0 pairs looked up.
  std::size_t negative_hits = 0;
  double negative_hit_rate = 0;
  bool is_default = false;  // the configured operating point
};

// One looked-up pair: what the nearest verified candidate was, if any.
struct CacheEvalOutcome {
  std::size_t pair = 0;  // index into the pairs given
  bool hit = false;      // a candidate passed verification at the lowest threshold and cutoff
  float similarity = 0;
  float probability = -1;
  bool correct = false;      // the hit is the same question
  bool known_wrong = false;  // a label-0 pair says it is not
};

struct CacheEvalReport {
  std::vector<CacheEvalRow> rows;  // one per threshold, in the order given
  std::size_t pairs = 0;           // pairs evaluated
  std::size_t positive_pairs = 0;  // label 1 among them
  std::size_t negative_pairs = 0;  // label 0 among them
  std::size_t answerable_pairs = 0;  // pairs with a same-question text stored (all label-1 pairs and more)
  std::size_t exact_pairs = 0;     // text_b identical to a stored text_a: left out (see docs/cache.md)
  std::size_t entries = 0;         // distinct text_a stored
  std::size_t unindexed = 0;       // of those, texts with nothing to embed
  double insert_seconds = 0;
  double lookup_seconds = 0;
  // Rejections by rule at the lowest threshold, for tuning.
  std::map<std::string, std::size_t, std::less<>> rejected_by_rule;
  std::vector<CacheEvalOutcome> outcomes;  // one per pair looked up
};

struct CacheEvalOptions {
  std::vector<double> thresholds = {0.80, 0.85, 0.90, 0.95};
  // With a model (tenant.model): rows for every threshold at each of these
  // cutoffs; empty = tenant.min_probability only.
  std::vector<double> min_probabilities;
  // The row at this threshold (and tenant.min_probability) is the default
  // operating point; NaN = none.
  double default_threshold = std::numeric_limits<double>::quiet_NaN();
  TenantSemanticOptions tenant;  // threshold and min_probability are ignored: every row is evaluated
  SemanticIndexOptions index;
  std::size_t batch = 256;       // texts per embed() call while inserting
  std::string details_file;      // "" = none; else one JSON line per pair (tuning)
};

// Inserts every distinct text_a into one tenant namespace, looks up every
// text_b once (recording its candidates), and derives each threshold's row
// from those lookups: the hit at threshold t is the first candidate, best
// first, that passed verification, if its similarity is >= t.
// Same question: two texts joined by a chain of label-1 pairs of the file
// (its duplicate clusters; for a label-1 pair, text_a and text_b). A hit is
// correct when its stored text is the same question as text_b, wrong
// otherwise, whether a label-0 pair says so or no label relates the two. A pair is answerable when some stored
// text is the same question as its text_b (every label-1 pair is); recall =
// correct hits / answerable pairs. Pairs whose text_b is itself stored
// (identical after normalize_text) are answered by the exact cache in
// production and left out.
[[nodiscard]] Result<CacheEvalReport> run_cache_eval(const std::vector<ParaphrasePair>& pairs, Embedder& embedder,
                                       const CacheEvalOptions& options);

// {"threshold","hits","correct_hits","wrong_hits","precision","recall","hit_rate","lookup_p50_us","lookup_p99_us",
//  "precision_labelled","negative_hit_rate"}, then "min_probability" with a model and "default": true on the
// default row.
std::string to_json_line(const CacheEvalRow& row);

}  // namespace cascade
