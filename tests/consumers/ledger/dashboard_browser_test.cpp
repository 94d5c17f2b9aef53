// The dashboard in a real browser: headless Chromium loads the page from the
// ledger's HTTP server over a store with data, runs its script (which fetches
// /api/usage and /api/budgets) and we check the charts in the rendered DOM.
// A screenshot is saved and its path printed. Skips when Chromium is absent
// (Debian package `chromium`; CASCADE_CHROMIUM names another binary).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <tuple>
#include <vector>

#include "consumers/ledger/cost_event_builder.h"
#include "consumers/ledger/ledger.h"
#include "support/quality_event.h"
#include "support/temp_dir.h"

namespace cascade {
namespace {

namespace fs = std::filesystem;
using ledger_test::make_cost;
using testing::TempDir;

constexpr std::int64_t kDay = 86'400'000;

std::string find_chromium() {
  if (const char* own = std::getenv("CASCADE_CHROMIUM"); own && fs::exists(own)) return own;
  for (const char* path : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (fs::exists(path)) return path;
  return {};
}

// Runs a command, returns its standard output.
std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return out;
  std::array<char, 65536> buffer{};
  for (std::size_t n; (n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0;) out.append(buffer.data(), n);
  pclose(pipe);
  return out;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

class DashboardBrowserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    chromium_ = find_chromium();
    if (chromium_.empty()) GTEST_SKIP() << "no Chromium (apt-get install chromium) - dashboard not rendered";
    LedgerStoreOptions options;
    options.dir = dir_.sub("ledger");
    auto store = LedgerStore::open(options);
    ASSERT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
    // Two weeks of traffic: acme on two models with a growing cache hit
    // share, globex on a third.
    const std::int64_t now = now_ms();
    std::vector<CostEvent> events;
    for (int day = 0; day < 14; ++day) {
      const std::int64_t ts = now - day * kDay;
      for (int i = 0; i < 10; ++i) {
        const bool hit = i < 14 - day;  // more hits on recent days
        events.push_back(make_cost({.id = "a" + std::to_string(day) + "-" + std::to_string(i),
                                    .tenant = "acme",
                                    .model = i % 3 ? "gpt-4o-mini" : "gpt-4o",
                                    .cost_usd = hit ? 0 : (i % 3 ? 0.002 : 0.02),
                                    .baseline_cost_usd = 0.02,
                                    .cache = hit ? CacheOutcome::exact : CacheOutcome::miss,
                                    .latency_ms = hit ? 15.0 : 800.0 + 20 * day,
                                    .ttft_ms = hit ? 5.0 : 200.0,
                                    .ts_ms = ts}));
      }
      events.push_back(make_cost({.id = "g" + std::to_string(day), .tenant = "globex", .model = "claude-haiku-4-5",
                                  .cost_usd = 0.01, .baseline_cost_usd = 0.02, .latency_ms = 500, .ts_ms = ts}));
    }
    ASSERT_TRUE(store_->apply(events));
    budgets_.set_runtime_budget({"acme", "", {0.05, 2, 80}});
    budgets_.set_runtime_budget({"acme", model_scope("gpt-4o"), {0.1, 0, 80}});
    // The judge's grades, calibration samples beside the reference's: acme's
    // gpt-4o-mini 4 and 5 today, 2 a week ago (the reference 5 each time);
    // globex's claude 3.
    const std::int64_t today = now_ms();
    ASSERT_TRUE(quality_.add(testing::calibration_event("q1", "acme", "gpt-4o-mini", "small", 4, 5, today)));
    ASSERT_TRUE(quality_.add(testing::calibration_event("q2", "acme", "gpt-4o-mini", "small", 5, 5, today)));
    ASSERT_TRUE(quality_.add(testing::calibration_event("q3", "acme", "gpt-4o-mini", "small", 2, 5, today - 7 * kDay)));
    ASSERT_TRUE(quality_.add(testing::graded_event("q4", "globex", "claude-haiku-4-5", "small", 3)));
    auto server = LedgerHttpServer::start("127.0.0.1:0", *store_, &budgets_, nullptr, "gpt-4o", &quality_);
    ASSERT_TRUE(server) << server.error().message;
    server_ = std::move(*server);
  }

  std::string chromium(const std::string& args, const std::string& path) const {
    const std::string url = "http://127.0.0.1:" + std::to_string(server_->port()) + path;
    // --virtual-time-budget lets the page's fetches and rendering finish
    // before the DOM is dumped or the screenshot taken.
    return "timeout 120 " + chromium_ + " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage " +
           "--no-first-run --hide-scrollbars --user-data-dir=" + dir_.sub("profile") +
           " --virtual-time-budget=15000 " + args + " '" + url + "' 2>/dev/null";
  }

  std::string chromium_;
  TempDir dir_;
  std::unique_ptr<LedgerStore> store_;
  BudgetBook budgets_;
  QualityAggregator quality_;
  std::unique_ptr<LedgerHttpServer> server_;
};

TEST_F(DashboardBrowserTest, RendersCostSavingsModelMixCacheLatencyAndBudgetCharts) {
  const std::string dom = run(chromium("--dump-dom", "/?days=30&tenant=acme"));
  ASSERT_NE(dom.find("data-rendered=\"true\""), std::string::npos)
      << "the page's script did not finish rendering; DOM:\n" << dom.substr(0, 4000);
  // 30 days on the axis, one cost bar and one savings bar each.
  EXPECT_EQ(count_of(dom, "class=\"bar-cost\""), 30u);
  EXPECT_EQ(count_of(dom, "class=\"bar-savings\""), 30u);
  EXPECT_EQ(count_of(dom, "class=\"line-baseline\""), 1u);
  const std::string today = utc_day(now_ms());
  const std::string a_week_ago = utc_day(now_ms() - 7 * kDay);
  // Seven days ago 7 of 10 were hits: calls 7, 8, 9 were paid (9 is gpt-4o).
  const std::regex week_bar("class=\"bar-cost\"[^>]*data-day=\"" + a_week_ago + "\" data-value=\"([0-9.e-]+)\"");
  std::smatch match;
  ASSERT_TRUE(std::regex_search(dom, match, week_bar)) << "no cost bar for " << a_week_ago;
  EXPECT_NEAR(std::stod(match[1]), 0.002 + 0.002 + 0.02, 1e-9);
  // Model mix: only acme's two models.
  EXPECT_EQ(count_of(dom, "class=\"bar-model\""), 2u);
  EXPECT_NE(dom.find("data-model=\"gpt-4o-mini\""), std::string::npos);
  EXPECT_EQ(dom.find("claude-haiku-4-5"), std::string::npos) << "another tenant's model on acme's page";
  // Cache hit rate and latency points for the 14 days with traffic.
  EXPECT_EQ(count_of(dom, "class=\"line-cache-point\""), 14u);
  EXPECT_EQ(count_of(dom, "class=\"line-latency-point\""), 14u);
  EXPECT_EQ(count_of(dom, "class=\"line-ttft-point\""), 14u);
  const std::regex today_hits("class=\"line-cache-point\"[^>]*data-day=\"" + today + "\" data-value=\"([0-9.e-]+)\"");
  ASSERT_TRUE(std::regex_search(dom, match, today_hits));
  EXPECT_DOUBLE_EQ(std::stod(match[1]), 1.0);
  // Budgets: daily and monthly of the tenant, daily of its gpt-4o budget.
  EXPECT_EQ(count_of(dom, "class=\"bar-budget\""), 3u);
  EXPECT_NE(dom.find("id=\"kpi-requests\">140<"), std::string::npos) << "KPI: 14 days x 10 requests";
  // Judged quality beside the savings: acme's grades only (mean of 4, 5, 2).
  EXPECT_EQ(count_of(dom, "class=\"bar-quality\""), 1u);
  EXPECT_NE(dom.find("data-model=\"gpt-4o-mini (small)\" data-value=\"3.6666"), std::string::npos);
  EXPECT_NE(dom.find("id=\"kpi-quality\">73% · 3.67 / 5<"), std::string::npos)
      << dom.substr(dom.find("kpi-quality"), 200);
  // ...and over time: the share of the reference's on the two days graded.
  EXPECT_EQ(count_of(dom, "class=\"line-judged-point\""), 2u);
  const std::regex judged_today("class=\"line-judged-point\"[^>]*data-day=\"" + today + "\" data-value=\"([0-9.e-]+)\"");
  ASSERT_TRUE(std::regex_search(dom, match, judged_today));
  EXPECT_DOUBLE_EQ(std::stod(match[1]), 0.9);
}

TEST_F(DashboardBrowserTest, SavesAScreenshot) {
  const char* dir = std::getenv("CASCADE_SCREENSHOT_DIR");
  const fs::path out = fs::path(dir ? dir : fs::temp_directory_path().string()) / "cascade-dashboard.png";
  fs::remove(out);
  run(chromium("--window-size=1280,1200 --screenshot=" + out.string(), "/?days=30"));
  ASSERT_TRUE(fs::exists(out)) << "Chromium wrote no screenshot";
  std::ifstream png(out, std::ios::binary);
  char signature[8] = {};
  png.read(signature, 8);
  EXPECT_EQ(std::string(signature + 1, 3), "PNG");
  EXPECT_GT(fs::file_size(out), 20'000u) << "a blank page compresses to less";
  std::printf("dashboard screenshot: %s\n", out.string().c_str());
  RecordProperty("screenshot", out.string());
}

}  // namespace
}  // namespace cascade
