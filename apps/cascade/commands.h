#pragma once
// The `cascade` subcommands. Each returns the process exit code.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace cascade::cli {

struct CommonOptions {
  std::string config_file;     // -c/--config (or CASCADE_CONFIG)
  std::string bootstrap_file;  // --bootstrap-file: brokers written by `cascade broker`
};

struct BrokerOptions {
  std::string bootstrap_file;
  int partitions = 0;  // 0 = kafka.partitions
  int brokers = 1;
};

struct SendOptions {
  std::string tenant = "default";
  std::string prompt;
  std::string model = "auto";
  std::string preference = "balanced";
  std::string system;
  int max_tokens = 0;
  int timeout_s = 120;
  std::string cascade;  // "" = the config decides; on | off
  std::vector<std::string> tags;  // metadata.tags (per-tag budgets, reports)
};

struct ReplayOptions {
  std::string file;
  int count = 300;
  int tenants = 4;
  int show = 3;
  int timeout_s = 300;
};

struct ReportOptions {
  std::string tenant;
  std::string since;  // "7d", "24h", "90m" or "YYYY-MM-DD"; "" = everything
  double baseline_grade = 0;  // the baseline's known judged grade; 0 = unknown
};

// `cascade budget set|show` (docs/ledger.md).
struct BudgetCommandOptions {
  std::string tenant;
  std::string model;  // a model budget of the tenant
  std::string tag;    // a tag budget of the tenant
  double daily_usd = -1;    // -1 = unchanged
  double monthly_usd = -1;  // -1 = unchanged
  double soft_percent = -1;
  bool clear = false;  // remove the run-time budget (the configured one applies again)
  int timeout_s = 30;
};

// `cascade tuning show|reset` (docs/routing.md, "Closed loop").
struct TuningCommandOptions {
  std::string tenant;  // show: "" = every tenant; reset: required
  std::string key;     // reset: one tuning key ("default/balanced"); "" = every key of the tenant
  int timeout_s = 30;
};

// `cascade cache purge`: removes a tenant's cache entries on every worker.
struct CachePurgeOptions {
  std::string tenant;
  std::string bootstrap;  // --bootstrap: brokers, over --bootstrap-file and kafka.bootstrap
  int timeout_s = 30;
};

// `cascade gateway`.
struct GatewayCommandOptions {
  std::string port_file;  // written once listening
};

// `cascade keys create|list|revoke` (docs/gateway.md, "API keys").
struct KeysCommandOptions {
  std::string tenant;  // create: the key's tenant; list: only this tenant's
  std::string name;    // create: a label
  bool admin = false;  // create: an operator key (the ledger's API), no tenant
  std::string key_id;  // revoke
  int timeout_s = 30;
};

struct UpstreamOptions {
  int port = 0;
  std::string port_file;
  int chunks = 20;
  int delay_ms = 0;
  int threads = 1;
  std::string outcomes;                 // recorded answers and their quality (route-data output)
  std::string rules;                    // JSON lines of SimulatedAnswerRule
  std::vector<std::string> model_map;   // UPSTREAM=RECORDED: requests for UPSTREAM get RECORDED's answers
  std::vector<std::string> tier_map;    // TIER=RECORDED: every catalog model of TIER gets RECORDED's answers
};

// `cascade cache-eval`: semantic cache precision/recall on a paraphrase set.
struct CacheEvalCommandOptions {
  std::string pairs_file;
  std::string embedder = "builtin";  // or the base URL of an OpenAI-compatible API
  std::string embedder_model;
  std::string api_key_env;
  std::string thresholds = "0.80,0.85,0.90,0.92,0.95";
  int dimension = 0;  // builtin embedder; 0 = its default
  int candidates = 0;  // 0 = default
  bool no_verify = false;
  std::string verifier;  // "name=value,..." verifier options
  std::size_t limit = 0;  // 0 = every pair
  std::string details_file;
  std::string verifier_model = "rules";  // rules | builtin (the shipped learned verifier) | a model file
  double target_precision = 0;             // 0 = the model's default operating point
  std::string min_probabilities;           // "p1,p2,...": rows at these cutoffs too
};

// `cascade cache-train`: trains the learned hit verifier (docs/cache.md).
struct CacheTrainCommandOptions {
  std::vector<std::string> pairs;  // [name=]path, .jsonl or PAWS .tsv
  std::string out;                 // the model file to write
  std::string held_out_dir;        // "" = none; else <dir>/<name>.test.jsonl
  std::uint64_t seed = 1;
  int rounds = 200;
  int max_depth = 4;
  double eta = 0.1;
  double threshold = 0.80;
  double target_precision = 0.90;
  std::string calibrate_on;
  std::string vetoes = "numbers,symbols,negation,entities";
  std::size_t neighbours = 8;
  bool labelled_rows = false;
  double train_fraction = 0.6;
  double calibration_fraction = 0.2;
};

int run_broker(const CommonOptions& common, const BrokerOptions& options);
int run_worker(const CommonOptions& common);
int run_ledger(const CommonOptions& common);
int run_gateway(const CommonOptions& common, const GatewayCommandOptions& options);
int run_keys_create(const CommonOptions& common, const KeysCommandOptions& options);
int run_keys_list(const CommonOptions& common, const KeysCommandOptions& options);
int run_keys_revoke(const CommonOptions& common, const KeysCommandOptions& options);
int run_send(const CommonOptions& common, const SendOptions& options);
int run_replay(const CommonOptions& common, const ReplayOptions& options);
int run_report(const CommonOptions& common, const ReportOptions& options);
// Publishes the tenant's purge record to the cache changelog that every
// worker applies (docs/state.md); needs a cluster, never an embedded broker
// of its own.
int run_cache_purge(const CommonOptions& common, const CachePurgeOptions& options);
int run_upstream(const CommonOptions& common, const UpstreamOptions& options);
int run_cache_eval(const CacheEvalCommandOptions& options);
int run_cache_train(const CacheTrainCommandOptions& options);

// `cascade route "prompt" [--explain]`: the router's decision, scores and drivers.
struct RouteOptions {
  std::string prompt;
  std::string system;
  std::string preference = "balanced";
  std::string scorer;      // "" = router.scorer
  std::string model_file;  // "" = router.model_file
  bool explain = false;
  // Who asks, for router.rules and router.experiment (docs/routing.md, "Policies").
  std::string tenant;
  std::string id = "route-explain";  // the experiment arm depends on it
  std::string metadata;              // JSON object ("" = {}): tags, residency, ...
  std::string model = "auto";        // a catalog id pins it
  int max_tokens = 0;                // 0 = limits.default_max_tokens
};

// `cascade route-data SOURCE --in PATH --out FILE`: public routing datasets
// to outcomes JSON lines (docs/routing.md).
struct RouteDataOptions {
  std::string source;  // routellm-mmlu | routellm-gsm8k | routerbench
  std::string in;
  std::string out;
  std::string prices;  // LiteLLM price catalog (RouteLLM sets have no costs)
  std::string weak_price_key = "together_ai/mistralai/Mixtral-8x7B-Instruct-v0.1";
  std::string strong_price_key = "gpt-4-1106-preview";
  std::string exclude;  // routellm-gsm8k: contaminated_prompts.jsonl
  std::string tokenizers;  // rank files' folder; "" = TokenCounter::find_directory's search
  std::vector<std::string> price_keys;  // alpaca-eval: MODEL=LITELLM_KEY over the defaults
  std::string pool_as;                  // alpaca-eval: one row per cheap answer, under this model name
};

// `cascade route-train --outcomes FILE --out config/router/NAME.json`.
struct RouteTrainOptions {
  std::vector<std::string> outcomes;
  std::string out;
  std::string router = "learned";  // learned | knn | verifier (the cascade's answer check)
  std::string weak;                // "" with strong "" = the cheaper of a two-model file
  std::string strong;
  double train_fraction = 1.0;  // < 1: only the training side of the split route-eval makes
  std::uint64_t seed = 1;
  int hash_bits = 14;
  bool embedding = false;
  int embedding_tail_bytes = 512;
};

// `cascade route-eval --outcomes FILE --strong M --weak M [--router R] [--train-fraction F]`.
struct RouteEvalOptions {
  std::string outcomes;
  std::string weak;
  std::string strong;
  std::string router = "learned";  // heuristic | learned | knn | cascade | random
  std::string cascade_scorer = "learned";
  std::string check_model;  // cascade: escalate when the weak answer disagrees with this model's
  double train_fraction = -1;  // < 0 = use the shipped model on every row
  double test_split = -1;      // > 0 = only the test side of that split (shipped model)
  std::uint64_t seed = 1;
  std::string model_file;  // instead of the shipped one
  std::size_t curve_points = 101;
  std::string details_file;  // one JSON line per evaluated row: prompt, p_weak_ok, outcomes
  std::string rank = "probability";  // probability | gain-per-cost (expected gain per expected extra dollar)
  bool source_as_system = false;     // learned: each row's source as its system prompt, a categorical feature
  std::string choose_weak;  // comma-separated candidates: the weak model is chosen among them on the training rows
};

int run_route(const CommonOptions& common, const RouteOptions& options);

// `cascade mcp --tenant T`: Cascade as an MCP server over stdio (docs/mcp.md).
struct McpOptions {
  std::string tenant;  // "" = mcp.tenant
};
int run_mcp(const CommonOptions& common, const McpOptions& options);
// Publishes a run-time budget to cascade.budgets (apps/cascade/ledger_commands.cpp).
int run_budget_set(const CommonOptions& common, const BudgetCommandOptions& options);
// Prints the budgets in force with their spend.
int run_budget_show(const CommonOptions& common, const BudgetCommandOptions& options);
// Prints the closed loop's tuned tier cuts from kafka.topics.router_updates.
int run_tuning_show(const CommonOptions& common, const TuningCommandOptions& options);
// Asks the ledger's tuner to reset a tenant's tuned cuts to the configured ones.
int run_tuning_reset(const CommonOptions& common, const TuningCommandOptions& options);
int run_route_data(const RouteDataOptions& options);
int run_route_train(const RouteTrainOptions& options);
int run_route_eval(const CommonOptions& common, const RouteEvalOptions& options);

}  // namespace cascade::cli
