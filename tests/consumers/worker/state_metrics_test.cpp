// The worker's Prometheus metrics of its state store and the changelog
// replication (docs/state.md, "Metrics"): what a scrape of /metrics shows
// after writes through replicated stores on an embedded broker.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <sstream>
#include <string>

#include "consumers/worker/worker_metrics.h"
#include "kafka/kafka.h"
#include "state/state.h"
#include "support/embedded_kafka.h"
#include "support/state_store.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace cascade {
namespace {

using testing::ManualClock;
using testing::Replica;
using testing::TempDir;

constexpr const char* kTopic = "cascade.cache-changelog";
constexpr int kWaitMs = 30000;

// The value of one series ("name" or "name{label=\"value\"}") in a text
// exposition; nullopt when the scrape does not have it.
std::optional<double> scraped(const std::string& exposition, const std::string& series) {
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return std::nullopt;
}

class StateMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kafka_ = testing::start_embedded_kafka({{kTopic, 3}}, testing::fast_kafka_config(2));
    ASSERT_TRUE(kafka_.broker);
  }

  StateOptions options(const std::string& dir, const std::string& writer) const {
    return testing::replica_options(dir, kTopic, writer, &clock_);
  }

  void open(Replica& r, const std::string& name) {
    r = testing::open_replica(options(dir_.sub(name), name), kafka_.config, kafka_.bootstrap());
    ASSERT_TRUE(r.store && r.changelog);
  }

  void produce_malformed() { ASSERT_TRUE(testing::produce_raw(kafka_, kTopic, "future-family/key", "x", 0)); }

  TempDir dir_;
  ManualClock clock_;
  testing::EmbeddedKafka kafka_;
};

TEST_F(StateMetricsTest, AScrapeShowsTheReplicasBytesLagDelayAndSkippedRecords) {
  Replica a, b;
  open(a, "worker-a");
  open(b, "worker-b");
  ASSERT_TRUE(a.changelog && b.changelog);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(a.store->put_response("acme", "fp-" + std::to_string(i), std::string(100, 'x'), "v"));
  }
  ASSERT_TRUE(CompletedAnswerStore::view(*a.store)->put("acme", "req-1", {"{\"type\":\"final\"}", "{}"}));
  ASSERT_TRUE(a.changelog->flush(kWaitMs));
  produce_malformed();
  ASSERT_TRUE(b.changelog->restore(kWaitMs));

  WorkerMetrics metrics;
  StateMetricsSampler sampler(metrics, *b.store, b.changelog.get(), std::chrono::hours(1));
  std::string text = metrics.serialize();
  const StateStats replica = b.store->stats();
  ASSERT_GT(replica.cache_bytes, 0u);
  ASSERT_GT(replica.completed_bytes, 0u);
  EXPECT_EQ(replica.cache_bytes, a.store->stats().cache_bytes);  // the replica holds what the writer holds
  EXPECT_EQ(scraped(text, "cascade_state_bytes{class=\"cache\"}"), static_cast<double>(replica.cache_bytes));
  EXPECT_EQ(scraped(text, "cascade_state_bytes{class=\"completed\"}"), static_cast<double>(replica.completed_bytes));
  EXPECT_EQ(scraped(text, "cascade_state_outbox_pending"), 0.0);  // B wrote nothing of its own
  EXPECT_EQ(scraped(text, "cascade_state_changelog_lag_messages"), 0.0);
  EXPECT_EQ(scraped(text, "cascade_state_changelog_applied_total"), 5.0);  // 4 of A's records + the skipped one
  EXPECT_EQ(scraped(text, "cascade_state_changelog_malformed_total"), 1.0);
  EXPECT_EQ(scraped(text, "cascade_state_changelog_publish_failures_total"), 0.0);
  EXPECT_EQ(scraped(text, "cascade_state_expired_total"), 0.0);
  EXPECT_EQ(scraped(text, "cascade_state_evicted_total"), 0.0);
  const auto delay = scraped(text, "cascade_state_changelog_replication_delay_ms");
  ASSERT_TRUE(delay) << "A's records are foreign to B";
  EXPECT_GE(*delay, 0.0);
  EXPECT_LT(*delay, kWaitMs);
  ASSERT_TRUE(scraped(text, "cascade_state_changelog_foreign_apply_age_ms"));

  // Records B has not applied yet show as lag once its consumer has seen them.
  for (int i = 3; i < 5; ++i) ASSERT_TRUE(a.store->put_response("acme", "fp-" + std::to_string(i), "y", "v"));
  ASSERT_TRUE(a.changelog->flush(kWaitMs));
  testing::eventually([&] { return b.changelog->lag().messages_behind >= 2; }, kWaitMs, 5);
  sampler.sample();
  EXPECT_EQ(scraped(metrics.serialize(), "cascade_state_changelog_lag_messages"), 2.0);
  ASSERT_TRUE(b.changelog->restore(kWaitMs));
  sampler.sample();
  text = metrics.serialize();
  EXPECT_EQ(scraped(text, "cascade_state_changelog_lag_messages"), 0.0);
  EXPECT_EQ(scraped(text, "cascade_state_changelog_applied_total"), 7.0);
  EXPECT_EQ(scraped(text, "cascade_state_bytes{class=\"cache\"}"), static_cast<double>(b.store->stats().cache_bytes));

  // Expiry on the replica: five answers past their TTL.
  clock_.advance_ms((b.store->options().responses_ttl_s + 1) * 1000);
  auto swept = b.store->maintain();
  ASSERT_TRUE(swept) << swept.error().message;
  ASSERT_EQ(swept->expired, 5u);
  sampler.sample();
  sampler.sample();  // a counter follows the store's total, it does not add it again
  text = metrics.serialize();
  EXPECT_EQ(scraped(text, "cascade_state_expired_total"), 5.0);
  EXPECT_EQ(scraped(text, "cascade_state_bytes{class=\"cache\"}"), 0.0);
}

TEST_F(StateMetricsTest, AStoreWithoutAChangelogShowsItsOutboxAndEvictionsButNoChangelogSeries) {
  StateOptions o = options(dir_.sub("alone"), "alone");
  o.max_bytes = 2000;  // a few entries of 300 bytes
  auto store = testing::open_state_store(o);
  ASSERT_TRUE(store);
  WorkerMetrics metrics;
  StateMetricsSampler sampler(metrics, *store, nullptr, std::chrono::hours(1));

  for (int i = 0; i < 10; ++i) {
    clock_.advance_ms(1);  // oldest first is well defined
    ASSERT_TRUE(store->put_response("acme", "fp-" + std::to_string(i), std::string(300, 'x'), "v"));
  }
  auto first = store->maintain();
  ASSERT_TRUE(first);
  ASSERT_GT(first->evicted, 0u);
  sampler.sample();
  std::string text = metrics.serialize();
  EXPECT_EQ(scraped(text, "cascade_state_evicted_total"), static_cast<double>(first->evicted));
  // Replicated but with no changelog attached: every change waits in the outbox.
  EXPECT_EQ(scraped(text, "cascade_state_outbox_pending"), 10.0);
  EXPECT_FALSE(scraped(text, "cascade_state_changelog_lag_messages"));
  EXPECT_FALSE(scraped(text, "cascade_state_changelog_applied_total"));

  for (int i = 10; i < 20; ++i) {
    clock_.advance_ms(1);
    ASSERT_TRUE(store->put_response("acme", "fp-" + std::to_string(i), std::string(300, 'x'), "v"));
  }
  auto second = store->maintain();
  ASSERT_TRUE(second);
  ASSERT_GT(second->evicted, 0u);
  sampler.sample();
  EXPECT_EQ(scraped(metrics.serialize(), "cascade_state_evicted_total"),
            static_cast<double>(first->evicted + second->evicted));
  EXPECT_EQ(scraped(metrics.serialize(), "cascade_state_bytes{class=\"cache\"}"),
            static_cast<double>(store->stats().cache_bytes));
}

TEST_F(StateMetricsTest, TheSamplerRefreshesOnItsOwnEveryInterval) {
  Replica a;
  open(a, "worker-a");
  ASSERT_TRUE(a.changelog);
  WorkerMetrics metrics;
  StateMetricsSampler sampler(metrics, *a.store, a.changelog.get(), std::chrono::milliseconds(20));
  EXPECT_EQ(scraped(metrics.serialize(), "cascade_state_bytes{class=\"cache\"}"), 0.0);  // sampled at start
  ASSERT_TRUE(a.store->put_response("acme", "fp", "answer", "v"));
  const double expected = static_cast<double>(a.store->stats().cache_bytes);
  ASSERT_GT(expected, 0.0);
  testing::eventually([&] { return scraped(metrics.serialize(), "cascade_state_bytes{class=\"cache\"}") == expected; },
                      std::chrono::seconds(10), std::chrono::milliseconds(5));
  EXPECT_EQ(scraped(metrics.serialize(), "cascade_state_bytes{class=\"cache\"}"), expected);
}

}  // namespace
}  // namespace cascade
