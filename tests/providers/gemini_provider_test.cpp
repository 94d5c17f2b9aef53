#include <gtest/gtest.h>

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
using testing::drive_for;
using testing::drive_until;
using testing::RecordingObserver;
using testing::http_chunk;
using testing::RecordedRequest;
using testing::ScriptedHttpServer;
using testing::ScriptedResponse;

constexpr std::string_view kApiKey = "test-gemini-key-0123456789abcdefGHIJ";

// The response head generativelanguage.googleapis.com sends for
// streamGenerateContent?alt=sse: chunked, no Content-Length, no Connection header.
const std::string kGoogleSseHead =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/event-stream\r\n"
    "Content-Disposition: attachment\r\n"
    "Vary: Origin\r\n"
    "Vary: X-Origin\r\n"
    "Vary: Referer\r\n"
    "Transfer-Encoding: chunked\r\n"
    "Date: Tue, 17 Jun 2025 20:31:02 GMT\r\n"
    "Server: scaffolding on HTTPServer2\r\n"
    "X-XSS-Protection: 0\r\n"
    "X-Frame-Options: SAMEORIGIN\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Server-Timing: gfet4t7; dur=412\r\n"
    "Alt-Svc: h3=\":443\"; ma=2592000,h3-29=\":443\"; ma=2592000\r\n"
    "\r\n";

// Google ends every event with CRLF CRLF and sends no [DONE].
std::string gemini_event(std::string_view response_json) {
  return "data: " + std::string(response_json) + "\r\n\r\n";
}

// usageMetadata as Gemini 2.5 reports it: cumulative, on every chunk, with
// thinking tokens counted apart from the candidates.
std::string usage_json(int candidates) {
  return R"({"promptTokenCount": 1200,"candidatesTokenCount": )" + std::to_string(candidates) +
         R"(,"totalTokenCount": )" + std::to_string(1200 + candidates + 186) +
         R"(,"cachedContentTokenCount": 1024,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 1200}],"cacheTokensDetails": [{"modality": "TEXT","tokenCount": 1024}],"thoughtsTokenCount": 186})";
}

// A GenerateContentResponse chunk whose first candidate carries `parts_json`.
std::string parts_chunk(std::string_view parts_json, std::string_view finish_reason = "",
                        std::string_view usage = "") {
  std::string body = R"({"candidates": [{"content": {"parts": )" + std::string(parts_json) +
                     R"(,"role": "model"})";
  if (!finish_reason.empty()) body += R"(,"finishReason": ")" + std::string(finish_reason) + '"';
  body += R"(,"index": 0}])";
  if (!usage.empty()) body += R"(,"usageMetadata": )" + std::string(usage);
  body += R"(,"modelVersion": "gemini-2.5-flash","responseId": "AdVRaMmDCYekqtsPrb_-iAw"})";
  return gemini_event(body);
}

std::string text_chunk(std::string_view escaped_text, std::string_view finish_reason = "",
                       std::string_view usage = "") {
  return parts_chunk(R"([{"text": ")" + std::string(escaped_text) + R"("}])", finish_reason, usage);
}

// Text pieces (JSON-escaped on the wire) and the answer they decode to.
const std::vector<std::string> kEscapedPieces = {"Hello", ", wor", "ld! \\\"quoted\\\"", "\\n",
                                                 "caf\\u00e9 ☕"};
const std::string kAnswer = "Hello, world! \"quoted\"\ncafé ☕";

std::vector<std::string> answer_events() {
  std::vector<std::string> events;
  for (std::size_t i = 0; i < kEscapedPieces.size(); ++i) {
    const bool last = i + 1 == kEscapedPieces.size();
    events.push_back(text_chunk(kEscapedPieces[i], last ? "STOP" : "",
                                usage_json(static_cast<int>(2 * i + 1))));
  }
  return events;
}

// The response as Google frames it: the head, one HTTP chunk per event, then
// the last chunk, unless `terminate` is false (a response cut mid-body).
ScriptedResponse gemini_response(const std::vector<std::string>& events, bool terminate = true,
                                 std::chrono::milliseconds delay_between = {}) {
  ScriptedResponse response;
  response.pieces.push_back({kGoogleSseHead});
  for (const auto& event : events) response.pieces.push_back({http_chunk(event), delay_between});
  if (terminate) {
    response.pieces.push_back({"0\r\n\r\n", delay_between});
  } else {
    response.end = testing::ConnectionEnd::close;
  }
  return response;
}

class GeminiProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server.start()) << server.error();
    messages = json::array({{{"role", "system"}, {"content", "Be brief."}},
                            {{"role", "user"}, {"content", "Say hello"}}});
    request.upstream_model = "gemini-2.5-flash";
    request.messages = &messages;
    request.max_tokens = 64;
  }

  ChatProvider& provider(bool with_key = true, long request_timeout_ms = 20000) {
    ProviderConfig config;
    config.kind = "gemini";
    config.base_url = server.base_url() + "/v1beta/";
    config.api_key_env = with_key ? "TEST_GEMINI_KEY" : "";
    config.request_timeout_ms = request_timeout_ms;
    config.headers = {{"X-Goog-User-Project", "cascade-test"}};
    const EnvLookup env = testing::env_of({{"TEST_GEMINI_KEY", std::string(kApiKey)}});
    auto built = ProviderRegistry::build({{"gemini", config}}, http, env);
    EXPECT_TRUE(built.has_value()) << built.error().message;
    registry = std::move(*built);
    return *registry.find("gemini");
  }

  RecordingObserver& run(ChatProvider& chat) {
    chat.start_chat(request, observer);
    EXPECT_TRUE(drive_until(http, [&] { return observer.finished(); }));
    drive_for(http, 20ms);  // anything after on_complete would show up here
    return observer;
  }

  const ChatCompletion& success() const {
    static const ChatCompletion kNone;
    EXPECT_TRUE(observer.outcome.has_value());
    if (!observer.outcome) return kNone;
    EXPECT_TRUE(observer.outcome->has_value()) << observer.outcome->error().message;
    return observer.outcome->has_value() ? **observer.outcome : kNone;
  }

  const Error& error() const {
    static const Error kNone{ErrorCode::internal, "<no error>"};
    EXPECT_TRUE(observer.outcome.has_value() && !observer.outcome->has_value());
    return observer.outcome && !observer.outcome->has_value() ? observer.outcome->error() : kNone;
  }

  ScriptedHttpServer server;
  HttpClient http;
  ProviderRegistry registry;
  json messages;
  ChatRequest request;
  RecordingObserver observer;
};

TEST_F(GeminiProviderTest, StreamsGeminiWireBytesSplitAtAwkwardPlaces) {
  // The exact response bytes re-split into 7-byte reads: splits fall inside
  // headers, chunk sizes, "data:", CRLF pairs, JSON and UTF-8 sequences.
  const std::string wire = gemini_response(answer_events()).bytes();
  server.enqueue(ScriptedResponse::raw_in_pieces(wire, 7, 1ms));
  run(provider());

  EXPECT_EQ(observer.completions, 1);
  const ChatCompletion& done = success();
  EXPECT_EQ(observer.text(), kAnswer);
  EXPECT_EQ(observer.deltas.size(), kEscapedPieces.size());  // one delta per chunk
  EXPECT_EQ(done.finish_reason, "stop");
  EXPECT_TRUE(done.usage_reported);
  // The last chunk's cumulative usage; thinking tokens are billed as output.
  EXPECT_EQ(done.usage.input_tokens, 1200);
  EXPECT_EQ(done.usage.cached_tokens, 1024);
  EXPECT_EQ(done.usage.output_tokens, 9 + 186);
  // ... and reported as the reasoning part of the output, as OpenAI's are.
  EXPECT_EQ(done.usage.reasoning_tokens, 186);
  EXPECT_EQ(http.active(), 0u);
}

TEST_F(GeminiProviderTest, SendsAStreamGenerateContentRequest) {
  messages = json::array({
      {{"role", "system"}, {"content", "Be brief."}},
      {{"role", "user"}, {"content", "Say hello"}},
      {{"role", "assistant"}, {"content", "Hello!"}},
      {{"role", "user"},
       {"content", json::array({{{"type", "text"}, {"text", "Now in French"}},
                                {{"type", "text"}, {"text", "please."}}})}},
      {{"role", "developer"}, {"content", "Answer in one line."}},
      {{"role", "user"}, {"content", "Thanks"}},
  });
  request.temperature = 0.25;
  server.enqueue(gemini_response(answer_events()));
  run(provider());
  success();

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  const RecordedRequest& sent = requests[0];
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.target, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
  EXPECT_EQ(sent.header("x-goog-api-key"), std::string(kApiKey));
  EXPECT_EQ(sent.target.find("key="), std::string::npos);
  EXPECT_EQ(sent.target.find(kApiKey), std::string::npos);
  EXPECT_FALSE(sent.header("Authorization").has_value());
  EXPECT_EQ(sent.header("Content-Type"), "application/json");
  EXPECT_EQ(sent.header("X-Goog-User-Project"), "cascade-test");

  // Roles mapped, consecutive user turns merged (a developer message between
  // them goes to the system instruction and does not split the turn).
  const json expected = json::parse(R"({
    "contents": [
      {"role": "user", "parts": [{"text": "Say hello"}]},
      {"role": "model", "parts": [{"text": "Hello!"}]},
      {"role": "user", "parts": [{"text": "Now in French"}, {"text": "please."}, {"text": "Thanks"}]}
    ],
    "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Answer in one line."}]},
    "generationConfig": {"maxOutputTokens": 64, "temperature": 0.25}
  })");
  EXPECT_EQ(json::parse(sent.body), expected) << sent.body;
}

TEST_F(GeminiProviderTest, OmitsKeyHeaderTemperatureAndSystemInstructionWhenUnset) {
  messages = json::array({{{"role", "user"}, {"content", "Say hello"}}});
  server.enqueue(gemini_response(answer_events()));
  run(provider(/*with_key=*/false));
  success();
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_FALSE(requests[0].header("x-goog-api-key").has_value());
  const json body = json::parse(requests[0].body);
  EXPECT_FALSE(body.contains("systemInstruction"));
  EXPECT_EQ(body["generationConfig"], json::parse(R"({"maxOutputTokens": 64})"));
}

TEST_F(GeminiProviderTest, DeltasArriveWhileTheStreamIsStillOpen) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  ScriptedResponse response =
      gemini_response({text_chunk("first", "", usage_json(1)), text_chunk(" second", "STOP", usage_json(2))});
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
  success();
  EXPECT_EQ(observer.text(), "first second");
}

TEST_F(GeminiProviderTest, ThoughtPartsAreNotDelivered) {
  server.enqueue(gemini_response({
      parts_chunk(R"([{"text": "**Greeting the user**\n\nI should say hello.","thought": true}])", "",
                  usage_json(0)),
      parts_chunk(R"([{"text": "More planning.","thought": true},{"text": "Hi"}])", "", usage_json(1)),
      parts_chunk(R"([{"text": " there","thought": false}])", "STOP", usage_json(2)),
  }));
  run(provider());
  success();
  EXPECT_EQ(observer.deltas, (std::vector<std::string>{"Hi", " there"}));
}

TEST_F(GeminiProviderTest, MissingUsageIsReportedAsMissing) {
  server.enqueue(gemini_response({text_chunk("x", "STOP")}));
  run(provider());
  EXPECT_FALSE(success().usage_reported);
  EXPECT_EQ(observer.text(), "x");
}

TEST_F(GeminiProviderTest, FinishReasonsMapToCascadesVocabulary) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"MAX_TOKENS", "length"},
      {"SAFETY", "content_filter"},
      {"RECITATION", "content_filter"},
      {"BLOCKLIST", "content_filter"},
      {"PROHIBITED_CONTENT", "content_filter"},
      {"SPII", "content_filter"},
      {"OTHER", "other"},
      {"MALFORMED_FUNCTION_CALL", "malformed_function_call"},
  };
  server.set_responder([](const RecordedRequest& sent) {
    const std::string reason = json::parse(sent.body)["contents"][0]["parts"][0]["text"];
    return gemini_response({text_chunk("partial", reason, usage_json(64))});
  });
  ChatProvider& chat = provider();
  for (const auto& [gemini, cascade] : cases) {
    json prompt = json::array({{{"role", "user"}, {"content", gemini}}});
    ChatRequest each = request;
    each.messages = &prompt;
    RecordingObserver each_observer;
    chat.start_chat(each, each_observer);
    ASSERT_TRUE(drive_until(http, [&] { return each_observer.finished(); }));
    ASSERT_TRUE(each_observer.outcome->has_value()) << gemini << ": " << each_observer.outcome->error().message;
    EXPECT_EQ((*each_observer.outcome)->finish_reason, cascade) << gemini;
    EXPECT_EQ(each_observer.text(), "partial") << gemini;
    EXPECT_EQ((*each_observer.outcome)->usage.output_tokens, 64 + 186) << gemini;
  }
}

TEST_F(GeminiProviderTest, BlockedPromptIsAProviderError) {
  server.enqueue(gemini_response({gemini_event(
      R"({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},"usageMetadata": {"promptTokenCount": 12,"totalTokenCount": 12,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 12}]},"modelVersion": "gemini-2.5-flash","responseId": "qdVRaP6XBq2u1MkP3Ln_kAs"})")}));
  run(provider());
  EXPECT_EQ(observer.completions, 1);
  EXPECT_TRUE(observer.deltas.empty());
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_EQ(error().message, "prompt blocked by Gemini: PROHIBITED_CONTENT");
  EXPECT_TRUE(drive_until(http, [&] { return http.active() == 0; }));
}

TEST_F(GeminiProviderTest, CleanEndWithoutFinishReasonIsAnError) {
  // A complete HTTP response whose last chunk never said it was the last.
  server.enqueue(gemini_response({text_chunk("partial", "", usage_json(1))}));
  run(provider());
  EXPECT_EQ(observer.text(), "partial");
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_EQ(error().message, "stream ended before finishReason");
}

TEST_F(GeminiProviderTest, StreamCutBeforeFinishReasonIsAnError) {
  server.enqueue(gemini_response({text_chunk("partial", "", usage_json(1))}, /*terminate=*/false));
  run(provider());
  EXPECT_EQ(observer.completions, 1);
  EXPECT_EQ(observer.text(), "partial");
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_TRUE(error().message.starts_with("stream ended before finishReason")) << error().message;
}

TEST_F(GeminiProviderTest, StreamCutAfterFinishReasonIsStillAnError) {
  // Only a cleanly ended response is complete: the cut may have eaten a
  // later chunk (with the final usage) that the answer would be billed by.
  server.enqueue(gemini_response({text_chunk("all", "STOP", usage_json(1))}, /*terminate=*/false));
  run(provider());
  EXPECT_EQ(observer.text(), "all");
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_TRUE(error().message.starts_with("stream cut after finishReason")) << error().message;
}

TEST_F(GeminiProviderTest, ErrorObjectMidStreamIsAProviderErrorAndEndsTheTransfer) {
  server.enqueue(gemini_response({
      text_chunk("ok", "", usage_json(1)),
      gemini_event(
          R"({"error": {"code": 500,"message": "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting","status": "INTERNAL"}})"),
      text_chunk("never", "STOP", usage_json(2)),
  }));
  run(provider());
  EXPECT_EQ(observer.completions, 1);
  EXPECT_EQ(observer.text(), "ok");
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_TRUE(error().message.starts_with("upstream error: An internal error has occurred."))
      << error().message;
  EXPECT_EQ(http.active(), 0u);
}

TEST_F(GeminiProviderTest, MalformedChunkIsAnErrorAndEndsTheTransfer) {
  server.enqueue(gemini_response({text_chunk("ok", "", usage_json(1)) +
                                  "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"trunc\r\n\r\n" +
                                  text_chunk("never", "STOP", usage_json(2))}));
  run(provider());
  EXPECT_EQ(observer.completions, 1);
  EXPECT_EQ(observer.text(), "ok");
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_EQ(error().message, "malformed stream chunk");
  EXPECT_EQ(http.active(), 0u);
}

TEST_F(GeminiProviderTest, QuotaExhaustedStatusQuotesGooglesMessageAndRetryDelay) {
  server.enqueue(ScriptedResponse::http(429, "application/json; charset=UTF-8", R"({
  "error": {
    "code": 429,
    "message": "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
          {
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
            "quotaValue": "10"
          }
        ]
      },
      {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": "22s"
      }
    ]
  }
}
)"));
  run(provider());
  EXPECT_EQ(observer.completions, 1);
  EXPECT_TRUE(observer.deltas.empty());
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_EQ(error().message,
            "HTTP 429: You exceeded your current quota, please check your plan and billing details. "
            "For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.");
  EXPECT_EQ(error().http_status, 429);
  EXPECT_EQ(error().retry_after_ms, 22000);
}

TEST_F(GeminiProviderTest, TimeoutStatusesAreTimeouts) {
  ChatProvider& chat = provider();
  for (const int status : {408, 504}) {
    server.enqueue(ScriptedResponse::http(status, "text/html; charset=UTF-8",
                                          "<html><body>Gateway Timeout</body></html>"));
    RecordingObserver each;
    chat.start_chat(request, each);
    ASSERT_TRUE(drive_until(http, [&] { return each.finished(); }));
    ASSERT_FALSE(each.outcome->has_value()) << status;
    EXPECT_EQ(each.outcome->error().code, ErrorCode::timeout) << status;
    EXPECT_TRUE(each.outcome->error().message.starts_with("HTTP " + std::to_string(status)))
        << each.outcome->error().message;
  }
}

TEST_F(GeminiProviderTest, ErrorMessagesNeverContainTheApiKey) {
  server.enqueue(ScriptedResponse::http(
      400, "application/json; charset=UTF-8",
      std::string(R"({"error": {"code": 400,"message": "API key not valid: )") + std::string(kApiKey) +
          R"(","status": "INVALID_ARGUMENT"}})"));
  run(provider());
  EXPECT_EQ(error().code, ErrorCode::provider_error);
  EXPECT_TRUE(error().message.starts_with("HTTP 400: API key not valid: ")) << error().message;
  EXPECT_EQ(error().message.find(kApiKey), std::string::npos) << error().message;
}

TEST_F(GeminiProviderTest, ToolTurnsAndNonTextPartsAreRejectedBeforeAnythingIsSent) {
  const std::vector<std::pair<json, std::string>> cases = {
      {json::array({{{"role", "user"}, {"content", "weather?"}},
                    {{"role", "assistant"},
                     {"content", nullptr},
                     {"tool_calls", json::array({{{"id", "call_1"},
                                                  {"type", "function"},
                                                  {"function", {{"name", "weather"}, {"arguments", "{}"}}}}})}},
                    {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "sunny"}}}),
       "messages[1]: tool calling is not supported by the gemini provider"},
      {json::array({{{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "sunny"}}}),
       "messages[0]: role 'tool' is not supported by the gemini provider"},
      {json::array({{{"role", "user"},
                     {"content", json::array({{{"type", "text"}, {"text", "What is this?"}},
                                              {{"type", "image_url"},
                                               {"image_url", {{"url", "https://example.com/a.png"}}}}})}}}),
       "messages[0]: content part of type 'image_url' is not supported by the gemini provider"},
      {json::array({{{"role", "system"}, {"content", "Be brief."}}}),
       "no user or assistant message with text to send"},
  };
  ChatProvider& chat = provider();
  for (const auto& [prompt, expected] : cases) {
    ChatRequest each = request;
    each.messages = &prompt;
    RecordingObserver rejected;
    EXPECT_EQ(chat.start_chat(each, rejected), 0u);
    ASSERT_EQ(rejected.completions, 1) << expected;
    ASSERT_FALSE(rejected.outcome->has_value());
    EXPECT_EQ(rejected.outcome->error().code, ErrorCode::invalid_request);
    EXPECT_EQ(rejected.outcome->error().message, expected);
  }
  drive_for(http, 20ms);
  EXPECT_TRUE(server.requests().empty());
  EXPECT_EQ(http.active(), 0u);
}

TEST_F(GeminiProviderTest, ConnectionRefusedIsUnavailable) {
  server.stop();
  run(provider());
  EXPECT_EQ(observer.completions, 1);
  EXPECT_EQ(error().code, ErrorCode::unavailable);
}

TEST_F(GeminiProviderTest, ConnectionIsReusedAfterACompleteAnswer) {
  server.set_responder([](const RecordedRequest&) { return gemini_response(answer_events()); });
  ChatProvider& chat = provider();
  for (int i = 0; i < 3; ++i) {
    RecordingObserver each;
    chat.start_chat(request, each);
    ASSERT_TRUE(drive_until(http, [&] { return each.finished(); }));
    ASSERT_TRUE(each.outcome->has_value()) << each.outcome->error().message;
    EXPECT_EQ(each.text(), kAnswer);
    ASSERT_TRUE(drive_until(http, [&] { return http.active() == 0; }));
  }
  EXPECT_EQ(server.connections_accepted(), 1u);
}

TEST_F(GeminiProviderTest, CancelFromInsideOnDeltaStopsTheRestOfTheSameChunk) {
  // Two text parts in one chunk: the cancel lands between them.
  server.enqueue(gemini_response(
      {parts_chunk(R"([{"text": "one"},{"text": "two"}])", "", usage_json(2)), text_chunk("three", "STOP")}));
  ChatProvider& chat = provider();
  std::uint64_t id = 0;
  observer.delta_hook = [&] { http.cancel(id); };
  id = chat.start_chat(request, observer);
  ASSERT_TRUE(drive_until(http, [&] { return !observer.deltas.empty(); }));
  drive_for(http, 100ms);
  EXPECT_EQ(observer.deltas, std::vector<std::string>{"one"});
  EXPECT_EQ(observer.completions, 0);
  EXPECT_EQ(http.active(), 0u);
}

}  // namespace
}  // namespace cascade
