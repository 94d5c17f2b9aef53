#include "gateway/api_error.h"

namespace cascade::gateway {

ApiError api_error_of(ErrorCode code, std::string message) {
  switch (code) {
    case ErrorCode::invalid_request: return {400, std::move(message), {}, "invalid_request", -1};
    case ErrorCode::budget_exceeded: return {429, std::move(message), {}, "budget_exceeded", -1};
    case ErrorCode::rate_limited: return {429, std::move(message), {}, "rate_limited", 1};
    case ErrorCode::provider_error: return {502, std::move(message), {}, "provider_error", -1};
    case ErrorCode::timeout: return {504, std::move(message), {}, "timeout", -1};
    case ErrorCode::unavailable: return {503, std::move(message), {}, "unavailable", 1};
    case ErrorCode::cancelled: return {499, std::move(message), {}, "cancelled", -1};
    case ErrorCode::internal: break;
  }
  return {500, std::move(message), {}, "internal", -1};
}

ApiError api_error_of(std::string_view code, std::string message) {
  for (ErrorCode c : {ErrorCode::invalid_request, ErrorCode::budget_exceeded, ErrorCode::rate_limited,
                      ErrorCode::provider_error, ErrorCode::timeout, ErrorCode::unavailable, ErrorCode::cancelled}) {
    if (to_string(c) == code) return api_error_of(c, std::move(message));
  }
  // Codes a newer worker may add: a server-side failure.
  ApiError error = api_error_of(ErrorCode::internal, std::move(message));
  error.code = std::string(code);
  return error;
}

}  // namespace cascade::gateway
