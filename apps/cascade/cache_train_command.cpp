// `cascade cache-train`: trains the learned hit verifier of the semantic
// cache and writes its model file (docs/cache.md, "Learned verifier"). The
// operating points and each set's held-out figures go to stderr and into
// the model file.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "apps/cascade/commands.h"
#include "cache/tools/hit_training.h"

namespace cascade::cli {

namespace {

std::vector<std::string> split_commas(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

void print_row(const char* what, const std::string& set, const CacheEvalRow& row) {
  std::fprintf(stderr,
               "cache-train: %-5s %-8s precision %.4f (labelled %.4f) recall %.4f hit rate %.4f label-0 hit rate "
               "%.4f (%zu hits, %zu wrong)\n",
               set.c_str(), what, row.precision, row.precision_labelled, row.recall, row.hit_rate,
               row.negative_hit_rate, row.hits, row.wrong_hits);
}

}  // namespace

int run_cache_train(const CacheTrainCommandOptions& options) {
  std::vector<NamedPairs> sets;
  for (const std::string& spec : options.pairs) {
    const auto eq = spec.find('=');
    const std::string path = eq == std::string::npos ? spec : spec.substr(eq + 1);
    std::string name = eq == std::string::npos ? std::filesystem::path(path).stem().string() : spec.substr(0, eq);
    auto pairs = load_paraphrase_pairs(path);
    if (!pairs) {
      std::fprintf(stderr, "cascade cache-train: %s\n", pairs.error().message.c_str());
      return 1;
    }
    sets.push_back({std::move(name), std::move(*pairs)});
  }
  HitTrainingOptions training;
  training.seed = options.seed;
  training.rounds = options.rounds;
  training.max_depth = options.max_depth;
  training.eta = options.eta;
  training.similarity_threshold = options.threshold;
  training.default_target_precision = options.target_precision;
  training.calibrate_on = options.calibrate_on;
  training.vetoes = split_commas(options.vetoes);
  training.neighbours = options.neighbours;
  training.labelled_rows = options.labelled_rows;
  training.train_fraction = options.train_fraction;
  training.calibration_fraction = options.calibration_fraction;
  auto report = train_hit_model(sets, training);
  if (!report) {
    std::fprintf(stderr, "cascade cache-train: %s\n", report.error().message.c_str());
    return report.error().code == ErrorCode::invalid_request ? 2 : 1;
  }
  std::ofstream out(options.out);
  out << report->model_json << '\n';
  if (!out.flush()) {
    std::fprintf(stderr, "cascade cache-train: cannot write %s\n", options.out.c_str());
    return 1;
  }
  std::fprintf(stderr, "cache-train: %zu training rows (%zu same question, %zu more rejected by a veto)\n",
               report->training_rows, report->training_positives, report->vetoed_rows);
  for (const auto& p : report->points) {
    std::fprintf(stderr, "cache-train: target %.2f: min_probability %.4f (calibration precision %.4f recall %.4f)\n",
                 p.target_precision, p.min_probability, p.precision, p.recall);
  }
  for (const auto& set : report->sets) {
    std::fprintf(stderr, "cache-train: %s: %zu pairs trained on, %zu calibrated on, %zu held out\n", set.set.c_str(),
                 set.train_pairs, set.calibration_pairs, set.test_pairs);
    print_row("model", set.set, set.test_at_default);
    print_row("rules", set.set, set.test_rules);
  }
  if (!options.held_out_dir.empty()) {
    std::filesystem::create_directories(options.held_out_dir);
    for (const auto& split : report->test_splits) {
      std::ofstream file(std::filesystem::path(options.held_out_dir) / (split.name + ".test.jsonl"));
      for (const auto& p : split.pairs) {
        file << nlohmann::json{{"text_a", p.text_a}, {"text_b", p.text_b}, {"label", p.label}}.dump(
                    -1, ' ', false, nlohmann::json::error_handler_t::replace)
             << '\n';
      }
    }
  }
  std::printf("%s\n", options.out.c_str());
  return 0;
}

}  // namespace cascade::cli
