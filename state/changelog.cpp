#include <librdkafka/rdkafka.h>
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
  KafkaHandle producer;
  KafkaHandle consumer;
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
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque);
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
  void* payload = value ? const_cast<char*>(value->data()) : nullptr;
  const std::size_t payload_len = value ? value->size() : 0;
  const auto err = rd_kafka_producev(
      producer.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
      RD_KAFKA_V_VALUE(payload, payload_len),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_HEADER(kWriterHeader, writer_id.data(), static_cast<ssize_t>(writer_id.size())),
      RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<std::uintptr_t>(seq))), RD_KAFKA_V_END);
  if (err) {
    // Stays in the outbox; retried from there.
    std::lock_guard lock(publish_mu);
    in_flight.erase(seq);
    needs_retry = true;
    spdlog::debug("state: changelog publish deferred: {}", rd_kafka_err2str(err));
  }
}

void StateChangelog::Impl::on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
  auto* self = static_cast<Impl*>(opaque);
  const auto seq = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(msg->_private));
  if (msg->err) {
    self->publish_failures++;
    if (msg->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE && msg->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
      spdlog::warn("state: changelog publish failed (retried): {}", rd_kafka_err2str(msg->err));
    }
    std::lock_guard lock(self->publish_mu);
    self->in_flight.erase(seq);
    self->needs_retry = true;
    return;
  }
  // Out of the outbox before leaving in_flight, so a retry cannot resend it.
  self->store.outbox_delivered(seq);
  std::lock_guard lock(self->publish_mu);
  self->in_flight.erase(seq);
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
  TopicPartitionList list(rd_kafka_topic_partition_list_new(partitions));
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset =
        next_offset[p] >= 0 ? next_offset[p] : RD_KAFKA_OFFSET_BEGINNING;
  }
  // Asynchronous (timeout 0): never blocks; records and ends fetched before
  // the seek are dropped by its version barrier.
  if (rd_kafka_error_t* err = rd_kafka_seek_partitions(consumer.get(), list.get(), 0)) {
    std::string message = rd_kafka_error_string(err);
    rd_kafka_error_destroy(err);
    return fail(ErrorCode::unavailable, "changelog seek: " + message);
  }
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

  rd_kafka_poll(producer.get(), 0);
  retry_pending(false);

  std::vector<rd_kafka_message_t*> messages;
  struct Destroy {
    std::vector<rd_kafka_message_t*>& m;
    ~Destroy() {
      for (auto* msg : m) rd_kafka_message_destroy(msg);
    }
  } destroy{messages};
  std::size_t batch_bytes = 0;
  for (rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer.get(), timeout_ms); msg;
       msg = rd_kafka_consumer_poll(consumer.get(), 0)) {
    messages.push_back(msg);
    batch_bytes += msg->len + msg->key_len;
    if (messages.size() >= kMaxBatchRecords || batch_bytes >= kMaxBatchBytes) break;
  }
  if (messages.empty()) return 0;

  std::vector<ChangelogRecord> records;
  records.reserve(messages.size());
  std::map<std::int32_t, std::int64_t> first_offset;
  std::uint64_t record_bytes = 0;
  for (auto* msg : messages) {
    if (msg->err) {
      if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        spdlog::warn("state: changelog consumer: {}", rd_kafka_message_errstr(msg));
      }
      continue;
    }
    ChangelogRecord r;
    r.partition = msg->partition;
    r.offset = msg->offset;
    r.key = std::string_view(static_cast<const char*>(msg->key), msg->key_len);
    if (msg->payload) r.value = std::string_view(static_cast<const char*>(msg->payload), msg->len);
    first_offset.try_emplace(r.partition, r.offset);
    record_bytes += msg->key_len + msg->len;
    records.push_back(r);
  }
  const auto note_ends = [&] {
    std::lock_guard lock(stats_mu);
    for (auto* msg : messages) {
      if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && msg->partition >= 0 &&
          msg->partition < static_cast<int>(next_offset.size())) {
        next_offset[msg->partition] = std::max(next_offset[msg->partition], msg->offset);
        if (msg->partition < static_cast<int>(at_end.size())) at_end[msg->partition] = true;
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
    TopicPartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(first_offset.size())));
    for (const auto& [p, off] : first_offset) rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = off;
    if (auto* e = rd_kafka_seek_partitions(consumer.get(), list.get(), 5000)) rd_kafka_error_destroy(e);
    return std::unexpected(outcome.error());
  }

  note_ends();
  {
    std::lock_guard lock(stats_mu);
    applied += records.size();
    applied_bytes += record_bytes;
    malformed += outcome->malformed;
    const std::int64_t now_wall = wall_now_ms();
    for (auto* msg : messages) {
      if (msg->err) continue;
      if (msg->partition >= 0 && msg->partition < static_cast<int>(next_offset.size())) {
        next_offset[msg->partition] = std::max(next_offset[msg->partition], msg->offset + 1);
      }
      rd_kafka_headers_t* headers = nullptr;
      const void* writer = nullptr;
      std::size_t writer_len = 0;
      const bool own = rd_kafka_message_headers(msg, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR &&
                       rd_kafka_header_get_last(headers, kWriterHeader, &writer, &writer_len) ==
                           RD_KAFKA_RESP_ERR_NO_ERROR &&
                       std::string_view(static_cast<const char*>(writer), writer_len) == writer_id;
      if (!own) {
        last_foreign_apply = Clock::now();
        rd_kafka_timestamp_type_t type;
        const std::int64_t ts = rd_kafka_message_timestamp(msg, &type);
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
    rd_kafka_flush(producer.get(), static_cast<int>(std::clamp<std::int64_t>(left, 0, 100)));
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
    rd_kafka_purge(producer.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(producer.get(), 0);
    producer.reset();
  }
  if (consumer) {
    rd_kafka_consumer_close(consumer.get());
    consumer.reset();
  }
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

  auto pconf = make_client_conf(kafka, bootstrap, ClientRole::producer);
  if (!pconf) return std::unexpected(pconf.error());
  // Java clients' partitioner, so every client agrees on a key's partition:
  // a key's records must stay in one partition for last-write-wins.
  if (auto ok = set_property(*pconf, "partitioner", "murmur2_random"); !ok) {
    rd_kafka_conf_destroy(*pconf);
    return std::unexpected(ok.error());
  }
  rd_kafka_conf_set_opaque(*pconf, impl.get());
  rd_kafka_conf_set_dr_msg_cb(*pconf, &Impl::on_delivery);
  auto producer = make_client(*pconf, ClientRole::producer);
  if (!producer) return std::unexpected(producer.error());
  impl->producer = std::move(*producer);

  // No consumer group: every worker reads every partition. The group id is
  // only there because librdkafka wants one; nothing is ever committed.
  auto cconf = make_client_conf(kafka, bootstrap, ClientRole::consumer, "cascade-state-applier");
  if (!cconf) return std::unexpected(cconf.error());
  // End-of-partition events tell restore() that a partition is caught up,
  // also when there is nothing to read.
  for (const auto& [key, value] : {std::pair{"enable.auto.commit", "false"}, std::pair{"enable.partition.eof", "true"}}) {
    if (auto ok = set_property(*cconf, key, value); !ok) {
      rd_kafka_conf_destroy(*cconf);
      return std::unexpected(ok.error());
    }
  }
  auto consumer = make_client(*cconf, ClientRole::consumer);
  if (!consumer) return std::unexpected(consumer.error());
  impl->consumer = std::move(*consumer);
  rd_kafka_t* rk = impl->consumer.get();

  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, impl->topic.c_str(), nullptr);
  auto err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
  rd_kafka_topic_destroy(rkt);
  if (err) return fail(ErrorCode::unavailable, "changelog topic " + impl->topic + ": " + rd_kafka_err2str(err));
  const bool found = md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0;
  impl->partitions = found ? md->topics[0].partition_cnt : 0;
  rd_kafka_metadata_destroy(md);
  if (!found) {
    return fail(ErrorCode::unavailable, "changelog topic " + impl->topic +
                                            " does not exist (create it before the workers start: "
                                            "create_changelog_topic, or the embedded broker's create_topic)");
  }

  const auto offsets = impl->store.load_offsets(impl->topic);
  impl->next_offset.assign(impl->partitions, -1);
  TopicPartitionList list(rd_kafka_topic_partition_list_new(impl->partitions));
  for (int p = 0; p < impl->partitions; ++p) {
    auto it = offsets.find(p);
    // A wiped store has no offsets: it restores from the beginning.
    const std::int64_t start = it == offsets.end() ? RD_KAFKA_OFFSET_BEGINNING : it->second;
    if (it != offsets.end()) impl->next_offset[p] = it->second;
    rd_kafka_topic_partition_list_add(list.get(), impl->topic.c_str(), p)->offset = start;
  }
  if ((err = rd_kafka_assign(rk, list.get()))) {
    return fail(ErrorCode::unavailable, "changelog assign: " + std::string(rd_kafka_err2str(err)));
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
  // broker for watermarks, rd_kafka_query_watermark_offsets, does not honour
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
  if (rd_kafka_queue_t* queue = rd_kafka_queue_get_consumer(impl_->consumer.get())) {
    rd_kafka_queue_yield(queue);
    rd_kafka_queue_destroy(queue);
  }
  return ticket;
}

bool StateChangelog::caught_up(std::uint64_t ticket) const { return impl_->catch_up_done.load() >= ticket; }

ChangelogLag StateChangelog::lag() const {
  const Impl& c = *impl_;
  ChangelogLag lag;
  lag.publish_failures = c.publish_failures.load();
  std::lock_guard lock(c.stats_mu);
  for (int p = 0; p < c.partitions; ++p) {
    std::int64_t low = -1, high = -1;
    // Cached from fetch responses: no broker round trip.
    if (rd_kafka_get_watermark_offsets(c.consumer.get(), c.topic.c_str(), p, &low, &high) || high < 0) continue;
    const std::int64_t next = c.next_offset[p] >= 0 ? c.next_offset[p] : std::max<std::int64_t>(low, 0);
    lag.messages_behind += std::max<std::int64_t>(0, high - next);
  }
  if (c.last_foreign_apply) lag.ms_since_foreign_apply = ms_since(*c.last_foreign_apply);
  lag.last_foreign_delay_ms = c.last_foreign_delay_ms;
  lag.applied = c.applied;
  lag.malformed = c.malformed;
  return lag;
}

void StateChangelog::abandon_unsent() {
  Impl& c = *impl_;
  c.abandoned = true;
  rd_kafka_purge(c.producer.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(c.producer.get(), 0);
}

Result<void> create_changelog_topic(const KafkaConfig& kafka, const std::string& bootstrap,
                                    const StateOptions& options, int timeout_ms) {
  auto conf = make_client_conf(kafka, bootstrap, ClientRole::producer);
  if (!conf) return std::unexpected(conf.error());
  auto handle = make_client(*conf, ClientRole::producer);
  if (!handle) return std::unexpected(handle.error());
  rd_kafka_t* rk = handle->get();

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
  char err[512];
  rd_kafka_NewTopic_t* topic =
      rd_kafka_NewTopic_new(options.changelog_topic.c_str(), options.changelog_partitions, -1, err, sizeof err);
  if (!topic) return fail(ErrorCode::invalid_request, "topic " + options.changelog_topic + ": " + err);
  rd_kafka_NewTopic_set_config(topic, "cleanup.policy", all_expire ? "compact,delete" : "compact");
  if (all_expire) {
    rd_kafka_NewTopic_set_config(topic, "retention.ms", std::to_string(longest_ttl_s * 1000).c_str());
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* admin = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(admin, timeout_ms, err, sizeof err);
  rd_kafka_CreateTopics(rk, &topic, 1, admin, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, timeout_ms + 5000);
  Result<void> result;
  if (!event) {
    result = fail(ErrorCode::timeout, "CreateTopics " + options.changelog_topic + ": no answer from the cluster");
  } else if (rd_kafka_event_error(event)) {
    result = fail(ErrorCode::unavailable, std::string("CreateTopics: ") + rd_kafka_event_error_string(event));
  } else {
    std::size_t n = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &n);
    for (std::size_t i = 0; i < n && result; ++i) {
      const auto code = rd_kafka_topic_result_error(results[i]);
      if (code && code != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        result = fail(ErrorCode::unavailable, "CreateTopics " + options.changelog_topic + ": " + rd_kafka_err2str(code));
      }
    }
  }
  if (event) rd_kafka_event_destroy(event);
  rd_kafka_AdminOptions_destroy(admin);
  rd_kafka_queue_destroy(queue);
  rd_kafka_NewTopic_destroy(topic);
  return result;
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
