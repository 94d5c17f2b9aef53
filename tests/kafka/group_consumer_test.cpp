// GroupConsumer and the producer's backlog, against the embedded broker.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "kafka/kafka.h"
#include "producers/event_producer.h"
#include "support/embedded_kafka.h"
#include "support/wait.h"

namespace cascade {
namespace {

// Members of a group that leave or join within a test rebalance quickly.
KafkaConfig group_config() {
  KafkaConfig c = testing::fast_kafka_config();
  c.extra = "session.timeout.ms=6000;heartbeat.interval.ms=200";
  return c;
}

class Listener : public RebalanceListener {
 public:
  void on_assigned(const std::vector<std::int32_t>& partitions) override {
    for (auto p : partitions) assigned.insert(p);
    assign_calls++;
  }
  void on_revoked(const std::vector<std::int32_t>& partitions) override {
    for (auto p : partitions) assigned.erase(p);
    revoked_calls++;
    if (on_revoke) on_revoke(partitions);
  }
  std::set<std::int32_t> assigned;
  int assign_calls = 0;
  int revoked_calls = 0;
  std::function<void(const std::vector<std::int32_t>&)> on_revoke;
};

class GroupConsumerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = testing::start_broker({{"requests", 4}});
    ASSERT_TRUE(broker_);
    auto producer = EventProducer::create(config_, broker_->bootstrap());
    ASSERT_TRUE(producer) << producer.error().message;
    producer_ = std::move(*producer);
  }

  void produce(int n, int from = 0) {
    for (int i = from; i < from + n; ++i) {
      ASSERT_TRUE(producer_->produce("requests", "key-" + std::to_string(i), "value-" + std::to_string(i)));
    }
    ASSERT_TRUE(producer_->flush(10000));
  }

  std::unique_ptr<GroupConsumer> open(Listener* listener, const std::string& group = "g") {
    auto consumer = GroupConsumer::open(config_, broker_->bootstrap(), {group, "requests", 100, listener});
    if (!consumer) {
      ADD_FAILURE() << consumer.error().message;
      return nullptr;
    }
    return std::move(*consumer);
  }

  // Polls until `n` records were read or the time is up; returns their payloads.
  std::vector<std::string> read(GroupConsumer& consumer, std::size_t n,
                                std::chrono::milliseconds within = std::chrono::seconds(20),
                                std::vector<std::pair<std::int32_t, std::int64_t>>* positions = nullptr) {
    std::vector<std::string> out;
    testing::eventually([&] { return out.size() >= n; }, within, [&] {
      auto record = consumer.poll(50);
      if (!record || !record->ok()) return;
      out.emplace_back(record->payload());
      if (positions) positions->emplace_back(record->partition(), record->offset());
    });
    return out;
  }

  // Reads `n` records and commits the offsets after them: (partition, next offset) in `next`.
  void read_and_commit(GroupConsumer& consumer, std::size_t n, std::map<std::int32_t, std::int64_t>* next) {
    std::vector<std::pair<std::int32_t, std::int64_t>> positions;
    ASSERT_EQ(read(consumer, n, std::chrono::seconds(20), &positions).size(), n);
    for (const auto& [p, offset] : positions) (*next)[p] = std::max((*next)[p], offset + 1);
    consumer.store_offsets({next->begin(), next->end()});
    ASSERT_TRUE(consumer.commit());
  }

  KafkaConfig config_ = group_config();
  std::unique_ptr<EmbeddedBroker> broker_;
  std::unique_ptr<EventProducer> producer_;
};

TEST_F(GroupConsumerTest, ASingleMemberIsAssignedEveryPartitionAndReadsEveryRecord) {
  Listener listener;
  auto consumer = open(&listener);
  ASSERT_TRUE(consumer);
  produce(40);
  auto got = read(*consumer, 40);
  EXPECT_EQ(got.size(), 40u);
  EXPECT_EQ(listener.assigned, (std::set<std::int32_t>{0, 1, 2, 3}));
  auto assignment = consumer->assignment();
  std::sort(assignment.begin(), assignment.end());
  EXPECT_EQ(assignment, (std::vector<std::int32_t>{0, 1, 2, 3}));
}

TEST_F(GroupConsumerTest, RecordsExposeTopicPartitionOffsetKeyAndPayload) {
  Listener listener;
  auto consumer = open(&listener);
  ASSERT_TRUE(consumer);
  produce(1);
  std::optional<KafkaRecord> record;
  testing::eventually([&] { return record && record->ok(); }, std::chrono::seconds(20),
                      [&] { record = consumer->poll(50); });
  ASSERT_TRUE(record && record->ok());
  EXPECT_EQ(record->topic(), "requests");
  EXPECT_EQ(record->key(), "key-0");
  EXPECT_EQ(record->payload(), "value-0");
  EXPECT_EQ(record->offset(), 0);
  EXPECT_GE(record->partition(), 0);
  EXPECT_GT(record->timestamp_ms(), 0);
  EXPECT_FALSE(record->tombstone());
  EXPECT_FALSE(record->header("missing"));
  EXPECT_EQ(record->error(), "");
}

TEST_F(GroupConsumerTest, CommittedOffsetsAreWhereTheNextMemberOfTheGroupStarts) {
  {
    Listener listener;
    auto consumer = open(&listener);
    ASSERT_TRUE(consumer);
    produce(20);
    std::map<std::int32_t, std::int64_t> next;
    ASSERT_NO_FATAL_FAILURE(read_and_commit(*consumer, 20, &next));
    consumer->close();
  }
  produce(5, 20);
  Listener listener;
  auto again = open(&listener);
  ASSERT_TRUE(again);
  auto got = read(*again, 5);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"value-20", "value-21", "value-22", "value-23", "value-24"}));
  EXPECT_TRUE(read(*again, 1, std::chrono::milliseconds(500)).empty()) << "nothing before the commit comes again";
}

TEST_F(GroupConsumerTest, APausedPartitionIsNotFetchedUntilResumed) {
  Listener listener;
  auto consumer = open(&listener);
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(testing::eventually([&] {
    (void)consumer->poll(50);
    return listener.assigned.size() == 4;
  }));
  consumer->pause({0, 1, 2, 3});
  produce(10);
  EXPECT_TRUE(read(*consumer, 1, std::chrono::milliseconds(800)).empty());
  consumer->resume({0, 1, 2, 3});
  EXPECT_EQ(read(*consumer, 10).size(), 10u);
}

TEST_F(GroupConsumerTest, CommittedOffsetsTellWhatTheGroupCommittedPerPartition) {
  Listener listener;
  auto consumer = open(&listener, "audited");
  ASSERT_TRUE(consumer);
  auto none = committed_offsets(config_, broker_->bootstrap(), "audited", "requests");
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_TRUE(none->empty()) << "nothing committed yet";
  produce(12);
  std::map<std::int32_t, std::int64_t> next;
  ASSERT_NO_FATAL_FAILURE(read_and_commit(*consumer, 12, &next));
  auto committed = committed_offsets(config_, broker_->bootstrap(), "audited", "requests");
  ASSERT_TRUE(committed) << committed.error().message;
  EXPECT_EQ(*committed, next);
  auto missing = committed_offsets(config_, broker_->bootstrap(), "audited", "nowhere");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ErrorCode::unavailable);
}

TEST_F(GroupConsumerTest, ASecondMemberTakesPartitionsAndTheFirstIsToldBeforeLosingThem) {
  Listener first_listener;
  auto first = open(&first_listener);
  ASSERT_TRUE(first);
  ASSERT_TRUE(testing::eventually([&] {
    (void)first->poll(50);
    return first_listener.assigned.size() == 4;
  }));
  int commits_in_revoke = 0;
  first_listener.on_revoke = [&](const std::vector<std::int32_t>&) {
    // The revoke callback may still commit: the consumer has the partitions.
    if (first->commit()) commits_in_revoke++;
  };
  Listener second_listener;
  auto second = open(&second_listener);
  ASSERT_TRUE(second);
  ASSERT_TRUE(testing::eventually(
      [&] {
        (void)first->poll(20);
        (void)second->poll(20);
        return first_listener.assigned.size() + second_listener.assigned.size() == 4 &&
               !second_listener.assigned.empty() && !first_listener.assigned.empty();
      },
      30000));
  EXPECT_GE(first_listener.revoked_calls, 1);
  EXPECT_GE(commits_in_revoke, 1);
  for (auto p : second_listener.assigned) EXPECT_FALSE(first_listener.assigned.contains(p)) << p;
}

// What a worker loop derives its share of a tenant's rate limits from
// (consumers/worker/partition_share.h): its partitions of the topic's.
TEST_F(GroupConsumerTest, EachMemberKnowsItsPartOfTheTopicAsEveryRebalanceLeavesIt) {
  Listener first_listener;
  auto first = open(&first_listener);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->topic_share().assigned, 0u);
  EXPECT_EQ(first->topic_share().partitions, 0);
  ASSERT_TRUE(testing::eventually([&] {
    (void)first->poll(50);
    return first_listener.assigned.size() == 4;
  }));
  EXPECT_EQ(first->topic_share().assigned, 4u);
  EXPECT_EQ(first->topic_share().partitions, 4);
  // Told of a revoke, the member already counts without the revoked partitions.
  std::vector<std::size_t> held_in_revoke, expected_in_revoke;
  first_listener.on_revoke = [&](const std::vector<std::int32_t>&) {
    held_in_revoke.push_back(first->topic_share().assigned);
    expected_in_revoke.push_back(first_listener.assigned.size());
  };
  Listener second_listener;
  auto second = open(&second_listener);
  ASSERT_TRUE(second);
  ASSERT_TRUE(testing::eventually(
      [&] {
        (void)first->poll(20);
        (void)second->poll(20);
        return first_listener.assigned.size() + second_listener.assigned.size() == 4 &&
               !second_listener.assigned.empty() && !first_listener.assigned.empty();
      },
      30000));
  EXPECT_EQ(held_in_revoke, expected_in_revoke);
  EXPECT_FALSE(held_in_revoke.empty());
  EXPECT_EQ(first->topic_share().assigned, first_listener.assigned.size());
  EXPECT_EQ(second->topic_share().assigned, second_listener.assigned.size());
  EXPECT_EQ(first->topic_share().assigned + second->topic_share().assigned, 4u);
  EXPECT_EQ(second->topic_share().partitions, 4);
}

TEST(EventProducerBacklog, AFullQueueNeverBlocksAndEventsLeaveInOrder) {
  KafkaConfig config = group_config();
  config.extra += ";queue.buffering.max.messages=5";
  const auto kafka = testing::start_embedded_kafka({{"t", 1}}, config);
  ASSERT_TRUE(kafka.broker);
  auto producer = EventProducer::create(kafka.config, kafka.bootstrap());
  ASSERT_TRUE(producer) << producer.error().message;

  for (int i = 0; i < 200; ++i) ASSERT_TRUE((*producer)->produce("t", "k", std::to_string(i)));
  EXPECT_GT((*producer)->backlog(), 0u) << "a queue of 5 cannot take 200 events at once";
  EXPECT_EQ((*producer)->queued(), 200u) << "produce never waited for a delivery to make room";

  ASSERT_TRUE((*producer)->flush(20000));
  EXPECT_EQ((*producer)->backlog(), 0u);
  std::vector<std::string> read;
  auto n = read_topic_to_end(kafka.config, kafka.bootstrap(), "t",
                             [&](const KafkaRecord& m) { read.emplace_back(m.payload()); });
  ASSERT_TRUE(n) << n.error().message;
  ASSERT_EQ(read.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(read[static_cast<std::size_t>(i)], std::to_string(i));
}

}  // namespace
}  // namespace cascade
