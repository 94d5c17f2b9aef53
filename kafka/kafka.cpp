#include "kafka/kafka.h"

#include <librdkafka/rdkafka_mock.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>

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
          {config.quality_topic, config.partitions}};
}

Result<void> set_property(rd_kafka_conf_t* conf, const std::string& key, const std::string& value) {
  char err[512];
  if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
    return fail(ErrorCode::invalid_request, "kafka property " + key + ": " + err);
  }
  return {};
}

Result<rd_kafka_conf_t*> make_client_conf(const KafkaConfig& config, const std::string& bootstrap,
                                          ClientRole role, const std::string& group_id) {
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

Result<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::start(int brokers) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The handle only hosts the mock cluster's threads; silence its own logs.
  if (auto ok = set_property(conf, "log_level", "3"); !ok) {
    rd_kafka_conf_destroy(conf);
    return std::unexpected(ok.error());
  }
  auto handle = make_client(conf, ClientRole::producer);
  if (!handle) return std::unexpected(handle.error());
  auto broker = std::unique_ptr<EmbeddedBroker>(new EmbeddedBroker());
  broker->handle_ = std::move(*handle);
  broker->cluster_ = rd_kafka_mock_cluster_new(broker->handle_.get(), brokers);
  if (!broker->cluster_) return fail(ErrorCode::unavailable, "cannot start the embedded Kafka broker");
  broker->bootstrap_ = rd_kafka_mock_cluster_bootstraps(broker->cluster_);
  return broker;
}

EmbeddedBroker::~EmbeddedBroker() {
  if (cluster_) rd_kafka_mock_cluster_destroy(cluster_);
}

Result<void> EmbeddedBroker::create_topic(const TopicSpec& topic) {
  const auto err = rd_kafka_mock_topic_create(cluster_, topic.name.c_str(), topic.partitions, 1);
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

Result<void> create_topics_admin(const KafkaConfig& config, const std::string& bootstrap,
                                 const std::vector<TopicSpec>& topics, int timeout_ms) {
  auto conf = make_client_conf(config, bootstrap, ClientRole::producer);
  if (!conf) return std::unexpected(conf.error());
  auto handle = make_client(*conf, ClientRole::producer);
  if (!handle) return std::unexpected(handle.error());
  rd_kafka_t* rk = handle->get();

  char err[512];
  std::vector<rd_kafka_NewTopic_t*> specs;
  for (const auto& t : topics) {
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(t.name.c_str(), t.partitions, -1, err, sizeof err);
    if (!nt) {
      for (auto* s : specs) rd_kafka_NewTopic_destroy(s);
      return fail(ErrorCode::invalid_request, "topic " + t.name + ": " + err);
    }
    specs.push_back(nt);
    for (const auto& [key, value] : t.configs) {
      if (auto code = rd_kafka_NewTopic_set_config(nt, key.c_str(), value.c_str())) {
        for (auto* s : specs) rd_kafka_NewTopic_destroy(s);
        return fail(ErrorCode::invalid_request, "topic " + t.name + " config " + key + ": " + rd_kafka_err2str(code));
      }
    }
  }
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(options, timeout_ms, err, sizeof err);
  rd_kafka_CreateTopics(rk, specs.data(), specs.size(), options, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, timeout_ms + 5000);
  Result<void> result;
  if (!event) {
    result = fail(ErrorCode::timeout, "CreateTopics: no answer from the cluster");
  } else if (rd_kafka_event_error(event)) {
    result = fail(ErrorCode::unavailable, std::string("CreateTopics: ") + rd_kafka_event_error_string(event));
  } else {
    std::size_t n = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &n);
    for (std::size_t i = 0; i < n && result; ++i) {
      const auto code = rd_kafka_topic_result_error(results[i]);
      if (code && code != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        result = fail(ErrorCode::unavailable, std::string("CreateTopics ") + rd_kafka_topic_result_name(results[i]) +
                                                  ": " + rd_kafka_err2str(code));
      }
    }
  }
  if (event) rd_kafka_event_destroy(event);
  rd_kafka_AdminOptions_destroy(options);
  rd_kafka_queue_destroy(queue);
  for (auto* s : specs) rd_kafka_NewTopic_destroy(s);
  return result;
}

Result<bool> topic_exists(const KafkaConfig& config, const std::string& bootstrap, const std::string& topic,
                          int timeout_ms) {
  auto conf = make_client_conf(config, bootstrap, ClientRole::producer);
  if (!conf) return std::unexpected(conf.error());
  auto handle = make_client(*conf, ClientRole::producer);
  if (!handle) return std::unexpected(handle.error());
  const rd_kafka_metadata_t* md = nullptr;
  if (auto err = rd_kafka_metadata(handle->get(), 1, nullptr, &md, timeout_ms)) {
    return fail(ErrorCode::unavailable, std::string("cluster metadata: ") + rd_kafka_err2str(err));
  }
  bool found = false;
  for (int i = 0; i < md->topic_cnt && !found; ++i) {
    found = md->topics[i].topic == topic && !md->topics[i].err;
  }
  rd_kafka_metadata_destroy(md);
  return found;
}

Result<std::uint64_t> read_topic_to_end(const KafkaConfig& config, const std::string& bootstrap,
                                        const std::string& topic,
                                        const std::function<void(const rd_kafka_message_t&)>& on_record) {
  auto conf = make_client_conf(config, bootstrap, ClientRole::consumer, "cascade-reader");
  if (!conf) return std::unexpected(conf.error());
  (void)set_property(*conf, "enable.auto.commit", "false");
  auto handle = make_client(*conf, ClientRole::consumer);
  if (!handle) return std::unexpected(handle.error());
  rd_kafka_t* rk = handle->get();

  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  auto err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
  rd_kafka_topic_destroy(rkt);
  if (err) return fail(ErrorCode::unavailable, "topic " + topic + ": " + rd_kafka_err2str(err));
  const int partitions = (md->topic_cnt == 1 && !md->topics[0].err) ? md->topics[0].partition_cnt : 0;
  rd_kafka_metadata_destroy(md);

  // Each partition from its beginning up to the end it has now.
  std::vector<std::int64_t> end(partitions, 0);
  std::vector<bool> done(partitions, true);
  std::size_t remaining = 0;
  TopicPartitionList list(rd_kafka_topic_partition_list_new(std::max(partitions, 1)));
  for (int p = 0; p < partitions; ++p) {
    std::int64_t low = 0;
    if ((err = rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &low, &end[p], 10000))) {
      return fail(ErrorCode::unavailable, "offsets of " + topic + ": " + rd_kafka_err2str(err));
    }
    if (end[p] > low) {
      rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = low;
      done[p] = false;
      remaining++;
    }
  }
  std::uint64_t read = 0;
  if (remaining == 0) return read;
  rd_kafka_assign(rk, list.get());
  auto last_progress = std::chrono::steady_clock::now();
  while (remaining > 0) {
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(rk, 200);
    if (!msg) {
      if (std::chrono::steady_clock::now() - last_progress > std::chrono::seconds(30)) {
        return fail(ErrorCode::timeout, "reading " + topic + " stalled");
      }
      continue;
    }
    last_progress = std::chrono::steady_clock::now();
    if (!msg->err) {
      on_record(*msg);
      read++;
      if (msg->offset + 1 >= end[msg->partition] && !done[msg->partition]) {
        done[msg->partition] = true;
        remaining--;
      }
    }
    rd_kafka_message_destroy(msg);
  }
  rd_kafka_consumer_close(rk);
  return read;
}

Result<void> produce_record_and_wait(const KafkaConfig& config, const std::string& bootstrap,
                                     const std::string& topic, std::string_view key,
                                     const std::optional<std::string>& value, int timeout_ms,
                                     std::optional<RecordHeader> header) {
  auto conf = make_client_conf(config, bootstrap, ClientRole::producer);
  if (!conf) return std::unexpected(conf.error());
  if (auto ok = set_property(*conf, "partitioner", "murmur2_random"); !ok) {
    rd_kafka_conf_destroy(*conf);
    return std::unexpected(ok.error());
  }
  rd_kafka_resp_err_t delivery = RD_KAFKA_RESP_ERR__IN_PROGRESS;
  rd_kafka_conf_set_opaque(*conf, &delivery);
  rd_kafka_conf_set_dr_msg_cb(*conf, [](rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
    *static_cast<rd_kafka_resp_err_t*>(opaque) = msg->err;
  });
  auto producer = make_client(*conf, ClientRole::producer);
  if (!producer) return std::unexpected(producer.error());

  rd_kafka_headers_t* headers = nullptr;
  if (header) {
    headers = rd_kafka_headers_new(1);
    rd_kafka_header_add(headers, header->name.data(), static_cast<ssize_t>(header->name.size()),
                        header->value.data(), static_cast<ssize_t>(header->value.size()));
  }
  void* payload = value ? const_cast<char*>(value->data()) : nullptr;
  const std::size_t payload_len = value ? value->size() : 0;
  auto err = rd_kafka_producev(producer->get(), RD_KAFKA_V_TOPIC(topic.c_str()),
                               RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
                               RD_KAFKA_V_VALUE(payload, payload_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                               RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
  if (err) {
    // On failure the headers were not handed over.
    if (headers) rd_kafka_headers_destroy(headers);
    return fail(ErrorCode::unavailable, topic + ": " + rd_kafka_err2str(err));
  }
  rd_kafka_flush(producer->get(), timeout_ms);
  if (delivery == RD_KAFKA_RESP_ERR__IN_PROGRESS)
    return fail(ErrorCode::timeout, topic + ": record not confirmed by the cluster in time");
  if (delivery) return fail(ErrorCode::unavailable, topic + ": " + rd_kafka_err2str(delivery));
  return {};
}

}  // namespace cascade
