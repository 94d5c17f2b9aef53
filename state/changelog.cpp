#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "kafka/kafka.h"
#include "state/store_impl.h"

namespace cascade {

using namespace state_codec;
using state_internal::ChangelogRecord;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kWriterHeader = "cascade-writer";
// One RocksDB write per applier round, bounded so a restore's batches stay small.
constexpr std::size_t kMaxBatchRecords = 2000;
constexpr std::size_t kMaxBatchBytes = 8u << 20;
// Failed publishes are retried from the outbox at most this often.
constexpr auto kRetryInterval = std::chrono::seconds(1);
// How long the destructor waits for queued publishes.
constexpr int kCloseFlushMs = 5000;

std::int64_t wall_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

std::string default_writer_id() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%08x", rd());
  return std::string(host) + ":" + std::to_string(getpid()) + ":" + suffix;
}

}  // namespace

struct StateChangelog::Impl final : state_internal::Publisher {
  explicit Impl(StateStore::Impl& s) : store(s) {}
  ~Impl() override;

  StateStore::Impl& store;
  std::string topic;
  std::string writer_id;
  ChangelogListener* listener = nullptr;
  std::unique_ptr<KafkaProducer> producer;
  std::unique_ptr<PartitionReader> reader;
  int partitions = 0;
  std::atomic<bool> abandoned{false};
  bool attached = false;

  // Publisher side.
  std::mutex publish_mu;
  std::set<std::uint64_t> in_flight;  // outbox seqs handed to librdkafka
  bool needs_retry = false;
  Clock::time_point last_retry{};
  std::atomic<std::uint64_t> publish_failures{0};

  // Applier side; the figures are read by lag() from other threads.
  std::atomic<bool> applying{false};
  mutable std::mutex stats_mu;
  std::vector<std::int64_t> next_offset;  // -1 = from the beginning, nothing applied yet
  std::vector<bool> at_end;               // partitions that reported their end since restore() began
  std::uint64_t applied = 0;
  std::uint64_t applied_bytes = 0;
  std::uint64_t malformed = 0;
  std::uint64_t echoes_skipped = 0;
  std::optional<Clock::time_point> last_foreign_apply;
  std::int64_t last_foreign_delay_ms = -1;

  // Catch-up requests (request_catch_up): tickets handed out, the one the
  // applier is serving (applier thread only), and the last one served.
  std::atomic<std::uint64_t> catch_up_requested{0};
  std::uint64_t catch_up_serving = 0;
  std::atomic<std::uint64_t> catch_up_done{0};

  std::thread thread;
  std::atomic<bool> stop_flag{false};

  void publish(std::uint64_t seq, std::string_view changelog_key,
               const std::optional<std::string_view>& value) override;
  void retry_pending(bool force);
  void on_delivery(const DeliveryReport& report);
  Result<std::size_t> apply_available(int timeout_ms);
  Result<std::size_t> apply_round(int timeout_ms);
  // Seeks every partition to its applied offset and forgets which reported
  // their end, so "all at end" next means caught up with a fetch made after
  // this call. Caller holds stats_mu.
  Result<void> rewind_to_applied_locked();
  bool all_at_end() const;
  bool flush(int timeout_ms);
  void stop();
};

void StateChangelog::Impl::publish(std::uint64_t seq, std::string_view key,
                                   const std::optional<std::string_view>& value) {
  if (abandoned) return;
  {
    std::lock_guard lock(publish_mu);
    if (!in_flight.insert(seq).second) return;
  }
  // A null value is the tombstone compaction removes the key on.
  auto queued = producer->produce(
      topic, {.key = key, .value = value, .header = RecordHeader{kWriterHeader, writer_id}, .token = seq});
  if (!queued || *queued == KafkaProducer::Enqueued::queue_full) {
    // Stays in the outbox; retried from there.
    std::lock_guard lock(publish_mu);
    in_flight.erase(seq);
    needs_retry = true;
    spdlog::debug("state: changelog publish deferred: {}", queued ? "queue full" : queued.error().message);
  }
}

void StateChangelog::Impl::on_delivery(const DeliveryReport& report) {
  const std::uint64_t seq = report.token;
  if (!report.delivered) {
    publish_failures++;
    if (!report.purged) spdlog::warn("state: changelog publish failed (retried): {}", report.error);
    std::lock_guard lock(publish_mu);
    in_flight.erase(seq);
    needs_retry = true;
    return;
  }
  // Out of the outbox before leaving in_flight, so a retry cannot resend it.
  store.outbox_delivered(seq);
  std::lock_guard lock(publish_mu);
  in_flight.erase(seq);
}

void StateChangelog::Impl::retry_pending(bool force) {
  if (abandoned) return;
  {
    std::lock_guard lock(publish_mu);
    if (!needs_retry || (!force && Clock::now() - last_retry < kRetryInterval)) return;
    needs_retry = false;
    last_retry = Clock::now();
  }
  for (const auto& [seq, value] : store.outbox_snapshot()) {
    if (auto v = decode_outbox(value)) publish(seq, v->changelog_key, v->value);
  }
}

Result<std::size_t> StateChangelog::Impl::apply_available(int timeout_ms) {
  const std::uint64_t requested = catch_up_requested.load();
  if (requested > catch_up_serving) {
    std::lock_guard lock(stats_mu);
    if (auto ok = rewind_to_applied_locked(); !ok) return std::unexpected(ok.error());
    catch_up_serving = requested;  // later requests are covered by this rewind too
  }
  auto applied_now = apply_round(timeout_ms);
  if (applied_now && catch_up_serving > catch_up_done.load() && all_at_end()) {
    catch_up_done.store(catch_up_serving);
  }
  return applied_now;
}

Result<void> StateChangelog::Impl::rewind_to_applied_locked() {
  std::map<TopicPartition, std::int64_t> offsets;
  for (int p = 0; p < partitions; ++p) offsets[{topic, p}] = next_offset[p] >= 0 ? next_offset[p] : kOffsetBeginning;
  // Asynchronous (timeout 0): never blocks; records and ends fetched before
  // the seek are dropped by its version barrier.
  if (auto ok = reader->seek(offsets, 0); !ok) return ok;
  at_end.assign(partitions, false);
  return {};
}

bool StateChangelog::Impl::all_at_end() const {
  std::lock_guard lock(stats_mu);
  return std::all_of(at_end.begin(), at_end.end(), [](bool b) { return b; });
}

Result<std::size_t> StateChangelog::Impl::apply_round(int timeout_ms) {
  if (applying.exchange(true)) return fail(ErrorCode::internal, "the changelog applier is already running");
  struct Release {
    std::atomic<bool>& flag;
    ~Release() { flag = false; }
  } release{applying};

  producer->poll(0);
  retry_pending(false);

  std::vector<KafkaRecord> messages;
  std::size_t batch_bytes = 0;
  for (auto msg = reader->poll(timeout_ms); msg; msg = reader->poll(0)) {
    batch_bytes += msg->payload().size() + msg->key().size();
    messages.push_back(std::move(*msg));
    if (messages.size() >= kMaxBatchRecords || batch_bytes >= kMaxBatchBytes) break;
  }
  if (messages.empty()) return 0;

  std::vector<ChangelogRecord> records;
  records.reserve(messages.size());
  std::map<TopicPartition, std::int64_t> first_offset;
  std::uint64_t record_bytes = 0;
  for (const KafkaRecord& msg : messages) {
    if (!msg.ok()) {
      if (!msg.partition_end()) spdlog::warn("state: changelog consumer: {}", msg.error());
      continue;
    }
    ChangelogRecord r;
    r.partition = msg.partition();
    r.offset = msg.offset();
    r.key = msg.key();
    if (!msg.tombstone()) r.value = msg.payload();
    r.own = msg.header(kWriterHeader) == std::optional<std::string_view>(writer_id);
    first_offset.try_emplace({topic, r.partition}, r.offset);
    record_bytes += r.key.size() + msg.payload().size();
    records.push_back(r);
  }
  const auto note_ends = [&] {
    std::lock_guard lock(stats_mu);
    for (const KafkaRecord& msg : messages) {
      if (msg.partition_end() && msg.partition() >= 0 && msg.partition() < static_cast<int>(next_offset.size())) {
        next_offset[msg.partition()] = std::max(next_offset[msg.partition()], msg.offset());
        if (msg.partition() < static_cast<int>(at_end.size())) at_end[msg.partition()] = true;
      }
    }
  };
  if (records.empty()) {
    note_ends();
    return 0;
  }

  auto outcome = store.apply_changelog(topic, records);
  if (!outcome) {
    // Nothing of the batch was written (one RocksDB write): rewind so the
    // next round reads it again.
    (void)reader->seek(first_offset, 5000);
    return std::unexpected(outcome.error());
  }

  note_ends();
  {
    std::lock_guard lock(stats_mu);
    applied += records.size();
    applied_bytes += record_bytes;
    malformed += outcome->malformed;
    echoes_skipped += outcome->echoes_skipped;
    const std::int64_t now_wall = wall_now_ms();
    for (const KafkaRecord& msg : messages) {
      if (!msg.ok()) continue;
      if (msg.partition() >= 0 && msg.partition() < static_cast<int>(next_offset.size())) {
        next_offset[msg.partition()] = std::max(next_offset[msg.partition()], msg.offset() + 1);
      }
      if (msg.header(kWriterHeader) != std::optional<std::string_view>(writer_id)) {
        last_foreign_apply = Clock::now();
        const std::int64_t ts = msg.timestamp_ms();
        if (ts > 0) last_foreign_delay_ms = std::max<std::int64_t>(0, now_wall - ts);
      }
    }
  }
  if (listener) {
    for (const auto& c : outcome->changes) {
      if (c.purge) {
        listener->on_tenant_purged(c.key, c.purged_through_ms);
      } else {
        listener->on_applied(c.family, c.key, c.entry ? &*c.entry : nullptr);
      }
    }
  }
  return records.size();
}

bool StateChangelog::Impl::flush(int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    if (abandoned) return store.outbox_size() == 0;
    retry_pending(true);
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    producer->flush(static_cast<int>(std::clamp<std::int64_t>(left, 0, 100)));
    if (store.outbox_size() == 0) return true;
    if (Clock::now() >= deadline) return false;
  }
}

void StateChangelog::Impl::stop() {
  stop_flag = true;
  if (thread.joinable()) thread.join();
}

StateChangelog::Impl::~Impl() {
  stop();
  if (producer) {
    if (attached && !abandoned && !flush(kCloseFlushMs)) {
      spdlog::warn("state: {} changes not yet in the changelog; published from the outbox on the next start",
                   store.outbox_size());
    }
    if (attached) store.detach(this);
    // Delivery reports of what is left run now, while this object is whole.
    producer->purge();
    producer.reset();
  }
  reader.reset();  // closes its consumer
}

// ---- public ----------------------------------------------------------------

StateChangelog::StateChangelog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StateChangelog::~StateChangelog() = default;

Result<std::unique_ptr<StateChangelog>> StateChangelog::open(StateStore& store, const KafkaConfig& kafka,
                                                             const std::string& bootstrap,
                                                             ChangelogListener* listener) {
  if (!store.impl_->db) return fail(ErrorCode::unavailable, "state store is closed");
  const StateOptions& options = store.options();
  auto impl = std::make_unique<Impl>(*store.impl_);
  impl->topic = options.changelog_topic;
  impl->writer_id = options.writer_id.empty() ? default_writer_id() : options.writer_id;
  impl->listener = listener;

  auto producer = KafkaProducer::create(
      kafka, bootstrap,
      // Every client must agree on a key's partition: a key's records stay
      // in one partition for last-write-wins.
      {.java_partitioner = true,
       .on_delivery = [c = impl.get()](const DeliveryReport& report) { c->on_delivery(report); }});
  if (!producer) return std::unexpected(producer.error());
  impl->producer = std::move(*producer);

  // A wiped store has no offsets: it restores from the beginning.
  std::map<TopicPartition, std::int64_t> start_offsets;
  for (const auto& [p, offset] : impl->store.load_offsets(impl->topic)) start_offsets[{impl->topic, p}] = offset;
  // No consumer group: every worker reads every partition. End-of-partition
  // markers tell restore() that a partition is caught up, also when there is
  // nothing to read.
  auto reader = PartitionReader::open(
      kafka, bootstrap,
      {.topics = {impl->topic},
       .name = "changelog",
       .missing_topic_hint =
           "create it before the workers start: create_changelog_topic, or the embedded broker's create_topic",
       .offsets = start_offsets,
       .report_partition_ends = true,
       .group_id = "cascade-state-applier"});
  if (!reader) return std::unexpected(reader.error());
  impl->reader = std::move(*reader);
  impl->partitions = static_cast<int>(impl->reader->partitions().size());
  impl->next_offset.assign(impl->partitions, -1);
  for (const auto& [tp, offset] : start_offsets) {
    if (tp.partition < impl->partitions) impl->next_offset[tp.partition] = offset;
  }
  impl->store.attach(impl.get());
  impl->attached = true;
  return std::unique_ptr<StateChangelog>(new StateChangelog(std::move(impl)));
}

Result<RestoreReport> StateChangelog::restore(int timeout_ms) {
  Impl& c = *impl_;
  if (c.thread.joinable()) return fail(ErrorCode::internal, "restore() runs before start()");
  if (timeout_ms < 0) timeout_ms = c.store.options.restore_timeout_ms;
  const auto started = Clock::now();
  const auto deadline = started + std::chrono::milliseconds(timeout_ms);
  const auto left_ms = [&] {
    return static_cast<int>(std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count()));
  };
  std::uint64_t records_before = 0, bytes_before = 0;
  {
    std::lock_guard lock(c.stats_mu);
    records_before = c.applied;
    bytes_before = c.applied_bytes;
  }
  const auto timed_out = [&](std::string_view waiting_for) -> Result<RestoreReport> {
    std::lock_guard lock(c.stats_mu);
    return fail(ErrorCode::timeout, "changelog restore of " + c.topic + " gave up after " +
                                        std::to_string(timeout_ms) + " ms " + std::string(waiting_for) + " (" +
                                        std::to_string(c.applied - records_before) + " records applied)");
  };

  // Caught up = every partition has reported its end (PARTITION_EOF) since
  // this call began. The EOF comes after the partition's earlier records in
  // the queue, so they are applied by then; and seeking every partition to
  // its applied offset restarts its fetcher, so the EOF is reported anew for
  // the high watermark of a fetch made after the call began. (Asking the
  // broker for watermarks, PartitionReader::query_watermarks, does not honour
  // its timeout while a broker is unreachable; restore must give up on time.)
  {
    std::lock_guard lock(c.stats_mu);
    if (auto ok = c.rewind_to_applied_locked(); !ok) return std::unexpected(ok.error());
  }
  while (!c.all_at_end()) {
    if (left_ms() <= 0) return timed_out("catching up");
    if (auto n = c.apply_available(std::min(left_ms(), 100)); !n) return std::unexpected(n.error());
  }
  RestoreReport report;
  {
    std::lock_guard lock(c.stats_mu);
    report.records = c.applied - records_before;
    report.bytes = c.applied_bytes - bytes_before;
  }
  report.elapsed_ms = ms_since(started);
  report.partitions = c.partitions;
  return report;
}

Result<std::size_t> StateChangelog::apply_available(int timeout_ms) { return impl_->apply_available(timeout_ms); }

Result<void> StateChangelog::start() {
  Impl& c = *impl_;
  if (c.thread.joinable()) return {};
  c.stop_flag = false;
  c.thread = std::thread([&c] {
    while (!c.stop_flag) {
      if (auto n = c.apply_available(100); !n) {
        spdlog::warn("state: changelog apply failed (retrying): {}", n.error().message);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    }
  });
  return {};
}

void StateChangelog::stop() { impl_->stop(); }

bool StateChangelog::flush(int timeout_ms) { return impl_->flush(timeout_ms); }

std::uint64_t StateChangelog::request_catch_up() {
  const std::uint64_t ticket = impl_->catch_up_requested.fetch_add(1) + 1;
  // Wakes an applier waiting for records, so it rewinds now rather than
  // after its poll times out.
  impl_->reader->wake();
  return ticket;
}

bool StateChangelog::caught_up(std::uint64_t ticket) const { return impl_->catch_up_done.load() >= ticket; }

ChangelogLag StateChangelog::lag() const {
  const Impl& c = *impl_;
  ChangelogLag lag;
  lag.publish_failures = c.publish_failures.load();
  std::lock_guard lock(c.stats_mu);
  for (int p = 0; p < c.partitions; ++p) {
    // Cached from fetch responses: no broker round trip.
    const auto marks = c.reader->cached_watermarks({c.topic, p});
    if (!marks || marks->high < 0) continue;
    const std::int64_t next = c.next_offset[p] >= 0 ? c.next_offset[p] : std::max<std::int64_t>(marks->low, 0);
    lag.messages_behind += std::max<std::int64_t>(0, marks->high - next);
  }
  if (c.last_foreign_apply) lag.ms_since_foreign_apply = ms_since(*c.last_foreign_apply);
  lag.last_foreign_delay_ms = c.last_foreign_delay_ms;
  lag.applied = c.applied;
  lag.malformed = c.malformed;
  lag.echoes_skipped = c.echoes_skipped;
  return lag;
}

void StateChangelog::abandon_unsent() {
  Impl& c = *impl_;
  c.abandoned = true;
  c.producer->purge();
}

Result<void> create_changelog_topic(const KafkaConfig& kafka, const std::string& bootstrap,
                                    const StateOptions& options, int timeout_ms) {
  // Retention bounds the log only when every family expires; a record older
  // than the longest TTL holds an expired entry (or a purge older than every
  // entry it covers), so deleting it changes no replica.
  std::int64_t longest_ttl_s = 0;
  bool all_expire = true;
  for (auto f : kAllStateFamilies) {
    const auto ttl = options.ttl_seconds(f);
    if (ttl <= 0) all_expire = false;
    longest_ttl_s = std::max(longest_ttl_s, ttl);
  }
  TopicSpec topic{options.changelog_topic, options.changelog_partitions,
                  {{"cleanup.policy", all_expire ? "compact,delete" : "compact"}}};
  if (all_expire) topic.configs.emplace_back("retention.ms", std::to_string(longest_ttl_s * 1000));
  return create_topics_admin(kafka, bootstrap, {topic}, timeout_ms);
}

Result<std::int64_t> publish_tenant_purge(const KafkaConfig& kafka, const std::string& bootstrap,
                                          const std::string& changelog_topic, std::string_view tenant,
                                          int timeout_ms) {
  if (tenant.empty() || tenant.find('\0') != std::string_view::npos) {
    return fail(ErrorCode::invalid_request, "tenant must be non-empty and free of NUL bytes");
  }
  const std::int64_t through = wall_now_ms();
  static constexpr std::string_view kWriter = "cascade-purge";
  auto published = produce_record_and_wait(kafka, bootstrap, changelog_topic, purge_changelog_key(tenant),
                                           encode_purge(through), timeout_ms,
                                           RecordHeader{kWriterHeader, kWriter});
  if (!published) {
    return fail(published.error().code, "purge of " + std::string(tenant) + ": " + published.error().message);
  }
  return through;
}

}  // namespace cascade
