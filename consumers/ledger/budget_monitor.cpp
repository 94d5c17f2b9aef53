#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <thread>

#include "consumers/ledger/ledger.h"
#include "kafka/kafka.h"

namespace cascade {

namespace {

using Clock = std::chrono::steady_clock;

std::int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What a produced record was, for its delivery report.
struct Delivery {
  enum Kind { spend, heartbeat, alert } kind = spend;
  std::string tenant;
  std::string scope;
  std::uint64_t outbox_seq = 0;
};

struct WebhookItem {
  std::uint64_t seq = 0;
  BudgetAlert alert;
  int attempts = 0;
  Clock::time_point due = Clock::now();
};

size_t discard_body(char*, size_t size, size_t n, void*) { return size * n; }

enum class PostOutcome { delivered, retry, give_up };

PostOutcome post_webhook(const std::string& url, const std::string& body, int timeout_ms, std::string& detail) {
  CURL* curl = curl_easy_init();
  if (!curl) {
    detail = "curl_easy_init failed";
    return PostOutcome::retry;
  }
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    detail = curl_easy_strerror(rc);
    return PostOutcome::retry;
  }
  if (status >= 200 && status < 300) return PostOutcome::delivered;
  detail = "HTTP " + std::to_string(status);
  // The receiver refuses this request for good (a removed Slack hook: 404,
  // a bad payload: 400); only timeouts, rate limits and server errors pass.
  if (status >= 400 && status < 500 && status != 408 && status != 429) return PostOutcome::give_up;
  return PostOutcome::retry;
}

}  // namespace

BudgetMonitorOptions budget_monitor_options(const Config& config) {
  BudgetMonitorOptions o;
  o.thresholds_percent = config.alerts.thresholds_percent;
  o.webhook_url = config.alerts.webhook_url;
  if (!config.alerts.webhook_url_env.empty()) {
    if (const char* url = std::getenv(config.alerts.webhook_url_env.c_str()); url && *url) o.webhook_url = url;
  }
  o.webhook_timeout_ms = config.alerts.webhook_timeout_ms;
  o.webhook_max_attempts = config.alerts.webhook_max_attempts;
  o.webhook_backoff_base_ms = config.alerts.webhook_backoff_base_ms;
  o.webhook_backoff_cap_ms = config.alerts.webhook_backoff_cap_ms;
  o.heartbeat_ms = config.ledger.spend_heartbeat_ms;
  return o;
}

struct BudgetMonitor::Impl {
  LedgerStore* store = nullptr;
  const BudgetBook* book = nullptr;
  LedgerMetrics* metrics = nullptr;
  BudgetMonitorOptions options;
  std::string spend_topic;
  std::string alerts_topic;
  std::unique_ptr<KafkaProducer> producer;

  std::mutex eval_mu;  // one evaluation at a time: a threshold is never fired twice

  std::mutex mu;  // guards everything below
  std::condition_variable cv;
  std::set<std::pair<std::string, std::string>> dirty_spend;  // failed spend deliveries, republished
  std::vector<std::pair<std::uint64_t, BudgetAlert>> kafka_retry;
  std::deque<WebhookItem> webhook_queue;
  std::size_t webhook_busy = 0;
  std::size_t kafka_alerts_pending = 0;
  bool stopping = false;

  std::atomic<std::uint64_t> fired{0};
  std::atomic<std::uint64_t> attempts{0};
  std::atomic<std::uint64_t> delivered{0};
  std::thread publisher;
  std::thread webhook;
  std::mt19937_64 rng{std::random_device{}()};

  std::int64_t now() const { return options.now_ms ? options.now_ms() : system_now_ms(); }

  // `d` travels as the record's token and comes back in its delivery report.
  void produce(const std::string& topic, const std::string& key, const std::string& value, Delivery* d) {
    auto queued = producer->produce(
        topic, {.key = key, .value = value, .token = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(d))});
    if (!queued || *queued == KafkaProducer::Enqueued::queue_full) {
      // Not even queued: handled as a failed delivery.
      const std::string error = queued ? "the producer's queue is full" : queued.error().message;
      spdlog::warn("ledger: cannot queue a record for {}: {}", topic, error);
      on_delivery(d, error);
    }
  }

  void publish_spend(const std::string& tenant, const std::string& scope) {
    const std::int64_t t = now();
    for (BudgetPeriod period : kBudgetPeriods) {
      SpendRecord r;
      r.tenant = tenant;
      r.scope = scope;
      r.period = period;
      r.period_id = period_id(period, t);
      r.spend_usd = store->spend(tenant, scope, period, r.period_id);
      r.requests = store->spend_requests(tenant, scope, period, r.period_id);
      r.updated_ms = t;
      produce(spend_topic, spend_record_key(tenant, scope, period), encode_spend_record(r),
              new Delivery{Delivery::spend, tenant, scope, 0});
    }
  }

  void publish_alert(std::uint64_t seq, const BudgetAlert& alert) {
    {
      std::lock_guard lock(mu);
      ++kafka_alerts_pending;
    }
    produce(alerts_topic, alert.tenant, alert.to_json(), new Delivery{Delivery::alert, alert.tenant, alert.scope, seq});
  }

  // Delivery report (KafkaProducer::poll on the publisher thread, or at once
  // when not queued). `error` is "" when delivered.
  void on_delivery(Delivery* d, std::string_view error) {
    std::unique_ptr<Delivery> owned(d);
    if (!d) return;
    const bool failed = !error.empty();
    if (d->kind == Delivery::spend) {
      if (failed) {
        std::lock_guard lock(mu);
        dirty_spend.insert({d->tenant, d->scope});
      }
      return;
    }
    if (d->kind != Delivery::alert) return;
    if (!failed) {
      if (auto ok = store->remove_outbox(d->outbox_seq); !ok)
        spdlog::warn("ledger: alert outbox: {}", ok.error().message);
      if (metrics) metrics->count_alert_delivery("kafka", "delivered");
      std::lock_guard lock(mu);
      --kafka_alerts_pending;
      cv.notify_all();
      return;
    }
    spdlog::warn("ledger: alert for {} not delivered to {}: {}; retrying", d->tenant, alerts_topic, error);
    if (metrics) metrics->count_alert_delivery("kafka", "retried");
    auto items = store->outbox();
    std::lock_guard lock(mu);
    --kafka_alerts_pending;
    if (items) {
      for (const auto& item : *items)
        if (item.seq == d->outbox_seq) kafka_retry.emplace_back(item.seq, item.alert);
    }
  }

  void evaluate(const std::string& tenant, const std::string& scope) {
    const auto limits = book->limits(tenant, scope);
    if (!limits) return;
    const std::int64_t t = now();
    std::lock_guard eval(eval_mu);
    for (BudgetPeriod period : kBudgetPeriods) {
      const double limit = limits->limit(period);
      if (limit <= 0) continue;
      const std::string id = period_id(period, t);
      const double spent = store->spend(tenant, scope, period, id);
      if (metrics) metrics->set_budget(tenant, scope, period, spent, limit);
      std::vector<BudgetAlert> fired;
      BudgetAlert highest;
      bool any = false;
      for (double threshold : options.thresholds_percent) {
        // Spend is a sum of many doubles: $0.7999999999999999 of $1 has crossed 80%.
        if (spent + 1e-9 * std::max(limit, 1.0) < limit * threshold / 100.0) continue;
        BudgetAlert alert{tenant, scope, period, id, threshold, spent, limit, t};
        if (store->alert_fired(alert)) continue;
        fired.push_back(alert);
        if (!any || threshold > highest.threshold_percent) highest = alert;
        any = true;
      }
      if (!any) continue;
      // Every threshold crossed is marked fired; one alert says the highest,
      // so a jump from 40% to 120% is one message, not three.
      std::vector<std::pair<std::string, BudgetAlert>> deliver{{"kafka", highest}};
      if (!options.webhook_url.empty()) deliver.emplace_back("webhook", highest);
      auto seqs = store->record_alerts(fired, deliver);
      if (!seqs) {
        spdlog::error("ledger: cannot record budget alert for {}: {}; evaluated again later", tenant,
                      seqs.error().message);
        continue;
      }
      ++this->fired;
      if (metrics) metrics->count_alert(highest);
      spdlog::info("ledger: budget alert: {}", highest.text());
      publish_alert((*seqs)[0], highest);
      if (seqs->size() > 1) enqueue_webhook((*seqs)[1], highest);
    }
  }

  void enqueue_webhook(std::uint64_t seq, const BudgetAlert& alert) {
    std::lock_guard lock(mu);
    webhook_queue.push_back({seq, alert, 0, Clock::now()});
    cv.notify_all();
  }

  void evaluate_all() {
    for (const auto& status : book->statuses("", now())) evaluate(status.budget.tenant, status.budget.scope);
  }

  void run_publisher() {
    auto next_heartbeat = Clock::now();
    for (;;) {
      {
        std::unique_lock lock(mu);
        if (stopping) break;
      }
      producer->poll(50);
      std::set<std::pair<std::string, std::string>> dirty;
      std::vector<std::pair<std::uint64_t, BudgetAlert>> retry;
      {
        std::lock_guard lock(mu);
        dirty.swap(dirty_spend);
        retry.swap(kafka_retry);
      }
      for (const auto& [tenant, scope] : dirty) publish_spend(tenant, scope);
      for (const auto& [seq, alert] : retry) publish_alert(seq, alert);
      if (Clock::now() >= next_heartbeat) {
        next_heartbeat = Clock::now() + std::chrono::milliseconds(options.heartbeat_ms);
        produce(spend_topic, std::string(kSpendHeartbeatKey), encode_spend_heartbeat(now()),
                new Delivery{Delivery::heartbeat, "", "", 0});
        // A budget lowered at run time, or a new period, is evaluated here
        // even when its tenant spends nothing more.
        evaluate_all();
      }
    }
  }

  void run_webhook() {
    std::unique_lock lock(mu);
    while (!stopping) {
      if (webhook_queue.empty()) {
        cv.wait(lock);
        continue;
      }
      // In order: a later alert waits behind one being retried, so a channel
      // never reads 80% before 50%.
      if (webhook_queue.front().due > Clock::now()) {
        cv.wait_until(lock, webhook_queue.front().due);
        continue;
      }
      WebhookItem item = std::move(webhook_queue.front());
      webhook_queue.pop_front();
      ++webhook_busy;
      lock.unlock();

      const std::string body =
          nlohmann::json{{"text", item.alert.text()}, {"alert", nlohmann::json::parse(item.alert.to_json())}}.dump();
      std::string detail;
      ++attempts;
      ++item.attempts;
      const PostOutcome outcome = post_webhook(options.webhook_url, body, options.webhook_timeout_ms, detail);
      bool done = outcome != PostOutcome::retry || item.attempts >= options.webhook_max_attempts;
      if (outcome == PostOutcome::delivered) {
        ++delivered;
        if (metrics) metrics->count_alert_delivery("webhook", "delivered");
      } else if (done) {
        spdlog::error("ledger: budget alert webhook gave up after {} attempt(s): {} (alert: {})", item.attempts,
                      detail, item.alert.text());
        if (metrics) metrics->count_alert_delivery("webhook", "failed");
      } else {
        if (metrics) metrics->count_alert_delivery("webhook", "retried");
        // Exponential backoff with full jitter.
        const double ceiling = std::min<double>(options.webhook_backoff_cap_ms,
                                                options.webhook_backoff_base_ms * std::pow(2.0, item.attempts - 1));
        const auto wait_ms = static_cast<std::int64_t>(std::uniform_real_distribution<double>(0, ceiling)(rng));
        spdlog::warn("ledger: budget alert webhook attempt {} failed: {}; retrying in {} ms", item.attempts, detail,
                     wait_ms);
        item.due = Clock::now() + std::chrono::milliseconds(wait_ms);
      }
      if (done) {
        if (auto ok = store->remove_outbox(item.seq); !ok) spdlog::warn("ledger: alert outbox: {}", ok.error().message);
      }
      lock.lock();
      --webhook_busy;
      if (!done) webhook_queue.push_front(std::move(item));
      cv.notify_all();
    }
  }
};

Result<std::unique_ptr<BudgetMonitor>> BudgetMonitor::start(const KafkaConfig& kafka, const std::string& bootstrap,
                                                             LedgerStore& store, const BudgetBook& budgets,
                                                             LedgerMetrics* metrics, BudgetMonitorOptions options) {
  auto monitor = std::unique_ptr<BudgetMonitor>(new BudgetMonitor());
  monitor->impl_ = std::make_unique<Impl>();
  Impl& m = *monitor->impl_;
  m.store = &store;
  m.book = &budgets;
  m.metrics = metrics;
  m.options = std::move(options);
  std::ranges::sort(m.options.thresholds_percent);
  m.spend_topic = kafka.spend_topic;
  m.alerts_topic = kafka.alerts_topic;

  auto producer = KafkaProducer::create(
      kafka, bootstrap,
      {.java_partitioner = true, .on_delivery = [&m](const DeliveryReport& report) {
         m.on_delivery(reinterpret_cast<Delivery*>(static_cast<std::uintptr_t>(report.token)),
                       report.delivered ? std::string_view() : report.error);
       }});
  if (!producer) return std::unexpected(producer.error());
  m.producer = std::move(*producer);

  // Deliveries a previous run left undone.
  auto pending = store.outbox();
  if (!pending) return std::unexpected(pending.error());
  for (const auto& item : *pending) {
    if (item.sink == "kafka") {
      m.publish_alert(item.seq, item.alert);
    } else if (item.sink == "webhook" && !m.options.webhook_url.empty()) {
      m.enqueue_webhook(item.seq, item.alert);
    } else if (auto ok = store.remove_outbox(item.seq); !ok) {
      return std::unexpected(ok.error());
    }
  }
  m.publisher = std::thread([&m] { m.run_publisher(); });
  m.webhook = std::thread([&m] { m.run_webhook(); });
  return monitor;
}

BudgetMonitor::~BudgetMonitor() { stop(); }

void BudgetMonitor::on_batch(const std::set<std::pair<std::string, std::string>>& touched) {
  for (const auto& [tenant, scope] : touched) {
    impl_->publish_spend(tenant, scope);
    impl_->evaluate(tenant, scope);
  }
}

void BudgetMonitor::refresh_all() {
  const std::int64_t t = impl_->now();
  std::set<std::pair<std::string, std::string>> keys;
  for (BudgetPeriod period : kBudgetPeriods) {
    if (auto spenders = impl_->store->spenders(period, period_id(period, t))) keys.insert(spenders->begin(), spenders->end());
  }
  for (const auto& [tenant, scope] : keys) impl_->publish_spend(tenant, scope);
  impl_->evaluate_all();
}

bool BudgetMonitor::flush(int timeout_ms) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    impl_->producer->flush(50);
    {
      std::lock_guard lock(impl_->mu);
      if (impl_->dirty_spend.empty() && impl_->kafka_retry.empty() && impl_->webhook_queue.empty() &&
          impl_->webhook_busy == 0 && impl_->kafka_alerts_pending == 0 &&
          impl_->producer->queued() == 0)
        return true;
    }
    if (Clock::now() > deadline) return false;
  }
}

void BudgetMonitor::stop() {
  if (!impl_) return;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
    impl_->cv.notify_all();
  }
  if (impl_->publisher.joinable()) impl_->publisher.join();
  if (impl_->webhook.joinable()) impl_->webhook.join();
  impl_->producer->flush(5000);
  // Records still queued are dropped with their Delivery; their outbox
  // entries stay for the next run.
  impl_->producer->purge();
}

std::uint64_t BudgetMonitor::alerts_fired() const { return impl_->fired.load(); }
std::uint64_t BudgetMonitor::webhook_attempts() const { return impl_->attempts.load(); }
std::uint64_t BudgetMonitor::webhook_delivered() const { return impl_->delivered.load(); }

}  // namespace cascade
