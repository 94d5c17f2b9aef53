#include "simulator/simulated_upstream.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/wait.h"

namespace cascade {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

const bool curl_initialized = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();

// One HTTP exchange on a curl easy handle; the handle can be reused for the
// next request (keep-alive) or driven by a multi handle.
class Exchange {
 public:
  Exchange() : handle_(curl_easy_init()) {}
  ~Exchange() {
    curl_easy_cleanup(handle_);
    curl_slist_free_all(headers_);
  }
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // Sets up (but does not perform) a request; body empty means GET.
  void prepare(const std::string& url, std::string body = {},
               const std::vector<std::string>& extra_headers = {}) {
    response_.clear();
    bytes_received_ = 0;
    body_ = std::move(body);
    curl_slist_free_all(headers_);
    headers_ = nullptr;
    for (const std::string& header : extra_headers)
      headers_ = curl_slist_append(headers_, header.c_str());
    if (!body_.empty()) headers_ = curl_slist_append(headers_, "Content-Type: application/json");
    curl_easy_setopt(handle_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(handle_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(handle_, CURLOPT_WRITEFUNCTION, &Exchange::on_data);
    curl_easy_setopt(handle_, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(handle_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(handle_, CURLOPT_TIMEOUT, 60L);
    if (body_.empty()) {
      curl_easy_setopt(handle_, CURLOPT_HTTPGET, 1L);
    } else {
      curl_easy_setopt(handle_, CURLOPT_POSTFIELDS, body_.c_str());
      curl_easy_setopt(handle_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body_.size()));
    }
  }

  CURLcode perform() { return curl_easy_perform(handle_); }

  long status() const {
    long code = 0;
    curl_easy_getinfo(handle_, CURLINFO_RESPONSE_CODE, &code);
    return code;
  }
  std::string content_type() const {
    char* type = nullptr;
    curl_easy_getinfo(handle_, CURLINFO_CONTENT_TYPE, &type);
    return type ? type : "";
  }
  long new_connections() const {
    long count = -1;
    curl_easy_getinfo(handle_, CURLINFO_NUM_CONNECTS, &count);
    return count;
  }
  const std::string& response() const { return response_; }
  std::size_t bytes_received() const { return bytes_received_.load(); }
  CURL* handle() const { return handle_; }

 private:
  static size_t on_data(char* data, size_t size, size_t count, void* self) {
    auto* exchange = static_cast<Exchange*>(self);
    exchange->response_.append(data, size * count);
    exchange->bytes_received_ += size * count;
    return size * count;
  }

  CURL* handle_;
  curl_slist* headers_ = nullptr;
  std::string body_;
  std::string response_;
  std::atomic<std::size_t> bytes_received_{0};
};

std::string chat_body(const std::string& model, const std::string& question, bool stream,
                      bool include_usage = false, int max_tokens = 0) {
  json body = {{"model", model},
               {"messages", json::array({{{"role", "system"}, {"content", "Be brief."}},
                                         {{"role", "user"}, {"content", question}}})},
               {"temperature", 0.2}};
  if (stream) body["stream"] = true;
  if (include_usage) body["stream_options"] = {{"include_usage", true}};
  if (max_tokens > 0) body["max_tokens"] = max_tokens;
  return body.dump();
}

// The prompt token estimate for chat_body(): ceil(bytes / 4) + 4 per message.
std::int64_t expected_prompt_tokens(const std::string& question) {
  return (9 + 3) / 4 + 4 + static_cast<std::int64_t>((question.size() + 3) / 4) + 4;
}

// Splits an SSE body into the payloads of its `data:` events, failing the test
// on anything that is not one `data: ...` line followed by a blank line.
std::vector<std::string> sse_payloads(const std::string& body) {
  std::vector<std::string> payloads;
  std::size_t position = 0;
  while (position < body.size()) {
    std::size_t end = body.find("\n\n", position);
    if (end == std::string::npos) {
      ADD_FAILURE() << "unterminated SSE event: " << body.substr(position);
      break;
    }
    std::string event = body.substr(position, end - position);
    if (event.rfind("data: ", 0) != 0 || event.find('\n') != std::string::npos) {
      ADD_FAILURE() << "not a single data line: " << event;
    } else {
      payloads.push_back(event.substr(6));
    }
    position = end + 2;
  }
  return payloads;
}

struct ParsedStream {
  std::vector<json> chunks;  // every event before [DONE]
  std::vector<std::string> deltas;
  std::string content;
  std::string finish_reason;
  std::optional<json> usage;
  bool done_last = false;
};

ParsedStream parse_stream(const std::string& body) {
  ParsedStream parsed;
  std::vector<std::string> payloads = sse_payloads(body);
  for (std::size_t i = 0; i < payloads.size(); ++i) {
    if (payloads[i] == "[DONE]") {
      parsed.done_last = i + 1 == payloads.size();
      continue;
    }
    json chunk = json::parse(payloads[i], nullptr, false);
    if (!chunk.is_object()) {
      ADD_FAILURE() << "event is not a JSON object: " << payloads[i];
      continue;
    }
    parsed.chunks.push_back(chunk);
    if (chunk.contains("usage") && !chunk["usage"].is_null()) parsed.usage = chunk["usage"];
    if (chunk["choices"].empty()) continue;
    const json& choice = chunk["choices"][0];
    if (choice["delta"].contains("content") && !choice["delta"].contains("role")) {
      parsed.deltas.push_back(choice["delta"]["content"].get<std::string>());
      parsed.content += parsed.deltas.back();
    }
    if (!choice["finish_reason"].is_null())
      parsed.finish_reason = choice["finish_reason"].get<std::string>();
  }
  return parsed;
}

std::unique_ptr<SimulatedUpstream> started_upstream(SimulatedUpstreamOptions options) {
  auto upstream = std::make_unique<SimulatedUpstream>(options);
  auto started = upstream->start();
  EXPECT_TRUE(started.has_value()) << (started ? "" : started.error().message);
  return upstream;
}

std::string completions_url(const SimulatedUpstream& upstream) {
  return upstream.base_url() + "/chat/completions";
}

// Drives all exchanges concurrently on one multi handle until every one ends;
// returns each exchange's result code.
std::vector<CURLcode> perform_concurrently(const std::vector<Exchange*>& exchanges) {
  CURLM* multi = curl_multi_init();
  for (Exchange* exchange : exchanges) curl_multi_add_handle(multi, exchange->handle());
  std::vector<CURLcode> results(exchanges.size(), CURLE_OK);
  int running = 1;
  while (running > 0) {
    curl_multi_perform(multi, &running);
    if (running > 0) curl_multi_poll(multi, nullptr, 0, 200, nullptr);
  }
  int queued = 0;
  while (CURLMsg* message = curl_multi_info_read(multi, &queued)) {
    if (message->msg != CURLMSG_DONE) continue;
    for (std::size_t i = 0; i < exchanges.size(); ++i) {
      if (exchanges[i]->handle() == message->easy_handle) results[i] = message->data.result;
    }
  }
  for (Exchange* exchange : exchanges) curl_multi_remove_handle(multi, exchange->handle());
  curl_multi_cleanup(multi);
  return results;
}

TEST(SimulatedUpstream, BindsBeforeStartReturnsAndReportsItsBaseUrl) {
  auto upstream = started_upstream({.chunks = 4});
  ASSERT_NE(upstream->port(), 0);
  EXPECT_EQ(upstream->base_url(), "http://127.0.0.1:" + std::to_string(upstream->port()) + "/v1");
}

TEST(SimulatedUpstream, StartFailsWhenThePortIsTaken) {
  auto first = started_upstream({});
  SimulatedUpstream second({.port = first->port()});
  auto started = second.start();
  ASSERT_FALSE(started.has_value());
  EXPECT_EQ(started.error().code, ErrorCode::unavailable);
}

TEST(SimulatedUpstream, StreamsTheAnswerInOpenAiSseFormat) {
  const int chunks = 12;
  auto upstream = started_upstream({.chunks = chunks});
  const std::string question = "What is the capital of France?";
  Exchange exchange;
  exchange.prepare(completions_url(*upstream), chat_body("gpt-4o-mini", question, true));
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(exchange.status(), 200);
  EXPECT_EQ(exchange.content_type(), "text/event-stream");

  ParsedStream stream = parse_stream(exchange.response());
  EXPECT_TRUE(stream.done_last);
  // role chunk + one chunk per piece + finish chunk
  ASSERT_EQ(stream.chunks.size(), static_cast<std::size_t>(chunks + 2));
  const json& first = stream.chunks.front();
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["model"], "gpt-4o-mini");
  EXPECT_EQ(first["system_fingerprint"], "fp_simulated");
  EXPECT_TRUE(first["id"].get<std::string>().starts_with("chatcmpl-"));
  EXPECT_TRUE(first["created"].is_number_integer());
  EXPECT_EQ(first["choices"][0]["delta"],
            json({{"role", "assistant"}, {"content", ""}, {"refusal", nullptr}}));
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  for (const json& chunk : stream.chunks) {
    EXPECT_EQ(chunk["id"], first["id"]);
    EXPECT_EQ(chunk["created"], first["created"]);
    EXPECT_FALSE(chunk.contains("usage")) << chunk.dump();
    ASSERT_EQ(chunk["choices"].size(), 1u);
    EXPECT_EQ(chunk["choices"][0]["index"], 0);
    EXPECT_TRUE(chunk["choices"][0]["logprobs"].is_null());
  }
  EXPECT_EQ(stream.deltas, SimulatedUpstream::answer_pieces("gpt-4o-mini", question, chunks));
  EXPECT_EQ(stream.content, SimulatedUpstream::answer_for("gpt-4o-mini", question, chunks));
  const json& last = stream.chunks.back();
  EXPECT_EQ(last["choices"][0]["delta"], json::object());
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");
  EXPECT_FALSE(stream.usage.has_value());
}

TEST(SimulatedUpstream, IncludeUsageAddsAFinalUsageChunkWithEmptyChoices) {
  const int chunks = 9;
  auto upstream = started_upstream({.chunks = chunks});
  const std::string question = "Hello there";
  Exchange exchange;
  exchange.prepare(completions_url(*upstream),
                   chat_body("m", question, true, /*include_usage=*/true));
  ASSERT_EQ(exchange.perform(), CURLE_OK);

  ParsedStream stream = parse_stream(exchange.response());
  EXPECT_TRUE(stream.done_last);
  ASSERT_EQ(stream.chunks.size(), static_cast<std::size_t>(chunks + 3));
  const json& usage_chunk = stream.chunks.back();
  EXPECT_EQ(usage_chunk["choices"], json::array());
  const std::int64_t prompt_tokens = expected_prompt_tokens(question);
  EXPECT_EQ(usage_chunk["usage"],
            json::parse(R"({"prompt_tokens":)" + std::to_string(prompt_tokens) +
                        R"(,"completion_tokens":9,"total_tokens":)" +
                        std::to_string(prompt_tokens + chunks) +
                        R"(,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},)"
                        R"("completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,)"
                        R"("accepted_prediction_tokens":0,"rejected_prediction_tokens":0}})"));
  for (std::size_t i = 0; i + 1 < stream.chunks.size(); ++i) {
    ASSERT_TRUE(stream.chunks[i].contains("usage"));
    EXPECT_TRUE(stream.chunks[i]["usage"].is_null());
  }
  EXPECT_EQ(stream.finish_reason, "stop");
  EXPECT_EQ(stream.content, SimulatedUpstream::answer_for("m", question, chunks));
}

TEST(SimulatedUpstream, MaxTokensBelowThePieceCountStopsEarlyWithFinishReasonLength) {
  auto upstream = started_upstream({.chunks = 10});
  Exchange exchange;
  exchange.prepare(completions_url(*upstream), chat_body("m", "q", true, true, /*max_tokens=*/3));
  ASSERT_EQ(exchange.perform(), CURLE_OK);

  ParsedStream stream = parse_stream(exchange.response());
  auto pieces = SimulatedUpstream::answer_pieces("m", "q", 10);
  EXPECT_EQ(stream.deltas, std::vector<std::string>(pieces.begin(), pieces.begin() + 3));
  EXPECT_EQ(stream.finish_reason, "length");
  ASSERT_TRUE(stream.usage.has_value());
  EXPECT_EQ((*stream.usage)["completion_tokens"], 3);
  EXPECT_TRUE(stream.done_last);
}

TEST(SimulatedUpstream, MaxTokensAtLeastThePieceCountFinishesWithStop) {
  auto upstream = started_upstream({.chunks = 10});
  Exchange exchange;
  exchange.prepare(completions_url(*upstream), chat_body("m", "q", true, false, /*max_tokens=*/10));
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  ParsedStream stream = parse_stream(exchange.response());
  EXPECT_EQ(stream.deltas.size(), 10u);
  EXPECT_EQ(stream.finish_reason, "stop");
}

TEST(SimulatedUpstream, NonStreamingRequestGetsAChatCompletionObject) {
  const int chunks = 8;
  auto upstream = started_upstream({.chunks = chunks});
  const std::string question = "Summarize \"War and Peace\"\nin one line.";
  Exchange exchange;
  exchange.prepare(completions_url(*upstream), chat_body("gpt-4o", question, false));
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(exchange.status(), 200);
  EXPECT_EQ(exchange.content_type(), "application/json");

  json completion = json::parse(exchange.response());
  EXPECT_EQ(completion["object"], "chat.completion");
  EXPECT_TRUE(completion["id"].get<std::string>().starts_with("chatcmpl-"));
  EXPECT_EQ(completion["model"], "gpt-4o");
  ASSERT_EQ(completion["choices"].size(), 1u);
  const json& choice = completion["choices"][0];
  EXPECT_EQ(choice["index"], 0);
  EXPECT_EQ(choice["message"]["role"], "assistant");
  EXPECT_EQ(choice["message"]["content"],
            SimulatedUpstream::answer_for("gpt-4o", question, chunks));
  EXPECT_EQ(choice["finish_reason"], "stop");
  EXPECT_EQ(completion["usage"]["prompt_tokens"], expected_prompt_tokens(question));
  EXPECT_EQ(completion["usage"]["completion_tokens"], chunks);
  EXPECT_EQ(completion["usage"]["total_tokens"], expected_prompt_tokens(question) + chunks);
}

TEST(SimulatedUpstream, NonStreamingRequestWithSmallMaxTokensIsCutWithLength) {
  auto upstream = started_upstream({.chunks = 8});
  Exchange exchange;
  exchange.prepare(completions_url(*upstream), chat_body("m", "q", false, false, /*max_tokens=*/2));
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  json completion = json::parse(exchange.response());
  auto pieces = SimulatedUpstream::answer_pieces("m", "q", 8);
  EXPECT_EQ(completion["choices"][0]["message"]["content"], pieces[0] + pieces[1]);
  EXPECT_EQ(completion["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(completion["usage"]["completion_tokens"], 2);
}

TEST(SimulatedUpstream, LastUserMessageMayBeAnArrayOfTextParts) {
  auto upstream = started_upstream({.chunks = 6});
  json body = {
      {"model", "m"},
      {"stream", true},
      {"messages",
       json::array({{{"role", "user"}, {"content", "an earlier question"}},
                    {{"role", "assistant"}, {"content", "an earlier answer"}},
                    {{"role", "user"},
                     {"content", json::array({{{"type", "text"}, {"text", "Part one"}},
                                              {{"type", "text"}, {"text", "part two"}}})}}})}};
  Exchange exchange;
  exchange.prepare(completions_url(*upstream), body.dump());
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  ParsedStream stream = parse_stream(exchange.response());
  EXPECT_EQ(stream.content, SimulatedUpstream::answer_for("m", "Part one\npart two", 6));
  EXPECT_NE(stream.content.find("Part one part two"), std::string::npos) << stream.content;
}

void expect_invalid_request_error(const Exchange& exchange, long status) {
  EXPECT_EQ(exchange.status(), status);
  json body = json::parse(exchange.response(), nullptr, false);
  ASSERT_TRUE(body.is_object()) << exchange.response();
  ASSERT_TRUE(body.contains("error")) << exchange.response();
  const json& error = body["error"];
  EXPECT_TRUE(error["message"].is_string() && !error["message"].get<std::string>().empty());
  EXPECT_EQ(error["type"], "invalid_request_error");
  EXPECT_TRUE(error.contains("param"));
  EXPECT_TRUE(error.contains("code"));
}

TEST(SimulatedUpstream, InvalidJsonBodyGets400InvalidRequestError) {
  auto upstream = started_upstream({});
  Exchange exchange;
  exchange.prepare(completions_url(*upstream), "{\"model\": \"m\", \"messages\": [");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  expect_invalid_request_error(exchange, 400);
  json error = json::parse(exchange.response())["error"];
  EXPECT_TRUE(error["param"].is_null());
  EXPECT_TRUE(error["code"].is_null());
}

TEST(SimulatedUpstream, MissingModelOrMessagesGets400) {
  auto upstream = started_upstream({});
  for (const char* body :
       {R"({"messages":[{"role":"user","content":"hi"}]})", R"({"model":"m"})",
        R"({"model":"m","messages":[]})", R"({"model":"m","messages":"hi"})", R"([1,2,3])"}) {
    SCOPED_TRACE(body);
    Exchange exchange;
    exchange.prepare(completions_url(*upstream), body);
    ASSERT_EQ(exchange.perform(), CURLE_OK);
    expect_invalid_request_error(exchange, 400);
  }
}

TEST(SimulatedUpstream, InvalidParametersGet400) {
  auto upstream = started_upstream({});
  const std::string messages = R"("messages":[{"role":"user","content":"hi"}])";
  for (std::string parameter :
       {R"("max_tokens":0)", R"("max_tokens":-1)", R"("max_tokens":"5")", R"("stream":"yes")",
        R"("temperature":3)", R"("stream_options":{"include_usage":true})"}) {
    SCOPED_TRACE(parameter);
    Exchange exchange;
    exchange.prepare(completions_url(*upstream),
                     R"({"model":"m",)" + messages + "," + parameter + "}");
    ASSERT_EQ(exchange.perform(), CURLE_OK);
    expect_invalid_request_error(exchange, 400);
  }
}

// Sends raw bytes on a fresh connection and returns everything the server
// sends back until it closes the connection.
std::string raw_exchange(std::uint16_t port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{.tv_sec = 30, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    char buffer[4096];
    for (ssize_t n; (n = recv(fd, buffer, sizeof buffer, 0)) > 0;) response.append(buffer, n);
  }
  close(fd);
  return response;
}

TEST(SimulatedUpstream, MalformedHttpGets400AndTheConnectionCloses) {
  auto upstream = started_upstream({});
  std::string response = raw_exchange(upstream->port(), "NOT HTTP AT ALL\r\n\r\n");
  EXPECT_TRUE(response.starts_with("HTTP/1.1 400 ")) << response;
  EXPECT_NE(response.find("Connection: close"), std::string::npos) << response;
  EXPECT_NE(response.find("invalid_request_error"), std::string::npos) << response;
}

TEST(SimulatedUpstream, PipelinedRequestsAreAnsweredInOrder) {
  auto upstream = started_upstream({.chunks = 3});
  const std::string body = chat_body("m", "pipelined", false);
  const std::string post = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n" + body;
  std::string response = raw_exchange(
      upstream->port(), "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n" + post +
                            "GET /v1/nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::size_t models = response.find("HTTP/1.1 200 ");
  std::size_t completion = response.find("HTTP/1.1 200 ", models + 1);
  std::size_t not_found = response.find("HTTP/1.1 404 ", completion + 1);
  ASSERT_NE(models, std::string::npos) << response;
  ASSERT_NE(completion, std::string::npos) << response;
  ASSERT_NE(not_found, std::string::npos) << response;
  EXPECT_NE(response.find("\"object\":\"list\""), std::string::npos);
  EXPECT_NE(response.find("chat.completion"), std::string::npos);
}

TEST(SimulatedUpstream, Http10ClientGetsAStreamDelimitedByConnectionClose) {
  auto upstream = started_upstream({.chunks = 4});
  const std::string body = chat_body("m", "old client", true);
  std::string response =
      raw_exchange(upstream->port(), "POST /v1/chat/completions HTTP/1.0\r\nContent-Length: " +
                                         std::to_string(body.size()) + "\r\n\r\n" + body);
  std::size_t body_start = response.find("\r\n\r\n");
  ASSERT_NE(body_start, std::string::npos) << response;
  std::string head = response.substr(0, body_start);
  EXPECT_EQ(head.find("Transfer-Encoding"), std::string::npos) << head;
  ParsedStream stream = parse_stream(response.substr(body_start + 4));
  EXPECT_EQ(stream.content, SimulatedUpstream::answer_for("m", "old client", 4));
  EXPECT_TRUE(stream.done_last);
}

TEST(SimulatedUpstream, UnknownPathGets404) {
  auto upstream = started_upstream({});
  Exchange exchange;
  exchange.prepare(upstream->base_url() + "/no/such/thing", chat_body("m", "q", false));
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  expect_invalid_request_error(exchange, 404);
}

TEST(SimulatedUpstream, ListsModels) {
  auto upstream = started_upstream({});
  Exchange exchange;
  exchange.prepare(upstream->base_url() + "/models");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(exchange.status(), 200);
  json list = json::parse(exchange.response());
  EXPECT_EQ(list["object"], "list");
  ASSERT_FALSE(list["data"].empty());
  for (const json& model : list["data"]) {
    EXPECT_TRUE(model["id"].is_string());
    EXPECT_EQ(model["object"], "model");
  }
}

TEST(SimulatedUpstream, KeepAliveReusesTheConnectionForTheNextRequest) {
  auto upstream = started_upstream({.chunks = 5});
  Exchange exchange;
  exchange.prepare(completions_url(*upstream), chat_body("m", "first", true, true));
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(exchange.new_connections(), 1);
  EXPECT_TRUE(parse_stream(exchange.response()).done_last);

  exchange.prepare(completions_url(*upstream), chat_body("m", "second", false));
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(exchange.new_connections(), 0);
  EXPECT_EQ(json::parse(exchange.response())["choices"][0]["message"]["content"],
            SimulatedUpstream::answer_for("m", "second", 5));

  exchange.prepare(completions_url(*upstream), chat_body("m", "third", true));
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(exchange.new_connections(), 0);
  EXPECT_EQ(parse_stream(exchange.response()).content,
            SimulatedUpstream::answer_for("m", "third", 5));
}

TEST(SimulatedUpstream, ConnectionStaysUsableAfterAnErrorResponse) {
  auto upstream = started_upstream({.chunks = 3});
  Exchange exchange;
  exchange.prepare(completions_url(*upstream), "not json");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(exchange.status(), 400);
  exchange.prepare(completions_url(*upstream), chat_body("m", "q", true));
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(exchange.new_connections(), 0);
  EXPECT_EQ(parse_stream(exchange.response()).content, SimulatedUpstream::answer_for("m", "q", 3));
}

TEST(SimulatedUpstream, AnswersExpect100Continue) {
  auto upstream = started_upstream({.chunks = 4});
  const std::string question(4000, 'q');  // large enough that clients send Expect
  Exchange exchange;
  exchange.prepare(completions_url(*upstream), chat_body("m", question, true),
                   {"Expect: 100-continue"});
  // Without a "100 Continue" curl would wait this long before sending the body.
  curl_easy_setopt(exchange.handle(), CURLOPT_EXPECT_100_TIMEOUT_MS, 30000L);
  const auto started = Clock::now();
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(20));
  EXPECT_EQ(parse_stream(exchange.response()).content,
            SimulatedUpstream::answer_for("m", question, 4));
}

TEST(SimulatedUpstream, HundredConcurrentStreamsAllCompleteCorrectly) {
  const int chunks = 10;
  auto upstream = started_upstream({.chunks = chunks, .chunk_delay_ms = 2, .threads = 2});
  constexpr int kStreams = 100;
  std::vector<std::unique_ptr<Exchange>> exchanges;
  std::vector<Exchange*> raw;
  for (int i = 0; i < kStreams; ++i) {
    exchanges.push_back(std::make_unique<Exchange>());
    exchanges.back()->prepare(completions_url(*upstream),
                              chat_body("m", "question " + std::to_string(i), true, i % 2 == 0));
    raw.push_back(exchanges.back().get());
  }
  std::vector<CURLcode> results = perform_concurrently(raw);
  for (int i = 0; i < kStreams; ++i) {
    SCOPED_TRACE("stream " + std::to_string(i));
    ASSERT_EQ(results[i], CURLE_OK);
    EXPECT_EQ(exchanges[i]->status(), 200);
    ParsedStream stream = parse_stream(exchanges[i]->response());
    EXPECT_EQ(stream.content,
              SimulatedUpstream::answer_for("m", "question " + std::to_string(i), chunks));
    EXPECT_EQ(stream.deltas.size(), static_cast<std::size_t>(chunks));
    EXPECT_EQ(stream.usage.has_value(), i % 2 == 0);
    EXPECT_TRUE(stream.done_last);
  }
  EXPECT_EQ(upstream->requests_served(), static_cast<std::uint64_t>(kStreams));
}

TEST(SimulatedUpstream, ChunkDelaySpacesTheContentChunks) {
  const int chunks = 5;
  const int delay_ms = 60;
  auto upstream = started_upstream({.chunks = chunks, .chunk_delay_ms = delay_ms});
  Exchange exchange;
  exchange.prepare(completions_url(*upstream), chat_body("m", "q", true));
  const auto started = Clock::now();
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_GE(Clock::now() - started, std::chrono::milliseconds((chunks - 1) * delay_ms));
  EXPECT_EQ(parse_stream(exchange.response()).content,
            SimulatedUpstream::answer_for("m", "q", chunks));
}

TEST(SimulatedUpstream, CountsChatCompletionRequestsOfAnyStatus) {
  auto upstream = started_upstream({.chunks = 2});
  Exchange exchange;
  exchange.prepare(completions_url(*upstream), chat_body("m", "q", true));
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  exchange.prepare(completions_url(*upstream), chat_body("m", "q", false));
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  exchange.prepare(completions_url(*upstream), "{");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  exchange.prepare(upstream->base_url() + "/models");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(upstream->requests_served(), 3u);
}

TEST(SimulatedUpstream, StopWithOpenStreamsReturnsPromptlyAndClosesThem) {
  // 100 pieces 500 ms apart: each stream would take ~50 s to finish on its own.
  auto upstream = started_upstream({.chunks = 100, .chunk_delay_ms = 500, .threads = 2});
  constexpr int kStreams = 8;
  std::vector<std::unique_ptr<Exchange>> exchanges;
  std::vector<Exchange*> raw;
  for (int i = 0; i < kStreams; ++i) {
    exchanges.push_back(std::make_unique<Exchange>());
    exchanges.back()->prepare(completions_url(*upstream), chat_body("m", "q", true));
    raw.push_back(exchanges.back().get());
  }
  std::vector<CURLcode> results;
  std::thread client([&] { results = perform_concurrently(raw); });

  auto all_streaming = [&] {
    for (const auto& exchange : exchanges) {
      if (exchange->bytes_received() == 0) return false;
    }
    return true;
  };
  ASSERT_TRUE(testing::eventually(all_streaming, std::chrono::seconds(30), std::chrono::milliseconds(10)));

  const auto stop_started = Clock::now();
  upstream->stop();
  EXPECT_LT(Clock::now() - stop_started, std::chrono::seconds(10));
  client.join();
  for (CURLcode result : results) EXPECT_NE(result, CURLE_OK);  // cut before the end

  Exchange after_stop;
  after_stop.prepare(completions_url(*upstream), chat_body("m", "q", true));
  EXPECT_EQ(after_stop.perform(), CURLE_COULDNT_CONNECT);
  upstream->stop();  // idempotent
}

TEST(SimulatedUpstream, ScriptedAnswersReplaceTheComposedOneForTheirModelAndPrompt) {
  const int chunks = 4;
  SimulatedUpstreamOptions options{.chunks = chunks};
  options.answers = {{"cheap", "France", "I'm sorry, but I can't help with that."},
                     {"", "Score", "Score: 4"}};
  auto upstream = started_upstream(options);
  auto ask = [&](const std::string& model, const std::string& question, int max_tokens = 0) {
    Exchange exchange;
    exchange.prepare(completions_url(*upstream), chat_body(model, question, true, true, max_tokens));
    EXPECT_EQ(exchange.perform(), CURLE_OK);
    return parse_stream(exchange.response());
  };
  // Fewer words than chunks: one piece per word, no padding; usage counts the pieces.
  ParsedStream refusal = ask("cheap", "Capital of France?");
  EXPECT_EQ(refusal.content, "I'm sorry, but I can't help with that.");
  EXPECT_EQ(refusal.deltas.size(), static_cast<std::size_t>(chunks));
  EXPECT_EQ(refusal.finish_reason, "stop");
  ASSERT_TRUE(refusal.usage.has_value());
  EXPECT_EQ((*refusal.usage)["completion_tokens"], chunks);
  EXPECT_EQ(ask("other", "Capital of France?").content, SimulatedUpstream::answer_for("other", "Capital of France?", chunks));
  EXPECT_EQ(ask("cheap", "Capital of Spain?").content, SimulatedUpstream::answer_for("cheap", "Capital of Spain?", chunks));
  ParsedStream score = ask("any-model", "Score this");
  EXPECT_EQ(score.content, "Score: 4");
  EXPECT_EQ(score.deltas, (std::vector<std::string>{"Score: ", "4"}));
  // max_tokens cuts a scripted answer like any other.
  ParsedStream cut = ask("cheap", "France again", /*max_tokens=*/2);
  EXPECT_EQ(cut.content, "I'm sorry, but I ");  // 8 words in 4 pieces: two pieces, four words
  EXPECT_EQ(cut.finish_reason, "length");

  upstream->set_answer_rules({{"broken", "", "", 503}});
  Exchange failing;
  failing.prepare(completions_url(*upstream), chat_body("broken", "q", true));
  ASSERT_EQ(failing.perform(), CURLE_OK);
  EXPECT_EQ(failing.status(), 503);
  EXPECT_EQ(ask("cheap", "Capital of France?").content, SimulatedUpstream::answer_for("cheap", "Capital of France?", chunks));
  const auto by_model = upstream->requests_by_model();
  EXPECT_EQ(by_model.at("cheap"), 4u);
  EXPECT_EQ(by_model.at("other"), 1u);
  EXPECT_EQ(by_model.at("any-model"), 1u);
  EXPECT_EQ(by_model.at("broken"), 1u);
}

TEST(SimulatedUpstream, AToolCallRuleAnswersWithAFunctionCallInOpenAisStreamingAndWholeShapes) {
  const int chunks = 3;
  SimulatedUpstreamOptions options{.chunks = chunks};
  const std::string arguments = R"({"city": "Paris", "unit": "celsius"})";
  options.answers = {{.model = "cheap", .prompt_contains = "weather", .answer = arguments, .tool_name = "get_weather"}};
  auto upstream = started_upstream(options);

  Exchange streamed;
  streamed.prepare(completions_url(*upstream), chat_body("cheap", "What is the weather in Paris?", true, true));
  ASSERT_EQ(streamed.perform(), CURLE_OK);
  const ParsedStream parsed = parse_stream(streamed.response());
  ASSERT_GE(parsed.chunks.size(), 3u);
  // First: the role, no content, and the call's id and name with empty arguments.
  const json& first = parsed.chunks[0]["choices"][0]["delta"];
  EXPECT_EQ(first["role"], "assistant");
  EXPECT_TRUE(first["content"].is_null());
  ASSERT_EQ(first["tool_calls"].size(), 1u);
  const json& call = first["tool_calls"][0];
  EXPECT_EQ(call["index"], 0);
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["function"]["name"], "get_weather");
  EXPECT_EQ(call["function"]["arguments"], "");
  EXPECT_TRUE(call["id"].get<std::string>().starts_with("call_sim_"));
  // Then the arguments in pieces, with no text content at all.
  std::string joined;
  std::size_t pieces = 0;
  for (std::size_t i = 1; i < parsed.chunks.size(); ++i) {
    const json& chunk = parsed.chunks[i];
    if (chunk["choices"].empty()) continue;
    const json& delta = chunk["choices"][0]["delta"];
    EXPECT_FALSE(delta.contains("content")) << chunk.dump();
    if (!delta.contains("tool_calls")) continue;
    EXPECT_EQ(delta["tool_calls"][0]["index"], 0);
    EXPECT_FALSE(delta["tool_calls"][0].contains("id"));
    joined += delta["tool_calls"][0]["function"]["arguments"].get<std::string>();
    ++pieces;
  }
  EXPECT_EQ(joined, arguments);
  EXPECT_EQ(pieces, static_cast<std::size_t>(chunks));
  EXPECT_EQ(parsed.finish_reason, "tool_calls");
  EXPECT_TRUE(parsed.done_last);
  ASSERT_TRUE(parsed.usage.has_value());
  EXPECT_EQ((*parsed.usage)["completion_tokens"], chunks);

  Exchange whole;
  whole.prepare(completions_url(*upstream), chat_body("cheap", "What is the weather in Paris?", false));
  ASSERT_EQ(whole.perform(), CURLE_OK);
  const json completion = json::parse(whole.response());
  const json& message = completion["choices"][0]["message"];
  EXPECT_TRUE(message["content"].is_null());
  ASSERT_EQ(message["tool_calls"].size(), 1u);
  EXPECT_EQ(message["tool_calls"][0]["type"], "function");
  EXPECT_EQ(message["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(message["tool_calls"][0]["function"]["arguments"], arguments);
  EXPECT_EQ(completion["choices"][0]["finish_reason"], "tool_calls");

  // Other prompts still get text.
  Exchange text;
  text.prepare(completions_url(*upstream), chat_body("cheap", "Capital of France?", false));
  ASSERT_EQ(text.perform(), CURLE_OK);
  const json plain = json::parse(text.response());
  EXPECT_EQ(plain["choices"][0]["message"]["content"], SimulatedUpstream::answer_for("cheap", "Capital of France?", chunks));
  EXPECT_FALSE(plain["choices"][0]["message"].contains("tool_calls"));
  EXPECT_EQ(plain["choices"][0]["finish_reason"], "stop");
}

}  // namespace
}  // namespace cascade
