#include "consumers/worker/worker_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <unordered_map>

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
  prometheus::Family<prometheus::Gauge>& in_flight =
      prometheus::BuildGauge()
          .Name("cascade_worker_in_flight_requests")
          .Help("Requests in flight per worker event loop")
          .Register(*registry);
};

WorkerMetrics::WorkerMetrics() : impl_(std::make_unique<Impl>()) {}
WorkerMetrics::~WorkerMetrics() = default;

std::shared_ptr<prometheus::Registry> WorkerMetrics::registry() const { return impl_->registry; }

std::string WorkerMetrics::serialize() const {
  return prometheus::TextSerializer().Serialize(impl_->registry->Collect());
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

void WorkerMetrics::Recorder::in_flight(int loop, double value) {
  const std::string loop_name = std::to_string(loop);
  auto& g = cache_->gauges[key("i", {&loop_name})];
  if (!g) g = &metrics_.impl_->in_flight.Add({{"loop", loop_name}});
  g->Set(value);
}

}  // namespace cascade
