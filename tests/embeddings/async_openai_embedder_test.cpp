// AsyncOpenAiEmbedder against a real local HTTP server speaking OpenAI's
// /v1/embeddings wire format, driven the way a worker drives its loop.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <thread>

#include "embeddings/embeddings.h"
#include "providers/provider.h"
#include "support/env.h"
#include "support/http_drive.h"
#include "support/scripted_http_server.h"

namespace cascade {
namespace {

using nlohmann::json;
using testing::RecordedRequest;
using testing::ScriptedHttpServer;
using testing::ScriptedResponse;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kApiKey = "sk-proj-ASYNCEMBEDKEY0123456789";

std::string embeddings_body(const std::vector<std::pair<int, std::vector<float>>>& items) {
  json data = json::array();
  for (const auto& [index, vector] : items) {
    data.push_back({{"object", "embedding"}, {"index", index}, {"embedding", vector}});
  }
  return json{{"object", "list"}, {"data", data}, {"model", "text-embedding-3-small"},
              {"usage", {{"prompt_tokens", 4}, {"total_tokens", 4}}}}
      .dump();
}

ScriptedResponse ok(const std::vector<std::pair<int, std::vector<float>>>& items,
                    std::chrono::milliseconds delay = {}) {
  auto r = ScriptedResponse::http(200, "application/json", embeddings_body(items));
  r.pieces.front().delay_before = delay;
  return r;
}

// A response with extra headers, as a rate-limiting server sends it.
ScriptedResponse with_headers(int status, const std::string& headers, const std::string& body) {
  ScriptedResponse r;
  r.pieces.push_back({testing::status_line(status) + "\r\nContent-Type: application/json\r\n" + headers +
                      "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body});
  return r;
}

EnvLookup env_with_key() { return testing::env_of({{"TEST_ASYNC_EMBEDDINGS_KEY", std::string(kApiKey)}}); }

// Every outcome a call delivered; a test checks there is exactly one.
struct Outcomes {
  std::vector<Result<std::vector<Embedding>>> results;
  AsyncOpenAiEmbedder::Callback callback() {
    return [this](Result<std::vector<Embedding>> r) { results.push_back(std::move(r)); };
  }
};

class AsyncOpenAiEmbedderTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server.start()) << server.error(); }

  OpenAiEmbedderOptions options(std::size_t dimension = 3) {
    OpenAiEmbedderOptions o;
    o.base_url = server.base_url() + "/v1";
    o.model = "text-embedding-3-small";
    o.api_key_env = "TEST_ASYNC_EMBEDDINGS_KEY";
    o.dimension = dimension;
    o.request_timeout_ms = 5000;
    o.connect_timeout_ms = 1000;
    return o;
  }

  std::unique_ptr<AsyncOpenAiEmbedder> embedder(OpenAiEmbedderOptions o) {
    auto created = AsyncOpenAiEmbedder::create(std::move(o), env_with_key());
    EXPECT_TRUE(created) << created.error().message;
    return created ? std::move(*created) : nullptr;
  }

  // Polls the loop until `outcomes` has `n` results (bounded, so a broken
  // build fails instead of hanging).
  bool drive_until(Outcomes& outcomes, std::size_t n = 1, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    return testing::drive_until(http, [&] { return outcomes.results.size() >= n; }, limit);
  }

  void drive_for(std::chrono::milliseconds duration) { testing::drive_for(http, duration); }

  ScriptedHttpServer server;
  HttpClient http;
};

TEST_F(AsyncOpenAiEmbedderTest, PostsTheOpenAiWireFormatAndCallsBackOnceFromThePoll) {
  server.enqueue(ok({{0, {3, 0, 4}}, {1, {0, 2, 0}}}));
  auto e = embedder(options());
  Outcomes outcomes;
  auto call = e->start(http, {"first text", "second \"quoted\" text"}, outcomes.callback());
  ASSERT_TRUE(call) << call.error().message;
  EXPECT_TRUE(outcomes.results.empty()) << "never called back from inside start()";
  ASSERT_TRUE(drive_until(outcomes));
  drive_for(std::chrono::milliseconds(100));
  ASSERT_EQ(outcomes.results.size(), 1u);
  ASSERT_TRUE(outcomes.results[0]) << outcomes.results[0].error().message;
  const auto& vectors = *outcomes.results[0];
  ASSERT_EQ(vectors.size(), 2u);
  EXPECT_FLOAT_EQ(vectors[0][0], 0.6f);  // scaled to unit length
  EXPECT_FLOAT_EQ(vectors[0][2], 0.8f);
  EXPECT_EQ(vectors[1], (std::vector<float>{0, 1, 0}));

  const RecordedRequest r = server.requests().at(0);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/v1/embeddings");
  EXPECT_EQ(r.header("Authorization"), "Bearer " + std::string(kApiKey));
  const json body = json::parse(r.body);
  EXPECT_EQ(body["model"], "text-embedding-3-small");
  EXPECT_EQ(body["input"], json::array({"first text", "second \"quoted\" text"}));
  EXPECT_EQ(body["encoding_format"], "float");
  EXPECT_EQ(e->tag(), "openai-compatible:text-embedding-3-small:d3");
}

TEST_F(AsyncOpenAiEmbedderTest, PlacesVectorsAnsweredOutOfOrderByTheirIndex) {
  server.enqueue(ok({{2, {0, 0, 2}}, {0, {3, 0, 0}}, {1, {0, 5, 0}}}));
  auto e = embedder(options());
  Outcomes outcomes;
  ASSERT_TRUE(e->start(http, {"a", "b", "c"}, outcomes.callback()));
  ASSERT_TRUE(drive_until(outcomes));
  ASSERT_TRUE(outcomes.results[0]);
  EXPECT_EQ((*outcomes.results[0])[0], (std::vector<float>{1, 0, 0}));
  EXPECT_EQ((*outcomes.results[0])[1], (std::vector<float>{0, 1, 0}));
  EXPECT_EQ((*outcomes.results[0])[2], (std::vector<float>{0, 0, 1}));
}

TEST_F(AsyncOpenAiEmbedderTest, LearnsTheDimensionFromTheFirstAnswerAndRefusesAnotherOneLater) {
  server.enqueue(ok({{0, {1, 1, 1, 1}}}));
  server.enqueue(ok({{0, {1, 0, 0}}}));
  auto e = embedder(options(0));
  EXPECT_EQ(e->dimension(), 0u);
  EXPECT_EQ(e->tag(), "") << "no tag before the vector space is known";

  Outcomes first;
  ASSERT_TRUE(e->start(http, {"x"}, first.callback()));
  ASSERT_TRUE(drive_until(first));
  ASSERT_TRUE(first.results[0]) << first.results[0].error().message;
  EXPECT_EQ(e->dimension(), 4u);
  EXPECT_EQ(e->tag(), "openai-compatible:text-embedding-3-small:d4");

  Outcomes second;
  ASSERT_TRUE(e->start(http, {"y"}, second.callback()));
  ASSERT_TRUE(drive_until(second));
  ASSERT_FALSE(second.results[0]) << "a vector of another dimension is not comparable";
  EXPECT_EQ(second.results[0].error().code, ErrorCode::provider_error);
  EXPECT_EQ(e->dimension(), 4u);
}

TEST_F(AsyncOpenAiEmbedderTest, ARateLimitCarriesItsRetryAfterAndAServerErrorItsStatus) {
  server.enqueue(with_headers(429, "Retry-After: 7\r\n",
                              R"({"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}})"));
  server.enqueue(with_headers(429, "retry-after-ms: 250\r\n", R"({"error":"slow down"})"));
  server.enqueue(ScriptedResponse::http(500, "text/plain", "upstream exploded"));
  auto e = embedder(options());

  Outcomes outcomes;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(e->start(http, {"x"}, outcomes.callback()));
    ASSERT_TRUE(drive_until(outcomes, i + 1));
  }
  ASSERT_FALSE(outcomes.results[0]);
  EXPECT_EQ(outcomes.results[0].error().code, ErrorCode::provider_error);
  EXPECT_EQ(outcomes.results[0].error().http_status, 429);
  EXPECT_EQ(outcomes.results[0].error().retry_after_ms, 7000);
  EXPECT_NE(outcomes.results[0].error().message.find("Rate limit reached"), std::string::npos);
  ASSERT_FALSE(outcomes.results[1]);
  EXPECT_EQ(outcomes.results[1].error().retry_after_ms, 250);
  ASSERT_FALSE(outcomes.results[2]);
  EXPECT_EQ(outcomes.results[2].error().http_status, 500);
  EXPECT_EQ(outcomes.results[2].error().retry_after_ms, -1);
  EXPECT_NE(outcomes.results[2].error().message.find("upstream exploded"), std::string::npos);
}

TEST_F(AsyncOpenAiEmbedderTest, AKeyEchoedByTheServerIsScrubbedFromTheError) {
  server.enqueue(ScriptedResponse::http(
      401, "application/json",
      R"({"error":{"message":"Incorrect API key provided: )" + std::string(kApiKey) + R"(."}})"));
  auto e = embedder(options());
  Outcomes outcomes;
  ASSERT_TRUE(e->start(http, {"x"}, outcomes.callback()));
  ASSERT_TRUE(drive_until(outcomes));
  ASSERT_FALSE(outcomes.results[0]);
  EXPECT_EQ(outcomes.results[0].error().http_status, 401);
  EXPECT_NE(outcomes.results[0].error().message.find("Incorrect API key"), std::string::npos);
  EXPECT_EQ(outcomes.results[0].error().message.find(kApiKey), std::string::npos);
}

TEST_F(AsyncOpenAiEmbedderTest, AConnectionDroppedMidAnswerIsUnavailableAndReportedOnce) {
  const std::string whole = ok({{0, {1, 0, 0}}}).bytes();
  ScriptedResponse cut;
  cut.pieces.push_back({whole.substr(0, whole.size() / 2)});
  cut.end = testing::ConnectionEnd::reset;
  server.enqueue(cut);
  auto e = embedder(options());
  Outcomes outcomes;
  ASSERT_TRUE(e->start(http, {"x"}, outcomes.callback()));
  ASSERT_TRUE(drive_until(outcomes));
  drive_for(std::chrono::milliseconds(100));
  ASSERT_EQ(outcomes.results.size(), 1u);
  ASSERT_FALSE(outcomes.results[0]);
  EXPECT_EQ(outcomes.results[0].error().code, ErrorCode::unavailable);
}

TEST_F(AsyncOpenAiEmbedderTest, ASlowServerTimesOutAfterRequestTimeoutMs) {
  server.enqueue(ok({{0, {1, 0, 0}}}, std::chrono::milliseconds(3000)));
  auto o = options();
  o.request_timeout_ms = 200;
  auto e = embedder(o);
  Outcomes outcomes;
  const auto started = Clock::now();
  ASSERT_TRUE(e->start(http, {"x"}, outcomes.callback()));
  ASSERT_TRUE(drive_until(outcomes));
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  ASSERT_FALSE(outcomes.results[0]);
  EXPECT_EQ(outcomes.results[0].error().code, ErrorCode::timeout);
  EXPECT_GE(took.count(), 150);
  EXPECT_LT(took.count(), 2000) << "the call ends at its timeout, not when the server answers";
  drive_for(std::chrono::milliseconds(100));
  EXPECT_EQ(outcomes.results.size(), 1u);
}

// A listening socket whose accept queue is full: the kernel drops further
// SYNs, so a connect to it hangs until the client gives up.
class FullListener {
 public:
  FullListener() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 0) != 0) {
      return;
    }
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    // Fill the queue with connections nobody accepts.
    for (int i = 0; i < 4; ++i) {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
      fillers_.push_back(fd);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ~FullListener() {
    for (const int fd : fillers_) ::close(fd);
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }
  std::uint16_t port() const { return port_; }

 private:
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::vector<int> fillers_;
};

TEST_F(AsyncOpenAiEmbedderTest, AServerThatNeverCompletesTheConnectionTimesOutAtConnectTimeoutMs) {
  FullListener full;
  ASSERT_NE(full.port(), 0);
  auto o = options();
  o.base_url = "http://127.0.0.1:" + std::to_string(full.port()) + "/v1";
  o.connect_timeout_ms = 300;
  o.request_timeout_ms = 10000;
  auto e = embedder(o);
  Outcomes outcomes;
  const auto started = Clock::now();
  ASSERT_TRUE(e->start(http, {"x"}, outcomes.callback()));
  ASSERT_TRUE(drive_until(outcomes));
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  ASSERT_FALSE(outcomes.results[0]);
  EXPECT_EQ(outcomes.results[0].error().code, ErrorCode::timeout) << outcomes.results[0].error().message;
  EXPECT_LT(took.count(), 5000) << "connect_timeout_ms, not request_timeout_ms, ended the call";
}

TEST_F(AsyncOpenAiEmbedderTest, AnUnreachableServerIsUnavailable) {
  const std::string url = server.base_url() + "/v1";
  server.stop();  // nothing listens on the port any more
  auto o = options();
  o.base_url = url;
  auto e = embedder(o);
  Outcomes outcomes;
  ASSERT_TRUE(e->start(http, {"x"}, outcomes.callback()));
  ASSERT_TRUE(drive_until(outcomes));
  ASSERT_FALSE(outcomes.results[0]);
  EXPECT_EQ(outcomes.results[0].error().code, ErrorCode::unavailable);
}

TEST_F(AsyncOpenAiEmbedderTest, ACancelledCallNeverCallsBack) {
  server.enqueue(ok({{0, {1, 0, 0}}}, std::chrono::milliseconds(300)));
  auto e = embedder(options());
  Outcomes outcomes;
  auto call = e->start(http, {"x"}, outcomes.callback());
  ASSERT_TRUE(call);
  // Cancelled while the server is answering.
  testing::drive_until(http, [&] { return !server.requests().empty(); }, std::chrono::seconds(10));
  ASSERT_EQ(server.requests().size(), 1u);
  http.cancel(*call);
  drive_for(std::chrono::milliseconds(600));  // past the server's answer
  EXPECT_TRUE(outcomes.results.empty());
  EXPECT_FALSE(http.running(*call));
}

TEST_F(AsyncOpenAiEmbedderTest, ManyCallsRunAtOnceOnOneLoop) {
  // Each answer takes 300 ms; 16 of them one after another would take 4.8 s.
  server.set_responder([](const RecordedRequest& r) {
    const json body = json::parse(r.body);
    const float x = static_cast<float>(std::stoi(body["input"][0].get<std::string>()));
    return ok({{0, {x, 1, 0}}}, std::chrono::milliseconds(300));
  });
  auto e = embedder(options());
  constexpr int kCalls = 16;
  std::vector<std::optional<Result<std::vector<Embedding>>>> by_call(kCalls);
  int answered = 0;
  const auto started = Clock::now();
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(e->start(http, {std::to_string(i + 1)}, [&, i](Result<std::vector<Embedding>> r) {
      EXPECT_FALSE(by_call[i]) << "call " << i << " answered twice";
      by_call[i] = std::move(r);
      ++answered;
    }));
  }
  testing::drive_until(http, [&] { return answered >= kCalls; }, std::chrono::seconds(20));
  ASSERT_EQ(answered, kCalls);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  EXPECT_LT(took.count(), 2500) << "calls overlap on the loop";
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(by_call[i] && *by_call[i]) << i;
    const float x = static_cast<float>(i + 1);
    EXPECT_FLOAT_EQ((**by_call[i])[0][0], x / std::sqrt(x * x + 1)) << "each call gets its own answer";
  }
}

TEST_F(AsyncOpenAiEmbedderTest, EmptyInputIsRefusedWithoutACall) {
  auto e = embedder(options());
  Outcomes outcomes;
  auto call = e->start(http, {}, outcomes.callback());
  ASSERT_FALSE(call);
  EXPECT_EQ(call.error().code, ErrorCode::invalid_request);
  drive_for(std::chrono::milliseconds(50));
  EXPECT_TRUE(outcomes.results.empty());
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(AsyncOpenAiEmbedderTest, BlockingEmbedSplitsIntoBatchesAndLearnsTheDimension) {
  server.set_responder([](const RecordedRequest& r) {
    const json body = json::parse(r.body);
    std::vector<std::pair<int, std::vector<float>>> items;
    int i = 0;
    for (const auto& text : body["input"]) {
      items.push_back({i++, {static_cast<float>(std::stoi(text.get<std::string>())), 1}});
    }
    return ok(items);
  });
  auto o = options(0);
  o.max_batch = 2;
  auto e = embedder(o);
  const std::vector<std::string> texts = {"1", "2", "3", "4", "5"};
  auto out = e->embed(texts);
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(server.requests().size(), 3u);
  ASSERT_EQ(out->size(), 5u);
  EXPECT_EQ(e->dimension(), 2u);
  for (int i = 0; i < 5; ++i) {
    const float x = static_cast<float>(i + 1);
    EXPECT_FLOAT_EQ((*out)[i][0], x / std::sqrt(x * x + 1)) << i;
  }
}

TEST(AsyncOpenAiEmbedder, NeedsAUrlAModelAndANamedKeyThatIsSet) {
  OpenAiEmbedderOptions o;
  o.model = "m";
  EXPECT_FALSE(AsyncOpenAiEmbedder::create(o, env_with_key()));
  o.base_url = "http://127.0.0.1:1/v1";
  o.model = "";
  EXPECT_FALSE(AsyncOpenAiEmbedder::create(o, env_with_key()));
  o.model = "m";
  o.api_key_env = "UNSET_EMBEDDINGS_KEY";
  auto missing = AsyncOpenAiEmbedder::create(o, env_with_key());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::invalid_request);
  EXPECT_NE(missing.error().message.find("UNSET_EMBEDDINGS_KEY"), std::string::npos);
  o.api_key_env = "";
  EXPECT_TRUE(AsyncOpenAiEmbedder::create(o, env_with_key())) << "no key: a local server";
}

}  // namespace
}  // namespace cascade
