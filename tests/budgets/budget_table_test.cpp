#include <gtest/gtest.h>

#include "budgets/budgets.h"
#include "events/events.h"
#include "kafka/kafka.h"
#include "support/embedded_kafka.h"
#include "support/wait.h"

namespace cascade {
namespace {

constexpr int kWaitMs = 20000;

// Publishes records to cascade.spend as the ledger does.
Result<void> publish_spend(const Config& config, const SpendRecord& record) {
  return produce_record_and_wait(config.kafka, config.kafka.bootstrap, config.kafka.spend_topic,
                                 spend_record_key(record.tenant, record.scope, record.period),
                                 encode_spend_record(record), 10000);
}

class BudgetTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kafka_ = testing::start_cascade_kafka(3);
    ASSERT_TRUE(kafka_.broker);
    config_.kafka = kafka_.config;
    config_.budgets["acme"].limits = {10, 100, 80};
  }

  testing::EmbeddedKafka kafka_;
  Config config_;
};

TEST_F(BudgetTableTest, RestoresRuntimeBudgetsAndSpendThenFollowsNewRecords) {
  const std::int64_t now = now_ms();
  ASSERT_TRUE(publish_budget(config_.kafka, config_.kafka.bootstrap, {"acme", "", {5, 100, 80}}));
  ASSERT_TRUE(publish_budget(config_.kafka, config_.kafka.bootstrap, {"globex", model_scope("gpt-4o"), {1, 0, 50}}));
  ASSERT_TRUE(publish_spend(config_, {"acme", "", BudgetPeriod::daily, period_id(BudgetPeriod::daily, now), 4.5, 9, now}));

  auto table = BudgetTable::open(config_, config_.kafka.bootstrap);
  ASSERT_TRUE(table) << table.error().message;
  auto restored = (*table)->restore(kWaitMs);
  ASSERT_TRUE(restored) << restored.error().message;
  EXPECT_EQ(*restored, 3u);
  // The run-time budget replaced the configured $10/day.
  EXPECT_DOUBLE_EQ((*table)->book().limits("acme", "")->daily_usd, 5);
  EXPECT_DOUBLE_EQ((*table)->book().spend("acme", "", BudgetPeriod::daily, now), 4.5);
  EXPECT_EQ((*table)->check("acme", "gpt-4o-mini", {}, 0.2, now).verdict, BudgetVerdict::soft_exceeded);
  EXPECT_EQ((*table)->check("acme", "gpt-4o-mini", {}, 0.6, now).verdict, BudgetVerdict::hard_exceeded);
  EXPECT_EQ((*table)->check("globex", "gpt-4o", {}, 2, now).verdict, BudgetVerdict::hard_exceeded);

  ASSERT_TRUE((*table)->start());
  ASSERT_TRUE(publish_spend(config_, {"acme", "", BudgetPeriod::daily, period_id(BudgetPeriod::daily, now), 5.2, 10, now}));
  EXPECT_TRUE(testing::eventually([&] { return (*table)->book().spend("acme", "", BudgetPeriod::daily, now) == 5.2; },
                                  kWaitMs));
  EXPECT_EQ((*table)->check("acme", "gpt-4o-mini", {}, 0.0, now).verdict, BudgetVerdict::hard_exceeded);

  // Removing the run-time budget brings the configured one back.
  ASSERT_TRUE(publish_budget_removal(config_.kafka, config_.kafka.bootstrap, "acme", ""));
  EXPECT_TRUE(testing::eventually([&] { return (*table)->book().limits("acme", "")->daily_usd == 10; }, kWaitMs));
  EXPECT_EQ((*table)->check("acme", "gpt-4o-mini", {}, 0.0, now).verdict, BudgetVerdict::ok);
  EXPECT_EQ((*table)->records_malformed(), 0u);
}

TEST_F(BudgetTableTest, RestoreOfEmptyTopicsEndsAtOnceWithTheConfiguredBudgets) {
  auto table = BudgetTable::open(config_, config_.kafka.bootstrap);
  ASSERT_TRUE(table) << table.error().message;
  auto restored = (*table)->restore(kWaitMs);
  ASSERT_TRUE(restored) << restored.error().message;
  EXPECT_EQ(*restored, 0u);
  EXPECT_DOUBLE_EQ((*table)->book().limits("acme", "")->daily_usd, 10);
}

TEST_F(BudgetTableTest, OpenFailsClearlyWithoutTheTopics) {
  config_.kafka.spend_topic = "no.such.topic";
  auto table = BudgetTable::open(config_, config_.kafka.bootstrap);
  ASSERT_FALSE(table);
  EXPECT_NE(table.error().message.find("no.such.topic"), std::string::npos) << table.error().message;
}

}  // namespace
}  // namespace cascade
