#pragma once
// librdkafka itself, for the code of kafka/ and producers/ ONLY. Everything
// else uses the Cascade-level API of kafka/kafka.h (PartitionReader,
// GroupConsumer, KafkaProducer, TopicFollower, admin helpers), so that
// librdkafka's types, ownership rules and error codes stay in one place.
// (Tests of librdkafka configuration itself may include this header too.)
#include <librdkafka/rdkafka.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kafka/kafka_config.h"
#include "core/result.h"
#include "kafka/kafka.h"

namespace cascade {

struct KafkaHandleDeleter {
  void operator()(rd_kafka_t* rk) const;
};
// An owned client; destroying it does not close a consumer (call rd_kafka_consumer_close first).
using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaHandleDeleter>;

struct TopicPartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const;
};
using TopicPartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, TopicPartitionListDeleter>;

enum class ClientRole { producer, consumer };

// Client configuration: bootstrap, latency settings from `config`, the role's
// defaults (idempotent producer; manual offset store for consumers), then
// kafka.extra, then `overrides`: what the caller's use depends on (no commits
// for a group-less reader, a partitioner), which kafka.extra must not undo.
// Returns an owned rd_kafka_conf_t (the caller passes it to make_client, or
// destroys it).
[[nodiscard]] Result<rd_kafka_conf_t*> make_client_conf(
    const KafkaConfig& config, const std::string& bootstrap, ClientRole role, const std::string& group_id = "",
    const std::vector<std::pair<std::string, std::string>>& overrides = {});

// Sets one property, with librdkafka's error text on failure.
[[nodiscard]] Result<void> set_property(rd_kafka_conf_t* conf, const std::string& key, const std::string& value);

// Creates a client from a configuration (takes ownership of conf, also on failure).
[[nodiscard]] Result<KafkaHandle> make_client(rd_kafka_conf_t* conf, ClientRole role);

// make_client_conf then make_client, for clients that need no callbacks.
[[nodiscard]] Result<KafkaHandle> open_client(const KafkaConfig& config, const std::string& bootstrap,
                                              ClientRole role, const std::string& group_id = "",
                                              const std::vector<std::pair<std::string, std::string>>& overrides = {});

// Partition counts of every topic of the cluster, from the metadata of all
// topics: asking never auto-creates a topic (asking for one by name may).
[[nodiscard]] Result<std::map<std::string, int>> cluster_topic_partitions(rd_kafka_t* rk, int timeout_ms);

// A list of (topic, partition) with their offsets.
TopicPartitionList partition_list(const std::map<TopicPartition, std::int64_t>& offsets);

}  // namespace cascade
