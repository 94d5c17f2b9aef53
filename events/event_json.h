#pragma once
// What events.cpp (events Cascade produces, read back) and prompt_event.cpp
// (the prompt event's rules) share: JSON written without throwing, UTF-8
// handling, values quoted in messages, the enums' names, nesting and number
// rules. Internal to events/.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "events/events.h"

namespace cascade::event_json {

using nlohmann::json;

inline constexpr int kSchemaVersion = 1;
// Serializing JSON recurses per nesting level; bounding depth at the door keeps
// every later consumer of the messages (router, providers, cache) off the stack edge.
inline constexpr int kMaxNestingDepth = 128;
// Values echoed in error messages are cut so a hostile payload cannot inflate them.
inline constexpr std::size_t kMaxEchoBytes = 64;
inline constexpr std::size_t kMaxParserMessageBytes = 256;

// Produced events must never throw on bad UTF-8 from upstream text; it becomes U+FFFD.
inline std::string dump_json(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

inline bool is_valid_utf8(std::string_view text) {
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (i < n) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    std::size_t length = 0;
    unsigned char second_min = 0x80;
    unsigned char second_max = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) second_min = 0xA0;  // overlong
      if (lead == 0xED) second_max = 0x9F;  // UTF-16 surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) second_min = 0x90;  // overlong
      if (lead == 0xF4) second_max = 0x8F;  // above U+10FFFF
    } else {
      return false;
    }
    if (i + length > n) return false;
    const auto second = static_cast<unsigned char>(text[i + 1]);
    if (second < second_min || second > second_max) return false;
    for (std::size_t k = 2; k < length; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) return false;
    }
    i += length;
  }
  return true;
}

// Longest prefix of at most max_bytes that does not end inside a UTF-8 sequence.
inline std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut);
}

inline std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t triple = (static_cast<unsigned char>(bytes[i]) << 16) |
                                 (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                                 static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(triple >> 18) & 0x3F];
    out += kAlphabet[(triple >> 12) & 0x3F];
    out += kAlphabet[(triple >> 6) & 0x3F];
    out += kAlphabet[triple & 0x3F];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t triple = static_cast<unsigned char>(bytes[i]) << 16;
    if (rest == 2) triple |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += kAlphabet[(triple >> 18) & 0x3F];
    out += kAlphabet[(triple >> 12) & 0x3F];
    out += rest == 2 ? kAlphabet[(triple >> 6) & 0x3F] : '=';
    out += '=';
  }
  return out;
}

// How a JSON value is shown in an error message: short, and never the whole value.
inline std::string describe(const json& value) {
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return value.get<bool>() ? "true" : "false";
    case json::value_t::string: {
      const auto& text = value.get_ref<const std::string&>();
      const auto prefix = utf8_prefix(text, kMaxEchoBytes);
      return "'" + std::string(prefix) + (prefix.size() < text.size() ? "...'" : "'");
    }
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return dump_json(value);
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    default: return "an unsupported value";
  }
}

// ---- enums ---------------------------------------------------------------------

template <class Enum, std::size_t N>
inline std::optional<Enum> enum_from_string(std::string_view text,
                                     const std::array<std::pair<std::string_view, Enum>, N>& names) {
  for (const auto& [name, value] : names) {
    if (name == text) return value;
  }
  return std::nullopt;
}

inline constexpr std::array<std::pair<std::string_view, Preference>, 4> kPreferenceNames{{
    {"cost", Preference::cost},
    {"balanced", Preference::balanced},
    {"quality", Preference::quality},
    {"speed", Preference::speed},
}};
inline constexpr std::array<std::pair<std::string_view, Priority>, 2> kPriorityNames{{
    {"interactive", Priority::interactive},
    {"batch", Priority::batch},
}};
inline constexpr std::array<std::pair<std::string_view, CacheMode>, 3> kCacheModeNames{{
    {"off", CacheMode::off},
    {"exact", CacheMode::exact},
    {"semantic", CacheMode::semantic},
}};
inline constexpr std::array<std::pair<std::string_view, CacheOutcome>, 3> kCacheOutcomeNames{{
    {"miss", CacheOutcome::miss},
    {"exact", CacheOutcome::exact},
    {"semantic", CacheOutcome::semantic},
}};
inline constexpr std::array<std::string_view, 5> kRoles{"system", "developer", "user", "assistant",
                                                 "tool"};

// Deepest nesting of the JSON text, stopping once it passes the limit.
inline int nesting_depth(std::string_view text) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '{':
      case '[':
        deepest = std::max(deepest, ++depth);
        if (deepest > kMaxNestingDepth) return deepest;
        break;
      case '}':
      case ']': --depth; break;
      default: break;
    }
  }
  return deepest;
}

inline std::string parser_message(const json::exception& error) {
  std::string_view what = error.what();
  // nlohmann prefixes "[json.exception.parse_error.101] ", noise for a requester.
  if (auto end = what.find("] "); !what.empty() && what.front() == '[' && end != what.npos) {
    what.remove_prefix(end + 2);
  }
  const auto prefix = utf8_prefix(what, kMaxParserMessageBytes);
  return std::string(prefix) + (prefix.size() < what.size() ? "..." : "");
}

// Accepts 7 and 7.0 alike: JSON has one number type, and JSON Schema calls 7.0 an integer.
inline std::optional<std::int64_t> as_int64(const json& value) {
  if (value.is_number_unsigned()) {
    const auto unsigned_value = value.get<std::uint64_t>();
    if (unsigned_value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(unsigned_value);
  }
  if (value.is_number_integer()) return value.get<std::int64_t>();
  if (value.is_number_float()) {
    const double number = value.get<double>();
    if (std::isfinite(number) && std::trunc(number) == number && std::fabs(number) < 9.0e18) {
      return static_cast<std::int64_t>(number);
    }
  }
  return std::nullopt;
}

}  // namespace cascade::event_json
