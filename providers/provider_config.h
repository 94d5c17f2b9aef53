#pragma once
// providers.<name> of cascade.yaml: one entry per upstream (docs in
// config/cascade.yaml). The key itself is never here: api_key_env names the
// environment variable that holds it.
#include <map>
#include <string>

#include "core/config_reader.h"
#include "core/result.h"

namespace cascade {

struct ProviderConfig {
  std::string name;
  std::string kind = "openai";
  std::string base_url;
  std::string api_key_env;  // name of the env var holding the key; "" = no key
  long connect_timeout_ms = 5000;
  long first_token_timeout_ms = 60000;  // request sent -> first content delta
  long idle_timeout_ms = 30000;         // longest silence between deltas
  long request_timeout_ms = 120000;     // the whole call
  int max_concurrency = 0;              // calls at once per worker process; 0 = unlimited
  long queue_timeout_ms = 10000;        // longest wait for a free slot, then fall back
  std::map<std::string, std::string> headers;  // extra request headers
};

// providers.*, by name. As the official OpenAI SDKs do, OPENAI_BASE_URL sets
// providers.openai.base_url unless CASCADE_PROVIDERS_OPENAI_BASE_URL is set.
// Kinds are checked when the providers are built (ProviderRegistry::build).
[[nodiscard]] Result<std::map<std::string, ProviderConfig>> read_providers_config(ConfigReader& reader);

}  // namespace cascade
