#include "core/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace cascade {

void init_logging(std::string_view level) {
  static bool initialized = false;
  if (!initialized) {
    auto logger = spdlog::stderr_color_mt("cascade");
    spdlog::set_default_logger(logger);
    initialized = true;
  }
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ [%t] %v");
  spdlog::set_level(spdlog::level::from_str(std::string(level)));
}

std::string redact(std::string_view secret) {
  if (secret.size() <= 4) return "(redacted)";
  return std::string(secret.substr(0, 4)) + "...(redacted)";
}

Result<LogConfig> read_log_config(ConfigReader& r) {
  LogConfig c;
  r.read(r.root()["log"], "level", c.level, "log");
  if (auto ok = r.status(); !ok) return std::unexpected(ok.error());
  return c;
}

}  // namespace cascade
