#include "consumers/worker/worker_state.h"

#include <spdlog/spdlog.h>

#include "kafka/kafka.h"

namespace cascade {

StateOptions state_options(const Config& config) {
  StateOptions o;
  o.dir = config.state.dir;
  o.max_bytes = config.state.max_bytes;
  o.completed_ttl_s = config.state.completed_ttl_s;
  o.responses_ttl_s = config.state.responses_ttl_s;
  o.embeddings_ttl_s = config.state.embeddings_ttl_s;
  o.vectors_ttl_s = config.state.vectors_ttl_s;
  o.maintenance_interval_ms = config.state.maintenance_interval_ms;
  o.replicated = config.state.replicated;
  o.changelog_topic = config.kafka.cache_changelog_topic;
  o.changelog_partitions = config.kafka.partitions;
  o.restore_timeout_ms = config.state.restore_timeout_ms;
  return o;
}

Result<std::unique_ptr<WorkerState>> WorkerState::open(const Config& config, const std::string& bootstrap,
                                                       const ModelCatalog& catalog, bool embedded_broker,
                                                       const EnvLookup& env) {
  std::unique_ptr<WorkerState> state(new WorkerState());
  const StateOptions options = state_options(config);
  auto store = StateStore::open(options);
  if (!store) return std::unexpected(store.error());
  state->store_ = std::move(*store);
  state->completed_ = CompletedAnswerStore::view(*state->store_);

  if (config.cache.enabled) {
    // Per-tenant threshold, verification and verifier rules.
    auto matcher_options = semantic_matcher_options(config);
    if (!matcher_options) return std::unexpected(matcher_options.error());
    SemanticEmbedding embedding;
    const EmbedderConfig& e = config.cache.semantic.embedder;
    if (e.kind == "openai") {
      if (auto remote = AsyncOpenAiEmbedder::create(openai_embedder_options(e), env)) {
        state->remote_embedder_ = std::move(*remote);
        embedding.remote = state->remote_embedder_.get();
        spdlog::info("cache: semantic embeddings by OpenAI-compatible model {} (dimension {})", e.model,
                     e.dimension > 0 ? std::to_string(e.dimension) : std::string("from the first answer"));
      } else {
        // As a provider without its key: disabled with one line; the exact
        // cache still serves.
        spdlog::warn("cache: semantic cache disabled: {}", remote.error().message);
      }
    } else {
      state->builtin_embedder_ = std::make_unique<BuiltinEmbedder>(builtin_embedder_options(e));
      embedding.local = state->builtin_embedder_.get();
    }
    state->cache_ = std::make_unique<AnswerCache>(*state->store_, catalog, config.cache, std::move(*matcher_options),
                                                  embedding);
  }

  if (options.replicated) {
    if (!embedded_broker) {
      // A real cluster: create it compacted unless it is there (a broker
      // started by `cascade broker` made it with the other topics, and the
      // mock broker does not answer CreateTopics).
      auto exists = topic_exists(config.kafka, bootstrap, options.changelog_topic);
      if (!exists) return std::unexpected(exists.error());
      if (!*exists) {
        if (auto ok = create_changelog_topic(config.kafka, bootstrap, options); !ok) {
          return std::unexpected(ok.error());
        }
      }
    }
    auto changelog = StateChangelog::open(*state->store_, config.kafka, bootstrap, state->cache_.get());
    if (!changelog) return std::unexpected(changelog.error());
    state->changelog_ = std::move(*changelog);
    auto restored = state->changelog_->restore();
    if (!restored) return std::unexpected(restored.error());
    state->restored_ = *restored;
    spdlog::info("state: restored {} changelog record(s) ({} bytes) from {} partition(s) in {} ms",
                 restored->records, restored->bytes, restored->partitions, restored->elapsed_ms);
  }
  if (state->cache_) state->indexed_ = state->cache_->load_index();
  if (state->changelog_) {
    if (auto ok = state->changelog_->start(); !ok) return std::unexpected(ok.error());
  }
  return state;
}

WorkerState::~WorkerState() {
  changelog_.reset();  // stops the applier and publishes what is queued
  cache_.reset();
  completed_.reset();
  if (store_) {
    if (auto ok = store_->close(); !ok) spdlog::warn("state: close: {}", ok.error().message);
  }
}

}  // namespace cascade
