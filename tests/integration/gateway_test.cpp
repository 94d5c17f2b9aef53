// `cascade gateway` in front of a whole pipeline in one process (the
// embedded broker, a worker, the ledger, the simulated upstream): what the
// official SDKs cannot easily show (tests/gateway/sdk_test.sh has them):
// tenants from keys and revocation, 429 at max_in_flight, timeouts and
// disconnects cancelled, 413, shutdown.
#include <gtest/gtest.h>

#include "auth/api_keys.h"
#include "events/cancel_event.h"
#include "gateway/gateway.h"
#include "integration/pipeline_fixture.h"
#include "support/http_call.h"

namespace cascade::testing {
namespace {

using json = nlohmann::json;

class GatewayTest : public PipelineTest {
 protected:
  void start_gateway(bool with_keys = true) {
    keys_ = std::make_shared<ApiKeyTable>();
    if (with_keys) {
      auto follower = follow_api_keys(config_.kafka, bootstrap_, config_.kafka.api_keys_topic, keys_);
      ASSERT_TRUE(follower) << follower.error().message;
      keys_follower_ = std::move(*follower);
    }
    config_.gateway.auth = with_keys ? "keys" : "none";
    config_.gateway.listen = "127.0.0.1:0";
    config_.gateway.reply_topic = "gateway.test.replies." + std::to_string(instance_);
    GatewayOptions options;
    options.config = &config_;
    options.bootstrap = bootstrap_;
    options.broker = broker_.get();
    options.catalog = catalog_.get();
    if (with_keys) options.keys = keys_;
    auto gateway = Gateway::start(std::move(options));
    ASSERT_TRUE(gateway) << gateway.error().message;
    gateway_ = std::move(*gateway);
  }

  void TearDown() override {
    if (gateway_) gateway_->stop();
    gateway_.reset();
    if (keys_follower_) keys_follower_->stop();
    PipelineTest::TearDown();
  }

  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(gateway_->port()) + path; }

  // A key published on the keys topic, as `cascade keys create` does.
  std::string create_key(const std::string& tenant) {
    auto key = generate_api_key(tenant, "test", KeyRole::tenant, now_ms());
    EXPECT_TRUE(key);
    publish_key(key->record);
    return key->key;
  }
  void publish_key(const ApiKeyRecord& record) {
    auto ok = produce_record_and_wait(config_.kafka, bootstrap_, config_.kafka.api_keys_topic, record.key_id,
                                      make_api_key_record(record), 10000);
    ASSERT_TRUE(ok) << ok.error().message;
  }

  static std::string chat(const std::string& text, bool stream = false) {
    return json({{"model", "auto"}, {"stream", stream}, {"messages", json::array({{{"role", "user"}, {"content", text}}})}})
        .dump();
  }

  HttpCallResult post_chat(const std::string& key, const std::string& body) {
    return http_call("POST", url("/v1/chat/completions"), body,
                     {"Content-Type: application/json", "Authorization: Bearer " + key});
  }

  // The cancel events on the cancels topic so far.
  std::vector<CancelEvent> cancels() {
    std::vector<CancelEvent> out;
    auto read = read_topic_to_end(config_.kafka, bootstrap_, config_.kafka.cancels_topic, [&](const KafkaRecord& r) {
      if (auto c = parse_cancel_event(r.payload())) out.push_back(*c);
    });
    EXPECT_TRUE(read) << read.error().message;
    return out;
  }

  std::shared_ptr<ApiKeyTable> keys_;
  std::unique_ptr<TopicFollower> keys_follower_;
  std::unique_ptr<Gateway> gateway_;
};

TEST_F(GatewayTest, ARequestIsBilledToItsKeysTenantAndARevokedKeyIsRefusedWithinASecond) {
  start_pipeline();
  start_gateway();
  auto created = generate_api_key("acme", "web", KeyRole::tenant, now_ms());
  ASSERT_TRUE(created);
  publish_key(created->record);
  ASSERT_TRUE(eventually([&] { return keys_->authenticate(created->key).has_value(); }, std::chrono::seconds(10)));
  const auto ok = post_chat(created->key, chat("What is the capital of Peru?"));
  ASSERT_EQ(ok.status, 200) << ok.body;
  const json body = json::parse(ok.body);
  EXPECT_EQ(body["object"], "chat.completion");
  ASSERT_TRUE(wait_ledger(1, std::chrono::seconds(10)));
  EXPECT_EQ(aggregator_.tenant_total("acme").requests, 1u);

  // Revoked on the topic: refused as soon as the gateway has followed it.
  ApiKeyRecord revoked = created->record;
  revoked.revoked_ms = now_ms();
  const auto revoked_at = std::chrono::steady_clock::now();
  publish_key(revoked);
  ASSERT_TRUE(eventually([&] { return post_chat(created->key, chat("again")).status == 401; }, std::chrono::seconds(5)));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - revoked_at).count();
  std::printf("revocation took effect after %.3f s\n", seconds);
  EXPECT_LT(seconds, 1.0);
  const auto refused = post_chat(created->key, chat("again"));
  EXPECT_EQ(json::parse(refused.body)["error"]["type"], "authentication_error");
  EXPECT_EQ(post_chat("", chat("no key")).status, 401);
}

TEST_F(GatewayTest, OverMaxInFlightTheGatewayAnswers429WithRetryAfter) {
  chunk_delay_ms = 150;  // each answer streams for over a second
  start_pipeline();
  config_.gateway.max_in_flight = 2;
  start_gateway(/*with_keys=*/false);
  RawHttpClient first(gateway_->port()), second(gateway_->port());
  first.post("/v1/chat/completions", chat("Tell me about rivers.", true));
  second.post("/v1/chat/completions", chat("Tell me about mountains.", true));
  ASSERT_TRUE(first.read_until("data: ") && second.read_until("data: "));
  auto busy = http_call("POST", url("/v1/chat/completions"), chat("A third one"), {"Content-Type: application/json"});
  EXPECT_EQ(busy.status, 429) << busy.body;
  EXPECT_EQ(busy.headers["retry-after"], "1");
  EXPECT_EQ(json::parse(busy.body)["error"]["type"], "rate_limit_error");
  EXPECT_EQ(gateway_->stats().rejected_busy, 1u);
  // Once they are answered there is room again.
  ASSERT_TRUE(first.read_until("data: [DONE]") && second.read_until("data: [DONE]"));
  ASSERT_TRUE(eventually([&] { return gateway_->stats().in_flight == 0; }, std::chrono::seconds(5)));
  EXPECT_EQ(http_call("POST", url("/v1/chat/completions"), chat("A fourth one"), {"Content-Type: application/json"}).status,
            200);
}

TEST_F(GatewayTest, ARequestWithoutAnAnswerInTimeGets504AndIsCancelled) {
  chunk_delay_ms = 400;
  start_pipeline();
  config_.gateway.request_timeout_ms = 500;
  start_gateway(/*with_keys=*/false);
  auto late = http_call("POST", url("/v1/chat/completions"), chat("A slow question"), {"Content-Type: application/json"});
  EXPECT_EQ(late.status, 504) << late.body;
  EXPECT_EQ(json::parse(late.body)["error"]["code"], "timeout");
  const std::string id = late.headers["x-cascade-request-id"];
  ASSERT_FALSE(id.empty());
  std::vector<CancelEvent> found;
  ASSERT_TRUE(eventually([&] { return !(found = cancels()).empty(); }, std::chrono::seconds(5)));
  EXPECT_EQ(found[0].id, id);
  EXPECT_EQ(found[0].tenant, "default");
  EXPECT_EQ(found[0].reason, "timeout");
}

TEST_F(GatewayTest, AClientThatLeavesMidStreamHasItsRequestCancelled) {
  chunk_delay_ms = 200;
  start_pipeline();
  start_gateway(/*with_keys=*/false);
  RawHttpClient client(gateway_->port());
  client.post("/v1/chat/completions", chat("Explain tides in detail.", true));
  ASSERT_TRUE(client.read_until("\"content\":\"[simulated"));
  const auto header_end = client.received().find("x-cascade-request-id: ");
  ASSERT_NE(header_end, std::string::npos);
  const std::string id = client.received().substr(header_end + 22, client.received().find('\r', header_end) - header_end - 22);
  client.close();
  std::vector<CancelEvent> found;
  ASSERT_TRUE(eventually([&] { return !(found = cancels()).empty(); }, std::chrono::seconds(5)));
  EXPECT_EQ(found[0].id, id);
  EXPECT_EQ(found[0].reason, "client_closed");
  EXPECT_EQ(gateway_->stats().in_flight, 0u);
}

TEST_F(GatewayTest, ABodyOverTheLimitGets413AndUnknownPathsAndMethodsTheirOwnStatus) {
  start_pipeline();
  config_.gateway.max_body_bytes = 2048;
  start_gateway(/*with_keys=*/false);
  const auto big = http_call("POST", url("/v1/chat/completions"), chat(std::string(4096, 'x')),
                             {"Content-Type: application/json"});
  EXPECT_EQ(big.status, 413);
  EXPECT_EQ(http_call("GET", url("/v2/nothing")).status, 404);
  EXPECT_EQ(http_call("GET", url("/v1/chat/completions")).status, 405);
  const auto anthropic = http_call("POST", url("/v1/messages"), "not json", {"Content-Type: application/json"});
  EXPECT_EQ(anthropic.status, 400);
  EXPECT_EQ(json::parse(anthropic.body)["type"], "error");
  EXPECT_EQ(http_call("GET", url("/healthz")).status, 200);
  EXPECT_EQ(http_call("GET", url("/readyz")).status, 200);
  EXPECT_NE(http_call("GET", url("/metrics")).body.find("cascade_gateway_responses_total"), std::string::npos);
}

TEST_F(GatewayTest, StoppingTheGatewayAnswersWaitingClientsAndCancelsTheirRequests) {
  chunk_delay_ms = 300;
  start_pipeline();
  start_gateway(/*with_keys=*/false);
  RawHttpClient client(gateway_->port());
  client.post("/v1/chat/completions", chat("A question asked just before a restart"));
  ASSERT_TRUE(eventually([&] { return gateway_->stats().in_flight == 1; }, std::chrono::seconds(5)));
  gateway_->stop();
  EXPECT_TRUE(client.read_until("HTTP/1.1 503", std::chrono::seconds(5))) << client.received();
  std::vector<CancelEvent> found;
  ASSERT_TRUE(eventually([&] { return !(found = cancels()).empty(); }, std::chrono::seconds(5)));
  EXPECT_EQ(found[0].reason, "shutdown");
}

}  // namespace
}  // namespace cascade::testing
