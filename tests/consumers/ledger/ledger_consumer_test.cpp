// The ledger consumer against an embedded Kafka broker: batches durably
// counted before offsets move, exactly-once totals across restarts and
// redeliveries.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "consumers/ledger/cost_event_builder.h"
#include "consumers/ledger/ledger.h"
#include "kafka/kafka.h"
#include "support/embedded_kafka.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace cascade {
namespace {

using ledger_test::make_cost;
using testing::eventually;
using testing::TempDir;


class LedgerConsumerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KafkaConfig kafka = testing::fast_kafka_config();
    // A consumer of the same group restarted within a test rejoins quickly.
    kafka.extra = "session.timeout.ms=6000;heartbeat.interval.ms=500";
    kafka_ = testing::start_cascade_kafka(4, kafka);
    ASSERT_TRUE(kafka_.broker);
    auto producer = KafkaProducer::create(kafka_.config, kafka_.bootstrap());
    ASSERT_TRUE(producer) << producer.error().message;
    producer_ = std::move(*producer);
  }

  void produce(const std::vector<CostEvent>& events) {
    for (const auto& e : events) {
      const std::string value = make_cost_event(e);
      auto queued = producer_->produce(kafka_.config.ledger_topic, {.key = e.tenant, .value = value});
      ASSERT_TRUE(queued && *queued == KafkaProducer::Enqueued::yes);
    }
    ASSERT_TRUE(producer_->flush(10000));
  }

  std::unique_ptr<LedgerStore> open_store(const std::string& dir) {
    LedgerStoreOptions options;
    options.dir = dir;
    auto store = LedgerStore::open(options);
    EXPECT_TRUE(store) << store.error().message;
    return store ? std::move(*store) : nullptr;
  }

  static std::vector<CostEvent> events(int from, int to, std::int64_t ts) {
    std::vector<CostEvent> out;
    for (int i = from; i < to; ++i) {
      out.push_back(make_cost({.id = "req-" + std::to_string(i),
                               .tenant = i % 3 == 0 ? "globex" : "acme",
                               .model = i % 2 ? "gpt-4o-mini" : "gpt-4o",
                               .cost_usd = 0.001 * (i + 1),
                               .baseline_cost_usd = 0.01,
                               .input_tokens = 100 + i,
                               .output_tokens = 10,
                               .ts_ms = ts}));
    }
    return out;
  }

  static LedgerTotals totals(const LedgerStore& store) {
    auto rows = store.usage({});
    EXPECT_TRUE(rows);
    return rows ? sum_rows(*rows) : LedgerTotals{};
  }

  testing::EmbeddedKafka kafka_;
  std::unique_ptr<KafkaProducer> producer_;
  TempDir dir_;
};

TEST_F(LedgerConsumerTest, RedeliveryAfterARestartIsCountedOnceAndTotalsSurvive) {
  const std::int64_t now = now_ms();
  double expected_cost = 0;
  for (const auto& e : events(0, 60, now)) expected_cost += e.cost_usd;
  produce(events(0, 50, now));
  {
    auto store = open_store(dir_.path());
    LedgerMetrics metrics;
    auto consumer =
        LedgerConsumer::start(kafka_.config, kafka_.bootstrap(), {.store = store.get(), .metrics = &metrics}, 7);
    ASSERT_TRUE(consumer) << consumer.error().message;
    ASSERT_TRUE(eventually([&] { return (*consumer)->events_counted() == 50; })) << (*consumer)->events_counted();
    (*consumer)->stop();
    EXPECT_NE(metrics.serialize().find("cascade_ledger_events_total{outcome=\"applied\"} 50"), std::string::npos);
    ASSERT_TRUE(store->close());
  }
  // Everything again (as after a crash before the commit: another group
  // starts from the beginning), plus ten new events.
  produce(events(0, 60, now));
  auto store = open_store(dir_.path());
  EXPECT_EQ(totals(*store).requests, 50u);
  kafka_.config.ledger_group = "cascade-ledger-after-crash";
  LedgerMetrics metrics;
  auto consumer = LedgerConsumer::start(kafka_.config, kafka_.bootstrap(), {.store = store.get(), .metrics = &metrics});
  ASSERT_TRUE(consumer) << consumer.error().message;
  ASSERT_TRUE(eventually([&] { return (*consumer)->events_applied() == 110; })) << (*consumer)->events_applied();
  (*consumer)->stop();
  EXPECT_EQ((*consumer)->events_counted(), 10u);
  const LedgerTotals t = totals(*store);
  EXPECT_EQ(t.requests, 60u);
  EXPECT_NEAR(t.cost_usd, expected_cost, 1e-12);
  EXPECT_NE(metrics.serialize().find("cascade_ledger_events_total{outcome=\"duplicate\"} 100"), std::string::npos)
      << metrics.serialize();
}

TEST_F(LedgerConsumerTest, OffsetsAreCommittedAfterTheWriteSoARestartReadsOnlyNewEvents) {
  const std::int64_t now = now_ms();
  produce(events(0, 20, now));
  auto store = open_store(dir_.sub("a"));
  {
    auto consumer = LedgerConsumer::start(kafka_.config, kafka_.bootstrap(), {.store = store.get()});
    ASSERT_TRUE(consumer);
    ASSERT_TRUE(eventually([&] { return (*consumer)->events_counted() == 20; }));
    (*consumer)->stop();
  }
  produce(events(20, 25, now));
  auto consumer = LedgerConsumer::start(kafka_.config, kafka_.bootstrap(), {.store = store.get()});
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(eventually([&] { return (*consumer)->events_applied() == 5; }));
  // Nothing older comes back.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  (*consumer)->stop();
  EXPECT_EQ((*consumer)->events_applied(), 5u);
  EXPECT_EQ(totals(*store).requests, 25u);
}

TEST_F(LedgerConsumerTest, AFailedStoreWriteCommitsNothing) {
  const std::int64_t now = now_ms();
  auto broken = open_store(dir_.sub("broken"));
  ASSERT_TRUE(broken->close());  // every write now fails
  {
    auto consumer = LedgerConsumer::start(kafka_.config, kafka_.bootstrap(), {.store = broken.get()});
    ASSERT_TRUE(consumer);
    produce(events(0, 12, now));
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    (*consumer)->stop();
    EXPECT_EQ((*consumer)->events_counted(), 0u);
  }
  // The same group, with a working store: every event is still there.
  auto store = open_store(dir_.sub("good"));
  auto consumer = LedgerConsumer::start(kafka_.config, kafka_.bootstrap(), {.store = store.get()});
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(eventually([&] { return (*consumer)->events_counted() == 12; })) << (*consumer)->events_counted();
  (*consumer)->stop();
  EXPECT_EQ(totals(*store).requests, 12u);
}

TEST_F(LedgerConsumerTest, WithoutAStoreTheAggregatorDeduplicates) {
  const std::int64_t now = now_ms();
  produce(events(0, 10, now));
  produce(events(0, 10, now));
  LedgerAggregator aggregator;
  auto consumer = LedgerConsumer::start(kafka_.config, kafka_.bootstrap(), aggregator, nullptr);
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(eventually([&] { return (*consumer)->events_applied() == 20; }));
  (*consumer)->stop();
  EXPECT_EQ((*consumer)->events_counted(), 10u);
  EXPECT_EQ(aggregator.total().requests, 10u);
  EXPECT_EQ(aggregator.duplicates(), 10u);
}

}  // namespace
}  // namespace cascade
