#include "events/events.h"

#include "events/event_json.h"
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

using namespace event_json;
constexpr std::size_t kMaxDeadLetterPayloadBytes = 64 * 1024;

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

Result<FinalReply> parse_final_event(const ReplyEvent& event) {
  return guard_parse([&]() -> Result<FinalReply> { return read_final(event.body); });
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


}  // namespace cascade
