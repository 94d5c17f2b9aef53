#include "consumers/worker/state_embedding_cache.h"

namespace cascade {

StateEmbeddingCache::StateEmbeddingCache(StateStore& store, std::string tag, std::size_t dimension)
    : store_(store), tag_(std::move(tag)), dimension_(dimension) {}

std::optional<Embedding> StateEmbeddingCache::get(const ContentHash& key) {
  auto vector = store_.get_embedding(tag_, to_hex(key));
  if (!vector || vector->size() != dimension_) return std::nullopt;
  return vector;
}

Result<void> StateEmbeddingCache::put(const ContentHash& key, std::span<const float> vector) {
  if (vector.size() != dimension_) {
    return fail(ErrorCode::invalid_request, "embedding of dimension " + std::to_string(vector.size()) +
                                                " for an embedding cache of dimension " + std::to_string(dimension_));
  }
  auto put = store_.put_embedding(tag_, to_hex(key), vector);
  if (!put) return std::unexpected(put.error());
  return {};
}

}  // namespace cascade
