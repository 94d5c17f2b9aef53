#pragma once
// MCP over Streamable HTTP (MCP 2025-06-18, "Transports") at the gateway's
// /mcp: one McpServer per session, the session's tenant the API key's.
// POST carries one JSON-RPC message and gets its response as JSON (or 202
// for a notification); initialize opens a session, named by the
// Mcp-Session-Id response header that every later request carries; DELETE
// ends it; GET (a server-to-client stream) is 405: Cascade's tools never send
// messages of their own. Internal to the gateway.
#include <memory>

#include "gateway/gateway.h"
#include "mcp/mcp.h"

namespace cascade::gateway {

// The route to register for "/mcp". `backend` serves every session; calls
// run on the gateway's I/O thread and may answer from any thread.
GatewayRoute mcp_route(std::shared_ptr<McpBackend> backend);

}  // namespace cascade::gateway
