// `cascade route`, `route-train`, `route-eval` and `route-data`: the router's
// decision explained, and its offline training and evaluation on routing
// outcomes (docs/routing.md).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "apps/cascade/commands.h"
#include "catalog/catalog.h"
#include "config/config.h"
#include "core/hash.h"
#include "router/tools/evaluation.h"
#include "router/router.h"
#include "tokenizer/tokenizer.h"

namespace cascade::cli {
namespace {

int usage_error(const char* command, const std::string& message) {
  std::fprintf(stderr, "cascade %s: %s\n", command, message.c_str());
  return 2;
}

int failure(const char* command, const std::string& message) {
  std::fprintf(stderr, "cascade %s: %s\n", command, message.c_str());
  return 1;
}

bool valid_fraction(double f) { return f > 0 && f < 1; }

std::optional<Preference> parse_preference(std::string_view name) {
  for (const Preference p : {Preference::cost, Preference::balanced, Preference::quality, Preference::speed})
    if (to_string(p) == name) return p;
  return std::nullopt;
}

// A seeded uniform number per prompt: the random router.
double random_score(std::string_view prompt, std::uint64_t seed) {
  std::uint64_t h = fnv1a_extend(kFnv1aOffsetBasis ^ (seed * kGoldenGamma), prompt);
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  return static_cast<double>(h >> 11) / 9007199254740992.0;  // 2^53
}

std::vector<PairOutcome> subset(const std::vector<PairOutcome>& pairs, const std::vector<std::size_t>& rows) {
  std::vector<PairOutcome> out;
  out.reserve(rows.size());
  for (const std::size_t r : rows) out.push_back(pairs[r]);
  return out;
}

bool write_text_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) return false;
    out << text;
    if (!out) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// Both models of a file when it names exactly two and the user named none.
std::optional<std::pair<std::string, std::string>> two_models(const std::vector<OutcomeRow>& rows) {
  std::set<std::string> names;
  for (const auto& row : rows)
    for (const auto& [name, outcome] : row.outcomes) names.insert(name);
  if (names.size() != 2) return std::nullopt;
  return std::pair{*names.begin(), *names.rbegin()};
}

// The token counter calls are billed with: the tiktoken rank files when
// found (exact for OpenAI models), else null (bytes / 4).
Result<std::shared_ptr<const TokenCounter>> billing_tokens(const std::string& tokenizers) {
  if (const auto dir = TokenCounter::find_directory(tokenizers); !dir.empty()) {
    auto counter = TokenCounter::load(dir);
    if (!counter) return std::unexpected(counter.error());
    std::fprintf(stderr, "cascade route-data: token counts from the rank files in %s\n", dir.string().c_str());
    return std::shared_ptr<const TokenCounter>(*counter);
  }
  if (!tokenizers.empty()) return fail(ErrorCode::invalid_request, "no tiktoken rank file in " + tokenizers);
  std::fprintf(stderr, "cascade route-data: no tiktoken rank files found: token counts are bytes / 4\n");
  return std::shared_ptr<const TokenCounter>();
}

}  // namespace

int run_route_data(const RouteDataOptions& options) {
  constexpr const char* kCommand = "route-data";
  std::ostringstream out;
  Result<std::size_t> written = fail(ErrorCode::invalid_request, "");
  if (options.source == "routellm-mmlu" || options.source == "routellm-gsm8k") {
    if (options.prices.empty())
      return usage_error(kCommand, options.source +
                                       " has correctness only: costs are token estimates x prices, so pass --prices "
                                       "(LiteLLM's model_prices_and_context_window.json, in shared/data/pricing)");
    auto weak = read_token_price(options.prices, options.weak_price_key);
    if (!weak) return failure(kCommand, weak.error().message);
    auto strong = read_token_price(options.prices, options.strong_price_key);
    if (!strong) return failure(kCommand, strong.error().message);
    auto tokens = billing_tokens(options.tokenizers);
    if (!tokens) return failure(kCommand, tokens.error().message);
    RouteLlmPrices prices{*weak, *strong, *tokens};
    written = options.source == "routellm-mmlu" ? convert_routellm_mmlu(options.in, prices, out)
                                                : convert_routellm_gsm8k(options.in, options.exclude, prices, out);
  } else if (options.source == "routerbench") {
    written = convert_routerbench(options.in, out);
  } else if (options.source == "alpaca-eval") {
    if (options.prices.empty())
      return usage_error(kCommand, "alpaca-eval has no costs: pass --prices (shared/data/pricing's LiteLLM catalog)");
    auto tokens = billing_tokens(options.tokenizers);
    if (!tokens) return failure(kCommand, tokens.error().message);
    AlpacaEvalPricing pricing{default_alpaca_eval_price_keys(), options.prices, *tokens, options.pool_as};
    for (const std::string& spec : options.price_keys) {
      const auto eq = spec.find('=');
      if (eq == std::string::npos || eq == 0) return usage_error(kCommand, "--price-key wants MODEL=LITELLM_KEY, got " + spec);
      pricing.price_keys[spec.substr(0, eq)] = spec.substr(eq + 1);
    }
    auto converted = convert_alpaca_eval(options.in, pricing, out);
    if (!converted) return failure(kCommand, converted.error().message);
    for (const auto& model : converted->unpriced)
      std::fprintf(stderr, "cascade route-data: %s left out: no price key (--price-key %s=KEY)\n", model.c_str(),
                   model.c_str());
    written = converted->rows;
  } else {
    return usage_error(kCommand, "source must be routellm-mmlu, routellm-gsm8k, routerbench or alpaca-eval");
  }
  if (!written) return failure(kCommand, written.error().message);
  if (!write_text_file(options.out, out.str())) return failure(kCommand, "cannot write " + options.out);
  std::fprintf(stderr, "cascade route-data: %zu rows -> %s\n", *written, options.out.c_str());
  return 0;
}

int run_route_train(const RouteTrainOptions& options) {
  constexpr const char* kCommand = "route-train";
  // verifier: the cheap-first cascade's answer check, not a scorer of prompts.
  const bool verifier = options.router == "verifier";
  const auto kind = verifier ? std::optional<ScorerKind>(ScorerKind::learned) : parse_scorer_kind(options.router);
  if (!kind || *kind == ScorerKind::heuristic)
    return usage_error(kCommand, "--router must be learned, knn or verifier (the heuristic needs no training)");
  if (options.train_fraction != 1.0 && !valid_fraction(options.train_fraction))
    return usage_error(kCommand, "--train-fraction must be within (0, 1)");
  std::vector<PairOutcome> pairs;
  std::string weak = options.weak, strong = options.strong;
  std::vector<std::string> sources;
  for (const auto& file : options.outcomes) {
    auto rows = read_outcomes(file);
    if (!rows) return failure(kCommand, rows.error().message);
    std::string file_weak = weak, file_strong = strong;
    if (file_weak.empty() && file_strong.empty()) {
      const auto both = two_models(*rows);
      if (!both)
        return usage_error(kCommand, file + " has outcomes of more than two models: name them with --weak and --strong");
      // The cheaper on average is the weak one.
      double a = 0, b = 0;
      for (const auto& row : *rows) {
        a += row.outcomes.at(both->first).cost_usd;
        b += row.outcomes.at(both->second).cost_usd;
      }
      file_weak = a <= b ? both->first : both->second;
      file_strong = a <= b ? both->second : both->first;
    } else if (file_weak.empty() || file_strong.empty()) {
      return usage_error(kCommand, "name both --weak and --strong, or neither");
    }
    auto selected = select_pair(*rows, file_weak, file_strong);
    if (!selected) return failure(kCommand, file + ": " + selected.error().message);
    auto chosen = std::move(selected->pairs);
    if (options.train_fraction != 1.0) chosen = subset(chosen, split_by_prompt(chosen, options.train_fraction, options.seed).train);
    pairs.insert(pairs.end(), chosen.begin(), chosen.end());
    sources.push_back(std::filesystem::path(file).filename().string());
    if (weak.empty()) weak = file_weak, strong = file_strong;
  }
  TrainingOptions training;
  training.seed = options.seed;
  training.hash_bits = options.hash_bits;
  training.embedding = options.embedding;
  training.embedding_tail_bytes = options.embedding_tail_bytes;
  training.weak_name = weak;
  training.strong_name = strong;
  training.sources = sources;
  const auto started = std::chrono::steady_clock::now();
  auto trained = verifier                      ? train_verifier(pairs, training)
                 : *kind == ScorerKind::learned ? train_learned(pairs, training)
                                                : train_knn(pairs, training);
  if (!trained) return failure(kCommand, trained.error().message);
  if (options.train_fraction != 1.0) {
    trained->model["trained"]["train_fraction"] = options.train_fraction;
    trained->model["trained"]["split_seed"] = options.seed;
  }
  // Check that the file reads back before it is written.
  if (verifier) {
    if (auto check = AnswerVerifier::parse(trained->model.dump()); !check)
      return failure(kCommand, "the trained verifier does not read back: " + check.error().message);
  } else if (auto check = parse_route_model(trained->model.dump()); !check) {
    return failure(kCommand, "the trained model does not read back: " + check.error().message);
  }
  if (!write_text_file(options.out, trained->model.dump() + "\n")) return failure(kCommand, "cannot write " + options.out);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::fprintf(stderr, "cascade route-train: %s on %zu rows (%s vs %s) in %.1f s -> %s\n", options.router.c_str(),
               pairs.size(), weak.c_str(), strong.c_str(), seconds, options.out.c_str());
  for (const auto& v : trained->validation)
    std::fprintf(stderr, "  %s=%g: validation log-loss %.4f, AUC %.3f%s\n",
                 verifier || *kind == ScorerKind::learned ? "l2" : "k", v.setting, v.log_loss, v.auc,
                 v.setting == trained->chosen ? "  <- chosen" : "");
  return 0;
}

int run_route_eval(const CommonOptions& common, const RouteEvalOptions& options) {
  constexpr const char* kCommand = "route-eval";
  const bool train = options.train_fraction >= 0;
  if (train && !valid_fraction(options.train_fraction))
    return usage_error(kCommand, "--train-fraction must be within (0, 1)");
  if (options.test_split >= 0 && !valid_fraction(options.test_split))
    return usage_error(kCommand, "--test-split must be within (0, 1)");
  if (train && options.test_split >= 0)
    return usage_error(kCommand, "--train-fraction already evaluates on the rest: drop --test-split");
  const std::string& router = options.router;
  if (router != "heuristic" && router != "learned" && router != "knn" && router != "cascade" && router != "random")
    return usage_error(kCommand, "--router must be heuristic, learned, knn, cascade or random");
  if ((options.weak.empty() == options.choose_weak.empty()) || options.strong.empty())
    return usage_error(kCommand, "--strong and one of --weak or --choose-weak are required");
  if (!options.choose_weak.empty() && !train)
    return usage_error(kCommand, "--choose-weak chooses on the training rows: pass --train-fraction F");
  if (options.rank != "probability" && options.rank != "gain-per-cost")
    return usage_error(kCommand, "--rank must be probability or gain-per-cost");
  const bool verifier = router == "cascade" && options.cascade_scorer == "verifier";
  if (verifier && !train)
    return usage_error(kCommand, "--cascade-scorer verifier is trained here: pass --train-fraction F");
  if (options.source_as_system && (!train || (router != "learned" && !(router == "cascade" && options.cascade_scorer == "learned"))))
    return usage_error(kCommand, "--source-as-system is for a learned scorer trained here (--train-fraction F)");

  auto rows = read_outcomes(options.outcomes);
  if (!rows) return failure(kCommand, rows.error().message);
  if (!options.check_model.empty() && router != "cascade")
    return usage_error(kCommand, "--check-model is the cascade's: use it with --router cascade");
  // The weak model: given, or the candidate that reaches 95% of the strong
  // model's quality cheapest on the training rows.
  std::string weak = options.weak;
  nlohmann::ordered_json weak_selection;
  if (!options.choose_weak.empty()) {
    std::vector<std::string> candidates;
    std::stringstream list(options.choose_weak);
    for (std::string name; std::getline(list, name, ',');)
      if (!name.empty()) candidates.push_back(name);
    auto choice =
        choose_weak_model(*rows, candidates, options.strong, options.check_model, options.train_fraction, options.seed);
    if (!choice) return failure(kCommand, choice.error().message);
    weak = choice->model;
    weak_selection["by"] = "random routing's cost at 95% of the strong model's quality, on training prompts";
    for (const auto& c : choice->candidates)
      weak_selection["candidates"].push_back({{"model", c.model},
                                              {"train_rows", c.rows},
                                              {"weak_quality", c.weak_quality},
                                              {"strong_quality", c.strong_quality},
                                              {"weak_cost_fraction", c.weak_cost_fraction},
                                              {"random_cost_at_95", c.random_cost_at_95}});
    weak_selection["chosen"] = weak;
  }
  auto selected = select_pair(*rows, weak, options.strong, options.check_model);
  if (!selected) return failure(kCommand, selected.error().message);
  const auto& all = selected->pairs;

  std::vector<PairOutcome> train_pairs, test_pairs;
  if (train || options.test_split >= 0) {
    const Split split = split_by_prompt(all, train ? options.train_fraction : options.test_split, options.seed);
    train_pairs = subset(all, split.train);
    test_pairs = subset(all, split.test);
  } else {
    test_pairs = all;
  }
  if (test_pairs.empty()) return failure(kCommand, "no rows left to evaluate on");

  // The cascade's check needs the weak model's answers; without them there
  // is nothing honest to simulate.
  std::vector<bool> weak_fails;
  if (router == "cascade") {
    std::size_t missing = 0;
    for (const auto& p : verifier ? train_pairs : std::vector<PairOutcome>{})
      if (!p.weak_response) ++missing;
    for (const auto& p : test_pairs) {
      if (!p.weak_response || (!options.check_model.empty() && !p.check_response)) {
        ++missing;
        continue;
      }
      weak_fails.push_back(options.check_model.empty()
                               ? weak_answer_fails_check(p.prompt, *p.weak_response)
                               : answers_disagree(p.prompt, *p.weak_response, *p.check_response));
    }
    if (missing > 0)
      return failure(kCommand, "--router cascade runs the weak model first and escalates when its answer fails a "
                               "check, so it needs the weak model's answers (and the --check-model's) as "
                               "'response' in the outcomes; " +
                                   std::to_string(missing) + " of " + std::to_string(test_pairs.size()) +
                                   " rows have none (RouteLLM's MMLU rows carry correctness only). Using the "
                                   "correctness label as the check would be an oracle, so this is not evaluated.");
  }

  // The scorer: trained here on the training share, or the shipped one.
  std::shared_ptr<const RouteScorer> scorer;
  nlohmann::ordered_json model_info;
  const std::string scorer_name = router == "cascade" ? options.cascade_scorer : router;
  std::vector<double> p(test_pairs.size());
  bool scored = false;
  if (scorer_name == "verifier") {
    TrainingOptions training;
    training.seed = options.seed;
    auto verified = train_and_apply_verifier(train_pairs, test_pairs, training);
    if (!verified) return failure(kCommand, verified.error().message);
    p = verified->p_weak_ok;
    scored = true;
    model_info["trained_here"] = true;
    model_info["verifier"] = "logistic regression over the prompt, the weak answer and its label-free features";
    model_info["l2"] = verified->chosen_l2;
    for (const auto& v : verified->validation)
      if (v.setting == verified->chosen_l2) model_info["validation_auc"] = v.auc;
  } else if (scorer_name == "heuristic") {
    scorer = make_heuristic_scorer();
  } else if (scorer_name == "learned" || scorer_name == "knn") {
    if (train) {
      TrainingOptions training;
      training.seed = options.seed;
      training.weak_name = weak;
      training.strong_name = options.strong;
      training.sources = {std::filesystem::path(options.outcomes).filename().string()};
      training.system_prompt_feature = options.source_as_system;
      training.source_as_system = options.source_as_system;
      auto trained = scorer_name == "learned" ? train_learned(train_pairs, training) : train_knn(train_pairs, training);
      if (!trained) return failure(kCommand, trained.error().message);
      auto parsed = parse_route_model(trained->model.dump());
      if (!parsed) return failure(kCommand, parsed.error().message);
      scorer = *parsed;
      model_info["trained_here"] = true;
      model_info[scorer_name == "learned" ? "l2" : "k"] = trained->chosen;
    } else {
      std::string file = options.model_file;
      if (file.empty()) {
        auto config = load_config(common.config_file);
        if (!config) return failure(kCommand, config.error().message);
        if (config->router.scorer == scorer_name) file = config->router.model_file;
      }
      if (file.empty() && scorer_name == "knn")
        return usage_error(kCommand, "no knn model ships with Cascade: pass --model FILE (cascade route-train "
                                     "--router knn) or --train-fraction F to train one here");
      RouterConfig config;
      config.scorer = scorer_name;
      config.model_file = file;
      auto loaded = load_route_scorer(config);
      if (!loaded) return failure(kCommand, loaded.error().message);
      scorer = *loaded;
      model_info["trained_here"] = false;
      model_info["file"] = file.empty() ? "built-in config/router/learned.json" : file;
    }
    model_info["description"] = scorer->description();
  } else if (scorer_name != "random") {
    return usage_error(kCommand, "--cascade-scorer must be heuristic, learned, knn, random or verifier");
  }

  const auto started = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < test_pairs.size() && !scored; ++i)
    p[i] = scorer ? scorer->score(pair_messages(test_pairs[i], options.source_as_system)).p_weak_ok
                  : random_score(test_pairs[i].prompt, options.seed);
  const double scoring_us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - started).count();
  // What the sweep ranks by: p_weak_ok, or the expected gain per expected
  // extra dollar, with costs predicted from the prompt by a model fitted on
  // the training rows (all rows when there are none: the cost model sees
  // costs, never labels).
  std::vector<double> rank_score = p;
  if (options.rank == "gain-per-cost")
    rank_score = gain_per_cost_scores(test_pairs, p, fit_cost_model(train_pairs.empty() ? test_pairs : train_pairs));

  if (!options.details_file.empty()) {
    std::ostringstream details;
    for (std::size_t i = 0; i < test_pairs.size(); ++i) {
      const auto& t = test_pairs[i];
      nlohmann::ordered_json line;
      line["prompt"] = t.prompt;
      line["p_weak_ok"] = p[i];
      if (options.rank != "probability") line["rank_score"] = rank_score[i];
      line["weak_quality"] = t.weak_quality;
      line["strong_quality"] = t.strong_quality;
      line["weak_cost"] = t.weak_cost;
      line["strong_cost"] = t.strong_cost;
      if (!weak_fails.empty()) line["weak_fails_check"] = static_cast<bool>(weak_fails[i]);
      details << line.dump() << '\n';
    }
    if (!write_text_file(options.details_file, details.str()))
      return failure(kCommand, "cannot write " + options.details_file);
  }

  EvaluationOptions evaluation_options;
  evaluation_options.seed = options.seed;
  const RoutingEvaluation evaluation =
      verifier ? evaluate_verified_cascade(test_pairs, rank_score, weak_fails, evaluation_options,
                                           !options.check_model.empty())
      : router == "cascade"
          ? evaluate_cascade(test_pairs, rank_score, weak_fails, evaluation_options, !options.check_model.empty())
          : evaluate_routing(test_pairs, rank_score, evaluation_options);
  nlohmann::ordered_json out;
  out["router"] = router;
  if (router == "cascade") {
    out["cascade_scorer"] = scorer_name;
    out["check"] = options.check_model.empty() ? std::string("format and arithmetic of the weak answer")
                                               : "agreement with " + options.check_model + " (paid on every weak-first prompt)";
    std::size_t escalated = 0;
    for (const bool f : weak_fails) escalated += f;
    out["check_failed_share"] = test_pairs.empty() ? 0.0 : static_cast<double>(escalated) / static_cast<double>(test_pairs.size());
  }
  out["rank"] = options.rank;
  if (options.source_as_system) out["source_as_system"] = true;
  out["weak"] = weak;
  if (!weak_selection.empty()) out["weak_selection"] = weak_selection;
  out["strong"] = options.strong;
  out["outcomes"] = options.outcomes;
  out["rows_skipped"] = selected->skipped;
  out["train_fraction"] = train ? nlohmann::ordered_json(options.train_fraction) : nlohmann::ordered_json(nullptr);
  out["seed"] = options.seed;
  out["train_rows"] = train_pairs.size();
  out["test_rows"] = test_pairs.size();
  if (!model_info.empty()) out["model"] = model_info;
  out["mean_scoring_us"] = scoring_us / static_cast<double>(test_pairs.size());
  const nlohmann::ordered_json metrics = to_json(evaluation, options.curve_points);
  for (const auto& [key, value] : metrics.items()) out[key] = value;
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

int run_route(const CommonOptions& common, const RouteOptions& options) {
  constexpr const char* kCommand = "route";
  auto config = load_config(common.config_file);
  if (!config) return failure(kCommand, config.error().message);
  if (!options.scorer.empty()) config->router.scorer = options.scorer;
  if (!options.model_file.empty()) config->router.model_file = options.model_file;
  const auto preference = parse_preference(options.preference);
  if (!preference) return usage_error(kCommand, "--preference must be cost, balanced, quality or speed");
  auto catalog = ModelCatalog::load(config->catalog);
  if (!catalog) return failure(kCommand, catalog.error().message);
  auto scorer = load_route_scorer(config->router);
  if (!scorer) return failure(kCommand, scorer.error().message);

  // Providers as a worker here would see them: configured, with their key set.
  const EnvLookup env = process_env();
  std::vector<std::string> available;
  for (const auto& [name, provider] : config->providers) {
    if (provider.api_key_env.empty()) {
      available.push_back(name);
    } else if (auto key = env(provider.api_key_env); key && !key->empty()) {
      available.push_back(name);
    }
  }
  // With no key set at all (a laptop), show the routing a fully configured
  // deployment would do rather than refuse.
  const bool assume_all = available.empty();
  // Bad rules (a regex, an unknown model) are reported, not thrown.
  auto policies = compile_route_policies(config->router, *catalog);
  if (!policies) return failure(kCommand, policies.error().message);
  const Router router(
      config->router, *catalog,
      [&](std::string_view p) { return assume_all || std::ranges::find(available, p) != available.end(); }, *scorer,
      *policies);
  PromptEvent event;
  event.id = options.id;
  event.tenant = options.tenant;
  event.model = options.model.empty() ? "auto" : options.model;
  event.preference = *preference;
  if (options.max_tokens > 0) event.max_tokens = options.max_tokens;
  if (!options.metadata.empty()) {
    auto metadata = nlohmann::json::parse(options.metadata, nullptr, false);
    if (metadata.is_discarded() || !metadata.is_object())
      return usage_error(kCommand, "--metadata must be a JSON object, e.g. '{\"residency\":\"eu\"}'");
    event.metadata = std::move(metadata);
  }
  if (!options.system.empty()) event.messages.push_back({{"role", "system"}, {"content", options.system}});
  event.messages.push_back({{"role", "user"}, {"content", options.prompt}});
  RouteContext context;
  context.default_max_tokens = config->limits.default_max_tokens;
  context.explain = options.explain;
  // Counted as the worker counts it, so the length feature and the context
  // check see the same figure.
  if (auto tokens = load_token_counter(config->tokenizer))
    context.input_tokens = static_cast<std::int64_t>((*tokens)->count_messages("", event.messages).tokens);
  auto decision = router.route(event, context);
  // The heuristic is explained as the router scored it: its length feature
  // from the tokenizer's count.
  const RouteScore score = (*scorer)->kind() == ScorerKind::heuristic
                               ? heuristic_route_score(event.messages, context.input_tokens)
                               : (*scorer)->score(event.messages, options.explain);
  if (!decision) return failure(kCommand, decision.error().message);

  std::printf("model:   %s (%s, tier %s)\n", decision->model->id.c_str(), decision->model->provider.c_str(),
              std::string(to_string(decision->tier)).c_str());
  std::printf("reason:  %s\n", decision->reason.c_str());
  if (!options.explain) return 0;
  // Policies (docs/routing.md): the constraints, the rule, the experiment arm.
  std::printf("constraints: %s\n", decision->constraints.c_str());
  if (decision->skipped.empty()) {
    std::printf("skipped: none\n");
  } else {
    std::printf("skipped (cheaper models that fail a constraint):\n");
    for (const auto& skipped : decision->skipped) std::printf("  %s\n", skipped.c_str());
  }
  std::printf("rule:    %s\n", decision->rule.empty() ? (config->router.rules.empty() ? "none (no router.rules)" : "none matched")
                                                      : decision->rule.c_str());
  if (!config->router.experiment.name.empty()) {
    std::printf("experiment: %s, arm %s (split %.2f by a hash of --id %s)\n", config->router.experiment.name.c_str(),
                decision->policy.empty() ? "none: a rule decided or the model is pinned" : decision->policy.c_str(),
                config->router.experiment.split, event.id.c_str());
  } else {
    std::printf("policy:  %s\n", decision->policy.empty() ? "default (the thresholds below)" : decision->policy.c_str());
  }
  std::printf("scorer:  %s%s%s\n", std::string(to_string((*scorer)->kind())).c_str(),
              (*scorer)->description().empty() ? "" : ", ", (*scorer)->description().c_str());
  if (!decision->policy.empty())
    std::printf("(policy %s decided the tier with its own thresholds, in the reason; below: the router's own)\n",
                decision->policy.c_str());
  std::printf("p_weak_ok: %.4f  (probability that the cheaper model answers as well as the strong one%s)\n",
              score.p_weak_ok,
              (*scorer)->kind() == ScorerKind::heuristic ? "; heuristic: 1 - complexity, a ranking, not calibrated" : "");
  if ((*scorer)->kind() == ScorerKind::heuristic) {
    const TierThresholds& t = *preference == Preference::cost      ? config->router.cost
                              : *preference == Preference::quality ? config->router.quality
                              : *preference == Preference::speed   ? config->router.speed
                                                                   : config->router.balanced;
    std::printf("thresholds (%s): complexity < %.2f small, < %.2f medium, else large\n", options.preference.c_str(),
                t.small_max, t.medium_max);
  } else {
    const ProbabilityThresholds& t = *preference == Preference::cost      ? config->router.cost_p
                                     : *preference == Preference::quality ? config->router.quality_p
                                     : *preference == Preference::speed   ? config->router.speed_p
                                                                          : config->router.balanced_p;
    std::printf("thresholds (%s): p_weak_ok >= %.2f small, >= %.2f medium, else large\n", options.preference.c_str(),
                t.small_min, t.medium_min);
  }
  if (const auto& a = decision->cost_adjustment) {
    std::printf("cost-aware: the large tier costs $%.3g more than the small one for this request, $%.3g for a "
                "reference one (%lld input + %lld output tokens);\n"
                "            expected gain 1 - p_weak_ok scaled by %.3g: p_weak_ok %.4f -> %.4f for the thresholds\n",
                a->extra_usd, a->reference_extra_usd,
                static_cast<long long>(config->router.cost_aware.reference_input_tokens),
                static_cast<long long>(config->router.cost_aware.expected_output_tokens),
                a->reference_extra_usd / a->extra_usd, score.p_weak_ok, a->p_weak_ok);
  }
  std::printf("drivers (largest first%s):\n",
              (*scorer)->kind() == ScorerKind::learned ? "; log-odds, + favours the cheaper model"
              : (*scorer)->kind() == ScorerKind::knn   ? "; + neighbour where the weak model was as good"
                                                       : "; complexity points, + favours a stronger model");
  for (const auto& [name, contribution] : score.drivers) std::printf("  %+.4f  %s\n", contribution, name.c_str());
  std::printf("providers available here: ");
  for (std::size_t i = 0; i < available.size(); ++i) std::printf("%s%s", i ? ", " : "", available[i].c_str());
  std::printf("%s\n", assume_all ? "none has its key set: routed as if every configured provider were" : "");
  return 0;
}

}  // namespace cascade::cli
