#include "kafka/kafka.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kafka/native.h"  // the tests of librdkafka's configuration
#include "producers/event_producer.h"
#include "support/embedded_kafka.h"
#include "support/wait.h"

namespace cascade {
namespace {

using ::testing::HasSubstr;
using testing::fast_kafka_config;
using testing::start_broker;

// Partition count of `topic` as the brokers at `bootstrap` report it; -1 when unknown.
int partition_count(const std::string& bootstrap, const std::string& topic) {
  auto reader = PartitionReader::open(fast_kafka_config(), bootstrap, {.topics = {topic}, .name = "test"});
  return reader ? static_cast<int>((*reader)->partitions().size()) : -1;
}

std::string conf_value(rd_kafka_conf_t* conf, const char* key) {
  char value[512];
  size_t size = sizeof value;
  if (rd_kafka_conf_get(conf, key, value, &size) != RD_KAFKA_CONF_OK) return "<unset>";
  return value;
}

class RecordingListener : public DeliveryListener {
 public:
  void on_delivery(const DeliveryReport& report) override {
    deliveries[report.token].push_back(report.delivered);
    threads.insert(std::this_thread::get_id());
  }
  std::map<std::uint64_t, std::vector<bool>> deliveries;  // token -> delivered, per report
  std::set<std::thread::id> threads;
};

struct Record {
  int partition;
  std::string key;
  std::string value;
  bool operator<(const Record& o) const {
    return std::tie(partition, key, value) < std::tie(o.partition, o.key, o.value);
  }
};

std::multiset<std::pair<std::string, std::string>> read_all(const std::string& bootstrap,
                                                            const std::string& topic,
                                                            std::uint64_t* count = nullptr,
                                                            std::set<int>* partitions = nullptr) {
  std::multiset<std::pair<std::string, std::string>> out;
  auto read = read_topic_to_end(fast_kafka_config(), bootstrap, topic, [&](const KafkaRecord& m) {
    out.emplace(m.key(), m.payload());
    if (partitions) partitions->insert(m.partition());
  });
  if (!read) {
    ADD_FAILURE() << "read_topic_to_end: " << read.error().message;
    return out;
  }
  if (count) *count = *read;
  return out;
}

TEST(EmbeddedBroker, StartsAndGivesALoopbackBootstrap) {
  auto broker = start_broker();
  ASSERT_TRUE(broker);
  EXPECT_THAT(broker->bootstrap(), HasSubstr(":"));
  EXPECT_FALSE(broker->bootstrap().empty());
}

TEST(EmbeddedBroker, TwoBrokersInOneProcessHaveDistinctBootstraps) {
  auto a = start_broker();
  auto b = start_broker();
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->bootstrap(), b->bootstrap());
}

TEST(EmbeddedBroker, CreateTopicsMakesTopicsWithTheRequestedPartitions) {
  auto broker = start_broker();
  ASSERT_TRUE(broker);
  ASSERT_TRUE(broker->create_topics({{"orders", 3}, {"payments", 8}}));
  EXPECT_EQ(partition_count(broker->bootstrap(), "orders"), 3);
  EXPECT_EQ(partition_count(broker->bootstrap(), "payments"), 8);
}

TEST(EmbeddedBroker, CreatingAnExistingTopicAgainSucceeds) {
  auto broker = start_broker();
  ASSERT_TRUE(broker);
  ASSERT_TRUE(broker->create_topic({"orders", 2}));
  auto again = broker->create_topic({"orders", 2});
  EXPECT_TRUE(again) << again.error().message;
  EXPECT_EQ(partition_count(broker->bootstrap(), "orders"), 2);
}

TEST(CascadeTopics, AreRequestsLedgerDlqRepliesAndTheCacheChangelogWithConfiguredPartitions) {
  KafkaConfig c = fast_kafka_config();
  c.partitions = 5;
  c.requests_topic = "t.requests";
  const auto topics = cascade_topics(c);
  std::map<std::string, int> by_name;
  for (const auto& t : topics) by_name[t.name] = t.partitions;
  EXPECT_EQ(by_name, (std::map<std::string, int>{{"t.requests", 5},
                                                 {"cascade.ledger", 5},
                                                 {"cascade.dlq", 5},
                                                 {"cascade.replies", 5},
                                                 {"cascade.cache-changelog", 5},
                                                 {"cascade.budgets", 5},
                                                 {"cascade.spend", 5},
                                                 {"cascade.alerts", 5},
                                                 {"cascade.quality", 5},
                                                 {"cascade.router-updates", 5},
                                                 {"cascade.cancels", 5},
                                                 {"cascade.api-keys", 5}}));
  // The closed loop's cuts and the API keys are compacted global tables,
  // like the budgets; cancels are deleted after an hour (only recent ones matter).
  for (const auto& t : topics) {
    if (t.name == "cascade.router-updates" || t.name == "cascade.api-keys") {
      EXPECT_EQ(t.configs, (std::vector<std::pair<std::string, std::string>>{{"cleanup.policy", "compact"}}));
    }
    if (t.name == "cascade.cancels") {
      EXPECT_EQ(t.configs, (std::vector<std::pair<std::string, std::string>>{{"cleanup.policy", "delete"},
                                                                            {"retention.ms", "3600000"}}));
    }
  }
}

TEST(EventProducer, TrackedEventsAreReportedExactlyOnceEachWithoutError) {
  auto broker = start_broker();
  ASSERT_TRUE(broker);
  ASSERT_TRUE(broker->create_topic({"replies", 4}));
  RecordingListener listener;
  auto producer = EventProducer::create(fast_kafka_config(), broker->bootstrap(), &listener);
  ASSERT_TRUE(producer) << producer.error().message;

  std::set<std::uint64_t> tokens;
  for (std::uint64_t token = 1; token <= 40; ++token) {
    ASSERT_TRUE((*producer)->produce("replies", "key-" + std::to_string(token % 7),
                                     "payload-" + std::to_string(token), token));
    tokens.insert(token);
  }
  ASSERT_TRUE((*producer)->flush(10000));
  (*producer)->poll(0);

  ASSERT_EQ(listener.deliveries.size(), tokens.size());
  for (auto token : tokens) {
    SCOPED_TRACE(token);
    ASSERT_EQ(listener.deliveries.count(token), 1u);
    EXPECT_EQ(listener.deliveries[token], (std::vector<bool>{true}));
  }
  EXPECT_EQ(listener.threads, (std::set<std::thread::id>{std::this_thread::get_id()}))
      << "reports arrive on the thread that polls";
  EXPECT_EQ((*producer)->queued(), 0u);
}

TEST(EventProducer, UntrackedEventsProduceNoDeliveryCallback) {
  auto broker = start_broker();
  ASSERT_TRUE(broker);
  ASSERT_TRUE(broker->create_topic({"chunks", 2}));
  RecordingListener listener;
  auto producer = EventProducer::create(fast_kafka_config(), broker->bootstrap(), &listener);
  ASSERT_TRUE(producer) << producer.error().message;

  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE((*producer)->produce("chunks", "k", "chunk-" + std::to_string(i)));
  }
  ASSERT_TRUE((*producer)->produce("chunks", "k", "final", 99));
  ASSERT_TRUE((*producer)->flush(10000));
  (*producer)->poll(0);

  ASSERT_EQ(listener.deliveries.size(), 1u);
  EXPECT_EQ(listener.deliveries.begin()->first, 99u);

  std::uint64_t count = 0;
  read_all(broker->bootstrap(), "chunks", &count);
  EXPECT_EQ(count, 21u) << "untracked events are still delivered";
}

TEST(EventProducer, ProducerWithoutListenerDeliversEvents) {
  auto broker = start_broker();
  ASSERT_TRUE(broker);
  ASSERT_TRUE(broker->create_topic({"t", 1}));
  auto producer = EventProducer::create(fast_kafka_config(), broker->bootstrap());
  ASSERT_TRUE(producer) << producer.error().message;
  ASSERT_TRUE((*producer)->produce("t", "k", "v", 7));
  ASSERT_TRUE((*producer)->flush(10000));
  std::uint64_t count = 0;
  read_all(broker->bootstrap(), "t", &count);
  EXPECT_EQ(count, 1u);
}

TEST(ReadTopicToEnd, ReadsExactlyWhatWasProducedAcrossAllPartitions) {
  auto broker = start_broker();
  ASSERT_TRUE(broker);
  ASSERT_TRUE(broker->create_topic({"events", 4}));
  auto producer = EventProducer::create(fast_kafka_config(), broker->bootstrap());
  ASSERT_TRUE(producer) << producer.error().message;

  std::multiset<std::pair<std::string, std::string>> produced;
  for (int i = 0; i < 200; ++i) {
    const std::string key = "tenant-" + std::to_string(i % 13);
    const std::string value = "event-" + std::to_string(i);
    ASSERT_TRUE((*producer)->produce("events", key, value));
    produced.emplace(key, value);
  }
  ASSERT_TRUE((*producer)->flush(10000));

  std::uint64_t count = 0;
  std::set<int> partitions;
  const auto read = read_all(broker->bootstrap(), "events", &count, &partitions);
  EXPECT_EQ(count, produced.size());
  EXPECT_EQ(read, produced);
  EXPECT_GT(partitions.size(), 1u) << "13 keys over 4 partitions land on more than one";
}

TEST(ReadTopicToEnd, ReadsAgainFromTheBeginningEachCall) {
  auto broker = start_broker();
  ASSERT_TRUE(broker);
  ASSERT_TRUE(broker->create_topic({"events", 2}));
  auto producer = EventProducer::create(fast_kafka_config(), broker->bootstrap());
  ASSERT_TRUE(producer) << producer.error().message;
  for (int i = 0; i < 10; ++i) ASSERT_TRUE((*producer)->produce("events", std::to_string(i), "v"));
  ASSERT_TRUE((*producer)->flush(10000));

  std::uint64_t first = 0;
  std::uint64_t second = 0;
  read_all(broker->bootstrap(), "events", &first);
  read_all(broker->bootstrap(), "events", &second);
  EXPECT_EQ(first, 10u);
  EXPECT_EQ(second, 10u) << "nothing is committed between reads";
}

TEST(ReadTopicToEnd, ReturnsZeroAtOnceOnAnEmptyTopic) {
  auto broker = start_broker();
  ASSERT_TRUE(broker);
  ASSERT_TRUE(broker->create_topic({"empty", 3}));
  int calls = 0;
  auto read = read_topic_to_end(fast_kafka_config(), broker->bootstrap(), "empty",
                                [&](const KafkaRecord&) { ++calls; });
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(*read, 0u);
  EXPECT_EQ(calls, 0);
}

TEST(ReadTopicToEnd, PartiallyFilledTopicFinishesWhenEveryNonEmptyPartitionIsRead) {
  auto broker = start_broker();
  ASSERT_TRUE(broker);
  ASSERT_TRUE(broker->create_topic({"sparse", 8}));
  auto producer = EventProducer::create(fast_kafka_config(), broker->bootstrap());
  ASSERT_TRUE(producer) << producer.error().message;
  // One key: every record lands on one partition, seven stay empty.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE((*producer)->produce("sparse", "same-key", std::to_string(i)));
  ASSERT_TRUE((*producer)->flush(10000));

  std::uint64_t count = 0;
  std::set<int> partitions;
  read_all(broker->bootstrap(), "sparse", &count, &partitions);
  EXPECT_EQ(count, 5u);
  EXPECT_EQ(partitions.size(), 1u);
}

TEST(TopicFollower, RestoresEveryPartitionToItsEndThenFollowsNewRecords) {
  auto broker = start_broker();
  ASSERT_TRUE(broker);
  ASSERT_TRUE(broker->create_topics({{"table-a", 3}, {"table-b", 2}}));
  auto producer = EventProducer::create(fast_kafka_config(), broker->bootstrap());
  ASSERT_TRUE(producer) << producer.error().message;
  for (int i = 0; i < 30; ++i) ASSERT_TRUE((*producer)->produce(i % 2 ? "table-a" : "table-b", "k" + std::to_string(i), "v"));
  ASSERT_TRUE((*producer)->flush(10000));

  std::mutex mu;
  std::map<std::string, int> seen;  // topic -> records
  auto follower = TopicFollower::open(fast_kafka_config(), broker->bootstrap(), {"table-a", "table-b"}, "test",
                                      [&](const KafkaRecord& m) {
                                        std::lock_guard lock(mu);
                                        seen[std::string(m.topic())]++;
                                      });
  ASSERT_TRUE(follower) << follower.error().message;
  ASSERT_TRUE((*follower)->restore(30000));
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(seen["table-a"], 15);  // everything, before restore returns
    EXPECT_EQ(seen["table-b"], 15);
  }
  ASSERT_TRUE((*follower)->start());
  ASSERT_TRUE((*producer)->produce("table-a", "late", "v"));
  ASSERT_TRUE((*producer)->flush(10000));
  testing::eventually(
      [&] {
        std::lock_guard lock(mu);
        return seen["table-a"] == 16;
      },
      std::chrono::seconds(30), std::chrono::milliseconds(10));
  (*follower)->stop();
  std::lock_guard lock(mu);
  EXPECT_EQ(seen["table-a"], 16);
  EXPECT_EQ(seen["table-b"], 15);
}

TEST(TopicFollower, AMissingTopicIsUnavailableAndIsNotCreatedByAsking) {
  auto broker = start_broker();
  ASSERT_TRUE(broker);
  auto follower = TopicFollower::open(fast_kafka_config(), broker->bootstrap(), {"nowhere"}, "test",
                                      [](const KafkaRecord&) {});
  ASSERT_FALSE(follower);
  EXPECT_EQ(follower.error().code, ErrorCode::unavailable);
  EXPECT_THAT(follower.error().message, HasSubstr("nowhere"));
  auto exists = topic_exists(fast_kafka_config(), broker->bootstrap(), "nowhere");
  ASSERT_TRUE(exists);
  EXPECT_FALSE(*exists);
}

TEST(KafkaConnection, EmptyBootstrapStartsAnEmbeddedBrokerWithCascadeTopics) {
  KafkaConfig c = fast_kafka_config();
  c.partitions = 3;
  auto conn = KafkaConnection::open(c);
  ASSERT_TRUE(conn) << conn.error().message;
  EXPECT_TRUE(conn->embedded());
  ASSERT_NE(conn->broker(), nullptr);
  EXPECT_FALSE(conn->bootstrap().empty());
  EXPECT_EQ(conn->bootstrap(), conn->broker()->bootstrap());
  for (const auto& topic : cascade_topics(c)) {
    SCOPED_TRACE(topic.name);
    EXPECT_EQ(partition_count(conn->bootstrap(), topic.name), 3);
  }
}

TEST(KafkaConnection, EmbeddedBrokerLivesAsLongAsAnyCopyOfTheConnection) {
  KafkaConfig c = fast_kafka_config();
  c.partitions = 1;
  std::optional<KafkaConnection> copy;
  {
    auto conn = KafkaConnection::open(c);
    ASSERT_TRUE(conn) << conn.error().message;
    copy = *conn;
  }
  ASSERT_TRUE(copy->embedded());
  EXPECT_EQ(partition_count(copy->bootstrap(), c.requests_topic), 1);
}

TEST(KafkaConnection, ConfiguredBootstrapIsUsedAsIsWithoutAnEmbeddedBroker) {
  KafkaConfig c = fast_kafka_config();
  c.bootstrap = "kafka-1:9092,kafka-2:9092";
  auto conn = KafkaConnection::open(c);
  ASSERT_TRUE(conn) << conn.error().message;
  EXPECT_FALSE(conn->embedded());
  EXPECT_EQ(conn->broker(), nullptr);
  EXPECT_EQ(conn->bootstrap(), "kafka-1:9092,kafka-2:9092");
}

TEST(KafkaConnection, ConfiguredBootstrapPointingAtARunningBrokerWorks) {
  auto broker = start_broker();
  ASSERT_TRUE(broker);
  ASSERT_TRUE(broker->create_topic({"t", 2}));
  KafkaConfig c = fast_kafka_config();
  c.bootstrap = broker->bootstrap();
  auto conn = KafkaConnection::open(c);
  ASSERT_TRUE(conn) << conn.error().message;
  EXPECT_FALSE(conn->embedded());
  EXPECT_EQ(partition_count(conn->bootstrap(), "t"), 2);
}

TEST(MakeClientConf, UnknownPropertyInKafkaExtraIsAnErrorNamingIt) {
  KafkaConfig c = fast_kafka_config();
  c.extra = "acks=all;no.such.property=1";
  for (auto role : {ClientRole::producer, ClientRole::consumer}) {
    auto conf = make_client_conf(c, "localhost:9092", role, "g");
    ASSERT_FALSE(conf);
    EXPECT_EQ(conf.error().code, ErrorCode::invalid_request);
    EXPECT_THAT(conf.error().message, HasSubstr("no.such.property"));
  }
}

TEST(MakeClientConf, InvalidValueInKafkaExtraIsAnErrorNamingTheProperty) {
  KafkaConfig c = fast_kafka_config();
  c.extra = "socket.timeout.ms=soon";
  auto conf = make_client_conf(c, "localhost:9092", ClientRole::producer);
  ASSERT_FALSE(conf);
  EXPECT_THAT(conf.error().message, HasSubstr("socket.timeout.ms"));
}

TEST(MakeClientConf, KafkaExtraIsAppliedLastAndOverridesDefaults) {
  KafkaConfig c = fast_kafka_config();
  c.extra = "client.id=billing; socket.keepalive.enable=true";
  auto conf = make_client_conf(c, "b:9092", ClientRole::producer);
  ASSERT_TRUE(conf) << conf.error().message;
  EXPECT_EQ(conf_value(*conf, "client.id"), "billing");
  EXPECT_EQ(conf_value(*conf, "socket.keepalive.enable"), "true");
  rd_kafka_conf_destroy(*conf);
}

TEST(MakeClientConf, ProducerIsIdempotentWithTheConfiguredLinger) {
  KafkaConfig c = fast_kafka_config();
  c.linger_ms = 7;
  auto conf = make_client_conf(c, "b:9092", ClientRole::producer);
  ASSERT_TRUE(conf) << conf.error().message;
  EXPECT_EQ(conf_value(*conf, "bootstrap.servers"), "b:9092");
  EXPECT_EQ(conf_value(*conf, "enable.idempotence"), "true");
  EXPECT_EQ(conf_value(*conf, "linger.ms"), "7");
  rd_kafka_conf_destroy(*conf);
}

TEST(MakeClientConf, ConsumerStoresOffsetsOnlyExplicitly) {
  KafkaConfig c = fast_kafka_config();
  c.fetch_wait_max_ms = 9;
  auto conf = make_client_conf(c, "b:9092", ClientRole::consumer, "cascade-workers");
  ASSERT_TRUE(conf) << conf.error().message;
  EXPECT_EQ(conf_value(*conf, "group.id"), "cascade-workers");
  EXPECT_EQ(conf_value(*conf, "enable.auto.offset.store"), "false");
  EXPECT_EQ(conf_value(*conf, "auto.offset.reset"), "smallest");
  EXPECT_EQ(conf_value(*conf, "fetch.wait.max.ms"), "9");
  rd_kafka_conf_destroy(*conf);
}

TEST(MakeClientConf, OverridesComeLastSoKafkaExtraCannotUndoThem) {
  KafkaConfig c = fast_kafka_config();
  c.extra = "enable.auto.commit=true";
  auto conf = make_client_conf(c, "b:9092", ClientRole::consumer, "g", {{"enable.auto.commit", "false"}});
  ASSERT_TRUE(conf) << conf.error().message;
  EXPECT_EQ(conf_value(*conf, "enable.auto.commit"), "false");
  rd_kafka_conf_destroy(*conf);
}

TEST(SetProperty, ReportsLibrdkafkasReasonWithTheKey) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto ok = set_property(conf, "linger.ms", "5");
  EXPECT_TRUE(ok);
  auto bad = set_property(conf, "linger.ms", "-5");
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, HasSubstr("linger.ms"));
  rd_kafka_conf_destroy(conf);
}

}  // namespace
}  // namespace cascade
