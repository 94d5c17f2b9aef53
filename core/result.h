#pragma once
// Expected failures (bad input, provider errors, timeouts) travel as values
// all the way to an error event; exceptions are reserved for programmer errors.
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace cascade {

// Codes are part of event schema v1 (docs/events.md): extend, never rename.
enum class ErrorCode {
  invalid_request,
  budget_exceeded,
  provider_error,
  timeout,
  unavailable,
  internal,
  rate_limited,  // the tenant's request or token rate is over its limit
  cancelled,     // its requester cancelled it (a cancel event, docs/events.md "Cancel event")
};

std::string_view to_string(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::internal;
  std::string message;
  // Transport detail of provider failures, for retry decisions: the HTTP
  // status (0 = none, e.g. a connection failure) and how long the provider
  // asked us to wait (Retry-After, x-ratelimit-reset-*), -1 = not said.
  int http_status = 0;
  std::int64_t retry_after_ms = -1;
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(ErrorCode code, std::string message) {
  return std::unexpected(Error{code, std::move(message)});
}

}  // namespace cascade
