// PartitionReader against the embedded broker: every partition assigned
// without a group, from the beginning, the end or given offsets.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "kafka/kafka.h"
#include "support/embedded_kafka.h"
#include "support/wait.h"

namespace cascade {
namespace {

using ::testing::HasSubstr;
using testing::fast_kafka_config;
using testing::start_broker;

// A record as read: where it was and what it said.
struct Seen {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string value;
  auto operator<=>(const Seen&) const = default;
};

class PartitionReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = start_broker({{"events", 3}, {"other", 2}});
    ASSERT_TRUE(broker_);
    auto producer = KafkaProducer::create(config_, broker_->bootstrap());
    ASSERT_TRUE(producer) << producer.error().message;
    producer_ = std::move(*producer);
  }

  // `n` records into each partition of `topic` (values "<partition>-<i>"), acknowledged.
  void fill(const std::string& topic, int partitions, int n, int from = 0) {
    for (int p = 0; p < partitions; ++p) {
      for (int i = from; i < from + n; ++i) {
        const std::string value = std::to_string(p) + "-" + std::to_string(i);
        auto queued = producer_->produce(topic, {.key = "k", .value = value, .partition = p});
        ASSERT_TRUE(queued && *queued == KafkaProducer::Enqueued::yes);
      }
    }
    ASSERT_TRUE(producer_->flush(10000));
  }

  std::unique_ptr<PartitionReader> open(PartitionReaderOptions options) {
    if (options.name.empty()) options.name = "test";
    auto reader = PartitionReader::open(config_, broker_->bootstrap(), std::move(options));
    if (!reader) {
      ADD_FAILURE() << reader.error().message;
      return nullptr;
    }
    return std::move(*reader);
  }

  static std::vector<Seen> read_to_end(PartitionReader& reader) {
    std::vector<Seen> seen;
    auto n = reader.read_to_end(
        [&](const KafkaRecord& r) {
          seen.push_back({std::string(r.topic()), r.partition(), r.offset(), std::string(r.payload())});
        },
        20000);
    EXPECT_TRUE(n) << n.error().message;
    if (n) {
      EXPECT_EQ(*n, seen.size());
    }
    return seen;
  }

  // Polls until `n` records came or the time is up.
  static std::vector<Seen> poll_records(PartitionReader& reader, std::size_t n,
                                        std::chrono::milliseconds within = std::chrono::seconds(20)) {
    std::vector<Seen> seen;
    testing::eventually([&] { return seen.size() >= n; }, within, [&] {
      auto r = reader.poll(50);
      if (!r || !r->ok()) return;
      seen.push_back({std::string(r->topic()), r->partition(), r->offset(), std::string(r->payload())});
    });
    return seen;
  }

  KafkaConfig config_ = fast_kafka_config();
  std::unique_ptr<EmbeddedBroker> broker_;
  std::unique_ptr<KafkaProducer> producer_;
};

TEST_F(PartitionReaderTest, FromTheBeginningEveryPartitionOfEveryTopicIsAssignedAndReadToItsEnd) {
  fill("events", 3, 4);
  fill("other", 2, 2);
  auto reader = open({.topics = {"events", "other"}, .report_partition_ends = true});
  ASSERT_TRUE(reader);
  EXPECT_EQ(reader->partitions(), (std::vector<TopicPartition>{
                                      {"events", 0}, {"events", 1}, {"events", 2}, {"other", 0}, {"other", 1}}));
  auto seen = read_to_end(*reader);
  ASSERT_EQ(seen.size(), 3u * 4 + 2u * 2);
  std::set<Seen> expected;
  for (int p = 0; p < 3; ++p)
    for (int i = 0; i < 4; ++i) expected.insert({"events", p, i, std::to_string(p) + "-" + std::to_string(i)});
  for (int p = 0; p < 2; ++p)
    for (int i = 0; i < 2; ++i) expected.insert({"other", p, i, std::to_string(p) + "-" + std::to_string(i)});
  EXPECT_EQ(std::set<Seen>(seen.begin(), seen.end()), expected);
}

TEST_F(PartitionReaderTest, EmptyPartitionsReportTheirEndToo) {
  auto reader = open({.topics = {"events"}, .report_partition_ends = true});
  ASSERT_TRUE(reader);
  EXPECT_TRUE(read_to_end(*reader).empty());
}

TEST_F(PartitionReaderTest, AnEndMarkerSaysWhereThePartitionEnds) {
  fill("events", 3, 5);
  auto reader = open({.topics = {"events"}, .report_partition_ends = true});
  ASSERT_TRUE(reader);
  std::map<std::int32_t, std::int64_t> ends;
  testing::eventually([&] { return ends.size() >= 3; }, std::chrono::seconds(20), [&] {
    if (auto r = reader->poll(50); r && r->partition_end()) {
      EXPECT_FALSE(r->ok());
      ends[r->partition()] = r->offset();
    }
  });
  EXPECT_EQ(ends, (std::map<std::int32_t, std::int64_t>{{0, 5}, {1, 5}, {2, 5}}));
  for (std::int32_t p = 0; p < 3; ++p) {
    auto marks = reader->query_watermarks({"events", p}, 10000);
    ASSERT_TRUE(marks) << marks.error().message;
    EXPECT_EQ(marks->low, 0);
    EXPECT_EQ(marks->high, 5);
    const auto cached = reader->cached_watermarks({"events", p});
    ASSERT_TRUE(cached) << "known from the fetches";
    EXPECT_EQ(cached->high, 5);
  }
}

TEST_F(PartitionReaderTest, WithoutReportedEndsPollGivesRecordsOnlyAndReadToEndIsRefused) {
  fill("events", 3, 2);
  auto reader = open({.topics = {"events"}});
  ASSERT_TRUE(reader);
  auto seen = poll_records(*reader, 6);
  EXPECT_EQ(seen.size(), 6u);
  // Nothing more: no end markers either.
  const auto quiet_until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  while (std::chrono::steady_clock::now() < quiet_until) EXPECT_FALSE(reader->poll(20));
  auto n = reader->read_to_end([](const KafkaRecord&) {}, 1000);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code, ErrorCode::internal);
}

TEST_F(PartitionReaderTest, FromTheEndOnlyRecordsWrittenAfterOpenAreRead) {
  fill("events", 3, 3);
  auto reader = open({.topics = {"events"}, .start = ReadStart::end});
  ASSERT_TRUE(reader);
  fill("events", 3, 2, 100);
  auto seen = poll_records(*reader, 6);
  ASSERT_EQ(seen.size(), 6u);
  for (const auto& s : seen) {
    SCOPED_TRACE(s.value);
    EXPECT_GE(s.offset, 3) << "written before open()";
    EXPECT_THAT(s.value, ::testing::EndsWith(s.offset == 3 ? "-100" : "-101"));
  }
  EXPECT_TRUE(poll_records(*reader, 1, std::chrono::milliseconds(300)).empty());
}

TEST_F(PartitionReaderTest, GivenOffsetsStartTheirPartitionsThereAndTheOthersAtTheStart) {
  fill("events", 3, 5);
  auto reader = open({.topics = {"events"},
                      .offsets = {{{"events", 0}, 3}, {{"events", 2}, 5}, {{"events", 9}, 1}},
                      .report_partition_ends = true});
  ASSERT_TRUE(reader);
  EXPECT_EQ(reader->partitions().size(), 3u) << "an offset for a partition the topic lacks is ignored";
  std::map<std::int32_t, std::vector<std::int64_t>> offsets;
  for (const auto& s : read_to_end(*reader)) offsets[s.partition].push_back(s.offset);
  EXPECT_EQ(offsets, (std::map<std::int32_t, std::vector<std::int64_t>>{{0, {3, 4}}, {1, {0, 1, 2, 3, 4}}}));
}

TEST_F(PartitionReaderTest, SeekReadsAPartitionAgain) {
  fill("events", 3, 2);
  auto reader = open({.topics = {"events"}, .report_partition_ends = true});
  ASSERT_TRUE(reader);
  ASSERT_EQ(read_to_end(*reader).size(), 6u);
  ASSERT_TRUE(reader->seek({{{"events", 1}, kOffsetBeginning}}, 5000));
  auto again = poll_records(*reader, 2);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0], (Seen{"events", 1, 0, "1-0"}));
  EXPECT_EQ(again[1], (Seen{"events", 1, 1, "1-1"}));
}

TEST_F(PartitionReaderTest, PollBatchTakesWhatIsThereUpToItsLimit) {
  fill("other", 2, 10);
  auto reader = open({.topics = {"other"}});
  ASSERT_TRUE(reader);
  std::size_t total = 0;
  testing::eventually([&] { return total >= 20; }, std::chrono::seconds(20), [&] {
    const auto batch = reader->poll_batch(50, 7);
    EXPECT_LE(batch.size(), 7u);
    for (const auto& r : batch) total += r.ok() ? 1 : 0;
  });
  EXPECT_EQ(total, 20u);
  EXPECT_TRUE(reader->poll_batch(0, 7).empty());
}

TEST_F(PartitionReaderTest, WakeEndsAWaitingPoll) {
  auto reader = open({.topics = {"events"}});
  ASSERT_TRUE(reader);
  const auto started = std::chrono::steady_clock::now();
  std::thread waker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    reader->wake();
  });
  EXPECT_FALSE(reader->poll(20000));
  waker.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
}

TEST_F(PartitionReaderTest, AMissingTopicIsUnavailableAndIsNotCreatedByAsking) {
  auto reader = PartitionReader::open(config_, broker_->bootstrap(),
                                      {.topics = {"events", "nowhere"}, .name = "budgets",
                                       .missing_topic_hint = "create it first"});
  ASSERT_FALSE(reader);
  EXPECT_EQ(reader.error().code, ErrorCode::unavailable);
  EXPECT_EQ(reader.error().message, "budgets topic nowhere does not exist (create it first)");
  auto exists = topic_exists(config_, broker_->bootstrap(), "nowhere");
  ASSERT_TRUE(exists) << exists.error().message;
  EXPECT_FALSE(*exists);
}

TEST_F(PartitionReaderTest, AMissingTopicCanReadAsEmpty) {
  fill("events", 3, 1);
  auto reader = open({.topics = {"nowhere", "events"}, .report_partition_ends = true, .missing_topic_is_empty = true});
  ASSERT_TRUE(reader);
  EXPECT_EQ(reader->partitions().size(), 3u);
  EXPECT_EQ(read_to_end(*reader).size(), 3u);
  auto exists = topic_exists(config_, broker_->bootstrap(), "nowhere");
  ASSERT_TRUE(exists) << exists.error().message;
  EXPECT_FALSE(*exists);
}

TEST(ReadTopicToEnd, AMissingTopicReadsAsEmptyAndIsNotCreated) {
  auto broker = start_broker();
  ASSERT_TRUE(broker);
  int calls = 0;
  auto read =
      read_topic_to_end(fast_kafka_config(), broker->bootstrap(), "nowhere", [&](const KafkaRecord&) { ++calls; });
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(*read, 0u);
  EXPECT_EQ(calls, 0);
  auto exists = topic_exists(fast_kafka_config(), broker->bootstrap(), "nowhere");
  ASSERT_TRUE(exists) << exists.error().message;
  EXPECT_FALSE(*exists);
}

}  // namespace
}  // namespace cascade
