#include <spdlog/spdlog.h>

#include "providers/anthropic_provider.h"
#include "providers/gemini_provider.h"
#include "providers/openai_provider.h"
#include "providers/provider.h"

namespace cascade {

Result<ProviderRegistry> ProviderRegistry::build(const std::map<std::string, ProviderConfig>& configs,
                                                 HttpClient& http, const EnvLookup& env) {
  ProviderRegistry registry;
  for (const auto& [name, configured] : configs) {
    // A bad kind or URL is a configuration mistake whether or not a key is set.
    if (configured.kind != "openai" && configured.kind != "azure" &&
        configured.kind != "gemini" && configured.kind != "anthropic") {
      return fail(ErrorCode::invalid_request,
                  "providers." + name + ".kind: unknown provider kind '" + configured.kind +
                      "' (known: openai, azure, gemini, anthropic)");
    }
    if (configured.base_url.empty()) {
      return fail(ErrorCode::invalid_request, "providers." + name + ".base_url is empty");
    }
    std::string api_key;
    if (!configured.api_key_env.empty()) {
      std::optional<std::string> value = env(configured.api_key_env);
      if (!value || value->empty()) {
        spdlog::info("provider {} disabled: {} is not set", name, configured.api_key_env);
        continue;
      }
      api_key = std::move(*value);
    }
    ProviderConfig config = configured;
    config.name = name;
    const auto make_provider = configured.kind == "gemini"      ? make_gemini_provider
                               : configured.kind == "anthropic" ? make_anthropic_provider
                               : configured.kind == "azure"     ? make_azure_openai_provider
                                                                : make_openai_provider;
    registry.providers_.emplace(name, make_provider(std::move(config), std::move(api_key), http));
  }
  return registry;
}

ChatProvider* ProviderRegistry::find(std::string_view name) const {
  const auto it = providers_.find(name);
  return it == providers_.end() ? nullptr : it->second.get();
}

std::vector<std::string> ProviderRegistry::names() const {
  std::vector<std::string> out;
  out.reserve(providers_.size());
  for (const auto& [name, provider] : providers_) out.push_back(name);
  return out;
}

}  // namespace cascade
