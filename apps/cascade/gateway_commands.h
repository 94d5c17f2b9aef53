#pragma once
// The front door's subcommands once their configuration is loaded: `cascade
// gateway` and `cascade keys create|list|revoke` (docs/gateway.md).
#include <string>

#include "apps/cascade/commands.h"
#include "config/config.h"

namespace cascade::cli {

int gateway_service(const Config& config, const GatewayCommandOptions& options);
int keys_create(const Config& config, const KeysCommandOptions& options);
int keys_list(const Config& config, const KeysCommandOptions& options);
int keys_revoke(const Config& config, const KeysCommandOptions& options);

}  // namespace cascade::cli
