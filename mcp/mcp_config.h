#pragma once
// mcp.* of cascade.yaml: what `cascade mcp` (the Model Context Protocol
// server over stdio, docs/mcp.md) needs beyond the Kafka settings every
// client shares. Owned and checked here.
#include <string>

#include "core/config_reader.h"
#include "core/result.h"

namespace cascade {

struct McpConfig {
  // The tenant every tool call of a session is made for (charged, limited,
  // reported). `cascade mcp --tenant` wins over it; one of the two is
  // required. Never taken from a tool's arguments.
  std::string tenant;
  // Base URL of the ledger's HTTP API (query_usage reads /api/usage there).
  // "" = http://<ledger.metrics_listen>.
  std::string ledger_url;
  // The environment variable holding an admin API key (`cascade keys create
  // --admin`) that query_usage shows the ledger: one listening off loopback
  // asks for it. "" = none (a loopback ledger is open). The key itself never
  // lives in the configuration.
  std::string ledger_key_env;
  // Longest wait of one tool call: an answer from the workers, the ledger's
  // reply, the broker's acknowledgement of a budget.
  int timeout_ms = 120000;
};

// invalid_request naming the key: a tenant outside the prompt events' rule
// (1-128 characters from [A-Za-z0-9._:-]), a ledger_url that is not
// http(s)://, a timeout_ms below 1.
[[nodiscard]] Result<McpConfig> read_mcp_config(ConfigReader& reader);

}  // namespace cascade
