// The prompt event's rules (docs/events.md, "Prompt event"): parse_prompt_event
// checks a payload in a fixed order and names the first field that fails;
// what it can still read of a bad one addresses the rejection.
#include <algorithm>
#include <array>
#include <cmath>
#include <exception>
#include <limits>
#include <utility>

#include "events/event_json.h"
#include "events/events.h"
#include "events/field_rules.h"

namespace cascade {

using nlohmann::json;

namespace {

using namespace event_json;
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

}  // namespace

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

bool valid_tenant(std::string_view tenant) { return is_valid_tenant(tenant); }

}  // namespace cascade
