#include "providers/adapter_support.h"
#include "core/text.h"

#include <algorithm>
#include <cctype>

#include "core/logging.h"

namespace cascade {

using json = nlohmann::json;

bool equals_ignore_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string without_secret(std::string message, const std::string& secret) {
  if (secret.empty()) return message;
  const std::string replacement = redact(secret);
  for (auto pos = message.find(secret); pos != std::string::npos;
       pos = message.find(secret, pos + replacement.size())) {
    message.replace(pos, secret.size(), replacement);
  }
  return message;
}

std::string quotable(std::string_view text) {
  text = trim_space(text);
  std::string out;
  out.reserve(std::min(text.size(), kMaxQuotedBodyChars));
  for (const char c : text) {
    if (out.size() >= kMaxQuotedBodyChars) {
      out += "...";
      break;
    }
    out.push_back(std::iscntrl(static_cast<unsigned char>(c)) ? ' ' : c);
  }
  return out;
}

std::int64_t count_of(const json& object, std::string_view key) {
  const auto it = object.find(key);
  if (it == object.end()) return 0;
  if (it->is_number_integer()) return std::max<std::int64_t>(it->get<std::int64_t>(), 0);
  if (it->is_number()) return std::max<std::int64_t>(static_cast<std::int64_t>(it->get<double>()), 0);
  return 0;
}

std::string dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

Error http_status_error(long status, std::string message, std::int64_t retry_after_ms) {
  const ErrorCode code = status == 408 || status == 504 ? ErrorCode::timeout : ErrorCode::provider_error;
  Error error{code, std::move(message)};
  error.http_status = static_cast<int>(status);
  error.retry_after_ms = retry_after_ms;
  return error;
}

Error transport_error(CURLcode result, std::string_view curl_error, bool response_started,
                      std::string_view cut_message) {
  const std::string detail(curl_error);
  switch (result) {
    case CURLE_OPERATION_TIMEDOUT:
      return Error{ErrorCode::timeout, "upstream timed out: " + detail};
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
      return Error{ErrorCode::unavailable, "upstream unreachable: " + detail};
    default:
      if (response_started) return Error{ErrorCode::provider_error, std::string(cut_message) + ": " + detail};
      return Error{ErrorCode::provider_error, detail};
  }
}

}  // namespace cascade
