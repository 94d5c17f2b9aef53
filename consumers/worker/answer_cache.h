#pragma once
// The worker's response cache: answers a request from a stored answer when it
// can (exact match on the request fingerprint, then a semantic match of the
// last user message among requests with the same context), and stores every
// answer that may be reused. Entries live in the StateStore (replicated to
// every worker through the changelog); the semantic index is in memory and
// follows the store (load_index at start, on_applied afterwards).
//
// Keys:
//   responses  tenant \0 fingerprint              -> CachedAnswer JSON
//   vectors    tenant \0 context:fingerprint      -> embedding, prompt as written
// where `context` is the fingerprint of the request with its last user
// message emptied: a semantic hit needs the same tenant, system prompt,
// earlier turns, model, preference and parameters; only the wording of the
// last question may differ. Index namespaces are tenant \0 context, so no
// search ever sees another tenant's (or another conversation's) entries.
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cache/semantic.h"
#include "catalog/catalog.h"
#include "core/config.h"
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

class AnswerCache final : public ChangelogListener {
 public:
  // `matcher` and `embedder` (the matcher's) may be null: exact cache only.
  // Everything given must outlive the cache. The embedder is called from the
  // worker threads: it must be thread-safe (BuiltinEmbedder is).
  AnswerCache(StateStore& store, SemanticMatcher* matcher, Embedder* embedder, const ModelCatalog& catalog,
              CacheConfig config);

  // Fills the semantic index from the store (startup, after the changelog
  // restore). Returns the entries indexed.
  std::size_t load_index();

  // A stored answer for the request, if one may be served. `fingerprint` is
  // request_fingerprint(event). Thread-safe.
  std::optional<CacheHit> lookup(const PromptEvent& event, const std::string& fingerprint);

  // Stores a complete answer when it may be reused: finish_reason "stop",
  // content and no tool calls, temperature within cache.max_temperature,
  // cache not off. Thread-safe.
  void store(const PromptEvent& event, const std::string& fingerprint, const FinalReply& final,
             const ModelInfo& model);

  // ChangelogListener: keeps the semantic index in step with the store
  // (entries written by any worker, tombstones, purges).
  void on_applied(StateFamily family, std::string_view key, const StoredEntry* entry) override;
  void on_tenant_purged(std::string_view tenant, std::int64_t purged_through_ms) override;

  std::string response_version() const;
  std::string vector_version() const;

 private:
  bool cacheable(const PromptEvent& event) const;
  std::optional<CachedAnswer> load_answer(std::string_view tenant, std::string_view fingerprint);
  // The last user message's text, and the context fingerprint; nullopt when
  // the request has no plain-text last user message.
  struct SemanticKey {
    std::string text;
    std::string context;
  };
  std::optional<SemanticKey> semantic_key(const PromptEvent& event) const;
  void index_entry(std::string_view key, const StoredEntry& entry);

  StateStore& store_;
  SemanticMatcher* matcher_;
  Embedder* embedder_;
  const ModelCatalog& catalog_;
  CacheConfig config_;
  // Index entry id -> fingerprint of the answer (ids are the fingerprint's
  // first 64 bits; the response key needs the whole fingerprint).
  std::mutex entries_mutex_;
  std::unordered_map<std::uint64_t, std::string> fingerprint_of_;
};

// Splits a cached answer into reply chunks of about `bytes` bytes, at UTF-8
// character boundaries.
std::vector<std::string_view> replay_pieces(std::string_view content, std::size_t bytes = 256);

}  // namespace cascade
