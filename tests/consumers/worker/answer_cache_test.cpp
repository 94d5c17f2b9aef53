// AnswerCache over a real StateStore: the lookup in steps the worker takes
// (exact, semantic query, embedding, semantic search), with the built-in
// embedder and with a remote (OpenAI-compatible) one whose vectors are kept
// in the store's embedding cache.
#include "consumers/worker/answer_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>

#include "events/request_fingerprint.h"
#include "providers/provider.h"
#include "support/http_drive.h"
#include "support/scripted_http_server.h"
#include "support/state_store.h"
#include "support/temp_dir.h"

namespace cascade {
namespace {

using testing::TempDir;

// Counts what the cache embeds; thread-safe like the built-in embedder.
class CountingEmbedder final : public Embedder {
 public:
  std::size_t dimension() const override { return inner_.dimension(); }
  const std::string& tag() const override { return inner_.tag(); }
  Result<std::vector<Embedding>> embed(std::span<const std::string> texts) override {
    embedded += texts.size();
    return inner_.embed(texts);
  }
  std::atomic<std::size_t> embedded{0};

 private:
  BuiltinEmbedder inner_;
};

Embedding builtin_vector(const std::string& text) {
  BuiltinEmbedder builtin;
  const std::string normalized[] = {normalize_text(text)};
  return builtin.embed(normalized)->front();
}

class AnswerCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store = testing::open_state_store(testing::state_options_in(dir.path()));
    ASSERT_TRUE(store);
    auto loaded = ModelCatalog::load(CatalogConfig{});
    ASSERT_TRUE(loaded) << loaded.error().message;
    catalog = std::make_unique<ModelCatalog>(std::move(*loaded));
  }

  std::unique_ptr<AnswerCache> cache_with(SemanticEmbedding embedding) {
    return std::make_unique<AnswerCache>(*store, *catalog, CacheConfig{}, SemanticMatcherOptions{}, embedding);
  }

  // A remote embedder that is never called by the cache itself.
  std::unique_ptr<AsyncOpenAiEmbedder> remote(std::size_t dimension, std::string base_url = "http://127.0.0.1:9/v1") {
    OpenAiEmbedderOptions o;
    o.base_url = std::move(base_url);
    o.model = "test-embed";
    o.dimension = dimension;
    o.request_timeout_ms = 5000;
    auto created = AsyncOpenAiEmbedder::create(o);
    EXPECT_TRUE(created) << created.error().message;
    return std::move(*created);
  }

  static PromptEvent request(const std::string& id, const std::string& text, const std::string& tenant = "acme",
                             const std::string& system = "Answer briefly.") {
    PromptEvent e;
    e.id = id;
    e.tenant = tenant;
    e.reply_to = "replies";
    e.messages = nlohmann::json::array({{{"role", "system"}, {"content", system}}, {{"role", "user"}, {"content", text}}});
    e.cache = CacheMode::semantic;
    return e;
  }

  static std::string fingerprint(const PromptEvent& e) { return *request_fingerprint(e, 1024); }

  FinalReply answer(const std::string& content) const {
    FinalReply f;
    f.content = content;
    f.model = "gpt-4o-mini";
    f.provider = catalog->find("gpt-4o-mini")->provider;
    f.finish_reason = "stop";
    return f;
  }

  void store_answer(AnswerCache& cache, const PromptEvent& e, const std::string& content,
                    const AnswerCache::SemanticQuery* query) {
    cache.store(e, fingerprint(e), answer(content), *catalog->find("gpt-4o-mini"), query);
  }

  TempDir dir;
  std::unique_ptr<StateStore> store;
  std::unique_ptr<ModelCatalog> catalog;
};

TEST_F(AnswerCacheTest, WithTheBuiltinEmbedderTheQueryCarriesItsVectorAndStoreDoesNotEmbedAgain) {
  CountingEmbedder builtin;
  auto cache = cache_with({&builtin, nullptr});
  const PromptEvent asked = request("r1", "What is the capital of France?");
  EXPECT_FALSE(cache->lookup_exact(asked, fingerprint(asked)));
  auto query = cache->semantic_query(asked);
  ASSERT_TRUE(query);
  ASSERT_TRUE(query->vector) << "the built-in embedder answers at once";
  EXPECT_EQ(query->normalized, "what is the capital of france?");
  EXPECT_EQ(builtin.embedded.load(), 1u);
  EXPECT_FALSE(cache->lookup_semantic(asked, *query)) << "nothing stored yet";

  store_answer(*cache, asked, "Paris.", &*query);
  EXPECT_EQ(builtin.embedded.load(), 1u) << "the lookup's vector is indexed as it is";

  const PromptEvent reworded = request("r2", "what is the capital of  France ?");
  EXPECT_FALSE(cache->lookup_exact(reworded, fingerprint(reworded)));
  auto reworded_query = cache->semantic_query(reworded);
  ASSERT_TRUE(reworded_query && reworded_query->vector);
  auto hit = cache->lookup_semantic(reworded, *reworded_query);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->kind, CacheOutcome::semantic);
  EXPECT_EQ(hit->answer.content, "Paris.");
  EXPECT_TRUE(cache->lookup_exact(asked, fingerprint(asked)));
}

TEST_F(AnswerCacheTest, OnlySemanticRequestsWithAPlainTextQuestionGetAQuery) {
  CountingEmbedder builtin;
  auto cache = cache_with({&builtin, nullptr});
  PromptEvent exact = request("e", "What is the capital of France?");
  exact.cache = CacheMode::exact;
  EXPECT_FALSE(cache->semantic_query(exact));
  PromptEvent hot = request("h", "What is the capital of France?");
  hot.temperature = 1.7;
  EXPECT_FALSE(cache->semantic_query(hot));
  EXPECT_FALSE(cache->semantic_query(request("w", "   \t ")));
  EXPECT_EQ(builtin.embedded.load(), 0u);

  auto exact_only = cache_with({});
  EXPECT_FALSE(exact_only->semantic_query(request("n", "What is the capital of France?"))) << "no embedder";
}

TEST_F(AnswerCacheTest, ARemoteVectorIsKeptInTheEmbeddingCacheAndServedWithoutAnotherCall) {
  auto embedder = remote(256);
  auto cache = cache_with({nullptr, embedder.get()});
  EXPECT_EQ(cache->remote_embedder(), embedder.get());
  const PromptEvent asked = request("r1", "What is the capital of France?");
  auto query = cache->semantic_query(asked);
  ASSERT_TRUE(query);
  EXPECT_FALSE(query->vector) << "not embedded yet: the worker must fetch it";

  const Embedding fetched = builtin_vector(query->text);  // what the endpoint answered
  ASSERT_TRUE(cache->embedded(query->normalized, fetched));

  // The same text in another tenant and conversation: the vector comes from the store.
  auto again = cache->semantic_query(request("r2", "What is the capital of France?", "globex", "Be terse."));
  ASSERT_TRUE(again && again->vector);
  EXPECT_EQ(*again->vector, fetched);
  auto kept = store->get_embedding(embedder->tag(), to_hex(content_hash(embedder->tag(), query->normalized)));
  ASSERT_TRUE(kept);
  EXPECT_EQ(*kept, fetched);
}

TEST_F(AnswerCacheTest, ARemoteVectorFindsAStoredParaphrase) {
  auto embedder = remote(256);
  auto cache = cache_with({nullptr, embedder.get()});
  const PromptEvent asked = request("r1", "How do I learn Python?");
  auto query = cache->semantic_query(asked);
  ASSERT_TRUE(query);
  query->vector = builtin_vector(query->text);
  store_answer(*cache, asked, "Start with the tutorial.", &*query);

  const PromptEvent reworded = request("r2", "How can I learn Python?");
  auto reworded_query = cache->semantic_query(reworded);
  ASSERT_TRUE(reworded_query);
  // The endpoint's vectors of both texts are the same: a model that knows they mean one thing.
  reworded_query->vector = query->vector;
  auto hit = cache->lookup_semantic(reworded, *reworded_query);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->answer.content, "Start with the tutorial.");
  EXPECT_FLOAT_EQ(hit->similarity, 1.0f);
}

TEST_F(AnswerCacheTest, AVectorOfTheWrongDimensionIsAMissNeverACrash) {
  auto embedder = remote(8);
  auto cache = cache_with({nullptr, embedder.get()});
  const PromptEvent asked = request("r1", "What is the capital of France?");
  auto query = cache->semantic_query(asked);
  ASSERT_TRUE(query);
  const Embedding wrong(16, 0.25f);
  EXPECT_FALSE(cache->embedded(query->normalized, wrong));
  EXPECT_FALSE(store->get_embedding(embedder->tag(), to_hex(content_hash(embedder->tag(), query->normalized))))
      << "not kept either";
  query->vector = wrong;
  EXPECT_FALSE(cache->lookup_semantic(asked, *query));
  store_answer(*cache, asked, "Paris.", &*query);  // the answer is kept for exact hits, not indexed
  EXPECT_TRUE(cache->lookup_exact(asked, fingerprint(asked)));
  query->vector = Embedding(8, 0.0f);
  query->vector->front() = 1.0f;
  EXPECT_FALSE(cache->lookup_semantic(asked, *query)) << "nothing of the wrong dimension was indexed";
}

TEST_F(AnswerCacheTest, EntriesOfAnotherEmbedderAreNeverCompared) {
  const PromptEvent asked = request("r1", "What is the capital of France?");
  Embedding vector;
  {
    CountingEmbedder builtin;
    auto cache = cache_with({&builtin, nullptr});
    auto query = cache->semantic_query(asked);
    ASSERT_TRUE(query && query->vector);
    vector = *query->vector;
    store_answer(*cache, asked, "Paris.", &*query);
  }
  const PromptEvent reworded = request("r2", "what is the capital of France");
  {
    // Control: the same embedder after a restart finds it.
    CountingEmbedder builtin;
    auto cache = cache_with({&builtin, nullptr});
    cache->load_index();
    auto query = cache->semantic_query(reworded);
    ASSERT_TRUE(query);
    query->vector = vector;
    EXPECT_TRUE(cache->lookup_semantic(reworded, *query));
  }
  // Same store, same dimension, another embedder: its tag differs.
  auto embedder = remote(vector.size());
  auto cache = cache_with({nullptr, embedder.get()});
  cache->load_index();
  auto query = cache->semantic_query(reworded);
  ASSERT_TRUE(query);
  query->vector = vector;  // even the very same numbers
  EXPECT_FALSE(cache->lookup_semantic(reworded, *query));
  EXPECT_NE(cache->vector_version().find("openai-compatible:test-embed:d256"), std::string::npos);
}

TEST_F(AnswerCacheTest, ARemoteDimensionLearnedFromTheFirstAnswerIndexesWhatTheStoreAlreadyHeld) {
  // Another worker stored an entry embedded by the same model (dimension 3).
  const PromptEvent asked = request("r1", "What is the capital of France?");
  const Embedding france = {0.6f, 0.8f, 0.0f};
  {
    auto known = remote(3);
    auto cache = cache_with({nullptr, known.get()});
    auto query = cache->semantic_query(asked);
    ASSERT_TRUE(query);
    query->vector = france;
    store_answer(*cache, asked, "Paris.", &*query);
  }

  testing::ScriptedHttpServer server;
  ASSERT_TRUE(server.start()) << server.error();
  server.enqueue(testing::ScriptedResponse::http(
      200, "application/json", R"({"object":"list","data":[{"object":"embedding","index":0,"embedding":[3,4,0]}]})"));
  auto learning = remote(0, server.base_url() + "/v1");
  auto cache = cache_with({nullptr, learning.get()});
  EXPECT_EQ(cache->load_index(), 0u) << "the dimension is not known yet";
  EXPECT_EQ(cache->embedding_dimension(), 0u);
  EXPECT_EQ(cache->vector_version(), "");

  const PromptEvent reworded = request("r2", "what is the capital of France");
  auto query = cache->semantic_query(reworded);
  ASSERT_TRUE(query);
  EXPECT_FALSE(query->vector);
  EXPECT_FALSE(cache->lookup_semantic(reworded, *query));

  HttpClient http;
  std::optional<Result<std::vector<Embedding>>> fetched;
  ASSERT_TRUE(learning->start(http, {query->normalized}, [&](Result<std::vector<Embedding>> r) { fetched = std::move(r); }));
  testing::drive_until(http, [&] { return fetched.has_value(); }, std::chrono::seconds(20));
  ASSERT_TRUE(fetched && *fetched);
  ASSERT_TRUE(cache->embedded(query->normalized, (*fetched)->front()));
  EXPECT_EQ(cache->embedding_dimension(), 3u);
  query->vector = (*fetched)->front();
  auto hit = cache->lookup_semantic(reworded, *query);
  ASSERT_TRUE(hit) << "the stored entry was indexed when the dimension became known";
  EXPECT_EQ(hit->answer.content, "Paris.");
}

// The index is namespaced by tenant and conversation context, but the
// threshold and verifier are the tenant's own (tenants.<name>.semantic_*):
// a paraphrase that is a hit for one tenant is a miss for a tenant with a
// stricter threshold, and a reordering the default verifier rejects is a hit
// for a tenant that allows it.
TEST_F(AnswerCacheTest, EachTenantsThresholdAndVerifierApplyToItsLookups) {
  BuiltinEmbedder builtin;
  SemanticMatcherOptions options;
  options.tenants["strict"].threshold = 0.9999;
  options.tenants["loose"].verifier.max_order_inversions = 2;  // "Florida" moved over "New York"
  options.tenants["loose"].threshold = 0.80;
  AnswerCache cache(*store, *catalog, CacheConfig{}, options, SemanticEmbedding{&builtin, nullptr});
  const std::string asked_text = "flights from New York to Florida";
  const std::string swapped_text = "flights from Florida to New York";
  const std::string paraphrase_text = "the flights from New York to Florida";
  for (const std::string tenant : {"acme", "strict", "loose"}) {
    const PromptEvent asked = request(tenant + "-1", asked_text, tenant);
    auto query = cache.semantic_query(asked);
    ASSERT_TRUE(query && query->vector);
    store_answer(cache, asked, "Several airlines fly that route.", &*query);
  }
  auto hit = [&](const std::string& tenant, const std::string& text) {
    const PromptEvent e = request(tenant + "-2", text, tenant);
    auto query = cache.semantic_query(e);
    return query && query->vector && cache.lookup_semantic(e, *query).has_value();
  };
  EXPECT_TRUE(hit("acme", paraphrase_text));
  EXPECT_FALSE(hit("strict", paraphrase_text)) << "its threshold is above the paraphrase's similarity";
  EXPECT_FALSE(hit("acme", swapped_text)) << "word order differs: rejected by default";
  EXPECT_TRUE(hit("loose", swapped_text)) << "this tenant allows the reordering";
}

}  // namespace
}  // namespace cascade
