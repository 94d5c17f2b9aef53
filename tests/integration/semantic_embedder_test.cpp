// The semantic cache with a remote embedder in the running pipeline: a worker
// configured with cache.semantic.embedder kind openai embeds prompts through
// a local server speaking OpenAI's /v1/embeddings format, on its own event
// loop; a text is embedded once (the store's embedding cache); and an
// embeddings server that is down or slow makes the lookup a miss, never an
// error: the provider answers.
#include <nlohmann/json.hpp>

#include "embeddings/embeddings.h"
#include "integration/pipeline_fixture.h"
#include "support/scripted_http_server.h"

namespace cascade::testing {
namespace {

constexpr std::size_t kServerDimension = 128;  // not the built-in's 256: the worker learns it

// An embeddings "model" served over HTTP: the built-in embedder at 128
// dimensions, answered in OpenAI's format, in reverse order (by index).
ScriptedResponse embeddings_answer(const RecordedRequest& request, std::chrono::milliseconds delay = {}) {
  const auto body = nlohmann::json::parse(request.body, nullptr, false);
  BuiltinEmbedderOptions options;
  options.dimension = kServerDimension;
  BuiltinEmbedder model(options);
  nlohmann::json data = nlohmann::json::array();
  const auto& input = body["input"];
  for (std::size_t i = input.size(); i-- > 0;) {
    const std::string text[] = {input[i].get<std::string>()};
    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", model.embed(text)->front()}});
  }
  auto response = ScriptedResponse::http(
      200, "application/json",
      nlohmann::json{{"object", "list"}, {"data", data}, {"model", "test-embed"}}.dump());
  response.pieces.front().delay_before = delay;
  return response;
}

class SemanticEmbedderTest : public PipelineTest {
 protected:
  void SetUp() override { ASSERT_TRUE(embeddings_.start()) << embeddings_.error(); }

  void TearDown() override {
    PipelineTest::TearDown();
    embeddings_.stop();
  }

  void configure_remote_embedder(std::size_t dimension, long timeout_ms) {
    env_overrides["CASCADE_CACHE_SEMANTIC_EMBEDDER_KIND"] = "openai";
    env_overrides["CASCADE_CACHE_SEMANTIC_EMBEDDER_BASE_URL"] = embeddings_.base_url() + "/v1";
    env_overrides["CASCADE_CACHE_SEMANTIC_EMBEDDER_MODEL"] = "test-embed";
    env_overrides["CASCADE_CACHE_SEMANTIC_EMBEDDER_DIMENSION"] = std::to_string(dimension);
    env_overrides["CASCADE_CACHE_SEMANTIC_EMBEDDER_TIMEOUT_MS"] = std::to_string(timeout_ms);
  }

  PromptEvent request(const std::string& id, const std::string& tenant, const std::string& text) {
    PromptEvent e;
    e.id = id;
    e.tenant = tenant;
    e.reply_to = reply_topic_;
    e.messages = nlohmann::json::array({{{"role", "system"}, {"content", "Answer briefly."}},
                                        {{"role", "user"}, {"content", text}}});
    e.cache = CacheMode::semantic;
    return e;
  }

  const CollectedReply& ask(const PromptEvent& e) {
    EXPECT_TRUE(client_->send(e));
    EXPECT_TRUE(client_->flush(10000));
    EXPECT_TRUE(client_->wait_all(std::chrono::seconds(60))) << e.id;
    return client_->replies().at(e.id);
  }

  std::uint64_t calls() const { return upstream_->requests_served(); }
  std::size_t embedding_calls() const { return embeddings_.requests().size(); }
  bool metrics_contain(const std::string& line) const {
    return worker_metrics_.serialize().find(line) != std::string::npos;
  }

  ScriptedHttpServer embeddings_;
};

TEST_F(SemanticEmbedderTest, ARemoteEmbedderServesAParaphraseAndEmbedsEachTextOnce) {
  embeddings_.set_responder([](const RecordedRequest& r) { return embeddings_answer(r); });
  configure_remote_embedder(0, 5000);  // dimension learned from the first answer
  start_pipeline();

  const auto& first = ask(request("e-1", "acme", "What is the capital of France?"));
  ASSERT_EQ(first.terminal->type, "final");
  EXPECT_EQ(first.terminal->body.value("cache", ""), "miss");
  ASSERT_EQ(embedding_calls(), 1u);
  const auto sent = nlohmann::json::parse(embeddings_.requests().at(0).body);
  EXPECT_EQ(sent["model"], "test-embed");
  EXPECT_EQ(sent["input"], nlohmann::json::array({"what is the capital of france?"})) << "the normalized text";
  EXPECT_EQ(state_->cache()->embedding_dimension(), kServerDimension);
  const auto calls_after_first = calls();

  const auto& paraphrase = ask(request("e-2", "acme", "what is the capital of  France ?"));
  ASSERT_EQ(paraphrase.terminal->type, "final");
  EXPECT_EQ(paraphrase.terminal->body.value("cache", ""), "semantic");
  EXPECT_EQ(paraphrase.terminal->body.value("content", ""), first.terminal->body.value("content", ""));
  EXPECT_EQ(calls(), calls_after_first) << "no provider call for a hit";
  EXPECT_EQ(embedding_calls(), 2u) << "one call for the new wording";

  // The first text again, for another tenant: no exact or semantic hit
  // (tenants never share answers), but its embedding comes from the store.
  const auto& other_tenant = ask(request("e-3", "globex", "What is the capital of France?"));
  ASSERT_EQ(other_tenant.terminal->type, "final");
  EXPECT_EQ(other_tenant.terminal->body.value("cache", ""), "miss");
  EXPECT_EQ(calls(), calls_after_first + 1);
  EXPECT_EQ(embedding_calls(), 2u) << "a text is embedded once";

  const std::string tag = "openai-compatible:test-embed:d" + std::to_string(kServerDimension);
  EXPECT_TRUE(state_->store().get_embedding(tag, to_hex(content_hash(tag, "what is the capital of france?"))))
      << "kept in the embeddings family";
  EXPECT_FALSE(metrics_contain("cascade_worker_semantic_embedding_failures_total{"));
  EXPECT_TRUE(metrics_contain("cascade_worker_cache_hits_total{kind=\"semantic\"} 1"));
}

TEST_F(SemanticEmbedderTest, RequestsWaitingForTheSameTextShareOneEmbeddingsCall) {
  embeddings_.set_responder([](const RecordedRequest& r) { return embeddings_answer(r, std::chrono::milliseconds(300)); });
  configure_remote_embedder(kServerDimension, 5000);
  start_pipeline();

  // Four tenants ask the same question at once: four provider calls (no
  // tenant sees another's answer), one embedding.
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(client_->send(request("w-" + std::to_string(i), "tenant-" + std::to_string(i), "How do I learn Python?")));
  }
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60)));
  for (int i = 0; i < 4; ++i) {
    const auto& reply = client_->replies().at("w-" + std::to_string(i));
    ASSERT_TRUE(reply.terminal);
    EXPECT_EQ(reply.terminal->type, "final");
  }
  EXPECT_EQ(embedding_calls(), 1u);
}

TEST_F(SemanticEmbedderTest, WithTheEmbeddingsServerDownTheProviderAnswersAndTheAnswerStillServesExactHits) {
  configure_remote_embedder(kServerDimension, 2000);
  embeddings_.stop();  // nothing listens on its port any more
  start_pipeline();
  const auto before = calls();

  const auto& answered = ask(request("d-1", "acme", "What is the capital of France?"));
  ASSERT_EQ(answered.terminal->type, "final") << "a semantic miss, never an error";
  EXPECT_EQ(answered.terminal->body.value("cache", ""), "miss");
  EXPECT_EQ(calls(), before + 1);
  EXPECT_TRUE(metrics_contain("cascade_worker_semantic_embedding_failures_total{reason=\"unavailable\"} 1"));

  const auto& again = ask(request("d-2", "acme", "What is the capital of France?"));
  EXPECT_EQ(again.terminal->body.value("cache", ""), "exact");
  EXPECT_EQ(calls(), before + 1);
}

TEST_F(SemanticEmbedderTest, ASlowEmbeddingsServerIsAMissAfterTimeoutMs) {
  embeddings_.set_responder([](const RecordedRequest& r) { return embeddings_answer(r, std::chrono::milliseconds(5000)); });
  configure_remote_embedder(kServerDimension, 300);
  start_pipeline();
  // The first request also waits for the consumer group to form: not timed.
  PromptEvent warm_up = request("t-0", "acme", "Name a prime number.");
  warm_up.cache = CacheMode::exact;  // no embedding
  ASSERT_EQ(ask(warm_up).terminal->type, "final");

  const auto started = std::chrono::steady_clock::now();
  const auto& answered = ask(request("t-1", "acme", "What is the capital of France?"));
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(answered.terminal->type, "final");
  EXPECT_EQ(answered.terminal->body.value("cache", ""), "miss");
  EXPECT_EQ(embedding_calls(), 1u);
  EXPECT_LT(took, std::chrono::milliseconds(3000)) << "the request waited for the embeddings server's 5 s answer";
  EXPECT_TRUE(metrics_contain("cascade_worker_semantic_embedding_failures_total{reason=\"timeout\"} 1"));
}

}  // namespace
}  // namespace cascade::testing
