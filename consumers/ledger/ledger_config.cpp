#include "consumers/ledger/ledger_config.h"

namespace cascade {

Result<LedgerConfig> read_ledger_config(ConfigReader& r) {
  LedgerConfig c;
  const auto ledger = r.root()["ledger"];
  r.read(ledger, "metrics_listen", c.metrics_listen, "ledger");
  r.read(ledger, "dir", c.dir, "ledger");
  r.read(ledger, "dedupe_ttl_days", c.dedupe_ttl_days, "ledger");
  r.read(ledger, "batch_max_events", c.batch_max_events, "ledger");
  r.read(ledger, "spend_heartbeat_ms", c.spend_heartbeat_ms, "ledger");
  if (auto ok = r.status(); !ok) return std::unexpected(ok.error());
  if (c.dedupe_ttl_days < 1 || c.batch_max_events < 1 || c.spend_heartbeat_ms < 1)
    return fail(ErrorCode::invalid_request,
                "config 'ledger': dedupe_ttl_days, batch_max_events and spend_heartbeat_ms must be >= 1");
  return c;
}

Result<AlertsConfig> read_alerts_config(ConfigReader& r) {
  AlertsConfig c;
  const auto alerts = r.root()["alerts"];
  r.read(alerts, "thresholds_percent", c.thresholds_percent, "alerts");
  r.read(alerts, "webhook_url", c.webhook_url, "alerts");
  r.read(alerts, "webhook_url_env", c.webhook_url_env, "alerts");
  r.read(alerts, "webhook_timeout_ms", c.webhook_timeout_ms, "alerts");
  r.read(alerts, "webhook_max_attempts", c.webhook_max_attempts, "alerts");
  r.read(alerts, "webhook_backoff_base_ms", c.webhook_backoff_base_ms, "alerts");
  r.read(alerts, "webhook_backoff_cap_ms", c.webhook_backoff_cap_ms, "alerts");
  if (auto ok = r.status(); !ok) return std::unexpected(ok.error());
  for (double t : c.thresholds_percent) {
    if (!(t > 0 && t <= 1000))
      return fail(ErrorCode::invalid_request, "config 'alerts.thresholds_percent': each must be in (0, 1000]");
  }
  if (c.webhook_max_attempts < 1 || c.webhook_timeout_ms < 1 || c.webhook_backoff_base_ms < 0 ||
      c.webhook_backoff_cap_ms < c.webhook_backoff_base_ms)
    return fail(ErrorCode::invalid_request,
                "config 'alerts': need webhook_max_attempts >= 1, webhook_timeout_ms >= 1 and "
                "0 <= webhook_backoff_base_ms <= webhook_backoff_cap_ms");
  return c;
}

}  // namespace cascade
