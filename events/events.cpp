#include "events/events.h"

#include "events/field_rules.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <utility>

namespace cascade {

using nlohmann::json;

namespace {

constexpr int kSchemaVersion = 1;

using event_rules::is_valid_id;
using event_rules::is_valid_tenant;
constexpr std::size_t kMaxTopicBytes = 249;  // Kafka's own limit
constexpr std::size_t kMaxMessages = 10000;
constexpr std::int64_t kMaxMaxTokens = 1'000'000;
constexpr double kMaxTemperature = 2.0;
constexpr std::size_t kMaxMetadataBytes = 16 * 1024;
// Oversized events are still parsed up to this size to address the error reply;
// beyond it reading them costs more than the reply is worth.
constexpr std::size_t kMaxIdentityScanBytes = 16 * 1024 * 1024;
// Serializing JSON recurses per nesting level; bounding depth at the door keeps
// every later consumer of the messages (router, providers, cache) off the stack edge.
constexpr int kMaxNestingDepth = 128;
constexpr std::size_t kMaxDeadLetterPayloadBytes = 64 * 1024;
// Values echoed in error messages are cut so a hostile payload cannot inflate them.
constexpr std::size_t kMaxEchoBytes = 64;
constexpr std::size_t kMaxParserMessageBytes = 256;

// Produced events must never throw on bad UTF-8 from upstream text; it becomes U+FFFD.
std::string dump_json(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

bool is_valid_utf8(std::string_view text) {
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
std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut);
}

std::string base64_encode(std::string_view bytes) {
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
std::string describe(const json& value) {
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
std::optional<Enum> enum_from_string(std::string_view text,
                                     const std::array<std::pair<std::string_view, Enum>, N>& names) {
  for (const auto& [name, value] : names) {
    if (name == text) return value;
  }
  return std::nullopt;
}

constexpr std::array<std::pair<std::string_view, Preference>, 4> kPreferenceNames{{
    {"cost", Preference::cost},
    {"balanced", Preference::balanced},
    {"quality", Preference::quality},
    {"speed", Preference::speed},
}};
constexpr std::array<std::pair<std::string_view, Priority>, 2> kPriorityNames{{
    {"interactive", Priority::interactive},
    {"batch", Priority::batch},
}};
constexpr std::array<std::pair<std::string_view, CacheMode>, 3> kCacheModeNames{{
    {"off", CacheMode::off},
    {"exact", CacheMode::exact},
    {"semantic", CacheMode::semantic},
}};
constexpr std::array<std::pair<std::string_view, CacheOutcome>, 3> kCacheOutcomeNames{{
    {"miss", CacheOutcome::miss},
    {"exact", CacheOutcome::exact},
    {"semantic", CacheOutcome::semantic},
}};
constexpr std::array<std::string_view, 5> kRoles{"system", "developer", "user", "assistant",
                                                 "tool"};

// ---- prompt field rules (shared by full validation and identity recovery) -------

bool is_valid_topic(std::string_view topic) {
  if (topic.empty() || topic.size() > kMaxTopicBytes) return false;
  if (topic == "." || topic == "..") return false;
  return std::ranges::all_of(topic, [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  });
}

const std::string kIdRule(event_rules::kIdRule);
const std::string kTenantRule(event_rules::kTenantRule);
const std::string kReplyToRule =
    "'reply_to' must be a Kafka topic name: 1 to 249 characters from [A-Za-z0-9._-], "
    "not '.' or '..'";

struct PromptIdentity {
  std::optional<std::string> id;
  std::optional<std::string> tenant;
  std::optional<std::string> reply_to;

  // Keeps a value only if it is valid, so an error reply is never addressed to
  // a topic or key the requester did not legitimately name.
  void offer(std::string_view key, std::string value) {
    if (key == "id") id = is_valid_id(value) ? std::optional(std::move(value)) : std::nullopt;
    if (key == "tenant") {
      tenant = is_valid_tenant(value) ? std::optional(std::move(value)) : std::nullopt;
    }
    if (key == "reply_to") {
      reply_to = is_valid_topic(value) ? std::optional(std::move(value)) : std::nullopt;
    }
  }
  void withdraw(std::string_view key) {
    if (key == "id") id.reset();
    if (key == "tenant") tenant.reset();
    if (key == "reply_to") reply_to.reset();
  }
};

// Reads the top-level id/tenant/reply_to strings of an event the DOM parser
// rejected (too big, too deep, or broken further on). Its state is one bit per
// nesting level, so a hostile payload cannot make it allocate much.
class IdentityScanner {
 public:
  using string_t = json::string_t;

  PromptIdentity identity;

  bool null() { return scalar(); }
  bool boolean(bool) { return scalar(); }
  bool number_integer(json::number_integer_t) { return scalar(); }
  bool number_unsigned(json::number_unsigned_t) { return scalar(); }
  bool number_float(json::number_float_t, const string_t&) { return scalar(); }
  bool binary(json::binary_t&) { return scalar(); }
  bool string(string_t& value) {
    if (depth_ == 1 && object_at_root_ && !pending_key_.empty()) {
      identity.offer(pending_key_, std::move(value));
    }
    pending_key_.clear();
    return true;
  }
  bool start_object(std::size_t) {
    if (depth_ == 0) object_at_root_ = true;
    container_value();
    ++depth_;
    return true;
  }
  bool start_array(std::size_t) {
    container_value();
    ++depth_;
    return true;
  }
  bool end_object() {
    --depth_;
    return true;
  }
  bool end_array() {
    --depth_;
    return true;
  }
  bool key(string_t& name) {
    if (depth_ == 1 && object_at_root_ && is_identity_key(name)) pending_key_ = name;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;
  }

 private:
  static bool is_identity_key(std::string_view name) {
    return name == "id" || name == "tenant" || name == "reply_to";
  }
  // A later non-string value for an identity key replaces the earlier one, as
  // the DOM parser would, so the scan agrees with full parsing on duplicates.
  bool scalar() {
    if (depth_ == 1 && !pending_key_.empty()) identity.withdraw(pending_key_);
    pending_key_.clear();
    return true;
  }
  void container_value() {
    if (depth_ == 1 && !pending_key_.empty()) identity.withdraw(pending_key_);
    pending_key_.clear();
  }

  std::size_t depth_ = 0;
  bool object_at_root_ = false;
  std::string pending_key_;
};

PromptIdentity scan_identity(std::string_view payload) {
  IdentityScanner scanner;
  json::sax_parse(payload.begin(), payload.end(), &scanner);
  return std::move(scanner.identity);
}

PromptIdentity read_identity(const json& event) {
  PromptIdentity identity;
  for (const char* key : {"id", "tenant", "reply_to"}) {
    auto it = event.find(key);
    if (it != event.end() && it->is_string()) identity.offer(key, it->get<std::string>());
  }
  return identity;
}

// Deepest nesting of the JSON text, stopping once it passes the limit.
int nesting_depth(std::string_view text) {
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

std::string parser_message(const json::exception& error) {
  std::string_view what = error.what();
  // nlohmann prefixes "[json.exception.parse_error.101] ", noise for a requester.
  if (auto end = what.find("] "); !what.empty() && what.front() == '[' && end != what.npos) {
    what.remove_prefix(end + 2);
  }
  const auto prefix = utf8_prefix(what, kMaxParserMessageBytes);
  return std::string(prefix) + (prefix.size() < what.size() ? "..." : "");
}

std::string index_path(std::string_view base, std::size_t index) {
  return std::string(base) + "[" + std::to_string(index) + "]";
}

std::optional<std::string> validate_content_parts(const json& parts, const std::string& path) {
  for (std::size_t j = 0; j < parts.size(); ++j) {
    const auto& part = parts[j];
    const auto part_path = index_path(path, j);
    if (!part.is_object()) return "'" + part_path + "' must be an object, got " + describe(part);
    auto type = part.find("type");
    if (type == part.end()) return "missing required field '" + part_path + ".type'";
    if (!type->is_string()) {
      return "'" + part_path + ".type' must be a string, got " + describe(*type);
    }
  }
  return std::nullopt;
}

std::optional<std::string> validate_message(const json& message, std::size_t index) {
  const auto path = index_path("messages", index);
  if (!message.is_object()) return "'" + path + "' must be an object, got " + describe(message);

  auto role = message.find("role");
  if (role == message.end()) return "missing required field '" + path + ".role'";
  if (!role->is_string() ||
      std::ranges::find(kRoles, role->get_ref<const std::string&>()) == kRoles.end()) {
    return "'" + path + ".role' must be one of system|developer|user|assistant|tool, got " +
           describe(*role);
  }

  auto content = message.find("content");
  if (content != message.end() && content->is_string()) return std::nullopt;
  if (content != message.end() && content->is_array()) {
    return validate_content_parts(*content, path + ".content");
  }
  if (content == message.end() || content->is_null()) {
    auto tool_calls = message.find("tool_calls");
    const bool has_tool_calls =
        tool_calls != message.end() && tool_calls->is_array() && !tool_calls->empty();
    if (*role == "assistant" && has_tool_calls) return std::nullopt;
    if (content == message.end()) return "missing required field '" + path + ".content'";
    return "'" + path + ".content' may be null only on an assistant message with tool_calls";
  }
  return "'" + path +
         ".content' must be a string, an array of content parts, or null on an assistant "
         "message with tool_calls, got " +
         describe(*content);
}

std::optional<std::string> validate_messages(const json& messages) {
  if (!messages.is_array() || messages.empty() || messages.size() > kMaxMessages) {
    return "'messages' must be a non-empty array of at most 10000 messages, got " +
           (messages.is_array() ? std::to_string(messages.size()) + " messages"
                                : describe(messages));
  }
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (auto problem = validate_message(messages[i], i)) return problem;
  }
  return std::nullopt;
}

// Accepts 7 and 7.0 alike: JSON has one number type, and JSON Schema calls 7.0 an integer.
std::optional<std::int64_t> as_int64(const json& value) {
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

template <class Enum, std::size_t N>
std::optional<std::string> read_enum(const json& event, const char* key,
                                     const std::array<std::pair<std::string_view, Enum>, N>& names,
                                     Enum& out) {
  auto it = event.find(key);
  if (it == event.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) {
    if (auto value = enum_from_string(it->get_ref<const std::string&>(), names)) {
      out = *value;
      return std::nullopt;
    }
  }
  std::string choices;
  for (const auto& [name, value] : names) {
    if (!choices.empty()) choices += '|';
    choices += name;
  }
  return "'" + std::string(key) + "' must be one of " + choices + ", got " + describe(*it);
}

// Optional fields treat an explicit null as absent: OpenAI SDKs send null for unset options.
std::optional<std::string> validate_options(json& event, const ModelExists& model_exists,
                                            PromptEvent& prompt) {
  if (auto it = event.find("model"); it != event.end() && !it->is_null()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      return "'model' must be \"auto\" or a catalog model id, got " + describe(*it);
    }
    const auto& model = it->get_ref<const std::string&>();
    if (model != "auto" && model_exists && !model_exists(model)) {
      return "unknown model " + describe(*it) + ": 'model' must be \"auto\" or a catalog model id";
    }
    prompt.model = model;
  }
  if (auto problem = read_enum(event, "preference", kPreferenceNames, prompt.preference)) {
    return problem;
  }
  if (auto it = event.find("max_tokens"); it != event.end() && !it->is_null()) {
    auto value = as_int64(*it);
    if (!value || *value < 1 || *value > kMaxMaxTokens) {
      return "'max_tokens' must be an integer between 1 and 1000000, got " + describe(*it);
    }
    prompt.max_tokens = static_cast<int>(*value);
  }
  if (auto it = event.find("temperature"); it != event.end() && !it->is_null()) {
    const double value = it->is_number() ? it->get<double>() : std::nan("");
    if (!std::isfinite(value) || value < 0 || value > kMaxTemperature) {
      return "'temperature' must be a number between 0 and 2, got " + describe(*it);
    }
    prompt.temperature = value;
  }
  if (auto it = event.find("stream"); it != event.end() && !it->is_null()) {
    if (!it->is_boolean()) return "'stream' must be true or false, got " + describe(*it);
    prompt.stream = it->get<bool>();
  }
  if (auto problem = read_enum(event, "priority", kPriorityNames, prompt.priority)) {
    return problem;
  }
  if (auto problem = read_enum(event, "cache", kCacheModeNames, prompt.cache)) return problem;
  if (auto it = event.find("cascade"); it != event.end() && !it->is_null()) {
    if (!it->is_boolean()) return "'cascade' must be true or false, got " + describe(*it);
    prompt.cascade = it->get<bool>();
  }
  if (auto it = event.find("response_format"); it != event.end() && !it->is_null()) {
    const bool typed = it->is_object() && it->contains("type") && it->at("type").is_string();
    if (!typed) {
      return "'response_format' must be an object with a string 'type', got " + describe(*it);
    }
    prompt.response_format = std::move(*it);
  }
  // Routed by (a model that can call tools) and forwarded to the provider;
  // any other value is ignored, as `tools` was before the router looked at it.
  if (auto it = event.find("tools"); it != event.end() && it->is_array() && !it->empty()) {
    prompt.tools = std::move(*it);
  }
  if (auto it = event.find("tool_choice"); it != event.end() && !it->is_null()) {
    const bool valid = (it->is_string() && (*it == "auto" || *it == "none" || *it == "required")) ||
                       (it->is_object() && it->contains("type") && it->at("type").is_string());
    if (!valid) {
      return "'tool_choice' must be \"auto\", \"none\", \"required\" or an object with a string 'type', got " +
             describe(*it);
    }
    prompt.tool_choice = std::move(*it);
  }
  if (auto it = event.find("metadata"); it != event.end() && !it->is_null()) {
    if (!it->is_object()) return "'metadata' must be an object, got " + describe(*it);
    const auto size = dump_json(*it).size();
    if (size > kMaxMetadataBytes) {
      return "'metadata' is " + std::to_string(size) +
             " bytes serialized, larger than the 16384-byte limit";
    }
    prompt.metadata = std::move(*it);
  }
  return std::nullopt;
}

std::unexpected<RejectedPrompt> reject(std::string message, PromptIdentity identity = {}) {
  return std::unexpected(RejectedPrompt{Error{ErrorCode::invalid_request, std::move(message)},
                                        std::move(identity.id), std::move(identity.tenant),
                                        std::move(identity.reply_to)});
}

std::unexpected<RejectedPrompt> reject_unparsed(std::string message, std::string_view payload) {
  PromptIdentity identity;
  if (payload.size() <= kMaxIdentityScanBytes) identity = scan_identity(payload);
  return reject(std::move(message), std::move(identity));
}

std::expected<PromptEvent, RejectedPrompt> parse_prompt_event_unguarded(
    std::string_view payload, const PromptLimits& limits, const ModelExists& model_exists) {
  if (payload.size() > limits.max_event_bytes) {
    return reject_unparsed("event is " + std::to_string(payload.size()) +
                               " bytes, larger than limits.max_event_bytes (" +
                               std::to_string(limits.max_event_bytes) + ")",
                           payload);
  }
  if (nesting_depth(payload) > kMaxNestingDepth) {
    return reject_unparsed(
        "event nests arrays/objects deeper than " + std::to_string(kMaxNestingDepth) + " levels",
        payload);
  }
  json event;
  try {
    event = json::parse(payload.begin(), payload.end());
  } catch (const json::exception& error) {
    return reject_unparsed("event is not valid JSON: " + parser_message(error), payload);
  }
  if (!event.is_object()) {
    return reject("event must be a JSON object, got " + describe(event));
  }

  PromptIdentity identity = read_identity(event);
  auto require_string = [&](const char* key, const std::string& rule,
                            bool valid) -> std::optional<std::string> {
    auto it = event.find(key);
    if (it == event.end()) return "missing required field '" + std::string(key) + "'";
    if (!valid) return rule + ", got " + describe(*it);
    return std::nullopt;
  };
  if (auto problem = require_string("id", kIdRule, identity.id.has_value())) {
    return reject(std::move(*problem), std::move(identity));
  }
  if (auto problem = require_string("tenant", kTenantRule, identity.tenant.has_value())) {
    return reject(std::move(*problem), std::move(identity));
  }
  if (auto problem = require_string("reply_to", kReplyToRule, identity.reply_to.has_value())) {
    return reject(std::move(*problem), std::move(identity));
  }
  auto messages = event.find("messages");
  if (messages == event.end()) return reject("missing required field 'messages'", identity);
  if (auto problem = validate_messages(*messages)) return reject(std::move(*problem), identity);

  PromptEvent prompt;
  if (auto problem = validate_options(event, model_exists, prompt)) {
    return reject(std::move(*problem), std::move(identity));
  }
  prompt.id = std::move(*identity.id);
  prompt.tenant = std::move(*identity.tenant);
  prompt.reply_to = std::move(*identity.reply_to);
  prompt.messages = std::move(*messages);
  return prompt;
}

// ---- reading produced events back ------------------------------------------------

// Reads typed fields of an event, remembering only the first problem so the
// caller checks once; field paths are dotted ("usage.input_tokens").
class FieldReader {
 public:
  FieldReader(const json& object, std::string event_name, std::string prefix = {},
              std::optional<Error>* first_error = nullptr)
      : object_(object),
        event_name_(std::move(event_name)),
        prefix_(std::move(prefix)),
        error_(first_error ? first_error : &own_error_) {}
  // error_ may point into this object, so a copy would report into the original.
  FieldReader(const FieldReader&) = delete;
  FieldReader& operator=(const FieldReader&) = delete;

  FieldReader nested(const char* key) {
    const json* child = find(key, json::value_t::object, "an object");
    return FieldReader(child ? *child : empty_object(), event_name_, prefix_ + key + ".", error_);
  }

  std::string string(const char* key) {
    const json* value = find(key, json::value_t::string, "a string");
    return value ? value->get<std::string>() : std::string();
  }

  std::int64_t non_negative_integer(const char* key) {
    const json* value = find_any(key);
    if (!value) return 0;
    auto number = value->is_number_integer() ? as_int64(*value) : std::nullopt;
    if (!number || *number < 0) {
      fail_field(key, "must be a non-negative integer");
      return 0;
    }
    return *number;
  }

  // A field added after v1 shipped: events written before it still parse.
  std::int64_t optional_non_negative_integer(const char* key) {
    if (*error_) return 0;
    const auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) return 0;
    return non_negative_integer(key);
  }

  // Fields added after v1 shipped: absent or null reads as empty / false.
  std::string optional_string(const char* key) {
    if (*error_) return {};
    const auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) return {};
    return string(key);
  }

  std::vector<std::string> optional_array_of_strings(const char* key) {
    if (*error_) return {};
    const auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) return {};
    const bool strings_only =
        it->is_array() && std::all_of(it->begin(), it->end(), [](const json& e) { return e.is_string(); });
    if (!strings_only) {
      fail_field(key, "must be an array of strings, got " + describe(*it));
      return {};
    }
    return it->get<std::vector<std::string>>();
  }

  bool optional_bool(const char* key) {
    if (*error_) return false;
    const auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) return false;
    if (!it->is_boolean()) {
      fail_field(key, "must be a boolean, got " + describe(*it));
      return false;
    }
    return it->get<bool>();
  }

  double number(const char* key) {
    const json* value = find_any(key);
    if (!value) return 0;
    if (!value->is_number()) {
      fail_field(key, "must be a number");
      return 0;
    }
    return value->get<double>();
  }

  json object(const char* key) {
    const json* value = find(key, json::value_t::object, "an object");
    return value ? *value : json::object();
  }

  // An array of objects added after v1 shipped: absent or null reads as [].
  json optional_array_of_objects(const char* key) {
    if (*error_) return json::array();
    const auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) return json::array();
    const bool objects_only =
        it->is_array() && std::all_of(it->begin(), it->end(),
                                      [](const json& element) { return element.is_object(); });
    if (!objects_only) {
      fail_field(key, "must be an array of objects, got " + describe(*it));
      return json::array();
    }
    return *it;
  }

  template <class Enum, std::size_t N>
  Enum enumeration(const char* key, const std::array<std::pair<std::string_view, Enum>, N>& names,
                   Enum fallback) {
    const json* value = find(key, json::value_t::string, "a string");
    if (!value) return fallback;
    if (auto parsed = enum_from_string(value->get_ref<const std::string&>(), names)) {
      return *parsed;
    }
    fail_field(key, "has unknown value " + describe(*value));
    return fallback;
  }

  const std::optional<Error>& error() const { return *error_; }

 private:
  static const json& empty_object() {
    static const json kEmpty = json::object();
    return kEmpty;
  }

  const json* find_any(const char* key) {
    if (*error_) return nullptr;
    auto it = object_.find(key);
    if (it == object_.end()) {
      *error_ = Error{ErrorCode::invalid_request,
                      event_name_ + ": missing field '" + prefix_ + key + "'"};
      return nullptr;
    }
    return &*it;
  }

  const json* find(const char* key, json::value_t type, const char* type_name) {
    const json* value = find_any(key);
    if (value && value->type() != type) {
      fail_field(key, std::string("must be ") + type_name + ", got " + describe(*value));
      return nullptr;
    }
    return value;
  }

  void fail_field(const char* key, const std::string& rule) {
    if (*error_) return;
    *error_ = Error{ErrorCode::invalid_request,
                    event_name_ + ": field '" + prefix_ + key + "' " + rule};
  }

  const json& object_;
  std::string event_name_;
  std::string prefix_;
  std::optional<Error> own_error_;
  std::optional<Error>* error_;
};

Result<json> parse_event_object(std::string_view payload, std::string_view event_name) {
  if (nesting_depth(payload) > kMaxNestingDepth) {
    return fail(ErrorCode::invalid_request,
                std::string(event_name) + " nests deeper than " +
                    std::to_string(kMaxNestingDepth) + " levels");
  }
  json event;
  try {
    event = json::parse(payload.begin(), payload.end());
  } catch (const json::exception& error) {
    return fail(ErrorCode::invalid_request,
                std::string(event_name) + " is not valid JSON: " + parser_message(error));
  }
  if (!event.is_object()) {
    return fail(ErrorCode::invalid_request,
                std::string(event_name) + " must be a JSON object, got " + describe(event));
  }
  // Any later version stays readable by the extend-never-break rule; only nonsense is refused.
  if (auto v = event.find("v"); v != event.end()) {
    auto version = as_int64(*v);
    if (!v->is_number_integer() || !version || *version < 1) {
      return fail(ErrorCode::invalid_request,
                  std::string(event_name) + ": field 'v' must be a positive integer, got " +
                      describe(*v));
    }
  }
  return event;
}

Result<FinalReply> read_final(const json& event) {
  FieldReader reader(event, "final event");
  FinalReply final;
  final.id = reader.string("id");
  if (const auto type = reader.string("type"); !reader.error() && type != "final") {
    return fail(ErrorCode::invalid_request,
                "final event: field 'type' must be \"final\", got " + describe(json(type)));
  }
  final.seq = reader.non_negative_integer("seq");
  final.content = reader.string("content");
  final.model = reader.string("model");
  final.provider = reader.string("provider");
  final.finish_reason = reader.string("finish_reason");
  auto usage = reader.nested("usage");
  final.usage.input_tokens = usage.non_negative_integer("input_tokens");
  final.usage.output_tokens = usage.non_negative_integer("output_tokens");
  final.usage.cached_tokens = usage.non_negative_integer("cached_tokens");
  final.usage.cache_write_tokens = usage.optional_non_negative_integer("cache_write_tokens");
  final.usage.reasoning_tokens = usage.optional_non_negative_integer("reasoning_tokens");
  final.cost_usd = reader.number("cost_usd");
  final.cache = reader.enumeration("cache", kCacheOutcomeNames, CacheOutcome::miss);
  auto route = reader.nested("route");
  final.route.tier = route.string("tier");
  final.route.score = route.number("score");
  final.route.reason = route.string("reason");
  final.route.policy = route.optional_string("policy");
  final.metadata = reader.object("metadata");
  final.tool_calls = reader.optional_array_of_objects("tool_calls");
  if (reader.error()) return std::unexpected(*reader.error());
  return final;
}

template <class Parse>
auto guard_parse(Parse&& parse) -> decltype(parse()) {
  try {
    return parse();
  } catch (const std::exception& error) {
    return fail(ErrorCode::invalid_request, std::string("event could not be read: ") + error.what());
  }
}

}  // namespace

std::string_view to_string(Preference p) {
  for (const auto& [name, value] : kPreferenceNames) {
    if (value == p) return name;
  }
  return "balanced";
}

std::string_view to_string(Priority p) {
  for (const auto& [name, value] : kPriorityNames) {
    if (value == p) return name;
  }
  return "interactive";
}

std::string_view to_string(CacheMode m) {
  for (const auto& [name, value] : kCacheModeNames) {
    if (value == m) return name;
  }
  return "exact";
}

std::string_view to_string(CacheOutcome c) {
  for (const auto& [name, value] : kCacheOutcomeNames) {
    if (value == c) return name;
  }
  return "miss";
}

std::expected<PromptEvent, RejectedPrompt> parse_prompt_event(std::string_view payload,
                                                               const PromptLimits& limits,
                                                               const ModelExists& model_exists) {
  // The caller turns every rejection into an error reply; an exception here
  // (allocation failure, a throwing model_exists) would leave the request silent.
  try {
    return parse_prompt_event_unguarded(payload, limits, model_exists);
  } catch (const std::exception& error) {
    return reject(std::string("event could not be processed: ") + error.what());
  }
}

json to_json(const PromptEvent& event) {
  json out = {
      {"v", kSchemaVersion},
      {"id", event.id},
      {"tenant", event.tenant},
      {"reply_to", event.reply_to},
      {"messages", event.messages},
      {"model", event.model},
      {"preference", to_string(event.preference)},
      {"stream", event.stream},
      {"priority", to_string(event.priority)},
      {"cache", to_string(event.cache)},
      {"metadata", event.metadata},
  };
  if (event.max_tokens) out["max_tokens"] = *event.max_tokens;
  if (event.temperature) out["temperature"] = *event.temperature;
  if (event.cascade) out["cascade"] = *event.cascade;
  if (!event.response_format.is_null()) out["response_format"] = event.response_format;
  if (!event.tools.is_null()) out["tools"] = event.tools;
  if (!event.tool_choice.is_null()) out["tool_choice"] = event.tool_choice;
  return out;
}

// One chunk per streamed token: assembled directly rather than through a JSON
// object so the hot path builds one string and no tree.
std::string make_chunk_event(std::string_view id, std::int64_t seq, std::string_view delta, const ChunkHead* head) {
  if (head && !head->model.empty()) {
    json out = {{"v", kSchemaVersion}, {"id", id}, {"type", "chunk"}, {"seq", seq}, {"delta", delta},
                {"model", head->model}, {"cache", to_string(head->cache)}};
    if (!head->provider.empty()) out["provider"] = head->provider;
    if (!head->tier.empty() || !head->reason.empty()) {
      json route = json::object();
      if (!head->tier.empty()) route["tier"] = head->tier;
      if (!head->reason.empty()) route["reason"] = head->reason;
      out["route"] = std::move(route);
    }
    return dump_json(out);
  }
  const std::string id_json = dump_json(json(id));
  const std::string delta_json = dump_json(json(delta));
  const std::string seq_text = std::to_string(seq);
  std::string out;
  out.reserve(48 + id_json.size() + delta_json.size() + seq_text.size());
  out += R"({"v":1,"id":)";
  out += id_json;
  out += R"(,"type":"chunk","seq":)";
  out += seq_text;
  out += R"(,"delta":)";
  out += delta_json;
  out += '}';
  return out;
}

json to_json(const FinalReply& final) {
  json usage = {{"input_tokens", final.usage.input_tokens},
                {"output_tokens", final.usage.output_tokens},
                {"cached_tokens", final.usage.cached_tokens},
                {"cache_write_tokens", final.usage.cache_write_tokens}};
  // Optional fields stay out of events that have nothing to say in them, so
  // readers that check the v1 field set are not disturbed by zeros.
  if (final.usage.reasoning_tokens != 0) usage["reasoning_tokens"] = final.usage.reasoning_tokens;
  json out = {
      {"v", kSchemaVersion},
      {"id", final.id},
      {"type", "final"},
      {"seq", final.seq},
      {"content", final.content},
      {"model", final.model},
      {"provider", final.provider},
      {"finish_reason", final.finish_reason},
      {"usage", std::move(usage)},
      {"cost_usd", final.cost_usd},
      {"cache", to_string(final.cache)},
      {"route",
       {{"tier", final.route.tier}, {"score", final.route.score}, {"reason", final.route.reason}}},
      {"metadata", final.metadata.is_object() ? final.metadata : json::object()},
  };
  if (!final.route.policy.empty()) out["route"]["policy"] = final.route.policy;
  if (final.tool_calls.is_array() && !final.tool_calls.empty()) out["tool_calls"] = final.tool_calls;
  return out;
}

std::string make_final_event(const FinalReply& final) { return dump_json(to_json(final)); }

Result<FinalReply> parse_final_event(std::string_view payload) {
  return guard_parse([&]() -> Result<FinalReply> {
    auto event = parse_event_object(payload, "final event");
    if (!event) return std::unexpected(event.error());
    return read_final(*event);
  });
}

std::string make_error_event(std::string_view id, std::int64_t seq, const Error& error) {
  return dump_json({
      {"v", kSchemaVersion},
      {"id", id},
      {"type", "error"},
      {"seq", seq},
      {"error", {{"code", to_string(error.code)}, {"message", error.message}}},
  });
}

std::string make_cost_event(const CostEvent& cost) {
  json out = {
      {"v", kSchemaVersion},
      {"id", cost.id},
      {"tenant", cost.tenant},
      {"ts", cost.ts_ms},
      {"model", cost.model},
      {"provider", cost.provider},
      {"input_tokens", cost.usage.input_tokens},
      {"output_tokens", cost.usage.output_tokens},
      {"cached_tokens", cost.usage.cached_tokens},
      {"cache_write_tokens", cost.usage.cache_write_tokens},
      {"cost_usd", cost.cost_usd},
      {"baseline_model", cost.baseline_model},
      {"baseline_cost_usd", cost.baseline_cost_usd},
      {"savings_usd", cost.savings_usd},
      {"cache", to_string(cost.cache)},
      {"latency_ms", cost.latency_ms},
      {"ttft_ms", cost.ttft_ms},
      {"route_reason", cost.route_reason},
  };
  if (cost.usage.reasoning_tokens != 0) out["reasoning_tokens"] = cost.usage.reasoning_tokens;
  if (!cost.price_version.empty()) out["price_version"] = cost.price_version;
  if (!cost.tags.empty()) out["tags"] = cost.tags;
  if (cost.batch) out["batch"] = true;
  if (!cost.policy.empty()) out["policy"] = cost.policy;
  return dump_json(out);
}

Result<CostEvent> parse_cost_event(std::string_view payload) {
  return guard_parse([&]() -> Result<CostEvent> {
    auto event = parse_event_object(payload, "cost event");
    if (!event) return std::unexpected(event.error());
    FieldReader reader(*event, "cost event");
    CostEvent cost;
    cost.id = reader.string("id");
    cost.tenant = reader.string("tenant");
    cost.ts_ms = reader.non_negative_integer("ts");
    cost.model = reader.string("model");
    cost.provider = reader.string("provider");
    cost.usage.input_tokens = reader.non_negative_integer("input_tokens");
    cost.usage.output_tokens = reader.non_negative_integer("output_tokens");
    cost.usage.cached_tokens = reader.non_negative_integer("cached_tokens");
    cost.usage.cache_write_tokens = reader.optional_non_negative_integer("cache_write_tokens");
    cost.usage.reasoning_tokens = reader.optional_non_negative_integer("reasoning_tokens");
    cost.cost_usd = reader.number("cost_usd");
    cost.baseline_model = reader.string("baseline_model");
    cost.baseline_cost_usd = reader.number("baseline_cost_usd");
    cost.savings_usd = reader.number("savings_usd");
    cost.cache = reader.enumeration("cache", kCacheOutcomeNames, CacheOutcome::miss);
    cost.latency_ms = reader.number("latency_ms");
    cost.ttft_ms = reader.number("ttft_ms");
    cost.route_reason = reader.string("route_reason");
    cost.price_version = reader.optional_string("price_version");
    cost.tags = reader.optional_array_of_strings("tags");
    cost.batch = reader.optional_bool("batch");
    cost.policy = reader.optional_string("policy");
    if (reader.error()) return std::unexpected(*reader.error());
    return cost;
  });
}

std::string make_dead_letter(const DeadLetter& letter) {
  json out = {
      {"v", kSchemaVersion},
      {"reason", letter.reason},
      {"source",
       {{"topic", letter.source_topic},
        {"partition", letter.source_partition},
        {"offset", letter.source_offset}}},
      {"ts", now_ms()},
  };
  if (letter.id) out["id"] = *letter.id;
  if (letter.tenant) out["tenant"] = *letter.tenant;

  const std::string_view payload = letter.payload;
  const bool truncated = payload.size() > kMaxDeadLetterPayloadBytes;
  const auto text = utf8_prefix(payload, kMaxDeadLetterPayloadBytes);
  if (is_valid_utf8(text)) {
    out["payload"] = text;
  } else {
    // Raw bytes keep the record valid JSON and the original recoverable exactly.
    out["payload_base64"] = base64_encode(payload.substr(0, kMaxDeadLetterPayloadBytes));
  }
  if (truncated) out["payload_truncated"] = true;
  return dump_json(out);
}

Result<ReplyEvent> parse_reply_event(std::string_view payload) {
  return guard_parse([&]() -> Result<ReplyEvent> {
    auto event = parse_event_object(payload, "reply event");
    if (!event) return std::unexpected(event.error());
    FieldReader reader(*event, "reply event");
    ReplyEvent reply;
    reply.id = reader.string("id");
    reply.type = reader.string("type");
    reply.seq = reader.non_negative_integer("seq");
    if (reader.error()) return std::unexpected(*reader.error());
    if (reply.type == "chunk") {
      reader.string("delta");
    } else if (reply.type == "error") {
      auto error = reader.nested("error");
      error.string("code");
      error.string("message");
    } else if (reply.type == "final") {
      if (auto final = read_final(*event); !final) return std::unexpected(final.error());
    } else if (reply.type.empty()) {
      return fail(ErrorCode::invalid_request, "reply event: field 'type' must not be empty");
    }
    // Other types pass through unchecked: a newer producer may add reply types,
    // and a client should skip those rather than fail on them.
    if (reader.error()) return std::unexpected(*reader.error());
    reply.body = std::move(*event);
    return reply;
  });
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool valid_tenant(std::string_view tenant) { return is_valid_tenant(tenant); }

}  // namespace cascade
