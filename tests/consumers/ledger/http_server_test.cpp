// The ledger's HTTP endpoints, over real sockets (libcurl as the client).
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "consumers/ledger/cost_event_builder.h"
#include "consumers/ledger/ledger.h"
#include "support/quality_event.h"
#include "support/temp_dir.h"

namespace cascade {
namespace {

using json = nlohmann::json;
using ledger_test::make_cost;
using testing::TempDir;

constexpr std::int64_t kDay = 86'400'000;

struct HttpReply {
  long status = 0;
  std::string content_type;
  std::string body;
};

size_t collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

HttpReply get(std::uint16_t port, const std::string& target) {
  HttpReply reply;
  CURL* curl = curl_easy_init();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + target;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
  if (curl_easy_perform(curl) == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
    char* type = nullptr;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &type);
    if (type) reply.content_type = type;
  }
  curl_easy_cleanup(curl);
  return reply;
}

class LedgerHttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LedgerStoreOptions options;
    options.dir = dir_.path();
    auto store = LedgerStore::open(options);
    ASSERT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
    const std::int64_t now = now_ms();
    ASSERT_TRUE(store_->apply(std::vector{
        make_cost({.id = "a1", .tenant = "acme", .model = "gpt-4o-mini", .cost_usd = 0.002, .baseline_cost_usd = 0.02,
                   .latency_ms = 300, .ttft_ms = 100, .ts_ms = now - 2 * kDay}),
        make_cost({.id = "a2", .tenant = "acme", .model = "gpt-4o", .cost_usd = 0.02, .baseline_cost_usd = 0.02,
                   .latency_ms = 900, .ttft_ms = 200, .ts_ms = now}),
        make_cost({.id = "a3", .tenant = "acme", .model = "gpt-4o-mini", .cost_usd = 0, .baseline_cost_usd = 0.01,
                   .cache = CacheOutcome::exact, .latency_ms = 10, .ttft_ms = 5, .ts_ms = now}),
        make_cost({.id = "g1", .tenant = "globex", .model = "claude-haiku-4-5", .cost_usd = 0.5,
                   .baseline_cost_usd = 0.4, .ts_ms = now}),
    }));
    budgets_.set_runtime_budget({"acme", "", {0.05, 1, 80}});
    metrics_.count_events("applied", 4);
    auto server = LedgerHttpServer::start("127.0.0.1:0", *store_, &budgets_, &metrics_, "gpt-4o");
    ASSERT_TRUE(server) << server.error().message;
    server_ = std::move(*server);
  }

  TempDir dir_;
  std::unique_ptr<LedgerStore> store_;
  BudgetBook budgets_;
  LedgerMetrics metrics_;
  std::unique_ptr<LedgerHttpServer> server_;
};

TEST_F(LedgerHttpServerTest, UsageByDayCoversEveryDayOfTheRangeForOneTenant) {
  const auto reply = get(server_->port(), "/api/usage?tenant=acme&from=7d&group_by=day");
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.content_type, "application/json");
  const auto j = json::parse(reply.body);
  EXPECT_EQ(j["tenant"], "acme");
  EXPECT_EQ(j["baseline_model"], "gpt-4o");
  ASSERT_EQ(j["rows"].size(), 7u);  // zero days included
  EXPECT_EQ(j["rows"][6]["key"], utc_day(now_ms()));
  EXPECT_EQ(j["rows"][6]["requests"], 2);
  EXPECT_EQ(j["rows"][6]["cache_hits"], 1);
  EXPECT_DOUBLE_EQ(j["rows"][6]["cache_hit_rate"].get<double>(), 0.5);
  EXPECT_EQ(j["rows"][4]["requests"], 1);
  EXPECT_EQ(j["rows"][5]["requests"], 0);
  EXPECT_EQ(j["totals"]["requests"], 3);  // globex is not in acme's figures
  EXPECT_NEAR(j["totals"]["cost_usd"].get<double>(), 0.022, 1e-12);
  EXPECT_NEAR(j["totals"]["savings_usd"].get<double>(), 0.028, 1e-12);
  EXPECT_NEAR(j["totals"]["avg_latency_ms"].get<double>(), (300 + 900 + 10) / 3.0, 1e-9);
}

TEST_F(LedgerHttpServerTest, UsageByModelAndByTenantAreSortedByRequests) {
  auto j = json::parse(get(server_->port(), "/api/usage?tenant=acme&group_by=model").body);
  ASSERT_EQ(j["rows"].size(), 2u);
  EXPECT_EQ(j["rows"][0]["key"], "gpt-4o-mini");
  EXPECT_EQ(j["rows"][0]["requests"], 2);
  j = json::parse(get(server_->port(), "/api/usage?group_by=tenant&from=" + utc_day(now_ms()) +
                                           "&to=" + utc_day(now_ms())).body);
  ASSERT_EQ(j["rows"].size(), 2u);
  EXPECT_EQ(j["rows"][0]["key"], "acme");
  EXPECT_EQ(j["totals"]["requests"], 3);  // the day before today is outside the range
}

TEST_F(LedgerHttpServerTest, BadQueriesAreClearErrors) {
  auto reply = get(server_->port(), "/api/usage?group_by=hour");
  EXPECT_EQ(reply.status, 400);
  EXPECT_NE(json::parse(reply.body)["error"].get<std::string>().find("group_by"), std::string::npos);
  EXPECT_EQ(get(server_->port(), "/api/usage?from=yesterday").status, 400);
  EXPECT_EQ(get(server_->port(), "/api/usage?from=2026-07-14&to=2026-07-01").status, 400);
  EXPECT_EQ(get(server_->port(), "/nope").status, 404);
}

TEST_F(LedgerHttpServerTest, BudgetsCarryTheLedgersOwnSpend) {
  const auto j = json::parse(get(server_->port(), "/api/budgets?tenant=acme").body);
  ASSERT_EQ(j["budgets"].size(), 1u);
  const auto& b = j["budgets"][0];
  EXPECT_EQ(b["source"], "runtime");
  EXPECT_DOUBLE_EQ(b["daily_usd"].get<double>(), 0.05);
  EXPECT_NEAR(b["spent_daily_usd"].get<double>(), 0.02, 1e-12);
  EXPECT_EQ(json::parse(get(server_->port(), "/api/budgets?tenant=globex").body)["budgets"].size(), 0u);
}

TEST_F(LedgerHttpServerTest, QualityIsServedPerTenantModelAndTierOnlyWhenAggregated) {
  // This fixture's server has no quality aggregator.
  EXPECT_EQ(get(server_->port(), "/api/quality").status, 404);

  QualityAggregator quality;
  int n = 0;
  for (const auto& [tenant, score] : std::vector<std::pair<std::string, double>>{{"acme", 5}, {"acme", 3}, {"globex", 4}}) {
    ASSERT_TRUE(quality.add(testing::graded_event("q" + std::to_string(++n), tenant, "small-model", "small", score)));
  }
  auto server = LedgerHttpServer::start("127.0.0.1:0", *store_, &budgets_, &metrics_, "gpt-4o", &quality);
  ASSERT_TRUE(server) << server.error().message;
  const HttpReply all = get((*server)->port(), "/api/quality");
  ASSERT_EQ(all.status, 200);
  const json rows = json::parse(all.body)["quality"];
  ASSERT_EQ(rows.size(), 2u);
  const HttpReply acme = get((*server)->port(), "/api/quality?tenant=acme");
  const json acme_rows = json::parse(acme.body)["quality"];
  ASSERT_EQ(acme_rows.size(), 1u);
  EXPECT_EQ(acme_rows[0]["model"], "small-model");
  EXPECT_EQ(acme_rows[0]["tier"], "small");
  EXPECT_EQ(acme_rows[0]["graded"], 2);
  EXPECT_DOUBLE_EQ(acme_rows[0]["mean_grade"].get<double>(), 4.0);
  EXPECT_DOUBLE_EQ(acme_rows[0]["share_4_or_5"].get<double>(), 0.5);
  EXPECT_EQ(acme_rows[0]["by_grade"], json::array({0, 0, 1, 0, 1}));
  EXPECT_NEAR(acme_rows[0]["judge_cost_usd"].get<double>(), 0.002, 1e-12);
}

TEST_F(LedgerHttpServerTest, UsageAndQualityCarryJudgedQualityNextToCostByDayModelAndTenant) {
  QualityAggregator quality;
  const std::int64_t today = now_ms();
  ASSERT_TRUE(quality.add(testing::calibration_event("c1", "acme", "gpt-4o-mini", "small", 3, 4, today)));
  ASSERT_TRUE(quality.add(testing::calibration_event("c2", "acme", "gpt-4o-mini", "small", 5, 4, today)));
  ASSERT_TRUE(quality.add(testing::calibration_event("c3", "acme", "gpt-4o-mini", "small", 2, 5, today - 2 * kDay)));
  ASSERT_TRUE(quality.add(testing::calibration_event("c4", "globex", "claude-haiku-4-5", "small", 1, 5, today)));
  auto server = LedgerHttpServer::start("127.0.0.1:0", *store_, &budgets_, &metrics_, "gpt-4o", &quality);
  ASSERT_TRUE(server) << server.error().message;
  const std::uint16_t port = (*server)->port();

  auto j = json::parse(get(port, "/api/usage?tenant=acme&from=7d&group_by=day").body);
  const json& day = j["rows"][6]["judged"];
  EXPECT_EQ(day["graded"], 2);
  EXPECT_DOUBLE_EQ(day["mean_grade"].get<double>(), 4.0);
  EXPECT_EQ(day["calibration_samples"], 2);
  EXPECT_DOUBLE_EQ(day["of_reference"].get<double>(), 1.0);
  EXPECT_EQ(day["reference_model"], "gpt-4o");
  EXPECT_EQ(j["rows"][5]["judged"]["graded"], 0);
  EXPECT_EQ(j["rows"][4]["judged"]["graded"], 1);
  EXPECT_EQ(j["totals"]["judged"]["calibration_samples"], 3);
  EXPECT_DOUBLE_EQ(j["totals"]["judged"]["of_reference"].get<double>(), 10.0 / 13.0);

  j = json::parse(get(port, "/api/usage?tenant=acme&group_by=model").body);
  EXPECT_EQ(j["rows"][0]["key"], "gpt-4o-mini");
  EXPECT_EQ(j["rows"][0]["judged"]["graded"], 3);
  EXPECT_EQ(j["rows"][1]["judged"]["graded"], 0);  // gpt-4o: nothing graded
  j = json::parse(get(port, "/api/usage?group_by=tenant").body);
  for (const auto& row : j["rows"]) {
    if (row["key"] == "globex") {
      EXPECT_DOUBLE_EQ(row["judged"]["of_reference"].get<double>(), 0.2);
    }
  }

  // Without an aggregator, "judged" is absent from the totals and null in rows.
  j = json::parse(get(server_->port(), "/api/usage?group_by=model").body);
  EXPECT_FALSE(j["totals"].contains("judged"));
  EXPECT_TRUE(j["rows"][0]["judged"].is_null());

  const json q = json::parse(get(port, "/api/quality?tenant=acme").body);
  EXPECT_EQ(q["overall"]["calibration_samples"], 3);
  ASSERT_EQ(q["daily"].size(), 2u);
  EXPECT_EQ(q["daily"][1]["day"], utc_day(today));
  EXPECT_DOUBLE_EQ(q["daily"][1]["of_reference"].get<double>(), 1.0);
}

TEST_F(LedgerHttpServerTest, ServesMetricsAndASelfContainedDashboard) {
  const auto metrics = get(server_->port(), "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("cascade_ledger_events_total{outcome=\"applied\"} 4"), std::string::npos);
  const auto page = get(server_->port(), "/");
  ASSERT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("id=\"chart-cost\""), std::string::npos);
  // Nothing is fetched from elsewhere: no absolute URLs in src/href, no CDN.
  EXPECT_EQ(page.body.find("src=\"http"), std::string::npos);
  EXPECT_EQ(page.body.find("href=\"http"), std::string::npos);
  EXPECT_EQ(page.body.find("<link"), std::string::npos);
}

}  // namespace
}  // namespace cascade

namespace cascade {
namespace {

// Off loopback the ledger's API and dashboard take admin keys only: as a
// Bearer token or as HTTP Basic's password (what a browser sends).
TEST_F(LedgerHttpServerTest, WithAdminKeysRequiredOnlyAnAdminKeyGetsInAndHealthzStaysOpen) {
  server_->stop();
  auto server = LedgerHttpServer::start("127.0.0.1:0", *store_, &budgets_, &metrics_, "gpt-4o", nullptr,
                                        [](std::string_view key) { return key == "csk-admin"; });
  ASSERT_TRUE(server) << server.error().message;
  server_ = std::move(*server);
  const auto call = [&](const std::string& target, const std::string& authorization) {
    HttpReply reply;
    CURL* curl = curl_easy_init();
    const std::string url = "http://127.0.0.1:" + std::to_string(server_->port()) + target;
    curl_slist* headers = authorization.empty() ? nullptr : curl_slist_append(nullptr, authorization.c_str());
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
    if (curl_easy_perform(curl) == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    return reply;
  };
  EXPECT_EQ(call("/api/usage?tenant=acme", "").status, 401);
  EXPECT_EQ(call("/", "").status, 401);
  EXPECT_EQ(call("/metrics", "Authorization: Bearer csk-tenant").status, 401);
  EXPECT_EQ(call("/healthz", "").status, 200);
  EXPECT_EQ(call("/api/usage?tenant=acme", "Authorization: Bearer csk-admin").status, 200);
  // "anyone:csk-admin" in base64.
  EXPECT_EQ(call("/", "Authorization: Basic YW55b25lOmNzay1hZG1pbg==").status, 200);
}

}  // namespace
}  // namespace cascade
