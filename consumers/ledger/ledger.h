#pragma once
// The ledger: aggregates cost events (cascade.ledger) idempotently by request
// id, in memory (LedgerAggregator) and durably in RocksDB per tenant, UTC day
// and model (LedgerStore); exports Prometheus metrics; publishes the spend
// state budgets are enforced with and fires budget alerts (BudgetMonitor);
// serves /api/usage and the dashboard (LedgerHttpServer); prints the savings
// report. Rules and guarantees: docs/ledger.md.
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <unordered_set>
#include <vector>

#include "budgets/budgets.h"
#include "config/config.h"
#include "consumers/quality/quality_aggregator.h"
#include "core/result.h"
#include "events/events.h"
#include "tuning/tuning.h"

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
  std::int64_t cache_write_tokens = 0;
  std::int64_t reasoning_tokens = 0;
  double latency_ms_sum = 0;
  double ttft_ms_sum = 0;

  void add(const CostEvent& event);
  void merge(const LedgerTotals& other);
};

// In-memory aggregate over cost events. A cost event seen twice (same id:
// redelivery after a crash) is counted once. Thread-safe.
class LedgerAggregator {
 public:
  // Only events at or after since_ms are counted (0 = all); earlier ones are
  // still remembered as seen.
  explicit LedgerAggregator(std::int64_t since_ms = 0) : since_ms_(since_ms) {}
  // Returns false (and counts nothing) for a duplicate id.
  bool apply(const CostEvent& event);

  LedgerTotals total() const;
  std::map<std::string, LedgerTotals> by_tenant() const;
  std::map<std::string, LedgerTotals> by_model() const;
  // Only the events of one tenant (tenants never see each other's figures).
  LedgerTotals tenant_total(const std::string& tenant) const;
  std::map<std::string, LedgerTotals> tenant_by_model(const std::string& tenant) const;
  // By routing policy or experiment arm (CostEvent::policy); events without
  // one are left out, so both are empty when no policy was ever labelled.
  std::map<std::string, LedgerTotals> by_policy() const;
  std::map<std::string, LedgerTotals> tenant_by_policy(const std::string& tenant) const;
  std::uint64_t duplicates() const;
  // Spend of a tenant (scope "" / model:<id> / tag:<tag>) in the budget period
  // containing now_ms, from every event seen (since_ms does not apply).
  double spend(const std::string& tenant, const std::string& scope, BudgetPeriod period, std::int64_t now_ms) const;

 private:
  std::int64_t since_ms_ = 0;
  mutable std::mutex mu_;
  std::unordered_set<std::string> seen_ids_;
  std::map<std::pair<std::string, std::string>, LedgerTotals> by_tenant_model_;
  std::map<std::pair<std::string, std::string>, LedgerTotals> by_tenant_policy_;
  // (tenant, scope, period id) -> USD, for budget use in the report.
  std::map<std::tuple<std::string, std::string, std::string>, double> spend_;
  std::uint64_t duplicates_ = 0;
};

// ---- durable aggregation ----------------------------------------------------

// One aggregate row: a tenant's use of one model on one UTC day.
struct UsageRow {
  std::string tenant;
  std::string day;  // "YYYY-MM-DD"
  std::string model;
  LedgerTotals totals;
};

struct UsageQuery {
  std::string tenant{};    // "" = every tenant
  std::string from_day{};  // inclusive, "YYYY-MM-DD"; "" = from the first
  std::string to_day{};    // inclusive; "" = to the last
};

struct LedgerStoreOptions {
  std::string dir = "./data/ledger";
  // Request ids are remembered this long (by event time); older events are refused.
  std::int64_t dedupe_ttl_ms = std::int64_t{40} * 24 * 3600 * 1000;
  // fsync every batch: an acknowledged (offset-committed) event survives a
  // machine crash, not only a process crash.
  bool sync_writes = true;
  std::function<std::int64_t()> now_ms;  // null = the system clock
};

struct LedgerApplyOutcome {
  std::vector<std::size_t> applied;  // indexes of the events counted
  std::uint64_t duplicates = 0;      // ids seen before (in the store or earlier in the batch)
  std::uint64_t stale = 0;           // older than the dedupe TTL: refused
  std::uint64_t invalid = 0;         // no id or tenant, or a NUL byte in them
  // (tenant, scope) whose spend the batch changed: "", model:<id>, tag:<tag>.
  std::set<std::pair<std::string, std::string>> touched;
};

// A budget alert, as published on cascade.alerts and POSTed to the webhook.
struct BudgetAlert {
  std::string tenant;
  std::string scope;
  BudgetPeriod period = BudgetPeriod::daily;
  std::string period_id;
  double threshold_percent = 0;
  double spend_usd = 0;
  double limit_usd = 0;
  std::int64_t ts_ms = 0;

  // Unique per budget, period and threshold: tenant|scope|period_id|threshold.
  std::string id() const;
  // One line for people (Slack's `text`).
  std::string text() const;
  std::string to_json() const;  // the cascade.alerts event
  [[nodiscard]] static Result<BudgetAlert> from_json(std::string_view text);
};

// The ledger's RocksDB: request ids seen (with their event time, for the
// TTL), aggregates per (tenant, day, model), spend per (period, tenant,
// scope), alerts fired, and the alert outbox. Each batch of cost events is one
// atomic RocksDB write, so a crash leaves a batch wholly counted or not at all.
// One writer at a time (the consumer); reads from any thread.
class LedgerStore {
 public:
  [[nodiscard]] static Result<std::unique_ptr<LedgerStore>> open(LedgerStoreOptions options);
  ~LedgerStore();
  // Flushes and closes RocksDB. Writes fail after it; readers (the HTTP
  // server, the monitor) must be stopped first.
  [[nodiscard]] Result<void> close();

  // Counts every event of the batch whose (tenant, id) is new, in one write.
  [[nodiscard]] Result<LedgerApplyOutcome> apply(std::span<const CostEvent> events);

  [[nodiscard]] Result<std::vector<UsageRow>> usage(const UsageQuery& query) const;
  // Spend of (tenant, scope) in the period period_id ("2026-07-14" / "2026-07").
  double spend(std::string_view tenant, std::string_view scope, BudgetPeriod period,
               std::string_view period_id) const;
  std::uint64_t spend_requests(std::string_view tenant, std::string_view scope, BudgetPeriod period,
                               std::string_view period_id) const;
  // Every (tenant, scope) with spend in the period.
  [[nodiscard]] Result<std::vector<std::pair<std::string, std::string>>> spenders(BudgetPeriod period,
                                                                    std::string_view period_id) const;

  // Alerts: fired markers and the outbox of deliveries not yet done.
  bool alert_fired(const BudgetAlert& alert) const;
  // Marks `fired` (every threshold crossed) and queues `deliver` for each sink
  // ("kafka", "webhook"), in one synced write. Returns the outbox sequence
  // number of each queued delivery, in order.
  [[nodiscard]] Result<std::vector<std::uint64_t>> record_alerts(const std::vector<BudgetAlert>& fired,
                                                   const std::vector<std::pair<std::string, BudgetAlert>>& deliver);
  struct OutboxItem {
    std::uint64_t seq = 0;
    std::string sink;  // kafka | webhook
    BudgetAlert alert;
  };
  [[nodiscard]] Result<std::vector<OutboxItem>> outbox() const;
  [[nodiscard]] Result<void> remove_outbox(std::uint64_t seq);

  // Forgets request ids whose event time is past the TTL. Returns how many.
  [[nodiscard]] Result<std::uint64_t> expire_seen();
  std::int64_t now_ms() const;
  const LedgerStoreOptions& options() const;

  struct Impl;

 private:
  explicit LedgerStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Sums rows: overall, per day, per model, per tenant.
LedgerTotals sum_rows(std::span<const UsageRow> rows);
std::map<std::string, LedgerTotals> rows_by_day(std::span<const UsageRow> rows);
std::map<std::string, LedgerTotals> rows_by_model(std::span<const UsageRow> rows);
std::map<std::string, LedgerTotals> rows_by_tenant(std::span<const UsageRow> rows);

// Prometheus metrics over cost events: cascade_requests_total,
// cascade_cost_usd_total, cascade_baseline_cost_usd_total,
// cascade_savings_usd_total, cascade_tokens_total{direction},
// cascade_request_latency_seconds and cascade_ttft_seconds histograms,
// labelled by tenant, model, provider, cache. Per routing policy (events
// with one; a separate family so the label does not multiply the series
// above): cascade_policy_requests_total, cascade_policy_cost_usd_total and
// cascade_policy_baseline_cost_usd_total{tenant,policy}. And the ledger's own:
// cascade_ledger_events_total{outcome}, cascade_budget_spend_usd and
// cascade_budget_limit_usd{tenant,scope,period},
// cascade_budget_alerts_total{tenant,period,threshold},
// cascade_budget_alert_deliveries_total{sink,outcome}.
class LedgerMetrics {
 public:
  LedgerMetrics();
  ~LedgerMetrics();
  void record(const CostEvent& event);
  // outcome: applied | duplicate | stale | invalid | malformed.
  void count_events(std::string_view outcome, std::uint64_t n);
  void set_budget(const std::string& tenant, const std::string& scope, BudgetPeriod period, double spend_usd,
                  double limit_usd);
  void count_alert(const BudgetAlert& alert);
  // sink: kafka | webhook; outcome: delivered | retried | failed.
  void count_alert_delivery(std::string_view sink, std::string_view outcome);
  std::shared_ptr<prometheus::Registry> registry() const;
  // Text exposition format of everything recorded (for tests and reports).
  std::string serialize() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// What the savings report covers and adds.
struct SavingsReportOptions {
  std::string tenant;  // "" = all tenants
  // Describes the window the figures cover ("last 7 days"); "" = everything.
  std::string window;
  // Budget use lines (cascade budget / BudgetBook::statuses with spend).
  std::vector<BudgetStatus> budgets;
  // The judge's grades of sampled answers (QualityAggregator::rows of
  // cascade.quality, already only `tenant`'s when a tenant is given): a
  // "Quality" line beside the savings and a section per model and tier, or
  // a line saying that no answer was graded. nullopt = not read: neither.
  std::optional<std::vector<QualityRow>> quality;
  // The grade the baseline model's own answers get from the same judge, when
  // known (recorded data: AlpacaEval's judge gives GPT-4 Turbo 3 by
  // construction); 0 = unknown. The Quality line then also gives the
  // cheaper answers' mean as a share of it, beside the share of its cost.
  double baseline_grade = 0;
  // The same grades per UTC day (QualityAggregator::daily, the tenant's or
  // every tenant's summed per day): a "Judged quality by day" section, and
  // when calibration samples exist (docs/routing.md, "Closed loop") the
  // measured share of the reference's judged quality on the same prompts,
  // which baseline_grade is then not needed for.
  std::vector<DailyQuality> quality_by_day;
};

// The savings report: requests, cache hits, cost, baseline cost, savings and
// percentage, judged quality next to them, model mix with bars, and budget use. `tenant` empty = all tenants.
std::string format_savings_report(const LedgerAggregator& ledger, const std::string& baseline_model,
                                  const std::string& tenant = "");
std::string format_savings_report(const LedgerAggregator& ledger, const std::string& baseline_model,
                                  const SavingsReportOptions& options);

// ---- budgets on the ledger side ---------------------------------------------

struct BudgetMonitorOptions {
  std::vector<double> thresholds_percent = {50, 80, 100};
  std::string webhook_url;  // "" = no webhook
  int webhook_timeout_ms = 5000;
  int webhook_max_attempts = 6;
  int webhook_backoff_base_ms = 500;
  int webhook_backoff_cap_ms = 30000;
  int heartbeat_ms = 5000;  // spend-state heartbeat and periodic re-evaluation
  std::function<std::int64_t()> now_ms;  // null = the system clock
};
BudgetMonitorOptions budget_monitor_options(const Config& config);

// quality.target and quality.tuning as the closed loop's tuner options
// (the ledger runs the tuner: tuning/tuning.h, RouterTuningService).
TuningOptions tuning_options(const QualityConfig& quality);

// The ledger's readers of kafka.topics.quality and, for the closed loop,
// of the operators' resets on kafka.topics.router_updates.
struct QualityFollowers {
  std::unique_ptr<TopicFollower> quality;
  std::unique_ptr<TopicFollower> resets;  // null without tuning
  void stop();
};

// Follows kafka.topics.quality from the beginning (a global table: a
// restart sees the whole retained history) into `quality` and, when given,
// the closed loop's `tuning`, which also gets the router-updates topic's
// resets: both restored to their ends (resets first, so a replayed reset
// applies among the samples at its time), then `tuning` goes live
// (publishes), then both are followed on their own threads. Malformed
// records are logged and skipped. Both must outlive the followers.
[[nodiscard]] Result<QualityFollowers> follow_quality_topic(const KafkaConfig& config, const std::string& bootstrap,
                                                            QualityAggregator& quality, RouterTuningService* tuning);

// The ledger's side of budgets. After each batch is durable in the store:
// publishes the current day's and month's spend of every touched tenant and
// scope to cascade.spend (what workers' BudgetTables read), updates the budget
// gauges, and fires alerts at the thresholds, once per budget, period and
// threshold (marked in the store before delivery, so a restart never fires
// again). Alerts go to cascade.alerts and the webhook (JSON with a
// Slack-compatible `text`), each through the store's outbox with retries and
// exponential backoff with full jitter; undelivered ones are resent after a restart.
class BudgetMonitor {
 public:
  [[nodiscard]] static Result<std::unique_ptr<BudgetMonitor>> start(const KafkaConfig& kafka, const std::string& bootstrap,
                                                      LedgerStore& store, const BudgetBook& budgets,
                                                      LedgerMetrics* metrics, BudgetMonitorOptions options);
  ~BudgetMonitor();
  // Publishes and evaluates the touched (tenant, scope) pairs. Consumer thread.
  void on_batch(const std::set<std::pair<std::string, std::string>>& touched);
  // Publishes every current-period spend and evaluates every budget (startup;
  // evaluation also runs every heartbeat, so a lowered budget alerts too).
  void refresh_all();
  // Waits until every queued spend record and alert delivery is done (tests).
  bool flush(int timeout_ms);
  void stop();

  std::uint64_t alerts_fired() const;
  std::uint64_t webhook_attempts() const;
  std::uint64_t webhook_delivered() const;

  struct Impl;

 private:
  BudgetMonitor() = default;
  std::unique_ptr<Impl> impl_;
};

// ---- the consumer -----------------------------------------------------------

// Where the consumer puts what it reads; every part is optional.
struct LedgerSinks {
  LedgerStore* store = nullptr;            // durable, idempotent aggregates
  LedgerAggregator* aggregator = nullptr;  // in-memory aggregates
  LedgerMetrics* metrics = nullptr;
  BudgetMonitor* budgets = nullptr;  // needs store
};

// Consumes cascade.ledger as the ledger group on its own thread, in batches
// of up to batch_max_events: each batch is applied to the store in one synced
// RocksDB write, then to the aggregator and metrics (only the events counted,
// so a redelivered event counts once), then its offsets are stored for
// commit. A failed store write is retried with the same batch; offsets never
// pass an event not durably counted.
class LedgerConsumer {
 public:
  [[nodiscard]] static Result<std::unique_ptr<LedgerConsumer>> start(const KafkaConfig& config, const std::string& bootstrap,
                                                       LedgerSinks sinks, int batch_max_events = 2000);
  [[nodiscard]] static Result<std::unique_ptr<LedgerConsumer>> start(const KafkaConfig& config, const std::string& bootstrap,
                                                       LedgerAggregator& aggregator, LedgerMetrics* metrics);
  ~LedgerConsumer();
  void stop();
  std::uint64_t events_applied() const { return applied_.load(); }
  std::uint64_t events_rejected() const { return rejected_.load(); }
  // Events read that were counted (not duplicates, stale or invalid).
  std::uint64_t events_counted() const { return counted_.load(); }

 private:
  LedgerConsumer() = default;
  void run();
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<std::uint64_t> applied_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::uint64_t> counted_{0};
};

// Reads the whole ledger topic, from the beginning to its current end, into
// the aggregator (cascade report). Returns the number of events read.
[[nodiscard]] Result<std::uint64_t> read_ledger_topic(const KafkaConfig& config, const std::string& bootstrap,
                                        LedgerAggregator& aggregator);

// ---- HTTP: metrics, usage API, dashboard -------------------------------------

// Serves, on one address: GET /metrics (Prometheus text format of `metrics`),
// GET /api/usage?tenant=&from=&to=&group_by=day|model|tenant (JSON from the
// store), GET /api/budgets?tenant= (budgets with spend), GET
// /api/quality?tenant= (the judge's grades per tenant, model and tier), GET /
// (the dashboard: one self-contained page, no external resources) and /healthz.
class LedgerHttpServer {
 public:
  // listen = "host:port" (port 0 = any free port; see port()). `quality`
  // null: /api/quality answers 404 (the dashboard then shows no quality).
  // Every pointer must outlive the server.
  [[nodiscard]] static Result<std::unique_ptr<LedgerHttpServer>> start(const std::string& listen, const LedgerStore& store,
                                                         const BudgetBook* budgets, const LedgerMetrics* metrics,
                                                         std::string baseline_model,
                                                         const QualityAggregator* quality = nullptr,
                                                         std::function<bool(std::string_view key)> is_admin_key = {});
  // is_admin_key answers whether a key is an admin key in force. Given, every
  // path but /healthz needs one, as "Authorization: Bearer <key>" or as the
  // password of HTTP Basic (so a browser asks for it and the dashboard's own
  // calls carry it). Empty: open (`cascade ledger` gives it unless
  // ledger.metrics_listen is a loopback address). Called on connection
  // threads: it must be thread-safe.
  ~LedgerHttpServer();
  void stop();
  std::uint16_t port() const;

  struct Impl;

 private:
  LedgerHttpServer() = default;
  std::unique_ptr<Impl> impl_;
};

// The JSON of GET /api/usage for a query (exposed for tests and the CLI).
// group_by: day | model | tenant.
// With `quality`, every row and the totals also carry "judged": {graded,
// mean_grade[, calibration_samples, of_reference, reference_model]} for the
// same day, model or tenant (judged quality next to cost); null rows without.
[[nodiscard]] Result<std::string> usage_json(const LedgerStore& store, const UsageQuery& query, std::string_view group_by,
                                             const QualityAggregator* quality = nullptr);
// The JSON of GET /api/quality: {"quality": [{"tenant","model","tier","graded",
// "mean_grade","share_4_or_5","by_grade":[n1..n5],"judge_cost_usd"}],
// "overall": judged, "daily": [judged + "day"]} (judged as usage_json's),
// `tenant`'s only when given.
std::string quality_json(const QualityAggregator& quality, const std::optional<std::string>& tenant);
// The dashboard page.
std::string_view dashboard_html();

}  // namespace cascade
