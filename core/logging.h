#pragma once
// Structured logging on spdlog. Prompts and secrets are never logged at info:
// log a request by id/tenant/sizes, use redact() for anything key-like.
#include <spdlog/spdlog.h>

#include <string>
#include <string_view>

#include "core/config_reader.h"
#include "core/result.h"

namespace cascade {

// log.* of cascade.yaml.
struct LogConfig {
  std::string level = "info";
};
[[nodiscard]] Result<LogConfig> read_log_config(ConfigReader& reader);

// Sets the global level ("trace".."error") and a key=value friendly pattern.
void init_logging(std::string_view level);

// "sk-abc...xyz" -> "sk-a…(redacted)". For diagnostics that must mention a secret.
std::string redact(std::string_view secret);

}  // namespace cascade
