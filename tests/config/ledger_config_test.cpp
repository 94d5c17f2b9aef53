// The ledger:, budgets: and alerts: keys of the configuration (docs/ledger.md).
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "config/config.h"
#include "support/config_file.h"
#include "support/env.h"

namespace cascade {
namespace {

using testing::env_of;
using testing::load_config_text;

TEST(LedgerConfig, DefaultsAreTheDocumentedOnes) {
  auto c = load_config("", env_of({}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->ledger.dir, "./data/ledger");
  EXPECT_EQ(c->ledger.dedupe_ttl_days, 40);
  EXPECT_EQ(c->ledger.batch_max_events, 2000);
  EXPECT_EQ(c->ledger.spend_heartbeat_ms, 5000);
  EXPECT_EQ(c->alerts.thresholds_percent, (std::vector<double>{50, 80, 100}));
  EXPECT_TRUE(c->alerts.webhook_url.empty());
  EXPECT_EQ(c->alerts.webhook_max_attempts, 6);
  EXPECT_TRUE(c->budgets.empty());
  EXPECT_EQ(c->kafka.budgets_topic, "cascade.budgets");
  EXPECT_EQ(c->kafka.spend_topic, "cascade.spend");
  EXPECT_EQ(c->kafka.alerts_topic, "cascade.alerts");
}

TEST(LedgerConfig, EnvOverridesLedgerAlertAndBudgetKeys) {
  auto c = load_config_text("budgets:\n  acme:\n    daily_usd: 10\n",
                     env_of({{"CASCADE_LEDGER_DIR", "/var/lib/cascade/ledger"},
                             {"CASCADE_ALERTS_THRESHOLDS_PERCENT", "75, 90,100"},
                             {"CASCADE_ALERTS_WEBHOOK_URL_ENV", "SLACK_URL"},
                             {"CASCADE_BUDGETS_ACME_DAILY_USD", "25"},
                             {"CASCADE_KAFKA_TOPICS_SPEND", "t.spend"}}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->ledger.dir, "/var/lib/cascade/ledger");
  EXPECT_EQ(c->alerts.thresholds_percent, (std::vector<double>{75, 90, 100}));
  EXPECT_EQ(c->alerts.webhook_url_env, "SLACK_URL");
  EXPECT_DOUBLE_EQ(c->budgets.at("acme").limits.daily_usd, 25);
  EXPECT_EQ(c->kafka.spend_topic, "t.spend");
}

TEST(LedgerConfig, BudgetsWithModelAndTagLimitsAreRead) {
  auto c = load_config_text(
      "budgets:\n  acme:\n    monthly_usd: 100\n    soft_percent: 60\n"
      "    models:\n      gpt-4o: {daily_usd: 2, soft_percent: 90}\n    tags:\n      research: {monthly_usd: 30}\n");
  ASSERT_TRUE(c) << c.error().message;
  const auto& acme = c->budgets.at("acme");
  EXPECT_DOUBLE_EQ(acme.limits.monthly_usd, 100);
  EXPECT_DOUBLE_EQ(acme.limits.daily_usd, 0);
  EXPECT_DOUBLE_EQ(acme.models.at("gpt-4o").daily_usd, 2);
  EXPECT_DOUBLE_EQ(acme.models.at("gpt-4o").soft_percent, 90);
  EXPECT_DOUBLE_EQ(acme.tags.at("research").monthly_usd, 30);
  EXPECT_DOUBLE_EQ(acme.tags.at("research").soft_percent, 60);  // the tenant's
}

TEST(LedgerConfig, InvalidBudgetsAndAlertsAreErrorsNamingTheKey) {
  auto negative = load_config_text("budgets:\n  acme:\n    daily_usd: -1\n");
  ASSERT_FALSE(negative);
  EXPECT_NE(negative.error().message.find("budgets.acme"), std::string::npos) << negative.error().message;
  auto soft = load_config_text("budgets:\n  acme:\n    models:\n      m: {soft_percent: 150}\n");
  ASSERT_FALSE(soft);
  EXPECT_NE(soft.error().message.find("budgets.acme.models.m"), std::string::npos) << soft.error().message;
  EXPECT_FALSE(load_config_text("budgets: 5\n"));
  EXPECT_FALSE(load_config_text("budgets:\n  acme: 10\n"));
  auto threshold = load_config_text("alerts:\n  thresholds_percent: [50, 0]\n");
  ASSERT_FALSE(threshold);
  EXPECT_NE(threshold.error().message.find("thresholds_percent"), std::string::npos);
  EXPECT_FALSE(load_config_text("alerts:\n  webhook_max_attempts: 0\n"));
  EXPECT_FALSE(load_config_text("ledger:\n  dedupe_ttl_days: 0\n"));
}

TEST(LedgerConfig, BudgetEnforcementAndTokenizerKeysHaveDefaultsAndEnvOverrides) {
  auto defaults = load_config("", env_of({}));
  ASSERT_TRUE(defaults) << defaults.error().message;
  EXPECT_EQ(defaults->limits.budget_settle_ms, 2000);
  EXPECT_EQ(defaults->limits.budget_max_state_age_ms, 0);
  EXPECT_EQ(defaults->tokenizer.dir, "");
  auto c = load_config("", env_of({{"CASCADE_LIMITS_BUDGET_SETTLE_MS", "5000"},
                                   {"CASCADE_LIMITS_BUDGET_MAX_STATE_AGE_MS", "60000"},
                                   {"CASCADE_TOKENIZER_DIR", "/opt/ranks"}}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->limits.budget_settle_ms, 5000);
  EXPECT_EQ(c->limits.budget_max_state_age_ms, 60000);
  EXPECT_EQ(c->tokenizer.dir, "/opt/ranks");
  auto bad = load_config_text("limits:\n  budget_settle_ms: -1\n");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("budget_settle_ms"), std::string::npos) << bad.error().message;
}

}  // namespace
}  // namespace cascade
