// Cluster administration: topics (create, exist, partition counts) and a
// group's committed offsets.
#include <algorithm>

#include "kafka/native.h"

namespace cascade {

Result<void> create_topics_admin(const KafkaConfig& config, const std::string& bootstrap,
                                 const std::vector<TopicSpec>& topics, int timeout_ms) {
  auto handle = open_client(config, bootstrap, ClientRole::producer);
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

Result<void> ensure_topic(const KafkaConfig& config, const std::string& bootstrap, const TopicSpec& topic,
                          int timeout_ms) {
  {
    auto handle = open_client(config, bootstrap, ClientRole::producer);
    if (!handle) return std::unexpected(handle.error());
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(handle->get(), topic.name.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    const auto err = rd_kafka_metadata(handle->get(), 0, rkt, &md, std::min(timeout_ms, 10000));
    bool exists = false;
    if (!err && md) exists = md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0;
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    if (exists) return {};
  }
  return create_topics_admin(config, bootstrap, {topic}, timeout_ms);
}

Result<std::map<std::string, int>> cluster_topic_partitions(rd_kafka_t* rk, int timeout_ms) {
  const rd_kafka_metadata_t* md = nullptr;
  if (auto err = rd_kafka_metadata(rk, 1, nullptr, &md, timeout_ms)) {
    return fail(ErrorCode::unavailable, std::string("cluster metadata: ") + rd_kafka_err2str(err));
  }
  std::map<std::string, int> partitions;
  for (int i = 0; i < md->topic_cnt; ++i) {
    if (!md->topics[i].err) partitions[md->topics[i].topic] = md->topics[i].partition_cnt;
  }
  rd_kafka_metadata_destroy(md);
  return partitions;
}

Result<bool> topic_exists(const KafkaConfig& config, const std::string& bootstrap, const std::string& topic,
                          int timeout_ms) {
  auto handle = open_client(config, bootstrap, ClientRole::producer);
  if (!handle) return std::unexpected(handle.error());
  auto topics = cluster_topic_partitions(handle->get(), timeout_ms);
  if (!topics) return std::unexpected(topics.error());
  return topics->contains(topic);
}

Result<std::map<std::int32_t, std::int64_t>> committed_offsets(const KafkaConfig& config,
                                                               const std::string& bootstrap,
                                                               const std::string& group, const std::string& topic,
                                                               int timeout_ms) {
  auto consumer = open_client(config, bootstrap, ClientRole::consumer, group);
  if (!consumer) return std::unexpected(consumer.error());
  auto topics = cluster_topic_partitions(consumer->get(), timeout_ms);
  if (!topics) return std::unexpected(topics.error());
  const auto found = topics->find(topic);
  if (found == topics->end()) return fail(ErrorCode::unavailable, "topic " + topic + " does not exist");
  std::map<TopicPartition, std::int64_t> partitions;
  for (int p = 0; p < found->second; ++p) partitions[{topic, p}] = RD_KAFKA_OFFSET_INVALID;
  TopicPartitionList list = partition_list(partitions);
  if (auto err = rd_kafka_committed(consumer->get(), list.get(), timeout_ms)) {
    return fail(ErrorCode::unavailable, "committed offsets of " + group + ": " + rd_kafka_err2str(err));
  }
  std::map<std::int32_t, std::int64_t> committed;
  for (int i = 0; i < list->cnt; ++i) {
    if (list->elems[i].offset >= 0) committed[list->elems[i].partition] = list->elems[i].offset;
  }
  return committed;
}

}  // namespace cascade
