#pragma once
// Cascade's Kafka component: the brokers a process talks to (configured, or
// an embedded broker started in-process when kafka.bootstrap is empty),
// Cascade's topics, and the clients every other folder uses: GroupConsumer
// (a consumer group member), PartitionReader (every partition of some topics,
// no group), TopicFollower (global tables), KafkaProducer (keyed records with
// delivery reports) and admin helpers.
//
// librdkafka stays inside kafka/ and producers/ (kafka/native.h): nothing
// here needs its header. Expected failures are Result values: `unavailable`
// for a cluster or topic that cannot serve, `timeout` when it did not answer
// in time, `invalid_request` for a bad configuration.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kafka/kafka_config.h"
#include "core/result.h"

// Opaque to users: a KafkaRecord owns one message.
typedef struct rd_kafka_message_s rd_kafka_message_t;

namespace cascade {

struct TopicSpec {
  std::string name;
  int partitions = 1;
  // Topic configs for a real cluster ("cleanup.policy" -> "compact"); the
  // embedded broker ignores them.
  std::vector<std::pair<std::string, std::string>> configs = {};
};

// Cascade's own topics (requests, ledger, dlq, replies, cache changelog,
// budgets, spend, alerts, quality, router updates, cancels) with
// `partitions` partitions each; budgets, spend and router updates are
// compacted, cancels are deleted after an hour.
std::vector<TopicSpec> cascade_topics(const KafkaConfig& config);

// librdkafka's mock cluster as an in-process broker. It speaks the Kafka
// protocol on loopback ports, so clients in other processes can use it too.
// Limits: ~100k batches / 5 MiB per partition, no transactions emulation,
// latency equals the consumers' fetch.wait.max.ms, no CreateTopics: topics are
// created through create_topic().
class EmbeddedBroker {
 public:
  [[nodiscard]] static Result<std::unique_ptr<EmbeddedBroker>> start(int brokers = 1);
  ~EmbeddedBroker();
  EmbeddedBroker(const EmbeddedBroker&) = delete;
  EmbeddedBroker& operator=(const EmbeddedBroker&) = delete;

  const std::string& bootstrap() const { return bootstrap_; }
  [[nodiscard]] Result<void> create_topic(const TopicSpec& topic);
  [[nodiscard]] Result<void> create_topics(const std::vector<TopicSpec>& topics);

 private:
  EmbeddedBroker();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string bootstrap_;
};

// The brokers a process talks to: kafka.bootstrap, or an embedded broker
// started here (with Cascade's topics created) when it is empty.
class KafkaConnection {
 public:
  [[nodiscard]] static Result<KafkaConnection> open(const KafkaConfig& config);
  const std::string& bootstrap() const { return bootstrap_; }
  bool embedded() const { return broker_ != nullptr; }
  EmbeddedBroker* broker() const { return broker_.get(); }

 private:
  std::string bootstrap_;
  std::shared_ptr<EmbeddedBroker> broker_;
};

// One partition of one topic.
struct TopicPartition {
  std::string topic;
  std::int32_t partition = 0;
  auto operator<=>(const TopicPartition&) const = default;
};

// The offset of a partition's first record, whatever it is (as a start or seek position).
inline constexpr std::int64_t kOffsetBeginning = -2;

// One record read from a topic, or a consumer error, or (for readers that
// ask for it) the end-of-partition marker. Owns librdkafka's message until
// destroyed; move-only. Views (topic, key, payload, header) live as long as
// the record.
class KafkaRecord {
 public:
  KafkaRecord() = default;
  KafkaRecord(KafkaRecord&&) noexcept = default;
  KafkaRecord& operator=(KafkaRecord&&) noexcept = default;
  ~KafkaRecord();

  // False for a consumer error (error() says which) and for the end-of-partition marker.
  bool ok() const;
  // The marker a reader reporting ends gives when it has read all a partition
  // has; offset() is then that end (the next offset to be written).
  bool partition_end() const;
  std::string error() const;  // "" when ok
  std::string_view topic() const;
  std::int32_t partition() const;
  std::int64_t offset() const;
  std::string_view key() const;
  std::string_view payload() const;
  bool tombstone() const;             // a null value (compacted topics)
  std::int64_t timestamp_ms() const;  // -1 when the record has none
  // The last header of that name, if any.
  std::optional<std::string_view> header(std::string_view name) const;

  // For kafka/ and producers/ only: adopts a message taken from librdkafka.
  static KafkaRecord adopt(rd_kafka_message_t* message);

 private:
  struct Deleter {
    void operator()(rd_kafka_message_t* message) const;
  };
  std::unique_ptr<rd_kafka_message_t, Deleter> message_;
};

// Told of the partitions the group gives a GroupConsumer or takes away, on
// the thread that calls GroupConsumer::poll().
class RebalanceListener {
 public:
  virtual ~RebalanceListener() = default;
  // After they were assigned; a partition paused here is not fetched.
  virtual void on_assigned(const std::vector<std::int32_t>& partitions) = 0;
  // Before they are taken away: the last moment to store and commit their offsets.
  virtual void on_revoked(const std::vector<std::int32_t>& partitions) = 0;
};

// What a group member holds of its topic (GroupConsumer::topic_share).
struct TopicShare {
  std::size_t assigned = 0;  // partitions assigned to this member
  int partitions = 0;        // partitions the topic has; 0 = not known
};

struct GroupConsumerOptions {
  std::string group;  // consumer group id
  std::string topic;  // the one topic the member subscribes to
  // Stored offsets are committed in the background this often; 0 = librdkafka's default.
  int commit_interval_ms = 0;
  RebalanceListener* listener = nullptr;  // may be null; must outlive the consumer
};

// A member of a consumer group on one topic. Offsets are stored explicitly
// (store_offsets: the next offset to read, as Kafka commits them) and
// committed in the background or by commit(). Cooperative and eager
// rebalance protocols are both served. Not thread-safe: one thread polls
// and calls everything else.
class GroupConsumer {
 public:
  [[nodiscard]] static Result<std::unique_ptr<GroupConsumer>> open(const KafkaConfig& config, const std::string& bootstrap,
                                                     GroupConsumerOptions options);
  ~GroupConsumer();  // close(), unless abandoned
  GroupConsumer(const GroupConsumer&) = delete;
  GroupConsumer& operator=(const GroupConsumer&) = delete;

  // The next record (or consumer error) within timeout_ms; nullopt when
  // none came. Serves rebalances, calling the listener on this thread.
  std::optional<KafkaRecord> poll(int timeout_ms);

  // (partition, next offset) pairs of the topic, committed with the next commit.
  void store_offsets(const std::vector<std::pair<std::int32_t, std::int64_t>>& next_offsets);
  // Commits the stored offsets now (synchronously); nothing stored is not an error.
  [[nodiscard]] Result<void> commit();

  void pause(const std::vector<std::int32_t>& partitions);
  void resume(const std::vector<std::int32_t>& partitions);
  std::vector<std::int32_t> assignment() const;
  // This member's part of its topic as the rebalance being served leaves it
  // (so a listener's on_assigned and on_revoked read the outcome, revoked
  // partitions already left out), with the topic's partition count from the
  // cluster's metadata, asked at each assignment (the last count known when
  // the metadata does not answer; 0 before any did).
  TopicShare topic_share() const;

  // The consumer queue writes a byte to `fd` when it goes from empty to
  // non-empty: an event loop waiting on fd wakes for records and rebalances.
  void enable_wakeup_fd(int fd);

  // Leaves the group (the final commit is the caller's, with commit()).
  void close();
  // A crash-like end (tests): the member vanishes without leaving its group.
  void abandon();

  const std::string& topic() const;

 private:
  GroupConsumer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Where a PartitionReader starts the partitions it has no offset for.
enum class ReadStart {
  beginning,  // the first record each partition still has
  end,        // the high watermark when the reader was opened: only records written after open()
};

// The offsets of a partition: `low` is its first record's, `high` the next to
// be written (the end). -1 when unknown.
struct Watermarks {
  std::int64_t low = -1;
  std::int64_t high = -1;
};

struct PartitionReaderOptions {
  std::vector<std::string> topics = {};  // every partition of each is read
  // Labels errors and logs ("budgets" -> "budgets topic cascade.budgets does not exist").
  std::string name = {};
  // Appended, in parentheses, to the error for a topic that does not exist
  // (how to create it).
  std::string missing_topic_hint = {};
  ReadStart start = ReadStart::beginning;
  // Start offsets (the next record to read) of some partitions; the others
  // start at `start`. Offsets of partitions the topics do not have are ignored.
  std::map<TopicPartition, std::int64_t> offsets = {};
  // poll() also returns each partition's end-of-partition marker, every time
  // it has read all the partition has. read_to_end() needs them.
  bool report_partition_ends = false;
  // A topic that does not exist is read as empty (no partitions) instead of
  // being an error.
  bool missing_topic_is_empty = false;
  // librdkafka wants a group id even without a group: nothing joins or
  // commits under it, it only names the client to the brokers. "" = "cascade-" + name.
  std::string group_id = {};
};

// Every partition of one or more topics assigned to one consumer, with no
// consumer group and nothing committed: each reader reads everything (global
// tables, changelog replicas, a client's replies). A topic that does not
// exist is `unavailable` and is never created by asking.
//
// Threading: one thread polls, seeks and reads to the end; wake() and
// cached_watermarks() may be called from any thread. Destroying the reader
// closes its consumer; no other call may run then.
class PartitionReader {
 public:
  [[nodiscard]] static Result<std::unique_ptr<PartitionReader>> open(const KafkaConfig& config,
                                                                     const std::string& bootstrap,
                                                                     PartitionReaderOptions options);
  ~PartitionReader();
  PartitionReader(const PartitionReader&) = delete;
  PartitionReader& operator=(const PartitionReader&) = delete;

  // The next record, consumer error or (if reported) partition end within
  // timeout_ms; nullopt when none came or wake() was called.
  std::optional<KafkaRecord> poll(int timeout_ms);
  // Waits up to timeout_ms for the first record, then takes what else is
  // already there without waiting, up to max_records in all.
  std::vector<KafkaRecord> poll_batch(int timeout_ms, std::size_t max_records);

  // Polls until every partition has reported its end, calling on_record for
  // each record (errors are logged and skipped). Returns the number of
  // records. Needs report_partition_ends. Errors: timeout, after timeout_ms
  // in all (< 0: no limit), or after idle_timeout_ms without a record or an
  // end (< 0: no limit).
  [[nodiscard]] Result<std::uint64_t> read_to_end(const std::function<void(const KafkaRecord&)>& on_record,
                                                  int timeout_ms, int idle_timeout_ms = -1);

  // Moves partitions to the given offsets (kOffsetBeginning allowed).
  // timeout_ms 0 = asynchronous, never blocks: records and ends fetched
  // before the seek are not returned after it.
  [[nodiscard]] Result<void> seek(const std::map<TopicPartition, std::int64_t>& offsets, int timeout_ms);

  // From the last fetch responses: no broker round trip. nullopt when not yet known.
  std::optional<Watermarks> cached_watermarks(const TopicPartition& partition) const;
  // Asks the partition's leader.
  [[nodiscard]] Result<Watermarks> query_watermarks(const TopicPartition& partition, int timeout_ms) const;

  // Every partition read, by topic and partition.
  const std::vector<TopicPartition>& partitions() const;
  const std::string& name() const;

  // Makes a poll waiting now (or the next one) return at once.
  void wake();

 private:
  PartitionReader();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads every record of `topic` from the beginning up to its end (no group,
// nothing committed). A topic that does not exist reads as empty. Returns the
// number of records; timeout after 30 s without progress.
[[nodiscard]] Result<std::uint64_t> read_topic_to_end(const KafkaConfig& config, const std::string& bootstrap,
                                        const std::string& topic,
                                        const std::function<void(const KafkaRecord&)>& on_record);

// Every partition of some topics read from the beginning, with no consumer
// group and nothing committed: each process reads everything, as Kafka
// Streams' global tables do (budgets, spend state, quality samples). Each
// record goes to on_record, on the caller's thread in restore(), then on the
// follower's own thread after start().
class TopicFollower {
 public:
  using OnRecord = std::function<void(const KafkaRecord& record)>;
  // unavailable when a topic does not exist (it is never created by asking).
  // `name` labels logs and errors ("budgets").
  [[nodiscard]] static Result<std::unique_ptr<TopicFollower>> open(const KafkaConfig& config, const std::string& bootstrap,
                                                     const std::vector<std::string>& topics, std::string name,
                                                     OnRecord on_record);
  ~TopicFollower();
  TopicFollower(const TopicFollower&) = delete;
  TopicFollower& operator=(const TopicFollower&) = delete;

  // Reads every partition up to its end (before start()).
  [[nodiscard]] Result<void> restore(int timeout_ms = 30000);
  // Follows the topics on a thread of its own until stop().
  [[nodiscard]] Result<void> start();
  void stop();

 private:
  TopicFollower();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One header of a produced record.
struct RecordHeader {
  std::string_view name;
  std::string_view value;
};

// Lets the partitioner choose a record's partition.
inline constexpr std::int32_t kAnyPartition = -1;

// One record to produce. Views: produce() copies what it keeps.
struct OutgoingRecord {
  std::string_view key = {};
  std::optional<std::string_view> value = {};  // nullopt: a null value, the tombstone compaction removes the key on
  std::optional<RecordHeader> header = std::nullopt;
  std::uint64_t token = 0;                 // handed back in the record's DeliveryReport
  std::int32_t partition = kAnyPartition;  // an explicit partition (tests); otherwise by key
};

// The outcome of one produced record.
struct DeliveryReport {
  std::uint64_t token = 0;
  bool delivered = false;  // durably in its topic (acks=all)
  // Failed for a reason retrying cannot fix (unknown topic or partition,
  // record too large, not authorized, invalid record).
  bool permanent = false;
  std::string_view error;  // why it failed ("" when delivered)
  std::string_view topic;
  bool purged = false;  // dropped by purge() (or abandoned) before it was delivered
};

struct KafkaProducerOptions {
  // The Java client's murmur2 partitioner (librdkafka's "murmur2_random"),
  // so every client of a keyed topic agrees on a key's partition; false:
  // librdkafka's default (consistent_random).
  bool java_partitioner = false;
  // Every record's report, on the thread that calls poll(), flush() or
  // purge(); two such threads may run it at once. May be empty.
  std::function<void(const DeliveryReport&)> on_delivery = {};
};

// A keyed-record producer (idempotent, acks=all) with a report per record.
// Thread-safe: produce, poll, flush, purge and queued may be called from
// several threads at once (librdkafka's produce is thread-safe).
class KafkaProducer {
 public:
  [[nodiscard]] static Result<std::unique_ptr<KafkaProducer>> create(const KafkaConfig& config,
                                                                     const std::string& bootstrap,
                                                                     KafkaProducerOptions options = {});
  // Records still queued are dropped without reports; purge() first to have them.
  ~KafkaProducer();
  KafkaProducer(const KafkaProducer&) = delete;
  KafkaProducer& operator=(const KafkaProducer&) = delete;

  enum class Enqueued {
    yes,
    queue_full,  // librdkafka's queue is full: nothing was queued, try again after poll()
  };
  // Queues one record (copied) without waiting. Errors: unavailable, for
  // failures queuing cannot fix (e.g. an invalid topic name).
  [[nodiscard]] Result<Enqueued> produce(const std::string& topic, const OutgoingRecord& record);

  // Serves delivery reports; returns how many.
  int poll(int timeout_ms = 0);
  // Waits until every queued record is delivered or failed (reports served),
  // or the timeout passed. True if none is left.
  bool flush(int timeout_ms);
  // Drops every record not yet delivered; their reports (purged) are served now.
  void purge();
  // Records queued and not yet reported.
  std::size_t queued() const;
  // The report queue writes a byte to `fd` when reports arrive (event loop wake-up).
  void enable_wakeup_fd(int fd);

 private:
  KafkaProducer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One keyed record (a tombstone when `value` is nullopt), produced with the
// Java client's murmur2 partitioner, and waited for until the cluster
// acknowledges it. For rare control records (budgets, purges) where a
// short-lived producer is simpler than sharing the hot-path one.
[[nodiscard]] Result<void> produce_record_and_wait(const KafkaConfig& config, const std::string& bootstrap,
                                     const std::string& topic, std::string_view key,
                                     const std::optional<std::string>& value, int timeout_ms,
                                     std::optional<RecordHeader> header = std::nullopt);

// Creates topics on a real cluster through the Admin API (replication factor
// -1 = the broker default) with their configs; topics that already exist are
// fine. The embedded broker does not answer CreateTopics: use
// EmbeddedBroker::create_topics there.
[[nodiscard]] Result<void> create_topics_admin(const KafkaConfig& config, const std::string& bootstrap,
                                 const std::vector<TopicSpec>& topics, int timeout_ms = 30000);

// Makes sure `topic` exists: asks for its metadata as a producer does (a
// cluster that creates topics on demand, the embedded broker of another
// process among them, creates it then), and otherwise creates it through the
// Admin API with its configs. For topics a component owns (a gateway's
// reply topic). Errors: unavailable, timeout.
[[nodiscard]] Result<void> ensure_topic(const KafkaConfig& config, const std::string& bootstrap, const TopicSpec& topic,
                                        int timeout_ms = 30000);

// Whether the cluster has `topic` (from the metadata of all topics, so asking
// never auto-creates it).
[[nodiscard]] Result<bool> topic_exists(const KafkaConfig& config, const std::string& bootstrap, const std::string& topic,
                          int timeout_ms = 10000);

// The offsets consumer group `group` has committed on `topic`: partition ->
// next offset to read. Partitions without a commit are absent.
[[nodiscard]] Result<std::map<std::int32_t, std::int64_t>> committed_offsets(const KafkaConfig& config,
                                                                             const std::string& bootstrap,
                                                                             const std::string& group,
                                                                             const std::string& topic,
                                                                             int timeout_ms = 10000);

}  // namespace cascade
