#pragma once
// The production EmbeddingCache (docs/cache.md): vectors in the StateStore's
// `embeddings` family, so a text is embedded once per process lifetime and,
// with a replicated store, once for every worker (the entry travels through
// the cache changelog like any other).
//
// It joins two components that do not know each other (state/ has no
// dependency on embeddings/, embeddings/ none on the RocksDB store), so it
// lives with the worker that uses both.
#include <cstddef>
#include <string>

#include "embeddings/embeddings.h"
#include "state/state.h"

namespace cascade {

// Key embedding_key(tag, to_hex(hash)), version `tag`, value the vector as
// little-endian float32 (StateStore::put_embedding). Entries expire after
// state.embeddings_ttl_s. Thread-safe: it keeps no state of its own besides
// the store, which is.
class StateEmbeddingCache final : public EmbeddingCache {
 public:
  // `tag` is the embedder's (Embedder::tag()); `dimension` its vectors' size.
  // The store must outlive the cache.
  StateEmbeddingCache(StateStore& store, std::string tag, std::size_t dimension);

  // nullopt when absent, expired, stored under another tag, or of another
  // dimension (the text is then embedded again).
  std::optional<Embedding> get(const ContentHash& key) override;
  // invalid_request for a vector of another dimension; store errors as they come.
  [[nodiscard]] Result<void> put(const ContentHash& key, std::span<const float> vector) override;

  const std::string& tag() const { return tag_; }
  std::size_t dimension() const { return dimension_; }

 private:
  StateStore& store_;
  const std::string tag_;
  const std::size_t dimension_;
};

}  // namespace cascade
