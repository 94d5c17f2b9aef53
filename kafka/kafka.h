#pragma once
// librdkafka plumbing shared by every Kafka client in Cascade: client
// configuration from cascade.yaml, the embedded broker (librdkafka's mock
// cluster), and the connection a process uses (configured brokers, or an
// embedded broker started in-process when kafka.bootstrap is empty).
#include <librdkafka/rdkafka.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/result.h"

typedef struct rd_kafka_mock_cluster_s rd_kafka_mock_cluster_t;

namespace cascade {

struct KafkaHandleDeleter {
  void operator()(rd_kafka_t* rk) const;
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaHandleDeleter>;

struct TopicPartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const;
};
using TopicPartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, TopicPartitionListDeleter>;

struct TopicSpec {
  std::string name;
  int partitions = 1;
  // Topic configs for a real cluster ("cleanup.policy" -> "compact"); the
  // embedded broker ignores them.
  std::vector<std::pair<std::string, std::string>> configs = {};
};

// Cascade's own topics (requests, ledger, dlq, replies, cache changelog,
// budgets, spend, alerts) with `partitions` partitions each; budgets and
// spend are compacted.
std::vector<TopicSpec> cascade_topics(const KafkaConfig& config);

// librdkafka's mock cluster as an in-process broker. It speaks the Kafka
// protocol on loopback ports, so clients in other processes can use it too.
// Limits: ~100k batches / 5 MiB per partition, no transactions emulation,
// latency equals the consumers' fetch.wait.max.ms, no CreateTopics: topics are
// created through create_topic().
class EmbeddedBroker {
 public:
  static Result<std::unique_ptr<EmbeddedBroker>> start(int brokers = 1);
  ~EmbeddedBroker();

  const std::string& bootstrap() const { return bootstrap_; }
  Result<void> create_topic(const TopicSpec& topic);
  Result<void> create_topics(const std::vector<TopicSpec>& topics);

 private:
  EmbeddedBroker() = default;
  KafkaHandle handle_;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  std::string bootstrap_;
};

// The brokers a process talks to: kafka.bootstrap, or an embedded broker
// started here (with Cascade's topics created) when it is empty.
class KafkaConnection {
 public:
  static Result<KafkaConnection> open(const KafkaConfig& config);
  const std::string& bootstrap() const { return bootstrap_; }
  bool embedded() const { return broker_ != nullptr; }
  EmbeddedBroker* broker() const { return broker_.get(); }

 private:
  std::string bootstrap_;
  std::shared_ptr<EmbeddedBroker> broker_;
};

// One record read from a topic, or a consumer error. Owns librdkafka's
// message until destroyed; move-only. Views (key, payload, header) live as
// long as the record.
class KafkaRecord {
 public:
  KafkaRecord() = default;
  KafkaRecord(KafkaRecord&&) noexcept = default;
  KafkaRecord& operator=(KafkaRecord&&) noexcept = default;
  ~KafkaRecord();

  // False for a consumer error (error() says which) and for the end-of-partition marker.
  bool ok() const;
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
  static Result<std::unique_ptr<GroupConsumer>> open(const KafkaConfig& config, const std::string& bootstrap,
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
  Result<void> commit();

  void pause(const std::vector<std::int32_t>& partitions);
  void resume(const std::vector<std::int32_t>& partitions);
  std::vector<std::int32_t> assignment() const;

  // The consumer queue writes a byte to `fd` when it goes from empty to
  // non-empty: an event loop waiting on fd wakes for records and rebalances.
  void enable_wakeup_fd(int fd);

  // Leaves the group (the final commit is the caller's, with commit()).
  void close();
  // A crash-like end (tests): the member vanishes without leaving its group.
  void abandon();

  const std::string& topic() const { return topic_; }

 private:
  GroupConsumer() = default;
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions,
                           void* opaque);
  TopicPartitionList partition_list(const std::vector<std::int32_t>& partitions) const;

  KafkaHandle handle_;
  std::string topic_;
  RebalanceListener* listener_ = nullptr;
  bool closed_ = false;
};

enum class ClientRole { producer, consumer };

// Client configuration: bootstrap, latency settings from `config`, the role's
// defaults (idempotent producer; manual offset store for consumers), then
// kafka.extra. Returns an owned rd_kafka_conf_t (caller passes it to rd_kafka_new).
Result<rd_kafka_conf_t*> make_client_conf(const KafkaConfig& config, const std::string& bootstrap,
                                          ClientRole role, const std::string& group_id = "");

// Sets one property, with librdkafka's error text on failure.
Result<void> set_property(rd_kafka_conf_t* conf, const std::string& key, const std::string& value);

// Creates a client from a configuration (takes ownership of conf).
Result<KafkaHandle> make_client(rd_kafka_conf_t* conf, ClientRole role);

// Creates topics on a real cluster through the Admin API (replication factor
// -1 = the broker default); topics that already exist are fine. The embedded
// broker does not answer CreateTopics: use EmbeddedBroker::create_topics there.
Result<void> create_topics_admin(const KafkaConfig& config, const std::string& bootstrap,
                                 const std::vector<TopicSpec>& topics, int timeout_ms = 30000);

// Whether the cluster has `topic` (from the metadata of all topics, so asking
// never auto-creates it).
Result<bool> topic_exists(const KafkaConfig& config, const std::string& bootstrap, const std::string& topic,
                          int timeout_ms = 10000);

// Reads every record of `topic` from the beginning up to the end it has when
// called (no group, nothing committed). Returns the number of records read.
Result<std::uint64_t> read_topic_to_end(const KafkaConfig& config, const std::string& bootstrap,
                                        const std::string& topic,
                                        const std::function<void(const rd_kafka_message_t&)>& on_record);

// Every partition of some topics read from the beginning, with no consumer
// group and nothing committed: each process reads everything, as Kafka
// Streams' global tables do (budgets, spend state, quality samples). Each
// record goes to on_record, on the caller's thread in restore(), then on the
// follower's own thread after start().
class TopicFollower {
 public:
  using OnRecord = std::function<void(const rd_kafka_message_t& record)>;
  // unavailable when a topic does not exist (it is never created by asking).
  // `name` labels logs and errors ("budgets").
  static Result<std::unique_ptr<TopicFollower>> open(const KafkaConfig& config, const std::string& bootstrap,
                                                     const std::vector<std::string>& topics, std::string name,
                                                     OnRecord on_record);
  ~TopicFollower();
  TopicFollower(const TopicFollower&) = delete;
  TopicFollower& operator=(const TopicFollower&) = delete;

  // Reads every partition up to the end it had when assigned (before start()).
  Result<void> restore(int timeout_ms = 30000);
  // Follows the topics on a thread of its own until stop().
  Result<void> start();
  void stop();

 private:
  TopicFollower() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One keyed record (a tombstone when `value` is empty), produced with the
// murmur2 partitioner every keyed Cascade topic uses, and waited for until the
// cluster acknowledges it. For rare control records (budgets, purges) where a
// short-lived producer is simpler than sharing the hot-path one.
struct RecordHeader {
  std::string_view name;
  std::string_view value;
};
Result<void> produce_record_and_wait(const KafkaConfig& config, const std::string& bootstrap,
                                     const std::string& topic, std::string_view key,
                                     const std::optional<std::string>& value, int timeout_ms,
                                     std::optional<RecordHeader> header = std::nullopt);

}  // namespace cascade
