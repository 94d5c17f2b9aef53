#pragma once
// Kafka in tests: librdkafka's mock cluster started in-process, the topics a
// test needs, and a configuration that talks to it without delay.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "kafka/kafka.h"
#include "support/wait.h"

namespace cascade::testing {

// Mock broker latency equals fetch.wait.max.ms: keep it tiny (the
// changelog tests, with many round trips, take 2); deliveries leave the
// producer at once. No bootstrap: set it to the broker's.
inline KafkaConfig fast_kafka_config(int fetch_wait_max_ms = 5) {
  KafkaConfig c;
  c.fetch_wait_max_ms = fetch_wait_max_ms;
  c.linger_ms = 1;
  return c;
}

// An embedded broker with `topics`; null, and a failed test, when it cannot
// start or create them.
inline std::unique_ptr<EmbeddedBroker> start_broker(const std::vector<TopicSpec>& topics = {}) {
  auto broker = EmbeddedBroker::start();
  if (!broker) {
    ADD_FAILURE() << "EmbeddedBroker::start: " << broker.error().message;
    return nullptr;
  }
  if (auto created = (*broker)->create_topics(topics); !created) {
    ADD_FAILURE() << "create_topics: " << created.error().message;
    return nullptr;
  }
  return std::move(*broker);
}

// A broker and the configuration of the test's clients, pointed at it.
struct EmbeddedKafka {
  std::unique_ptr<EmbeddedBroker> broker;  // null when it did not start
  KafkaConfig config;                      // config.bootstrap is the broker's

  const std::string& bootstrap() const { return config.bootstrap; }
};

// Starts a broker with `topics` and points `config` at it.
inline EmbeddedKafka start_embedded_kafka(const std::vector<TopicSpec>& topics,
                                          KafkaConfig config = fast_kafka_config()) {
  EmbeddedKafka kafka;
  kafka.broker = start_broker(topics);
  if (kafka.broker) config.bootstrap = kafka.broker->bootstrap();
  kafka.config = std::move(config);
  return kafka;
}

// Writes one record, as it is, to `partition` of `topic` and waits until
// the broker has it; false, and a failed test, when it does not.
inline bool produce_raw(const EmbeddedKafka& kafka, const std::string& topic, const std::string& key,
                        const std::string& value, int partition) {
  auto producer = KafkaProducer::create(kafka.config, kafka.bootstrap());
  if (!producer) {
    ADD_FAILURE() << "KafkaProducer::create: " << producer.error().message;
    return false;
  }
  auto queued = (*producer)->produce(topic, {.key = key, .value = value, .partition = partition});
  if (!queued || *queued != KafkaProducer::Enqueued::yes) {
    ADD_FAILURE() << "produce to " << topic << ": not queued";
    return false;
  }
  if (!(*producer)->flush(kDefaultWaitMs)) {
    ADD_FAILURE() << "produce to " << topic << ": not acknowledged in " << kDefaultWaitMs << " ms";
    return false;
  }
  return true;
}

// The same with Cascade's own topics (named as `config` says), `partitions`
// partitions each.
inline EmbeddedKafka start_cascade_kafka(int partitions, KafkaConfig config = fast_kafka_config()) {
  config.partitions = partitions;
  const std::vector<TopicSpec> topics = cascade_topics(config);
  return start_embedded_kafka(topics, std::move(config));
}

}  // namespace cascade::testing
