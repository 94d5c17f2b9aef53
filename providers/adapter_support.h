#pragma once
// Helpers every provider adapter needs. Private to providers/.
#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace cascade {

// Error bodies are read up to this size; quoted to the requester up to the other.
constexpr std::size_t kMaxErrorBodyBytes = 64 * 1024;
constexpr std::size_t kMaxQuotedBodyChars = 300;

bool equals_ignore_case(std::string_view a, std::string_view b);

// Upstream error bodies and curl messages are quoted to the requester; a
// server echoing the key back must not leak it.
std::string without_secret(std::string message, const std::string& secret);

// One line of printable text for quoting a non-JSON body.
std::string quotable(std::string_view text);

// JSON text that never throws on invalid UTF-8.
std::string dump(const nlohmann::json& value);

// A token count from a usage object: missing, non-numeric or negative = 0.
std::int64_t count_of(const nlohmann::json& object, std::string_view key);

// An HTTP error response as an Error: 408 and 504 are timeouts, the rest
// provider errors; carries the status and the wait the provider asked for.
Error http_status_error(long status, std::string message, std::int64_t retry_after_ms);

// A failed transfer as an Error: timeouts, unreachable upstreams, and, once a
// response had begun (`cut_message`, e.g. "stream ended before [DONE]"), a
// cut stream. Never a success: the caller saw no end marker.
Error transport_error(CURLcode result, std::string_view curl_error, bool response_started,
                      std::string_view cut_message);

}  // namespace cascade
