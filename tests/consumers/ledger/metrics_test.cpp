#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "consumers/ledger/ledger.h"
#include "cost_event_builder.h"

namespace cascade {
namespace {

using ledger_test::make_cost;
using Labels = std::map<std::string, std::string>;

struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

// Parses the samples (not the # HELP/# TYPE lines) of a text exposition.
// Label values in these tests contain no quotes or commas, so a plain split suffices.
std::vector<Sample> parse_exposition(const std::string& text) {
  std::vector<Sample> samples;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line.front() == '#') continue;
    Sample sample;
    std::size_t value_at = line.rfind(' ');
    sample.value = std::stod(line.substr(value_at + 1));
    std::string series = line.substr(0, value_at);
    std::size_t brace = series.find('{');
    sample.name = series.substr(0, brace);
    if (brace != std::string::npos) {
      std::string body = series.substr(brace + 1, series.size() - brace - 2);
      std::istringstream pairs(body);
      std::string pair;
      while (std::getline(pairs, pair, ',')) {
        std::size_t eq = pair.find('=');
        sample.labels[pair.substr(0, eq)] = pair.substr(eq + 2, pair.size() - eq - 3);
      }
    }
    samples.push_back(std::move(sample));
  }
  return samples;
}

std::optional<double> sample_value(const std::string& text, const std::string& name, const Labels& labels) {
  for (const Sample& sample : parse_exposition(text)) {
    if (sample.name == name && sample.labels == labels) return sample.value;
  }
  return std::nullopt;
}

Labels series(const std::string& tenant, const std::string& model, const std::string& provider,
              const std::string& cache) {
  return {{"tenant", tenant}, {"model", model}, {"provider", provider}, {"cache", cache}};
}

Labels with(Labels labels, const std::string& key, const std::string& value) {
  labels[key] = value;
  return labels;
}

TEST(LedgerMetrics, ExposesCountersWithTheEventLabels) {
  LedgerMetrics metrics;
  metrics.record(make_cost({.id = "1", .tenant = "acme", .model = "small", .provider = "openai",
                            .cost_usd = 0.25, .baseline_cost_usd = 1.0, .input_tokens = 100,
                            .output_tokens = 20, .cached_tokens = 40, .latency_ms = 1500, .ttft_ms = 200}));
  metrics.record(make_cost({.id = "2", .tenant = "acme", .model = "small", .provider = "openai",
                            .cost_usd = 0.5, .baseline_cost_usd = 1.0, .input_tokens = 10,
                            .output_tokens = 5, .latency_ms = 700, .ttft_ms = 30}));
  metrics.record(make_cost({.id = "3", .tenant = "acme", .model = "small", .provider = "openai",
                            .cost_usd = 0, .baseline_cost_usd = 2.0, .cache = CacheOutcome::exact}));
  const std::string text = metrics.serialize();
  const Labels miss = series("acme", "small", "openai", "miss");
  const Labels hit = series("acme", "small", "openai", "exact");

  EXPECT_EQ(sample_value(text, "cascade_requests_total", miss), 2.0);
  EXPECT_EQ(sample_value(text, "cascade_requests_total", hit), 1.0);
  EXPECT_EQ(sample_value(text, "cascade_cost_usd_total", miss), 0.75);
  EXPECT_EQ(sample_value(text, "cascade_baseline_cost_usd_total", miss), 2.0);
  EXPECT_EQ(sample_value(text, "cascade_savings_usd_total", miss), 1.25);
  EXPECT_EQ(sample_value(text, "cascade_savings_usd_total", hit), 2.0);
  EXPECT_EQ(sample_value(text, "cascade_tokens_total", with(miss, "direction", "input")), 110.0);
  EXPECT_EQ(sample_value(text, "cascade_tokens_total", with(miss, "direction", "output")), 25.0);
  EXPECT_EQ(sample_value(text, "cascade_tokens_total", with(miss, "direction", "cached")), 40.0);

  EXPECT_EQ(sample_value(text, "cascade_request_latency_seconds_count", miss), 2.0);
  EXPECT_DOUBLE_EQ(sample_value(text, "cascade_request_latency_seconds_sum", miss).value_or(-1), 2.2);
  EXPECT_EQ(sample_value(text, "cascade_request_latency_seconds_bucket", with(miss, "le", "1")), 1.0);
  EXPECT_EQ(sample_value(text, "cascade_request_latency_seconds_bucket", with(miss, "le", "2")), 2.0);
  EXPECT_EQ(sample_value(text, "cascade_ttft_seconds_count", miss), 2.0);
  EXPECT_EQ(sample_value(text, "cascade_ttft_seconds_bucket", with(miss, "le", "0.05")), 1.0);
  EXPECT_EQ(sample_value(text, "cascade_ttft_seconds_bucket", with(miss, "le", "0.25")), 2.0);

  EXPECT_NE(text.find("# HELP cascade_cost_usd_total "), std::string::npos);
  EXPECT_NE(text.find("# TYPE cascade_request_latency_seconds histogram"), std::string::npos);
}

TEST(LedgerMetrics, NegativeSavingsGoToTheExtraCostCounter) {
  LedgerMetrics metrics;
  // Routed to a model dearer than the baseline: savings = 1.0 - 1.5 = -0.5.
  metrics.record(make_cost({.id = "1", .model = "large", .cost_usd = 1.5, .baseline_cost_usd = 1.0}));
  metrics.record(make_cost({.id = "2", .model = "large", .cost_usd = 0.25, .baseline_cost_usd = 1.0}));
  const std::string text = metrics.serialize();
  const Labels labels = series("acme", "large", "openai", "miss");

  EXPECT_EQ(sample_value(text, "cascade_savings_usd_total", labels), 0.75);
  EXPECT_EQ(sample_value(text, "cascade_extra_cost_usd_total", labels), 0.5);
  EXPECT_EQ(sample_value(text, "cascade_cost_usd_total", labels), 1.75);
}

TEST(LedgerMetrics, PoliciesHaveTheirOwnCountersAndDoNotSplitTheMainSeries) {
  LedgerMetrics metrics;
  metrics.record(make_cost({.id = "1", .cost_usd = 0.25, .baseline_cost_usd = 1.0, .policy = "exp:a"}));
  metrics.record(make_cost({.id = "2", .cost_usd = 0.5, .baseline_cost_usd = 1.0, .policy = "exp:a"}));
  metrics.record(make_cost({.id = "3", .cost_usd = 1.0, .baseline_cost_usd = 1.0, .policy = "exp:b"}));
  metrics.record(make_cost({.id = "4", .cost_usd = 2.0, .baseline_cost_usd = 2.0}));
  const std::string text = metrics.serialize();
  const Labels a{{"tenant", "acme"}, {"policy", "exp:a"}};
  EXPECT_EQ(sample_value(text, "cascade_policy_requests_total", a), 2.0);
  EXPECT_EQ(sample_value(text, "cascade_policy_cost_usd_total", a), 0.75);
  EXPECT_EQ(sample_value(text, "cascade_policy_baseline_cost_usd_total", a), 2.0);
  EXPECT_EQ(sample_value(text, "cascade_policy_requests_total", (Labels{{"tenant", "acme"}, {"policy", "exp:b"}})),
            1.0);
  EXPECT_EQ(sample_value(text, "cascade_policy_requests_total", (Labels{{"tenant", "acme"}, {"policy", ""}})),
            std::nullopt);
  // The main series keep their labels: every event counts there once.
  EXPECT_EQ(sample_value(text, "cascade_requests_total", series("acme", "gpt-4o-mini", "openai", "miss")), 4.0);
  for (const Sample& sample : parse_exposition(text)) {
    if (sample.name.starts_with("cascade_policy_")) continue;
    EXPECT_FALSE(sample.labels.contains("policy")) << sample.name;
  }
}

TEST(LedgerMetrics, KeepsTenantsInSeparateSeries) {
  LedgerMetrics metrics;
  metrics.record(make_cost({.id = "1", .tenant = "acme", .cost_usd = 1}));
  metrics.record(make_cost({.id = "2", .tenant = "globex", .cost_usd = 4}));
  const std::string text = metrics.serialize();

  EXPECT_EQ(sample_value(text, "cascade_cost_usd_total", series("acme", "gpt-4o-mini", "openai", "miss")), 1.0);
  EXPECT_EQ(sample_value(text, "cascade_cost_usd_total", series("globex", "gpt-4o-mini", "openai", "miss")), 4.0);
}

TEST(LedgerMetrics, ConcurrentRecordsAreCountedExactly) {
  LedgerMetrics metrics;
  constexpr int kThreads = 4;
  constexpr int kEventsPerThread = 1000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&metrics, t] {
      for (int i = 0; i < kEventsPerThread; ++i) {
        metrics.record(make_cost({.id = std::to_string(t) + "-" + std::to_string(i),
                                  .model = "model-" + std::to_string(i % 5),
                                  .cost_usd = 0.25,
                                  .baseline_cost_usd = 0.5}));
      }
    });
  }
  for (auto& thread : threads) thread.join();

  const std::string text = metrics.serialize();
  for (int m = 0; m < 5; ++m) {
    const Labels labels = series("acme", "model-" + std::to_string(m), "openai", "miss");
    EXPECT_EQ(sample_value(text, "cascade_requests_total", labels), kThreads * kEventsPerThread / 5.0);
    EXPECT_EQ(sample_value(text, "cascade_cost_usd_total", labels), 0.25 * kThreads * kEventsPerThread / 5.0);
  }
}

}  // namespace
}  // namespace cascade
