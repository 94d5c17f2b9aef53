#pragma once
// The native Google Gemini adapter (kind "gemini"): streamGenerateContent with
// alt=sse. Private to providers/: built by ProviderRegistry.
#include <memory>
#include <string>

#include "providers/provider.h"

namespace cascade {

// base_url like https://generativelanguage.googleapis.com/v1beta. api_key ""
// sends no x-goog-api-key header (local servers); the key never goes into the URL.
// A conversation Gemini's text-only mapping cannot carry (tool turns, image or
// audio parts) completes with invalid_request before start_chat returns, which
// then returns 0: no transfer was started.
std::unique_ptr<ChatProvider> make_gemini_provider(ProviderConfig config, std::string api_key,
                                                   HttpClient& http);

}  // namespace cascade
