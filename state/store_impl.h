#pragma once
// StateStore internals shared with the changelog (same component, not public).
#include <rocksdb/compaction_filter.h>
#include <rocksdb/db.h>
#include <rocksdb/utilities/write_batch_with_index.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <span>
#include <thread>
#include <unordered_map>

#include "state/codec.h"
#include "state/state.h"

namespace cascade {
namespace state_internal {

// The changelog side of the store. publish() is called with the store's write
// mutex held, in the order of the local writes, and must not block.
class Publisher {
 public:
  virtual ~Publisher() = default;
  virtual void publish(std::uint64_t seq, std::string_view changelog_key,
                       const std::optional<std::string_view>& value) = 0;
};

struct ChangelogRecord {
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string_view key;
  std::optional<std::string_view> value;  // nullopt = tombstone
  bool own = false;  // written by this store (the record's writer header)
};

// One applied record, for the listener.
struct AppliedChange {
  bool purge = false;
  StateFamily family = StateFamily::responses;
  std::string key;                   // store key; the tenant of a purge
  std::optional<StoredEntry> entry;  // nullopt: deleted
  std::int64_t purged_through_ms = 0;
};

struct ApplyOutcome {
  std::vector<AppliedChange> changes;
  std::uint64_t malformed = 0;
  std::uint64_t echoes_skipped = 0;
};

// Drops expired entries when RocksDB compacts a file.
class ExpiryFilter : public rocksdb::CompactionFilter {
 public:
  explicit ExpiryFilter(std::function<std::int64_t()> now) : now_(std::move(now)) {}
  bool Filter(int, const rocksdb::Slice&, const rocksdb::Slice& value, std::string*, bool*) const override;
  const char* Name() const override { return "cascade.ExpiryFilter"; }

 private:
  std::function<std::int64_t()> now_;
};

}  // namespace state_internal

struct StateStore::Impl {
  StateOptions options;
  std::function<std::int64_t()> now;
  std::unique_ptr<state_internal::ExpiryFilter> filter;  // outlives db
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::ColumnFamilyHandle* families[4] = {};  // by StateFamily
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  rocksdb::ColumnFamilyHandle* by_time = nullptr;
  bool closed = false;

  // Serializes writes; guards everything below up to the atomics.
  mutable std::mutex write_mu;
  std::map<std::string, std::int64_t, std::less<>> floors;  // tenant -> purged through ms
  state_internal::Publisher* publisher = nullptr;
  std::uint64_t next_outbox_seq = 1;
  // Changelog keys this store wrote (local_put, erase) whose records have not
  // come back through the changelog yet. Their echo need not be applied (the
  // write is in the store already) unless a record of another writer for the
  // same key was applied in between: then log order decides, and the echo is
  // applied. Skipping echoes halves the RocksDB writes of a lone worker.
  struct OwnWrite {
    std::uint32_t pending = 0;     // own records of the key not yet echoed
    bool foreign_since = false;    // another writer's record applied since
  };
  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view k) const { return std::hash<std::string_view>{}(k); }
  };
  std::unordered_map<std::string, OwnWrite, KeyHash, std::equal_to<>> unechoed;
  void note_own_write(const std::string& changelog_key) { unechoed[changelog_key].pending++; }
  // Whether a changelog record may be skipped as the echo of a write already
  // in the store; keeps `unechoed` up to date either way.
  bool skip_as_echo(const state_internal::ChangelogRecord& rec);

  // Sum of the by_time index's byte figures, per class.
  std::atomic<std::int64_t> cache_bytes{0};
  std::atomic<std::int64_t> completed_bytes{0};
  std::atomic<std::uint64_t> expired_total{0};
  std::atomic<std::uint64_t> evicted_total{0};

  // Outbox sequence numbers written but not yet confirmed delivered.
  mutable std::mutex outbox_mu;
  std::set<std::uint64_t> outbox_pending;

  std::thread maintenance;
  std::mutex maintenance_mu;
  std::condition_variable maintenance_cv;
  bool maintenance_stop = false;

  // A batch of changes committed in one RocksDB write.
  struct Staging {
    rocksdb::WriteBatchWithIndex batch{rocksdb::BytewiseComparator(), 0, /*overwrite_key=*/true};
    std::int64_t cache_delta = 0;
    std::int64_t completed_delta = 0;
    std::map<std::string, std::int64_t, std::less<>> floors;  // raised in this batch
  };

  rocksdb::ColumnFamilyHandle* cf(StateFamily f) const { return families[static_cast<int>(f)]; }
  std::int64_t floor_of(const Staging& s, std::string_view tenant) const;
  void add_bytes(Staging& s, StateFamily f, std::int64_t delta) const;
  [[nodiscard]] Result<void> stage_put(Staging& s, StateFamily family, std::string_view key, std::string_view bytes,
                         const state_codec::EntryView& entry);
  [[nodiscard]] Result<bool> stage_delete(Staging& s, StateFamily family, std::string_view key);
  [[nodiscard]] Result<void> stage_remove_indexed(Staging& s, std::string_view index_key,
                                    const state_codec::IndexView& index);
  [[nodiscard]] Result<void> stage_purge(Staging& s, std::string_view tenant, std::int64_t through_ms);
  [[nodiscard]] Result<std::uint64_t> stage_outbox(Staging& s, std::string_view changelog_key,
                                     const std::optional<std::string_view>& value);
  [[nodiscard]] Result<void> commit(Staging& s);
  // After commit of a staged outbox record: mark pending and publish.
  void publish_committed(std::uint64_t seq, std::string_view changelog_key,
                         const std::optional<std::string_view>& value);

  [[nodiscard]] Result<std::uint64_t> local_put(StateFamily family, std::string_view key, std::string_view payload,
                                  std::string_view version);

  // Changelog side.
  [[nodiscard]] Result<state_internal::ApplyOutcome> apply_changelog(const std::string& topic,
                                                       std::span<const state_internal::ChangelogRecord> records);
  std::map<std::int32_t, std::int64_t> load_offsets(const std::string& topic) const;
  // Attaches and publishes what an earlier run left in the outbox, in order.
  void attach(state_internal::Publisher* p);
  void detach(state_internal::Publisher* p);
  void outbox_delivered(std::uint64_t seq);
  std::vector<std::pair<std::uint64_t, std::string>> outbox_snapshot() const;
  std::size_t outbox_size() const;

  [[nodiscard]] Result<std::uint64_t> sweep_expired(std::uint8_t cls);
  [[nodiscard]] Result<std::uint64_t> evict_to(std::uint64_t target_bytes);
  [[nodiscard]] Result<void> rebuild_counters();
  [[nodiscard]] Result<void> load_meta();
  [[nodiscard]] Result<void> migrate_legacy_completed();
  [[nodiscard]] Result<MaintenanceReport> maintain();
  void maintenance_loop();
  [[nodiscard]] Result<void> close();
};

}  // namespace cascade
