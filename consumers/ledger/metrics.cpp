#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <sstream>
#include <string_view>
#include <tuple>

#include "consumers/ledger/ledger.h"

namespace cascade {

namespace {

// LLM calls span a cached answer in milliseconds to a long generation in
// minutes; the buckets are roughly logarithmic over that range.
const prometheus::Histogram::BucketBoundaries kLatencyBucketsSeconds = {
    0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120};
// The first token arrives much sooner than the last, so TTFT starts finer.
const prometheus::Histogram::BucketBoundaries kTtftBucketsSeconds = {
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120};

double ms_to_seconds(double ms) { return std::max(ms, 0.0) / 1000.0; }

}  // namespace

struct LedgerMetrics::Impl {
  // Every time series of one {tenant, model, provider, cache} label set.
  struct SeriesHandles {
    prometheus::Counter* requests;
    prometheus::Counter* cost_usd;
    prometheus::Counter* baseline_cost_usd;
    prometheus::Counter* savings_usd;
    prometheus::Counter* extra_cost_usd;
    prometheus::Counter* input_tokens;
    prometheus::Counter* output_tokens;
    prometheus::Counter* cached_tokens;
    prometheus::Histogram* latency_seconds;
    prometheus::Histogram* ttft_seconds;
  };
  using LabelKey = std::tuple<std::string, std::string, std::string, std::string>;
  using LabelView = std::tuple<std::string_view, std::string_view, std::string_view, std::string_view>;

  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();

  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter()
          .Name("cascade_requests_total")
          .Help("Completed LLM requests recorded by the ledger (cache hits included).")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& cost_usd =
      prometheus::BuildCounter()
          .Name("cascade_cost_usd_total")
          .Help("Money actually spent on LLM providers, in US dollars (0 for cache hits).")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& baseline_cost_usd =
      prometheus::BuildCounter()
          .Name("cascade_baseline_cost_usd_total")
          .Help("What the same requests would have cost on the baseline model without cache, in US dollars.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& savings_usd =
      prometheus::BuildCounter()
          .Name("cascade_savings_usd_total")
          .Help("Money saved against the baseline model, in US dollars; only requests that cost less than "
                "the baseline count here (see cascade_extra_cost_usd_total for the others).")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& extra_cost_usd =
      prometheus::BuildCounter()
          .Name("cascade_extra_cost_usd_total")
          .Help("Money spent above the baseline model, in US dollars, for requests routed to a model "
                "dearer than the baseline (negative savings; a counter cannot decrease). "
                "Net savings = cascade_savings_usd_total - cascade_extra_cost_usd_total.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& tokens =
      prometheus::BuildCounter()
          .Name("cascade_tokens_total")
          .Help("Tokens billed, by direction: input (all prompt tokens), output (generated tokens), "
                "cached (the part of input billed at the cached-input price).")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& latency_seconds =
      prometheus::BuildHistogram()
          .Name("cascade_request_latency_seconds")
          .Help("Time from taking a request to its final answer, in seconds.")
          .Register(*registry);
  prometheus::Family<prometheus::Histogram>& ttft_seconds =
      prometheus::BuildHistogram()
          .Name("cascade_ttft_seconds")
          .Help("Time from taking a request to its first answer token, in seconds.")
          .Register(*registry);

  // Per routing policy / experiment arm: a family of its own, so policies do
  // not multiply the {tenant, model, provider, cache} series above.
  prometheus::Family<prometheus::Counter>& policy_requests =
      prometheus::BuildCounter()
          .Name("cascade_policy_requests_total")
          .Help("Requests routed under a routing policy or experiment arm (docs/routing.md, \"Policies\").")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& policy_cost_usd =
      prometheus::BuildCounter()
          .Name("cascade_policy_cost_usd_total")
          .Help("Money spent on requests routed under a routing policy or experiment arm, in US dollars.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& policy_baseline_cost_usd =
      prometheus::BuildCounter()
          .Name("cascade_policy_baseline_cost_usd_total")
          .Help("Baseline-model cost of the requests routed under a routing policy or experiment arm, in US "
                "dollars (savings = this - cascade_policy_cost_usd_total).")
          .Register(*registry);

  prometheus::Family<prometheus::Counter>& ledger_events =
      prometheus::BuildCounter()
          .Name("cascade_ledger_events_total")
          .Help("Cost events read by the ledger, by outcome: applied (counted), duplicate (request id seen "
                "before), stale (older than ledger.dedupe_ttl_days, refused), invalid, malformed.")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& budget_spend =
      prometheus::BuildGauge()
          .Name("cascade_budget_spend_usd")
          .Help("Spend in the current budget period (UTC day or month) of a tenant, model or tag budget, in USD.")
          .Register(*registry);
  prometheus::Family<prometheus::Gauge>& budget_limit =
      prometheus::BuildGauge()
          .Name("cascade_budget_limit_usd")
          .Help("Limit of a budget for its period, in USD.")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& budget_alerts =
      prometheus::BuildCounter()
          .Name("cascade_budget_alerts_total")
          .Help("Budget threshold alerts fired (each once per budget, period and threshold).")
          .Register(*registry);
  prometheus::Family<prometheus::Counter>& alert_deliveries =
      prometheus::BuildCounter()
          .Name("cascade_budget_alert_deliveries_total")
          .Help("Alert deliveries by sink (kafka, webhook) and outcome (delivered, retried, failed).")
          .Register(*registry);

  std::mutex mu;
  // std::map: handles keep their address, and std::less<> lets a lookup use
  // the event's strings without building a key.
  std::map<LabelKey, SeriesHandles, std::less<>> series;
  struct PolicyHandles {
    prometheus::Counter* requests;
    prometheus::Counter* cost_usd;
    prometheus::Counter* baseline_cost_usd;
  };
  std::map<std::tuple<std::string, std::string>, PolicyHandles, std::less<>> policy_series;

  PolicyHandles& policy_handles_for(const CostEvent& event) {
    std::lock_guard lock(mu);
    if (auto it = policy_series.find(std::tuple<std::string_view, std::string_view>{event.tenant, event.policy});
        it != policy_series.end())
      return it->second;
    const prometheus::Labels labels{{"tenant", event.tenant}, {"policy", event.policy}};
    PolicyHandles handles{&policy_requests.Add(labels), &policy_cost_usd.Add(labels),
                          &policy_baseline_cost_usd.Add(labels)};
    return policy_series.emplace(std::tuple{event.tenant, event.policy}, handles).first->second;
  }

  SeriesHandles& handles_for(const CostEvent& event) {
    std::string_view cache = to_string(event.cache);
    LabelView view{event.tenant, event.model, event.provider, cache};
    std::lock_guard lock(mu);
    if (auto it = series.find(view); it != series.end()) return it->second;

    const prometheus::Labels labels{{"tenant", event.tenant},
                                    {"model", event.model},
                                    {"provider", event.provider},
                                    {"cache", std::string(cache)}};
    auto with_direction = [&](const char* direction) {
      prometheus::Labels extended = labels;
      extended.emplace("direction", direction);
      return extended;
    };
    SeriesHandles handles{
        .requests = &requests.Add(labels),
        .cost_usd = &cost_usd.Add(labels),
        .baseline_cost_usd = &baseline_cost_usd.Add(labels),
        .savings_usd = &savings_usd.Add(labels),
        .extra_cost_usd = &extra_cost_usd.Add(labels),
        .input_tokens = &tokens.Add(with_direction("input")),
        .output_tokens = &tokens.Add(with_direction("output")),
        .cached_tokens = &tokens.Add(with_direction("cached")),
        .latency_seconds = &latency_seconds.Add(labels, kLatencyBucketsSeconds),
        .ttft_seconds = &ttft_seconds.Add(labels, kTtftBucketsSeconds),
    };
    return series
        .emplace(LabelKey{event.tenant, event.model, event.provider, std::string(cache)}, handles)
        .first->second;
  }
};

LedgerMetrics::LedgerMetrics() : impl_(std::make_unique<Impl>()) {}
LedgerMetrics::~LedgerMetrics() = default;

void LedgerMetrics::record(const CostEvent& event) {
  // Counters and histograms are thread-safe themselves; only the handle map
  // needs the lock.
  Impl::SeriesHandles& handles = impl_->handles_for(event);
  handles.requests->Increment();
  // prometheus-cpp silently drops negative increments; values here are
  // non-negative by construction except savings, which is split below.
  handles.cost_usd->Increment(std::max(event.cost_usd, 0.0));
  handles.baseline_cost_usd->Increment(std::max(event.baseline_cost_usd, 0.0));
  if (event.savings_usd >= 0) {
    handles.savings_usd->Increment(event.savings_usd);
  } else {
    handles.extra_cost_usd->Increment(-event.savings_usd);
  }
  handles.input_tokens->Increment(static_cast<double>(std::max<std::int64_t>(event.usage.input_tokens, 0)));
  handles.output_tokens->Increment(static_cast<double>(std::max<std::int64_t>(event.usage.output_tokens, 0)));
  handles.cached_tokens->Increment(static_cast<double>(std::max<std::int64_t>(event.usage.cached_tokens, 0)));
  handles.latency_seconds->Observe(ms_to_seconds(event.latency_ms));
  handles.ttft_seconds->Observe(ms_to_seconds(event.ttft_ms));
  if (!event.policy.empty()) {
    Impl::PolicyHandles& policy = impl_->policy_handles_for(event);
    policy.requests->Increment();
    policy.cost_usd->Increment(std::max(event.cost_usd, 0.0));
    policy.baseline_cost_usd->Increment(std::max(event.baseline_cost_usd, 0.0));
  }
}

void LedgerMetrics::count_events(std::string_view outcome, std::uint64_t n) {
  if (n == 0) return;
  impl_->ledger_events.Add({{"outcome", std::string(outcome)}}).Increment(static_cast<double>(n));
}

void LedgerMetrics::set_budget(const std::string& tenant, const std::string& scope, BudgetPeriod period,
                               double spend_usd, double limit_usd) {
  const prometheus::Labels labels{{"tenant", tenant}, {"scope", scope}, {"period", std::string(to_string(period))}};
  impl_->budget_spend.Add(labels).Set(spend_usd);
  impl_->budget_limit.Add(labels).Set(limit_usd);
}

void LedgerMetrics::count_alert(const BudgetAlert& alert) {
  char threshold[32];
  std::snprintf(threshold, sizeof threshold, "%g", alert.threshold_percent);
  impl_->budget_alerts
      .Add({{"tenant", alert.tenant}, {"period", std::string(to_string(alert.period))}, {"threshold", threshold}})
      .Increment();
}

void LedgerMetrics::count_alert_delivery(std::string_view sink, std::string_view outcome) {
  impl_->alert_deliveries.Add({{"sink", std::string(sink)}, {"outcome", std::string(outcome)}}).Increment();
}

std::shared_ptr<prometheus::Registry> LedgerMetrics::registry() const { return impl_->registry; }

std::string LedgerMetrics::serialize() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, impl_->registry->Collect());
  return out.str();
}

}  // namespace cascade
