#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "embeddings/embeddings.h"
#include "support/env.h"
#include "support/scripted_http_server.h"

namespace cascade {
namespace {

using nlohmann::json;
using testing::RecordedRequest;
using testing::ScriptedHttpServer;
using testing::ScriptedResponse;

constexpr std::string_view kApiKey = "sk-proj-EMBEDKEY0123456789abcdef";

// OpenAI's /v1/embeddings response as api.openai.com sends it.
std::string embeddings_body(const std::vector<std::pair<int, std::vector<float>>>& items) {
  json data = json::array();
  for (const auto& [index, vector] : items) {
    data.push_back({{"object", "embedding"}, {"index", index}, {"embedding", vector}});
  }
  return json{{"object", "list"},
              {"data", data},
              {"model", "text-embedding-3-small"},
              {"usage", {{"prompt_tokens", 8}, {"total_tokens", 8}}}}
      .dump();
}

ScriptedResponse ok(const std::vector<std::pair<int, std::vector<float>>>& items) {
  return ScriptedResponse::http(200, "application/json", embeddings_body(items));
}

EnvLookup env_with_key() { return testing::env_of({{"TEST_EMBEDDINGS_KEY", std::string(kApiKey)}}); }

class OpenAiEmbedderTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(server.start()) << server.error(); }

  OpenAiEmbedderOptions options(std::size_t dimension = 3) {
    OpenAiEmbedderOptions o;
    o.base_url = server.base_url() + "/v1/";
    o.model = "text-embedding-3-small";
    o.api_key_env = "TEST_EMBEDDINGS_KEY";
    o.dimension = dimension;
    o.request_timeout_ms = 5000;
    return o;
  }

  std::unique_ptr<OpenAiEmbedder> embedder(std::size_t dimension = 3) {
    auto created = OpenAiEmbedder::create(options(dimension), env_with_key());
    EXPECT_TRUE(created) << created.error().message;
    return created ? std::move(*created) : nullptr;
  }

  ScriptedHttpServer server;
};

TEST_F(OpenAiEmbedderTest, PostsTheOpenAiWireFormatWithTheBearerKey) {
  server.enqueue(ok({{0, {1, 0, 0}}, {1, {0, 1, 0}}}));
  auto e = embedder();
  const std::vector<std::string> texts = {"first text", "second \"quoted\" text"};
  ASSERT_TRUE(e->embed(texts));

  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1u);
  const RecordedRequest& r = requests[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/v1/embeddings");
  EXPECT_EQ(r.header("Authorization"), "Bearer " + std::string(kApiKey));
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  const json body = json::parse(r.body);
  EXPECT_EQ(body["model"], "text-embedding-3-small");
  EXPECT_EQ(body["input"], json::array({"first text", "second \"quoted\" text"}));
  EXPECT_FALSE(body.contains("dimensions"));
}

TEST_F(OpenAiEmbedderTest, PlacesVectorsByTheirIndexNotTheirPosition) {
  server.enqueue(ok({{2, {0, 0, 2}}, {0, {3, 0, 0}}, {1, {0, 5, 0}}}));
  auto e = embedder();
  const std::vector<std::string> texts = {"a", "b", "c"};
  auto out = e->embed(texts);
  ASSERT_TRUE(out) << out.error().message;
  ASSERT_EQ(out->size(), 3u);
  EXPECT_EQ((*out)[0], (std::vector<float>{1, 0, 0}));  // and scaled to unit length
  EXPECT_EQ((*out)[1], (std::vector<float>{0, 1, 0}));
  EXPECT_EQ((*out)[2], (std::vector<float>{0, 0, 1}));
}

TEST_F(OpenAiEmbedderTest, SplitsLargeInputsIntoBatchesAndKeepsTheirOrder) {
  server.set_responder([](const RecordedRequest& r) {
    const json body = json::parse(r.body);
    std::vector<std::pair<int, std::vector<float>>> items;
    int i = 0;
    for (const auto& text : body["input"]) {
      items.push_back({i++, {static_cast<float>(std::stoi(text.get<std::string>())), 1, 0}});
    }
    return ok(items);
  });
  auto o = options();
  o.max_batch = 2;
  auto created = OpenAiEmbedder::create(o, env_with_key());
  ASSERT_TRUE(created);
  const std::vector<std::string> texts = {"1", "2", "3", "4", "5"};
  auto out = (*created)->embed(texts);
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ(server.requests().size(), 3u);
  for (int i = 0; i < 5; ++i) {
    const float x = static_cast<float>(i + 1);
    EXPECT_FLOAT_EQ((*out)[i][0], x / std::sqrt(x * x + 1)) << i;
  }
}

TEST_F(OpenAiEmbedderTest, LearnsTheDimensionFromAProbeAndPutsItInTheTag) {
  server.enqueue(ok({{0, {0.1f, 0.2f, 0.3f, 0.4f}}}));
  auto e = embedder(0);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->dimension(), 4u);
  EXPECT_EQ(e->tag(), "openai-compatible:text-embedding-3-small:d4");
  EXPECT_EQ(json::parse(server.requests().at(0).body)["input"].size(), 1u);
}

TEST_F(OpenAiEmbedderTest, TurnsErrorStatusesIntoErrorsWithoutTheKey) {
  // A server echoing the key back (some proxies do) must not leak it.
  server.enqueue(ScriptedResponse::http(
      401, "application/json",
      R"({"error":{"message":"Incorrect API key provided: )" + std::string(kApiKey) +
          R"(.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}})"));
  server.enqueue(ScriptedResponse::http(500, "text/plain", "upstream exploded"));
  server.enqueue(ScriptedResponse::http(504, "text/plain", "gateway timeout"));
  auto e = embedder();

  // Every log line goes to a buffer too: the key must appear in none.
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  auto previous = spdlog::default_logger();
  auto capture = std::make_shared<spdlog::logger>("capture", sink);
  capture->set_level(spdlog::level::trace);
  spdlog::set_default_logger(capture);

  const std::vector<std::string> texts = {"x"};
  auto unauthorized = e->embed(texts);
  auto server_error = e->embed(texts);
  auto gateway = e->embed(texts);
  spdlog::set_default_logger(previous);

  ASSERT_FALSE(unauthorized);
  EXPECT_EQ(unauthorized.error().code, ErrorCode::provider_error);
  EXPECT_EQ(unauthorized.error().http_status, 401);
  EXPECT_NE(unauthorized.error().message.find("Incorrect API key"), std::string::npos);
  EXPECT_EQ(unauthorized.error().message.find(kApiKey), std::string::npos);
  ASSERT_FALSE(server_error);
  EXPECT_EQ(server_error.error().code, ErrorCode::provider_error);
  EXPECT_EQ(server_error.error().http_status, 500);
  EXPECT_NE(server_error.error().message.find("upstream exploded"), std::string::npos);
  ASSERT_FALSE(gateway);
  EXPECT_EQ(gateway.error().code, ErrorCode::timeout);
  EXPECT_EQ(log.str().find(kApiKey), std::string::npos);
}

TEST_F(OpenAiEmbedderTest, ReportsRetryAfterOfARateLimit) {
  const std::string body = R"({"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}})";
  ScriptedResponse limited;
  limited.pieces.push_back({testing::status_line(429) +
                            "\r\nContent-Type: application/json\r\nRetry-After: 7\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body});
  server.enqueue(limited);
  auto e = embedder();
  const std::vector<std::string> texts = {"x"};
  auto out = e->embed(texts);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().http_status, 429);
  EXPECT_EQ(out.error().retry_after_ms, 7000);
}

TEST_F(OpenAiEmbedderTest, RejectsAResponseOfTheWrongDimension) {
  server.enqueue(ok({{0, {1, 0}}}));
  auto e = embedder(3);
  const std::vector<std::string> texts = {"x"};
  auto out = e->embed(texts);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::provider_error);
}

TEST_F(OpenAiEmbedderTest, SendsNoAuthorizationWithoutAKeyAndFailsOnAMissingVariable) {
  server.enqueue(ok({{0, {1, 0, 0}}}));
  auto o = options();
  o.api_key_env = "";
  auto keyless = OpenAiEmbedder::create(o, env_with_key());
  ASSERT_TRUE(keyless);
  const std::vector<std::string> texts = {"x"};
  ASSERT_TRUE((*keyless)->embed(texts));
  EXPECT_FALSE(server.requests().at(0).header("Authorization"));

  o.api_key_env = "UNSET_EMBEDDINGS_KEY";
  auto missing = OpenAiEmbedder::create(o, env_with_key());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::invalid_request);
}

TEST(OpenAiEmbedder, ReportsAnUnreachableServerAsUnavailable) {
  ScriptedHttpServer server;
  ASSERT_TRUE(server.start());
  const std::string url = server.base_url() + "/v1";
  server.stop();  // nothing listens on the port any more
  OpenAiEmbedderOptions o;
  o.base_url = url;
  o.model = "m";
  o.dimension = 3;
  auto e = OpenAiEmbedder::create(o, env_with_key());
  ASSERT_TRUE(e);
  const std::vector<std::string> texts = {"x"};
  auto out = (*e)->embed(texts);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code, ErrorCode::unavailable);
}

TEST(EmbeddingsWireFormat, BuildsTheRequestWithoutADoubleSlash) {
  const std::vector<std::string> texts = {"hello"};
  const auto r = build_embeddings_request("http://127.0.0.1:11434/v1/", "nomic-embed-text", texts, "", 256);
  EXPECT_EQ(r.url, "http://127.0.0.1:11434/v1/embeddings");
  for (const auto& h : r.headers) EXPECT_EQ(h.find("Authorization"), std::string::npos);
  const json body = json::parse(r.body);
  EXPECT_EQ(body["dimensions"], 256);
  EXPECT_EQ(body["input"][0], "hello");
}

TEST(EmbeddingsWireFormat, RejectsMalformedResponses) {
  const auto parse = [](std::string_view body, std::size_t count) { return parse_embeddings_response(200, body, count); };
  EXPECT_FALSE(parse("not json", 1));
  EXPECT_FALSE(parse(R"({"object":"list"})", 1));                                             // no data
  EXPECT_FALSE(parse(R"({"data":[{"index":0,"embedding":[1,0]}]})", 2));                      // too few
  EXPECT_FALSE(parse(R"({"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[1]}]})", 2));  // repeated index
  EXPECT_FALSE(parse(R"({"data":[{"index":5,"embedding":[1]}]})", 1));                        // out of range
  EXPECT_FALSE(parse(R"({"data":[{"index":0,"embedding":[1,"x"]}]})", 1));                    // not a number
  EXPECT_FALSE(parse(R"({"data":[{"index":0,"embedding":[0,0]}]})", 1));                      // zero vector
  EXPECT_FALSE(parse(R"({"data":[{"index":0,"embedding":[1,0]},{"index":1,"embedding":[1]}]})", 2));  // ragged
  EXPECT_FALSE(parse(R"({"data":[{"index":0,"embedding":"base64=="}]})", 1));                 // not float format
}

TEST(EmbeddingsWireFormat, AcceptsItemsWithoutIndexInInputOrder) {
  auto out = parse_embeddings_response(200, R"({"data":[{"embedding":[2,0]},{"embedding":[0,-3]}]})", 2);
  ASSERT_TRUE(out) << out.error().message;
  EXPECT_EQ((*out)[0], (std::vector<float>{1, 0}));
  EXPECT_EQ((*out)[1], (std::vector<float>{0, -1}));
}

}  // namespace
}  // namespace cascade
