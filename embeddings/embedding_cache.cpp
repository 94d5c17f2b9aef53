#include <cstring>
#include <deque>
#include <mutex>
#include <unordered_map>

#include "embeddings/embeddings.h"

namespace cascade {

namespace {

struct HashOfHash {
  std::size_t operator()(const ContentHash& h) const {
    std::size_t out;
    std::memcpy(&out, h.data(), sizeof out);  // SHA-256 bytes are already uniform
    return out;
  }
};

}  // namespace

struct InMemoryEmbeddingCache::Impl {
  std::size_t max_entries;
  mutable std::mutex mutex;
  std::unordered_map<ContentHash, Embedding, HashOfHash> vectors;
  std::deque<ContentHash> order;  // insertion order, for eviction
};

InMemoryEmbeddingCache::InMemoryEmbeddingCache(std::size_t max_entries) : impl_(std::make_unique<Impl>()) {
  impl_->max_entries = std::max<std::size_t>(1, max_entries);
}

InMemoryEmbeddingCache::~InMemoryEmbeddingCache() = default;

std::optional<Embedding> InMemoryEmbeddingCache::get(const ContentHash& key) {
  std::lock_guard lock(impl_->mutex);
  const auto it = impl_->vectors.find(key);
  if (it == impl_->vectors.end()) return std::nullopt;
  return it->second;
}

Result<void> InMemoryEmbeddingCache::put(const ContentHash& key, std::span<const float> vector) {
  std::lock_guard lock(impl_->mutex);
  auto [it, inserted] = impl_->vectors.try_emplace(key);
  it->second.assign(vector.begin(), vector.end());
  if (!inserted) return {};
  impl_->order.push_back(key);
  while (impl_->vectors.size() > impl_->max_entries) {
    impl_->vectors.erase(impl_->order.front());
    impl_->order.pop_front();
  }
  return {};
}

std::size_t InMemoryEmbeddingCache::size() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->vectors.size();
}

Result<std::vector<Embedding>> CachedEmbedder::embed(std::span<const std::string> texts) {
  std::vector<Embedding> out(texts.size());
  std::vector<std::string> missing_texts;
  std::vector<std::size_t> missing_positions;
  std::vector<ContentHash> missing_keys;
  const std::size_t dimension = inner_.dimension();
  for (std::size_t i = 0; i < texts.size(); ++i) {
    std::string normalized = normalize_text(texts[i]);
    const ContentHash key = content_hash(inner_.tag(), normalized);
    if (auto cached = cache_.get(key); cached && cached->size() == dimension) {
      out[i] = std::move(*cached);
      ++stats_.hits;
      continue;
    }
    ++stats_.misses;
    missing_texts.push_back(std::move(normalized));
    missing_positions.push_back(i);
    missing_keys.push_back(key);
  }
  if (missing_texts.empty()) return out;
  auto embedded = inner_.embed(missing_texts);
  if (!embedded) return std::unexpected(embedded.error());
  if (embedded->size() != missing_texts.size()) {
    return fail(ErrorCode::internal, "embedder returned " + std::to_string(embedded->size()) + " vectors for " +
                                         std::to_string(missing_texts.size()) + " texts");
  }
  for (std::size_t j = 0; j < missing_texts.size(); ++j) {
    if (!cache_.put(missing_keys[j], (*embedded)[j])) ++stats_.put_failures;
    out[missing_positions[j]] = std::move((*embedded)[j]);
  }
  return out;
}

}  // namespace cascade
