#include "consumers/worker/admission_stage.h"

#include <algorithm>
#include <cstdio>

namespace cascade {

AdmissionStage::AdmissionStage(StageContext& context, const BudgetBook* budgets)
    : ctx_(context),
      budgets_(budgets),
      pending_spend_(budgets ? &budgets->pending_spend(context.config.limits.budget_settle_ms) : nullptr) {}

// ------------------------------------------------------------ rate limits ----

double AdmissionStage::limits_share() const {
  return ctx_.partition_share.fraction(1.0 / std::max(ctx_.config.worker.threads, 1));
}

AdmissionStage::TenantBuckets& AdmissionStage::buckets_for(const std::string& tenant, Clock::time_point now) {
  const PartitionShare& partitions = ctx_.partition_share;
  const double share = limits_share();
  const TenantLimits& limits = ctx_.config.limits_for(tenant);
  const double rps = limits.requests_per_second * share;
  const double request_burst = std::max(rps, 1.0);  // however small the part, one request at a time
  const double tokens_per_s = limits.tokens_per_minute / 60.0 * share;
  const double token_burst = limits.tokens_per_minute * share;
  auto it = tenant_buckets_.find(tenant);
  if (it == tenant_buckets_.end()) {
    return tenant_buckets_
        .emplace(tenant, TenantBuckets{TokenBucket(rps, request_burst), TokenBucket(tokens_per_s, token_burst),
                                       partitions.generation()})
        .first->second;
  }
  TenantBuckets& b = it->second;
  // A rebalance moved the share: the new rates count from now, the tenant's
  // first request since; the time before refilled at the old ones, up to
  // the new burst.
  if (b.share_generation != partitions.generation()) {
    b.requests.set_rate(rps, request_burst, now);
    b.tokens.set_rate(tokens_per_s, token_burst, now);
    b.share_generation = partitions.generation();
  }
  return b;
}

AdmissionStage::Decision AdmissionStage::admit(Request& r) {
  const TenantLimits& limits = ctx_.config.limits_for(r.event.tenant);
  if (limits.requests_per_second <= 0 && limits.tokens_per_minute <= 0) return {};
  const auto now = ctx_.host.now();
  TenantBuckets& b = buckets_for(r.event.tenant, now);
  double estimate = static_cast<double>(ctx_.input_tokens(r)) + ctx_.effective_max_tokens(r.event);
  // More than the loop's bucket can hold waits for a full bucket, not forever.
  if (!b.tokens.unlimited()) estimate = std::min(estimate, b.tokens.burst());
  if (b.requests.try_take(1, now)) {
    if (b.tokens.try_take(estimate, now)) {
      r.charges.tokens_reserved = b.tokens.unlimited() ? 0 : estimate;
      if (r.state == RequestState::admitting) enter(r, RequestState::received);
      return {};
    }
    b.requests.give_back(1, now);
  }
  if (!r.charges.admission_deadline) r.charges.admission_deadline = now + std::chrono::milliseconds(limits.max_wait_ms);
  const auto due = std::max(b.requests.available_at(1, now), b.tokens.available_at(estimate, now));
  if (due > *r.charges.admission_deadline) {
    ctx_.stats.rate_limited++;
    char detail[200];
    std::snprintf(detail, sizeof detail,
                  " (requests_per_second %.3g, tokens_per_minute %.3g, %.3g%% of them admitted here; waited up to %ld ms)",
                  limits.requests_per_second, limits.tokens_per_minute,
                  100 * limits_share(), limits.max_wait_ms);
    return {Verdict::refused,
            Error{ErrorCode::rate_limited, "tenant '" + r.event.tenant + "' is over its rate limit" + detail}};
  }
  enter(r, RequestState::admitting);
  ctx_.host.schedule(due, r.serial, TimerKind::admission);
  return {Verdict::waiting, {}};
}

void AdmissionStage::settle_tokens(Request& r, const TokenUsage& used) {
  if (r.charges.tokens_reserved <= 0) return;
  const double tokens = static_cast<double>(used.input_tokens + used.output_tokens);
  const auto now = ctx_.host.now();
  buckets_for(r.event.tenant, now).tokens.give_back(r.charges.tokens_reserved - tokens, now);
  r.charges.tokens_reserved = 0;
}

// ---------------------------------------------------------------- budgets ----

// The most this request can cost: every model it may call (the chain, and a
// cascade's escalation after a cheap answer) with its prompt and the full
// max_tokens of output. Retries of a cut stream are not included (rare, and
// paid only for what was generated).
double AdmissionStage::estimated_cost(Request& r) const {
  TokenUsage usage;
  usage.input_tokens = ctx_.input_tokens(r);
  usage.output_tokens = ctx_.effective_max_tokens(r.event);
  double chain_max = 0;
  for (const ModelInfo* m : r.attempts.chain) chain_max = std::max(chain_max, cost_usd(m->price, usage));
  double escalation_max = 0;
  for (const ModelInfo* m : r.cascade.escalation) escalation_max = std::max(escalation_max, cost_usd(m->price, usage));
  return chain_max + escalation_max;
}

AdmissionStage::Decision AdmissionStage::check_budget(Request& r, RoutingStage& routing) {
  if (!budgets_) return {};
  const BudgetBook& book = *budgets_;
  if (!book.has_budgets(r.event.tenant)) return {};
  // Under the process's lock: no other loop's check comes between this
  // request's check and its reservation.
  return pending_spend_->with(
      [&](PendingSpend& pending) { return check_budget_locked(r, routing, book, pending); });
}

AdmissionStage::Decision AdmissionStage::check_budget_locked(Request& r, RoutingStage& routing,
                                                             const BudgetBook& book, PendingSpend& pending) {
  const std::int64_t now = ctx_.host.wall_ms();
  if (now - pending_spend_swept_ms_ >= 100) {
    pending.forget_included(book.ledger_seen_ms(), now);
    pending_spend_swept_ms_ = now;
  }
  double estimate = estimated_cost(r);
  BudgetDecision decision = book.check(r.event.tenant, r.route.model->id, r.tags, estimate, now, &pending);
  const std::int64_t max_age = ctx_.config.limits.budget_max_state_age_ms;
  if (max_age > 0 && (decision.state_age_ms < 0 || decision.state_age_ms > max_age)) {
    return refuse_over_budget(r, "budget state unknown: the ledger's spend state is " +
                                     (decision.state_age_ms < 0 ? std::string("missing")
                                                                : std::to_string(decision.state_age_ms) + " ms old") +
                                     " (limits.budget_max_state_age_ms " + std::to_string(max_age) + ")");
  }
  if (decision.verdict == BudgetVerdict::soft_exceeded && !r.event.pinned() && routing.downgrade(r, decision.reason)) {
    // The cheapest tier answers as it is: no escalation to a stronger one.
    r.cascade.escalation.clear();
    r.cascade.holding = false;
    ctx_.stats.budget_downgraded++;
    if (ctx_.metrics) ctx_.metrics->budget("downgraded");
    estimate = estimated_cost(r);
    decision = book.check(r.event.tenant, r.route.model->id, r.tags, estimate, now, &pending);
  }
  if (decision.verdict == BudgetVerdict::hard_exceeded) return refuse_over_budget(r, decision.reason);
  if (decision.verdict == BudgetVerdict::soft_exceeded && r.route.reason.find(decision.reason) == std::string::npos) {
    r.route.reason += "; " + decision.reason;  // pinned, or already the cheapest: served as routed
  }
  if (drop_over_budget_alternatives(r, book, pending, estimate, now)) estimate = estimated_cost(r);
  r.charges.budget_reservation = pending.reserve(r.event.tenant, r.route.model->id, r.tags, estimate);
  return {};
}

// A routed model within its budgets must not fall back, or escalate, into
// one whose own model budget this request would break: such fallbacks and
// escalation models are taken out, and the reason names them. (The tenant's
// and tags' budgets were checked with the same estimate, so a hard verdict
// for another model is its model budget's.) True if any was.
bool AdmissionStage::drop_over_budget_alternatives(Request& r, const BudgetBook& book, const PendingSpend& pending,
                                                   double estimate, std::int64_t now) {
  std::string dropped;
  auto over_budget = [&](const ModelInfo* m) {
    if (m == r.route.model) return false;
    const BudgetDecision d = book.check(r.event.tenant, m->id, r.tags, estimate, now, &pending);
    if (d.verdict != BudgetVerdict::hard_exceeded) return false;
    if (dropped.find(m->id) == std::string::npos) dropped += (dropped.empty() ? "" : ", ") + m->id;
    return true;
  };
  auto& chain = r.attempts.chain;  // chain[0] is the routed model, already admitted
  std::erase_if(chain, over_budget);
  std::erase_if(r.route.fallbacks, [&](const ModelInfo* m) { return std::ranges::find(chain, m) == chain.end(); });
  std::erase_if(r.cascade.escalation, over_budget);
  if (dropped.empty()) return false;
  if (r.cascade.escalation.empty()) r.cascade.holding = false;  // nothing left to escalate to: answered as usual
  r.route.reason += "; not tried, over their model budget: " + dropped;
  return true;
}

AdmissionStage::Decision AdmissionStage::refuse_over_budget(Request& r, std::string reason) {
  ctx_.stats.budget_refused++;
  if (ctx_.metrics) ctx_.metrics->budget("refused");
  settle_tokens(r, TokenUsage{});  // nothing was used of the tenant's token rate
  return {Verdict::refused, Error{ErrorCode::budget_exceeded, std::move(reason)}};
}

void AdmissionStage::settle_budget(Request& r) {
  if (r.charges.budget_reservation == 0) return;
  pending_spend_->with([&](PendingSpend& pending) {
    pending.settle(r.charges.budget_reservation, r.charges.charged_usd, ctx_.host.wall_ms());
  });
  r.charges.budget_reservation = 0;
}

}  // namespace cascade
