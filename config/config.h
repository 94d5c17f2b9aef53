#pragma once
// Cascade's configuration: config/cascade.yaml (compiled in: the documented
// defaults), overlaid by an optional YAML file, overlaid by CASCADE_*
// environment variables named after each key's path
// (kafka.bootstrap -> CASCADE_KAFKA_BOOTSTRAP).
//
// Each component owns its section: its struct, how it is read and what
// makes it invalid live in the component (kafka/kafka_config.h,
// router/router_config.h, ...), and each section is checked once, here,
// when the configuration loads. What needs more than the file (the catalog,
// a model file, PCRE2) is checked once when the component starts.
#include <map>
#include <string>
#include <string_view>

#include "budgets/budgets_config.h"
#include "cache/cache_config.h"
#include "catalog/catalog_config.h"
#include "consumers/ledger/ledger_config.h"
#include "consumers/worker/worker_config.h"
#include "gateway/gateway_config.h"
#include "core/config_reader.h"
#include "core/logging.h"
#include "core/result.h"
#include "kafka/kafka_config.h"
#include "mcp/mcp_config.h"
#include "providers/provider_config.h"
#include "resilience/resilience_config.h"
#include "router/router_config.h"
#include "state/state_config.h"
#include "tokenizer/tokenizer_config.h"

namespace cascade {

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
  GatewayConfig gateway;
  McpConfig mcp;
  LogConfig log;
};

// Loads defaults, then `yaml_file` (if not empty), then env overrides.
// Errors (unreadable file, bad YAML, wrong types, invalid values) are values
// naming the key path.
[[nodiscard]] Result<Config> load_config(const std::string& yaml_file, const EnvLookup& env = process_env());

// The compiled-in config/cascade.yaml.
std::string_view default_config_yaml();

}  // namespace cascade
