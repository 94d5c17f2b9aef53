#pragma once
// The OpenAI chat completions adapter (kind "openai"), also used for the many
// OpenAI-compatible endpoints and for Azure OpenAI (kind "azure"). Private to providers/: built by ProviderRegistry.
#include <memory>
#include <string>

#include "providers/provider.h"

namespace cascade {

// api_key "" sends no Authorization header (local servers).
std::unique_ptr<ChatProvider> make_openai_provider(ProviderConfig config, std::string api_key,
                                                   HttpClient& http);

// Azure OpenAI (kind "azure"): the same adapter, but the request goes to
// {base_url}/openai/deployments/{upstream_model}/chat/completions?api-version=V
// (V from a "?api-version=" already in base_url, else 2024-10-21), the key is
// sent as "api-key: <key>", and the body names no model (the URL does).
std::unique_ptr<ChatProvider> make_azure_openai_provider(ProviderConfig config,
                                                         std::string api_key, HttpClient& http);

}  // namespace cascade
