// Budgets enforced by the worker, end to end: the ledger consumer publishes
// the spend state, the worker's BudgetTable reads it, and requests past a
// limit are refused or downgraded before any provider call.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "budgets/budgets.h"
#include "integration/pipeline_fixture.h"

namespace cascade::testing {
namespace {

class BudgetTest : public PipelineTest {
 protected:
  PromptEvent tenant_prompt(std::size_t i, const std::string& tenant, const std::string& text) {
    PromptEvent e = prompt(i, text);
    e.tenant = tenant;
    return e;
  }

  std::uint64_t upstream_calls() const {
    std::uint64_t n = 0;
    for (const auto& [model, count] : upstream_->requests_by_model()) n += count;
    return n;
  }

  double ledger_cost(const std::string& tenant) const { return aggregator_.tenant_total(tenant).cost_usd; }
};

TEST_F(BudgetTest, ARequestWhoseEstimateAloneIsOverAHardLimitIsRefusedWithoutAProviderCall) {
  with_budgets = true;
  use_config_yaml("budgets:\n  acme:\n    daily_usd: 0.0001\n");
  start_pipeline();
  PromptEvent refused = tenant_prompt(0, "acme", "What is the capital of France?");
  refused.model = "gpt-4o";
  refused.max_tokens = 1024;  // $0.01 of output at gpt-4o's price: 100x the limit
  PromptEvent other = tenant_prompt(1, "globex", "What is the capital of France?");
  other.model = "gpt-4o";
  other.max_tokens = 1024;
  ASSERT_TRUE(client_->send(refused));
  ASSERT_TRUE(client_->send(other));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60))) << client_->outstanding() << " unanswered";

  const auto& acme = client_->replies().at(refused.id);
  ASSERT_EQ(acme.terminal->type, "error") << acme.terminal->body.dump();
  EXPECT_EQ(acme.terminal->body["error"].value("code", ""), "budget_exceeded");
  const std::string message = acme.terminal->body["error"].value("message", "");
  EXPECT_NE(message.find("budget exceeded: acme tenant daily limit"), std::string::npos) << message;
  EXPECT_EQ(acme.terminal_count, 1u);
  // Tenants are isolated: another tenant's request goes through.
  EXPECT_EQ(client_->replies().at(other.id).terminal->type, "final");
  EXPECT_EQ(upstream_calls(), 1u);
  EXPECT_EQ(workers_.front()->stats().budget_refused.load(), 1u);
}

// The overshoot bound of docs/ledger.md with one worker: every request the
// loop admits counts at its estimate until the ledger's spend state has its
// actual cost, so a tenant sending far more than its budget allows is stopped
// at the limit, not past it.
TEST_F(BudgetTest, ATenantHammeringPastItsLimitIsStoppedAtItWhileOthersAreServed) {
  with_budgets = true;
  const double limit = 0.004;
  use_config_yaml("budgets:\n  acme:\n    daily_usd: 0.004\n");
  start_pipeline();
  std::size_t n = 0;
  std::vector<std::string> acme_ids;
  // Waves, so that answers complete and the ledger's spend state moves on
  // between them (the state, not only the loop's own estimates, stops acme).
  for (int wave = 0; wave < 8; ++wave) {
    for (int i = 0; i < 25; ++i, ++n) {
      PromptEvent e = tenant_prompt(n, i % 5 == 0 ? "globex" : "acme", "Name a prime number above " + std::to_string(n));
      e.model = "gpt-4o";
      e.max_tokens = 8;
      if (e.tenant == "acme") acme_ids.push_back(e.id);
      ASSERT_TRUE(client_->send(e));
    }
    ASSERT_TRUE(client_->flush(10000));
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
  }
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(90))) << client_->outstanding() << " unanswered";
  std::map<std::string, std::map<std::string, int>> outcomes;  // tenant -> outcome -> n
  for (const auto& [id, r] : client_->replies()) {
    const std::string tenant =
        std::find(acme_ids.begin(), acme_ids.end(), id) != acme_ids.end() ? "acme" : "globex";
    outcomes[tenant][r.terminal->type == "final" ? "final" : r.terminal->body["error"].value("code", "?")]++;
    EXPECT_EQ(r.terminal_count, 1u);
  }
  ASSERT_TRUE(wait_ledger(outcomes["acme"]["final"] + outcomes["globex"]["final"], std::chrono::seconds(30)));
  const double spent = ledger_cost("acme");
  std::printf("acme: %d served, %d refused; spent $%.6f of a $%.6f daily limit\n", outcomes["acme"]["final"],
              outcomes["acme"]["budget_exceeded"], spent, limit);
  EXPECT_LE(spent, limit * (1 + 1e-9));
  EXPECT_GT(outcomes["acme"]["budget_exceeded"], 80);
  EXPECT_GE(outcomes["acme"]["final"], 10);  // the budget was used, not refused from the start
  // The budget stopped acme close to its limit: less than two requests' worth below it.
  EXPECT_GT(spent, limit - 2 * spent / outcomes["acme"]["final"]);
  EXPECT_EQ(outcomes["globex"]["final"], 40);
  EXPECT_EQ(outcomes["acme"]["final"] + outcomes["acme"]["budget_exceeded"], 160);
}

TEST_F(BudgetTest, PastASoftLimitAComplexPromptIsDowngradedToTheCheapestTierAndTheReasonSaysSo) {
  with_budgets = true;
  use_config_yaml("budgets:\n  acme:\n    daily_usd: 100\n    soft_percent: 0.00001\n");
  start_pipeline();
  const std::string hard =
      "Prove step by step that the sum of the first n odd numbers is n squared, then write a C++ function "
      "that checks it for n up to 10^6, analyze its time complexity, and explain every design decision.";
  PromptEvent acme = tenant_prompt(0, "acme", hard);
  PromptEvent globex = tenant_prompt(1, "globex", hard);
  acme.preference = globex.preference = Preference::quality;
  ASSERT_TRUE(client_->send(acme));
  ASSERT_TRUE(client_->send(globex));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60))) << client_->outstanding() << " unanswered";
  const auto& downgraded = client_->replies().at(acme.id).terminal->body;
  const auto& routed = client_->replies().at(globex.id).terminal->body;
  ASSERT_EQ(client_->replies().at(acme.id).terminal->type, "final") << downgraded.dump();
  ASSERT_EQ(client_->replies().at(globex.id).terminal->type, "final") << routed.dump();
  // Without a budget the prompt goes to a stronger tier...
  EXPECT_NE(routed["route"].value("tier", ""), "small") << routed.dump();
  // ...with acme's nearly spent one, to the cheapest.
  const ModelInfo* model = catalog_->find(downgraded.value("model", ""));
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->tier, Tier::small);
  const std::string reason = downgraded["route"].value("reason", "");
  EXPECT_NE(reason.find("budget nearly spent: acme tenant daily limit"), std::string::npos) << reason;
  EXPECT_NE(reason.find("downgraded to " + model->id), std::string::npos) << reason;
  EXPECT_EQ(workers_.front()->stats().budget_downgraded.load(), 1u);
}

TEST_F(BudgetTest, WithTheLedgerSilentPastTheMaximumStateAgeABudgetedTenantIsRefused) {
  with_budgets = true;
  use_config_yaml("limits:\n  budget_max_state_age_ms: 1500\nbudgets:\n  acme:\n    daily_usd: 100\n");
  start_pipeline();
  PromptEvent before = tenant_prompt(0, "acme", "What is 2 + 2?");
  ASSERT_TRUE(client_->send(before));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60)));
  EXPECT_EQ(client_->replies().at(before.id).terminal->type, "final")
      << client_->replies().at(before.id).terminal->body.dump();

  budget_monitor_->stop();  // no more spend records or heartbeats
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  PromptEvent after = tenant_prompt(1, "acme", "What is 3 + 3?");
  PromptEvent unbudgeted = tenant_prompt(2, "globex", "What is 3 + 3?");
  ASSERT_TRUE(client_->send(after));
  ASSERT_TRUE(client_->send(unbudgeted));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60)));
  const auto& refused = *client_->replies().at(after.id).terminal;
  ASSERT_EQ(refused.type, "error") << refused.body.dump();
  EXPECT_EQ(refused.body["error"].value("code", ""), "budget_exceeded");
  EXPECT_NE(refused.body["error"].value("message", "").find("budget state unknown"), std::string::npos)
      << refused.body.dump();
  EXPECT_EQ(client_->replies().at(unbudgeted.id).terminal->type, "final");  // no budget: not affected
}

TEST_F(BudgetTest, CostEventsCarryThePriceVersionAndTheRequestsTags) {
  with_budgets = true;
  use_config_yaml("budgets:\n  acme:\n    daily_usd: 100\n    tags:\n      research: {daily_usd: 50}\n");
  start_pipeline();
  PromptEvent e = tenant_prompt(0, "acme", "What is the capital of Italy?");
  e.metadata = {{"tags", {"research", 7, "ops"}}};
  ASSERT_TRUE(client_->send(e));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60)));
  ASSERT_EQ(client_->replies().at(e.id).terminal->type, "final");
  ASSERT_TRUE(wait_ledger(1, std::chrono::seconds(30)));
  std::vector<nlohmann::json> costs;
  auto read = read_topic_to_end(config_.kafka, bootstrap_, config_.kafka.ledger_topic, [&](const KafkaRecord& m) {
    costs.push_back(nlohmann::json::parse(m.payload()));
  });
  ASSERT_TRUE(read) << read.error().message;
  ASSERT_EQ(costs.size(), 1u);
  EXPECT_EQ(costs[0].value("price_version", ""), catalog_->price_version());
  EXPECT_FALSE(catalog_->price_version().empty());
  EXPECT_EQ(costs[0]["tags"], nlohmann::json({"research", "ops"}));  // strings only
  // The tag's spend reaches the state the workers read.
  ASSERT_TRUE(budget_monitor_->flush(10000));
  eventually([&] { return budget_table_->book().spend("acme", tag_scope("research"), BudgetPeriod::daily, now_ms()) > 0; },
             10000);
  EXPECT_NEAR(budget_table_->book().spend("acme", tag_scope("research"), BudgetPeriod::daily, now_ms()),
              costs[0].value("cost_usd", 0.0), 1e-12);
}

// A fallback whose own model budget the request would break is not tried:
// the routed model's provider is down, and acme's budget for the first
// fallback is spent, so acme's answer comes from the second.
TEST_F(BudgetTest, AFallbackOverItsModelBudgetIsNotTriedAndTheReasonSaysSo) {
  with_budgets = true;
  env_overrides["CASCADE_PROVIDERS_GROQ_BASE_URL"] = "http://127.0.0.1:1/v1";  // llama-3.1-8b-instant: down
  env_overrides["CASCADE_RESILIENCE_RETRY_BACKOFF_BASE_MS"] = "5";
  env_overrides["CASCADE_RESILIENCE_RETRY_BACKOFF_CAP_MS"] = "20";
  use_config_yaml(
      "router:\n  fallbacks:\n    small: [gemini-2.5-flash-lite, mistral-small]\n"
      "budgets:\n  acme:\n    models:\n      gemini-2.5-flash-lite: {daily_usd: 0.0000001}\n");
  start_pipeline();
  PromptEvent acme = tenant_prompt(0, "acme", "What is 2 + 2?");
  PromptEvent globex = tenant_prompt(1, "globex", "What is 2 + 2?");
  ASSERT_TRUE(client_->send(acme));
  ASSERT_TRUE(client_->send(globex));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60))) << client_->outstanding() << " unanswered";

  const auto& acme_final = *client_->replies().at(acme.id).terminal;
  ASSERT_EQ(acme_final.type, "final") << acme_final.body.dump();
  EXPECT_EQ(acme_final.body.value("model", ""), "mistral-small") << acme_final.body.dump();
  const std::string reason = acme_final.body["route"].value("reason", "");
  EXPECT_NE(reason.find("llama-3.1-8b-instant"), std::string::npos) << reason;  // routed there first
  EXPECT_NE(reason.find("not tried, over their model budget: gemini-2.5-flash-lite"), std::string::npos) << reason;
  // Another tenant's fallback is unaffected.
  const auto& globex_final = *client_->replies().at(globex.id).terminal;
  ASSERT_EQ(globex_final.type, "final") << globex_final.body.dump();
  EXPECT_EQ(globex_final.body.value("model", ""), "gemini-2.5-flash-lite") << globex_final.body.dump();
  EXPECT_EQ(upstream_->requests_by_model()["gemini-2.5-flash-lite"], 1u);
}

}  // namespace
}  // namespace cascade::testing
