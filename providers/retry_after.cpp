#include "providers/retry_after.h"
#include "core/text.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <string>

namespace cascade {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

std::optional<double> number(std::string_view s) {
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v) || v < 0) return std::nullopt;
  return v;
}

}  // namespace

std::optional<std::int64_t> parse_duration_ms(std::string_view text) {
  text = trim_space(text);
  if (text.empty()) return std::nullopt;
  double total_ms = 0;
  while (!text.empty()) {
    std::size_t i = 0;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
    if (i == 0) return std::nullopt;
    const auto value = number(text.substr(0, i));
    if (!value) return std::nullopt;
    text.remove_prefix(i);
    std::size_t u = 0;
    while (u < text.size() && std::isalpha(static_cast<unsigned char>(text[u]))) ++u;
    const std::string_view unit = text.substr(0, u);
    text.remove_prefix(u);
    if (unit == "ms") total_ms += *value;
    else if (unit == "s" || unit.empty()) total_ms += *value * 1000;
    else if (unit == "m") total_ms += *value * 60'000;
    else if (unit == "h") total_ms += *value * 3'600'000;
    else return std::nullopt;
  }
  return static_cast<std::int64_t>(std::ceil(total_ms));
}

bool is_rate_limit_reset_header(std::string_view name) {
  return iequals(name, "x-ratelimit-reset-requests") || iequals(name, "x-ratelimit-reset-tokens");
}

std::optional<std::int64_t> retry_after_ms_from_header(std::string_view name, std::string_view value) {
  value = trim_space(value);
  if (iequals(name, "retry-after")) {
    const auto seconds = number(value);
    if (!seconds) return std::nullopt;  // HTTP-date form: not worth a clock dependency
    return static_cast<std::int64_t>(std::ceil(*seconds * 1000));
  }
  if (iequals(name, "retry-after-ms")) {
    const auto ms = number(value);
    if (!ms) return std::nullopt;
    return static_cast<std::int64_t>(std::ceil(*ms));
  }
  if (is_rate_limit_reset_header(name)) return parse_duration_ms(value);
  return std::nullopt;
}

void RetryAfterTracker::observe(std::string_view name, std::string_view value) {
  const auto wait = retry_after_ms_from_header(name, value);
  if (!wait) return;
  if (!is_rate_limit_reset_header(name)) {
    ms_ = *wait;
    explicit_ = true;
  } else if (!explicit_ && (ms_ < 0 || *wait < ms_)) {
    ms_ = *wait;
  }
}

}  // namespace cascade
