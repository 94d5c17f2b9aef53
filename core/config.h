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

// The response cache (docs/cache.md).
struct SemanticCacheConfig {
  double threshold = 0.90;  // minimum cosine similarity of a hit
  bool verify = true;       // run the false-hit verifier on candidates
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

struct RouterConfig {
  TierThresholds balanced{0.30, 0.60};
  TierThresholds cost{0.55, 0.85};
  TierThresholds quality{0.15, 0.45};
  TierThresholds speed{0.6, 0.9};
  // Models tried after the routed one fails, per tier ("small"...): catalog ids
  // in order. A tier without a list falls back to the next cheapest available
  // models of that tier, other providers first, then the next stronger tier.
  std::map<std::string, std::vector<std::string>> fallbacks;
  int max_fallbacks = 2;
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
};

struct LedgerConfig {
  std::string metrics_listen = "127.0.0.1:9464";
};

struct LogConfig {
  std::string level = "info";
};

struct Config {
  KafkaConfig kafka;
  WorkerConfig worker;
  LimitsConfig limits;
  StateConfig state;
  CacheConfig cache;
  CatalogConfig catalog;
  RouterConfig router;
  ResilienceConfig resilience;
  std::map<std::string, ProviderConfig> providers;
  std::map<std::string, TenantLimits> tenants;  // "default" + per tenant

  const TenantLimits& limits_for(const std::string& tenant) const;
  LedgerConfig ledger;
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
