// Client configuration, Cascade's topics, the embedded broker and the connection.
#include "kafka/native.h"  // before rdkafka_mock.h, which needs rdkafka.h first

#include <librdkafka/rdkafka_mock.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace cascade {

void KafkaHandleDeleter::operator()(rd_kafka_t* rk) const {
  if (rk) rd_kafka_destroy(rk);
}

void TopicPartitionListDeleter::operator()(rd_kafka_topic_partition_list_t* list) const {
  if (list) rd_kafka_topic_partition_list_destroy(list);
}

std::vector<TopicSpec> cascade_topics(const KafkaConfig& config) {
  return {{config.requests_topic, config.partitions},
          {config.ledger_topic, config.partitions},
          {config.dlq_topic, config.partitions},
          {config.replies_topic, config.partitions},
          {config.cache_changelog_topic, config.partitions},
          {config.budgets_topic, config.partitions, {{"cleanup.policy", "compact"}}},
          {config.spend_topic, config.partitions, {{"cleanup.policy", "compact"}}},
          {config.alerts_topic, config.partitions},
          {config.quality_topic, config.partitions},
          {config.router_updates_topic, config.partitions, {{"cleanup.policy", "compact"}}},
          // A cancel matters for as long as its request may still be in
          // flight or arrive (worker.cancel_window_ms): kept an hour, deleted.
          {config.cancels_topic, config.partitions, {{"cleanup.policy", "delete"}, {"retention.ms", "3600000"}}},
          {config.api_keys_topic, config.partitions, {{"cleanup.policy", "compact"}}}};
}

Result<void> set_property(rd_kafka_conf_t* conf, const std::string& key, const std::string& value) {
  char err[512];
  if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
    return fail(ErrorCode::invalid_request, "kafka property " + key + ": " + err);
  }
  return {};
}

Result<rd_kafka_conf_t*> make_client_conf(const KafkaConfig& config, const std::string& bootstrap,
                                          ClientRole role, const std::string& group_id,
                                          const std::vector<std::pair<std::string, std::string>>& overrides) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::vector<std::pair<std::string, std::string>> props = {
      {"bootstrap.servers", bootstrap},
      {"client.id", "cascade"},
      {"socket.nagle.disable", "true"},
  };
  if (role == ClientRole::producer) {
    props.insert(props.end(), {
        // Idempotence keeps a request's events in seq order across retries.
        {"enable.idempotence", "true"},
        {"linger.ms", std::to_string(config.linger_ms)},
        {"queue.buffering.max.messages", "1000000"},
        {"queue.buffering.max.kbytes", "1048576"},
    });
  } else {
    props.insert(props.end(), {
        {"group.id", group_id},
        {"auto.offset.reset", "earliest"},
        // Offsets are stored explicitly (per-partition watermark of delivered
        // terminal events) and committed in the background.
        {"enable.auto.offset.store", "false"},
        {"enable.auto.commit", "true"},
        {"fetch.wait.max.ms", std::to_string(config.fetch_wait_max_ms)},
        {"enable.partition.eof", "false"},
    });
  }
  for (const auto& kv : config.extra_properties()) props.push_back(kv);
  props.insert(props.end(), overrides.begin(), overrides.end());
  for (const auto& [key, value] : props) {
    if (auto ok = set_property(conf, key, value); !ok) {
      rd_kafka_conf_destroy(conf);
      return std::unexpected(ok.error());
    }
  }
  return conf;
}

Result<KafkaHandle> make_client(rd_kafka_conf_t* conf, ClientRole role) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(role == ClientRole::producer ? RD_KAFKA_PRODUCER : RD_KAFKA_CONSUMER,
                                conf, err, sizeof err);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return fail(ErrorCode::unavailable, std::string("cannot create Kafka client: ") + err);
  }
  return KafkaHandle(rk);
}

Result<KafkaHandle> open_client(const KafkaConfig& config, const std::string& bootstrap, ClientRole role,
                                const std::string& group_id,
                                const std::vector<std::pair<std::string, std::string>>& overrides) {
  auto conf = make_client_conf(config, bootstrap, role, group_id, overrides);
  if (!conf) return std::unexpected(conf.error());
  return make_client(*conf, role);
}

TopicPartitionList partition_list(const std::map<TopicPartition, std::int64_t>& offsets) {
  TopicPartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(std::max<std::size_t>(offsets.size(), 1))));
  for (const auto& [tp, offset] : offsets)
    rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition)->offset = offset;
  return list;
}

// The handle only hosts the mock cluster's threads.
struct EmbeddedBroker::Impl {
  KafkaHandle handle;
  rd_kafka_mock_cluster_t* cluster = nullptr;
  ~Impl() {
    if (cluster) rd_kafka_mock_cluster_destroy(cluster);
  }
};

EmbeddedBroker::EmbeddedBroker() : impl_(std::make_unique<Impl>()) {}

Result<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::start(int brokers) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // Silence the hosting handle's own logs.
  if (auto ok = set_property(conf, "log_level", "3"); !ok) {
    rd_kafka_conf_destroy(conf);
    return std::unexpected(ok.error());
  }
  auto handle = make_client(conf, ClientRole::producer);
  if (!handle) return std::unexpected(handle.error());
  auto broker = std::unique_ptr<EmbeddedBroker>(new EmbeddedBroker());
  broker->impl_->handle = std::move(*handle);
  broker->impl_->cluster = rd_kafka_mock_cluster_new(broker->impl_->handle.get(), brokers);
  if (!broker->impl_->cluster) return fail(ErrorCode::unavailable, "cannot start the embedded Kafka broker");
  broker->bootstrap_ = rd_kafka_mock_cluster_bootstraps(broker->impl_->cluster);
  return broker;
}

EmbeddedBroker::~EmbeddedBroker() = default;

Result<void> EmbeddedBroker::create_topic(const TopicSpec& topic) {
  const auto err = rd_kafka_mock_topic_create(impl_->cluster, topic.name.c_str(), topic.partitions, 1);
  if (err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
    return fail(ErrorCode::unavailable, "cannot create topic " + topic.name + ": " + rd_kafka_err2str(err));
  }
  return {};
}

Result<void> EmbeddedBroker::create_topics(const std::vector<TopicSpec>& topics) {
  for (const auto& t : topics) {
    if (auto ok = create_topic(t); !ok) return ok;
  }
  return {};
}

Result<KafkaConnection> KafkaConnection::open(const KafkaConfig& config) {
  KafkaConnection conn;
  if (!config.embedded()) {
    conn.bootstrap_ = config.bootstrap;
    return conn;
  }
  auto broker = EmbeddedBroker::start();
  if (!broker) return std::unexpected(broker.error());
  if (auto ok = (*broker)->create_topics(cascade_topics(config)); !ok) return std::unexpected(ok.error());
  conn.bootstrap_ = (*broker)->bootstrap();
  conn.broker_ = std::move(*broker);
  spdlog::info("kafka: embedded broker at {} (no kafka.bootstrap configured)", conn.bootstrap_);
  return conn;
}

}  // namespace cascade
