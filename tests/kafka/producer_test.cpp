// KafkaProducer against the embedded broker: keys, null values, headers,
// delivery reports, purge, and producing from several threads at once.
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kafka/kafka.h"
#include "support/embedded_kafka.h"

namespace cascade {
namespace {

using testing::fast_kafka_config;
using testing::start_broker;

// One delivery report, copied.
struct Report {
  bool delivered = false;
  bool permanent = false;
  bool purged = false;
  std::string error = {};
  std::string topic = {};
  bool operator==(const Report&) const = default;
};

// Delivery reports as a producer hands them over, from any thread.
class Reports {
 public:
  std::function<void(const DeliveryReport&)> callback() {
    return [this](const DeliveryReport& r) {
      std::lock_guard lock(mu_);
      by_token_[r.token].push_back(Report{r.delivered, r.permanent, r.purged, std::string(r.error), std::string(r.topic)});
    };
  }
  // Each token's report; a token reported more than once fails the test.
  std::map<std::uint64_t, Report> once_each() const {
    std::lock_guard lock(mu_);
    std::map<std::uint64_t, Report> out;
    for (const auto& [token, list] : by_token_) {
      EXPECT_EQ(list.size(), 1u) << "token " << token;
      out[token] = list.front();
    }
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::uint64_t, std::vector<Report>> by_token_;
};

// What a reader sees of a record.
struct ReadBack {
  std::string key;
  std::optional<std::string> value;  // nullopt: a tombstone
  std::optional<std::string> writer;  // the "writer" header
};

std::vector<ReadBack> read_back(const std::string& bootstrap, const std::string& topic) {
  std::vector<ReadBack> out;
  auto n = read_topic_to_end(fast_kafka_config(), bootstrap, topic, [&](const KafkaRecord& r) {
    ReadBack b{std::string(r.key()), std::nullopt, std::nullopt};
    if (!r.tombstone()) b.value = std::string(r.payload());
    if (auto w = r.header("writer")) b.writer = std::string(*w);
    out.push_back(b);
  });
  EXPECT_TRUE(n) << n.error().message;
  return out;
}

class KafkaProducerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = start_broker({{"table", 1}, {"events", 4}});
    ASSERT_TRUE(broker_);
  }

  std::unique_ptr<KafkaProducer> create(KafkaProducerOptions options = {}, KafkaConfig config = fast_kafka_config()) {
    auto producer = KafkaProducer::create(config, broker_->bootstrap(), std::move(options));
    if (!producer) {
      ADD_FAILURE() << producer.error().message;
      return nullptr;
    }
    return std::move(*producer);
  }

  static bool queued(KafkaProducer& producer, const std::string& topic, const OutgoingRecord& record) {
    auto outcome = producer.produce(topic, record);
    return outcome && *outcome == KafkaProducer::Enqueued::yes;
  }

  std::unique_ptr<EmbeddedBroker> broker_;
  Reports reports_;
};

TEST_F(KafkaProducerTest, KeysValuesTombstonesAndHeadersArriveAsProduced) {
  auto producer = create();
  ASSERT_TRUE(producer);
  ASSERT_TRUE(queued(*producer, "table", {.key = "a", .value = "1", .header = RecordHeader{"writer", "w-1"}}));
  ASSERT_TRUE(queued(*producer, "table", {.key = "a", .value = std::nullopt}));
  ASSERT_TRUE(queued(*producer, "table", {.key = "b", .value = ""}));
  ASSERT_TRUE(producer->flush(10000));
  const auto read = read_back(broker_->bootstrap(), "table");
  ASSERT_EQ(read.size(), 3u);
  EXPECT_EQ(read[0].key, "a");
  EXPECT_EQ(read[0].value, "1");
  EXPECT_EQ(read[0].writer, "w-1");
  EXPECT_EQ(read[1].key, "a");
  EXPECT_EQ(read[1].value, std::nullopt) << "a null value is a tombstone";
  EXPECT_EQ(read[1].writer, std::nullopt);
  EXPECT_EQ(read[2].key, "b");
  EXPECT_EQ(read[2].value, "") << "an empty value is not a tombstone";
}

TEST_F(KafkaProducerTest, EveryRecordIsReportedOnceWithItsTokenAndTopic) {
  auto producer = create({.on_delivery = reports_.callback()});
  ASSERT_TRUE(producer);
  for (std::uint64_t token = 1; token <= 30; ++token)
    ASSERT_TRUE(queued(*producer, "events", {.key = "k" + std::to_string(token % 5), .value = "v", .token = token}));
  ASSERT_TRUE(producer->flush(10000));
  EXPECT_EQ(producer->queued(), 0u);
  const auto reports = reports_.once_each();
  ASSERT_EQ(reports.size(), 30u);
  for (const auto& [token, report] : reports) EXPECT_EQ(report, (Report{.delivered = true, .topic = "events"})) << token;
}

TEST_F(KafkaProducerTest, PurgeReportsWhatWasNotSentAsPurged) {
  KafkaConfig config = fast_kafka_config();
  config.linger_ms = 60000;  // nothing leaves before the purge
  auto producer = create({.on_delivery = reports_.callback()}, config);
  ASSERT_TRUE(producer);
  for (std::uint64_t token = 1; token <= 3; ++token)
    ASSERT_TRUE(queued(*producer, "events", {.key = "k", .value = "v", .token = token}));
  EXPECT_EQ(producer->queued(), 3u);
  producer->purge();
  EXPECT_EQ(producer->queued(), 0u);
  const auto reports = reports_.once_each();
  ASSERT_EQ(reports.size(), 3u);
  for (const auto& [token, report] : reports) {
    SCOPED_TRACE(token);
    EXPECT_TRUE(report.purged);
    EXPECT_FALSE(report.delivered);
    EXPECT_FALSE(report.permanent) << "a purged record may be sent again";
    EXPECT_NE(report.error, "");
  }
  EXPECT_TRUE(read_back(broker_->bootstrap(), "events").empty());
}

TEST_F(KafkaProducerTest, AnInvalidTopicNameIsAnErrorAtOnce) {
  auto producer = create();
  ASSERT_TRUE(producer);
  auto outcome = producer->produce(std::string(600, 'x'), {.key = "k", .value = "v"});
  ASSERT_FALSE(outcome);
  EXPECT_EQ(outcome.error().code, ErrorCode::unavailable);
}

TEST_F(KafkaProducerTest, SeveralThreadsProduceAtOnceAndEveryRecordIsReportedOnce) {
  auto producer = create({.java_partitioner = true, .on_delivery = reports_.callback()});
  ASSERT_TRUE(producer);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  std::atomic<bool> producing{true};
  std::atomic<int> failures{0};
  // Reports are served meanwhile on a thread of their own, as the changelog's applier does.
  std::thread poller([&] {
    while (producing) producer->poll(10);
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const auto token = static_cast<std::uint64_t>(t * kPerThread + i + 1);
        const std::string key = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (!queued(*producer, "events", {.key = key, .value = key, .token = token})) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_TRUE(producer->flush(20000));
  producing = false;
  poller.join();
  const auto reports = reports_.once_each();
  ASSERT_EQ(reports.size(), static_cast<std::size_t>(kThreads * kPerThread));
  for (const auto& [token, report] : reports) EXPECT_TRUE(report.delivered) << token;
  EXPECT_EQ(read_back(broker_->bootstrap(), "events").size(), static_cast<std::size_t>(kThreads * kPerThread));
}

TEST_F(KafkaProducerTest, TheJavaPartitionerPutsAKeyWhereProduceRecordAndWaitDoes) {
  ASSERT_TRUE(broker_->create_topic({"keyed", 8}));
  auto producer = create({.java_partitioner = true});
  ASSERT_TRUE(producer);
  for (int i = 0; i < 20; ++i) {
    const std::string key = "key-" + std::to_string(i);
    ASSERT_TRUE(queued(*producer, "keyed", {.key = key, .value = "via-producer"}));
    ASSERT_TRUE(produce_record_and_wait(fast_kafka_config(), broker_->bootstrap(), "keyed", key, "via-wait", 10000));
  }
  ASSERT_TRUE(producer->flush(10000));
  std::map<std::string, std::set<std::int32_t>> partitions;  // key -> partitions it landed in
  auto n = read_topic_to_end(fast_kafka_config(), broker_->bootstrap(), "keyed",
                             [&](const KafkaRecord& r) { partitions[std::string(r.key())].insert(r.partition()); });
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(*n, 40u);
  std::set<std::int32_t> used;
  for (const auto& [key, in] : partitions) {
    EXPECT_EQ(in.size(), 1u) << key;
    used.insert(in.begin(), in.end());
  }
  EXPECT_GT(used.size(), 1u) << "20 keys over 8 partitions land on more than one";
}

}  // namespace
}  // namespace cascade
