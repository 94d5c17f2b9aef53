// Budget alerts and spend state, against an embedded Kafka broker and a real
// local HTTP receiver standing in for Slack.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>

#include "consumers/ledger/cost_event_builder.h"
#include "consumers/ledger/ledger.h"
#include "kafka/kafka.h"
#include "support/embedded_kafka.h"
#include "support/scripted_http_server.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace cascade {
namespace {

using ledger_test::make_cost;
using testing::eventually;
using testing::ScriptedHttpServer;
using testing::ScriptedResponse;
using testing::TempDir;

constexpr int kWaitMs = 30000;


class BudgetMonitorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kafka_ = testing::start_cascade_kafka(2);
    ASSERT_TRUE(kafka_.broker);
    ASSERT_TRUE(hook_.start()) << hook_.error();
    hook_.set_responder([](const auto&) { return ScriptedResponse::http(200, "text/plain", "ok"); });
    LedgerStoreOptions store_options;
    store_options.dir = dir_.path();
    auto store = LedgerStore::open(store_options);
    ASSERT_TRUE(store);
    store_ = std::move(*store);
  }

  BudgetMonitorOptions options() const {
    BudgetMonitorOptions o;
    o.webhook_url = hook_.base_url() + "/hooks/budget";
    o.webhook_backoff_base_ms = 20;
    o.webhook_backoff_cap_ms = 100;
    o.heartbeat_ms = 100;
    return o;
  }

  // Applies one request's cost as the consumer does: store, then monitor.
  void spend(BudgetMonitor& monitor, const std::string& id, double usd, std::vector<std::string> tags = {}) {
    auto outcome = store_->apply(std::vector{
        make_cost({.id = id, .tenant = "acme", .model = "gpt-4o", .cost_usd = usd, .ts_ms = now_ms(), .tags = tags})});
    ASSERT_TRUE(outcome) << outcome.error().message;
    monitor.on_batch(outcome->touched);
  }

  std::vector<nlohmann::json> alerts_on_topic() const {
    std::vector<nlohmann::json> out;
    auto read = read_topic_to_end(kafka_.config, kafka_.bootstrap(), kafka_.config.alerts_topic,
                                  [&](const KafkaRecord& m) { out.push_back(nlohmann::json::parse(m.payload())); });
    EXPECT_TRUE(read);
    return out;
  }

  testing::EmbeddedKafka kafka_;
  ScriptedHttpServer hook_;
  TempDir dir_;
  std::unique_ptr<LedgerStore> store_;
};

TEST_F(BudgetMonitorTest, EachThresholdFiresOncePerPeriodOnKafkaAndTheWebhookWithRetries) {
  // The receiver fails the first attempt.
  hook_.enqueue(ScriptedResponse::http(503, "text/plain", "try later"));
  BudgetBook budgets({{"acme", "", {1.0, 0, 80}}});
  LedgerMetrics metrics;
  auto monitor = BudgetMonitor::start(kafka_.config, kafka_.bootstrap(), *store_, budgets, &metrics, options());
  ASSERT_TRUE(monitor) << monitor.error().message;
  spend(**monitor, "r1", 0.30);  // 30%
  spend(**monitor, "r2", 0.30);  // 60%: 50% alert
  spend(**monitor, "r3", 0.25);  // 85%: 80% alert
  spend(**monitor, "r4", 0.01);  // 86%: nothing new
  spend(**monitor, "r5", 0.30);  // 116%: 100% alert
  EXPECT_EQ((*monitor)->alerts_fired(), 3u);
  ASSERT_TRUE((*monitor)->flush(kWaitMs));
  EXPECT_EQ((*monitor)->webhook_delivered(), 3u);
  EXPECT_EQ((*monitor)->webhook_attempts(), 4u);

  const auto requests = hook_.requests();
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[0].body, requests[1].body) << "the failed attempt is retried with the same alert";
  std::vector<double> thresholds;
  for (std::size_t i = 1; i < requests.size(); ++i) {
    EXPECT_EQ(requests[i].target, "/hooks/budget");
    EXPECT_EQ(requests[i].header("Content-Type").value_or(""), "application/json");
    const auto body = nlohmann::json::parse(requests[i].body);
    ASSERT_TRUE(body.contains("text"));  // what Slack shows
    EXPECT_NE(body["text"].get<std::string>().find("tenant acme"), std::string::npos) << body["text"];
    thresholds.push_back(body["alert"]["threshold_percent"].get<double>());
  }
  EXPECT_EQ(thresholds, (std::vector<double>{50, 80, 100}));

  const auto events = alerts_on_topic();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2]["type"], "budget_alert");
  EXPECT_EQ(events[2]["period"], "daily");
  EXPECT_DOUBLE_EQ(events[2]["limit_usd"].get<double>(), 1.0);
  EXPECT_NEAR(events[2]["spend_usd"].get<double>(), 1.16, 1e-9);
  const std::string text = metrics.serialize();
  EXPECT_NE(text.find("cascade_budget_alerts_total{period=\"daily\",tenant=\"acme\",threshold=\"100\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("cascade_budget_alert_deliveries_total{outcome=\"retried\",sink=\"webhook\"} 1"),
            std::string::npos);

  // A restart (new monitor, same store) re-evaluates everything and fires nothing again.
  (*monitor)->stop();
  auto again = BudgetMonitor::start(kafka_.config, kafka_.bootstrap(), *store_, budgets, nullptr, options());
  ASSERT_TRUE(again);
  (*again)->refresh_all();
  spend(**again, "r6", 0.01);
  ASSERT_TRUE((*again)->flush(kWaitMs));
  EXPECT_EQ((*again)->alerts_fired(), 0u);
  EXPECT_EQ(hook_.requests().size(), 4u);
  EXPECT_EQ(alerts_on_topic().size(), 3u);
}

TEST_F(BudgetMonitorTest, SpendThatReachesAThresholdOnlyUpToRoundingCrossesIt) {
  BudgetBook budgets({{"acme", "", {1.0, 0, 80}}});
  auto monitor = BudgetMonitor::start(kafka_.config, kafka_.bootstrap(), *store_, budgets, nullptr, options());
  ASSERT_TRUE(monitor);
  // 16 x $0.05 sums to $0.7999999999999999 in doubles.
  for (int i = 0; i < 16; ++i) spend(**monitor, "r" + std::to_string(i), 0.05);
  ASSERT_TRUE((*monitor)->flush(kWaitMs));
  const auto events = alerts_on_topic();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["threshold_percent"], 80);
}

TEST_F(BudgetMonitorTest, AJumpPastSeveralThresholdsIsOneAlertForTheHighest) {
  BudgetBook budgets({{"acme", tag_scope("research"), {0, 2.0, 80}}});
  auto monitor = BudgetMonitor::start(kafka_.config, kafka_.bootstrap(), *store_, budgets, nullptr, options());
  ASSERT_TRUE(monitor);
  spend(**monitor, "r1", 1.7, {"research"});  // 85% of the monthly tag budget
  ASSERT_TRUE((*monitor)->flush(kWaitMs));
  const auto events = alerts_on_topic();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["threshold_percent"], 80);
  EXPECT_EQ(events[0]["scope"], "tag:research");
  EXPECT_EQ(events[0]["period"], "monthly");
  spend(**monitor, "r2", 0.05, {"research"});  // 87.5%: 50% was marked with 80%
  ASSERT_TRUE((*monitor)->flush(kWaitMs));
  EXPECT_EQ(alerts_on_topic().size(), 1u);
}

TEST_F(BudgetMonitorTest, ALoweredBudgetAlertsWithoutNewSpend) {
  BudgetBook budgets({{"acme", "", {10, 0, 80}}});
  auto monitor = BudgetMonitor::start(kafka_.config, kafka_.bootstrap(), *store_, budgets, nullptr, options());
  ASSERT_TRUE(monitor);
  spend(**monitor, "r1", 1.0);  // 10%
  EXPECT_EQ((*monitor)->alerts_fired(), 0u);
  budgets.set_runtime_budget({"acme", "", {1.5, 0, 80}});  // now 67%
  ASSERT_TRUE(eventually([&] { return (*monitor)->alerts_fired() == 1; }));  // the heartbeat's evaluation
}

TEST_F(BudgetMonitorTest, UndeliveredWebhooksAreSentAfterARestart) {
  const BudgetAlert alert{"acme", "", BudgetPeriod::daily, utc_day(now_ms()), 80, 8.5, 10, now_ms()};
  ASSERT_TRUE(store_->record_alerts({alert}, {{"webhook", alert}}));
  BudgetBook budgets;
  auto monitor = BudgetMonitor::start(kafka_.config, kafka_.bootstrap(), *store_, budgets, nullptr, options());
  ASSERT_TRUE(monitor);
  ASSERT_TRUE((*monitor)->flush(kWaitMs));
  ASSERT_EQ(hook_.requests().size(), 1u);
  EXPECT_NE(hook_.requests()[0].body.find("8.50"), std::string::npos) << hook_.requests()[0].body;
  auto outbox = store_->outbox();
  ASSERT_TRUE(outbox);
  EXPECT_TRUE(outbox->empty());
}

TEST_F(BudgetMonitorTest, WebhookGivesUpOnAPermanentRefusal) {
  hook_.set_responder([](const auto&) { return ScriptedResponse::http(404, "text/plain", "no such hook"); });
  BudgetBook budgets({{"acme", "", {1.0, 0, 80}}});
  LedgerMetrics metrics;
  auto monitor = BudgetMonitor::start(kafka_.config, kafka_.bootstrap(), *store_, budgets, &metrics, options());
  ASSERT_TRUE(monitor);
  spend(**monitor, "r1", 0.6);
  ASSERT_TRUE((*monitor)->flush(kWaitMs));
  EXPECT_EQ((*monitor)->webhook_attempts(), 1u);
  EXPECT_NE(metrics.serialize().find("cascade_budget_alert_deliveries_total{outcome=\"failed\",sink=\"webhook\"} 1"),
            std::string::npos);
}

TEST_F(BudgetMonitorTest, SpendStateIsPublishedForEveryTouchedScopeAndReadByABudgetTable) {
  BudgetBook budgets;
  auto monitor = BudgetMonitor::start(kafka_.config, kafka_.bootstrap(), *store_, budgets, nullptr, options());
  ASSERT_TRUE(monitor);
  spend(**monitor, "r1", 0.25, {"research"});
  spend(**monitor, "r2", 0.5);
  ASSERT_TRUE((*monitor)->flush(kWaitMs));
  Config config;
  config.kafka = kafka_.config;
  auto table = BudgetTable::open(config, kafka_.bootstrap());
  ASSERT_TRUE(table) << table.error().message;
  ASSERT_TRUE((*table)->restore(kWaitMs));
  const std::int64_t now = now_ms();
  EXPECT_DOUBLE_EQ((*table)->book().spend("acme", "", BudgetPeriod::daily, now), 0.75);
  EXPECT_DOUBLE_EQ((*table)->book().spend("acme", "", BudgetPeriod::monthly, now), 0.75);
  EXPECT_DOUBLE_EQ((*table)->book().spend("acme", model_scope("gpt-4o"), BudgetPeriod::daily, now), 0.75);
  EXPECT_DOUBLE_EQ((*table)->book().spend("acme", tag_scope("research"), BudgetPeriod::daily, now), 0.25);
  // The heartbeat tells readers how fresh the state is.
  EXPECT_GT((*table)->book().ledger_seen_ms(), 0);
  const auto decision = (*table)->check("acme", "gpt-4o", {}, 0, now_ms());
  EXPECT_GE(decision.state_age_ms, 0);
  EXPECT_LT(decision.state_age_ms, 10000);
}

// The L of the overshoot bound (docs/ledger.md): from a cost event produced
// by a worker to the spend seen by another process's BudgetTable.
TEST_F(BudgetMonitorTest, SpendStateReachesWorkersWithinAFractionOfASecond) {
  kafka_.config.extra = "session.timeout.ms=6000;heartbeat.interval.ms=500";
  BudgetBook budgets({{"acme", "", {1000, 0, 80}}});
  auto monitor = BudgetMonitor::start(kafka_.config, kafka_.bootstrap(), *store_, budgets, nullptr, options());
  ASSERT_TRUE(monitor);
  auto consumer =
      LedgerConsumer::start(kafka_.config, kafka_.bootstrap(), {.store = store_.get(), .budgets = monitor->get()});
  ASSERT_TRUE(consumer);
  Config config;
  config.kafka = kafka_.config;
  auto table = BudgetTable::open(config, kafka_.bootstrap());
  ASSERT_TRUE(table);
  ASSERT_TRUE((*table)->restore(kWaitMs));
  ASSERT_TRUE((*table)->start());
  auto producer = KafkaProducer::create(kafka_.config, kafka_.bootstrap());
  ASSERT_TRUE(producer) << producer.error().message;

  std::vector<double> delays_ms;
  double spent = 0;
  for (int i = 0; i < 21; ++i) {
    const CostEvent event = make_cost({.id = "lag-" + std::to_string(i), .tenant = "acme", .cost_usd = 0.5,
                                       .ts_ms = now_ms()});
    const std::string value = make_cost_event(event);
    const auto sent = std::chrono::steady_clock::now();
    auto queued = (*producer)->produce(kafka_.config.ledger_topic, {.key = "acme", .value = value});
    ASSERT_TRUE(queued && *queued == KafkaProducer::Enqueued::yes);
    (*producer)->flush(5000);
    spent += 0.5;
    // The first one includes the consumer group's join.
    ASSERT_TRUE(eventually([&] {
      return std::fabs((*table)->book().spend("acme", "", BudgetPeriod::daily, now_ms()) - spent) < 1e-9;
    }, 60000)) << i;
    if (i > 0)
      delays_ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent).count());
  }
  (*consumer)->stop();
  std::sort(delays_ms.begin(), delays_ms.end());
  std::printf("spend state delay, cost event produced -> BudgetTable updated (20 events): p50 %.0f ms, max %.0f ms\n",
              delays_ms[delays_ms.size() / 2], delays_ms.back());
  // Generous for a loaded machine; the figure above is what docs/ledger.md quotes.
  EXPECT_LT(delays_ms[delays_ms.size() / 2], 2000);
}

}  // namespace
}  // namespace cascade
