// Fault injection of the simulated upstream: each fault's wire behaviour, the
// plan's proportions and determinism, and that no configured fault changes
// no byte.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "simulator/simulated_upstream.h"
#include "support/wait.h"

namespace cascade {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

const bool curl_initialized = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();

// One request on a reusable curl handle, recording response headers too.
class FaultExchange {
 public:
  FaultExchange() : handle_(curl_easy_init()) {}
  ~FaultExchange() {
    curl_easy_cleanup(handle_);
    curl_slist_free_all(headers_);
  }
  FaultExchange(const FaultExchange&) = delete;
  FaultExchange& operator=(const FaultExchange&) = delete;

  void prepare(const std::string& url, const std::string& body, const std::string& fault = {},
               long timeout_ms = 60'000) {
    body_ = body;
    response_.clear();
    response_headers_.clear();
    curl_slist_free_all(headers_);
    headers_ = curl_slist_append(nullptr, "Content-Type: application/json");
    if (!fault.empty()) headers_ = curl_slist_append(headers_, ("X-Cascade-Fault: " + fault).c_str());
    curl_easy_setopt(handle_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(handle_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(handle_, CURLOPT_POSTFIELDS, body_.c_str());
    curl_easy_setopt(handle_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body_.size()));
    curl_easy_setopt(handle_, CURLOPT_WRITEFUNCTION, &FaultExchange::on_data);
    curl_easy_setopt(handle_, CURLOPT_WRITEDATA, &response_);
    curl_easy_setopt(handle_, CURLOPT_HEADERFUNCTION, &FaultExchange::on_header);
    curl_easy_setopt(handle_, CURLOPT_HEADERDATA, &response_headers_);
    curl_easy_setopt(handle_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(handle_, CURLOPT_TIMEOUT_MS, timeout_ms);
  }

  CURLcode perform() { return curl_easy_perform(handle_); }
  CURL* handle() const { return handle_; }

  long status() const {
    long code = 0;
    curl_easy_getinfo(handle_, CURLINFO_RESPONSE_CODE, &code);
    return code;
  }
  long new_connections() const {
    long count = -1;
    curl_easy_getinfo(handle_, CURLINFO_NUM_CONNECTS, &count);
    return count;
  }
  // Value of the last response header with that name (lowercase), "" if absent.
  std::string header(const std::string& lowercase_name) const {
    std::string value;
    for (const std::string& line : response_headers_) {
      std::size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(), ::tolower);
      if (name != lowercase_name) continue;
      value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      value.erase(value.find_last_not_of("\r\n ") + 1);
    }
    return value;
  }
  const std::string& response() const { return response_; }

 private:
  static size_t on_data(char* data, size_t size, size_t count, void* out) {
    static_cast<std::string*>(out)->append(data, size * count);
    return size * count;
  }
  static size_t on_header(char* data, size_t size, size_t count, void* out) {
    static_cast<std::vector<std::string>*>(out)->emplace_back(data, size * count);
    return size * count;
  }

  CURL* handle_;
  curl_slist* headers_ = nullptr;
  std::string body_;
  std::string response_;
  std::vector<std::string> response_headers_;
};

std::string chat_body(const std::string& question, bool stream = true) {
  json body = {{"model", "m"}, {"messages", json::array({{{"role", "user"}, {"content", question}}})}};
  if (stream) body["stream"] = true;
  return body.dump();
}

std::unique_ptr<SimulatedUpstream> started(SimulatedUpstreamOptions options) {
  auto upstream = std::make_unique<SimulatedUpstream>(std::move(options));
  auto result = upstream->start();
  EXPECT_TRUE(result.has_value()) << (result ? "" : result.error().message);
  return upstream;
}

std::string url(const SimulatedUpstream& upstream) {
  return upstream.base_url() + "/chat/completions";
}

// The payloads of the complete SSE events in a body, in order.
std::vector<std::string> sse_payloads(const std::string& body) {
  std::vector<std::string> payloads;
  std::size_t position = 0;
  for (std::size_t end; (end = body.find("\n\n", position)) != std::string::npos; position = end + 2) {
    std::string event = body.substr(position, end - position);
    EXPECT_TRUE(event.starts_with("data: ")) << event;
    payloads.push_back(event.substr(std::min<std::size_t>(6, event.size())));
  }
  EXPECT_EQ(position, body.size()) << "trailing partial event";
  return payloads;
}

struct Stream {
  std::size_t events = 0;  // all events, [DONE] included
  bool role_first = false;
  std::vector<std::string> deltas;
  std::vector<std::string> unparsable;  // payloads that are not JSON
  bool finished = false;                // saw a finish_reason
  bool done = false;                    // saw [DONE]
};

Stream parse_stream(const std::string& body) {
  Stream stream;
  for (const std::string& payload : sse_payloads(body)) {
    ++stream.events;
    if (payload == "[DONE]") {
      stream.done = true;
      continue;
    }
    json chunk = json::parse(payload, nullptr, false);
    if (chunk.is_discarded()) {
      stream.unparsable.push_back(payload);
      continue;
    }
    const json& delta = chunk["choices"][0]["delta"];
    if (delta.contains("role")) {
      stream.role_first = stream.events == 1;
    } else if (delta.contains("content")) {
      stream.deltas.push_back(delta["content"].get<std::string>());
    }
    if (!chunk["choices"][0]["finish_reason"].is_null()) stream.finished = true;
  }
  return stream;
}

std::vector<std::string> pieces(const std::string& question, int chunks, std::size_t count) {
  auto all = SimulatedUpstream::answer_pieces("m", question, chunks);
  all.resize(count);
  return all;
}

enum class WireEnd { closed, reset, timed_out };

struct RawResponse {
  std::string bytes;
  WireEnd end = WireEnd::timed_out;
};

// Sends one raw HTTP request and reads until the server closes or resets.
RawResponse raw_exchange(std::uint16_t port, const std::string& request) {
  RawResponse response;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{.tv_sec = 30, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    char buffer[4096];
    for (;;) {
      ssize_t n = recv(fd, buffer, sizeof buffer, 0);
      if (n > 0) {
        response.bytes.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) response.end = WireEnd::closed;
      if (n < 0 && errno == ECONNRESET) response.end = WireEnd::reset;
      break;
    }
  }
  close(fd);
  return response;
}

std::string raw_post(const std::string& body, const std::string& fault = {},
                     const std::string& connection = "keep-alive") {
  std::string request = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\nConnection: " + connection + "\r\n";
  if (!fault.empty()) request += "X-Cascade-Fault: " + fault + "\r\n";
  return request + "\r\n" + body;
}

struct ChunkedBody {
  std::string data;             // the chunks' data joined
  bool terminated = false;      // saw the zero-size last chunk
  std::size_t leftover = 0;     // bytes after the last complete chunk
};

ChunkedBody decode_chunked(const std::string& response) {
  ChunkedBody body;
  std::size_t position = response.find("\r\n\r\n");
  if (position == std::string::npos) return body;
  position += 4;
  for (;;) {
    std::size_t line_end = response.find("\r\n", position);
    if (line_end == std::string::npos) break;
    std::size_t size = std::stoul(response.substr(position, line_end - position), nullptr, 16);
    if (size == 0) {
      body.terminated = true;
      position = line_end + 2;
      if (response.compare(position, 2, "\r\n") == 0) position += 2;
      break;
    }
    if (line_end + 2 + size + 2 > response.size()) break;
    body.data.append(response, line_end + 2, size);
    position = line_end + 2 + size + 2;
  }
  body.leftover = response.size() - position;
  return body;
}

// --- the X-Cascade-Fault syntax ---

TEST(UpstreamFaultSyntax, ParsesEveryFaultNameWithItsParameters) {
  EXPECT_EQ(*parse_upstream_fault("none"), UpstreamFault{});
  EXPECT_EQ(*parse_upstream_fault("status;code=503;retry_after=7"),
            UpstreamFault::http_status(503, 7));
  EXPECT_EQ(*parse_upstream_fault("status"), UpstreamFault::http_status(500));
  EXPECT_EQ(*parse_upstream_fault("502"), UpstreamFault::http_status(502));
  EXPECT_EQ(*parse_upstream_fault("hang_before_headers;ms=250"),
            UpstreamFault::hang_before_headers(250));
  EXPECT_EQ(*parse_upstream_fault("hang_mid_stream; after=3; ms=40"),
            UpstreamFault::hang_mid_stream(40, 3));
  EXPECT_EQ(*parse_upstream_fault("cut_mid_stream;after=2"), UpstreamFault::cut_mid_stream(2));
  EXPECT_EQ(*parse_upstream_fault("reset_mid_stream"), UpstreamFault::reset_mid_stream());
  EXPECT_EQ(*parse_upstream_fault("malformed_sse;after=0"), UpstreamFault::malformed_sse(0));
  EXPECT_EQ(*parse_upstream_fault("huge_chunk;bytes=4096;after=1"),
            UpstreamFault::huge_chunk(4096, 1));
  EXPECT_EQ(*parse_upstream_fault("huge_chunk"), UpstreamFault::huge_chunk());
  EXPECT_EQ(*parse_upstream_fault("slow;ms=15"), UpstreamFault::slow(15));
  EXPECT_EQ(*parse_upstream_fault("slow"), UpstreamFault::slow(50));
}

TEST(UpstreamFaultSyntax, A429CarriesRetryAfterOneUnlessToldOtherwise) {
  EXPECT_EQ(*parse_upstream_fault("429"), UpstreamFault::rate_limited(1));
  EXPECT_EQ(*parse_upstream_fault("status;code=429"), UpstreamFault::rate_limited(1));
  EXPECT_EQ(*parse_upstream_fault("429;retry_after=0"), UpstreamFault::rate_limited(0));
  EXPECT_EQ(parse_upstream_fault("429;retry_after=-1")->retry_after_seconds, -1);
}

TEST(UpstreamFaultSyntax, RejectsUnknownNamesParametersAndValues) {
  for (const char* text : {"", "explode", "status;code=200", "status;code=abc", "600",
                           "cut_mid_stream;ms=5", "huge_chunk;bytes=0", "slow;ms=0",
                           "hang_before_headers;ms=-1", "cut_mid_stream;after", "none;after=1"}) {
    SCOPED_TRACE(text);
    auto parsed = parse_upstream_fault(text);
    ASSERT_FALSE(parsed.has_value());
    EXPECT_EQ(parsed.error().code, ErrorCode::invalid_request);
  }
}

TEST(UpstreamFaultSyntax, LabelsNameTheStatusCode) {
  EXPECT_EQ(fault_label(UpstreamFault{}), "none");
  EXPECT_EQ(fault_label(UpstreamFault::rate_limited()), "status_429");
  EXPECT_EQ(fault_label(UpstreamFault::cut_mid_stream()), "cut_mid_stream");
  EXPECT_EQ(fault_label(UpstreamFault::huge_chunk()), "huge_chunk");
}

// --- each fault on the wire ---

TEST(SimulatedUpstreamFaults, RateLimitAnswers429WithRetryAfterAndARateLimitErrorBody) {
  auto upstream = started({.chunks = 4});
  FaultExchange exchange;
  exchange.prepare(url(*upstream), chat_body("q"), "429;retry_after=3");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(exchange.status(), 429);
  EXPECT_EQ(exchange.header("retry-after"), "3");
  EXPECT_EQ(exchange.header("content-type"), "application/json");
  json body = json::parse(exchange.response());
  EXPECT_EQ(body["error"]["type"], "rate_limit_error");
  EXPECT_EQ(body["error"]["code"], "rate_limit_exceeded");
  EXPECT_TRUE(body["error"]["message"].is_string());
  EXPECT_TRUE(body["error"]["param"].is_null());
}

TEST(SimulatedUpstreamFaults, ServerErrorsCarryOpenAiStyleBodiesAndOptionalRetryAfter) {
  auto upstream = started({.chunks = 4});
  struct Case {
    std::string fault;
    long status;
    std::string type;
    std::string retry_after;
  };
  for (const Case& c : {Case{"500", 500, "server_error", ""},
                        Case{"502", 502, "cf_bad_gateway", ""},
                        Case{"503", 503, "server_error", ""},
                        Case{"status;code=503;retry_after=9", 503, "server_error", "9"}}) {
    SCOPED_TRACE(c.fault);
    FaultExchange exchange;
    exchange.prepare(url(*upstream), chat_body("q"), c.fault);
    ASSERT_EQ(exchange.perform(), CURLE_OK);
    EXPECT_EQ(exchange.status(), c.status);
    EXPECT_EQ(exchange.header("retry-after"), c.retry_after);
    json body = json::parse(exchange.response(), nullptr, false);
    ASSERT_TRUE(body.is_object()) << exchange.response();
    EXPECT_EQ(body["error"]["type"], c.type);
    EXPECT_FALSE(body["error"]["message"].get<std::string>().empty());
    EXPECT_TRUE(body["error"].contains("param"));
    EXPECT_TRUE(body["error"].contains("code"));
  }
}

TEST(SimulatedUpstreamFaults, TheConnectionStaysUsableAfterAStatusFault) {
  auto upstream = started({.chunks = 4});
  FaultExchange exchange;
  exchange.prepare(url(*upstream), chat_body("q"), "503");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  exchange.prepare(url(*upstream), chat_body("q"));
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(exchange.new_connections(), 0);
  EXPECT_EQ(parse_stream(exchange.response()).deltas, pieces("q", 4, 4));
}

TEST(SimulatedUpstreamFaults, InvalidFaultHeaderGets400NamingTheHeader) {
  auto upstream = started({});
  FaultExchange exchange;
  exchange.prepare(url(*upstream), chat_body("q"), "explode");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(exchange.status(), 400);
  json body = json::parse(exchange.response());
  EXPECT_EQ(body["error"]["type"], "invalid_request_error");
  EXPECT_NE(body["error"]["message"].get<std::string>().find("X-Cascade-Fault"), std::string::npos);
}

TEST(SimulatedUpstreamFaults, HeaderIsIgnoredWhenFaultHeadersAreOff) {
  auto upstream = started({.chunks = 3, .faults = {.honor_fault_header = false}});
  FaultExchange exchange;
  exchange.prepare(url(*upstream), chat_body("q"), "429");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(exchange.status(), 200);
  EXPECT_EQ(parse_stream(exchange.response()).deltas, pieces("q", 3, 3));
}

TEST(SimulatedUpstreamFaults, HangBeforeHeadersMakesTheClientTimeOutWithNothingReceived) {
  auto upstream = started({.chunks = 4});
  FaultExchange exchange;
  exchange.prepare(url(*upstream), chat_body("q"), "hang_before_headers", /*timeout_ms=*/300);
  EXPECT_EQ(exchange.perform(), CURLE_OPERATION_TIMEDOUT);
  EXPECT_EQ(exchange.status(), 0);
  EXPECT_TRUE(exchange.response().empty());
  EXPECT_EQ(upstream->fault_counts()["hang_before_headers"], 1u);
}

TEST(SimulatedUpstreamFaults, TimedHangBeforeHeadersThenAnswersNormally) {
  auto upstream = started({.chunks = 4});
  FaultExchange exchange;
  exchange.prepare(url(*upstream), chat_body("q"), "hang_before_headers;ms=200");
  const auto begun = Clock::now();
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_GE(Clock::now() - begun, std::chrono::milliseconds(200));
  Stream stream = parse_stream(exchange.response());
  EXPECT_EQ(stream.deltas, pieces("q", 4, 4));
  EXPECT_TRUE(stream.done);
}

TEST(SimulatedUpstreamFaults, HangMidStreamSendsHeadersAndSomeChunksThenStalls) {
  auto upstream = started({.chunks = 6});
  FaultExchange exchange;
  exchange.prepare(url(*upstream), chat_body("q"), "hang_mid_stream;after=2", /*timeout_ms=*/800);
  EXPECT_EQ(exchange.perform(), CURLE_OPERATION_TIMEDOUT);
  EXPECT_EQ(exchange.status(), 200);
  Stream stream = parse_stream(exchange.response());
  EXPECT_TRUE(stream.role_first);
  EXPECT_EQ(stream.deltas, pieces("q", 6, 2));
  EXPECT_FALSE(stream.finished);
  EXPECT_FALSE(stream.done);
}

TEST(SimulatedUpstreamFaults, AClientThatClosesAStalledStreamIsCountedAsAbandoning) {
  auto upstream = started({.chunks = 6});
  EXPECT_EQ(upstream->responses_abandoned(), 0u);
  {
    FaultExchange exchange;
    exchange.prepare(url(*upstream), chat_body("q"), "hang_mid_stream;after=2", /*timeout_ms=*/300);
    EXPECT_EQ(exchange.perform(), CURLE_OPERATION_TIMEDOUT);
  }  // the handle, and its connection, are closed here
  EXPECT_TRUE(testing::eventually([&] { return upstream->responses_abandoned() == 1; }, std::chrono::seconds(5)));
  FaultExchange whole;
  whole.prepare(url(*upstream), chat_body("q"));
  ASSERT_EQ(whole.perform(), CURLE_OK);
  EXPECT_EQ(upstream->responses_abandoned(), 1u) << "a stream read to its end is not abandoned";
}

TEST(SimulatedUpstreamFaults, TimedHangMidStreamThenFinishesTheStream) {
  auto upstream = started({.chunks = 6});
  FaultExchange exchange;
  exchange.prepare(url(*upstream), chat_body("q"), "hang_mid_stream;after=3;ms=150");
  const auto begun = Clock::now();
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_GE(Clock::now() - begun, std::chrono::milliseconds(150));
  Stream stream = parse_stream(exchange.response());
  EXPECT_EQ(stream.deltas, SimulatedUpstream::expected_deltas(
                               "m", "q", 6, UpstreamFault::hang_mid_stream(150, 3)));
  EXPECT_TRUE(stream.done);
}

TEST(SimulatedUpstreamFaults, CutMidStreamClosesAfterKChunksWithoutTheLastChunkOrDone) {
  auto upstream = started({.chunks = 6});
  FaultExchange exchange;
  exchange.prepare(url(*upstream), chat_body("q"), "cut_mid_stream;after=2");
  EXPECT_EQ(exchange.perform(), CURLE_PARTIAL_FILE);
  EXPECT_EQ(exchange.status(), 200);
  Stream stream = parse_stream(exchange.response());
  EXPECT_TRUE(stream.role_first);
  EXPECT_EQ(stream.deltas, pieces("q", 6, 2));
  EXPECT_EQ(stream.deltas,
            SimulatedUpstream::expected_deltas("m", "q", 6, UpstreamFault::cut_mid_stream(2)));
  EXPECT_FALSE(stream.finished);
  EXPECT_FALSE(stream.done);
}

TEST(SimulatedUpstreamFaults, CutMidStreamOnTheWireEndsWithAFinAfterWholeChunks) {
  auto upstream = started({.chunks = 6});
  RawResponse response = raw_exchange(upstream->port(), raw_post(chat_body("q"), "cut_mid_stream;after=3"));
  EXPECT_EQ(response.end, WireEnd::closed);
  ASSERT_TRUE(response.bytes.starts_with("HTTP/1.1 200 OK\r\n")) << response.bytes;
  ChunkedBody body = decode_chunked(response.bytes);
  EXPECT_FALSE(body.terminated);
  EXPECT_EQ(body.leftover, 0u);
  Stream stream = parse_stream(body.data);
  EXPECT_EQ(stream.events, 4u);  // role + 3 deltas
  EXPECT_EQ(stream.deltas, pieces("q", 6, 3));
}

TEST(SimulatedUpstreamFaults, CutBeforeAnyContentStillSendsHeadersAndTheRoleChunk) {
  auto upstream = started({.chunks = 6});
  FaultExchange exchange;
  exchange.prepare(url(*upstream), chat_body("q"), "cut_mid_stream;after=0");
  EXPECT_EQ(exchange.perform(), CURLE_PARTIAL_FILE);
  Stream stream = parse_stream(exchange.response());
  EXPECT_EQ(stream.events, 1u);
  EXPECT_TRUE(stream.role_first);
  EXPECT_TRUE(stream.deltas.empty());
}

TEST(SimulatedUpstreamFaults, ResetMidStreamEndsTheConnectionWithARst) {
  auto upstream = started({.chunks = 6});
  RawResponse response =
      raw_exchange(upstream->port(), raw_post(chat_body("q"), "reset_mid_stream;after=2"));
  EXPECT_EQ(response.end, WireEnd::reset);

  FaultExchange exchange;
  exchange.prepare(url(*upstream), chat_body("q"), "reset_mid_stream;after=2");
  EXPECT_EQ(exchange.perform(), CURLE_RECV_ERROR);
  EXPECT_EQ(upstream->fault_counts()["reset_mid_stream"], 2u);
}

TEST(SimulatedUpstreamFaults, MalformedSseLineSitsAmongOtherwiseValidEvents) {
  auto upstream = started({.chunks = 6});
  FaultExchange exchange;
  exchange.prepare(url(*upstream), chat_body("q"), "malformed_sse;after=2");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  const std::string malformed_event =
      "data: " + std::string(SimulatedUpstream::kMalformedSseData) + "\n\n";
  const std::string& body = exchange.response();
  const std::size_t at = body.find(malformed_event);
  ASSERT_NE(at, std::string::npos) << body;
  EXPECT_EQ(body.find(malformed_event, at + 1), std::string::npos);
  // role + 2 deltas come before it
  EXPECT_EQ(parse_stream(body.substr(0, at)).deltas, pieces("q", 6, 2));

  Stream stream = parse_stream(body);
  ASSERT_EQ(stream.unparsable.size(), 1u);
  EXPECT_EQ(stream.unparsable[0], SimulatedUpstream::kMalformedSseData);
  EXPECT_EQ(stream.deltas,
            SimulatedUpstream::expected_deltas("m", "q", 6, UpstreamFault::malformed_sse(2)));
  EXPECT_TRUE(stream.finished);
  EXPECT_TRUE(stream.done);
}

TEST(SimulatedUpstreamFaults, HugeChunkOfOneMebibyteArrivesIntactInAnOtherwiseNormalStream) {
  auto upstream = started({.chunks = 8});
  const std::size_t bytes = 1 << 20;
  FaultExchange exchange;
  exchange.prepare(url(*upstream), chat_body("q"), "huge_chunk;bytes=1048576;after=3");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  Stream stream = parse_stream(exchange.response());
  const auto expected =
      SimulatedUpstream::expected_deltas("m", "q", 8, UpstreamFault::huge_chunk(bytes, 3));
  ASSERT_EQ(expected.size(), 9u);
  EXPECT_EQ(expected[3], SimulatedUpstream::huge_chunk_text(bytes));
  EXPECT_EQ(expected[3].size(), bytes);
  ASSERT_EQ(stream.deltas.size(), expected.size());
  EXPECT_TRUE(stream.deltas == expected);  // not EXPECT_EQ: a mismatch would print 1 MiB
  EXPECT_TRUE(stream.done);
  EXPECT_TRUE(stream.unparsable.empty());
}

TEST(SimulatedUpstreamFaults, SlowOverridesTheChunkDelayForThatRequestOnly) {
  auto upstream = started({.chunks = 5});
  FaultExchange exchange;
  exchange.prepare(url(*upstream), chat_body("q"), "slow;ms=60");
  const auto begun = Clock::now();
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_GE(Clock::now() - begun, std::chrono::milliseconds(4 * 60));
  EXPECT_EQ(parse_stream(exchange.response()).deltas, pieces("q", 5, 5));
  EXPECT_EQ(upstream->fault_counts()["slow"], 1u);
}

TEST(SimulatedUpstreamFaults, NonStreamingRequestsGetTheirOwnFormOfEachFault) {
  auto upstream = started({.chunks = 6});
  const std::string answer = SimulatedUpstream::answer_for("m", "q", 6);
  FaultExchange exchange;

  exchange.prepare(url(*upstream), chat_body("q", false), "cut_mid_stream");
  EXPECT_EQ(exchange.perform(), CURLE_PARTIAL_FILE);
  EXPECT_EQ(exchange.status(), 200);
  EXPECT_TRUE(json::parse(exchange.response(), nullptr, false).is_discarded());

  exchange.prepare(url(*upstream), chat_body("q", false), "malformed_sse");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(exchange.response(), SimulatedUpstream::kMalformedSseData);

  exchange.prepare(url(*upstream), chat_body("q", false), "huge_chunk;bytes=5000;after=2");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  std::string expected;
  for (const std::string& delta :
       SimulatedUpstream::expected_deltas("m", "q", 6, UpstreamFault::huge_chunk(5000, 2)))
    expected += delta;
  EXPECT_EQ(json::parse(exchange.response())["choices"][0]["message"]["content"], expected);

  exchange.prepare(url(*upstream), chat_body("q", false), "hang_mid_stream;ms=100");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(json::parse(exchange.response())["choices"][0]["message"]["content"], answer);

  exchange.prepare(url(*upstream), chat_body("q", false), "429");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(exchange.status(), 429);
}

TEST(SimulatedUpstreamFaults, StopEndsHungRequestsPromptly) {
  auto upstream = started({.chunks = 6, .threads = 2});
  std::vector<std::unique_ptr<FaultExchange>> exchanges;
  CURLM* multi = curl_multi_init();
  for (const char* fault : {"hang_before_headers", "hang_before_headers", "hang_mid_stream",
                            "hang_mid_stream;after=0"}) {
    exchanges.push_back(std::make_unique<FaultExchange>());
    exchanges.back()->prepare(url(*upstream), chat_body("q"), fault, /*timeout_ms=*/60'000);
    curl_multi_add_handle(multi, exchanges.back()->handle());
  }
  std::vector<CURLcode> results;
  std::thread client([&] {
    int running = 1;
    while (running > 0) {
      curl_multi_perform(multi, &running);
      if (running > 0) curl_multi_poll(multi, nullptr, 0, 100, nullptr);
    }
    int queued = 0;
    while (CURLMsg* message = curl_multi_info_read(multi, &queued)) {
      if (message->msg == CURLMSG_DONE) results.push_back(message->data.result);
    }
  });

  auto hung = [&] {
    auto counts = upstream->fault_counts();
    return counts["hang_before_headers"] + counts["hang_mid_stream"] == 4;
  };
  ASSERT_TRUE(testing::eventually(hung, std::chrono::seconds(30), std::chrono::milliseconds(10)));
  upstream->stop();
  client.join();
  for (auto& exchange : exchanges) curl_multi_remove_handle(multi, exchange->handle());
  curl_multi_cleanup(multi);

  ASSERT_EQ(results.size(), 4u);
  // Ended by the server going away, not by the client's 60 s timeout.
  for (CURLcode result : results) {
    EXPECT_NE(result, CURLE_OK);
    EXPECT_NE(result, CURLE_OPERATION_TIMEDOUT);
  }
}

// --- the plan ---

std::string observed_label(const FaultExchange& exchange, CURLcode result) {
  if (result == CURLE_PARTIAL_FILE) return "cut_mid_stream";
  if (result != CURLE_OK) return "curl error " + std::to_string(result);
  if (exchange.status() != 200) return "status_" + std::to_string(exchange.status());
  Stream stream = parse_stream(exchange.response());
  if (!stream.unparsable.empty()) return "malformed_sse";
  return stream.done ? "none" : "incomplete";
}

// What a client sees of `count` sequential requests, labelled like fault_counts().
std::vector<std::string> observe(SimulatedUpstream& upstream, int count) {
  std::vector<std::string> labels;
  FaultExchange exchange;
  for (int i = 0; i < count; ++i) {
    exchange.prepare(url(upstream), chat_body("q"));
    CURLcode result = exchange.perform();
    labels.push_back(observed_label(exchange, result));
  }
  return labels;
}

FaultInjectionOptions mixed_plan(FaultPlanOrder order, std::uint64_t seed) {
  return {.plan = {{UpstreamFault::rate_limited(0), 10},
                   {UpstreamFault::http_status(503), 5},
                   {UpstreamFault::cut_mid_stream(1), 5},
                   {UpstreamFault::malformed_sse(1), 5},
                   {UpstreamFault{}, 75}},
          .order = order,
          .seed = seed};
}

TEST(SimulatedUpstreamFaultPlan, SeededProportionsOverAThousandRequestsAreNearTheWeights) {
  auto upstream = started({.chunks = 3, .faults = mixed_plan(FaultPlanOrder::seeded_random, 42)});
  std::vector<std::string> labels = observe(*upstream, 1000);

  std::map<std::string, std::uint64_t> observed;
  for (const std::string& label : labels) ++observed[label];
  EXPECT_EQ(observed, upstream->fault_counts());
  // Binomial standard deviations are 9.5 (10%) and 6.9 (5%); 4 of them apart.
  EXPECT_NEAR(static_cast<double>(observed["status_429"]), 100, 38);
  EXPECT_NEAR(static_cast<double>(observed["status_503"]), 50, 28);
  EXPECT_NEAR(static_cast<double>(observed["cut_mid_stream"]), 50, 28);
  EXPECT_NEAR(static_cast<double>(observed["malformed_sse"]), 50, 28);
  EXPECT_NEAR(static_cast<double>(observed["none"]), 750, 55);
  for (std::size_t i = 0; i < labels.size(); ++i) {
    ASSERT_EQ(labels[i], fault_label(upstream->planned_fault(i))) << "request " << i;
  }
}

TEST(SimulatedUpstreamFaultPlan, TheSameSeedGivesTheSameSequenceAndAnotherSeedDoesNot) {
  auto first = started({.chunks = 2, .faults = mixed_plan(FaultPlanOrder::seeded_random, 7)});
  auto second = started({.chunks = 2, .faults = mixed_plan(FaultPlanOrder::seeded_random, 7)});
  auto other = started({.chunks = 2, .faults = mixed_plan(FaultPlanOrder::seeded_random, 8)});
  std::vector<std::string> first_labels = observe(*first, 300);
  EXPECT_EQ(first_labels, observe(*second, 300));
  EXPECT_NE(first_labels, observe(*other, 300));
}

TEST(SimulatedUpstreamFaultPlan, InterleavedPlanGivesExactProportionsSpreadEvenly) {
  auto upstream = started({.chunks = 2, .faults = mixed_plan(FaultPlanOrder::interleaved, 0)});
  std::vector<std::string> labels = observe(*upstream, 1000);
  std::map<std::string, std::uint64_t> expected = {{"status_429", 100}, {"status_503", 50},
                                                   {"cut_mid_stream", 50}, {"malformed_sse", 50},
                                                   {"none", 750}};
  EXPECT_EQ(upstream->fault_counts(), expected);
  // Every window of one plan cycle (100 requests) holds each fault its weight times.
  for (std::size_t start = 0; start + 100 <= labels.size(); start += 37) {
    auto in_window = [&](const std::string& label) {
      return std::count(labels.begin() + start, labels.begin() + start + 100, label);
    };
    EXPECT_EQ(in_window("status_429"), 10);
    EXPECT_EQ(in_window("cut_mid_stream"), 5);
  }
  // Spread evenly: consecutive 429s are a tenth of the cycle apart, give or
  // take one slot per plan entry (5); bunched faults would be up to 91 apart.
  std::optional<std::size_t> last_429;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] != "status_429") continue;
    if (last_429) {
      EXPECT_GE(i - *last_429, 5u) << "at request " << i;
      EXPECT_LE(i - *last_429, 15u) << "at request " << i;
    }
    last_429 = i;
  }
}

TEST(SimulatedUpstreamFaultPlan, AHeaderOverridesThePlanWithoutConsumingIt) {
  SimulatedUpstreamOptions options{.chunks = 3};
  options.faults.plan = {{UpstreamFault::http_status(500), 1}};
  auto upstream = started(options);
  FaultExchange exchange;
  exchange.prepare(url(*upstream), chat_body("q"), "none");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(exchange.status(), 200);
  exchange.prepare(url(*upstream), chat_body("q"), "502");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(exchange.status(), 502);
  exchange.prepare(url(*upstream), chat_body("q"));
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(exchange.status(), 500);
  std::map<std::string, std::uint64_t> expected = {
      {"none", 1}, {"status_502", 1}, {"status_500", 1}};
  EXPECT_EQ(upstream->fault_counts(), expected);
}

TEST(SimulatedUpstreamFaultPlan, TheFaultLogNamesEachValidRequestsPromptAndFaultInArrivalOrder) {
  SimulatedUpstreamOptions options{.chunks = 3};
  options.faults = {.plan = {{UpstreamFault::http_status(503), 1}, {UpstreamFault{}, 1}},
                    .order = FaultPlanOrder::interleaved,
                    .log_faults = true};
  auto upstream = started(options);
  FaultExchange exchange;
  for (const char* prompt : {"first", "second", "third"}) {
    exchange.prepare(url(*upstream), chat_body(prompt));
    ASSERT_EQ(exchange.perform(), CURLE_OK);
  }
  exchange.prepare(url(*upstream), chat_body("with header"), "502");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  exchange.prepare(url(*upstream), "not json");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  const auto log = upstream->fault_log();
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(log[0].last_user_text, "first");
  EXPECT_EQ(log[0].fault, "status_503");
  EXPECT_EQ(log[1].last_user_text, "second");
  EXPECT_EQ(log[1].fault, "none");
  EXPECT_EQ(log[2].fault, "status_503");
  EXPECT_EQ(log[3].last_user_text, "with header");
  EXPECT_EQ(log[3].fault, "status_502");
}

TEST(SimulatedUpstreamFaultPlan, TheFaultLogIsEmptyUnlessAskedFor) {
  SimulatedUpstreamOptions options{.chunks = 3};
  options.faults.plan = {{UpstreamFault::http_status(500), 1}};
  auto upstream = started(options);
  FaultExchange exchange;
  exchange.prepare(url(*upstream), chat_body("q"));
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(upstream->fault_counts().size(), 1u);
  EXPECT_TRUE(upstream->fault_log().empty());
}

TEST(SimulatedUpstreamFaultPlan, InvalidRequestsNeitherConsumeThePlanNorCount) {
  SimulatedUpstreamOptions options{.chunks = 3};
  options.faults = {.plan = {{UpstreamFault::http_status(503), 1}, {UpstreamFault{}, 1}},
                    .order = FaultPlanOrder::interleaved};
  auto upstream = started(options);
  FaultExchange exchange;
  exchange.prepare(url(*upstream), "not json");
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(exchange.status(), 400);
  EXPECT_TRUE(upstream->fault_counts().empty());
  exchange.prepare(url(*upstream), chat_body("q"));
  ASSERT_EQ(exchange.perform(), CURLE_OK);
  EXPECT_EQ(exchange.status(), fault_label(upstream->planned_fault(0)) == "status_503" ? 503 : 200);
}

TEST(SimulatedUpstreamFaultPlan, StartRejectsAPlanThatCannotBeFollowed) {
  for (const FaultInjectionOptions& faults :
       {FaultInjectionOptions{.plan = {{UpstreamFault::rate_limited(), 0}}},
        FaultInjectionOptions{.plan = {{UpstreamFault::http_status(200), 1}}},
        FaultInjectionOptions{.plan = {{UpstreamFault::slow(0), 1}}},
        FaultInjectionOptions{.plan = {{UpstreamFault::cut_mid_stream(-2), 1}}},
        FaultInjectionOptions{.plan = {{UpstreamFault{}, 1u << 21}},
                              .order = FaultPlanOrder::interleaved}}) {
    SimulatedUpstream upstream({.faults = faults});
    auto result = upstream.start();
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().code, ErrorCode::invalid_request);
  }
}

// --- nothing configured changes nothing ---

std::string normalized(std::string bytes) {
  return std::regex_replace(bytes, std::regex("\"created\":[0-9]+"), "\"created\":0");
}

TEST(SimulatedUpstreamFaultPlan, APlanOfOnlyNoneSendsTheSameBytesAsNoPlan) {
  auto plain = started({.chunks = 5});
  SimulatedUpstreamOptions options{.chunks = 5};
  options.faults.plan = {{UpstreamFault{}, 1}};
  auto planned = started(options);
  const std::vector<std::string> requests = {
      raw_post(chat_body("streamed"), {}, "close"),
      raw_post(R"({"model":"m","messages":[{"role":"user","content":"u"}],"stream":true,)"
               R"("stream_options":{"include_usage":true},"max_tokens":3})",
               {}, "close"),
      raw_post(chat_body("whole", false), {}, "close"),
      raw_post("{}", {}, "close"),
  };
  for (const std::string& request : requests) {
    SCOPED_TRACE(request);
    RawResponse expected = raw_exchange(plain->port(), request);
    RawResponse actual = raw_exchange(planned->port(), request);
    EXPECT_EQ(normalized(actual.bytes), normalized(expected.bytes));
    EXPECT_EQ(actual.end, WireEnd::closed);
  }
}

}  // namespace
}  // namespace cascade
