#pragma once
// Shared by the blocking and the asynchronous OpenAI-compatible embedders
// (private to embeddings/).
#include <cstdint>
#include <string>
#include <string_view>

namespace cascade::embeddings_wire {

// Error bodies are read only to quote their message; vectors of a large batch
// fit easily (128 inputs x 3072 floats is about 8 MB of JSON).
inline constexpr std::size_t kMaxBodyBytes = 64 * 1024 * 1024;

// `text` with every occurrence of `secret` redacted.
std::string scrub(std::string text, std::string_view secret);

// How long a response header asks to wait, in ms: Retry-After (delta-seconds;
// an HTTP date is ignored) or retry-after-ms. -1 when the header says nothing.
std::int64_t retry_after_ms(std::string_view name, std::string_view value);

}  // namespace cascade::embeddings_wire
