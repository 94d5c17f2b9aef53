#include <gtest/gtest.h>

#include <vector>

#include "consumers/ledger/cost_event_builder.h"
#include "consumers/ledger/ledger.h"
#include "support/manual_clock.h"
#include "support/temp_dir.h"

namespace cascade {
namespace {

using ledger_test::make_cost;
using testing::ManualClock;
using testing::TempDir;

// 2026-07-14T12:00:00Z.
constexpr std::int64_t kNoon = 1'784'030'400'000;
constexpr std::int64_t kDay = 86'400'000;

class LedgerStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<LedgerStore> open() {
    LedgerStoreOptions options;
    options.dir = dir_.path();
    options.dedupe_ttl_ms = 10 * kDay;
    options.now_ms = clock_.fn();
    auto store = LedgerStore::open(options);
    EXPECT_TRUE(store) << store.error().message;
    return store ? std::move(*store) : nullptr;
  }

  // Three days of traffic for two tenants.
  std::vector<CostEvent> traffic() const {
    return {
        make_cost({.id = "r1", .tenant = "acme", .model = "gpt-4o-mini", .cost_usd = 0.001, .baseline_cost_usd = 0.01,
                   .input_tokens = 100, .output_tokens = 10, .latency_ms = 400, .ts_ms = kNoon - 2 * kDay}),
        make_cost({.id = "r2", .tenant = "acme", .model = "gpt-4o", .cost_usd = 0.02, .baseline_cost_usd = 0.02,
                   .input_tokens = 200, .output_tokens = 30, .latency_ms = 900, .ts_ms = kNoon - kDay,
                   .tags = {"research"}}),
        make_cost({.id = "r3", .tenant = "acme", .model = "gpt-4o-mini", .cost_usd = 0, .baseline_cost_usd = 0.01,
                   .cache = CacheOutcome::exact, .latency_ms = 5, .ts_ms = kNoon}),
        make_cost({.id = "r4", .tenant = "acme", .model = "gpt-4o-mini", .cost_usd = 0.003, .baseline_cost_usd = 0.03,
                   .ts_ms = kNoon, .tags = {"research", "research"}, .reasoning_tokens = 7}),
        make_cost({.id = "r1", .tenant = "globex", .model = "claude-haiku-4-5", .cost_usd = 0.5,
                   .baseline_cost_usd = 0.4, .ts_ms = kNoon}),
    };
  }

  TempDir dir_;
  ManualClock clock_{kNoon + 3'600'000};
};

TEST_F(LedgerStoreTest, SameRequestIdOfTwoTenantsIsTwoRequests) {
  auto store = open();
  auto outcome = store->apply(traffic());
  ASSERT_TRUE(outcome) << outcome.error().message;
  EXPECT_EQ(outcome->applied.size(), 5u);
  EXPECT_EQ(outcome->duplicates, 0u);
}

TEST_F(LedgerStoreTest, DuplicatesAfterARestartAreCountedOnceAndTotalsStayTheSame) {
  LedgerTotals before;
  {
    auto store = open();
    ASSERT_TRUE(store->apply(traffic()));
    auto rows = store->usage({});
    ASSERT_TRUE(rows);
    before = sum_rows(*rows);
    ASSERT_TRUE(store->close());
  }
  auto store = open();
  // The whole batch again (a redelivery after a crash), and once more within one batch.
  auto again = traffic();
  auto twice = traffic();
  again.insert(again.end(), twice.begin(), twice.end());
  auto outcome = store->apply(again);
  ASSERT_TRUE(outcome) << outcome.error().message;
  EXPECT_TRUE(outcome->applied.empty());
  EXPECT_EQ(outcome->duplicates, 10u);
  EXPECT_TRUE(outcome->touched.empty());
  auto rows = store->usage({});
  ASSERT_TRUE(rows);
  const LedgerTotals after = sum_rows(*rows);
  EXPECT_EQ(after.requests, 5u);
  EXPECT_EQ(after.requests, before.requests);
  EXPECT_DOUBLE_EQ(after.cost_usd, before.cost_usd);
  EXPECT_DOUBLE_EQ(after.cost_usd, 0.001 + 0.02 + 0 + 0.003 + 0.5);
  EXPECT_DOUBLE_EQ(after.baseline_cost_usd, 0.01 + 0.02 + 0.01 + 0.03 + 0.4);
  EXPECT_EQ(after.cache_hits, 1u);
  EXPECT_EQ(after.reasoning_tokens, 7);
  EXPECT_EQ(store->spend("acme", "", BudgetPeriod::daily, "2026-07-14"), 0.003);
}

TEST_F(LedgerStoreTest, UsageIsGroupedByTenantDayAndModel) {
  auto store = open();
  ASSERT_TRUE(store->apply(traffic()));
  auto acme = store->usage({.tenant = "acme", .from_day = "2026-07-13", .to_day = "2026-07-14"});
  ASSERT_TRUE(acme);
  const auto by_day = rows_by_day(*acme);
  ASSERT_EQ(by_day.size(), 2u);
  EXPECT_EQ(by_day.at("2026-07-13").requests, 1u);
  EXPECT_EQ(by_day.at("2026-07-14").requests, 2u);
  for (const auto& row : *acme) EXPECT_EQ(row.tenant, "acme");
  const auto by_model = rows_by_model(*acme);
  EXPECT_EQ(by_model.at("gpt-4o").requests, 1u);
  EXPECT_EQ(by_model.at("gpt-4o-mini").requests, 2u);
  auto all = store->usage({.from_day = "2026-07-14", .to_day = "2026-07-14"});
  ASSERT_TRUE(all);
  EXPECT_EQ(rows_by_tenant(*all).size(), 2u);
  EXPECT_EQ(sum_rows(*all).requests, 3u);
  // A tenant whose name starts like another's sees only its own rows.
  ASSERT_TRUE(store->apply(std::vector{make_cost({.id = "x", .tenant = "acme2", .ts_ms = kNoon})}));
  auto only_acme = store->usage({.tenant = "acme"});
  ASSERT_TRUE(only_acme);
  EXPECT_EQ(sum_rows(*only_acme).requests, 4u);
}

TEST_F(LedgerStoreTest, SpendIsKeptPerTenantModelAndTagPerDayAndMonth) {
  auto store = open();
  auto outcome = store->apply(traffic());
  ASSERT_TRUE(outcome);
  EXPECT_TRUE(outcome->touched.contains({"acme", tag_scope("research")}));
  EXPECT_TRUE(outcome->touched.contains({"globex", model_scope("claude-haiku-4-5")}));
  EXPECT_DOUBLE_EQ(store->spend("acme", "", BudgetPeriod::daily, "2026-07-14"), 0.003);
  EXPECT_DOUBLE_EQ(store->spend("acme", "", BudgetPeriod::monthly, "2026-07"), 0.024);
  EXPECT_DOUBLE_EQ(store->spend("acme", model_scope("gpt-4o"), BudgetPeriod::daily, "2026-07-13"), 0.02);
  // A tag listed twice on one request counts once.
  EXPECT_DOUBLE_EQ(store->spend("acme", tag_scope("research"), BudgetPeriod::monthly, "2026-07"), 0.023);
  EXPECT_EQ(store->spend_requests("acme", tag_scope("research"), BudgetPeriod::monthly, "2026-07"), 2u);
  auto spenders = store->spenders(BudgetPeriod::daily, "2026-07-14");
  ASSERT_TRUE(spenders);
  EXPECT_EQ(spenders->size(), 5u);  // acme: "", gpt-4o-mini, research; globex: "", claude-haiku-4-5
}

TEST_F(LedgerStoreTest, EventsOlderThanTheDedupeTtlAreRefusedAndExpiredIdsForgotten) {
  auto store = open();
  ASSERT_TRUE(store->apply(std::vector{make_cost({.id = "old", .cost_usd = 1, .ts_ms = kNoon - 2 * kDay})}));
  auto stale = store->apply(std::vector{make_cost({.id = "ancient", .cost_usd = 1, .ts_ms = kNoon - 11 * kDay})});
  ASSERT_TRUE(stale);
  EXPECT_EQ(stale->stale, 1u);
  EXPECT_TRUE(stale->applied.empty());

  clock_.advance_ms(9 * kDay);  // "old" is now 11 days old: past the TTL
  auto expired = store->expire_seen();
  ASSERT_TRUE(expired);
  EXPECT_EQ(*expired, 1u);
  // Its redelivery is refused as stale, never counted again.
  auto again = store->apply(std::vector{make_cost({.id = "old", .cost_usd = 1, .ts_ms = kNoon - 2 * kDay})});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->stale, 1u);
  auto rows = store->usage({});
  ASSERT_TRUE(rows);
  EXPECT_EQ(sum_rows(*rows).requests, 1u);
}

TEST_F(LedgerStoreTest, InvalidTenantOrIdIsRefused) {
  auto store = open();
  auto outcome = store->apply(std::vector{make_cost({.id = "", .ts_ms = kNoon}),
                                          make_cost({.id = "a", .tenant = std::string("x\0y", 3), .ts_ms = kNoon})});
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->invalid, 2u);
}

TEST_F(LedgerStoreTest, FiredAlertsAndTheOutboxSurviveARestart) {
  const BudgetAlert alert{"acme", "", BudgetPeriod::daily, "2026-07-14", 80, 8.5, 10, kNoon};
  BudgetAlert lower = alert;
  lower.threshold_percent = 50;
  std::uint64_t seq = 0;
  {
    auto store = open();
    EXPECT_FALSE(store->alert_fired(alert));
    auto seqs = store->record_alerts({lower, alert}, {{"kafka", alert}, {"webhook", alert}});
    ASSERT_TRUE(seqs) << seqs.error().message;
    ASSERT_EQ(seqs->size(), 2u);
    seq = (*seqs)[0];
    ASSERT_TRUE(store->remove_outbox(seq));
    ASSERT_TRUE(store->close());
  }
  auto store = open();
  EXPECT_TRUE(store->alert_fired(alert));
  EXPECT_TRUE(store->alert_fired(lower));
  auto outbox = store->outbox();
  ASSERT_TRUE(outbox);
  ASSERT_EQ(outbox->size(), 1u);
  EXPECT_EQ((*outbox)[0].sink, "webhook");
  EXPECT_EQ((*outbox)[0].alert.id(), alert.id());
  EXPECT_DOUBLE_EQ((*outbox)[0].alert.spend_usd, 8.5);
  // New outbox entries continue after the old ones.
  auto more = store->record_alerts({}, {{"kafka", alert}});
  ASSERT_TRUE(more);
  EXPECT_GT((*more)[0], (*outbox)[0].seq);
}

}  // namespace
}  // namespace cascade
