#pragma once
// The native Anthropic Messages adapter (kind "anthropic"): POST /v1/messages
// with stream=true, translating Cascade's OpenAI-format messages on the way in
// and Anthropic's SSE events on the way out. Private to providers/: built by
// ProviderRegistry.
#include <memory>
#include <string>

#include "providers/provider.h"

namespace cascade {

// api_key "" sends no x-api-key header (local servers, gateways that add it).
// base_url is the API root ("https://api.anthropic.com"); a trailing "/v1" is
// accepted too. Messages Anthropic cannot take (tool calls and tool results)
// are rejected with invalid_request through on_complete, called from inside
// start_chat, which then returns 0 (no transfer).
std::unique_ptr<ChatProvider> make_anthropic_provider(ProviderConfig config, std::string api_key,
                                                      HttpClient& http);

}  // namespace cascade
