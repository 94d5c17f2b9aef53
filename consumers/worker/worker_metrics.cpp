#include "consumers/worker/worker_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <mutex>
#include <unordered_map>

#include "state/state.h"

namespace cascade {

struct WorkerMetrics::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& attempts =
      prometheus::BuildCounter()
          .Name("cascade_provider_attempts_total")
          .Help("Provider calls started by workers, by outcome (success, failure)")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& retries =
      prometheus::BuildCounter()
          .Name("cascade_provider_retries_total")
          .Help("Failed provider calls retried on the same model (before any delta was published)")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& fallbacks =
      prometheus::BuildCounter()
          .Name("cascade_provider_fallbacks_total")
          .Help("Requests moved off a model to the next in its fallback chain, by reason (error, breaker_open)")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& timeouts =
      prometheus::BuildCounter()
          .Name("cascade_provider_stream_timeouts_total")
          .Help("Provider streams cut by the worker: no first token in time, or idle too long")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& breaker =
      prometheus::BuildGauge()
          .Name("cascade_provider_breaker_state")
          .Help("Circuit breaker per provider and model: 0 closed, 1 half-open, 2 open")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter()
          .Name("cascade_worker_requests_total")
          .Help("Prompt events finished by workers, by outcome (final, error, rejected, replayed)")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& single_flight_joins =
      prometheus::BuildCounter()
          .Name("cascade_worker_single_flight_joins_total")
          .Help("Requests answered by an identical request already in flight (single flight): no upstream call")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& cache_hits =
      prometheus::BuildCounter()
          .Name("cascade_worker_cache_hits_total")
          .Help("Requests answered from the response cache, by kind (exact, semantic): no upstream call")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& semantic_embedding_failures =
      prometheus::BuildCounter()
          .Name("cascade_worker_semantic_embedding_failures_total")
          .Help("Semantic cache lookups that got no embedding from the embeddings endpoint and were misses, "
                "by reason (timeout, unavailable, provider_error, ...)")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& cascade =
      prometheus::BuildCounter()
          .Name("cascade_worker_cascade_total")
          .Help("Cascaded requests by what became of the cheap model's answer: outcome accepted (reason checked, "
                "judged, judge_failed, unchecked) or escalated to the next tier (reason refusal, empty, truncated, "
                "content_filter, not_json, judge_score, cheap_failed)")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& budget_decisions =
      prometheus::BuildCounter()
          .Name("cascade_worker_budget_decisions_total")
          .Help("Requests a budget acted on before any provider call: refused (budget_exceeded, or a stale "
                "spend state with limits.budget_max_state_age_ms) or downgraded (past a soft limit, moved to "
                "the cheapest tier)")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& judge_calls =
      prometheus::BuildCounter()
          .Name("cascade_worker_judge_calls_total")
          .Help("Calls made beside the answer: LLM-as-judge grades and the cascade's agreement answers, by "
                "purpose (cascade, quality, agreement) and outcome (graded, answered, error, timeout, unreadable, "
                "cancelled)")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& quality_samples =
      prometheus::BuildCounter()
          .Name("cascade_quality_samples_total")
          .Help("Quality samples of cheaper tiers' answers, by outcome: published (a quality event), failed "
                "(no grade: judge error, timeout, unreadable reply, judge unavailable), skipped "
                "(quality.max_in_flight grading calls already running)")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& cancelled =
      prometheus::BuildCounter()
          .Name("cascade_worker_cancelled_total")
          .Help("Requests ended with the error cancelled by a cancel event, by where they were: queued (the cancel "
                "came first), calling, waiting_for_slot, backing_off, checking, admitting, embedding, following")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& cancels_ignored =
      prometheus::BuildCounter()
          .Name("cascade_worker_cancels_ignored_total")
          .Help("Cancel events that ended no request, by reason: invalid, stale (older than "
                "worker.cancel_window_ms), completed (answered already), finished (ended already), wrong_tenant "
                "(not the request's tenant)")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& cancels_forgotten =
      prometheus::BuildCounter()
          .Name("cascade_worker_cancels_forgotten_total")
          .Help("Remembered cancels pushed out of an event loop's full table (worker.cancel_max_pending) before "
                "they expired: a request they cancel that is read later is answered")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& in_flight =
      prometheus::BuildGauge()
          .Name("cascade_worker_in_flight_requests")
          .Help("Requests in flight per worker event loop")
          .Register(*registry);

  // The state store and its changelog, set by record_state().
  prometheus::Family<prometheus::Gauge>& state_bytes =
      prometheus::BuildGauge()
          .Name("cascade_state_bytes")
          .Help("Logical bytes (keys + values) of the state store's entries, by class: cache (responses, "
                "embeddings, vectors; bounded by state.max_bytes) and completed (completed answers)")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& outbox_pending =
      prometheus::BuildGauge()
          .Name("cascade_state_outbox_pending")
          .Help("Local state changes not yet confirmed in the changelog topic (grows while Kafka is unreachable)")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& expired =
      prometheus::BuildCounter()
          .Name("cascade_state_expired_total")
          .Help("State entries removed by maintenance because their TTL passed")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& evicted =
      prometheus::BuildCounter()
          .Name("cascade_state_evicted_total")
          .Help("Unexpired cache entries evicted, oldest first, to keep the state under state.max_bytes")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& lag_messages =
      prometheus::BuildGauge()
          .Name("cascade_state_changelog_lag_messages")
          .Help("Changelog records not yet applied to this worker's store (sum over partitions of the last "
                "seen high watermark minus the next offset to apply)")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& replication_delay =
      prometheus::BuildGauge()
          .Name("cascade_state_changelog_replication_delay_ms")
          .Help("From another worker's write (the record's timestamp) to its apply here, for the last such record")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& foreign_apply_age =
      prometheus::BuildGauge()
          .Name("cascade_state_changelog_foreign_apply_age_ms")
          .Help("Time since a changelog record written by another worker was last applied here")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& applied =
      prometheus::BuildCounter()
          .Name("cascade_state_changelog_applied_total")
          .Help("Changelog records applied to this worker's store (its own records included)")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& malformed =
      prometheus::BuildCounter()
          .Name("cascade_state_changelog_malformed_total")
          .Help("Changelog records skipped as undecodable (a newer format, an unknown family)")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& publish_failures =
      prometheus::BuildCounter()
          .Name("cascade_state_changelog_publish_failures_total")
          .Help("Deliveries of local state changes to the changelog that failed (republished from the outbox)")
          .Register(*registry);

  // A counter that follows a running total kept elsewhere.
  struct TotalCounter {
    prometheus::Counter* counter = nullptr;
    std::uint64_t last = 0;
    void follow(prometheus::Family<prometheus::Counter>& family, std::uint64_t total) {
      if (!counter) counter = &family.Add({});
      // A total below the last one is a store opened anew: count from there.
      if (total > last) counter->Increment(static_cast<double>(total - last));
      last = total;
    }
  };
  std::mutex state_mu;
  TotalCounter expired_total, evicted_total, applied_total, malformed_total, publish_failures_total;
};

WorkerMetrics::WorkerMetrics() : impl_(std::make_unique<Impl>()) {}
WorkerMetrics::~WorkerMetrics() = default;

std::shared_ptr<prometheus::Registry> WorkerMetrics::registry() const { return impl_->registry; }

std::string WorkerMetrics::serialize() const {
  return prometheus::TextSerializer().Serialize(impl_->registry->Collect());
}

void WorkerMetrics::record_state(const StateStats& stats, const ChangelogLag* lag) {
  Impl& m = *impl_;
  std::lock_guard lock(m.state_mu);
  m.state_bytes.Add({{"class", "cache"}}).Set(static_cast<double>(stats.cache_bytes));
  m.state_bytes.Add({{"class", "completed"}}).Set(static_cast<double>(stats.completed_bytes));
  m.outbox_pending.Add({}).Set(static_cast<double>(stats.outbox_pending));
  m.expired_total.follow(m.expired, stats.expired_total);
  m.evicted_total.follow(m.evicted, stats.evicted_total);
  if (!lag) return;
  m.lag_messages.Add({}).Set(static_cast<double>(lag->messages_behind));
  if (lag->last_foreign_delay_ms >= 0) m.replication_delay.Add({}).Set(static_cast<double>(lag->last_foreign_delay_ms));
  if (lag->ms_since_foreign_apply >= 0) m.foreign_apply_age.Add({}).Set(static_cast<double>(lag->ms_since_foreign_apply));
  m.applied_total.follow(m.applied, lag->applied);
  m.malformed_total.follow(m.malformed, lag->malformed);
  m.publish_failures_total.follow(m.publish_failures, lag->publish_failures);
}

StateMetricsSampler::StateMetricsSampler(WorkerMetrics& metrics, const StateStore& store,
                                         const StateChangelog* changelog, std::chrono::milliseconds interval)
    : metrics_(metrics), store_(store), changelog_(changelog) {
  sample();
  thread_ = std::thread([this, interval] {
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, interval, [this] { return stop_; })) {
      lock.unlock();
      sample();
      lock.lock();
    }
  });
}

StateMetricsSampler::~StateMetricsSampler() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void StateMetricsSampler::sample() {
  const StateStats stats = store_.stats();
  if (!changelog_) {
    metrics_.record_state(stats, nullptr);
    return;
  }
  const ChangelogLag lag = changelog_->lag();
  metrics_.record_state(stats, &lag);
}

struct WorkerMetrics::Recorder::Cache {
  std::unordered_map<std::string, prometheus::Counter*> counters;
  std::unordered_map<std::string, prometheus::Gauge*> gauges;
};

WorkerMetrics::Recorder::Recorder(WorkerMetrics& metrics) : metrics_(metrics), cache_(std::make_unique<Cache>()) {}
WorkerMetrics::Recorder::~Recorder() = default;

namespace {
// One cache key per family and label values ('\x1f' cannot appear in names).
std::string key(const char* family, std::initializer_list<const std::string*> parts) {
  std::string k(family);
  for (const auto* p : parts) {
    k.push_back('\x1f');
    k += *p;
  }
  return k;
}
}  // namespace

void WorkerMetrics::Recorder::attempt(const std::string& provider, const std::string& model, bool success) {
  static const std::string ok = "success", bad = "failure";
  const std::string& outcome = success ? ok : bad;
  auto& c = cache_->counters[key("a", {&provider, &model, &outcome})];
  if (!c) c = &metrics_.impl_->attempts.Add({{"provider", provider}, {"model", model}, {"outcome", outcome}});
  c->Increment();
}

void WorkerMetrics::Recorder::retry(const std::string& provider, const std::string& model) {
  auto& c = cache_->counters[key("r", {&provider, &model})];
  if (!c) c = &metrics_.impl_->retries.Add({{"provider", provider}, {"model", model}});
  c->Increment();
}

void WorkerMetrics::Recorder::fallback(const std::string& provider, const std::string& model, const std::string& why) {
  auto& c = cache_->counters[key("f", {&provider, &model, &why})];
  if (!c) c = &metrics_.impl_->fallbacks.Add({{"provider", provider}, {"model", model}, {"reason", why}});
  c->Increment();
}

void WorkerMetrics::Recorder::timeout(const std::string& provider, const std::string& kind) {
  auto& c = cache_->counters[key("t", {&provider, &kind})];
  if (!c) c = &metrics_.impl_->timeouts.Add({{"provider", provider}, {"kind", kind}});
  c->Increment();
}

void WorkerMetrics::Recorder::breaker_state(const std::string& provider, const std::string& model, int state) {
  auto& g = cache_->gauges[key("b", {&provider, &model})];
  if (!g) g = &metrics_.impl_->breaker.Add({{"provider", provider}, {"model", model}});
  g->Set(state);
}

void WorkerMetrics::Recorder::request(const std::string& outcome) {
  auto& c = cache_->counters[key("q", {&outcome})];
  if (!c) c = &metrics_.impl_->requests.Add({{"outcome", outcome}});
  c->Increment();
}

void WorkerMetrics::Recorder::single_flight_join() {
  auto& c = cache_->counters["s"];
  if (!c) c = &metrics_.impl_->single_flight_joins.Add({});
  c->Increment();
}

void WorkerMetrics::Recorder::cache_hit(const std::string& kind) {
  auto& c = cache_->counters[key("c", {&kind})];
  if (!c) c = &metrics_.impl_->cache_hits.Add({{"kind", kind}});
  c->Increment();
}

void WorkerMetrics::Recorder::semantic_embedding_failure(const std::string& reason) {
  auto& c = cache_->counters[key("e", {&reason})];
  if (!c) c = &metrics_.impl_->semantic_embedding_failures.Add({{"reason", reason}});
  c->Increment();
}

void WorkerMetrics::Recorder::cascade(const std::string& outcome, const std::string& reason) {
  auto& c = cache_->counters[key("k", {&outcome, &reason})];
  if (!c) c = &metrics_.impl_->cascade.Add({{"outcome", outcome}, {"reason", reason}});
  c->Increment();
}

void WorkerMetrics::Recorder::budget(const std::string& outcome) {
  auto& c = cache_->counters[key("d", {&outcome})];
  if (!c) c = &metrics_.impl_->budget_decisions.Add({{"outcome", outcome}});
  c->Increment();
}

void WorkerMetrics::Recorder::judge_call(const std::string& purpose, const std::string& outcome) {
  auto& c = cache_->counters[key("j", {&purpose, &outcome})];
  if (!c) c = &metrics_.impl_->judge_calls.Add({{"purpose", purpose}, {"outcome", outcome}});
  c->Increment();
}

void WorkerMetrics::Recorder::quality_sample(const std::string& outcome) {
  auto& c = cache_->counters[key("g", {&outcome})];
  if (!c) c = &metrics_.impl_->quality_samples.Add({{"outcome", outcome}});
  c->Increment();
}

void WorkerMetrics::Recorder::cancelled(const std::string& where) {
  auto& c = cache_->counters[key("x", {&where})];
  if (!c) c = &metrics_.impl_->cancelled.Add({{"where", where}});
  c->Increment();
}

void WorkerMetrics::Recorder::cancel_ignored(const std::string& reason) {
  auto& c = cache_->counters[key("y", {&reason})];
  if (!c) c = &metrics_.impl_->cancels_ignored.Add({{"reason", reason}});
  c->Increment();
}

void WorkerMetrics::Recorder::cancels_forgotten(std::size_t n) {
  auto& c = cache_->counters["z"];
  if (!c) c = &metrics_.impl_->cancels_forgotten.Add({});
  c->Increment(static_cast<double>(n));
}

void WorkerMetrics::Recorder::in_flight(int loop, double value) {
  const std::string loop_name = std::to_string(loop);
  auto& g = cache_->gauges[key("i", {&loop_name})];
  if (!g) g = &metrics_.impl_->in_flight.Add({{"loop", loop_name}});
  g->Set(value);
}

}  // namespace cascade
