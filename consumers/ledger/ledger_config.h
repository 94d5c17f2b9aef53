#pragma once
// The ledger's sections of cascade.yaml, owned and checked here: ledger.*
// (its store, endpoint, dedupe and batching) and alerts.* (budget alerts and
// their webhook). docs/ledger.md.
#include <cstdint>
#include <string>
#include <vector>

#include "core/config_reader.h"
#include "core/result.h"

namespace cascade {

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

[[nodiscard]] Result<LedgerConfig> read_ledger_config(ConfigReader& reader);
[[nodiscard]] Result<AlertsConfig> read_alerts_config(ConfigReader& reader);

}  // namespace cascade
