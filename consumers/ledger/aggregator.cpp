#include "consumers/ledger/ledger.h"

namespace cascade {

void LedgerTotals::add(const CostEvent& event) {
  ++requests;
  if (event.cache != CacheOutcome::miss) ++cache_hits;
  cost_usd += event.cost_usd;
  baseline_cost_usd += event.baseline_cost_usd;
  // The event's own savings, not baseline - cost: the ledger must agree with
  // what the worker published, to the bit.
  savings_usd += event.savings_usd;
  input_tokens += event.usage.input_tokens;
  output_tokens += event.usage.output_tokens;
  cached_tokens += event.usage.cached_tokens;
  cache_write_tokens += event.usage.cache_write_tokens;
  reasoning_tokens += event.usage.reasoning_tokens;
  latency_ms_sum += event.latency_ms;
  ttft_ms_sum += event.ttft_ms;
}

void LedgerTotals::merge(const LedgerTotals& from) {
  requests += from.requests;
  cache_hits += from.cache_hits;
  cost_usd += from.cost_usd;
  baseline_cost_usd += from.baseline_cost_usd;
  savings_usd += from.savings_usd;
  input_tokens += from.input_tokens;
  output_tokens += from.output_tokens;
  cached_tokens += from.cached_tokens;
  cache_write_tokens += from.cache_write_tokens;
  reasoning_tokens += from.reasoning_tokens;
  latency_ms_sum += from.latency_ms_sum;
  ttft_ms_sum += from.ttft_ms_sum;
}

namespace {

void merge(LedgerTotals& into, const LedgerTotals& from) { into.merge(from); }

}  // namespace

bool LedgerAggregator::apply(const CostEvent& event) {
  std::lock_guard lock(mu_);
  if (!seen_ids_.insert(event.id).second) {
    ++duplicates_;
    return false;
  }
  for (BudgetPeriod period : kBudgetPeriods) {
    const std::string id = period_id(period, event.ts_ms);
    spend_[{event.tenant, "", id}] += event.cost_usd;
    spend_[{event.tenant, model_scope(event.model), id}] += event.cost_usd;
    // A tag listed twice is one tag.
    for (const auto& tag : std::set<std::string>(event.tags.begin(), event.tags.end()))
      spend_[{event.tenant, tag_scope(tag), id}] += event.cost_usd;
  }
  if (event.ts_ms < since_ms_) return true;
  by_tenant_model_[{event.tenant, event.model}].add(event);
  if (!event.policy.empty()) by_tenant_policy_[{event.tenant, event.policy}].add(event);
  return true;
}

double LedgerAggregator::spend(const std::string& tenant, const std::string& scope, BudgetPeriod period,
                               std::int64_t now_ms) const {
  std::lock_guard lock(mu_);
  const auto it = spend_.find({tenant, scope, period_id(period, now_ms)});
  return it == spend_.end() ? 0 : it->second;
}

LedgerTotals LedgerAggregator::total() const {
  std::lock_guard lock(mu_);
  LedgerTotals sum;
  for (const auto& [key, totals] : by_tenant_model_) merge(sum, totals);
  return sum;
}

std::map<std::string, LedgerTotals> LedgerAggregator::by_tenant() const {
  std::lock_guard lock(mu_);
  std::map<std::string, LedgerTotals> result;
  for (const auto& [key, totals] : by_tenant_model_) merge(result[key.first], totals);
  return result;
}

std::map<std::string, LedgerTotals> LedgerAggregator::by_model() const {
  std::lock_guard lock(mu_);
  std::map<std::string, LedgerTotals> result;
  for (const auto& [key, totals] : by_tenant_model_) merge(result[key.second], totals);
  return result;
}

LedgerTotals LedgerAggregator::tenant_total(const std::string& tenant) const {
  std::lock_guard lock(mu_);
  LedgerTotals sum;
  // Keys are ordered by (tenant, model), so one tenant's rows are contiguous
  // and start at (tenant, "").
  for (auto it = by_tenant_model_.lower_bound({tenant, std::string()});
       it != by_tenant_model_.end() && it->first.first == tenant; ++it) {
    merge(sum, it->second);
  }
  return sum;
}

std::map<std::string, LedgerTotals> LedgerAggregator::tenant_by_model(const std::string& tenant) const {
  std::lock_guard lock(mu_);
  std::map<std::string, LedgerTotals> result;
  for (auto it = by_tenant_model_.lower_bound({tenant, std::string()});
       it != by_tenant_model_.end() && it->first.first == tenant; ++it) {
    result.emplace(it->first.second, it->second);
  }
  return result;
}

std::map<std::string, LedgerTotals> LedgerAggregator::by_policy() const {
  std::lock_guard lock(mu_);
  std::map<std::string, LedgerTotals> result;
  for (const auto& [key, totals] : by_tenant_policy_) merge(result[key.second], totals);
  return result;
}

std::map<std::string, LedgerTotals> LedgerAggregator::tenant_by_policy(const std::string& tenant) const {
  std::lock_guard lock(mu_);
  std::map<std::string, LedgerTotals> result;
  for (auto it = by_tenant_policy_.lower_bound({tenant, std::string()});
       it != by_tenant_policy_.end() && it->first.first == tenant; ++it) {
    result.emplace(it->first.second, it->second);
  }
  return result;
}

std::uint64_t LedgerAggregator::duplicates() const {
  std::lock_guard lock(mu_);
  return duplicates_;
}

}  // namespace cascade
