#include "providers/provider_config.h"

namespace cascade {

Result<std::map<std::string, ProviderConfig>> read_providers_config(ConfigReader& r) {
  std::map<std::string, ProviderConfig> providers;
  if (const auto p = r.root()["providers"]; p.IsMap()) {
    for (const auto& kv : p) {
      ProviderConfig pc;
      pc.name = kv.first.as<std::string>();
      const std::string path = "providers." + pc.name;
      r.read(kv.second, "kind", pc.kind, path);
      r.read(kv.second, "base_url", pc.base_url, path);
      r.read(kv.second, "api_key_env", pc.api_key_env, path);
      r.read(kv.second, "connect_timeout_ms", pc.connect_timeout_ms, path);
      r.read(kv.second, "first_token_timeout_ms", pc.first_token_timeout_ms, path);
      r.read(kv.second, "idle_timeout_ms", pc.idle_timeout_ms, path);
      r.read(kv.second, "max_concurrency", pc.max_concurrency, path);
      r.read(kv.second, "queue_timeout_ms", pc.queue_timeout_ms, path);
      r.read(kv.second, "request_timeout_ms", pc.request_timeout_ms, path);
      r.read(kv.second, "headers", pc.headers, path);
      providers[pc.name] = std::move(pc);
    }
  } else if (p.IsDefined() && !p.IsNull()) {
    return fail(ErrorCode::invalid_request, "config key 'providers' must be a mapping");
  }
  if (auto ok = r.status(); !ok) return std::unexpected(ok.error());
  if (auto it = providers.find("openai"); it != providers.end()) {
    if (!r.env()(env_name_for("providers.openai.base_url"))) {
      if (auto url = r.env()("OPENAI_BASE_URL"); url && !url->empty()) it->second.base_url = *url;
    }
  }
  return providers;
}

}  // namespace cascade
