#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "cost_event_builder.h"
#include "consumers/ledger/ledger.h"

namespace cascade {
namespace {

using ledger_test::make_cost;

TEST(LedgerAggregator, CountsARedeliveredEventOnce) {
  LedgerAggregator ledger;
  CostEvent event = make_cost({.id = "req-1", .cost_usd = 0.25, .baseline_cost_usd = 1.0, .input_tokens = 10});

  EXPECT_TRUE(ledger.apply(event));
  EXPECT_FALSE(ledger.apply(event));
  // Same id with different figures (a re-computed redelivery) is still a duplicate.
  event.cost_usd = 99;
  EXPECT_FALSE(ledger.apply(event));

  LedgerTotals total = ledger.total();
  EXPECT_EQ(total.requests, 1u);
  EXPECT_EQ(total.cost_usd, 0.25);
  EXPECT_EQ(total.input_tokens, 10);
  EXPECT_EQ(ledger.duplicates(), 2u);
  EXPECT_EQ(ledger.by_tenant().at("acme").requests, 1u);
  EXPECT_EQ(ledger.by_model().at("gpt-4o-mini").requests, 1u);
}

TEST(LedgerAggregator, GroupsByPolicyOnlyEventsThatHaveOne) {
  LedgerAggregator ledger;
  ledger.apply(make_cost({.id = "1", .cost_usd = 0.25, .baseline_cost_usd = 1.0, .policy = "exp:a"}));
  ledger.apply(make_cost({.id = "2", .cost_usd = 0.5, .baseline_cost_usd = 1.0, .policy = "exp:b"}));
  ledger.apply(make_cost({.id = "3", .tenant = "globex", .cost_usd = 1.0, .baseline_cost_usd = 1.0,
                          .policy = "exp:a"}));
  ledger.apply(make_cost({.id = "4", .cost_usd = 2.0, .baseline_cost_usd = 2.0}));  // no policy
  ledger.apply(make_cost({.id = "1", .cost_usd = 9, .policy = "exp:a"}));            // redelivery

  const auto policies = ledger.by_policy();
  ASSERT_EQ(policies.size(), 2u);
  EXPECT_EQ(policies.at("exp:a").requests, 2u);
  EXPECT_DOUBLE_EQ(policies.at("exp:a").cost_usd, 1.25);
  EXPECT_DOUBLE_EQ(policies.at("exp:a").savings_usd, 0.75);
  EXPECT_EQ(policies.at("exp:b").requests, 1u);

  const auto acme = ledger.tenant_by_policy("acme");
  ASSERT_EQ(acme.size(), 2u);
  EXPECT_EQ(acme.at("exp:a").requests, 1u);
  EXPECT_DOUBLE_EQ(acme.at("exp:a").cost_usd, 0.25);
  EXPECT_TRUE(ledger.tenant_by_policy("initech").empty());
  EXPECT_EQ(ledger.total().requests, 4u);  // the policy view is a view, not a filter
}

TEST(LedgerAggregator, TotalsAreTheSumsOfTheEvents) {
  LedgerAggregator ledger;
  std::vector<CostEvent> events = {
      make_cost({.id = "a", .cost_usd = 0.000123, .baseline_cost_usd = 0.0021, .input_tokens = 100,
                 .output_tokens = 20, .cached_tokens = 50, .latency_ms = 800, .ttft_ms = 120}),
      make_cost({.id = "b", .cost_usd = 0.000456, .baseline_cost_usd = 0.0033, .input_tokens = 300,
                 .output_tokens = 40, .latency_ms = 1200, .ttft_ms = 250}),
      make_cost({.id = "c", .cost_usd = 0, .baseline_cost_usd = 0.0021, .cache = CacheOutcome::exact,
                 .latency_ms = 3, .ttft_ms = 3}),
      make_cost({.id = "d", .cost_usd = 0, .baseline_cost_usd = 0.0017, .cache = CacheOutcome::semantic,
                 .latency_ms = 9, .ttft_ms = 9}),
  };
  double cost = 0, baseline = 0, savings = 0, latency = 0, ttft = 0;
  std::int64_t input = 0, output = 0, cached = 0;
  for (const CostEvent& event : events) {
    ASSERT_TRUE(ledger.apply(event));
    cost += event.cost_usd;
    baseline += event.baseline_cost_usd;
    savings += event.savings_usd;
    latency += event.latency_ms;
    ttft += event.ttft_ms;
    input += event.usage.input_tokens;
    output += event.usage.output_tokens;
    cached += event.usage.cached_tokens;
  }

  // All events share one (tenant, model), so the ledger adds in the same
  // order as this loop and the doubles must match to the bit.
  LedgerTotals total = ledger.total();
  EXPECT_EQ(total.requests, 4u);
  EXPECT_EQ(total.cache_hits, 2u);
  EXPECT_EQ(total.cost_usd, cost);
  EXPECT_EQ(total.baseline_cost_usd, baseline);
  EXPECT_EQ(total.savings_usd, savings);
  EXPECT_EQ(total.latency_ms_sum, latency);
  EXPECT_EQ(total.ttft_ms_sum, ttft);
  EXPECT_EQ(total.input_tokens, input);
  EXPECT_EQ(total.output_tokens, output);
  EXPECT_EQ(total.cached_tokens, cached);
  EXPECT_EQ(ledger.duplicates(), 0u);
}

TEST(LedgerAggregator, GroupsByTenantAndByModel) {
  LedgerAggregator ledger;
  ledger.apply(make_cost({.id = "1", .tenant = "acme", .model = "small", .cost_usd = 1, .baseline_cost_usd = 4}));
  ledger.apply(make_cost({.id = "2", .tenant = "acme", .model = "large", .cost_usd = 2, .baseline_cost_usd = 4}));
  ledger.apply(make_cost({.id = "3", .tenant = "globex", .model = "small", .cost_usd = 8, .baseline_cost_usd = 16}));

  auto tenants = ledger.by_tenant();
  ASSERT_EQ(tenants.size(), 2u);
  EXPECT_EQ(tenants.at("acme").requests, 2u);
  EXPECT_EQ(tenants.at("acme").cost_usd, 3);
  EXPECT_EQ(tenants.at("globex").cost_usd, 8);

  auto models = ledger.by_model();
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models.at("small").requests, 2u);
  EXPECT_EQ(models.at("small").cost_usd, 9);
  EXPECT_EQ(models.at("large").cost_usd, 2);

  LedgerTotals total = ledger.total();
  EXPECT_EQ(total.cost_usd, 11);
  EXPECT_EQ(total.baseline_cost_usd, 24);
  EXPECT_EQ(total.savings_usd, 13);
}

TEST(LedgerAggregator, TenantViewsNeverIncludeAnotherTenant) {
  LedgerAggregator ledger;
  ledger.apply(make_cost({.id = "1", .tenant = "acme", .model = "small", .cost_usd = 1}));
  ledger.apply(make_cost({.id = "2", .tenant = "acme", .model = "small", .cost_usd = 2}));
  ledger.apply(make_cost({.id = "3", .tenant = "acme-labs", .model = "secret-model", .cost_usd = 50}));
  ledger.apply(make_cost({.id = "4", .tenant = "globex", .model = "small", .cost_usd = 100}));
  ledger.apply(make_cost({.id = "5", .tenant = "ac", .model = "other-model", .cost_usd = 7}));

  LedgerTotals acme = ledger.tenant_total("acme");
  EXPECT_EQ(acme.requests, 2u);
  EXPECT_EQ(acme.cost_usd, 3);

  auto acme_models = ledger.tenant_by_model("acme");
  ASSERT_EQ(acme_models.size(), 1u);
  EXPECT_EQ(acme_models.at("small").requests, 2u);
  EXPECT_EQ(acme_models.at("small").cost_usd, 3);

  EXPECT_EQ(ledger.tenant_total("nobody").requests, 0u);
  EXPECT_TRUE(ledger.tenant_by_model("nobody").empty());
  EXPECT_EQ(ledger.tenant_by_model("globex").at("small").cost_usd, 100);
}

TEST(LedgerAggregator, ConcurrentAppliesAreCountedExactly) {
  LedgerAggregator ledger;
  constexpr int kThreads = 4;
  constexpr int kEventsPerThread = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&ledger, t] {
      for (int i = 0; i < kEventsPerThread; ++i) {
        // Every thread also redelivers a shared id range, so duplicates race too.
        std::string id = i % 4 == 0 ? "shared-" + std::to_string(i) : "t" + std::to_string(t) + "-" + std::to_string(i);
        // Quarter-dollar amounts are exact in binary, so the sum does not depend on order.
        ledger.apply(make_cost({.id = id,
                                .tenant = "tenant-" + std::to_string(t % 2),
                                .model = "model-" + std::to_string(i % 3),
                                .cost_usd = 0.25,
                                .baseline_cost_usd = 1.0,
                                .input_tokens = 3}));
        if (i % 100 == 0) (void)ledger.total();  // readers run alongside the writers
      }
    });
  }
  for (auto& thread : threads) thread.join();

  constexpr int kShared = kEventsPerThread / 4;
  constexpr int kUnique = kThreads * (kEventsPerThread - kShared) + kShared;
  LedgerTotals total = ledger.total();
  EXPECT_EQ(total.requests, static_cast<std::uint64_t>(kUnique));
  EXPECT_EQ(ledger.duplicates(), static_cast<std::uint64_t>((kThreads - 1) * kShared));
  EXPECT_EQ(total.cost_usd, 0.25 * kUnique);
  EXPECT_EQ(total.baseline_cost_usd, 1.0 * kUnique);
  EXPECT_EQ(total.savings_usd, 0.75 * kUnique);
  EXPECT_EQ(total.input_tokens, 3 * kUnique);
}

}  // namespace
}  // namespace cascade
