// `cascade cache-eval`: precision and recall of the semantic cache on a
// paraphrase set (docs/cache.md). One JSON line per threshold on stdout; a
// summary on stderr.
#include <cstdio>
#include <memory>
#include <sstream>

#include "apps/cascade/commands.h"
#include "cache/tools/cache_eval.h"
#include "embeddings/embeddings.h"

namespace cascade::cli {

namespace {

std::optional<std::vector<double>> parse_thresholds(const std::string& list) {
  std::vector<double> out;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.find_first_not_of(' ') == std::string::npos) continue;
    char* end = nullptr;
    const double value = std::strtod(item.c_str(), &end);
    if (end == item.c_str() || *end != '\0' || !(value >= -1.0 && value <= 1.0)) return std::nullopt;
    out.push_back(value);
  }
  if (out.empty()) return std::nullopt;
  return out;
}

}  // namespace

int run_cache_eval(const CacheEvalCommandOptions& options) {
  const auto thresholds = parse_thresholds(options.thresholds);
  if (!thresholds) {
    std::fprintf(stderr, "cascade cache-eval: --thresholds wants numbers in [-1, 1], e.g. 0.85,0.9\n");
    return 2;
  }
  std::unique_ptr<Embedder> embedder;
  if (options.embedder == "builtin") {
    BuiltinEmbedderOptions builtin;
    if (options.dimension > 0) builtin.dimension = static_cast<std::size_t>(options.dimension);
    embedder = std::make_unique<BuiltinEmbedder>(builtin);
  } else if (options.embedder.starts_with("http://") || options.embedder.starts_with("https://")) {
    if (options.embedder_model.empty()) {
      std::fprintf(stderr, "cascade cache-eval: a URL embedder needs --embedder-model\n");
      return 2;
    }
    OpenAiEmbedderOptions remote;
    remote.base_url = options.embedder;
    remote.model = options.embedder_model;
    remote.api_key_env = options.api_key_env;
    auto created = OpenAiEmbedder::create(remote);
    if (!created) {
      std::fprintf(stderr, "cascade cache-eval: %s\n", created.error().message.c_str());
      return 1;
    }
    embedder = std::move(*created);
  } else {
    std::fprintf(stderr, "cascade cache-eval: --embedder is builtin or an http(s) URL\n");
    return 2;
  }

  auto pairs = load_paraphrase_pairs(options.pairs_file);
  if (!pairs) {
    std::fprintf(stderr, "cascade cache-eval: %s\n", pairs.error().message.c_str());
    return 1;
  }
  if (options.limit > 0 && pairs->size() > options.limit) pairs->resize(options.limit);

  CacheEvalOptions eval;
  eval.thresholds = *thresholds;
  eval.tenant.verify = !options.no_verify;
  if (options.candidates > 0) eval.tenant.candidates = static_cast<std::size_t>(options.candidates);
  eval.details_file = options.details_file;
  std::stringstream settings(options.verifier);
  for (std::string setting; std::getline(settings, setting, ',');) {
    const auto eq = setting.find('=');
    auto set = eq == std::string::npos
                   ? Result<void>(fail(ErrorCode::invalid_request, "--verifier wants name=value, got " + setting))
                   : set_verifier_option(eval.tenant.verifier, setting.substr(0, eq), setting.substr(eq + 1));
    if (!set) {
      std::fprintf(stderr, "cascade cache-eval: %s\n", set.error().message.c_str());
      return 2;
    }
  }
  if (options.verifier_model == "rules" && (options.target_precision > 0 || !options.min_probabilities.empty())) {
    std::fprintf(stderr,
                 "cascade cache-eval: --target-precision and --min-probabilities need a learned verifier "
                 "(--verifier-model builtin or a model file)\n");
    return 2;
  }
  if (options.verifier_model != "rules") {
    auto model = options.verifier_model == "builtin" ? Result<std::shared_ptr<const HitModel>>(HitModel::builtin())
                                                     : HitModel::load(options.verifier_model);
    if (!model || !*model) {
      std::fprintf(stderr, "cascade cache-eval: %s\n",
                   model ? "this build has no built-in hit model (use --verifier-model rules)"
                         : model.error().message.c_str());
      return 1;
    }
    eval.tenant.model = *model;
    auto cutoff = (*model)->cutoff_for(options.target_precision > 0 ? options.target_precision
                                                                    : (*model)->default_target_precision());
    if (!cutoff) {
      std::fprintf(stderr, "cascade cache-eval: %s\n", cutoff.error().message.c_str());
      return 2;
    }
    eval.tenant.min_probability = *cutoff;
    if (!options.min_probabilities.empty()) {
      const auto cutoffs = parse_thresholds(options.min_probabilities);
      if (!cutoffs) {
        std::fprintf(stderr, "cascade cache-eval: --min-probabilities wants numbers in [0, 1]\n");
        return 2;
      }
      eval.min_probabilities = *cutoffs;
      eval.min_probabilities.push_back(*cutoff);
    }
  }
  // The configured default (cache.semantic): the rules as shipped, at 0.90.
  if (options.verifier_model == "rules" && !options.no_verify && options.verifier.empty() && options.candidates <= 0) {
    eval.default_threshold = TenantSemanticOptions{}.threshold;
  }
  auto report = run_cache_eval(*pairs, *embedder, eval);
  if (!report) {
    std::fprintf(stderr, "cascade cache-eval: %s\n", report.error().message.c_str());
    return 1;
  }
  for (const auto& row : report->rows) std::printf("%s\n", to_json_line(row).c_str());
  std::fflush(stdout);

  std::string rejected;
  for (const auto& [rule, count] : report->rejected_by_rule) {
    rejected += (rejected.empty() ? "" : ", ") + rule + "=" + std::to_string(count);
  }
  std::fprintf(stderr,
               "cache-eval: embedder %s; %zu entries inserted in %.2f s; %zu pairs looked up (%zu label 1, %zu "
               "answerable) in %.2f s; %zu pairs left out (text_b stored verbatim: an exact-cache hit); rejected "
               "candidates: %s\n",
               (embedder->tag() + (eval.tenant.model ? "; verifier " + eval.tenant.model->tag() : "; rule verifier")).c_str(),
               report->entries, report->insert_seconds, report->pairs,
               report->positive_pairs, report->answerable_pairs, report->lookup_seconds, report->exact_pairs,
               rejected.empty() ? "none" : rejected.c_str());
  // Wrong hits split by evidence: a label-0 pair contradicts the hit, or no label relates the texts.
  for (const auto& row : report->rows) {
    std::fprintf(stderr,
                 "cache-eval: threshold %.3g: wrong hits %zu = %zu contradicted by a label-0 pair + %zu without any "
                 "label; label-0 pairs served another question: %zu of %zu\n",
                 row.threshold, row.wrong_hits, row.wrong_hits_known, row.wrong_hits - row.wrong_hits_known,
                 row.negative_hits, report->negative_pairs);
  }
  return 0;
}

}  // namespace cascade::cli
