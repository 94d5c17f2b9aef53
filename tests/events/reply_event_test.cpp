#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "events/events.h"

namespace cascade {
namespace {

using nlohmann::json;

std::set<std::string> keys_of(const json& object) {
  std::set<std::string> keys;
  for (const auto& [key, value] : object.items()) keys.insert(key);
  return keys;
}

FinalReply sample_final() {
  FinalReply final;
  final.id = "req-42";
  final.seq = 17;
  final.content = "Paris is the capital of France. \xF0\x9F\x87\xAB\xF0\x9F\x87\xB7 \"quoted\"\n";
  final.model = "gpt-4o-mini";
  final.provider = "openai";
  final.finish_reason = "stop";
  final.usage = TokenUsage{
      .input_tokens = 1200, .output_tokens = 64, .cached_tokens = 1024, .cache_write_tokens = 150};
  final.cost_usd = 0.000123456789;
  final.cache = CacheOutcome::semantic;
  final.route = RouteInfo{.tier = "small", .score = 0.375, .reason = "short factual question", .policy = ""};
  final.metadata = {{"trace", "t-1"}, {"n", 3}, {"tags", json::array({"a", "b"})}};
  return final;
}

void expect_same_final(const FinalReply& actual, const FinalReply& expected) {
  EXPECT_EQ(actual.id, expected.id);
  EXPECT_EQ(actual.seq, expected.seq);
  EXPECT_EQ(actual.content, expected.content);
  EXPECT_EQ(actual.model, expected.model);
  EXPECT_EQ(actual.provider, expected.provider);
  EXPECT_EQ(actual.finish_reason, expected.finish_reason);
  EXPECT_EQ(actual.usage.input_tokens, expected.usage.input_tokens);
  EXPECT_EQ(actual.usage.output_tokens, expected.usage.output_tokens);
  EXPECT_EQ(actual.usage.cached_tokens, expected.usage.cached_tokens);
  EXPECT_EQ(actual.usage.cache_write_tokens, expected.usage.cache_write_tokens);
  EXPECT_EQ(actual.cost_usd, expected.cost_usd);  // exact: doubles serialize round-trip safe
  EXPECT_EQ(actual.cache, expected.cache);
  EXPECT_EQ(actual.route.tier, expected.route.tier);
  EXPECT_EQ(actual.route.score, expected.route.score);
  EXPECT_EQ(actual.route.reason, expected.route.reason);
  EXPECT_EQ(actual.metadata, expected.metadata);
}

// ---- chunk -------------------------------------------------------------------

TEST(ChunkEvent, HasExactlyTheSchemaFields) {
  const json chunk = json::parse(make_chunk_event("req-1", 0, "Hel"));
  EXPECT_EQ(keys_of(chunk), (std::set<std::string>{"v", "id", "type", "seq", "delta"}));
  EXPECT_EQ(chunk["v"], 1);
  EXPECT_EQ(chunk["id"], "req-1");
  EXPECT_EQ(chunk["type"], "chunk");
  EXPECT_EQ(chunk["seq"], 0);
  EXPECT_EQ(chunk["delta"], "Hel");
}

class ChunkUnicode : public ::testing::TestWithParam<std::string> {};

TEST_P(ChunkUnicode, DeltaRoundTripsByteForByte) {
  const std::string& delta = GetParam();
  const std::string event = make_chunk_event("req-\xE2\x9C\x93", 3, delta);
  auto reply = parse_reply_event(event);
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(reply->id, "req-\xE2\x9C\x93");
  EXPECT_EQ(reply->type, "chunk");
  EXPECT_EQ(reply->seq, 3);
  EXPECT_EQ(reply->body["delta"].get<std::string>(), delta);
}

INSTANTIATE_TEST_SUITE_P(
    Deltas, ChunkUnicode,
    ::testing::Values(std::string(""), std::string("plain"),
                      std::string("\xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD"),  // emoji + skin tone
                      std::string("\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C"),  // CJK
                      std::string("\"quoted\" and \\backslash\\ and /slash/"),
                      std::string("line one\nline two\r\n\ttabbed"),
                      std::string("control \x01\x1F chars"), std::string("nul \0 inside", 12),
                      std::string("\xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D \xD8\xB9\xD8\xB1\xD8\xA8\xD9\x8A"),  // RTL
                      std::string("</script><!-- \u2028 \u2029 -->")));

TEST(ChunkEvent, InvalidUtf8DeltaIsReplacedNotThrown) {
  std::string event;
  ASSERT_NO_THROW(event = make_chunk_event("req-1", 5, "ok \xFF\xC3 end"));
  const json chunk = json::parse(event);  // must stay valid JSON
  EXPECT_EQ(chunk["delta"], "ok \xEF\xBF\xBD\xEF\xBF\xBD end");
}

TEST(ChunkEvent, SequenceNumbersAreCarriedVerbatim) {
  for (std::int64_t seq : {std::int64_t{0}, std::int64_t{1}, std::int64_t{2}, std::int64_t{999'999'999'999}}) {
    auto reply = parse_reply_event(make_chunk_event("r", seq, "x"));
    ASSERT_TRUE(reply);
    EXPECT_EQ(reply->seq, seq);
  }
}

// ---- final -------------------------------------------------------------------

TEST(FinalEvent, HasExactlyTheSchemaFields) {
  const json final = json::parse(make_final_event(sample_final()));
  EXPECT_EQ(keys_of(final),
            (std::set<std::string>{"v", "id", "type", "seq", "content", "model", "provider",
                                   "finish_reason", "usage", "cost_usd", "cache", "route",
                                   "metadata"}));
  EXPECT_EQ(keys_of(final["usage"]),
            (std::set<std::string>{"input_tokens", "output_tokens", "cached_tokens",
                                   "cache_write_tokens"}));
  EXPECT_EQ(keys_of(final["route"]), (std::set<std::string>{"tier", "score", "reason"}));
  EXPECT_EQ(final["v"], 1);
  EXPECT_EQ(final["type"], "final");
  EXPECT_EQ(final["cache"], "semantic");
  EXPECT_EQ(final, to_json(sample_final()));
}

TEST(FinalEvent, RoundTripsEveryField) {
  const FinalReply original = sample_final();
  auto parsed = parse_final_event(make_final_event(original));
  ASSERT_TRUE(parsed) << parsed.error().message;
  expect_same_final(*parsed, original);
}

TEST(FinalEvent, ReadFromItsParsedReplyEventIsTheSameAsFromItsPayload) {
  const FinalReply original = sample_final();
  auto reply = parse_reply_event(make_final_event(original));
  ASSERT_TRUE(reply) << reply.error().message;
  auto final = parse_final_event(*reply);
  ASSERT_TRUE(final) << final.error().message;
  expect_same_final(*final, original);
  auto chunk = parse_reply_event(make_chunk_event("r", 0, "x"));
  ASSERT_TRUE(chunk);
  EXPECT_FALSE(parse_final_event(*chunk)) << "a chunk is not a final";
}

TEST(FinalEvent, RoutePolicyRoundTripsAndIsAbsentWhenEmpty) {
  FinalReply original = sample_final();
  original.route.policy = "thrift:careful";
  const json written = json::parse(make_final_event(original));
  EXPECT_EQ(keys_of(written["route"]), (std::set<std::string>{"tier", "score", "reason", "policy"}));
  EXPECT_EQ(written["route"]["policy"], "thrift:careful");
  auto parsed = parse_final_event(written.dump());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->route.policy, "thrift:careful");

  auto without = parse_final_event(make_final_event(sample_final()));
  ASSERT_TRUE(without);
  EXPECT_EQ(without->route.policy, "");
}

TEST(FinalEvent, RoundTripsEveryCacheOutcomeAndEmptyMetadata) {
  for (auto outcome : {CacheOutcome::miss, CacheOutcome::exact, CacheOutcome::semantic}) {
    FinalReply original = sample_final();
    original.cache = outcome;
    original.metadata = json::object();
    auto parsed = parse_final_event(make_final_event(original));
    ASSERT_TRUE(parsed) << parsed.error().message;
    expect_same_final(*parsed, original);
  }
}

TEST(FinalEvent, NonObjectMetadataIsWrittenAsEmptyObject) {
  FinalReply original = sample_final();
  original.metadata = nullptr;
  const json final = json::parse(make_final_event(original));
  EXPECT_EQ(final["metadata"], json::object());
}

TEST(FinalEvent, IsReadableAsReplyEvent) {
  auto reply = parse_reply_event(make_final_event(sample_final()));
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(reply->id, "req-42");
  EXPECT_EQ(reply->type, "final");
  EXPECT_EQ(reply->seq, 17);
  EXPECT_EQ(reply->body["usage"]["cached_tokens"], 1024);
  EXPECT_EQ(reply->body["route"]["reason"], "short factual question");
}

TEST(FinalEvent, ToleratesFieldsFromLaterVersions) {
  json final = to_json(sample_final());
  final["v"] = 2;
  final["new_field"] = {{"x", 1}};
  final["usage"]["reasoning_tokens"] = 9;
  auto parsed = parse_final_event(final.dump());
  ASSERT_TRUE(parsed) << parsed.error().message;
  expect_same_final(*parsed, sample_final());
}

TEST(FinalEvent, EventsWrittenBeforeCacheWriteTokensStillParse) {
  json final = to_json(sample_final());
  final["usage"].erase("cache_write_tokens");
  auto parsed = parse_final_event(final.dump());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->usage.cache_write_tokens, 0);
  EXPECT_EQ(parsed->usage.cached_tokens, 1024);

  final["usage"]["cache_write_tokens"] = nullptr;
  parsed = parse_final_event(final.dump());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->usage.cache_write_tokens, 0);
}

TEST(FinalEvent, CacheWriteTokensAreSerializedInUsage) {
  const json final = json::parse(make_final_event(sample_final()));
  EXPECT_EQ(final["usage"]["cache_write_tokens"], 150);
}

struct GarbageCase {
  std::string name;
  std::string payload;
  std::string message_contains;
};

void PrintTo(const GarbageCase& c, std::ostream* os) { *os << c.name; }

std::string final_with(const std::string& pointer, const json& value) {
  json final = to_json(sample_final());
  final[json::json_pointer(pointer)] = value;
  return final.dump();
}

std::string final_without(const std::string& pointer) {
  json final = to_json(sample_final());
  json::json_pointer path(pointer);
  final[path.parent_pointer()].erase(path.back());
  return final.dump();
}

std::vector<GarbageCase> final_garbage() {
  return {
      {"empty", "", "not valid JSON"},
      {"truncated", make_final_event(sample_final()).substr(0, 40), "not valid JSON"},
      {"array", "[]", "must be a JSON object"},
      {"number", "12", "must be a JSON object"},
      {"chunk_instead", make_chunk_event("a", 1, "x"), "'type'"},
      {"error_instead", make_error_event("a", 1, Error{ErrorCode::timeout, "t"}), "'type'"},
      {"missing_id", final_without("/id"), "'id'"},
      {"id_number", final_with("/id", 5), "'id'"},
      {"missing_type", final_without("/type"), "'type'"},
      {"seq_negative", final_with("/seq", -1), "'seq'"},
      {"seq_float", final_with("/seq", 1.5), "'seq'"},
      {"seq_string", final_with("/seq", "1"), "'seq'"},
      {"missing_content", final_without("/content"), "'content'"},
      {"content_null", final_with("/content", nullptr), "'content'"},
      {"missing_model", final_without("/model"), "'model'"},
      {"missing_provider", final_without("/provider"), "'provider'"},
      {"missing_finish_reason", final_without("/finish_reason"), "'finish_reason'"},
      {"usage_string", final_with("/usage", "lots"), "'usage'"},
      {"missing_usage", final_without("/usage"), "'usage'"},
      {"missing_output_tokens", final_without("/usage/output_tokens"), "'usage.output_tokens'"},
      {"negative_input_tokens", final_with("/usage/input_tokens", -3), "'usage.input_tokens'"},
      {"cached_tokens_string", final_with("/usage/cached_tokens", "1"), "'usage.cached_tokens'"},
      {"cache_write_tokens_negative", final_with("/usage/cache_write_tokens", -1),
       "'usage.cache_write_tokens'"},
      {"cache_write_tokens_string", final_with("/usage/cache_write_tokens", "7"),
       "'usage.cache_write_tokens'"},
      {"cost_string", final_with("/cost_usd", "0.1"), "'cost_usd'"},
      {"cost_null", final_with("/cost_usd", nullptr), "'cost_usd'"},
      {"cache_unknown", final_with("/cache", "warm"), "'cache'"},
      {"route_missing_tier", final_without("/route/tier"), "'route.tier'"},
      {"route_score_bool", final_with("/route/score", true), "'route.score'"},
      {"metadata_array", final_with("/metadata", json::array()), "'metadata'"},
      {"version_zero", final_with("/v", 0), "'v'"},
      {"version_string", final_with("/v", "1"), "'v'"},
      {"deep", "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}", "deeper"},
  };
}

class FinalGarbage : public ::testing::TestWithParam<GarbageCase> {};

TEST_P(FinalGarbage, IsInvalidRequestNamingTheProblem) {
  const GarbageCase& c = GetParam();
  Result<FinalReply> parsed;
  ASSERT_NO_THROW(parsed = parse_final_event(c.payload));
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code, ErrorCode::invalid_request);
  EXPECT_NE(parsed.error().message.find(c.message_contains), std::string::npos)
      << parsed.error().message;
}

INSTANTIATE_TEST_SUITE_P(Payloads, FinalGarbage, ::testing::ValuesIn(final_garbage()),
                         [](const auto& info) { return info.param.name; });

// ---- error -------------------------------------------------------------------

TEST(ErrorEvent, CarriesEverySchemaErrorCode) {
  const std::vector<std::pair<ErrorCode, std::string>> codes = {
      {ErrorCode::invalid_request, "invalid_request"},
      {ErrorCode::budget_exceeded, "budget_exceeded"},
      {ErrorCode::provider_error, "provider_error"},
      {ErrorCode::timeout, "timeout"},
      {ErrorCode::unavailable, "unavailable"},
      {ErrorCode::internal, "internal"},
  };
  for (const auto& [code, name] : codes) {
    const std::string event = make_error_event("req-9", 4, Error{code, "it went \"wrong\"\n"});
    const json parsed = json::parse(event);
    EXPECT_EQ(keys_of(parsed), (std::set<std::string>{"v", "id", "type", "seq", "error"}));
    EXPECT_EQ(keys_of(parsed["error"]), (std::set<std::string>{"code", "message"}));
    EXPECT_EQ(parsed["v"], 1);
    EXPECT_EQ(parsed["error"]["code"], name);

    auto reply = parse_reply_event(event);
    ASSERT_TRUE(reply) << reply.error().message;
    EXPECT_EQ(reply->id, "req-9");
    EXPECT_EQ(reply->type, "error");
    EXPECT_EQ(reply->seq, 4);
    EXPECT_EQ(reply->body["error"]["code"], name);
    EXPECT_EQ(reply->body["error"]["message"], "it went \"wrong\"\n");
  }
}

TEST(ErrorEvent, InvalidUtf8MessageStaysValidJson) {
  const std::string event =
      make_error_event("req-1", 0, Error{ErrorCode::provider_error, "upstream said \xC0\xAF"});
  EXPECT_TRUE(json::accept(event));
  EXPECT_TRUE(parse_reply_event(event));
}

// ---- generic reply parsing ----------------------------------------------------

TEST(ReplyEvent, UnknownTypesPassThroughForForwardCompatibility) {
  auto reply = parse_reply_event(R"({"v":2,"id":"a","type":"tool_call","seq":3,"name":"f"})");
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(reply->type, "tool_call");
  EXPECT_EQ(reply->body["name"], "f");
}

TEST(ReplyEvent, EventWithoutVersionFieldIsAccepted) {
  auto reply = parse_reply_event(R"({"id":"a","type":"chunk","seq":0,"delta":"x"})");
  ASSERT_TRUE(reply) << reply.error().message;
}

std::vector<GarbageCase> reply_garbage() {
  return {
      {"empty", "", "not valid JSON"},
      {"binary", std::string("\x00\x01\x02", 3), "not valid JSON"},
      {"string", "\"chunk\"", "must be a JSON object"},
      {"missing_id", R"({"type":"chunk","seq":0,"delta":"x"})", "'id'"},
      {"missing_type", R"({"id":"a","seq":0,"delta":"x"})", "'type'"},
      {"empty_type", R"({"id":"a","type":"","seq":0})", "'type'"},
      {"missing_seq", R"({"id":"a","type":"chunk","delta":"x"})", "'seq'"},
      {"seq_too_big", R"({"id":"a","type":"chunk","seq":18446744073709551615,"delta":"x"})",
       "'seq'"},
      {"chunk_without_delta", R"({"id":"a","type":"chunk","seq":0})", "'delta'"},
      {"chunk_delta_number", R"({"id":"a","type":"chunk","seq":0,"delta":1})", "'delta'"},
      {"error_without_error", R"({"id":"a","type":"error","seq":0})", "'error'"},
      {"error_without_code", R"({"id":"a","type":"error","seq":0,"error":{"message":"m"}})",
       "'error.code'"},
      {"error_without_message", R"({"id":"a","type":"error","seq":0,"error":{"code":"timeout"}})",
       "'error.message'"},
      {"final_incomplete", R"({"id":"a","type":"final","seq":0,"content":"x"})", "'model'"},
  };
}

class ReplyGarbage : public ::testing::TestWithParam<GarbageCase> {};

TEST_P(ReplyGarbage, IsInvalidRequestNamingTheProblem) {
  const GarbageCase& c = GetParam();
  Result<ReplyEvent> parsed;
  ASSERT_NO_THROW(parsed = parse_reply_event(c.payload));
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code, ErrorCode::invalid_request);
  EXPECT_NE(parsed.error().message.find(c.message_contains), std::string::npos)
      << parsed.error().message;
}

INSTANTIATE_TEST_SUITE_P(Payloads, ReplyGarbage, ::testing::ValuesIn(reply_garbage()),
                         [](const auto& info) { return info.param.name; });

// ---- final: reasoning tokens and tool calls (added after v1 shipped) ----------

const json kToolCalls = json::parse(
    R"([{"id":"call_Wx8kQ2vLmN3pR7sT","type":"function","function":{"name":"get_weather","arguments":"{\"location\": \"São Paulo\"}"}},)"
    R"({"id":"call_Zp4mHq9XyB1cD2eF","type":"function","function":{"name":"get_time","arguments":"{}"}}])");

FinalReply final_with_tool_calls_and_reasoning() {
  FinalReply final = sample_final();
  final.content.clear();
  final.finish_reason = "tool_calls";
  final.usage.reasoning_tokens = 40;
  final.tool_calls = kToolCalls;
  return final;
}

TEST(FinalEvent, ReasoningTokensAndToolCallsRoundTrip) {
  const FinalReply original = final_with_tool_calls_and_reasoning();
  auto parsed = parse_final_event(make_final_event(original));
  ASSERT_TRUE(parsed) << parsed.error().message;
  expect_same_final(*parsed, original);
  EXPECT_EQ(parsed->usage.reasoning_tokens, 40);
  EXPECT_EQ(parsed->tool_calls, kToolCalls);
  EXPECT_EQ(parsed->tool_calls.dump(), kToolCalls.dump());
}

TEST(FinalEvent, ReasoningTokensAndToolCallsAreWrittenWhereDocumented) {
  const json final = json::parse(make_final_event(final_with_tool_calls_and_reasoning()));
  EXPECT_EQ(final["usage"]["reasoning_tokens"], 40);
  EXPECT_EQ(final["tool_calls"], kToolCalls);
  EXPECT_EQ(final["finish_reason"], "tool_calls");
}

TEST(FinalEvent, ZeroReasoningTokensAndNoToolCallsLeaveTheV1FieldSetUnchanged) {
  FinalReply original = sample_final();
  original.usage.reasoning_tokens = 0;
  original.tool_calls = json::array();
  const json final = json::parse(make_final_event(original));
  EXPECT_FALSE(final.contains("tool_calls"));
  EXPECT_FALSE(final["usage"].contains("reasoning_tokens"));
  original.tool_calls = nullptr;  // not an array: nothing to write either
  EXPECT_FALSE(json::parse(make_final_event(original)).contains("tool_calls"));
}

TEST(FinalEvent, EventsWrittenBeforeReasoningTokensAndToolCallsStillParse) {
  json final = to_json(final_with_tool_calls_and_reasoning());
  final["usage"].erase("reasoning_tokens");
  final.erase("tool_calls");
  auto parsed = parse_final_event(final.dump());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->usage.reasoning_tokens, 0);
  EXPECT_EQ(parsed->tool_calls, json::array());

  final["usage"]["reasoning_tokens"] = nullptr;
  final["tool_calls"] = nullptr;
  parsed = parse_final_event(final.dump());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->usage.reasoning_tokens, 0);
  EXPECT_EQ(parsed->tool_calls, json::array());
}

TEST(FinalEvent, FinalWithToolCallsIsReadableAsReplyEvent) {
  auto reply = parse_reply_event(make_final_event(final_with_tool_calls_and_reasoning()));
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_EQ(reply->body["tool_calls"], kToolCalls);
}

std::vector<GarbageCase> final_extension_garbage() {
  return {
      {"reasoning_tokens_negative", final_with("/usage/reasoning_tokens", -1),
       "'usage.reasoning_tokens'"},
      {"reasoning_tokens_float", final_with("/usage/reasoning_tokens", 2.5),
       "'usage.reasoning_tokens'"},
      {"tool_calls_object", final_with("/tool_calls", json::object()), "'tool_calls'"},
      {"tool_calls_string", final_with("/tool_calls", "[]"), "'tool_calls'"},
      {"tool_calls_of_strings", final_with("/tool_calls", json::array({"call_1"})), "'tool_calls'"},
  };
}

INSTANTIATE_TEST_SUITE_P(Extensions, FinalGarbage, ::testing::ValuesIn(final_extension_garbage()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace cascade
