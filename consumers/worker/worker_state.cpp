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
                                                       const ModelCatalog& catalog, bool embedded_broker) {
  std::unique_ptr<WorkerState> state(new WorkerState());
  const StateOptions options = state_options(config);
  auto store = StateStore::open(options);
  if (!store) return std::unexpected(store.error());
  state->store_ = std::move(*store);
  state->completed_ = CompletedAnswerStore::view(*state->store_);

  if (config.cache.enabled) {
    state->embedder_ = std::make_unique<BuiltinEmbedder>();
    SemanticMatcherOptions matcher_options;
    matcher_options.defaults.threshold = config.cache.semantic.threshold;
    matcher_options.defaults.verify = config.cache.semantic.verify;
    for (const auto& [tenant, limits] : config.tenants) {
      if (tenant == "default") continue;
      TenantSemanticOptions t = matcher_options.defaults;
      if (limits.semantic_threshold > 0) t.threshold = limits.semantic_threshold;
      t.verify = limits.semantic_verify;
      matcher_options.tenants.emplace(tenant, t);
    }
    if (auto d = config.tenants.find("default"); d != config.tenants.end()) {
      if (d->second.semantic_threshold > 0) matcher_options.defaults.threshold = d->second.semantic_threshold;
      matcher_options.defaults.verify = matcher_options.defaults.verify && d->second.semantic_verify;
    }
    state->matcher_ = std::make_unique<SemanticMatcher>(*state->embedder_, matcher_options);
    state->cache_ = std::make_unique<AnswerCache>(*state->store_, state->matcher_.get(), state->embedder_.get(),
                                                  catalog, config.cache);
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
  matcher_.reset();
  completed_.reset();
  if (store_) {
    if (auto ok = store_->close(); !ok) spdlog::warn("state: close: {}", ok.error().message);
  }
}

}  // namespace cascade
