#pragma once
// Offline training and evaluation of routers (docs/routing.md), for the
// `cascade route-train`, `route-eval` and `route-data` tools: routing
// outcomes files, the strong/weak pair view of them, a deterministic split,
// training the learned and knn scorers, RouteLLM's metrics over a threshold
// sweep, the cheap-first cascade policy, and converters from public routing
// datasets. Nothing here runs on the request path.
#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"
#include "router/answer_facts.h"
#include "router/router.h"
#include "tokenizer/tokenizer.h"

namespace cascade {

// ------------------------------------------------------------ outcomes ----

// One model's answer to a prompt: its quality (0..1; correctness for
// benchmarks) and what the call cost. `response` is optional (the cascade
// policy checks the weak model's answer).
struct ModelOutcome {
  double quality = 0;
  double cost_usd = 0;
  std::optional<std::string> response;
};

// One line of an outcomes file:
// {"prompt": "...", "outcomes": {"<model>": {"quality": q, "cost_usd": c, "response"?: "..."}}, "source"?: "..."}
struct OutcomeRow {
  std::string prompt;
  std::map<std::string, ModelOutcome> outcomes;
  std::string source;  // dataset or subject, informative only
};

[[nodiscard]] Result<OutcomeRow> parse_outcome_line(std::string_view line);
nlohmann::json to_json(const OutcomeRow& row);
// Every non-blank line; the first bad one is an error naming its line number.
[[nodiscard]] Result<std::vector<OutcomeRow>> read_outcomes(const std::string& path);

// A prompt as seen by a router choosing between a weak and a strong model.
struct PairOutcome {
  std::string prompt;
  double weak_quality = 0;
  double strong_quality = 0;
  double weak_cost = 0;
  double strong_cost = 0;
  std::optional<std::string> weak_response;
  // A second cheap model whose answer the cascade compares (select_pair's `check`).
  double check_cost = 0;
  std::optional<std::string> check_response;
  std::string source;  // the row's dataset or subject (OutcomeRow::source)
  // The label the learned and knn scorers predict: the weak answer is as
  // good as the strong one (ties count as good: the strong call would buy nothing).
  bool weak_ok() const { return weak_quality >= strong_quality; }
};

// A pair from the two models' outcomes, every other field at its default.
inline PairOutcome pair_outcome(std::string prompt, double weak_quality, double strong_quality, double weak_cost,
                                double strong_cost, std::optional<std::string> weak_response = std::nullopt) {
  PairOutcome pair;
  pair.prompt = std::move(prompt);
  pair.weak_quality = weak_quality;
  pair.strong_quality = strong_quality;
  pair.weak_cost = weak_cost;
  pair.strong_cost = strong_cost;
  pair.weak_response = std::move(weak_response);
  return pair;
}

// `weak` and `strong` are model names, or comma-separated alternatives (the
// first one a row has is used), so files that name one model differently can
// be used together. Rows lacking either model are left out and counted.
struct PairSelection {
  std::vector<PairOutcome> pairs;
  std::size_t skipped = 0;
};
// With `check` (a model name, or alternatives), rows also need that model,
// whose cost and answer fill check_cost and check_response.
[[nodiscard]] Result<PairSelection> select_pair(const std::vector<OutcomeRow>& rows, std::string_view weak, std::string_view strong,
                                  std::string_view check = {});

// Deterministic split: rows ordered by a seeded 64-bit hash of the prompt
// text (ties by position), the first round(fraction * n) train. Identical
// prompts always land on the same side, whatever the file order.
struct Split {
  std::vector<std::size_t> train;
  std::vector<std::size_t> test;
};
Split split_by_prompt(const std::vector<PairOutcome>& pairs, double train_fraction, std::uint64_t seed);

// Which cheap model to route against, chosen on training rows only. For
// each candidate (paired with `strong`, and with `check` when given) the
// expected cost, as a fraction of always-strong, of reaching 95% of the
// strong model's quality by random routing; the cheapest wins (the first on
// a tie). Only prompts on the training side of every candidate's own
// split_by_prompt(train_fraction, seed) count, so no candidate is judged on a
// prompt the chosen pair will be tested on. Random routing's cost is an upper
// bound of what a router reaches with that pair, and needs no model.
struct WeakCandidate {
  std::string model;
  std::size_t rows = 0;  // training prompts the figures are over
  double weak_quality = 0;
  double strong_quality = 0;
  double weak_cost_fraction = 0;
  double random_cost_at_95 = 1;
};
struct WeakChoice {
  std::string model;
  std::vector<WeakCandidate> candidates;  // in the order given
};
[[nodiscard]] Result<WeakChoice> choose_weak_model(const std::vector<OutcomeRow>& rows, const std::vector<std::string>& candidates,
                                     std::string_view strong, std::string_view check, double train_fraction,
                                     std::uint64_t seed);

// The messages a router sees for a pair: the prompt as a user message and,
// with `source_as_system`, the row's source (an MMLU subject) as a system
// message before it, standing for the system prompt that names the task in
// an application's traffic. Without a source, no system message.
nlohmann::json pair_messages(const PairOutcome& pair, bool source_as_system);

// ------------------------------------------------------------ training ----

struct TrainingOptions {
  std::uint64_t seed = 1;
  double validation_fraction = 0.2;  // of the training rows, to choose regularization / k
  // learned: L2 strengths tried (per-example loss + l2/2 * |w|^2); empty = defaults
  std::vector<double> l2_candidates;
  int hash_bits = 14;
  // learned: the built-in embedder's vector as a feature. Off by default: on
  // held-out routing outcomes it made the model worse and slower (docs/routing.md).
  bool embedding = false;
  int embedding_tail_bytes = 512;  // learned: the embedding reads the text's last this many bytes
  int max_iterations = 300;  // L-BFGS
  // knn: neighbour counts tried; empty = defaults
  std::vector<int> k_candidates;
  std::string weak_name;
  std::string strong_name;
  std::vector<std::string> sources;  // recorded in the model file
  // learned: the system prompt as one categorical feature (per-task calibration),
  // and each pair's source given as its system prompt (pair_messages).
  bool system_prompt_feature = false;
  bool source_as_system = false;
};

// One candidate setting and its validation score.
struct ValidationResult {
  double setting = 0;  // l2 or k
  double log_loss = 0;
  double auc = 0;
};

struct TrainedModel {
  nlohmann::json model;  // the model file's content (parse_route_model reads it)
  std::vector<ValidationResult> validation;
  double chosen = 0;  // the chosen l2 or k
};

// Logistic regression over the learned features, L2-regularized, fitted by
// L-BFGS to convergence (no randomness but the validation split). The L2
// strength with the lowest validation log-loss wins; the model is refitted
// on every training row with it.
[[nodiscard]] Result<TrainedModel> train_learned(const std::vector<PairOutcome>& pairs, const TrainingOptions& options);
// k nearest neighbours over built-in embeddings; k by validation log-loss.
[[nodiscard]] Result<TrainedModel> train_knn(const std::vector<PairOutcome>& pairs, const TrainingOptions& options);

// The answer verifier of the verified cascade: a logistic
// regression like the learned scorer's over the prompt, the weak model's
// answer (its own hashed n-grams) and features of that answer that need no
// label (answer_features), predicting weak_ok. Trained on `train` (L2 by
// validation log-loss), it returns the probability for each row of `test`.
// Every row of both needs weak_response.
struct VerifierResult {
  std::vector<double> p_weak_ok;  // per test row
  std::vector<ValidationResult> validation;
  double chosen_l2 = 0;
};
[[nodiscard]] Result<VerifierResult> train_and_apply_verifier(const std::vector<PairOutcome>& train,
                                                const std::vector<PairOutcome>& test, const TrainingOptions& options);
// The same verifier as a model file (scorer "verifier") that AnswerVerifier
// loads: the live cheap-first cascade's check (router.cascade.verifier_file).
[[nodiscard]] Result<TrainedModel> train_verifier(const std::vector<PairOutcome>& pairs, const TrainingOptions& options);


// What a call is expected to cost before it is made, from the prompt alone:
// per model, cost = a + b * prompt bytes, least squares over training rows.
// Exact where a dataset's cost is the prompt (MMLU); an average over answer
// lengths where the answer is billed too (GSM8K).
struct CostModel {
  double weak_a = 0, weak_b = 0;
  double strong_a = 0, strong_b = 0;
  double mean_extra = 1;  // mean (strong - weak) over the training rows
  double extra_cost(std::string_view prompt) const;  // expected strong - weak, >= a small floor
};
CostModel fit_cost_model(const std::vector<PairOutcome>& train);

// The cost-aware ranking (`route-eval --rank gain-per-cost`): the strong
// model's expected quality gain, 1 - p_weak_ok, per expected extra dollar
// (relative to the average prompt's), negated so that, as with p_weak_ok,
// lower scores go to the strong model first. With a budget, strong calls go
// where each dollar buys the most expected quality.
std::vector<double> gain_per_cost_scores(const std::vector<PairOutcome>& pairs, const std::vector<double>& p_weak_ok,
                                         const CostModel& costs);

// ---------------------------------------------------------- evaluation ----

// One threshold of the sweep: prompts with p_weak_ok < threshold go to the
// strong model (directly, or after the weak answer failed its check).
struct CurvePoint {
  double threshold = 0;
  double strong_share = 0;   // share of prompts that called the strong model
  double quality = 0;        // mean quality
  double cost_fraction = 0;  // cost / cost of always-strong
  double pgr = 0;            // (quality - weak) / (strong - weak)
};

struct CostAtQuality {
  double target = 0;  // fraction of the strong model's quality
  std::optional<double> cost_fraction;
  std::optional<double> strong_share;
  std::optional<double> threshold;
};

struct RoutingEvaluation {
  std::size_t rows = 0;
  double weak_quality = 0;
  double strong_quality = 0;
  double weak_cost_fraction = 0;  // always-weak cost / always-strong cost
  std::optional<double> apgr;     // null when the strong model is not better
  std::optional<double> cpt_50;   // RouteLLM CPT(50%): strong-call share reaching PGR 0.5
  std::optional<double> cpt_80;
  std::vector<CostAtQuality> cost_at;  // 0.50, 0.80, 0.95 of strong quality
  // The random router (RouteLLM's baseline): APGR over `random_repeats`
  // seeded random orders, and its expected cost at 95% of strong quality.
  std::optional<double> random_apgr;
  std::optional<double> random_apgr_low;   // 2.5th percentile
  std::optional<double> random_apgr_high;  // 97.5th percentile
  std::optional<double> random_cost_at_95;
  // The oracle (strong only where it is better): the ceiling.
  std::optional<double> oracle_apgr;
  std::optional<double> oracle_cost_at_95;
  std::vector<CurvePoint> curve;  // every distinct threshold
};

struct EvaluationOptions {
  std::uint64_t seed = 1;
  int random_repeats = 200;
};

// The router sends prompt i to the weak model iff p_weak_ok[i] >= threshold;
// the sweep covers every distinct threshold. APGR is RouteLLM's: the area
// under PGR over the strong-call share 0..1 (trapezoids between the curve's
// points; equal scores are one step, which is their expected value under a
// random tie-break).
RoutingEvaluation evaluate_routing(const std::vector<PairOutcome>& pairs, const std::vector<double>& p_weak_ok,
                                   const EvaluationOptions& options = {});

// The cheap-first cascade: prompts with p_weak_ok below the threshold go to
// the strong model directly; the others to the weak model first, and to the
// strong one too when the weak answer fails its check (`weak_fails[i]`),
// paying for both. strong_share counts every prompt that called the strong model.
// With `pay_check`, every prompt that goes to the weak model first also
// pays check_cost (the second cheap model the check compares with).
RoutingEvaluation evaluate_cascade(const std::vector<PairOutcome>& pairs, const std::vector<double>& p_weak_ok,
                                   const std::vector<bool>& weak_fails, const EvaluationOptions& options = {},
                                   bool pay_check = false);

// The verified cascade: every prompt goes to the weak model first; its answer
// is escalated to the strong model (paying both) when it fails its check
// (`weak_fails[i]`) or when `p_weak_ok[i]`, the verifier's probability given
// the prompt and that answer, is below the threshold swept.
RoutingEvaluation evaluate_verified_cascade(const std::vector<PairOutcome>& pairs, const std::vector<double>& p_weak_ok,
                                            const std::vector<bool>& weak_fails, const EvaluationOptions& options = {},
                                            bool pay_check = false);

// The JSON `cascade route-eval` prints; the curve thinned to at most
// `max_curve_points` points (evenly by strong-call share, ends kept).
nlohmann::ordered_json to_json(const RoutingEvaluation& evaluation, std::size_t max_curve_points = 101);

// The weak answer check, final answers and the agreement check: router/answer_facts.h.

// ---------------------------------------------------------- converters ----

// USD per token of a model, from LiteLLM's price catalog
// (shared/data/pricing/model_prices_and_context_window.json).
struct TokenPrice {
  double input = 0;
  double output = 0;
};
[[nodiscard]] Result<TokenPrice> read_token_price(const std::string& prices_file, const std::string& key);

// Token count estimate used when no tokenizer rank files are found: UTF-8
// bytes / 4, rounded up (documented in docs/routing.md).
std::size_t estimate_tokens(std::string_view text);

// A CSV file (RFC 4180: quoted fields, doubled quotes, newlines in quotes).
[[nodiscard]] Result<std::vector<std::vector<std::string>>> read_csv(const std::string& path);

struct RouteLlmPrices {
  TokenPrice weak;    // mistralai/Mixtral-8x7B-Instruct-v0.1
  TokenPrice strong;  // gpt-4-1106-preview
  // Counts the tokens each model is billed for: the prompt as one chat user
  // message (TokenCounter::count_messages) and the answer's text. gpt-4 is
  // counted exactly (cl100k_base), Mixtral estimated with o200k_base. Null:
  // estimate_tokens (bytes / 4) of the prompt and the answer.
  std::shared_ptr<const TokenCounter> tokens;
};

// lm-sys/RouteLLM's MMLU responses (one CSV per subject: prompt, Mixtral,
// GPT-4 correctness). cost = prompt tokens x input price + 1 output token
// (the answer letter) x output price. Returns the rows written.
[[nodiscard]] Result<std::size_t> convert_routellm_mmlu(const std::string& responses_dir, const RouteLlmPrices& prices,
                                          std::ostream& out);
// RouteLLM's GSM8K responses (prompt, correctness, both responses). cost =
// prompt tokens x input price + response tokens x output price. Prompts of
// `exclude_file` (contaminated_prompts.jsonl, "eval_prompt") are left out,
// as RouteLLM does.
[[nodiscard]] Result<std::size_t> convert_routellm_gsm8k(const std::string& responses_csv, const std::string& exclude_file,
                                           const RouteLlmPrices& prices, std::ostream& out);
// RouterBench (via RouterDC): per model correctness, response and real USD
// cost. Prompts and responses are Python list literals; a model without a
// correctness value is left out of that row.
[[nodiscard]] Result<std::size_t> convert_routerbench(const std::string& csv_file, std::ostream& out);

// AlpacaEval (../shared/data/router/alpaca_eval: instructions.jsonl,
// outputs/<model>.jsonl, preferences.csv): 805 chat prompts, each model's
// answer and a GPT-4-Turbo judge's weighted preference of it against
// gpt4_1106_preview's answer (annotator weighted_alpaca_eval_gpt4_turbo).
// quality = preference - 1, so the strong baseline scores 0.5 on every prompt
// and a cheap answer the judge likes at least as much scores >= 0.5 (what
// PairOutcome::weak_ok counts). cost = the prompt as one user message x the
// input price + the answer's tokens x the output price, at the LiteLLM key
// `price_keys` names for the model. A model without a price key, an answer,
// or a judgement is left out of that row; the answer goes in `response`.
struct AlpacaEvalPricing {
  std::map<std::string, std::string> price_keys;  // AlpacaEval model -> LiteLLM key
  std::string prices_file;                        // model_prices_and_context_window.json
  std::shared_ptr<const TokenCounter> tokens;     // null: bytes / 4
  // "" = one row per prompt with every model. Otherwise one row per (prompt,
  // model other than the baseline), that model's outcome under this name
  // beside the baseline's: every cheap model's answers pooled, for training
  // an answer checker that is not tied to one cheap model.
  std::string pool_as;
};
inline constexpr std::string_view kAlpacaEvalBaseline = "gpt4_1106_preview";
// The keys used for the models in ../shared (docs/routing.md): each model's
// own price, or its base model's for a fine-tune (FuseChat, OpenHermes, vicuna).
std::map<std::string, std::string> default_alpaca_eval_price_keys();
struct AlpacaEvalConversion {
  std::size_t rows = 0;
  std::map<std::string, std::size_t> answers;  // per model, written
  std::vector<std::string> unpriced;           // models left out: no price key
};
[[nodiscard]] Result<AlpacaEvalConversion> convert_alpaca_eval(const std::string& dir, const AlpacaEvalPricing& pricing,
                                                               std::ostream& out);

// The strings of a Python list literal of strings ("['a', \"b\"]"), with
// Python's escapes decoded; nullopt when it is not one.
std::optional<std::vector<std::string>> parse_python_string_list(std::string_view text);

}  // namespace cascade
