#pragma once
// RocksDB-backed state of a worker process, replicated through Kafka.
//
// StateStore: one RocksDB instance under state.dir with a column family per
// concern (completed answers, exact-cache responses, embeddings, semantic
// vectors), per-entry expiry and version tags, tenant purges, and a size
// bound. StateChangelog: publishes every local change to the compacted topic
// cascade.cache-changelog and applies every worker's changes to the local
// store (a global table, as Kafka Streams' GlobalKTable), so a hit made on one
// worker is a hit on all and a new or wiped worker restores from the topic.
// CompletedAnswerStore: the worker's view of completed answers by request id,
// so a redelivered request is answered again without a second provider call or
// a second charge. The consistency model is in docs/state.md.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kafka/kafka_config.h"
#include "core/result.h"

namespace cascade {

// The column families holding entries. Values are part of the changelog's
// wire format (docs/state.md): extend, never renumber.
enum class StateFamily : std::uint8_t {
  completed = 0,   // request id -> terminal events (idempotency), never evicted before its TTL
  responses = 1,   // tenant + '\0' + request fingerprint -> cached answer
  embeddings = 2,  // embedder version + '\0' + content hash -> float vector
  vectors = 3,     // tenant + '\0' + entry id -> semantic cache entry (VectorEntry)
};
inline constexpr StateFamily kAllStateFamilies[] = {StateFamily::completed, StateFamily::responses,
                                                    StateFamily::embeddings, StateFamily::vectors};
// The column family name, also the changelog key prefix ("responses").
std::string_view to_string(StateFamily family);

struct StateOptions {
  std::string dir = "./data/state";
  // Bound on the logical bytes (keys + values) of all entries. Maintenance
  // evicts the oldest cache entries above it; completed answers only leave
  // when they expire.
  std::uint64_t max_bytes = std::uint64_t{1} << 30;
  std::int64_t completed_ttl_s = 7 * 24 * 3600;
  std::int64_t responses_ttl_s = 24 * 3600;
  std::int64_t embeddings_ttl_s = 30 * 24 * 3600;
  std::int64_t vectors_ttl_s = 24 * 3600;
  // Expiry sweep and size bound run on a background thread at this period.
  // 0 = no thread; maintenance runs only when maintain() is called.
  int maintenance_interval_ms = 60000;
  // true: every local change is also queued (in the same RocksDB write) for
  // the changelog, and published by an attached StateChangelog. false: a
  // purely local store (tests, tools).
  bool replicated = false;
  std::string changelog_topic = "cascade.cache-changelog";
  int changelog_partitions = 16;  // used when the topic is created
  int restore_timeout_ms = 120000;
  // Identifies this process's records in the changelog (lag of other workers'
  // records). "" = host:pid:random.
  std::string writer_id;
  // Wall clock in ms since the epoch; null = the system clock. Must be
  // thread-safe (compactions call it). Tests inject one to move time.
  std::function<std::int64_t()> now_ms;

  std::int64_t ttl_seconds(StateFamily family) const;
};

// One stored entry with its metadata. expires_ms 0 = never.
struct StoredEntry {
  std::int64_t created_ms = 0;
  std::int64_t expires_ms = 0;
  std::string version;
  std::string payload;
};

// A semantic cache entry: what was asked (normalized), its embedding, and the
// responses-family key of the answer it points to.
struct VectorEntry {
  std::vector<float> vector;
  std::string normalized_text;
  std::string response_key;
};
std::string encode_vector_entry(const VectorEntry& entry);
std::optional<VectorEntry> decode_vector_entry(std::string_view payload);

// Key of a tenant-owned entry (responses, vectors, completed): the tenant comes
// first so one prefix covers all of a tenant's entries.
std::string tenant_key(std::string_view tenant, std::string_view rest);
std::string embedding_key(std::string_view embedder_version, std::string_view content_hash);

struct MaintenanceReport {
  std::uint64_t expired = 0;  // entries removed because their TTL passed
  std::uint64_t evicted = 0;  // unexpired cache entries removed for the size bound
  std::uint64_t bytes_before = 0;
  std::uint64_t bytes_after = 0;
  // Still above max_bytes with nothing left to evict (unexpired completed answers).
  bool over_bound = false;
};

struct StateStats {
  std::uint64_t cache_bytes = 0;      // responses + embeddings + vectors
  std::uint64_t completed_bytes = 0;
  std::uint64_t expired_total = 0;
  std::uint64_t evicted_total = 0;
  std::uint64_t outbox_pending = 0;   // local changes not yet confirmed in the changelog
};

class StateChangelog;

// Thread-safe: reads run concurrently without locks; writes (local ones, the
// changelog applier's, maintenance) are serialized by one mutex, as RocksDB
// serializes them anyway. Writes are rare next to reads: each follows a
// provider call.
class StateStore {
 public:
  // Opens (or creates) the store under options.dir, migrating a store written
  // by the earlier completed-answers-only format.
  [[nodiscard]] static Result<std::unique_ptr<StateStore>> open(StateOptions options);
  // close() when not closed yet.
  ~StateStore();
  // Stops maintenance, flushes memtables and the WAL, closes RocksDB. A
  // StateChangelog attached to the store must be destroyed first.
  [[nodiscard]] Result<void> close();

  // Local writes: visible to reads at once; with options.replicated also queued
  // for the changelog in the same RocksDB write. Each returns the change's
  // outbox sequence number (0 when not replicated), see published().
  [[nodiscard]] Result<std::uint64_t> put(StateFamily family, std::string_view key, std::string_view payload,
                            std::string_view version);
  [[nodiscard]] Result<std::uint64_t> erase(StateFamily family, std::string_view key);
  // Removes every responses and vectors entry of the tenant created up to now,
  // here and (replicated) on every worker. Completed answers stay: they guard
  // against double charges, not stale answers.
  [[nodiscard]] Result<std::uint64_t> purge_tenant(std::string_view tenant);

  // The entry when present, unexpired and tagged with expected_version;
  // nullopt otherwise (a failed read is logged and is a miss).
  std::optional<StoredEntry> get(StateFamily family, std::string_view key,
                                 std::string_view expected_version) const;
  // Every unexpired entry of the family whose key starts with prefix, in key
  // order; fn returns false to stop. For loading in-memory indexes at startup.
  [[nodiscard]] Result<void> for_each(StateFamily family, std::string_view prefix,
                        const std::function<bool(std::string_view key, const StoredEntry&)>& fn) const;

  // Typed access. Tenants must be non-empty and free of '\0'.
  [[nodiscard]] Result<std::uint64_t> put_response(std::string_view tenant, std::string_view fingerprint,
                                     std::string_view payload, std::string_view version);
  std::optional<StoredEntry> get_response(std::string_view tenant, std::string_view fingerprint,
                                          std::string_view expected_version) const;
  [[nodiscard]] Result<std::uint64_t> put_embedding(std::string_view embedder_version, std::string_view content_hash,
                                      std::span<const float> embedding);
  std::optional<std::vector<float>> get_embedding(std::string_view embedder_version,
                                                  std::string_view content_hash) const;
  [[nodiscard]] Result<std::uint64_t> put_vector(std::string_view tenant, std::string_view entry_id,
                                   const VectorEntry& entry, std::string_view version);
  std::optional<VectorEntry> get_vector(std::string_view tenant, std::string_view entry_id,
                                        std::string_view expected_version) const;

  // True once the change with this outbox sequence number is durably in the
  // changelog (or was never to be published: 0).
  bool published(std::uint64_t outbox_seq) const;

  // Expiry sweep, then the size bound. Runs on the maintenance thread; callable
  // directly (tests, tools).
  [[nodiscard]] Result<MaintenanceReport> maintain();
  // Full manual compaction: expired entries leave the files now.
  [[nodiscard]] Result<void> compact();
  StateStats stats() const;
  const StateOptions& options() const;

  struct Impl;

 private:
  friend class StateChangelog;
  explicit StateStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Receives every change the changelog applier wrote to the local store, after
// it is durable in RocksDB, on the thread applying (the applier's own after
// start(), else the caller of restore()/apply_available()). A record this
// store wrote itself (put, erase) is not written again when it comes back,
// unless another writer's record of its key was applied in between, and the
// listener does not hear of it: whoever writes locally sees the change then.
// Records of this process written before a restart are applied as any other.
class ChangelogListener {
 public:
  virtual ~ChangelogListener() = default;
  // entry == nullptr: the key is gone (tombstone, expired or purged entry).
  virtual void on_applied(StateFamily family, std::string_view key, const StoredEntry* entry) = 0;
  // Every responses/vectors entry of the tenant created up to purged_through_ms is gone.
  virtual void on_tenant_purged(std::string_view tenant, std::int64_t purged_through_ms) {}
};

struct RestoreReport {
  std::uint64_t records = 0;  // changelog records applied
  std::uint64_t bytes = 0;    // their keys + values
  std::int64_t elapsed_ms = 0;
  int partitions = 0;
};

// Figures for metrics; all of this process's applier.
struct ChangelogLag {
  std::int64_t messages_behind = 0;  // sum over partitions of high watermark - next offset to apply
  // Since the applier last applied a record written by another worker; -1 = never.
  std::int64_t ms_since_foreign_apply = -1;
  // Record timestamp to local apply of that record (replication delay); -1 = none yet.
  std::int64_t last_foreign_delay_ms = -1;
  std::uint64_t applied = 0;          // records applied since open
  std::uint64_t malformed = 0;        // records skipped: undecodable (e.g. a newer format)
  std::uint64_t publish_failures = 0; // deliveries that failed (retried from the outbox)
  // Records of this store's own writes not written again (already in the
  // store, no other writer's record for the key since): part of `applied`.
  std::uint64_t echoes_skipped = 0;
};

// The changelog of one StateStore: publisher of its local changes and applier
// of every worker's changes, over all partitions of options().changelog_topic
// (assigned, no consumer group: every worker reads everything). Threading: the
// applier runs on its own thread after start(); before that (restore, tests)
// apply_available() is called by the owner. Never both at once.
class StateChangelog {
 public:
  // The topic must exist (embedded broker: EmbeddedBroker::create_topic; real
  // cluster: create_changelog_topic). Attaches to the store: local changes
  // from now on, and any left unpublished by a previous run, are published.
  [[nodiscard]] static Result<std::unique_ptr<StateChangelog>> open(StateStore& store, const KafkaConfig& kafka,
                                                      const std::string& bootstrap,
                                                      ChangelogListener* listener = nullptr);
  // stop(), publishes what is queued (bounded wait), detaches from the store.
  ~StateChangelog();

  // Applies the changelog up to the high watermarks it has when called,
  // starting from the offsets stored with the data (a wiped store starts from
  // the beginning). Fails with timeout when not caught up within timeout_ms
  // (< 0: options().restore_timeout_ms). Call before start().
  [[nodiscard]] Result<RestoreReport> restore(int timeout_ms = -1);
  // One applier round: waits up to timeout_ms for records, applies what came,
  // serves publish delivery reports. Returns the records applied.
  [[nodiscard]] Result<std::size_t> apply_available(int timeout_ms);
  // Runs apply_available on a thread of its own until stop().
  [[nodiscard]] Result<void> start();
  void stop();

  // Waits until every local change so far is in the changelog.
  bool flush(int timeout_ms);
  // Asks the applier to catch up with the changelog as it is now, without
  // stopping it: caught_up(ticket) turns true once every record that was in
  // the changelog when this was called is applied here (listener called).
  // A worker taking over request partitions waits for it, so the completed
  // answers written by their previous owner are in its store before any of
  // their requests is redelivered to it. Thread-safe.
  std::uint64_t request_catch_up();
  bool caught_up(std::uint64_t ticket) const;
  ChangelogLag lag() const;
  // Drops queued, unsent publishes as a crash would (tests). They stay in the
  // store's outbox and are published by the next StateChangelog.
  void abandon_unsent();

  struct Impl;

 private:
  explicit StateChangelog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Creates the changelog topic on a real cluster through the Admin API,
// compacted (cleanup.policy=compact,delete with retention.ms = the longest TTL,
// so expired entries leave the log too); an existing topic is fine. The
// embedded broker does not answer CreateTopics: use EmbeddedBroker there.
[[nodiscard]] Result<void> create_changelog_topic(const KafkaConfig& kafka, const std::string& bootstrap,
                                    const StateOptions& options, int timeout_ms = 30000);

// Purges a tenant's cache entries on every worker from outside one (an
// operator command): publishes the purge record that workers' appliers
// execute, covering entries created up to now. Returns that time (ms).
[[nodiscard]] Result<std::int64_t> publish_tenant_purge(const KafkaConfig& kafka, const std::string& bootstrap,
                                          const std::string& changelog_topic, std::string_view tenant,
                                          int timeout_ms = 30000);

// The terminal events a request produced, kept by (tenant, request id).
struct CompletedAnswer {
  std::string final_event;  // reply event JSON (type final)
  std::string cost_event;   // ledger event JSON
};

class CompletedAnswerStore {
 public:
  // Opens (or creates) a local, unreplicated store under `dir`. Entries
  // expire after ttl_seconds.
  [[nodiscard]] static Result<std::unique_ptr<CompletedAnswerStore>> open(const std::string& dir,
                                                           std::int64_t ttl_seconds = 7 * 24 * 3600);
  // The completed family of a store opened elsewhere (replicated when the
  // store is); `store` must outlive the view.
  static std::unique_ptr<CompletedAnswerStore> view(StateStore& store);
  ~CompletedAnswerStore();

  // Returns the change's outbox sequence number (0 when the store is not
  // replicated): once store().published(seq), every worker that catches up
  // with the changelog has the answer, and the request's offset may be
  // committed.
  [[nodiscard]] Result<std::uint64_t> put(std::string_view tenant, std::string_view id, const CompletedAnswer& answer);
  // nullopt when the request has no completed answer (or the read failed: the
  // request is then simply processed again).
  std::optional<CompletedAnswer> get(std::string_view tenant, std::string_view id) const;

  StateStore& store() const { return *store_; }

 private:
  CompletedAnswerStore() = default;
  std::unique_ptr<StateStore> owned_;
  StateStore* store_ = nullptr;
};

}  // namespace cascade
