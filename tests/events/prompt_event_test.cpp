#include <gtest/gtest.h>

#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "events/events.h"

namespace cascade {
namespace {

using nlohmann::json;

json minimal_event() {
  return {
      {"id", "req-1"},
      {"tenant", "acme"},
      {"reply_to", "acme.replies"},
      {"messages", json::array({{{"role", "user"}, {"content", "hello"}}})},
  };
}

const PromptLimits kLimits{};
const ModelExists kCatalog = [](std::string_view id) { return id == "gpt-4o-mini" || id == "claude-haiku"; };

std::expected<PromptEvent, RejectedPrompt> parse(const json& event,
                                                 const ModelExists& model_exists = kCatalog) {
  return parse_prompt_event(event.dump(), kLimits, model_exists);
}

std::expected<PromptEvent, RejectedPrompt> parse_text(std::string_view text) {
  return parse_prompt_event(text, kLimits, kCatalog);
}

TEST(PromptEvent, MinimalEventGetsDocumentedDefaults) {
  auto event = parse(minimal_event());
  ASSERT_TRUE(event) << event.error().error.message;
  EXPECT_EQ(event->id, "req-1");
  EXPECT_EQ(event->tenant, "acme");
  EXPECT_EQ(event->reply_to, "acme.replies");
  EXPECT_EQ(event->messages, minimal_event()["messages"]);
  EXPECT_EQ(event->model, "auto");
  EXPECT_FALSE(event->pinned());
  EXPECT_EQ(event->preference, Preference::balanced);
  EXPECT_FALSE(event->max_tokens);
  EXPECT_FALSE(event->temperature);
  EXPECT_TRUE(event->stream);
  EXPECT_EQ(event->priority, Priority::interactive);
  EXPECT_EQ(event->cache, CacheMode::exact);
  EXPECT_EQ(event->metadata, json::object());
}

TEST(PromptEvent, ReadsEveryOptionalField) {
  json input = minimal_event();
  input["model"] = "claude-haiku";
  input["preference"] = "quality";
  input["max_tokens"] = 512;
  input["temperature"] = 0.25;
  input["stream"] = false;
  input["priority"] = "batch";
  input["cache"] = "semantic";
  input["metadata"] = {{"trace", "abc"}, {"n", 3}};
  auto event = parse(input);
  ASSERT_TRUE(event) << event.error().error.message;
  EXPECT_EQ(event->model, "claude-haiku");
  EXPECT_TRUE(event->pinned());
  EXPECT_EQ(event->preference, Preference::quality);
  EXPECT_EQ(event->max_tokens, 512);
  EXPECT_EQ(event->temperature, 0.25);
  EXPECT_FALSE(event->stream);
  EXPECT_EQ(event->priority, Priority::batch);
  EXPECT_EQ(event->cache, CacheMode::semantic);
  EXPECT_EQ(event->metadata, input["metadata"]);
}

TEST(PromptEvent, EveryEnumValueParses) {
  for (auto p : {Preference::cost, Preference::balanced, Preference::quality, Preference::speed}) {
    json input = minimal_event();
    input["preference"] = to_string(p);
    auto event = parse(input);
    ASSERT_TRUE(event) << to_string(p);
    EXPECT_EQ(event->preference, p);
  }
  for (auto p : {Priority::interactive, Priority::batch}) {
    json input = minimal_event();
    input["priority"] = to_string(p);
    auto event = parse(input);
    ASSERT_TRUE(event) << to_string(p);
    EXPECT_EQ(event->priority, p);
  }
  for (auto m : {CacheMode::off, CacheMode::exact, CacheMode::semantic}) {
    json input = minimal_event();
    input["cache"] = to_string(m);
    auto event = parse(input);
    ASSERT_TRUE(event) << to_string(m);
    EXPECT_EQ(event->cache, m);
  }
}

TEST(PromptEvent, ToJsonRoundTripsEveryField) {
  PromptEvent original;
  original.id = "round-trip-\xF0\x9F\x9A\x80";
  original.tenant = "team.a:prod-1_x";
  original.reply_to = "replies.team-a_1";
  original.messages = json::array({
      {{"role", "system"}, {"content", "be brief"}},
      {{"role", "user"},
       {"content", json::array({{{"type", "text"}, {"text", "\xE4\xBD\xA0\xE5\xA5\xBD \"q\"\n"}},
                                {{"type", "image_url"}, {"image_url", {{"url", "https://x/y.png"}}}}})}},
  });
  original.model = "gpt-4o-mini";
  original.preference = Preference::speed;
  original.max_tokens = 1'000'000;
  original.temperature = 1.7;
  original.stream = false;
  original.priority = Priority::batch;
  original.cache = CacheMode::off;
  original.metadata = {{"user", "u1"}, {"nested", {{"a", json::array({1, 2})}}}};

  json serialized = to_json(original);
  EXPECT_EQ(serialized["v"], 1);
  auto parsed = parse(serialized);
  ASSERT_TRUE(parsed) << parsed.error().error.message;
  EXPECT_EQ(parsed->id, original.id);
  EXPECT_EQ(parsed->tenant, original.tenant);
  EXPECT_EQ(parsed->reply_to, original.reply_to);
  EXPECT_EQ(parsed->messages, original.messages);
  EXPECT_EQ(parsed->model, original.model);
  EXPECT_EQ(parsed->preference, original.preference);
  EXPECT_EQ(parsed->max_tokens, original.max_tokens);
  EXPECT_EQ(parsed->temperature, original.temperature);
  EXPECT_EQ(parsed->stream, original.stream);
  EXPECT_EQ(parsed->priority, original.priority);
  EXPECT_EQ(parsed->cache, original.cache);
  EXPECT_EQ(parsed->metadata, original.metadata);
}

TEST(PromptEvent, ToJsonOmitsUnsetOptionalNumbers) {
  auto parsed = parse(minimal_event());
  ASSERT_TRUE(parsed);
  json serialized = to_json(*parsed);
  EXPECT_FALSE(serialized.contains("max_tokens"));
  EXPECT_FALSE(serialized.contains("temperature"));
  auto again = parse(serialized);
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->max_tokens);
  EXPECT_FALSE(again->temperature);
}

TEST(PromptEvent, UnknownFieldsAreIgnored) {
  json input = minimal_event();
  input["v"] = 7;
  input["future_field"] = {{"anything", json::array({1, "x", nullptr})}};
  input["tools"] = json::array({{{"type", "function"}}});
  input["messages"][0]["name"] = "alice";
  auto event = parse(input);
  ASSERT_TRUE(event) << event.error().error.message;
  EXPECT_EQ(event->messages[0]["name"], "alice");
}

TEST(PromptEvent, ANonEmptyToolsArrayIsKeptForRoutingAndRoundTrips) {
  json input = minimal_event();
  input["tools"] = json::array({{{"type", "function"}, {"function", {{"name", "weather"}}}}});
  auto event = parse(input);
  ASSERT_TRUE(event) << event.error().error.message;
  EXPECT_EQ(event->tools, input["tools"]);
  EXPECT_EQ(to_json(*event)["tools"], input["tools"]);
  auto again = parse(to_json(*event));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->tools, input["tools"]);

  // Anything else is ignored, as before tools were read: never a rejection.
  for (const json& other : {json::array(), json("weather"), json(nullptr), json::object()}) {
    input["tools"] = other;
    auto ignored = parse(input);
    ASSERT_TRUE(ignored) << other;
    EXPECT_TRUE(ignored->tools.is_null()) << other;
    EXPECT_FALSE(to_json(*ignored).contains("tools")) << other;
  }
}

TEST(PromptEvent, NullOptionalFieldsMeanDefault) {
  json input = minimal_event();
  for (const char* key : {"model", "preference", "max_tokens", "temperature", "stream", "priority",
                          "cache", "metadata"}) {
    input[key] = nullptr;
  }
  auto event = parse(input);
  ASSERT_TRUE(event) << event.error().error.message;
  EXPECT_EQ(event->model, "auto");
  EXPECT_TRUE(event->stream);
  EXPECT_EQ(event->metadata, json::object());
}

TEST(PromptEvent, AcceptsEveryRoleAndContentShape) {
  json input = minimal_event();
  input["messages"] = json::array({
      {{"role", "system"}, {"content", "s"}},
      {{"role", "developer"}, {"content", ""}},
      {{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", "hi"}}})}},
      {{"role", "assistant"},
       {"content", nullptr},
       {"tool_calls", json::array({{{"id", "call_1"}, {"type", "function"}}})}},
      {{"role", "assistant"}, {"tool_calls", json::array({{{"id", "call_2"}}})}},
      {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "42"}},
      {{"role", "assistant"}, {"content", json::array()}},
  });
  auto event = parse(input);
  ASSERT_TRUE(event) << event.error().error.message;
  EXPECT_EQ(event->messages.size(), 7u);
}

TEST(PromptEvent, BoundaryValuesAreAccepted) {
  json input = minimal_event();
  input["id"] = std::string(256, 'i');
  input["tenant"] = std::string(128, 't');
  input["reply_to"] = std::string(249, 'r');
  input["max_tokens"] = 1;
  input["temperature"] = 0;
  input["messages"] = json::array();
  for (int i = 0; i < 10000; ++i) input["messages"].push_back({{"role", "user"}, {"content", "x"}});
  auto low = parse(input);
  ASSERT_TRUE(low) << low.error().error.message;
  EXPECT_EQ(low->max_tokens, 1);
  EXPECT_EQ(low->temperature, 0.0);

  json high = minimal_event();
  high["max_tokens"] = 1000000;
  high["temperature"] = 2;
  high["reply_to"] = "a..b";  // dots are fine except the names "." and ".."
  auto parsed = parse(high);
  ASSERT_TRUE(parsed) << parsed.error().error.message;
  EXPECT_EQ(parsed->max_tokens, 1000000);
  EXPECT_EQ(parsed->temperature, 2.0);
}

TEST(PromptEvent, IntegralFloatMaxTokensCountsAsInteger) {
  auto event = parse_text(
      R"({"id":"a","tenant":"t","reply_to":"r","messages":[{"role":"user","content":"x"}],"max_tokens":1e3})");
  ASSERT_TRUE(event) << event.error().error.message;
  EXPECT_EQ(event->max_tokens, 1000);
}

TEST(PromptEvent, MetadataUpTo16KiBIsAccepted) {
  json input = minimal_event();
  input["metadata"] = {{"k", ""}};
  const auto overhead = input["metadata"].dump().size();
  input["metadata"]["k"] = std::string(16 * 1024 - overhead, 'm');
  ASSERT_EQ(input["metadata"].dump().size(), 16u * 1024);
  EXPECT_TRUE(parse(input));
  input["metadata"]["k"] = std::string(16 * 1024 - overhead + 1, 'm');
  auto rejected = parse(input);
  ASSERT_FALSE(rejected);
  EXPECT_NE(rejected.error().error.message.find("'metadata'"), std::string::npos);
}

TEST(PromptEvent, AnyModelIsAcceptedWithoutACatalog) {
  json input = minimal_event();
  input["model"] = "gpt-9";
  auto event = parse(input, ModelExists{});
  ASSERT_TRUE(event) << event.error().error.message;
  EXPECT_EQ(event->model, "gpt-9");
}

TEST(PromptEvent, AutoNeverConsultsTheCatalog) {
  int calls = 0;
  ModelExists counting = [&](std::string_view) {
    ++calls;
    return false;
  };
  json input = minimal_event();
  input["model"] = "auto";
  EXPECT_TRUE(parse(input, counting));
  EXPECT_EQ(calls, 0);
}

TEST(PromptEvent, UnknownModelIsRejectedByName) {
  json input = minimal_event();
  input["model"] = "gpt-9";
  auto rejected = parse(input);
  ASSERT_FALSE(rejected);
  EXPECT_NE(rejected.error().error.message.find("unknown model 'gpt-9'"), std::string::npos)
      << rejected.error().error.message;
  EXPECT_EQ(rejected.error().reply_to, "acme.replies");
}

TEST(PromptEvent, ThrowingCatalogBecomesARejectionNotAnException) {
  json input = minimal_event();
  input["model"] = "claude-haiku";
  ModelExists throwing = [](std::string_view) -> bool { throw std::runtime_error("catalog down"); };
  std::expected<PromptEvent, RejectedPrompt> result;
  EXPECT_NO_THROW(result = parse(input, throwing));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().error.code, ErrorCode::invalid_request);
  EXPECT_NE(result.error().error.message.find("catalog down"), std::string::npos);
}

// ---- rejections --------------------------------------------------------------

struct RejectionCase {
  std::string name;
  std::string payload;
  std::vector<std::string> message_contains;  // includes the field's name
  bool keeps_id = true;
  bool keeps_tenant = true;
  bool keeps_reply_to = true;
};

void PrintTo(const RejectionCase& c, std::ostream* os) { *os << c.name; }

std::string with(const std::string& key, const json& value) {
  json event = minimal_event();
  event[key] = value;
  return event.dump();
}

std::string without(const std::string& key) {
  json event = minimal_event();
  event.erase(key);
  return event.dump();
}

std::string with_messages(const json& messages) { return with("messages", messages); }

std::vector<RejectionCase> rejection_cases() {
  const json user = {{"role", "user"}, {"content", "x"}};
  std::vector<RejectionCase> cases = {
      {"not_json", "{\"id\":", {"event is not valid JSON: "}, false, false, false},
      {"empty_payload", "", {"event is not valid JSON"}, false, false, false},
      {"invalid_utf8_in_string", "{\"id\":\"a\xFF\"}", {"event is not valid JSON"}, false, false,
       false},
      {"trailing_garbage", minimal_event().dump() + " x", {"event is not valid JSON"}},
      {"top_level_array", "[1,2]", {"event must be a JSON object", "an array"}, false, false, false},
      {"top_level_string", "\"hi\"", {"event must be a JSON object"}, false, false, false},
      {"top_level_null", "null", {"event must be a JSON object"}, false, false, false},

      {"missing_id", without("id"), {"missing required field 'id'"}, false},
      {"id_not_string", with("id", 42), {"'id' must be a non-empty string"}, false},
      {"id_empty", with("id", ""), {"'id'"}, false},
      {"id_too_long", with("id", std::string(257, 'i')), {"'id'", "256"}, false},

      {"missing_tenant", without("tenant"), {"missing required field 'tenant'"}, true, false},
      {"tenant_not_string", with("tenant", json::array()), {"'tenant'"}, true, false},
      {"tenant_empty", with("tenant", ""), {"'tenant'"}, true, false},
      {"tenant_too_long", with("tenant", std::string(129, 't')), {"'tenant'", "128"}, true, false},
      {"tenant_bad_character", with("tenant", "acme corp"), {"'tenant'", "[A-Za-z0-9._:-]"}, true,
       false},
      {"tenant_slash", with("tenant", "a/b"), {"'tenant'"}, true, false},

      {"missing_reply_to", without("reply_to"), {"missing required field 'reply_to'"}, true, true,
       false},
      {"reply_to_not_string", with("reply_to", true), {"'reply_to'"}, true, true, false},
      {"reply_to_empty", with("reply_to", ""), {"'reply_to'"}, true, true, false},
      {"reply_to_dot", with("reply_to", "."), {"'reply_to'"}, true, true, false},
      {"reply_to_dot_dot", with("reply_to", ".."), {"'reply_to'"}, true, true, false},
      {"reply_to_too_long", with("reply_to", std::string(250, 'r')), {"'reply_to'", "249"}, true,
       true, false},
      {"reply_to_colon", with("reply_to", "a:b"), {"'reply_to'"}, true, true, false},
      {"reply_to_space", with("reply_to", "a b"), {"'reply_to'"}, true, true, false},

      {"missing_messages", without("messages"), {"missing required field 'messages'"}},
      {"messages_not_array", with_messages("hi"), {"'messages' must be a non-empty array"}},
      {"messages_empty", with_messages(json::array()), {"'messages'", "got 0 messages"}},
      {"messages_too_many", with_messages(json(std::vector<json>(10001, user))),
       {"'messages'", "10000"}},
      {"message_not_object", with_messages(json::array({user, "text"})),
       {"'messages[1]' must be an object"}},
      {"role_missing", with_messages(json::array({{{"content", "x"}}})),
       {"missing required field 'messages[0].role'"}},
      {"role_not_string", with_messages(json::array({{{"role", 1}, {"content", "x"}}})),
       {"'messages[0].role'"}},
      {"role_unknown", with_messages(json::array({user, {{"role", "bot"}, {"content", "x"}}})),
       {"'messages[1].role' must be one of system|developer|user|assistant|tool", "'bot'"}},
      {"content_missing", with_messages(json::array({{{"role", "user"}}})),
       {"missing required field 'messages[0].content'"}},
      {"content_null_on_user", with_messages(json::array({{{"role", "user"}, {"content", nullptr}}})),
       {"'messages[0].content' may be null only"}},
      {"content_null_on_assistant_without_tool_calls",
       with_messages(json::array({{{"role", "assistant"}, {"content", nullptr}}})),
       {"'messages[0].content'"}},
      {"content_null_with_empty_tool_calls",
       with_messages(json::array(
           {{{"role", "assistant"}, {"content", nullptr}, {"tool_calls", json::array()}}})),
       {"'messages[0].content'"}},
      {"tool_calls_on_user_do_not_excuse_content",
       with_messages(json::array({{{"role", "user"}, {"tool_calls", json::array({{{"id", "c"}}})}}})),
       {"'messages[0].content'"}},
      {"content_number", with_messages(json::array({{{"role", "user"}, {"content", 5}}})),
       {"'messages[0].content' must be a string, an array of content parts"}},
      {"content_object",
       with_messages(json::array({{{"role", "user"}, {"content", {{"type", "text"}}}}})),
       {"'messages[0].content'"}},
      {"content_part_not_object",
       with_messages(json::array({{{"role", "user"}, {"content", json::array({"text"})}}})),
       {"'messages[0].content[0]' must be an object"}},
      {"content_part_missing_type",
       with_messages(json::array(
           {{{"role", "user"}, {"content", json::array({{{"type", "text"}}, {{"text", "x"}}})}}})),
       {"missing required field 'messages[0].content[1].type'"}},
      {"content_part_type_not_string",
       with_messages(json::array({{{"role", "user"}, {"content", json::array({{{"type", 3}}})}}})),
       {"'messages[0].content[0].type' must be a string"}},

      {"model_not_string", with("model", 4), {"'model'"}},
      {"model_empty", with("model", ""), {"'model'"}},
      {"model_unknown", with("model", "gpt-9"), {"unknown model 'gpt-9'", "'model'"}},
      {"preference_unknown", with("preference", "fast"),
       {"'preference' must be one of cost|balanced|quality|speed", "'fast'"}},
      {"preference_not_string", with("preference", 1), {"'preference'"}},
      {"priority_unknown", with("priority", "urgent"),
       {"'priority' must be one of interactive|batch"}},
      {"cache_unknown", with("cache", "lru"), {"'cache' must be one of off|exact|semantic"}},
      {"cache_bool", with("cache", false), {"'cache'"}},
      {"max_tokens_zero", with("max_tokens", 0), {"'max_tokens' must be an integer between 1 and 1000000"}},
      {"max_tokens_negative", with("max_tokens", -5), {"'max_tokens'"}},
      {"max_tokens_too_big", with("max_tokens", 1000001), {"'max_tokens'"}},
      {"max_tokens_huge_unsigned", with("max_tokens", 18446744073709551615ull), {"'max_tokens'"}},
      {"max_tokens_fraction", with("max_tokens", 10.5), {"'max_tokens'"}},
      {"max_tokens_string", with("max_tokens", "100"), {"'max_tokens'"}},
      {"temperature_too_high", with("temperature", 2.01),
       {"'temperature' must be a number between 0 and 2"}},
      {"temperature_negative", with("temperature", -0.1), {"'temperature'"}},
      {"temperature_string", with("temperature", "0.5"), {"'temperature'"}},
      // nlohmann refuses numbers beyond double range at parse time.
      {"number_overflowing_double",
       R"({"id":"req-1","tenant":"acme","reply_to":"acme.replies","messages":[{"role":"user","content":"x"}],"temperature":1e400})",
       {"event is not valid JSON", "number overflow"}},
      {"stream_string", with("stream", "true"), {"'stream' must be true or false"}},
      {"stream_number", with("stream", 1), {"'stream'"}},
      {"metadata_array", with("metadata", json::array()), {"'metadata' must be an object"}},
      {"metadata_string", with("metadata", "x"), {"'metadata'"}},
      {"metadata_too_big", with("metadata", {{"k", std::string(17000, 'm')}}),
       {"'metadata'", "16384"}},
  };
  return cases;
}

class PromptRejection : public ::testing::TestWithParam<RejectionCase> {};

TEST_P(PromptRejection, NamesTheFieldAndKeepsOnlyValidIdentity) {
  const RejectionCase& c = GetParam();
  std::expected<PromptEvent, RejectedPrompt> result;
  ASSERT_NO_THROW(result = parse_text(c.payload));
  ASSERT_FALSE(result) << "accepted: " << c.payload.substr(0, 200);
  const RejectedPrompt& rejected = result.error();
  EXPECT_EQ(rejected.error.code, ErrorCode::invalid_request);
  for (const auto& fragment : c.message_contains) {
    EXPECT_NE(rejected.error.message.find(fragment), std::string::npos)
        << "message: " << rejected.error.message << "\nexpected to contain: " << fragment;
  }
  EXPECT_EQ(rejected.id.has_value(), c.keeps_id) << rejected.error.message;
  EXPECT_EQ(rejected.tenant.has_value(), c.keeps_tenant) << rejected.error.message;
  EXPECT_EQ(rejected.reply_to.has_value(), c.keeps_reply_to) << rejected.error.message;
  if (c.keeps_id) {
    EXPECT_EQ(rejected.id, "req-1");
  }
  if (c.keeps_tenant) {
    EXPECT_EQ(rejected.tenant, "acme");
  }
  if (c.keeps_reply_to) {
    EXPECT_EQ(rejected.reply_to, "acme.replies");
  }
}

INSTANTIATE_TEST_SUITE_P(EveryRule, PromptRejection, ::testing::ValuesIn(rejection_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(PromptEvent, ErrorMessagesDoNotEchoHugeValues) {
  auto rejected = parse_text(with("preference", std::string(100000, 'p')));
  ASSERT_FALSE(rejected);
  EXPECT_LT(rejected.error().error.message.size(), 300u);
}

TEST(PromptEvent, OversizedEventIsRejectedWithSizesAndStillAddressable) {
  json input = minimal_event();
  input["messages"][0]["content"] = std::string(2'000'000, 'x');
  const std::string payload = input.dump();
  auto rejected = parse_prompt_event(payload, PromptLimits{}, kCatalog);
  ASSERT_FALSE(rejected);
  EXPECT_EQ(rejected.error().error.message,
            "event is " + std::to_string(payload.size()) +
                " bytes, larger than limits.max_event_bytes (1048576)");
  EXPECT_EQ(rejected.error().id, "req-1");
  EXPECT_EQ(rejected.error().tenant, "acme");
  EXPECT_EQ(rejected.error().reply_to, "acme.replies");
}

TEST(PromptEvent, OversizedEventHonoursConfiguredLimit) {
  const std::string payload = minimal_event().dump();
  auto rejected = parse_prompt_event(payload, PromptLimits{.max_event_bytes = 10}, kCatalog);
  ASSERT_FALSE(rejected);
  EXPECT_NE(rejected.error().error.message.find("limits.max_event_bytes (10)"), std::string::npos);
  EXPECT_TRUE(parse_prompt_event(payload, PromptLimits{.max_event_bytes = payload.size()}, kCatalog));
}

TEST(PromptEvent, OversizedEventDoesNotUseAnInvalidReplyTopic) {
  json input = minimal_event();
  input["reply_to"] = "bad topic!";
  input["tenant"] = 17;
  input["pad"] = std::string(2'000'000, 'x');
  auto rejected = parse_text(input.dump());
  ASSERT_FALSE(rejected);
  EXPECT_EQ(rejected.error().id, "req-1");
  EXPECT_FALSE(rejected.error().tenant);
  EXPECT_FALSE(rejected.error().reply_to);
}

TEST(PromptEvent, EventOver16MiBIsNotReadAtAll) {
  json input = minimal_event();
  input["pad"] = std::string(17 * 1024 * 1024, 'x');
  auto rejected = parse_text(input.dump());
  ASSERT_FALSE(rejected);
  EXPECT_NE(rejected.error().error.message.find("larger than limits.max_event_bytes"),
            std::string::npos);
  EXPECT_FALSE(rejected.error().id);
  EXPECT_FALSE(rejected.error().tenant);
  EXPECT_FALSE(rejected.error().reply_to);
}

TEST(PromptEvent, BrokenJsonStillYieldsIdentityReadBeforeTheBreak) {
  auto rejected = parse_text(
      R"({"id":"req-1","tenant":"acme","reply_to":"acme.replies","messages":[{"role":"us)");
  ASSERT_FALSE(rejected);
  EXPECT_NE(rejected.error().error.message.find("event is not valid JSON"), std::string::npos);
  EXPECT_EQ(rejected.error().id, "req-1");
  EXPECT_EQ(rejected.error().tenant, "acme");
  EXPECT_EQ(rejected.error().reply_to, "acme.replies");
}

TEST(PromptEvent, IdentityRecoveryIgnoresNestedLookalikes) {
  auto rejected = parse_text(
      R"({"messages":[{"id":"inner","reply_to":"inner.topic"}],"meta":{"tenant":"inner"},"id":"outer")");
  ASSERT_FALSE(rejected);
  EXPECT_EQ(rejected.error().id, "outer");
  EXPECT_FALSE(rejected.error().tenant);
  EXPECT_FALSE(rejected.error().reply_to);
}

TEST(PromptEvent, IdentityRecoveryFollowsLastDuplicateKey) {
  auto rejected = parse_text(R"({"reply_to":"first","reply_to":42,"id":"a","id":"b",)");
  ASSERT_FALSE(rejected);
  EXPECT_EQ(rejected.error().id, "b");
  EXPECT_FALSE(rejected.error().reply_to);
}

TEST(PromptEvent, DeeplyNestedEventIsRejectedWithoutExhaustingTheStack) {
  json input = minimal_event();
  std::string payload = input.dump();
  payload.pop_back();
  payload += R"(,"metadata":{"deep":)" + std::string(200'000, '[') + std::string(200'000, ']') +
             "}}";
  auto rejected = parse_text(payload);
  ASSERT_FALSE(rejected);
  EXPECT_NE(rejected.error().error.message.find("deeper than 128"), std::string::npos)
      << rejected.error().error.message;
  EXPECT_EQ(rejected.error().reply_to, "acme.replies");
}

TEST(PromptEvent, NestingJustInsideTheLimitIsAccepted) {
  json input = minimal_event();
  std::string payload = input.dump();
  payload.pop_back();
  // Root object is level 1, metadata level 2, then 126 arrays reach 128.
  payload += R"(,"metadata":{"deep":)" + std::string(126, '[') + std::string(126, ']') + "}}";
  auto event = parse_text(payload);
  ASSERT_TRUE(event) << event.error().error.message;

  std::string one_deeper = input.dump();
  one_deeper.pop_back();
  one_deeper += R"(,"metadata":{"deep":)" + std::string(127, '[') + std::string(127, ']') + "}}";
  EXPECT_FALSE(parse_text(one_deeper));
}

TEST(PromptEvent, BracketsInsideStringsDoNotCountAsNesting) {
  json input = minimal_event();
  input["messages"][0]["content"] = std::string(1000, '[') + "\\\"" + std::string(1000, '{');
  auto event = parse(input);
  ASSERT_TRUE(event) << event.error().error.message;
}

TEST(PromptEvent, NeverThrowsOnMutatedOrTruncatedInput) {
  json input = minimal_event();
  input["model"] = "gpt-4o-mini";
  input["metadata"] = {{"a", json::array({1, 2.5, "\xE2\x9C\x93"})}};
  input["messages"].push_back(
      {{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", "t"}}})}});
  const std::string valid = input.dump();
  for (std::size_t cut = 0; cut < valid.size(); ++cut) {
    EXPECT_NO_THROW((void)parse_text(std::string_view(valid).substr(0, cut)));
  }
  std::mt19937 random(12345);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<std::size_t> position(0, valid.size() - 1);
  const std::string interesting = "{}[]\",:\\0-9eE.nulltruefalse\x80\xFF";
  std::uniform_int_distribution<std::size_t> pick(0, interesting.size() - 1);
  for (int round = 0; round < 3000; ++round) {
    std::string mutated = valid;
    for (int edits = 1 + round % 4; edits > 0; --edits) {
      mutated[position(random)] =
          round % 2 ? static_cast<char>(byte(random)) : interesting[pick(random)];
    }
    std::expected<PromptEvent, RejectedPrompt> result;
    EXPECT_NO_THROW(result = parse_text(mutated));
    if (!result) {
      EXPECT_EQ(result.error().error.code, ErrorCode::invalid_request);
      EXPECT_FALSE(result.error().error.message.empty());
    }
  }
}

TEST(PromptEvent, EnumNamesMatchTheSchema) {
  EXPECT_EQ(to_string(Preference::cost), "cost");
  EXPECT_EQ(to_string(Preference::balanced), "balanced");
  EXPECT_EQ(to_string(Preference::quality), "quality");
  EXPECT_EQ(to_string(Preference::speed), "speed");
  EXPECT_EQ(to_string(Priority::interactive), "interactive");
  EXPECT_EQ(to_string(Priority::batch), "batch");
  EXPECT_EQ(to_string(CacheMode::off), "off");
  EXPECT_EQ(to_string(CacheMode::exact), "exact");
  EXPECT_EQ(to_string(CacheMode::semantic), "semantic");
  EXPECT_EQ(to_string(CacheOutcome::miss), "miss");
  EXPECT_EQ(to_string(CacheOutcome::exact), "exact");
  EXPECT_EQ(to_string(CacheOutcome::semantic), "semantic");
}

}  // namespace
}  // namespace cascade
