#include "apps/cascade/ledger_commands.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <thread>

#include "auth/api_keys.h"
#include "budgets/budgets.h"
#include "core/listen_address.h"
#include "catalog/catalog.h"
#include "consumers/ledger/ledger.h"
#include "consumers/quality/quality_aggregator.h"
#include "kafka/kafka.h"
#include "tuning/tuning.h"

namespace cascade::cli {
namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

int report_error(const Error& e) {
  std::fprintf(stderr, "cascade: %s: %s\n", std::string(to_string(e.code)).c_str(), e.message.c_str());
  return 1;
}

std::string money(double usd) {
  char buf[64];
  std::snprintf(buf, sizeof buf, usd != 0 && usd < 0.01 ? "$%.6f" : "$%.2f", usd);
  return buf;
}

Result<std::string> scope_of(const BudgetCommandOptions& options) {
  if (!options.model.empty() && !options.tag.empty())
    return fail(ErrorCode::invalid_request, "a budget is for the tenant, one --model or one --tag, not both");
  if (!options.model.empty()) return model_scope(options.model);
  if (!options.tag.empty()) return tag_scope(options.tag);
  return std::string();
}

}  // namespace

Result<std::unique_ptr<BudgetBook>> read_budget_book(const Config& config, bool with_spend) {
  auto book = std::make_unique<BudgetBook>(budgets_from_config(config));
  auto on_record = [&](const KafkaRecord& record, bool budgets_topic) {
    std::optional<std::string_view> value;
    if (!record.tombstone()) value = record.payload();
    auto ok = budgets_topic ? book->apply_budget_record(record.key(), value)
                            : book->apply_spend_record(record.key(), value);
    if (!ok) spdlog::warn("skipping a record of {}: {}", budgets_topic ? "budgets" : "spend", ok.error().message);
  };
  auto read = read_topic_to_end(config.kafka, config.kafka.bootstrap, config.kafka.budgets_topic,
                                [&](const KafkaRecord& m) { on_record(m, true); });
  if (!read) return std::unexpected(read.error());
  if (with_spend) {
    read = read_topic_to_end(config.kafka, config.kafka.bootstrap, config.kafka.spend_topic,
                             [&](const KafkaRecord& m) { on_record(m, false); });
    if (!read) return std::unexpected(read.error());
  }
  return book;
}

std::optional<std::int64_t> parse_since(std::string_view text, std::int64_t now_ms) {
  if (auto day = parse_utc_day(text)) return day;
  if (text.size() < 2) return std::nullopt;
  std::int64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size() - 1, n);
  if (ec != std::errc() || p != text.data() + text.size() - 1 || n <= 0) return std::nullopt;
  std::int64_t unit = 0;
  switch (text.back()) {
    case 'd': unit = 86'400'000; break;
    case 'h': unit = 3'600'000; break;
    case 'm': unit = 60'000; break;
    default: return std::nullopt;
  }
  if (n > std::int64_t{100'000} * 86'400'000 / unit) return std::nullopt;
  return now_ms - n * unit;
}

int ledger_service(const Config& config) {
  auto kafka = KafkaConnection::open(config.kafka);
  if (!kafka) return report_error(kafka.error());
  if (!kafka->embedded()) {
    // On a real cluster the ledger owns its topics: budgets and spend compacted.
    // Only the missing ones: `cascade broker` (a mock cluster, which does not
    // answer CreateTopics) has created them all already.
    std::vector<TopicSpec> topics;
    for (const auto& t : cascade_topics(config.kafka)) {
      if (t.name != config.kafka.budgets_topic && t.name != config.kafka.spend_topic &&
          t.name != config.kafka.alerts_topic && t.name != config.kafka.quality_topic &&
          t.name != config.kafka.router_updates_topic)
        continue;
      auto exists = topic_exists(config.kafka, kafka->bootstrap(), t.name);
      if (!exists) return report_error(exists.error());
      if (!*exists) topics.push_back(t);
    }
    if (!topics.empty()) {
      if (auto ok = create_topics_admin(config.kafka, kafka->bootstrap(), topics); !ok) return report_error(ok.error());
    }
  }
  LedgerStoreOptions store_options;
  store_options.dir = config.ledger.dir;
  store_options.dedupe_ttl_ms = config.ledger.dedupe_ttl_days * 86'400'000;
  auto store = LedgerStore::open(store_options);
  if (!store) return report_error(store.error());

  Config with_brokers = config;
  with_brokers.kafka.bootstrap = kafka->bootstrap();
  auto table = BudgetTable::open(with_brokers, kafka->bootstrap());
  if (!table) return report_error(table.error());
  if (auto restored = (*table)->restore(); !restored) return report_error(restored.error());
  if (auto ok = (*table)->start(); !ok) return report_error(ok.error());

  LedgerMetrics metrics;
  // Quality samples (docs/routing.md, "Quality sampling"): cascade_quality_score
  // per tenant, model and tier on the same /metrics. Read from the beginning,
  // like a global table, so a restart exports the whole retained history.
  QualityAggregator quality(metrics.registry().get());
  // The closed loop (docs/routing.md, "Closed loop"): calibration samples
  // move the tier cuts, published to kafka.topics.router_updates once the
  // quality topic is replayed.
  std::unique_ptr<RouterTuningService> tuning;
  if (config.quality.tuning.enabled) {
    auto service = RouterTuningService::start(config.kafka, kafka->bootstrap(), config.kafka.router_updates_topic,
                                              tuning_options(config.quality), metrics.registry().get());
    if (!service) return report_error(service.error());
    tuning = std::move(*service);
  }
  auto quality_follower = follow_quality_topic(config.kafka, kafka->bootstrap(), quality, tuning.get());
  if (!quality_follower) return report_error(quality_follower.error());

  auto monitor = BudgetMonitor::start(config.kafka, kafka->bootstrap(), **store, (*table)->book(), &metrics,
                                      budget_monitor_options(config));
  if (!monitor) return report_error(monitor.error());
  (*monitor)->refresh_all();

  // Open on loopback; on any other address only admin keys get in.
  std::shared_ptr<ApiKeyTable> keys;
  std::unique_ptr<TopicFollower> keys_follower;
  std::function<bool(std::string_view)> is_admin_key;
  if (!is_loopback_listen(config.ledger.metrics_listen)) {
    keys = std::make_shared<ApiKeyTable>();
    auto follower = follow_api_keys(config.kafka, kafka->bootstrap(), config.kafka.api_keys_topic, keys);
    if (!follower) return report_error(follower.error());
    keys_follower = std::move(*follower);
    is_admin_key = [keys](std::string_view key) {
      const auto principal = keys->authenticate(key);
      return principal && principal->role == KeyRole::admin;
    };
    spdlog::info("ledger: {} is not a loopback address: its HTTP API and dashboard need an admin key",
                 config.ledger.metrics_listen);
  }
  auto http = LedgerHttpServer::start(config.ledger.metrics_listen, **store, &(*table)->book(), &metrics,
                                      config.catalog.baseline_model, &quality, is_admin_key);
  if (!http) return report_error(http.error());

  LedgerSinks sinks;
  sinks.store = store->get();
  sinks.metrics = &metrics;
  sinks.budgets = monitor->get();
  auto consumer = LedgerConsumer::start(config.kafka, kafka->bootstrap(), sinks, config.ledger.batch_max_events);
  if (!consumer) return report_error(consumer.error());
  spdlog::info("ledger: consuming {} as group {} into {}; dashboard http://{}/ (API /api/usage, metrics /metrics)",
               config.kafka.ledger_topic, config.kafka.ledger_group, config.ledger.dir, config.ledger.metrics_listen);

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  auto next_expiry = std::chrono::steady_clock::now();
  while (!g_stop.load()) {
    if (std::chrono::steady_clock::now() >= next_expiry) {
      next_expiry = std::chrono::steady_clock::now() + std::chrono::hours(1);
      if (auto n = (*store)->expire_seen(); !n) spdlog::warn("ledger: expiring request ids: {}", n.error().message);
      else if (*n > 0) spdlog::info("ledger: forgot {} request ids past the dedupe TTL", *n);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  (*consumer)->stop();
  (*monitor)->flush(5000);
  (*monitor)->stop();
  (*http)->stop();
  quality_follower->stop();
  if (tuning) tuning->flush(5000);
  (*table)->stop();
  auto rows = (*store)->usage({});
  if (rows) {
    const auto total = sum_rows(*rows);
    spdlog::info("ledger: {} requests, cost ${:.6f}, baseline ${:.6f}, savings ${:.6f}", total.requests,
                 total.cost_usd, total.baseline_cost_usd, total.savings_usd);
  }
  if (auto ok = (*store)->close(); !ok) return report_error(ok.error());
  return 0;
}

int savings_report(const Config& config, const ReportOptions& options) {
  const std::int64_t now = now_ms();
  std::int64_t since = 0;
  std::string window;
  if (!options.since.empty()) {
    auto parsed = parse_since(options.since, now);
    if (!parsed) {
      std::fprintf(stderr, "cascade report: --since '%s' is not 7d, 24h, 30m or YYYY-MM-DD\n", options.since.c_str());
      return 2;
    }
    since = *parsed;
    window = "since " + utc_day(since) + (options.since.find('-') == std::string::npos ? " (last " + options.since + ")" : "");
  }
  LedgerAggregator aggregator(since);
  auto read = read_ledger_topic(config.kafka, config.kafka.bootstrap, aggregator);
  if (!read) return report_error(read.error());
  SavingsReportOptions report;
  report.tenant = options.tenant;
  report.window = window;
  auto book = read_budget_book(config, false);
  if (!book) return report_error(book.error());
  // Budget use from the events themselves: exact, whatever the ledger consumer's state.
  for (auto status : (*book)->statuses(options.tenant, now)) {
    status.spent_daily_usd = aggregator.spend(status.budget.tenant, status.budget.scope, BudgetPeriod::daily, now);
    status.spent_monthly_usd = aggregator.spend(status.budget.tenant, status.budget.scope, BudgetPeriod::monthly, now);
    report.budgets.push_back(std::move(status));
  }
  // The judge's grades of the same window, beside the savings they qualify;
  // a missing quality topic (sampling never on) means nothing was graded.
  QualityAggregator quality;
  auto graded = read_topic_to_end(config.kafka, config.kafka.bootstrap, config.kafka.quality_topic,
                                  [&](const KafkaRecord& record) {
                                    if (record.tombstone()) return;
                                    auto event = parse_quality_event(record.payload());
                                    if (event && event->ts_ms >= since) quality.add(*event);
                                  });
  if (!graded) spdlog::debug("report: {} not read: {}", config.kafka.quality_topic, graded.error().message);
  report.quality = options.tenant.empty() ? quality.rows() : quality.rows(options.tenant);
  report.quality_by_day = options.tenant.empty() ? quality.daily() : quality.daily(options.tenant);
  if (options.baseline_grade != 0 && !(options.baseline_grade >= 1 && options.baseline_grade <= 5)) {
    std::fprintf(stderr, "cascade report: --baseline-grade must be a grade in [1, 5]\n");
    return 2;
  }
  report.baseline_grade = options.baseline_grade;
  std::cout << format_savings_report(aggregator, config.catalog.baseline_model, report);
  return 0;
}

int budget_set(const Config& config, const BudgetCommandOptions& options) {
  auto scope = scope_of(options);
  if (!scope) return report_error(scope.error());
  const int timeout_ms = std::max(options.timeout_s, 1) * 1000;
  if (options.clear) {
    if (auto ok = publish_budget_removal(config.kafka, config.kafka.bootstrap, options.tenant, *scope, timeout_ms); !ok)
      return report_error(ok.error());
    std::printf("removed the run-time budget of %s %s; the configured one (if any) applies again\n",
                options.tenant.c_str(), describe_scope(*scope).c_str());
    return 0;
  }
  if (options.daily_usd < 0 && options.monthly_usd < 0 && options.soft_percent < 0) {
    std::fprintf(stderr, "cascade budget set: give --daily, --monthly and/or --soft-percent (or --clear)\n");
    return 2;
  }
  if (options.soft_percent >= 0 && !(options.soft_percent > 0 && options.soft_percent <= 100)) {
    std::fprintf(stderr, "cascade budget set: --soft-percent must be in (0, 100]\n");
    return 2;
  }
  if (!options.model.empty()) {
    auto catalog = ModelCatalog::load(config.catalog);
    if (!catalog) return report_error(catalog.error());
    if (!catalog->find(options.model)) {
      std::fprintf(stderr, "cascade budget set: model '%s' is not in the model catalog\n", options.model.c_str());
      return 2;
    }
  }
  auto book = read_budget_book(config, false);
  if (!book) return report_error(book.error());
  // Flags left out keep their current value, so the record is always whole.
  Budget budget{options.tenant, *scope, (*book)->limits(options.tenant, *scope).value_or(BudgetLimits{})};
  if (options.daily_usd >= 0) budget.limits.daily_usd = options.daily_usd;
  if (options.monthly_usd >= 0) budget.limits.monthly_usd = options.monthly_usd;
  if (options.soft_percent > 0) budget.limits.soft_percent = options.soft_percent;
  if (auto ok = publish_budget(config.kafka, config.kafka.bootstrap, budget, timeout_ms); !ok)
    return report_error(ok.error());
  std::printf("budget of %s %s: daily %s, monthly %s, soft limit at %g%% (published to %s)\n", options.tenant.c_str(),
              describe_scope(*scope).c_str(),
              budget.limits.daily_usd > 0 ? money(budget.limits.daily_usd).c_str() : "none",
              budget.limits.monthly_usd > 0 ? money(budget.limits.monthly_usd).c_str() : "none",
              budget.limits.soft_percent, config.kafka.budgets_topic.c_str());
  return 0;
}

int budget_show(const Config& config, const BudgetCommandOptions& options) {
  auto book = read_budget_book(config, true);
  if (!book) return report_error(book.error());
  const std::int64_t now = now_ms();
  const auto statuses = (*book)->statuses(options.tenant, now);
  if (statuses.empty()) {
    std::printf("no budgets%s\n", options.tenant.empty() ? "" : (" for tenant " + options.tenant).c_str());
    return 0;
  }
  std::printf("%-16s %-24s %-8s %12s %12s %12s %12s %6s\n", "tenant", "scope", "source", "daily", "spent today",
              "monthly", "spent month", "soft");
  auto limit = [](double v) { return v > 0 ? money(v) : std::string("-"); };
  for (const auto& s : statuses) {
    const auto& b = s.budget;
    std::printf("%-16s %-24s %-8s %12s %12s %12s %12s %5g%%\n", b.tenant.c_str(), describe_scope(b.scope).c_str(),
                s.runtime ? "runtime" : "config", limit(b.limits.daily_usd).c_str(), money(s.spent_daily_usd).c_str(),
                limit(b.limits.monthly_usd).c_str(), money(s.spent_monthly_usd).c_str(), b.limits.soft_percent);
  }
  const std::int64_t seen = (*book)->ledger_seen_ms();
  if (seen > 0) {
    std::printf("spend as of %lld ms ago (UTC day %s, month %s)\n", static_cast<long long>(now - seen),
                utc_day(now).c_str(), period_id(BudgetPeriod::monthly, now).c_str());
  } else {
    std::printf("no spend state published yet (is `cascade ledger` running?)\n");
  }
  return 0;
}

int tuning_reset(const Config& config, const TuningCommandOptions& options) {
  if (options.tenant.empty()) return report_error(Error{ErrorCode::invalid_request, "tuning reset needs --tenant"});
  const TuningReset reset{options.tenant, options.key, now_ms()};
  if (auto ok = produce_record_and_wait(config.kafka, config.kafka.bootstrap, config.kafka.router_updates_topic,
                                        tuning_reset_key(reset.tenant, reset.key), encode_tuning_reset(reset),
                                        std::max(options.timeout_s, 1) * 1000);
      !ok)
    return report_error(ok.error());
  std::printf("reset %s of tenant %s: the ledger's tuner puts the cuts back to the configured ones and starts "
              "again from new samples (workers apply it when the ledger publishes it)\n",
              options.key.empty() ? "every key" : ("key " + options.key).c_str(), options.tenant.c_str());
  return 0;
}

int tuning_show(const Config& config, const TuningCommandOptions& options) {
  TunedCuts cuts;
  std::uint64_t malformed = 0;
  auto read = read_topic_to_end(config.kafka, config.kafka.bootstrap, config.kafka.router_updates_topic,
                                [&](const KafkaRecord& record) {
                                  std::optional<std::string_view> value;
                                  if (!record.tombstone()) value = record.payload();
                                  if (!cuts.apply(record.key(), value)) malformed++;
                                });
  if (!read) return report_error(read.error());
  const auto snapshot = cuts.snapshot();
  std::size_t shown = 0;
  std::printf("%-16s %-24s %-15s %-15s %5s %-30s %-30s\n", "tenant", "policy/preference", "small cut", "medium cut",
              "v", "small tier (vs reference)", "medium tier (vs reference)");
  auto evidence = [](const CutEvidence& e) {
    if (e.samples == 0) return std::string("no samples");
    char buffer[64];
    if (e.samples < 2) {  // no interval from one sample
      std::snprintf(buffer, sizeof buffer, "%.0f%% n=%zu", 100 * e.ratio, e.samples);
      return std::string(buffer);
    }
    std::snprintf(buffer, sizeof buffer, "%.0f%% [%.0f%%, %.0f%%] n=%zu", 100 * e.ratio, 100 * e.lower, 100 * e.upper,
                  e.samples);
    return std::string(buffer);
  };
  for (const auto& [tenant, keys] : *snapshot) {
    if (!options.tenant.empty() && tenant != options.tenant) continue;
    for (const auto& [key, r] : keys) {
      char small[32], medium[32];
      std::snprintf(small, sizeof small, "%.3f (was %.2f)", r.cuts.small, r.configured.small);
      std::snprintf(medium, sizeof medium, "%.3f (was %.2f)", r.cuts.medium, r.configured.medium);
      std::printf("%-16s %-24s %-15s %-15s %5llu %-30s %-30s\n", tenant.c_str(), key.c_str(), small, medium,
                  static_cast<unsigned long long>(r.version), evidence(r.small).c_str(), evidence(r.medium).c_str());
      std::printf("%-16s   target %.0f%% of the reference's judged quality; last decision: %s\n", "", 100 * r.target,
                  r.why.c_str());
      shown++;
    }
  }
  if (shown == 0)
    std::printf("no tuned cuts%s: the configured thresholds apply (quality.tuning.enabled and quality.calibration_rate "
                "turn the closed loop on)\n",
                options.tenant.empty() ? "" : (" for tenant " + options.tenant).c_str());
  if (malformed > 0) std::printf("(%llu malformed records skipped)\n", static_cast<unsigned long long>(malformed));
  return 0;
}

}  // namespace cascade::cli
