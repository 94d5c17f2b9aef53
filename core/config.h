#pragma once
// Cascade configuration: built-in defaults (config/cascade.yaml compiled in),
// overlaid by an optional YAML file, overlaid by CASCADE_* environment variables
// named after each key's path (kafka.bootstrap -> CASCADE_KAFKA_BOOTSTRAP).
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace cascade {

struct KafkaConfig {
  std::string bootstrap;  // empty = embedded mock cluster in-process
  int partitions = 16;
  int fetch_wait_max_ms = 5;
  int linger_ms = 2;
  std::string worker_group = "cascade-workers";
  std::string ledger_group = "cascade-ledger";
  std::string extra;  // "k=v;k=v" extra librdkafka properties
  std::string requests_topic = "cascade.requests";
  std::string ledger_topic = "cascade.ledger";
  std::string dlq_topic = "cascade.dlq";
  std::string replies_topic = "cascade.replies";  // default reply_to of the CLI clients
  // Compacted changelog of the state stores (docs/state.md).
  std::string cache_changelog_topic = "cascade.cache-changelog";
  // Budgets (compacted; docs/ledger.md): definitions set at run time, the
  // spend state the ledger publishes for every worker, and budget alerts.
  std::string budgets_topic = "cascade.budgets";
  std::string spend_topic = "cascade.spend";
  std::string alerts_topic = "cascade.alerts";
  // Quality samples: LLM-as-judge grades of cheaper tiers' answers (docs/routing.md).
  std::string quality_topic = "cascade.quality";

  bool embedded() const { return bootstrap.empty(); }
  // Parsed `extra` as key/value pairs.
  std::vector<std::pair<std::string, std::string>> extra_properties() const;
};

struct WorkerConfig {
  int threads = 1;
  int max_in_flight = 512;
  double resume_fraction = 0.5;
  int commit_interval_ms = 500;
  std::string metrics_listen = "127.0.0.1:9465";  // "" = no metrics endpoint
};

struct LimitsConfig {
  std::size_t max_event_bytes = 1 << 20;
  int default_max_tokens = 1024;
  // Budget enforcement (docs/ledger.md): how long a worker counts a finished
  // request's cost itself before trusting the ledger's spend state to include
  // it; and past what age of that state a tenant with a budget is refused
  // (fail closed; 0 = never).
  std::int64_t budget_settle_ms = 2000;
  std::int64_t budget_max_state_age_ms = 0;
};

// Where the tiktoken rank files are (docs/tokenizer.md); "" = the usual places.
struct TokenizerConfig {
  std::string dir;
};

struct StateConfig {
  std::string dir = "./data/state";
  std::uint64_t max_bytes = std::uint64_t{1} << 30;  // cache entries beyond are evicted, oldest first
  std::int64_t completed_ttl_s = 7 * 24 * 3600;
  std::int64_t responses_ttl_s = 24 * 3600;
  std::int64_t embeddings_ttl_s = 30 * 24 * 3600;
  std::int64_t vectors_ttl_s = 24 * 3600;
  int maintenance_interval_ms = 60000;
  bool replicated = true;  // publish to and apply the cache changelog
  int restore_timeout_ms = 120000;
};

// How the semantic cache embeds prompts (docs/cache.md, "Embedders").
struct EmbedderConfig {
  std::string kind = "builtin";  // builtin | openai (any OpenAI-compatible /v1/embeddings)
  std::string base_url;          // openai: e.g. http://127.0.0.1:11434/v1 (Ollama)
  std::string model;             // openai: e.g. nomic-embed-text
  std::string api_key_env;       // openai: env var holding the key; "" = no key
  // builtin: 0 = 256. openai: 0 = learned from the first answer.
  std::size_t dimension = 0;
  // openai: one embeddings call, whole and to connect. A request waits for
  // its embedding at most this long; a failed or late one is a cache miss.
  long timeout_ms = 2000;
  long connect_timeout_ms = 1000;
};

// The response cache (docs/cache.md).
struct SemanticCacheConfig {
  double threshold = 0.90;  // minimum cosine similarity of a hit
  bool verify = true;       // run the false-hit verifier on candidates
  // Verifier rules (docs/cache.md: "Verification"), name -> value as written
  // ("persons" -> "false", "max_order_inversions" -> "1"). The built-in
  // defaults list every rule. Names and values are checked by the cache's
  // set_verifier_option (semantic_matcher_options in cache/semantic.h) when a
  // cascade command starts and when a worker builds its cache.
  std::map<std::string, std::string> verifier;
  EmbedderConfig embedder;
};

struct CacheConfig {
  bool enabled = true;
  // Part of every entry's version tag: change it to invalidate every entry.
  std::string version = "1";
  // Requests with a higher explicit temperature are never cached.
  double max_temperature = 1.0;
  // Size of the chunks a hit is replayed in.
  int replay_chunk_bytes = 256;
  SemanticCacheConfig semantic;
};

struct CatalogConfig {
  std::string file;  // empty = built-in copy of config/models.yaml
  std::string baseline_model = "gpt-4o";
};

struct TierThresholds {
  double small_max = 0.30;
  double medium_max = 0.60;
};

// For the learned and knn scorers (docs/routing.md): p = probability that the
// cheaper model answers as well as the strong one. p >= small_min -> small
// tier; p >= medium_min -> medium; else large.
struct ProbabilityThresholds {
  double small_min = 0.80;
  double medium_min = 0.72;
};

// router.cascade: the cheap-first cascade (docs/routing.md, "Cheap-first
// cascade"). The routed model answers into a buffer; its answer is checked
// (refusal, empty, truncated, JSON format, optionally a judge's score) and
// either published or replaced by the next tier's answer, streamed.
struct CascadeConfig {
  bool enabled = false;  // off: no request is cascaded, whatever it asks
  // Preferences whose requests are cascaded unless they say "cascade": false;
  // a prompt's "cascade": true cascades any preference.
  std::vector<std::string> preferences = {"cost"};
  std::string judge_model;    // catalog id grading the cheap answer; "" = no judge
  double min_judge_score = 3;  // 1..5; a lower grade escalates
  long judge_timeout_ms = 10000;  // a later grade counts as no grade (the answer is accepted)
  // A cheap answer longer than this stops being held back: what came so far
  // is published and the rest streams unchecked.
  std::size_t max_buffer_bytes = 65536;
  // A learned answer check (cascade route-train --router verifier): answers
  // it gives a probability below min_verifier_p escalate. "" = none.
  std::string verifier_file;
  double min_verifier_p = 0.5;
  // Catalog id of a second cheap model asked the same request in parallel
  // with the cheap one; a cheap answer whose final answer (option letter,
  // number) differs from its answer escalates. "" = no agreement check.
  std::string agreement_model;
};

// router.policies.<name>: how a request routed under this policy is scored.
// Unset fields keep the router's own: the thresholds of `preference` (or of
// the request's preference when it is "").
struct RoutePolicyConfig {
  std::string preference;                           // "" = the request's; else cost|balanced|quality|speed
  std::optional<TierThresholds> thresholds;         // small_max + medium_max (heuristic)
  std::optional<ProbabilityThresholds> probability;  // small_min + medium_min (learned, knn)
  std::optional<bool> cost_aware;                    // unset = router.cost_aware.enabled
};

// router.cost_aware (docs/routing.md, "Cost-aware routing"): with the learned
// or knn scorer, the strong model's expected gain (1 - p_weak_ok) is weighed
// against what it costs more for this request than for a reference-sized
// one, so dollars go where they buy the most quality: a long prompt needs a
// larger expected gain to be upgraded, a short one a smaller.
struct CostAwareConfig {
  bool enabled = false;
  // The request size at which the probability thresholds keep their meaning.
  std::int64_t reference_input_tokens = 1000;
  // Output assumed when pricing a request before it is answered (capped at
  // its max_tokens), for the request and the reference alike.
  std::int64_t expected_output_tokens = 256;
};

// router.rules[i]: when every given match holds, the action applies. The
// first matching rule wins. Regexes are compiled (PCRE2) by the router.
struct RouteRuleConfig {
  std::string name;  // shown in reasons; "" = "rules[<i>]"
  // Match (at least one): "" / empty = any.
  std::string tenant;
  std::string tag;                              // metadata.tags contains it
  std::map<std::string, std::string> metadata;  // metadata.<key> equals value (as text)
  std::string prompt;                           // PCRE2 regex searched in the last user message
  // Action: at most one of model, tier, policy; residency may come with any.
  std::string model;      // pin this catalog model
  std::string tier;       // small | medium | large
  std::string policy;     // a name in router.policies (or "default")
  std::string residency;  // required region, on top of the request's own
};

// router.experiment: splits auto-routed traffic between two policies by a
// hash of the request id (stable on redelivery). name "" = no experiment.
struct RouteExperimentConfig {
  std::string name;
  std::vector<std::string> policies;  // exactly two: [a, b]
  double split = 0.5;                 // share of requests given policies[0]
};

struct RouterConfig {
  TierThresholds balanced{0.30, 0.60};
  TierThresholds cost{0.55, 0.85};
  TierThresholds quality{0.15, 0.45};
  TierThresholds speed{0.6, 0.9};
  std::string scorer = "heuristic";  // heuristic | learned | knn
  std::string model_file;            // learned/knn model; "" = built-in config/router/learned.json
  // Calibrated on held-out routing outcomes (docs/routing.md): the built-in
  // learned model reaches ~95% of the strong model's quality at p ~0.78-0.88.
  ProbabilityThresholds balanced_p{0.80, 0.72};
  ProbabilityThresholds cost_p{0.75, 0.60};
  ProbabilityThresholds quality_p{0.85, 0.78};
  ProbabilityThresholds speed_p{0.70, 0.55};
  // Models tried after the routed one fails, per tier ("small"...): catalog ids
  // in order. A tier without a list falls back to the next cheapest available
  // models of that tier, other providers first, then the next stronger tier.
  std::map<std::string, std::vector<std::string>> fallbacks;
  int max_fallbacks = 2;
  CascadeConfig cascade;
  CostAwareConfig cost_aware;
  // Policies (docs/routing.md, "Policies"): named threshold sets, rules
  // matched first to last, and an A/B experiment between two policies.
  std::map<std::string, RoutePolicyConfig> policies;
  std::vector<RouteRuleConfig> rules;
  RouteExperimentConfig experiment;
};

struct RetryConfig {
  int max_retries = 2;             // retries on the same model before falling back
  int backoff_base_ms = 200;       // first backoff ceiling; doubles per retry
  int backoff_cap_ms = 5000;       // ceiling of any backoff
  int max_retry_after_ms = 20000;  // a provider asking to wait longer is fallen back from
};

struct BreakerConfig {
  int window = 20;            // outcomes remembered per provider+model
  int min_calls = 10;         // no verdict on fewer outcomes than this
  double failure_rate = 0.5;  // opens at this share of failures in the window
  int open_ms = 30000;        // how long an open breaker refuses calls
};

struct ResilienceConfig {
  RetryConfig retry;
  BreakerConfig breaker;
};

struct ProviderConfig {
  std::string name;
  std::string kind = "openai";
  std::string base_url;
  std::string api_key_env;  // name of the env var holding the key; "" = no key
  long connect_timeout_ms = 5000;
  long first_token_timeout_ms = 60000;  // request sent -> first content delta
  long idle_timeout_ms = 30000;         // longest silence between deltas
  long request_timeout_ms = 120000;     // the whole call
  int max_concurrency = 0;              // calls at once per worker process; 0 = unlimited
  long queue_timeout_ms = 10000;        // longest wait for a free slot, then fall back
  std::map<std::string, std::string> headers;  // extra request headers
};

// Per-tenant rate limits, enforced by each worker process before a provider is
// called. tenants.default applies to tenants without an entry of their own.
struct TenantLimits {
  double requests_per_second = 0;  // 0 = unlimited
  double tokens_per_minute = 0;    // estimated prompt + max_tokens, settled with actual usage
  long max_wait_ms = 5000;         // a request over the limit waits this long, then fails
  // Semantic cache of this tenant: 0 = cache.semantic.threshold.
  double semantic_threshold = 0;
  bool semantic_verify = true;
  // Verifier rules of this tenant over cache.semantic.verifier (same names
  // and values); only the rules set here.
  std::map<std::string, std::string> semantic_verifier;
};

struct LedgerConfig {
  // Serves /metrics, /api/usage, /api/budgets and the dashboard (docs/ledger.md).
  std::string metrics_listen = "127.0.0.1:9464";
  std::string dir = "./data/ledger";  // the ledger's RocksDB (dedupe ids, aggregates, alerts)
  // How long a request id is remembered for deduplication; cost events older
  // than this are refused (their id may be forgotten). Longer than any redelivery.
  std::int64_t dedupe_ttl_days = 40;
  int batch_max_events = 2000;      // cost events applied in one RocksDB write
  int spend_heartbeat_ms = 5000;    // the spend state's liveness record on cascade.spend
};

// USD limits of one budget; 0 = no limit for that period. Over soft_percent
// of a limit a worker downgrades; at the limit it refuses (docs/ledger.md).
struct BudgetLimitsConfig {
  double daily_usd = 0;
  double monthly_usd = 0;
  double soft_percent = 80;
};

// budgets.<tenant>: the tenant's limits, and optional limits per model and per tag.
struct TenantBudgetConfig {
  BudgetLimitsConfig limits;
  std::map<std::string, BudgetLimitsConfig> models;
  std::map<std::string, BudgetLimitsConfig> tags;
};

// Budget alerts: fired once per budget, period and threshold.
struct AlertsConfig {
  std::vector<double> thresholds_percent = {50, 80, 100};
  std::string webhook_url;      // not secret (a local receiver); "" = none
  std::string webhook_url_env;  // env var holding the URL (Slack's carry a secret); wins over webhook_url
  int webhook_timeout_ms = 5000;
  int webhook_max_attempts = 6;
  int webhook_backoff_base_ms = 500;
  int webhook_backoff_cap_ms = 30000;
};

// Quality sampling (docs/routing.md, "Quality sampling"): a share of the
// answers of tiers below the judge's is graded 1-5 by the judge, off the
// request's path, and published to kafka.topics.quality.
struct QualityConfig {
  double sample_rate = 0;   // 0..1; 0 = off
  std::string judge_model;  // catalog id; "" = catalog.baseline_model
  long timeout_ms = 30000;  // one grading call; a later one is dropped (counted)
  int max_in_flight = 64;   // grading calls at once per event loop; more are skipped (counted)
};

struct LogConfig {
  std::string level = "info";
};

struct Config {
  KafkaConfig kafka;
  WorkerConfig worker;
  LimitsConfig limits;
  TokenizerConfig tokenizer;
  StateConfig state;
  CacheConfig cache;
  CatalogConfig catalog;
  RouterConfig router;
  ResilienceConfig resilience;
  std::map<std::string, ProviderConfig> providers;
  std::map<std::string, TenantLimits> tenants;  // "default" + per tenant

  const TenantLimits& limits_for(const std::string& tenant) const;
  LedgerConfig ledger;
  std::map<std::string, TenantBudgetConfig> budgets;  // by tenant
  AlertsConfig alerts;
  QualityConfig quality;
  LogConfig log;
};

// Reads an environment variable; injectable so tests need not touch the process env.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup process_env();

// The environment variable that overrides a key path ("state.dir" -> "CASCADE_STATE_DIR").
std::string env_name_for(std::string_view key_path);

// Loads defaults, then `yaml_file` (if not empty), then env overrides.
// Errors (unreadable file, bad YAML, wrong types) are values with the key path.
Result<Config> load_config(const std::string& yaml_file, const EnvLookup& env = process_env());

// The compiled-in default files.
std::string_view default_config_yaml();
std::string_view default_models_yaml();

}  // namespace cascade
