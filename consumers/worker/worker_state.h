#pragma once
// What a worker process keeps between requests, opened in order: the RocksDB
// state store, restored from the cache changelog (replicated mode) before the
// worker serves; the completed-answer view; the response cache with its
// semantic index, loaded from the store and kept in step by the changelog,
// and the embedder it was configured with (built-in, or an OpenAI-compatible
// endpoint the worker's event loops call, over the store's embedding cache).
#include <memory>
#include <string>

#include "cache/semantic.h"
#include "catalog/catalog.h"
#include "consumers/worker/answer_cache.h"
#include "config/config.h"
#include "core/result.h"
#include "embeddings/embeddings.h"
#include "state/state.h"

namespace cascade {

class WorkerState {
 public:
  // `embedded_broker`: the in-process broker when there is one (the changelog
  // topic then exists already); otherwise the topic is created compacted
  // through the Admin API.
  // `env` holds the embeddings endpoint's key (cache.semantic.embedder.api_key_env).
  [[nodiscard]] static Result<std::unique_ptr<WorkerState>> open(const Config& config, const std::string& bootstrap,
                                                   const ModelCatalog& catalog, bool embedded_broker,
                                                   const EnvLookup& env = process_env());
  ~WorkerState();

  CompletedAnswerStore* completed() { return completed_.get(); }
  AnswerCache* cache() { return cache_.get(); }
  StateStore& store() { return *store_; }
  StateChangelog* changelog() { return changelog_.get(); }
  const RestoreReport& restored() const { return restored_; }
  std::size_t indexed_at_start() const { return indexed_; }

 private:
  WorkerState() = default;
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<CompletedAnswerStore> completed_;
  // The semantic cache's embedder (cache.semantic.embedder.kind): one of the two.
  std::unique_ptr<BuiltinEmbedder> builtin_embedder_;
  std::unique_ptr<AsyncOpenAiEmbedder> remote_embedder_;
  std::unique_ptr<AnswerCache> cache_;
  std::unique_ptr<StateChangelog> changelog_;  // destroyed first (declared last)
  RestoreReport restored_;
  std::size_t indexed_ = 0;
};

// The StateStore options a config asks for.
StateOptions state_options(const Config& config);

}  // namespace cascade
