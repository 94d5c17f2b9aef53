#pragma once
// `cascade mcp` once its configuration is loaded (docs/mcp.md).
#include <string>

#include "config/config.h"

namespace cascade::cli {

// Serves one MCP session over stdio for `tenant` until stdin closes:
// messages are read from stdin, responses written to `protocol_fd` (the
// process's real stdout; run_mcp points fd 1 at stderr first, so nothing
// else can reach the client). Returns the exit code.
int mcp_stdio_service(const Config& config, const std::string& tenant, int protocol_fd);

}  // namespace cascade::cli
