#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <nlohmann/json.hpp>

#include "providers/provider.h"
#include "support/env.h"
#include "support/http_drive.h"
#include "support/scripted_http_server.h"

namespace cascade {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::ConnectionEnd;
using testing::drive_for;
using testing::drive_until;
using testing::RecordingObserver;
using testing::RecordedRequest;
using testing::ScriptedHttpServer;
using testing::ScriptedResponse;

constexpr std::string_view kApiKey = "test-anthropic-key-0123456789abcdef";

// Anthropic's Messages wire format for stream=true, as api.anthropic.com
// sends it: named events whose data repeats the name in "type", with a
// space after each JSON colon and comma.
std::string sse(std::string_view name, std::string_view data) {
  return "event: " + std::string(name) + "\ndata: " + std::string(data) + "\n\n";
}

const std::string kMessageStart = sse(
    "message_start",
    R"({"type": "message_start", "message": {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "content": [], "model": "claude-sonnet-4-6", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "cache_creation_input_tokens": 1800, "cache_read_input_tokens": 12000, "cache_creation": {"ephemeral_5m_input_tokens": 1800, "ephemeral_1h_input_tokens": 0}, "output_tokens": 1, "service_tier": "standard"}}})");
const std::string kBlockStart = sse(
    "content_block_start",
    R"({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})");
const std::string kPing = sse("ping", R"({"type": "ping"})");
const std::string kBlockStop = sse("content_block_stop", R"({"type": "content_block_stop", "index": 0})");
const std::string kMessageDelta = sse(
    "message_delta",
    R"({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 15}})");
const std::string kMessageStop = sse("message_stop", R"({"type": "message_stop"})");

std::string text_delta(std::string_view escaped_text, int index = 0) {
  return sse("content_block_delta",
             R"({"type": "content_block_delta", "index": )" + std::to_string(index) +
                 R"(, "delta": {"type": "text_delta", "text": ")" + std::string(escaped_text) + R"("}})");
}

std::string message_delta(std::string_view stop_reason, int output_tokens) {
  return sse("message_delta", R"({"type": "message_delta", "delta": {"stop_reason": ")" +
                                  std::string(stop_reason) +
                                  R"(", "stop_sequence": null}, "usage": {"output_tokens": )" +
                                  std::to_string(output_tokens) + "}}");
}

// Content pieces (JSON-escaped on the wire) and the text they decode to.
const std::vector<std::string> kEscapedPieces = {"Hello", ", wor", "ld! \\\"quoted\\\"", "\\n", "caf\\u00e9 ☕"};
const std::string kAnswer = "Hello, world! \"quoted\"\ncafé ☕";

std::string anthropic_sse_body() {
  std::string body = kMessageStart + kBlockStart + kPing;
  for (const auto& piece : kEscapedPieces) body += text_delta(piece);
  return body + kBlockStop + kMessageDelta + kMessageStop;
}

class AnthropicProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server.start()) << server.error();
    messages = json::array({{{"role", "system"}, {"content", "Be brief."}},
                            {{"role", "user"}, {"content", "Say hello"}}});
    request.upstream_model = "claude-sonnet-4-6";
    request.messages = &messages;
    request.max_tokens = 64;
  }

  ChatProvider& provider(bool with_key = true, std::string base_path = "/",
                         long request_timeout_ms = 20000) {
    ProviderConfig config;
    config.kind = "anthropic";
    config.base_url = server.base_url() + base_path;
    config.api_key_env = with_key ? "TEST_ANTHROPIC_KEY" : "";
    config.request_timeout_ms = request_timeout_ms;
    config.headers = {{"anthropic-beta", "test-beta-2025"}};
    const EnvLookup env = testing::env_of({{"TEST_ANTHROPIC_KEY", std::string(kApiKey)}});
    auto built = ProviderRegistry::build({{"anthropic", config}}, http, env);
    EXPECT_TRUE(built.has_value()) << built.error().message;
    registry = std::move(*built);
    return *registry.find("anthropic");
  }

  RecordingObserver& run(ChatProvider& chat) {
    chat.start_chat(request, observer);
    EXPECT_TRUE(drive_until(http, [&] { return observer.finished(); }));
    drive_for(http, 20ms);  // anything after on_complete would show up here
    return observer;
  }

  const ChatCompletion& success() const {
    EXPECT_TRUE(observer.outcome.has_value());
    if (observer.outcome && !observer.outcome->has_value()) {
      ADD_FAILURE() << observer.outcome->error().message;
    }
    return **observer.outcome;
  }

  const Error& error() const {
    EXPECT_TRUE(observer.outcome.has_value() && !observer.outcome->has_value());
    return observer.outcome->error();
  }

  json sent_body() const {
    const auto requests = server.requests();
    EXPECT_EQ(requests.size(), 1u);
    return requests.empty() ? json() : json::parse(requests[0].body);
  }

  ScriptedHttpServer server;
  HttpClient http;
  ProviderRegistry registry;
  json messages;
  ChatRequest request;
  RecordingObserver observer;
};

TEST_F(AnthropicProviderTest, StreamsAnthropicWireBytesSplitAtAwkwardPlaces) {
  // Re-split the exact response bytes (chunk framing included) into 7-byte
  // reads: splits fall inside headers, chunk sizes, "event:", JSON and UTF-8.
  const std::string wire = ScriptedResponse::sse_chunked({anthropic_sse_body()}).bytes();
  server.enqueue(ScriptedResponse::raw_in_pieces(wire, 7, 1ms));
  run(provider());

  EXPECT_EQ(observer.completions, 1);
  ASSERT_TRUE(observer.outcome && observer.outcome->has_value())
      << observer.outcome->error().message;
  EXPECT_EQ(observer.text(), kAnswer);
  EXPECT_EQ(observer.deltas.size(), kEscapedPieces.size());  // one delta per text_delta
  const ChatCompletion& done = **observer.outcome;
  EXPECT_EQ(done.finish_reason, "stop");
  EXPECT_TRUE(done.usage_reported);
  // Anthropic's input_tokens (25) leaves out the 12000 cache reads and the
  // 1800 cache writes; Cascade's counts the whole prompt.
  EXPECT_EQ(done.usage.input_tokens, 25 + 12000 + 1800);
  EXPECT_EQ(done.usage.cached_tokens, 12000);
  EXPECT_EQ(done.usage.cache_write_tokens, 1800);
  EXPECT_EQ(done.usage.output_tokens, 15);  // message_delta's cumulative count, not message_start's 1
  EXPECT_EQ(http.active(), 0u);
}

TEST_F(AnthropicProviderTest, EachByteInItsOwnReadStillParses) {
  const std::string wire = ScriptedResponse::sse_chunked({anthropic_sse_body()}).bytes();
  server.enqueue(ScriptedResponse::raw_in_pieces(wire, 1, 0ms));
  run(provider());
  EXPECT_EQ(success().finish_reason, "stop");
  EXPECT_EQ(observer.text(), kAnswer);
}

TEST_F(AnthropicProviderTest, SendsAStreamingMessagesRequest) {
  server.enqueue(ScriptedResponse::sse_chunked({anthropic_sse_body()}));
  request.temperature = 0.25;
  run(provider());
  success();

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  const RecordedRequest& sent = requests[0];
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.target, "/v1/messages");
  EXPECT_EQ(sent.header("x-api-key"), std::string(kApiKey));
  EXPECT_EQ(sent.header("anthropic-version"), "2023-06-01");
  EXPECT_EQ(sent.header("content-type"), "application/json");
  EXPECT_EQ(sent.header("anthropic-beta"), "test-beta-2025");
  EXPECT_FALSE(sent.header("Authorization").has_value());

  const json body = json::parse(sent.body);
  EXPECT_EQ(body["model"], "claude-sonnet-4-6");
  EXPECT_EQ(body["max_tokens"], 64);
  EXPECT_EQ(body["stream"], true);
  EXPECT_DOUBLE_EQ(body["temperature"].get<double>(), 0.25);
  EXPECT_EQ(body["system"], "Be brief.");
  EXPECT_EQ(body["messages"], json::parse(R"([{"role":"user","content":"Say hello"}])"));
  EXPECT_FALSE(body.contains("stream_options"));
}

TEST_F(AnthropicProviderTest, BaseUrlEndingInV1IsNotDoubled) {
  server.enqueue(ScriptedResponse::sse_chunked({anthropic_sse_body()}));
  run(provider(true, "/v1/"));
  success();
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].target, "/v1/messages");
}

TEST_F(AnthropicProviderTest, SystemAndDeveloperMessagesBecomeTheSystemField) {
  messages = json::array({
      {{"role", "system"}, {"content", "You are terse."}},
      {{"role", "user"}, {"content", "Hi"}},
      {{"role", "developer"}, {"content", json::array({{{"type", "text"}, {"text", "Answer in French."}}})}},
      {{"role", "user"}, {"content", "Bye"}},
  });
  server.enqueue(ScriptedResponse::sse_chunked({anthropic_sse_body()}));
  run(provider());
  success();
  const json body = sent_body();
  EXPECT_EQ(body["system"], "You are terse.\n\nAnswer in French.");
  // The developer message sat between two user turns, which are merged.
  EXPECT_EQ(body["messages"], json::parse(R"([{"role":"user","content":[
      {"type":"text","text":"Hi"},{"type":"text","text":"Bye"}]}])"));
}

TEST_F(AnthropicProviderTest, ConsecutiveSameRoleMessagesAreMergedSoRolesAlternate) {
  messages = json::array({
      {{"role", "user"}, {"content", "First."}},
      {{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", "Second."}}})}},
      {{"role", "assistant"}, {"content", "A1"}},
      {{"role", "assistant"}, {"content", "A2"}},
      {{"role", "user"}, {"content", "Third."}},
  });
  server.enqueue(ScriptedResponse::sse_chunked({anthropic_sse_body()}));
  run(provider());
  success();
  const json body = sent_body();
  EXPECT_FALSE(body.contains("system"));
  EXPECT_EQ(body["messages"], json::parse(R"([
      {"role":"user","content":[{"type":"text","text":"First."},{"type":"text","text":"Second."}]},
      {"role":"assistant","content":[{"type":"text","text":"A1"},{"type":"text","text":"A2"}]},
      {"role":"user","content":"Third."}])"));
}

TEST_F(AnthropicProviderTest, MaxTokensIsAlwaysSentAndTemperatureIsClampedToAnthropicsRange) {
  request.max_tokens = 0;  // Anthropic rejects a request without max_tokens
  request.temperature = 1.7;
  server.enqueue(ScriptedResponse::sse_chunked({anthropic_sse_body()}));
  run(provider());
  success();
  const json body = sent_body();
  ASSERT_TRUE(body.contains("max_tokens"));
  EXPECT_GT(body["max_tokens"].get<int>(), 0);
  EXPECT_DOUBLE_EQ(body["temperature"].get<double>(), 1.0);
}

TEST_F(AnthropicProviderTest, DataUrlImagesBecomeBase64ImageBlocks) {
  messages = json::array({{{"role", "user"},
                           {"content", json::array({
                                           {{"type", "text"}, {"text", "What is this?"}},
                                           {{"type", "image_url"},
                                            {"image_url", {{"url", "data:image/png;base64,iVBORw0KGgo="}}}},
                                       })}}});
  server.enqueue(ScriptedResponse::sse_chunked({anthropic_sse_body()}));
  run(provider());
  success();
  EXPECT_EQ(sent_body()["messages"], json::parse(R"([{"role":"user","content":[
      {"type":"text","text":"What is this?"},
      {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]}])"));
}

TEST_F(AnthropicProviderTest, CacheControlMarksAreCarriedOver) {
  const json breakpoint = {{"type", "ephemeral"}};
  messages = json::array({
      {{"role", "system"},
       {"content", json::array({{{"type", "text"}, {"text", "Long manual."}, {"cache_control", breakpoint}}})}},
      {{"role", "user"}, {"content", "Q"}},
  });
  server.enqueue(ScriptedResponse::sse_chunked({anthropic_sse_body()}));
  run(provider());
  success();
  EXPECT_EQ(sent_body()["system"], json::parse(R"([
      {"type":"text","text":"Long manual.","cache_control":{"type":"ephemeral"}}])"));
}

TEST_F(AnthropicProviderTest, OmitsTemperatureWhenUnsetAndApiKeyWithoutKey) {
  server.enqueue(ScriptedResponse::sse_chunked({anthropic_sse_body()}));
  run(provider(/*with_key=*/false));
  success();
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_FALSE(requests[0].header("x-api-key").has_value());
  EXPECT_EQ(requests[0].header("anthropic-version"), "2023-06-01");
  EXPECT_FALSE(json::parse(requests[0].body).contains("temperature"));
}

struct RejectedCase {
  std::string name;
  json messages;
  std::string message_contains;
};

void PrintTo(const RejectedCase& c, std::ostream* os) { *os << c.name; }

class AnthropicRejectedRequest : public AnthropicProviderTest,
                                 public ::testing::WithParamInterface<RejectedCase> {};

TEST_P(AnthropicRejectedRequest, IsInvalidRequestAndNothingIsSent) {
  messages = GetParam().messages;
  ChatProvider& chat = provider();
  const std::uint64_t id = chat.start_chat(request, observer);
  EXPECT_EQ(id, 0u);
  drive_for(http, 20ms);
  EXPECT_EQ(observer.completions, 1);
  EXPECT_TRUE(observer.deltas.empty());
  EXPECT_EQ(error().code, ErrorCode::invalid_request);
  EXPECT_NE(error().message.find(GetParam().message_contains), std::string::npos) << error().message;
  EXPECT_EQ(http.active(), 0u);
  EXPECT_TRUE(server.requests().empty());
}

INSTANTIATE_TEST_SUITE_P(
    Messages, AnthropicRejectedRequest,
    ::testing::Values(
        RejectedCase{"tool_role",
                     json::parse(R"([{"role":"user","content":"weather?"},
                                     {"role":"tool","tool_call_id":"call_1","content":"sunny"}])"),
                     "messages[1]: role 'tool'"},
        RejectedCase{"assistant_tool_calls",
                     json::parse(R"([{"role":"user","content":"weather?"},
                                     {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
                                      "function":{"name":"weather","arguments":"{}"}}]}])"),
                     "messages[1]: tool_calls"},
        RejectedCase{"audio_part",
                     json::parse(R"([{"role":"user","content":[{"type":"input_audio",
                                     "input_audio":{"data":"AAAA","format":"wav"}}]}])"),
                     "'input_audio' is not supported"},
        RejectedCase{"image_in_system",
                     json::parse(R"([{"role":"system","content":[{"type":"image_url",
                                     "image_url":{"url":"data:image/png;base64,AAAA"}}]},
                                     {"role":"user","content":"hi"}])"),
                     "in a system message"},
        RejectedCase{"unsupported_image_type",
                     json::parse(R"([{"role":"user","content":[{"type":"image_url",
                                     "image_url":{"url":"data:image/tiff;base64,AAAA"}}]}])"),
                     "'image/tiff'"},
        RejectedCase{"only_a_system_prompt", json::parse(R"([{"role":"system","content":"x"}])"),
                     "no user or assistant message"},
        RejectedCase{"unknown_role", json::parse(R"([{"role":"narrator","content":"x"}])"),
                     "unknown role 'narrator'"}),
    [](const ::testing::TestParamInfo<RejectedCase>& info) { return info.param.name; });

TEST_F(AnthropicProviderTest, StopReasonsMapToCascadeFinishReasons) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"end_turn", "stop"}, {"stop_sequence", "stop"}, {"max_tokens", "length"}, {"refusal", "refusal"}};
  // The responder runs on the server's thread, and may be copied before each call.
  std::atomic<std::size_t> answered{0};
  server.set_responder([&](const RecordedRequest&) {
    const auto& reason = cases[answered++ % cases.size()].first;
    return ScriptedResponse::sse_chunked(
        {kMessageStart + kBlockStart + text_delta("x") + kBlockStop + message_delta(reason, 64) + kMessageStop});
  });
  ChatProvider& chat = provider();
  for (const auto& [stop_reason, finish_reason] : cases) {
    RecordingObserver each;
    chat.start_chat(request, each);
    ASSERT_TRUE(drive_until(http, [&] { return each.finished(); }));
    ASSERT_TRUE(each.outcome->has_value()) << each.outcome->error().message;
    EXPECT_EQ((*each.outcome)->finish_reason, finish_reason) << stop_reason;
    EXPECT_EQ((*each.outcome)->usage.output_tokens, 64);
  }
}

TEST_F(AnthropicProviderTest, ThinkingAndToolInputDeltasAreNotAnswerText) {
  const std::string thinking_start = sse(
      "content_block_start",
      R"({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}})");
  const std::string thinking = sse(
      "content_block_delta",
      R"({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Let me think."}})");
  const std::string signature = sse(
      "content_block_delta",
      R"({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"}})");
  const std::string json_input = sse(
      "content_block_delta",
      R"({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"location\": \"San Fra"}})");
  const std::string unknown = sse("future_event", R"({"type": "future_event", "x": 1})");
  server.enqueue(ScriptedResponse::sse_chunked(
      {kMessageStart + thinking_start + thinking + signature +
           sse("content_block_stop", R"({"type": "content_block_stop", "index": 0})"),
       sse("content_block_start",
           R"({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}})") +
           text_delta("Answer", 1) + json_input + unknown + kPing +
           sse("content_block_stop", R"({"type": "content_block_stop", "index": 1})") +
           kMessageDelta + kMessageStop}));
  run(provider());
  EXPECT_EQ(success().finish_reason, "stop");
  EXPECT_EQ(observer.deltas, std::vector<std::string>{"Answer"});
}

TEST_F(AnthropicProviderTest, NoCacheActivityLeavesCacheCountsAtZero) {
  const std::string start = sse(
      "message_start",
      R"({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-haiku-4-5", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 12, "output_tokens": 1}}})");
  server.enqueue(ScriptedResponse::sse_chunked({start + kBlockStart + text_delta("Hi") + kBlockStop +
                                                message_delta("end_turn", 3) + kMessageStop}));
  run(provider());
  const ChatCompletion& done = success();
  EXPECT_EQ(done.usage.input_tokens, 12);
  EXPECT_EQ(done.usage.cached_tokens, 0);
  EXPECT_EQ(done.usage.cache_write_tokens, 0);
  EXPECT_EQ(done.usage.output_tokens, 3);
}

TEST_F(AnthropicProviderTest, ErrorEventMidStreamIsAProviderError) {
  server.enqueue(ScriptedResponse::sse_chunked(
      {kMessageStart + kBlockStart + text_delta("partial") +
       sse("error", R"({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})") +
       kMessageStop}));
  run(provider());
  EXPECT_EQ(observer.completions, 1);
  EXPECT_EQ(observer.text(), "partial");
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_EQ(error().message, "upstream error: overloaded_error: Overloaded");
  EXPECT_EQ(http.active(), 0u);
}

TEST_F(AnthropicProviderTest, ApiErrorEventIsAProviderErrorQuotingItsMessage) {
  server.enqueue(ScriptedResponse::sse_chunked(
      {kMessageStart +
       sse("error", R"({"type": "error", "error": {"type": "api_error", "message": "Internal server error"}})")}));
  run(provider());
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_EQ(error().message, "upstream error: api_error: Internal server error");
}

TEST_F(AnthropicProviderTest, RateLimitStatusIsAProviderErrorQuotingAnthropicsMessage) {
  ScriptedResponse response = ScriptedResponse::http(
      429, "application/json",
      R"({"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization of 50 requests per minute."},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"})");
  // The scripted response's head ends in a blank line; Retry-After goes before it.
  std::string& head = response.pieces[0].bytes;
  head.insert(head.find("\r\n\r\n") + 2, "retry-after: 17\r\n");
  server.enqueue(response);
  run(provider());
  EXPECT_EQ(observer.completions, 1);
  EXPECT_TRUE(observer.deltas.empty());
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_EQ(error().message,
            "HTTP 429: This request would exceed the rate limit for your organization of 50 "
            "requests per minute.");
  EXPECT_EQ(error().http_status, 429);
  EXPECT_EQ(error().retry_after_ms, 17000);
}

TEST_F(AnthropicProviderTest, OverloadedStatusIsAProviderError) {
  server.enqueue(ScriptedResponse::http(
      529, "application/json",
      R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fz"})"));
  run(provider());
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_EQ(error().message, "HTTP 529: Overloaded");
  EXPECT_EQ(error().http_status, 529);
}

TEST_F(AnthropicProviderTest, GatewayTimeoutStatusIsATimeout) {
  server.enqueue(ScriptedResponse::http(504, "text/html", "<html><body>504 Gateway Time-out</body></html>"));
  run(provider());
  EXPECT_EQ(error().code, ErrorCode::timeout);
  EXPECT_NE(error().message.find("HTTP 504"), std::string::npos) << error().message;
}

TEST_F(AnthropicProviderTest, ErrorMessagesNeverContainTheApiKey) {
  server.enqueue(ScriptedResponse::http(
      401, "application/json",
      std::string(R"({"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key: )") +
          std::string(kApiKey) + R"("}})"));
  run(provider());
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_NE(error().message.find("HTTP 401"), std::string::npos);
  EXPECT_EQ(error().message.find(kApiKey), std::string::npos) << error().message;
}

TEST_F(AnthropicProviderTest, ChunkedStreamCutBeforeMessageStopIsAnError) {
  server.enqueue(ScriptedResponse::sse_chunked({kMessageStart + kBlockStart, text_delta("partial")}, 0ms,
                                               /*terminate=*/false));
  run(provider());
  EXPECT_EQ(observer.completions, 1);
  EXPECT_EQ(observer.text(), "partial");
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_NE(error().message.find("message_stop"), std::string::npos) << error().message;
}

TEST_F(AnthropicProviderTest, CleanEndAfterMessageDeltaButWithoutMessageStopIsAnError) {
  // A complete HTTP response (terminating chunk sent) that lacks the end
  // marker: the stop reason and usage are there, the answer still is not.
  server.enqueue(ScriptedResponse::sse_chunked(
      {kMessageStart + kBlockStart + text_delta("partial") + kBlockStop + kMessageDelta}));
  run(provider());
  EXPECT_EQ(observer.text(), "partial");
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_EQ(error().message, "stream ended before message_stop");
}

TEST_F(AnthropicProviderTest, ConnectionCloseBeforeMessageStopIsAnError) {
  const std::string wire =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nConnection: close\r\n\r\n" +
      kMessageStart + kBlockStart + text_delta("partial");
  server.enqueue(ScriptedResponse::raw_in_pieces(wire, 64, 0ms, ConnectionEnd::close));
  run(provider());
  EXPECT_EQ(observer.text(), "partial");
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_EQ(error().message, "stream ended before message_stop");
}

TEST_F(AnthropicProviderTest, MalformedEventIsAnErrorAndEndsTheTransfer) {
  server.enqueue(ScriptedResponse::sse_chunked(
      {kMessageStart + kBlockStart + text_delta("ok") +
       "event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"trunc\n\n" +
       text_delta("never") + kMessageStop}));
  run(provider());
  EXPECT_EQ(observer.completions, 1);
  EXPECT_EQ(observer.text(), "ok");
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_EQ(error().message, "malformed stream event");
  EXPECT_EQ(http.active(), 0u);
}

TEST_F(AnthropicProviderTest, TextDeltaWithoutTextIsMalformed) {
  server.enqueue(ScriptedResponse::sse_chunked(
      {kMessageStart +
       sse("content_block_delta", R"({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta"}})") +
       kMessageStop}));
  run(provider());
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_EQ(error().message, "malformed stream event");
}

TEST_F(AnthropicProviderTest, ConnectionRefusedIsUnavailable) {
  server.stop();
  run(provider());
  EXPECT_EQ(observer.completions, 1);
  EXPECT_EQ(error().code, ErrorCode::unavailable);
}

TEST_F(AnthropicProviderTest, DeltasArriveWhileTheStreamIsStillOpen) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  ScriptedResponse response = ScriptedResponse::sse_chunked(
      {kMessageStart + kBlockStart + text_delta("first"),
       text_delta(" second") + kBlockStop + kMessageDelta + kMessageStop});
  // The server holds the rest of the answer until the test has seen "first".
  response.pieces[2].before_send = [released] { released.wait(); };
  server.enqueue(response);

  ChatProvider& chat = provider();
  chat.start_chat(request, observer);
  ASSERT_TRUE(drive_until(http, [&] { return !observer.deltas.empty(); }));
  EXPECT_EQ(observer.text(), "first");
  EXPECT_FALSE(observer.finished());
  release.set_value();
  ASSERT_TRUE(drive_until(http, [&] { return observer.finished(); }));
  ASSERT_TRUE(observer.outcome->has_value());
  EXPECT_EQ(observer.text(), "first second");
}

TEST_F(AnthropicProviderTest, ConnectionIsReusedAfterMessageStop) {
  server.set_responder([](const RecordedRequest&) {
    return ScriptedResponse::sse_chunked({anthropic_sse_body()});
  });
  ChatProvider& chat = provider();
  for (int i = 0; i < 3; ++i) {
    RecordingObserver each;
    chat.start_chat(request, each);
    ASSERT_TRUE(drive_until(http, [&] { return each.finished(); }));
    ASSERT_TRUE(each.outcome->has_value());
    EXPECT_EQ(each.text(), kAnswer);
    ASSERT_TRUE(drive_until(http, [&] { return http.active() == 0; }));
  }
  EXPECT_EQ(server.connections_accepted(), 1u);
}

TEST_F(AnthropicProviderTest, CancelFromInsideOnDeltaStopsTheRestOfTheSameRead) {
  server.enqueue(ScriptedResponse::sse_chunked({anthropic_sse_body()}));
  ChatProvider& chat = provider();
  std::uint64_t id = 0;
  observer.delta_hook = [&] { http.cancel(id); };
  id = chat.start_chat(request, observer);
  ASSERT_TRUE(drive_until(http, [&] { return !observer.deltas.empty(); }));
  drive_for(http, 200ms);
  EXPECT_EQ(observer.deltas.size(), 1u);
  EXPECT_EQ(observer.completions, 0);
  EXPECT_EQ(http.active(), 0u);
}

}  // namespace
}  // namespace cascade
