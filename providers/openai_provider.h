#pragma once
// The OpenAI chat completions adapter (kind "openai"), also used for the many
// OpenAI-compatible endpoints. Private to providers/: built by ProviderRegistry.
#include <memory>
#include <string>

#include "providers/provider.h"

namespace cascade {

// api_key "" sends no Authorization header (local servers).
std::unique_ptr<ChatProvider> make_openai_provider(ProviderConfig config, std::string api_key,
                                                   HttpClient& http);

}  // namespace cascade
