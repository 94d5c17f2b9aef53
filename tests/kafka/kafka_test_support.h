#pragma once
// What the tests of kafka/ share: a configuration fast on the embedded
// broker, and a broker to run against.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "kafka/kafka.h"

namespace cascade::kafka_test {

// Mock broker latency equals fetch.wait.max.ms: keep it tiny.
inline KafkaConfig fast_config() {
  KafkaConfig c;
  c.fetch_wait_max_ms = 5;
  c.linger_ms = 1;
  return c;
}

// An embedded broker with `topics`; null (and a failed test) when it cannot
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

}  // namespace cascade::kafka_test
