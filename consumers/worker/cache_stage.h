#pragma once
// The cache stage: answers a request from the response cache when it can,
// exact first (the request fingerprint), then semantic (the last user
// message's embedding among the tenant's requests with the same context).
//
// The built-in embedder answers inline. A remote one (cache.semantic.embedder
// kind openai) is called on the loop's HttpClient unless the store's
// embedding cache has the vector; meanwhile the request waits (state
// embedding), in flight and counted for backpressure. Requests waiting for
// the same text share one call. A failed or late call makes the lookup a
// miss (debug log, metric), never an error: the request goes on to the
// provider.
//
// Threading: one event loop's thread.
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "consumers/worker/answer_cache.h"
#include "consumers/worker/stage_context.h"

namespace cascade {

class CacheStage {
 public:
  // A request that waited for its embedding, with its hit or none (a miss).
  using Resume = std::function<void(Request& r, std::optional<CacheHit> hit)>;
  // `cache` may be null (no response cache): every lookup is a miss.
  CacheStage(StageContext& context, AnswerCache* cache, Resume resume);

  // Sets the request's fingerprint, which single flight shares with the
  // cache; none when its cache mode is off or it cannot be computed.
  void fingerprint(Request& r);

  enum class Outcome { hit, miss, waiting };
  struct Lookup {
    Outcome outcome = Outcome::miss;
    std::optional<CacheHit> hit;
  };
  // Exact, then semantic. `waiting`: the request waits for its embedding
  // and is resumed through Resume.
  Lookup look_up(Request& r);

  // Counts a hit about to be served.
  void count_hit(const Request& r, const CacheHit& hit);

  // Stores an answer that may be reused (AnswerCache::store decides).
  void store(const Request& r, const FinalReply& final, const ModelInfo& model);

 private:
  std::optional<CacheHit> semantic_hit(Request& r);
  void on_embedded(const std::string& text, Result<std::vector<Embedding>> vectors);
  void embedding_failed(const Request& r, const Error& error);

  StageContext& ctx_;
  AnswerCache* cache_;
  Resume resume_;
  // Remote embeddings in flight: normalized text -> serials of the requests waiting for it.
  std::unordered_map<std::string, std::vector<std::uint64_t>> embedding_flights_;
};

}  // namespace cascade
