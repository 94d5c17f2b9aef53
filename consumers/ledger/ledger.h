#pragma once
// The ledger: aggregates cost events (cascade.ledger) per tenant and model,
// idempotently by request id, exports Prometheus metrics and prints the
// savings report.
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_set>

#include "core/config.h"
#include "core/result.h"
#include "events/events.h"

namespace prometheus {
class Registry;
class Exposer;
}  // namespace prometheus

namespace cascade {

struct LedgerTotals {
  std::uint64_t requests = 0;
  std::uint64_t cache_hits = 0;
  double cost_usd = 0;
  double baseline_cost_usd = 0;
  double savings_usd = 0;
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::int64_t cached_tokens = 0;
  double latency_ms_sum = 0;
  double ttft_ms_sum = 0;

  void add(const CostEvent& event);
};

// In-memory aggregate over cost events. A cost event seen twice (same id:
// redelivery after a crash) is counted once. Thread-safe.
class LedgerAggregator {
 public:
  // Returns false (and counts nothing) for a duplicate id.
  bool apply(const CostEvent& event);

  LedgerTotals total() const;
  std::map<std::string, LedgerTotals> by_tenant() const;
  std::map<std::string, LedgerTotals> by_model() const;
  // Only the events of one tenant (tenants never see each other's figures).
  LedgerTotals tenant_total(const std::string& tenant) const;
  std::map<std::string, LedgerTotals> tenant_by_model(const std::string& tenant) const;
  std::uint64_t duplicates() const;

 private:
  mutable std::mutex mu_;
  std::unordered_set<std::string> seen_ids_;
  std::map<std::pair<std::string, std::string>, LedgerTotals> by_tenant_model_;
  std::uint64_t duplicates_ = 0;
};

// Prometheus metrics over cost events: cascade_requests_total,
// cascade_cost_usd_total, cascade_baseline_cost_usd_total,
// cascade_savings_usd_total, cascade_tokens_total{direction},
// cascade_request_latency_seconds and cascade_ttft_seconds histograms,
// labelled by tenant, model, provider, cache.
class LedgerMetrics {
 public:
  LedgerMetrics();
  ~LedgerMetrics();
  void record(const CostEvent& event);
  std::shared_ptr<prometheus::Registry> registry() const;
  // Text exposition format of everything recorded (for tests and reports).
  std::string serialize() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The savings report: requests, cache hits, cost, baseline cost, savings and
// percentage, model mix with bars. `tenant` empty = all tenants.
std::string format_savings_report(const LedgerAggregator& ledger, const std::string& baseline_model,
                                  const std::string& tenant = "");

// Consumes cascade.ledger as the ledger group on its own thread and feeds
// every cost event to the aggregator and the metrics. Offsets are committed
// after the events are applied (at-least-once; the aggregator dedupes).
class LedgerConsumer {
 public:
  static Result<std::unique_ptr<LedgerConsumer>> start(const KafkaConfig& config, const std::string& bootstrap,
                                                       LedgerAggregator& aggregator, LedgerMetrics* metrics);
  ~LedgerConsumer();
  void stop();
  std::uint64_t events_applied() const { return applied_.load(); }
  std::uint64_t events_rejected() const { return rejected_.load(); }

 private:
  LedgerConsumer() = default;
  void run();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<std::uint64_t> applied_{0};
  std::atomic<std::uint64_t> rejected_{0};
};

// Reads the whole ledger topic, from the beginning to its current end, into
// the aggregator (cascade report). Returns the number of events read.
Result<std::uint64_t> read_ledger_topic(const KafkaConfig& config, const std::string& bootstrap,
                                        LedgerAggregator& aggregator);

}  // namespace cascade
