#pragma once
// The worker's response cache: answers a request from a stored answer when it
// can (exact match on the request fingerprint, then a semantic match of the
// last user message among requests with the same context), and stores every
// answer that may be reused. Entries live in the StateStore (replicated to
// every worker through the changelog); the semantic index is in memory and
// follows the store (load_index at start, on_applied afterwards).
//
// Embeddings: the built-in embedder runs inline; a remote (OpenAI-compatible)
// one is called by the worker on its event loop while the request waits, and
// its vectors are kept in the store's embeddings family by content hash
// (StateEmbeddingCache), so a text is embedded once for all workers.
//
// Keys:
//   responses  tenant \0 fingerprint              -> CachedAnswer JSON
//   vectors    tenant \0 context:fingerprint      -> embedding, prompt as written
// where `context` is the fingerprint of the request with its last user
// message emptied: a semantic hit needs the same tenant, system prompt,
// earlier turns, model, preference and parameters; only the wording of the
// last question may differ. Index namespaces are tenant \0 context, so no
// search ever sees another tenant's (or another conversation's) entries.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cache/semantic.h"
#include "catalog/catalog.h"
#include "cache/cache_config.h"
#include "embeddings/embeddings.h"
#include "events/events.h"
#include "state/state.h"

namespace cascade {

// What a hit replays.
struct CachedAnswer {
  std::string content;
  std::string model;           // catalog id that produced it
  std::string upstream_model;  // the provider's model name then; a change invalidates
  std::string provider;
  std::string finish_reason;
  TokenUsage usage;
  std::int64_t created_ms = 0;
};

struct CacheHit {
  CachedAnswer answer;
  CacheOutcome kind = CacheOutcome::exact;
  float similarity = 1;
  std::string reason;  // route reason of the hit's final and cost events
};

// How the semantic cache embeds prompts (cache.semantic.embedder): one of the two.
struct SemanticEmbedding {
  // Synchronous and thread-safe (BuiltinEmbedder): a prompt is embedded on
  // the calling thread in microseconds, with no embedding cache.
  Embedder* local = nullptr;
  // An OpenAI-compatible endpoint. A vector the embedding cache (the store's
  // embeddings family) lacks is fetched by the worker on its own event loop
  // (AsyncOpenAiEmbedder::start) and handed back through embedded().
  AsyncOpenAiEmbedder* remote = nullptr;
};

class AnswerCache final : public ChangelogListener {
 public:
  // `embedding` empty: exact cache only. Everything given must outlive the
  // cache. matcher_options: per-tenant policy; the index's dimension is the
  // embedder's (for a remote embedder that learns it, the semantic index
  // starts with its first answer).
  AnswerCache(StateStore& store, const ModelCatalog& catalog, CacheConfig config,
              SemanticMatcherOptions matcher_options, SemanticEmbedding embedding);
  ~AnswerCache() override;

  // Fills the semantic index from the store (startup, after the changelog
  // restore). Returns the entries indexed.
  std::size_t load_index();

  // ----------------------------------------------------------- lookup ----
  // In steps, so the embedding may come asynchronously: lookup_exact, then
  // for a miss semantic_query; when its vector is missing, fetch it with
  // remote_embedder() and pass it to embedded(); then lookup_semantic. All
  // thread-safe. `fingerprint` is request_fingerprint(event).

  std::optional<CacheHit> lookup_exact(const PromptEvent& event, const std::string& fingerprint);

  // The semantic half of one request.
  struct SemanticQuery {
    std::string text;        // the last user message as written (the verifier reads case)
    std::string normalized;  // normalize_text(text): what is embedded and hashed
    std::string context;     // fingerprint of the request with that message emptied
    std::optional<Embedding> vector;  // set once known
  };
  // nullopt when the request may not use the semantic cache (cache mode not
  // semantic, not cacheable, no plain-text last user message, no embedder).
  // The vector is set when it comes without a network call: from the local
  // embedder or from the embedding cache.
  std::optional<SemanticQuery> semantic_query(const PromptEvent& event);
  // The embedder to fetch a missing vector from (null: none is remote).
  AsyncOpenAiEmbedder* remote_embedder() const { return embedding_.remote; }
  // A vector fetched for `normalized`: kept in the embedding cache. False
  // when it cannot be used (not of the index's dimension): the lookup is a miss.
  bool embedded(std::string_view normalized, std::span<const float> vector);
  // The nearest stored prompt of the same tenant and context that passes
  // the verifier, searched with query.vector (a miss without one).
  std::optional<CacheHit> lookup_semantic(const PromptEvent& event, const SemanticQuery& query);

  // All of the above without a network call: exact, then semantic when the
  // vector is known locally (tests, tools).
  std::optional<CacheHit> lookup(const PromptEvent& event, const std::string& fingerprint);

  // Stores a complete answer when it may be reused: finish_reason "stop",
  // content and no tool calls, temperature within cache.max_temperature,
  // cache not off. For a semantic request the prompt is indexed with
  // query->vector as it is (never embedded twice); without a query or a
  // vector, with the local embedder's or the embedding cache's, if any
  // (otherwise only the exact entry is stored). Thread-safe.
  void store(const PromptEvent& event, const std::string& fingerprint, const FinalReply& final,
             const ModelInfo& model, const SemanticQuery* query = nullptr);

  // ChangelogListener: keeps the semantic index in step with the store
  // (entries written by any worker, tombstones, purges).
  void on_applied(StateFamily family, std::string_view key, const StoredEntry* entry) override;
  void on_tenant_purged(std::string_view tenant, std::int64_t purged_through_ms) override;

  std::string response_version() const;
  // Includes the embedder's tag: vectors of another embedder, model or
  // dimension are never indexed. "" while a remote embedder's dimension is unknown.
  std::string vector_version() const;
  // The semantic index's dimension; 0 while unknown or without an embedder.
  std::size_t embedding_dimension() const;

 private:
  // Everything that depends on the embedder's vector space, made once its
  // dimension is known (at construction, or on a remote embedder's first answer).
  struct Space;
  Space* space();
  // Makes the space when the embedder's dimension is known; index_stored:
  // also index the vectors already in the store.
  Space* make_space(bool index_stored);
  const Space* space() const { return space_.load(std::memory_order_acquire); }
  bool cacheable(const PromptEvent& event) const;
  std::optional<CachedAnswer> load_answer(std::string_view tenant, std::string_view fingerprint);
  // The vector of a normalized text without a network call, if it has one.
  std::optional<Embedding> local_vector(Space& space, const std::string& normalized);
  void index_entry(Space& space, std::string_view key, const StoredEntry& entry);
  std::size_t load_index(Space& space);

  StateStore& store_;
  const ModelCatalog& catalog_;
  CacheConfig config_;
  SemanticMatcherOptions matcher_options_;
  SemanticEmbedding embedding_;
  std::mutex space_mutex_;
  std::unique_ptr<Space> space_owned_;
  std::atomic<Space*> space_{nullptr};
  // Index entry id -> fingerprint of the answer (ids are the fingerprint's
  // first 64 bits; the response key needs the whole fingerprint).
  std::mutex entries_mutex_;
  std::unordered_map<std::uint64_t, std::string> fingerprint_of_;
};

// Splits a cached answer into reply chunks of about `bytes` bytes, at UTF-8
// character boundaries.
std::vector<std::string_view> replay_pieces(std::string_view content, std::size_t bytes = 256);

}  // namespace cascade
