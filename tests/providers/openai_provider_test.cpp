#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <map>
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

constexpr std::string_view kApiKey = "sk-proj-TESTKEY0123456789abcdef";

// OpenAI's wire format for stream=true with stream_options.include_usage, as
// api.openai.com sends it: a role-only first chunk, content chunks, a
// finish_reason chunk, a usage chunk with empty choices, then [DONE].
std::string openai_chunk(std::string_view choices_json, std::string_view usage_json = "null") {
  return std::string(R"(data: {"id":"chatcmpl-AbC123xyz","object":"chat.completion.chunk","created":1727000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_e2bde53e6e","choices":)") +
         std::string(choices_json) + R"(,"usage":)" + std::string(usage_json) + "}\n\n";
}

std::string content_chunk(std::string_view escaped_text) {
  return openai_chunk(std::string(R"([{"index":0,"delta":{"content":")") +
                      std::string(escaped_text) + R"("},"logprobs":null,"finish_reason":null}])");
}

const std::string kRoleChunk = openai_chunk(
    R"([{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}])");
const std::string kStopChunk =
    openai_chunk(R"([{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}])");
const std::string kUsageChunk = openai_chunk(
    "[]",
    R"({"prompt_tokens":1200,"completion_tokens":7,"total_tokens":1207,"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}})");
const std::string kDone = "data: [DONE]\n\n";

// Content pieces (JSON-escaped on the wire) and the text they decode to.
const std::vector<std::string> kEscapedPieces = {"Hello", ", wor", "ld! \\\"quoted\\\"", "\\n", "caf\\u00e9 ☕"};
const std::string kAnswer = "Hello, world! \"quoted\"\ncafé ☕";

std::string openai_sse_body() {
  std::string body = kRoleChunk;
  for (const auto& piece : kEscapedPieces) body += content_chunk(piece);
  return body + kStopChunk + kUsageChunk + kDone;
}

// The full HTTP response, with the chunked framing OpenAI uses.
std::string openai_wire_response(const std::vector<std::string>& body_pieces) {
  return ScriptedResponse::sse_chunked(body_pieces).bytes();
}

class OpenAiProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server.start()) << server.error();
    messages = json::array({{{"role", "system"}, {"content", "Be brief."}},
                            {{"role", "user"}, {"content", "Say hello"}}});
    request.upstream_model = "gpt-4o-mini";
    request.messages = &messages;
    request.max_tokens = 64;
  }

  ChatProvider& provider(bool with_key = true, long request_timeout_ms = 20000) {
    ProviderConfig config;
    config.kind = "openai";
    config.base_url = server.base_url() + "/v1/";
    config.api_key_env = with_key ? "TEST_OPENAI_KEY" : "";
    config.request_timeout_ms = request_timeout_ms;
    config.headers = {{"OpenAI-Organization", "org-test"}};
    const EnvLookup env = testing::env_of({{"TEST_OPENAI_KEY", std::string(kApiKey)}});
    auto built = ProviderRegistry::build({{"openai", config}}, http, env);
    EXPECT_TRUE(built.has_value());
    registry = std::move(*built);
    return *registry.find("openai");
  }

  RecordingObserver& run(ChatProvider& chat) {
    chat.start_chat(request, observer);
    EXPECT_TRUE(drive_until(http, [&] { return observer.finished(); }));
    drive_for(http, 20ms);  // anything after on_complete would show up here
    return observer;
  }

  const Error& error() const {
    EXPECT_TRUE(observer.outcome.has_value() && !observer.outcome->has_value());
    return observer.outcome->error();
  }

  ScriptedHttpServer server;
  HttpClient http;
  ProviderRegistry registry;
  json messages;
  ChatRequest request;
  RecordingObserver observer;
};

TEST_F(OpenAiProviderTest, StreamsOpenAiWireBytesSplitAtAwkwardPlaces) {
  // Re-split the exact response bytes (chunk framing included) into 7-byte
  // reads: splits fall inside headers, chunk sizes, "data:", JSON and UTF-8.
  const std::string wire = openai_wire_response({openai_sse_body()});
  server.enqueue(ScriptedResponse::raw_in_pieces(wire, 7, 1ms));
  run(provider());

  EXPECT_EQ(observer.completions, 1);
  ASSERT_TRUE(observer.outcome && observer.outcome->has_value())
      << observer.outcome->error().message;
  EXPECT_EQ(observer.text(), kAnswer);
  EXPECT_EQ(observer.deltas.size(), kEscapedPieces.size());  // one delta per chunk, none empty
  const ChatCompletion& done = **observer.outcome;
  EXPECT_EQ(done.finish_reason, "stop");
  EXPECT_TRUE(done.usage_reported);
  EXPECT_EQ(done.usage.input_tokens, 1200);
  EXPECT_EQ(done.usage.output_tokens, 7);
  EXPECT_EQ(done.usage.cached_tokens, 1024);
  EXPECT_EQ(http.active(), 0u);
}

TEST_F(OpenAiProviderTest, OnlyTheFirstChoicesTextIsTheAnswerWhateverTheChunksLayout) {
  // Chunks the common-case reader does not take (index after the delta, a
  // second choice, a choice with index 1 first) go to the full parser; the
  // text read is the same either way.
  const std::string body =
      kRoleChunk + openai_chunk(R"([{"delta":{"content":"A"},"index":0}])") +
      openai_chunk(R"([{"index":0,"delta":{"content":"B"}},{"index":1,"delta":{"content":"x"}}])") +
      openai_chunk(R"([{"index":1,"delta":{"content":"y"}},{"index":0,"delta":{"content":"C"}}])") +
      openai_chunk(R"([{"index":0,"delta":{"content":"\u00e9\ud83d\ude00"},"finish_reason":null}])") +
      openai_chunk(R"([{"index":0,"delta":{"content":null},"finish_reason":"length"}])") + kDone;
  server.enqueue(ScriptedResponse::sse_chunked({body}));
  auto& observed = run(provider());
  EXPECT_EQ(observed.deltas, (std::vector<std::string>{"A", "B", "C", "\u00e9\U0001F600"}));
  ASSERT_TRUE(observed.outcome && observed.outcome->has_value());
  EXPECT_EQ((*observed.outcome)->finish_reason, "length");
}

TEST_F(OpenAiProviderTest, SendsAStreamingChatCompletionsRequest) {
  server.enqueue(ScriptedResponse::sse_chunked({openai_sse_body()}));
  request.temperature = 0.25;
  run(provider());
  ASSERT_TRUE(observer.outcome && observer.outcome->has_value());

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  const RecordedRequest& sent = requests[0];
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.target, "/v1/chat/completions");
  EXPECT_EQ(sent.header("Content-Type"), "application/json");
  EXPECT_EQ(sent.header("Authorization"), "Bearer " + std::string(kApiKey));
  EXPECT_EQ(sent.header("OpenAI-Organization"), "org-test");

  const json body = json::parse(sent.body);
  EXPECT_EQ(body["model"], "gpt-4o-mini");
  EXPECT_EQ(body["messages"], messages);
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["stream_options"]["include_usage"], true);
  EXPECT_EQ(body["max_tokens"], 64);
  EXPECT_DOUBLE_EQ(body["temperature"].get<double>(), 0.25);
}

TEST_F(OpenAiProviderTest, OmitsTemperatureWhenUnsetAndAuthorizationWithoutKey) {
  server.enqueue(ScriptedResponse::sse_chunked({openai_sse_body()}));
  run(provider(/*with_key=*/false));
  ASSERT_TRUE(observer.outcome && observer.outcome->has_value());
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_FALSE(requests[0].header("Authorization").has_value());
  EXPECT_FALSE(json::parse(requests[0].body).contains("temperature"));
}

TEST_F(OpenAiProviderTest, PassesResponseFormatThroughAndOmitsItWhenUnset) {
  const json format = {{"type", "json_schema"}, {"json_schema", {{"name", "city"}, {"schema", {{"type", "object"}}}}}};
  server.enqueue(ScriptedResponse::sse_chunked({openai_sse_body()}));
  server.enqueue(ScriptedResponse::sse_chunked({openai_sse_body()}));
  request.response_format = &format;
  run(provider());
  const json none = nullptr;
  request.response_format = &none;
  observer = RecordingObserver{};
  run(provider());
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(json::parse(requests[0].body)["response_format"], format);
  EXPECT_FALSE(json::parse(requests[1].body).contains("response_format"));
}

TEST_F(OpenAiProviderTest, DeltasArriveWhileTheStreamIsStillOpen) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  ScriptedResponse response = ScriptedResponse::sse_chunked(
      {kRoleChunk + content_chunk("first"), content_chunk(" second") + kStopChunk + kUsageChunk + kDone});
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

TEST_F(OpenAiProviderTest, UsageNextToFinishReasonIsParsed) {
  const std::string stop_with_usage = openai_chunk(
      R"([{"index":0,"delta":{},"finish_reason":"length"}])",
      R"({"prompt_tokens":10,"completion_tokens":64,"total_tokens":74})");
  server.enqueue(ScriptedResponse::sse_chunked({kRoleChunk + content_chunk("x") + stop_with_usage + kDone}));
  run(provider());
  ASSERT_TRUE(observer.outcome && observer.outcome->has_value());
  EXPECT_EQ((*observer.outcome)->finish_reason, "length");
  EXPECT_TRUE((*observer.outcome)->usage_reported);
  EXPECT_EQ((*observer.outcome)->usage.input_tokens, 10);
  EXPECT_EQ((*observer.outcome)->usage.output_tokens, 64);
  EXPECT_EQ((*observer.outcome)->usage.cached_tokens, 0);
}

TEST_F(OpenAiProviderTest, MissingUsageIsReportedAsMissing) {
  const std::string null_content = openai_chunk(R"([{"index":0,"delta":{"content":null}}])");
  server.enqueue(ScriptedResponse::sse_chunked({kRoleChunk + null_content + content_chunk("x") + kStopChunk + kDone}));
  run(provider());
  ASSERT_TRUE(observer.outcome && observer.outcome->has_value());
  EXPECT_FALSE((*observer.outcome)->usage_reported);
  EXPECT_EQ(observer.deltas, std::vector<std::string>{"x"});
}

TEST_F(OpenAiProviderTest, RateLimitStatusIsAProviderErrorQuotingOpenAiMessage) {
  server.enqueue(ScriptedResponse::http(
      429, "application/json",
      R"({"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-test on requests per min (RPM): Limit 3, Used 3, Requested 1.","type":"requests","param":null,"code":"rate_limit_exceeded"}})"));
  run(provider());
  EXPECT_EQ(observer.completions, 1);
  EXPECT_TRUE(observer.deltas.empty());
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_TRUE(error().message.starts_with("HTTP 429: Rate limit reached for gpt-4o-mini"))
      << error().message;
}

TEST_F(OpenAiProviderTest, GatewayTimeoutStatusIsATimeout) {
  server.enqueue(ScriptedResponse::http(504, "text/html", "<html><body>504 Gateway Time-out</body></html>"));
  run(provider());
  EXPECT_EQ(error().code, ErrorCode::timeout);
  EXPECT_NE(error().message.find("HTTP 504"), std::string::npos) << error().message;
}

TEST_F(OpenAiProviderTest, ErrorMessagesNeverContainTheApiKey) {
  server.enqueue(ScriptedResponse::http(
      401, "application/json",
      std::string(R"({"error":{"message":"Incorrect API key provided: )") + std::string(kApiKey) +
          R"(.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}})"));
  run(provider());
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_NE(error().message.find("HTTP 401"), std::string::npos);
  EXPECT_EQ(error().message.find(kApiKey), std::string::npos) << error().message;
}

TEST_F(OpenAiProviderTest, ChunkedStreamCutBeforeDoneIsAnError) {
  server.enqueue(ScriptedResponse::sse_chunked({kRoleChunk, content_chunk("partial")}, 0ms,
                                               /*terminate=*/false));
  run(provider());
  EXPECT_EQ(observer.completions, 1);
  EXPECT_EQ(observer.text(), "partial");
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_NE(error().message.find("[DONE]"), std::string::npos) << error().message;
}

TEST_F(OpenAiProviderTest, CleanCloseBeforeDoneIsAnError) {
  // No length, no chunking: the close is a well-formed end, so curl reports
  // success; the missing [DONE] must still fail the answer.
  const std::string wire =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" +
      kRoleChunk + content_chunk("partial") + kStopChunk;
  server.enqueue(ScriptedResponse::raw_in_pieces(wire, 64, 0ms, ConnectionEnd::close));
  run(provider());
  EXPECT_EQ(observer.text(), "partial");
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_EQ(error().message, "stream ended before [DONE]");
}

TEST_F(OpenAiProviderTest, ConnectionResetMidStreamIsAnError) {
  ScriptedResponse response = ScriptedResponse::sse_chunked({kRoleChunk, content_chunk("partial")}, 0ms,
                                                            /*terminate=*/false);
  response.end = ConnectionEnd::reset;
  server.enqueue(response);
  run(provider());
  EXPECT_EQ(observer.completions, 1);
  EXPECT_EQ(error().code, ErrorCode::provider_error);
}

TEST_F(OpenAiProviderTest, MalformedChunkIsAnErrorAndEndsTheTransfer) {
  server.enqueue(ScriptedResponse::sse_chunked(
      {kRoleChunk + content_chunk("ok") + "data: {\"choices\":[{\"delta\":{\"content\":\"trunc\n\n" +
       content_chunk("never") + kDone}));
  run(provider());
  EXPECT_EQ(observer.completions, 1);
  EXPECT_EQ(observer.text(), "ok");
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_EQ(error().message, "malformed stream chunk");
  EXPECT_EQ(http.active(), 0u);
}

TEST_F(OpenAiProviderTest, ErrorObjectMidStreamIsAProviderError) {
  server.enqueue(ScriptedResponse::sse_chunked(
      {kRoleChunk + content_chunk("ok") +
       R"(data: {"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}})" +
       "\n\n" + kDone}));
  run(provider());
  EXPECT_EQ(observer.completions, 1);
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_NE(error().message.find("The server had an error"), std::string::npos) << error().message;
}

TEST_F(OpenAiProviderTest, ConnectionRefusedIsUnavailable) {
  server.stop();
  run(provider());
  EXPECT_EQ(observer.completions, 1);
  EXPECT_EQ(error().code, ErrorCode::unavailable);
}

TEST_F(OpenAiProviderTest, SlowUpstreamHitsTheRequestTimeout) {
  std::vector<std::string> trickle(100, content_chunk("."));
  server.enqueue(ScriptedResponse::sse_chunked(trickle, 100ms));
  run(provider(true, /*request_timeout_ms=*/300));
  EXPECT_EQ(observer.completions, 1);
  EXPECT_EQ(error().code, ErrorCode::timeout);
}

TEST_F(OpenAiProviderTest, ConnectionIsReusedAfterDone) {
  server.set_responder([](const RecordedRequest&) {
    return ScriptedResponse::sse_chunked({openai_sse_body()});
  });
  ChatProvider& chat = provider();
  for (int i = 0; i < 3; ++i) {
    RecordingObserver each;
    chat.start_chat(request, each);
    ASSERT_TRUE(drive_until(http, [&] { return each.finished(); }));
    ASSERT_TRUE(each.outcome->has_value());
    EXPECT_EQ(each.text(), kAnswer);
    // The answer completes at [DONE]; the connection returns to the pool once
    // the rest of the response (the last chunk) has been read, not aborted.
    ASSERT_TRUE(drive_until(http, [&] { return http.active() == 0; }));
  }
  EXPECT_EQ(server.connections_accepted(), 1u);
}

TEST_F(OpenAiProviderTest, CancelStopsObserverCallbacks) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  ScriptedResponse response = ScriptedResponse::sse_chunked(
      {kRoleChunk + content_chunk("first"), content_chunk("second") + kStopChunk + kDone});
  response.pieces[2].before_send = [released] { released.wait(); };
  server.enqueue(response);

  ChatProvider& chat = provider();
  const auto id = chat.start_chat(request, observer);
  ASSERT_TRUE(drive_until(http, [&] { return !observer.deltas.empty(); }));
  http.cancel(id);
  release.set_value();
  drive_for(http, 200ms);
  EXPECT_EQ(observer.deltas, std::vector<std::string>{"first"});
  EXPECT_EQ(observer.completions, 0);
  EXPECT_EQ(http.active(), 0u);
}

TEST_F(OpenAiProviderTest, CancelFromInsideOnDeltaStopsTheRestOfTheSameRead) {
  // Every event arrives in one read, so the cancel happens mid-batch.
  server.enqueue(ScriptedResponse::sse_chunked({openai_sse_body()}));
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

TEST_F(OpenAiProviderTest, ManyConcurrentStreamsOnOneClientAllComplete) {
  constexpr int kStreams = 200;
  server.set_responder([](const RecordedRequest& sent) {
    const json body = json::parse(sent.body);
    const std::string who = body["messages"][0]["content"];
    return ScriptedResponse::sse_chunked(
        {kRoleChunk + content_chunk("answer "), content_chunk(who) + kStopChunk, kUsageChunk + kDone},
        5ms);
  });
  ChatProvider& chat = provider();
  std::vector<json> prompts(kStreams);
  std::vector<RecordingObserver> observers(kStreams);
  for (int i = 0; i < kStreams; ++i) {
    prompts[i] = json::array({{{"role", "user"}, {"content", "n" + std::to_string(i)}}});
    ChatRequest each = request;
    each.messages = &prompts[i];
    chat.start_chat(each, observers[i]);
  }
  EXPECT_EQ(http.active(), static_cast<std::size_t>(kStreams));
  ASSERT_TRUE(drive_until(
      http,
      [&] {
        return std::all_of(observers.begin(), observers.end(),
                           [](const RecordingObserver& o) { return o.finished(); });
      },
      120s));
  for (int i = 0; i < kStreams; ++i) {
    ASSERT_EQ(observers[i].completions, 1);
    ASSERT_TRUE(observers[i].outcome->has_value()) << observers[i].outcome->error().message;
    EXPECT_EQ(observers[i].text(), "answer n" + std::to_string(i));
    EXPECT_EQ((*observers[i].outcome)->usage.cached_tokens, 1024);
  }
  // Answers complete at [DONE]; the transfers end once the last chunk is read.
  EXPECT_TRUE(drive_until(http, [&] { return http.active() == 0; }));
}

// ---- reasoning tokens ---------------------------------------------------------

TEST_F(OpenAiProviderTest, ReasoningTokensAreReadFromCompletionTokensDetails) {
  // An o-series answer: most of the billed output is hidden reasoning.
  const std::string reasoning_usage = openai_chunk(
      "[]",
      R"({"prompt_tokens":75,"completion_tokens":1186,"total_tokens":1261,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":1024,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}})");
  server.enqueue(ScriptedResponse::sse_chunked({kRoleChunk + content_chunk("x") + kStopChunk + reasoning_usage + kDone}));
  run(provider());
  ASSERT_TRUE(observer.outcome && observer.outcome->has_value());
  const TokenUsage& usage = (*observer.outcome)->usage;
  EXPECT_EQ(usage.input_tokens, 75);
  EXPECT_EQ(usage.output_tokens, 1186);  // reasoning stays inside output: billed once
  EXPECT_EQ(usage.reasoning_tokens, 1024);
  EXPECT_EQ(usage.cached_tokens, 0);
}

TEST_F(OpenAiProviderTest, UsageWithoutCompletionDetailsHasNoReasoningTokens) {
  const std::string plain_usage = openai_chunk(
      "[]", R"({"prompt_tokens":10,"completion_tokens":3,"total_tokens":13,"completion_tokens_details":null})");
  server.enqueue(ScriptedResponse::sse_chunked({kRoleChunk + content_chunk("x") + kStopChunk + plain_usage + kDone}));
  run(provider());
  ASSERT_TRUE(observer.outcome && observer.outcome->has_value());
  EXPECT_EQ((*observer.outcome)->usage.output_tokens, 3);
  EXPECT_EQ((*observer.outcome)->usage.reasoning_tokens, 0);
}

// ---- tool calls ---------------------------------------------------------------

std::string tool_call_chunk(std::string_view tool_calls_json) {
  return openai_chunk(std::string(R"([{"index":0,"delta":{"tool_calls":)") +
                      std::string(tool_calls_json) +
                      R"(},"logprobs":null,"finish_reason":null}])");
}

// Two parallel calls as api.openai.com streams them: the first fragment of each
// call carries index, id, type, the whole name and empty arguments; the
// arguments then arrive in pieces cut anywhere, escapes included.
std::string parallel_tool_calls_sse_body() {
  std::string body = openai_chunk(
      R"([{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_Wx8kQ2vLmN3pR7sT","type":"function","function":{"name":"get_weather","arguments":""}}],"refusal":null},"logprobs":null,"finish_reason":null}])");
  for (const char* piece : {R"({\"lo)", R"(cation\":)", R"( \"São)", R"( Paulo, \\\"BR\\\"\")", R"(, \"unit\": \"cel)", R"(sius\"})"}) {
    body += tool_call_chunk(std::string(R"([{"index":0,"function":{"arguments":")") + piece + R"("}}])");
  }
  body += tool_call_chunk(
      R"([{"index":1,"id":"call_Zp4mHq9XyB1cD2eF","type":"function","function":{"name":"get_time","arguments":""}}])");
  for (const char* piece : {R"({\"time)", R"(zone\": \"America/Sao_Paulo\"})"}) {
    body += tool_call_chunk(std::string(R"([{"index":1,"function":{"arguments":")") + piece + R"("}}])");
  }
  body += openai_chunk(R"([{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}])");
  body += openai_chunk(
      "[]",
      R"({"prompt_tokens":88,"completion_tokens":52,"total_tokens":140,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}})");
  return body + kDone;
}

// choices[0].message.tool_calls of the same answer requested with stream=false.
const std::string kNonStreamedToolCalls =
    R"([{"id":"call_Wx8kQ2vLmN3pR7sT","type":"function","function":{"name":"get_weather","arguments":"{\"location\": \"São Paulo, \\\"BR\\\"\", \"unit\": \"celsius\"}"}},)"
    R"({"id":"call_Zp4mHq9XyB1cD2eF","type":"function","function":{"name":"get_time","arguments":"{\"timezone\": \"America/Sao_Paulo\"}"}}])";

TEST_F(OpenAiProviderTest, StreamedToolCallsAssembleToTheNonStreamedArray) {
  const std::string wire = openai_wire_response({parallel_tool_calls_sse_body()});
  server.enqueue(ScriptedResponse::raw_in_pieces(wire, 7, 1ms));
  run(provider());

  ASSERT_TRUE(observer.outcome && observer.outcome->has_value())
      << observer.outcome->error().message;
  EXPECT_TRUE(observer.deltas.empty());  // content was null throughout
  const ChatCompletion& done = **observer.outcome;
  EXPECT_EQ(done.finish_reason, "tool_calls");
  const json expected = json::parse(kNonStreamedToolCalls);
  EXPECT_EQ(done.tool_calls, expected) << done.tool_calls.dump();
  EXPECT_EQ(done.tool_calls.dump(), expected.dump());
  ASSERT_EQ(done.tool_calls.size(), 2u);
  // The arguments are passed through as the exact string, not re-encoded JSON.
  EXPECT_EQ(done.tool_calls[0]["function"]["arguments"].get<std::string>(),
            "{\"location\": \"São Paulo, \\\"BR\\\"\", \"unit\": \"celsius\"}");
  EXPECT_TRUE(done.usage_reported);
  EXPECT_EQ(done.usage.output_tokens, 52);
}

TEST_F(OpenAiProviderTest, TextAndToolCallsInOneAnswerAreBothKept) {
  const std::string call = tool_call_chunk(
      R"([{"index":0,"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"q\":"}}])");
  const std::string rest = tool_call_chunk(R"([{"index":0,"function":{"arguments":"\"x\"}"}}])");
  const std::string finish =
      openai_chunk(R"([{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}])");
  server.enqueue(ScriptedResponse::sse_chunked(
      {kRoleChunk + content_chunk("Let me check."), call, rest + finish + kUsageChunk + kDone}));
  run(provider());
  ASSERT_TRUE(observer.outcome && observer.outcome->has_value());
  EXPECT_EQ(observer.text(), "Let me check.");
  EXPECT_EQ((*observer.outcome)->tool_calls,
            json::parse(R"([{"id":"call_1","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"x\"}"}}])"));
}

TEST_F(OpenAiProviderTest, AnswerWithoutToolCallsHasAnEmptyToolCallsArray) {
  server.enqueue(ScriptedResponse::sse_chunked({openai_sse_body()}));
  run(provider());
  ASSERT_TRUE(observer.outcome && observer.outcome->has_value());
  EXPECT_EQ((*observer.outcome)->tool_calls, json::array());
  EXPECT_EQ((*observer.outcome)->finish_reason, "stop");
}

TEST_F(OpenAiProviderTest, ForcedToolChoiceKeepsTheFinishReasonOpenAiSent) {
  // With tool_choice naming a function OpenAI ends with "stop", not "tool_calls".
  const std::string call = tool_call_chunk(
      R"([{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}])");
  server.enqueue(ScriptedResponse::sse_chunked({kRoleChunk + call + kStopChunk + kDone}));
  run(provider());
  ASSERT_TRUE(observer.outcome && observer.outcome->has_value());
  EXPECT_EQ((*observer.outcome)->finish_reason, "stop");
  EXPECT_EQ((*observer.outcome)->tool_calls.size(), 1u);
}

TEST_F(OpenAiProviderTest, ToolCallsWithoutAFinishReasonReportToolCalls) {
  const std::string call = tool_call_chunk(
      R"([{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}])");
  server.enqueue(ScriptedResponse::sse_chunked({kRoleChunk + call + kDone}));
  run(provider());
  ASSERT_TRUE(observer.outcome && observer.outcome->has_value());
  EXPECT_EQ((*observer.outcome)->finish_reason, "tool_calls");
}

TEST_F(OpenAiProviderTest, CompatibleServersOmittingIndexOrRepeatingIdsStillAssemble) {
  // Whole calls without an index, one per chunk, then a call whose fragments
  // all repeat its id and type: ids and types must not be doubled.
  const std::string first = tool_call_chunk(
      R"([{"id":"call_a","type":"function","function":{"name":"f","arguments":"{\"n\":1}"}}])");
  const std::string second = tool_call_chunk(
      R"([{"id":"call_b","type":"function","function":{"name":"g","arguments":"{\"n\":"}}])");
  const std::string second_rest = tool_call_chunk(
      R"([{"id":"call_b","type":"function","function":{"arguments":"2}"}}])");
  const std::string finish =
      openai_chunk(R"([{"index":0,"delta":{},"finish_reason":"tool_calls"}])");
  server.enqueue(ScriptedResponse::sse_chunked({kRoleChunk + first + second + second_rest + finish + kDone}));
  run(provider());
  ASSERT_TRUE(observer.outcome && observer.outcome->has_value());
  EXPECT_EQ((*observer.outcome)->tool_calls,
            json::parse(R"([{"id":"call_a","type":"function","function":{"name":"f","arguments":"{\"n\":1}"}},)"
                        R"({"id":"call_b","type":"function","function":{"name":"g","arguments":"{\"n\":2}"}}])"));
}

TEST_F(OpenAiProviderTest, ToolCallsAreOrderedByIndexNotByArrival) {
  const std::string second_first = tool_call_chunk(
      R"([{"index":1,"id":"call_b","type":"function","function":{"name":"g","arguments":"{}"}}])");
  const std::string first_later = tool_call_chunk(
      R"([{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":"{}"}}])");
  server.enqueue(ScriptedResponse::sse_chunked({kRoleChunk + second_first + first_later + kDone}));
  run(provider());
  ASSERT_TRUE(observer.outcome && observer.outcome->has_value());
  ASSERT_EQ((*observer.outcome)->tool_calls.size(), 2u);
  EXPECT_EQ((*observer.outcome)->tool_calls[0]["id"], "call_a");
  EXPECT_EQ((*observer.outcome)->tool_calls[1]["id"], "call_b");
}

// ---- Azure OpenAI ---------------------------------------------------------------

class AzureOpenAiProviderTest : public OpenAiProviderTest {
 protected:
  ChatProvider& azure(const std::string& base_url,
                      std::map<std::string, std::string> headers = {}) {
    ProviderConfig config;
    config.kind = "azure";
    config.base_url = base_url;
    config.api_key_env = "TEST_AZURE_KEY";
    config.request_timeout_ms = 20000;
    config.headers = std::move(headers);
    const EnvLookup env = testing::env_of({{"TEST_AZURE_KEY", std::string(kApiKey)}});
    auto built = ProviderRegistry::build({{"azure", config}}, http, env);
    EXPECT_TRUE(built.has_value()) << built.error().message;
    registry = std::move(*built);
    return *registry.find("azure");
  }

  RecordedRequest only_request() const {
    const auto requests = server.requests();
    EXPECT_EQ(requests.size(), 1u);
    return requests.empty() ? RecordedRequest{} : requests[0];
  }
};

// Azure's stream opens with a prompt-filter chunk whose choices are empty and
// carries content-filter results next to each delta.
std::string azure_sse_body() {
  std::string body =
      R"(data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}}]})"
      "\n\n";
  body += R"(data: {"choices":[{"content_filter_results":{},"delta":{"content":"","refusal":null,"role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],"created":1727000000,"id":"chatcmpl-Az1","model":"gpt-4o-mini-2024-07-18","object":"chat.completion.chunk","system_fingerprint":"fp_d54531d9eb"})"
          "\n\n";
  body += R"(data: {"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}},"delta":{"content":"Bonjour"},"finish_reason":null,"index":0,"logprobs":null}],"created":1727000000,"id":"chatcmpl-Az1","model":"gpt-4o-mini-2024-07-18","object":"chat.completion.chunk","system_fingerprint":"fp_d54531d9eb"})"
          "\n\n";
  body += R"(data: {"choices":[{"content_filter_results":{},"delta":{},"finish_reason":"stop","index":0,"logprobs":null}],"created":1727000000,"id":"chatcmpl-Az1","model":"gpt-4o-mini-2024-07-18","object":"chat.completion.chunk","system_fingerprint":"fp_d54531d9eb"})"
          "\n\n";
  body += R"(data: {"choices":[],"created":1727000000,"id":"chatcmpl-Az1","model":"gpt-4o-mini-2024-07-18","object":"chat.completion.chunk","system_fingerprint":"fp_d54531d9eb","usage":{"completion_tokens":2,"completion_tokens_details":{"reasoning_tokens":0},"prompt_tokens":21,"prompt_tokens_details":{"cached_tokens":0},"total_tokens":23}})"
          "\n\n";
  return body + kDone;
}

TEST_F(AzureOpenAiProviderTest, PostsToTheDeploymentWithApiKeyAndNoModelInTheBody) {
  server.enqueue(ScriptedResponse::sse_chunked({azure_sse_body()}));
  request.upstream_model = "gpt-4o-mini-prod";
  request.temperature = 0.5;
  run(azure(server.base_url() + "/"));

  ASSERT_TRUE(observer.outcome && observer.outcome->has_value())
      << observer.outcome->error().message;
  EXPECT_EQ(observer.text(), "Bonjour");
  EXPECT_EQ((*observer.outcome)->finish_reason, "stop");
  EXPECT_EQ((*observer.outcome)->usage.input_tokens, 21);
  EXPECT_EQ((*observer.outcome)->usage.output_tokens, 2);

  const RecordedRequest sent = only_request();
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.target, "/openai/deployments/gpt-4o-mini-prod/chat/completions?api-version=2024-10-21");
  EXPECT_EQ(sent.header("api-key"), std::string(kApiKey));
  EXPECT_FALSE(sent.header("Authorization").has_value());
  EXPECT_EQ(sent.header("Content-Type"), "application/json");
  const json body = json::parse(sent.body);
  EXPECT_FALSE(body.contains("model"));
  EXPECT_EQ(body["messages"], messages);
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["stream_options"]["include_usage"], true);
  EXPECT_EQ(body["max_tokens"], 64);
  EXPECT_DOUBLE_EQ(body["temperature"].get<double>(), 0.5);
}

TEST_F(AzureOpenAiProviderTest, ApiVersionInTheBaseUrlIsUsed) {
  server.enqueue(ScriptedResponse::sse_chunked({azure_sse_body()}));
  request.upstream_model = "o3-mini";
  run(azure(server.base_url() + "/?api-version=2025-01-01-preview"));
  ASSERT_TRUE(observer.outcome && observer.outcome->has_value());
  EXPECT_EQ(only_request().target,
            "/openai/deployments/o3-mini/chat/completions?api-version=2025-01-01-preview");
}

TEST_F(AzureOpenAiProviderTest, OtherQueryParametersGetTheDefaultApiVersionAdded) {
  server.enqueue(ScriptedResponse::sse_chunked({azure_sse_body()}));
  request.upstream_model = "gpt-4o";
  run(azure(server.base_url() + "?tenant=blue"));
  ASSERT_TRUE(observer.outcome && observer.outcome->has_value());
  EXPECT_EQ(only_request().target,
            "/openai/deployments/gpt-4o/chat/completions?tenant=blue&api-version=2024-10-21");
}

TEST_F(AzureOpenAiProviderTest, DeploymentNameIsEscapedAsOnePathSegment) {
  server.enqueue(ScriptedResponse::sse_chunked({azure_sse_body()}));
  request.upstream_model = "team a/gpt?x";
  run(azure(server.base_url()));
  ASSERT_TRUE(observer.outcome && observer.outcome->has_value());
  EXPECT_EQ(only_request().target,
            "/openai/deployments/team%20a%2Fgpt%3Fx/chat/completions?api-version=2024-10-21");
}

TEST_F(AzureOpenAiProviderTest, ConfiguredEntraTokenReplacesTheApiKey) {
  server.enqueue(ScriptedResponse::sse_chunked({azure_sse_body()}));
  run(azure(server.base_url(), {{"Authorization", "Bearer entra-token"}}));
  ASSERT_TRUE(observer.outcome && observer.outcome->has_value());
  const RecordedRequest sent = only_request();
  EXPECT_EQ(sent.header("Authorization"), "Bearer entra-token");
  EXPECT_FALSE(sent.header("api-key").has_value());
}

TEST_F(AzureOpenAiProviderTest, ErrorsQuoteAzureWithoutLeakingTheKey) {
  server.enqueue(ScriptedResponse::http(
      404, "application/json",
      std::string(R"({"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist (key )") +
          std::string(kApiKey) + R"()."}})"));
  run(azure(server.base_url()));
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_EQ(error().http_status, 404);
  EXPECT_NE(error().message.find("The API deployment for this resource does not exist"),
            std::string::npos)
      << error().message;
  EXPECT_EQ(error().message.find(kApiKey), std::string::npos) << error().message;
}

TEST(ProviderRegistryKinds, AzureIsAKnownKindAndListedInTheUnknownKindError) {
  HttpClient http;
  ProviderConfig azure;
  azure.kind = "azure";
  azure.base_url = "https://example-resource.openai.azure.com";
  auto built = ProviderRegistry::build({{"azure", azure}}, http, testing::no_env());
  ASSERT_TRUE(built.has_value()) << built.error().message;
  EXPECT_TRUE(built->available("azure"));

  ProviderConfig unknown = azure;
  unknown.kind = "carrier-pigeon";
  auto refused = ProviderRegistry::build({{"birds", unknown}}, http, testing::no_env());
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message.find("known: openai, azure, gemini, anthropic"),
            std::string::npos)
      << refused.error().message;
}

}  // namespace
}  // namespace cascade
