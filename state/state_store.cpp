#include <rocksdb/utilities/table_properties_collectors.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "state/store_impl.h"

namespace cascade {

using namespace state_codec;
using state_internal::ApplyOutcome;
using state_internal::ChangelogRecord;

namespace {

constexpr std::string_view kMetaFamily = "meta";
constexpr std::string_view kByTimeFamily = "by_time";
// Maintenance works in chunks so it never holds the write mutex for long.
constexpr int kMaintenanceChunk = 1000;
// The expiry sweep walks entries oldest first and stops after this many
// unexpired ones in a row (entries with a shorter TTL than the local
// configuration's are then left to reads, compactions and eviction).
constexpr int kSweepUnexpiredRun = 10000;

std::int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Error rocks_error(std::string_view what, const rocksdb::Status& st) {
  return Error{ErrorCode::unavailable, std::string(what) + ": " + st.ToString()};
}

std::string le64_string(std::int64_t v) {
  std::string out;
  put_le64(out, static_cast<std::uint64_t>(v));
  return out;
}

bool tenant_scoped(StateFamily f) { return f == StateFamily::responses || f == StateFamily::vectors; }

// The smallest key greater than every key starting with prefix ("" = none).
std::string prefix_successor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty() && static_cast<unsigned char>(s.back()) == 0xff) s.pop_back();
  if (!s.empty()) s.back() = static_cast<char>(static_cast<unsigned char>(s.back()) + 1);
  return s;
}

Result<void> check_tenant(std::string_view tenant) {
  if (tenant.empty() || tenant.find('\0') != std::string_view::npos) {
    return fail(ErrorCode::invalid_request, "tenant must be non-empty and free of NUL bytes");
  }
  return {};
}

}  // namespace

std::int64_t StateOptions::ttl_seconds(StateFamily family) const {
  switch (family) {
    case StateFamily::completed: return completed_ttl_s;
    case StateFamily::responses: return responses_ttl_s;
    case StateFamily::embeddings: return embeddings_ttl_s;
    case StateFamily::vectors: return vectors_ttl_s;
  }
  return 0;
}

namespace state_internal {
bool ExpiryFilter::Filter(int, const rocksdb::Slice&, const rocksdb::Slice& value, std::string*,
                          bool*) const {
  auto e = decode_entry(value.ToStringView());
  return e && expired(*e, now_());
}
}  // namespace state_internal

// ---- staging ---------------------------------------------------------------

std::int64_t StateStore::Impl::floor_of(const Staging& s, std::string_view tenant) const {
  std::int64_t f = 0;
  if (auto it = floors.find(tenant); it != floors.end()) f = it->second;
  if (auto it = s.floors.find(tenant); it != s.floors.end()) f = std::max(f, it->second);
  return f;
}

void StateStore::Impl::add_bytes(Staging& s, StateFamily f, std::int64_t delta) const {
  (index_class(f) == kClassCompleted ? s.completed_delta : s.cache_delta) += delta;
}

Result<void> StateStore::Impl::stage_put(Staging& s, StateFamily family, std::string_view key,
                                         std::string_view bytes, const EntryView& entry) {
  if (auto gone = stage_delete(s, family, key); !gone) return std::unexpected(gone.error());
  s.batch.Put(cf(family), key, bytes);
  const auto size = static_cast<std::int64_t>(key.size() + bytes.size());
  s.batch.Put(by_time, index_key(family, entry.created_ms, key),
              index_value(entry.expires_ms, static_cast<std::uint64_t>(size)));
  add_bytes(s, family, size);
  return {};
}

Result<bool> StateStore::Impl::stage_delete(Staging& s, StateFamily family, std::string_view key) {
  std::string old;
  auto st = s.batch.GetFromBatchAndDB(db.get(), rocksdb::ReadOptions(), cf(family), key, &old);
  if (st.IsNotFound()) return false;
  if (!st.ok()) return std::unexpected(rocks_error("state read", st));
  if (auto e = decode_entry(old)) {
    // The byte count leaves with the index entry that carried it, so the
    // counters always equal the index's sum.
    const std::string ik = index_key(family, e->created_ms, key);
    std::string iv;
    st = s.batch.GetFromBatchAndDB(db.get(), rocksdb::ReadOptions(), by_time, ik, &iv);
    if (st.ok()) {
      if (auto idx = decode_index(ik, iv)) add_bytes(s, family, -static_cast<std::int64_t>(idx->bytes));
      s.batch.Delete(by_time, ik);
    } else if (!st.IsNotFound()) {
      return std::unexpected(rocks_error("state index read", st));
    }
  }
  s.batch.Delete(cf(family), key);
  return true;
}

Result<void> StateStore::Impl::stage_remove_indexed(Staging& s, std::string_view ik, const IndexView& idx) {
  s.batch.Delete(by_time, ik);
  add_bytes(s, idx.family, -static_cast<std::int64_t>(idx.bytes));
  std::string value;
  auto st = s.batch.GetFromBatchAndDB(db.get(), rocksdb::ReadOptions(), cf(idx.family), idx.key, &value);
  if (st.IsNotFound()) return {};  // already dropped by a compaction
  if (!st.ok()) return std::unexpected(rocks_error("state read", st));
  auto e = decode_entry(value);
  // A newer write of the key has an index entry of its own: leave it.
  if (!e || e->created_ms == idx.created_ms) s.batch.Delete(cf(idx.family), idx.key);
  return {};
}

Result<void> StateStore::Impl::stage_purge(Staging& s, std::string_view tenant, std::int64_t through_ms) {
  const std::string prefix = tenant_key(tenant, "");
  const std::string upper = prefix_successor(prefix);
  for (auto family : {StateFamily::responses, StateFamily::vectors}) {
    rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(
        s.batch.NewIteratorWithBase(cf(family), db->NewIterator(ro, cf(family)), &ro));
    // Only entries created up to the purge go: an entry written after it (on
    // any worker) survives wherever the purge is applied, which keeps replicas
    // equal whatever order they see the two records in.
    std::vector<std::string> doomed;
    for (it->Seek(prefix); it->Valid(); it->Next()) {
      const auto k = it->key().ToStringView();
      if (!k.starts_with(prefix)) break;
      auto e = decode_entry(it->value().ToStringView());
      if (!e || e->created_ms <= through_ms) doomed.emplace_back(k);
    }
    if (!it->status().ok()) return std::unexpected(rocks_error("state purge scan", it->status()));
    it.reset();
    for (const auto& k : doomed) {
      if (auto ok = stage_delete(s, family, k); !ok) return std::unexpected(ok.error());
    }
  }
  if (through_ms > floor_of(s, tenant)) {
    s.floors[std::string(tenant)] = through_ms;
    s.batch.Put(meta, meta_floor_key(tenant), le64_string(through_ms));
  }
  return {};
}

Result<std::uint64_t> StateStore::Impl::stage_outbox(Staging& s, std::string_view ckey,
                                                     const std::optional<std::string_view>& value) {
  const std::uint64_t seq = next_outbox_seq++;
  s.batch.Put(meta, meta_outbox_key(seq), encode_outbox(ckey, value));
  return seq;
}

Result<void> StateStore::Impl::commit(Staging& s) {
  auto st = db->Write(rocksdb::WriteOptions(), s.batch.GetWriteBatch());
  if (!st.ok()) return std::unexpected(rocks_error("state store write", st));
  cache_bytes += s.cache_delta;
  completed_bytes += s.completed_delta;
  for (auto& [tenant, f] : s.floors) {
    auto& cur = floors[tenant];
    cur = std::max(cur, f);
  }
  return {};
}

void StateStore::Impl::publish_committed(std::uint64_t seq, std::string_view ckey,
                                         const std::optional<std::string_view>& value) {
  {
    std::lock_guard lock(outbox_mu);
    outbox_pending.insert(seq);
  }
  if (publisher) publisher->publish(seq, ckey, value);
}

Result<std::uint64_t> StateStore::Impl::local_put(StateFamily family, std::string_view key,
                                                  std::string_view payload, std::string_view version) {
  if (!db) return fail(ErrorCode::unavailable, "state store is closed");
  if (version.size() > 0xffff) return fail(ErrorCode::invalid_request, "version tag longer than 65535 bytes");
  std::optional<std::string_view> tenant;
  if (tenant_scoped(family)) {
    tenant = tenant_of(key);
    if (!tenant || tenant->empty()) {
      return fail(ErrorCode::invalid_request,
                  std::string(to_string(family)) + " keys start with a tenant and a NUL byte");
    }
  }
  std::lock_guard lock(write_mu);
  Staging s;
  std::int64_t created = now();
  // Created after the last purge this worker applied, even when another
  // worker's clock that stamped the purge runs ahead of ours.
  if (tenant) created = std::max(created, floor_of(s, *tenant) + 1);
  const std::int64_t ttl = options.ttl_seconds(family);
  const std::int64_t expires = ttl > 0 ? created + ttl * 1000 : 0;
  const std::string bytes = encode_entry(created, expires, version, payload);
  const EntryView view{created, expires, version, payload};
  if (auto ok = stage_put(s, family, key, bytes, view); !ok) return std::unexpected(ok.error());
  std::uint64_t seq = 0;
  std::string ckey;
  if (options.replicated) {
    ckey = changelog_key(family, key);
    auto staged = stage_outbox(s, ckey, bytes);
    if (!staged) return std::unexpected(staged.error());
    seq = *staged;
  }
  if (auto ok = commit(s); !ok) return std::unexpected(ok.error());
  if (seq) {
    note_own_write(ckey);
    publish_committed(seq, ckey, std::string_view(bytes));
  }
  return seq;
}

bool StateStore::Impl::skip_as_echo(const ChangelogRecord& rec) {
  if (unechoed.empty()) return false;
  auto it = unechoed.find(rec.key);
  if (it == unechoed.end()) return false;
  OwnWrite& w = it->second;
  if (!rec.own) {
    w.foreign_since = true;
    return false;
  }
  const bool skip = !w.foreign_since;
  if (--w.pending == 0) unechoed.erase(it);
  return skip;
}

// ---- changelog side --------------------------------------------------------

Result<ApplyOutcome> StateStore::Impl::apply_changelog(const std::string& topic,
                                                       std::span<const ChangelogRecord> records) {
  if (!db) return fail(ErrorCode::unavailable, "state store is closed");
  ApplyOutcome out;
  std::lock_guard lock(write_mu);
  Staging s;
  std::map<std::int32_t, std::int64_t> next_offsets;
  const std::int64_t now_ms = now();
  for (const auto& rec : records) {
    next_offsets[rec.partition] = rec.offset + 1;
    if (skip_as_echo(rec)) {  // this store wrote it, and nothing else touched the key since
      out.echoes_skipped++;
      continue;
    }
    const auto slash = rec.key.find('/');
    if (slash == std::string_view::npos) {
      out.malformed++;
      continue;
    }
    const auto name = rec.key.substr(0, slash);
    const auto key = rec.key.substr(slash + 1);
    if (name == kPurgeFamilyName) {
      if (!rec.value) continue;  // a compaction tombstone of a purge record: nothing to do
      auto through = decode_purge(*rec.value);
      if (!through || !check_tenant(key)) {
        out.malformed++;
        continue;
      }
      if (auto ok = stage_purge(s, key, *through); !ok) return std::unexpected(ok.error());
      out.changes.push_back({true, StateFamily::responses, std::string(key), std::nullopt, *through});
      continue;
    }
    auto family = family_from_name(name);
    if (!family) {
      out.malformed++;
      continue;
    }
    std::optional<EntryView> entry;
    if (rec.value) {
      entry = decode_entry(*rec.value);
      if (!entry) {
        out.malformed++;
        continue;
      }
      std::optional<std::string_view> tenant;
      if (tenant_scoped(*family)) {
        tenant = tenant_of(key);
        if (!tenant || tenant->empty()) {
          out.malformed++;
          continue;
        }
      }
      // An expired entry, or one created before a purge of its tenant, is
      // applied as a delete: the key's last record decides, on every replica.
      if (expired(*entry, now_ms) || (tenant && entry->created_ms <= floor_of(s, *tenant))) entry.reset();
    }
    if (entry) {
      if (auto ok = stage_put(s, *family, key, *rec.value, *entry); !ok) return std::unexpected(ok.error());
      out.changes.push_back({false, *family, std::string(key), to_stored(*entry), 0});
    } else {
      if (auto ok = stage_delete(s, *family, key); !ok) return std::unexpected(ok.error());
      out.changes.push_back({false, *family, std::string(key), std::nullopt, 0});
    }
  }
  // Offsets in the same write as the data: a crash never applies a record
  // without remembering it, nor remembers one it did not apply.
  for (const auto& [partition, next] : next_offsets) {
    s.batch.Put(meta, meta_offset_key(topic, partition), le64_string(next));
  }
  if (auto ok = commit(s); !ok) return std::unexpected(ok.error());
  return out;
}

std::map<std::int32_t, std::int64_t> StateStore::Impl::load_offsets(const std::string& topic) const {
  std::map<std::int32_t, std::int64_t> offsets;
  const std::string prefix = meta_offset_prefix(topic);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), meta));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    const auto k = it->key().ToStringView();
    const auto v = it->value().ToStringView();
    if (k.size() != prefix.size() + 4 || v.size() != 8) continue;
    offsets[partition_of_offset_key(k)] = static_cast<std::int64_t>(get_le64(v.data()));
  }
  return offsets;
}

void StateStore::Impl::attach(state_internal::Publisher* p) {
  std::lock_guard lock(write_mu);
  publisher = p;
  for (const auto& [seq, value] : outbox_snapshot()) {
    if (auto v = decode_outbox(value)) p->publish(seq, v->changelog_key, v->value);
  }
}

void StateStore::Impl::detach(state_internal::Publisher* p) {
  std::lock_guard lock(write_mu);
  if (publisher == p) publisher = nullptr;
}

void StateStore::Impl::outbox_delivered(std::uint64_t seq) {
  if (!db) return;
  // Losing this delete only republishes the record after a restart: harmless.
  auto st = db->Delete(rocksdb::WriteOptions(), meta, meta_outbox_key(seq));
  if (!st.ok()) spdlog::warn("state: outbox entry {} not removed: {}", seq, st.ToString());
  std::lock_guard lock(outbox_mu);
  outbox_pending.erase(seq);
}

std::vector<std::pair<std::uint64_t, std::string>> StateStore::Impl::outbox_snapshot() const {
  std::vector<std::pair<std::uint64_t, std::string>> out;
  if (!db) return out;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), meta));
  for (it->Seek(kMetaOutboxPrefix); it->Valid() && it->key().starts_with(kMetaOutboxPrefix); it->Next()) {
    const auto k = it->key().ToStringView();
    if (k.size() != kMetaOutboxPrefix.size() + 8) continue;
    out.emplace_back(get_be64(k.data() + kMetaOutboxPrefix.size()), it->value().ToString());
  }
  return out;
}

std::size_t StateStore::Impl::outbox_size() const {
  std::lock_guard lock(outbox_mu);
  return outbox_pending.size();
}

// ---- maintenance -----------------------------------------------------------

Result<std::uint64_t> StateStore::Impl::sweep_expired(std::uint8_t cls) {
  std::int64_t min_ttl_ms = 0;
  for (auto f : kAllStateFamilies) {
    const auto ttl = options.ttl_seconds(f);
    if (index_class(f) == cls && ttl > 0 && (min_ttl_ms == 0 || ttl * 1000 < min_ttl_ms)) min_ttl_ms = ttl * 1000;
  }
  std::uint64_t removed = 0;
  std::string resume(1, static_cast<char>(cls));
  const std::string upper(1, static_cast<char>(cls + 1));
  int unexpired_run = 0;
  for (bool done = false; !done;) {
    std::lock_guard lock(write_mu);
    const std::int64_t now_ms = now();
    Staging s;
    std::uint64_t chunk_removed = 0;
    rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, by_time));
    int seen = 0;
    for (it->Seek(resume); ; it->Next()) {
      if (!it->Valid()) {
        done = true;
        break;
      }
      if (seen++ == kMaintenanceChunk) break;
      const auto ik = it->key().ToStringView();
      resume.assign(ik).push_back('\0');
      auto idx = decode_index(ik, it->value().ToStringView());
      if (!idx) {
        s.batch.Delete(by_time, ik);
        continue;
      }
      if (idx->expires_ms != 0 && idx->expires_ms <= now_ms) {
        if (auto ok = stage_remove_indexed(s, ik, *idx); !ok) return std::unexpected(ok.error());
        chunk_removed++;
        unexpired_run = 0;
        continue;
      }
      // Entries this young cannot have expired under the local TTLs.
      if ((min_ttl_ms > 0 && idx->created_ms + min_ttl_ms > now_ms) || ++unexpired_run >= kSweepUnexpiredRun) {
        done = true;
        break;
      }
    }
    if (!it->status().ok()) return std::unexpected(rocks_error("state sweep", it->status()));
    it.reset();
    if (auto ok = commit(s); !ok) return std::unexpected(ok.error());
    removed += chunk_removed;
  }
  expired_total += removed;
  return removed;
}

Result<std::uint64_t> StateStore::Impl::evict_to(std::uint64_t target) {
  std::uint64_t evicted = 0;
  std::string resume(1, static_cast<char>(kClassCache));
  const std::string upper(1, static_cast<char>(kClassCache + 1));
  const auto total = [&](const Staging& s) {
    return cache_bytes.load() + completed_bytes.load() + s.cache_delta + s.completed_delta;
  };
  for (bool done = false; !done;) {
    std::lock_guard lock(write_mu);
    const std::int64_t now_ms = now();
    Staging s;
    std::uint64_t chunk_evicted = 0, chunk_expired = 0;
    rocksdb::Slice upper_slice(upper);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, by_time));
    int seen = 0;
    for (it->Seek(resume); ; it->Next()) {
      if (total(s) <= static_cast<std::int64_t>(target) || !it->Valid()) {
        done = true;
        break;
      }
      if (seen++ == kMaintenanceChunk) break;
      const auto ik = it->key().ToStringView();
      resume.assign(ik).push_back('\0');
      auto idx = decode_index(ik, it->value().ToStringView());
      if (!idx) {
        s.batch.Delete(by_time, ik);
        continue;
      }
      if (auto ok = stage_remove_indexed(s, ik, *idx); !ok) return std::unexpected(ok.error());
      (idx->expires_ms != 0 && idx->expires_ms <= now_ms ? chunk_expired : chunk_evicted)++;
    }
    if (!it->status().ok()) return std::unexpected(rocks_error("state eviction", it->status()));
    it.reset();
    if (auto ok = commit(s); !ok) return std::unexpected(ok.error());
    evicted += chunk_evicted;
    expired_total += chunk_expired;
  }
  evicted_total += evicted;
  return evicted;
}

Result<void> StateStore::Impl::rebuild_counters() {
  std::int64_t sums[2] = {0, 0};
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), by_time));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (auto idx = decode_index(it->key().ToStringView(), it->value().ToStringView()); idx && idx->cls < 2) {
      sums[idx->cls] += static_cast<std::int64_t>(idx->bytes);
    }
  }
  if (!it->status().ok()) return std::unexpected(rocks_error("state index scan", it->status()));
  cache_bytes = sums[kClassCache];
  completed_bytes = sums[kClassCompleted];
  return {};
}

Result<void> StateStore::Impl::load_meta() {
  std::string format;
  auto st = db->Get(rocksdb::ReadOptions(), meta, kMetaFormat, &format);
  if (st.ok() && format != kStoreFormat) {
    return fail(ErrorCode::unavailable, "state store " + options.dir + " has format " + format +
                                            ", this build reads format " + std::string(kStoreFormat));
  }
  if (st.IsNotFound()) {
    st = db->Put(rocksdb::WriteOptions(), meta, kMetaFormat, kStoreFormat);
  }
  if (!st.ok()) return std::unexpected(rocks_error("state meta", st));

  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), meta));
  for (it->Seek(kMetaFloorPrefix); it->Valid() && it->key().starts_with(kMetaFloorPrefix); it->Next()) {
    if (it->value().size() != 8) continue;
    floors[std::string(it->key().ToStringView().substr(kMetaFloorPrefix.size()))] =
        static_cast<std::int64_t>(get_le64(it->value().data()));
  }
  for (const auto& [seq, value] : outbox_snapshot()) {
    outbox_pending.insert(seq);
    next_outbox_seq = std::max(next_outbox_seq, seq + 1);
  }
  return {};
}

// Stores written before the state component had column families per concern
// were DBWithTTL instances holding only `completed`: each value is the answer
// encoding followed by a 4-byte write time in seconds. They become entries.
Result<void> StateStore::Impl::migrate_legacy_completed() {
  std::lock_guard lock(write_mu);
  Staging s;
  const std::int64_t ttl = options.completed_ttl_s;
  const std::int64_t now_ms = now();
  std::uint64_t migrated = 0;
  auto* completed = cf(StateFamily::completed);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), completed));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const auto key = it->key().ToStringView();
    const auto v = it->value().ToStringView();
    if (v.size() < 4) {
      s.batch.Delete(completed, key);
      continue;
    }
    const std::int64_t created = static_cast<std::int64_t>(get_le32(v.data() + v.size() - 4)) * 1000;
    const std::int64_t expires = ttl > 0 ? created + ttl * 1000 : 0;
    const auto payload = v.substr(0, v.size() - 4);
    if (expires != 0 && expires <= now_ms) {
      s.batch.Delete(completed, key);
      continue;
    }
    const std::string bytes = encode_entry(created, expires, "", payload);
    s.batch.Put(completed, key, bytes);
    const auto size = static_cast<std::int64_t>(key.size() + bytes.size());
    s.batch.Put(by_time, index_key(StateFamily::completed, created, key),
                index_value(expires, static_cast<std::uint64_t>(size)));
    add_bytes(s, StateFamily::completed, size);
    migrated++;
  }
  if (!it->status().ok()) return std::unexpected(rocks_error("state migration scan", it->status()));
  it.reset();
  s.batch.Put(meta, kMetaFormat, kStoreFormat);
  if (auto ok = commit(s); !ok) return ok;
  spdlog::info("state: migrated {} completed answers in {} to the column-family layout", migrated, options.dir);
  return {};
}

Result<MaintenanceReport> StateStore::Impl::maintain() {
  if (!db) return fail(ErrorCode::unavailable, "state store is closed");
  MaintenanceReport r;
  const auto total = [&] { return static_cast<std::uint64_t>(std::max<std::int64_t>(0, cache_bytes.load() + completed_bytes.load())); };
  r.bytes_before = total();
  for (auto cls : {kClassCache, kClassCompleted}) {
    auto n = sweep_expired(cls);
    if (!n) return std::unexpected(n.error());
    r.expired += *n;
  }
  if (total() > options.max_bytes) {
    const auto expired_before = expired_total.load();
    // Down to 90% so the bound is not crossed again by the next few writes.
    auto n = evict_to(options.max_bytes / 10 * 9);
    if (!n) return std::unexpected(n.error());
    r.evicted = *n;
    r.expired += expired_total.load() - expired_before;
  }
  r.bytes_after = total();
  r.over_bound = r.bytes_after > options.max_bytes;
  if (r.over_bound) {
    spdlog::warn("state: {} bytes of unexpired completed answers exceed state.max_bytes ({})",
                 completed_bytes.load(), options.max_bytes);
  }
  return r;
}

void StateStore::Impl::maintenance_loop() {
  std::unique_lock lock(maintenance_mu);
  while (!maintenance_stop) {
    maintenance_cv.wait_for(lock, std::chrono::milliseconds(options.maintenance_interval_ms),
                            [&] { return maintenance_stop; });
    if (maintenance_stop) break;
    lock.unlock();
    const auto started = std::chrono::steady_clock::now();
    auto r = maintain();
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
    if (!r) {
      spdlog::warn("state: maintenance failed: {}", r.error().message);
    } else if (r->expired || r->evicted) {
      spdlog::debug("state: maintenance expired {} evicted {} in {} ms", r->expired, r->evicted, ms);
    }
    lock.lock();
  }
}

Result<void> StateStore::Impl::close() {
  if (closed) return {};
  closed = true;
  if (maintenance.joinable()) {
    {
      std::lock_guard lock(maintenance_mu);
      maintenance_stop = true;
    }
    maintenance_cv.notify_all();
    maintenance.join();
  }
  if (!db) return {};
  {
    std::lock_guard lock(write_mu);
    if (publisher) {
      spdlog::warn("state: store closed while a changelog is attached; destroy the StateChangelog first");
      publisher = nullptr;
    }
  }
  Result<void> result;
  // Flushed memtables make the next open skip WAL replay; the WAL already
  // made every write durable against a process crash.
  rocksdb::FlushOptions fo;
  fo.wait = true;
  auto st = db->Flush(fo, handles);
  if (!st.ok()) result = std::unexpected(rocks_error("state flush", st));
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  handles.clear();
  st = db->Close();
  if (!st.ok() && result) result = std::unexpected(rocks_error("state close", st));
  db.reset();
  return result;
}

// ---- public ----------------------------------------------------------------

StateStore::StateStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

StateStore::~StateStore() {
  if (auto ok = impl_->close(); !ok) spdlog::warn("state: {}", ok.error().message);
}

Result<void> StateStore::close() { return impl_->close(); }

Result<std::unique_ptr<StateStore>> StateStore::open(StateOptions options) {
  const std::string dir = options.dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(ErrorCode::unavailable, "cannot create state dir " + dir + ": " + ec.message());

  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->now = impl->options.now_ms ? impl->options.now_ms : std::function<std::int64_t()>(system_now_ms);
  impl->filter = std::make_unique<state_internal::ExpiryFilter>(impl->now);

  rocksdb::Options o;
  o.create_if_missing = true;
  o.create_missing_column_families = true;
  o.IncreaseParallelism(2);
  o.keep_log_file_num = 4;

  bool legacy = false;
  std::vector<std::string> existing;
  if (rocksdb::DB::ListColumnFamilies(o, dir, &existing).ok()) {
    const auto has = [&](std::string_view n) { return std::find(existing.begin(), existing.end(), n) != existing.end(); };
    legacy = has(to_string(StateFamily::completed)) && !has(kMetaFamily);
  }

  rocksdb::ColumnFamilyOptions plain(o);
  // Deleting oldest-first leaves runs of tombstones at the start of the index
  // and in the data; files dense with them are compacted early.
  plain.table_properties_collector_factories.push_back(
      rocksdb::NewCompactOnDeletionCollectorFactory(10000, 3000, 0.3));
  rocksdb::ColumnFamilyOptions data = plain;
  data.compaction_filter = impl->filter.get();

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, plain);
  for (auto f : kAllStateFamilies) descriptors.emplace_back(std::string(to_string(f)), data);
  descriptors.emplace_back(std::string(kMetaFamily), plain);
  descriptors.emplace_back(std::string(kByTimeFamily), plain);

  rocksdb::DB* db = nullptr;
  auto st = rocksdb::DB::Open(o, dir, descriptors, &impl->handles, &db);
  if (!st.ok()) {
    return fail(ErrorCode::unavailable,
                "cannot open state store " + dir + ": " + st.ToString() +
                    " (each worker process needs its own state.dir)");
  }
  impl->db.reset(db);
  for (auto f : kAllStateFamilies) impl->families[static_cast<int>(f)] = impl->handles[1 + static_cast<int>(f)];
  impl->meta = impl->handles[5];
  impl->by_time = impl->handles[6];

  auto store = std::unique_ptr<StateStore>(new StateStore(std::move(impl)));
  Impl& s = *store->impl_;
  if (legacy) {
    if (auto ok = s.migrate_legacy_completed(); !ok) return std::unexpected(ok.error());
  }
  if (auto ok = s.load_meta(); !ok) return std::unexpected(ok.error());
  if (auto ok = s.rebuild_counters(); !ok) return std::unexpected(ok.error());
  if (s.options.maintenance_interval_ms > 0) {
    s.maintenance = std::thread([&s] { s.maintenance_loop(); });
  }
  return store;
}

Result<std::uint64_t> StateStore::put(StateFamily family, std::string_view key, std::string_view payload,
                                      std::string_view version) {
  return impl_->local_put(family, key, payload, version);
}

Result<std::uint64_t> StateStore::erase(StateFamily family, std::string_view key) {
  Impl& s = *impl_;
  if (!s.db) return fail(ErrorCode::unavailable, "state store is closed");
  std::lock_guard lock(s.write_mu);
  Impl::Staging staging;
  if (auto ok = s.stage_delete(staging, family, key); !ok) return std::unexpected(ok.error());
  std::uint64_t seq = 0;
  std::string ckey;
  if (s.options.replicated) {
    ckey = changelog_key(family, key);
    auto staged = s.stage_outbox(staging, ckey, std::nullopt);
    if (!staged) return std::unexpected(staged.error());
    seq = *staged;
  }
  if (auto ok = s.commit(staging); !ok) return std::unexpected(ok.error());
  if (seq) {
    s.note_own_write(ckey);
    s.publish_committed(seq, ckey, std::nullopt);
  }
  return seq;
}

Result<std::uint64_t> StateStore::purge_tenant(std::string_view tenant) {
  if (auto ok = check_tenant(tenant); !ok) return std::unexpected(ok.error());
  Impl& s = *impl_;
  if (!s.db) return fail(ErrorCode::unavailable, "state store is closed");
  std::lock_guard lock(s.write_mu);
  Impl::Staging staging;
  const std::int64_t through = std::max(s.now(), s.floor_of(staging, tenant));
  if (auto ok = s.stage_purge(staging, tenant, through); !ok) return std::unexpected(ok.error());
  std::uint64_t seq = 0;
  std::string ckey, value;
  if (s.options.replicated) {
    ckey = purge_changelog_key(tenant);
    value = encode_purge(through);
    auto staged = s.stage_outbox(staging, ckey, std::string_view(value));
    if (!staged) return std::unexpected(staged.error());
    seq = *staged;
  }
  if (auto ok = s.commit(staging); !ok) return std::unexpected(ok.error());
  if (seq) s.publish_committed(seq, ckey, std::string_view(value));
  return seq;
}

std::optional<StoredEntry> StateStore::get(StateFamily family, std::string_view key,
                                           std::string_view expected_version) const {
  const Impl& s = *impl_;
  if (!s.db) return std::nullopt;
  rocksdb::PinnableSlice value;
  auto st = s.db->Get(rocksdb::ReadOptions(), s.cf(family), key, &value);
  if (st.IsNotFound()) return std::nullopt;
  if (!st.ok()) {
    spdlog::warn("state: {} read failed: {}", to_string(family), st.ToString());
    return std::nullopt;
  }
  auto e = decode_entry(value.ToStringView());
  if (!e) {
    spdlog::warn("state: undecodable {} entry ignored", to_string(family));
    return std::nullopt;
  }
  // Never serve an expired entry, whether or not a compaction dropped it yet.
  if (expired(*e, s.now()) || e->version != expected_version) return std::nullopt;
  return to_stored(*e);
}

Result<void> StateStore::for_each(StateFamily family, std::string_view prefix,
                                  const std::function<bool(std::string_view, const StoredEntry&)>& fn) const {
  const Impl& s = *impl_;
  if (!s.db) return fail(ErrorCode::unavailable, "state store is closed");
  const std::string upper = prefix_successor(prefix);
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
  const std::int64_t now_ms = s.now();
  std::unique_ptr<rocksdb::Iterator> it(s.db->NewIterator(ro, s.cf(family)));
  for (it->Seek(rocksdb::Slice(prefix.data(), prefix.size())); it->Valid(); it->Next()) {
    const auto k = it->key().ToStringView();
    if (!k.starts_with(prefix)) break;
    auto e = decode_entry(it->value().ToStringView());
    if (!e || expired(*e, now_ms)) continue;
    if (!fn(k, to_stored(*e))) break;
  }
  if (!it->status().ok()) return std::unexpected(rocks_error("state scan", it->status()));
  return {};
}

Result<std::uint64_t> StateStore::put_response(std::string_view tenant, std::string_view fingerprint,
                                               std::string_view payload, std::string_view version) {
  if (auto ok = check_tenant(tenant); !ok) return std::unexpected(ok.error());
  return put(StateFamily::responses, tenant_key(tenant, fingerprint), payload, version);
}

std::optional<StoredEntry> StateStore::get_response(std::string_view tenant, std::string_view fingerprint,
                                                    std::string_view expected_version) const {
  if (!check_tenant(tenant)) return std::nullopt;
  return get(StateFamily::responses, tenant_key(tenant, fingerprint), expected_version);
}

Result<std::uint64_t> StateStore::put_embedding(std::string_view embedder_version, std::string_view content_hash,
                                                std::span<const float> embedding) {
  const std::string_view bytes(reinterpret_cast<const char*>(embedding.data()), embedding.size_bytes());
  return put(StateFamily::embeddings, embedding_key(embedder_version, content_hash), bytes, embedder_version);
}

std::optional<std::vector<float>> StateStore::get_embedding(std::string_view embedder_version,
                                                            std::string_view content_hash) const {
  auto e = get(StateFamily::embeddings, embedding_key(embedder_version, content_hash), embedder_version);
  if (!e || e->payload.size() % sizeof(float) != 0) return std::nullopt;
  std::vector<float> v(e->payload.size() / sizeof(float));
  std::memcpy(v.data(), e->payload.data(), e->payload.size());
  return v;
}

Result<std::uint64_t> StateStore::put_vector(std::string_view tenant, std::string_view entry_id,
                                             const VectorEntry& entry, std::string_view version) {
  if (auto ok = check_tenant(tenant); !ok) return std::unexpected(ok.error());
  return put(StateFamily::vectors, tenant_key(tenant, entry_id), encode_vector_entry(entry), version);
}

std::optional<VectorEntry> StateStore::get_vector(std::string_view tenant, std::string_view entry_id,
                                                  std::string_view expected_version) const {
  if (!check_tenant(tenant)) return std::nullopt;
  auto e = get(StateFamily::vectors, tenant_key(tenant, entry_id), expected_version);
  if (!e) return std::nullopt;
  return decode_vector_entry(e->payload);
}

bool StateStore::published(std::uint64_t outbox_seq) const {
  if (outbox_seq == 0) return true;
  std::lock_guard lock(impl_->outbox_mu);
  return !impl_->outbox_pending.contains(outbox_seq);
}

Result<MaintenanceReport> StateStore::maintain() { return impl_->maintain(); }

Result<void> StateStore::compact() {
  Impl& s = *impl_;
  if (!s.db) return fail(ErrorCode::unavailable, "state store is closed");
  rocksdb::CompactRangeOptions co;
  co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  for (auto* h : s.handles) {
    auto st = s.db->CompactRange(co, h, nullptr, nullptr);
    if (!st.ok()) return std::unexpected(rocks_error("state compaction", st));
  }
  return {};
}

StateStats StateStore::stats() const {
  const Impl& s = *impl_;
  StateStats r;
  r.cache_bytes = static_cast<std::uint64_t>(std::max<std::int64_t>(0, s.cache_bytes.load()));
  r.completed_bytes = static_cast<std::uint64_t>(std::max<std::int64_t>(0, s.completed_bytes.load()));
  r.expired_total = s.expired_total.load();
  r.evicted_total = s.evicted_total.load();
  r.outbox_pending = s.outbox_size();
  return r;
}

const StateOptions& StateStore::options() const { return impl_->options; }

}  // namespace cascade
