#include "core/result.h"

namespace cascade {

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_request: return "invalid_request";
    case ErrorCode::budget_exceeded: return "budget_exceeded";
    case ErrorCode::provider_error: return "provider_error";
    case ErrorCode::timeout: return "timeout";
    case ErrorCode::unavailable: return "unavailable";
    case ErrorCode::internal: return "internal";
    case ErrorCode::rate_limited: return "rate_limited";
    case ErrorCode::cancelled: return "cancelled";
  }
  return "internal";
}

}  // namespace cascade
