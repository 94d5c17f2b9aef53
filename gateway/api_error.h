#pragma once
// An HTTP API error before it is rendered in one API's shape (OpenAI's
// {"error":{message,type,param,code}}, Anthropic's {"type":"error","error":
// {type,message}}). Internal to the gateway.
#include <string>

#include "core/result.h"

namespace cascade::gateway {

struct ApiError {
  int status = 500;
  std::string message;
  std::string param;  // the request field at fault; "" = none
  std::string code;   // a stable machine code ("model_not_found", "budget_exceeded"); "" = none
  int retry_after_seconds = -1;  // 429/503: the Retry-After header; -1 = none
};

inline ApiError bad_request(std::string message, std::string param = {}, std::string code = {}) {
  return ApiError{400, std::move(message), std::move(param), std::move(code), -1};
}

// A worker's error event (or a gateway failure) as the HTTP status it stands for.
ApiError api_error_of(ErrorCode code, std::string message);
ApiError api_error_of(std::string_view code, std::string message);

}  // namespace cascade::gateway
