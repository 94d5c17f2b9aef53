#include "mcp/mcp_config.h"

#include "events/events.h"

namespace cascade {

Result<McpConfig> read_mcp_config(ConfigReader& r) {
  McpConfig c;
  const auto mcp = r.root()["mcp"];
  r.read(mcp, "tenant", c.tenant, "mcp");
  r.read(mcp, "ledger_url", c.ledger_url, "mcp");
  r.read(mcp, "ledger_key_env", c.ledger_key_env, "mcp");
  r.read(mcp, "timeout_ms", c.timeout_ms, "mcp");
  if (auto ok = r.status(); !ok) return std::unexpected(ok.error());
  if (!c.tenant.empty() && !valid_tenant(c.tenant))
    return fail(ErrorCode::invalid_request,
                "config 'mcp.tenant' must be 1-128 characters from [A-Za-z0-9._:-], got '" + c.tenant + "'");
  if (!c.ledger_url.empty() && !c.ledger_url.starts_with("http://") && !c.ledger_url.starts_with("https://"))
    return fail(ErrorCode::invalid_request, "config 'mcp.ledger_url' must start with http:// or https://");
  if (c.timeout_ms < 1) return fail(ErrorCode::invalid_request, "config 'mcp.timeout_ms' must be >= 1");
  return c;
}

}  // namespace cascade
