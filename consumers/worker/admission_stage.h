#pragma once
// The admission stage: may the request call a model now?
//
// Rate limits (tenants.<t>), cluster-wide: each event loop admits the part
// of the tenant's requests per second and tokens per minute (estimated
// prompt + max_tokens, settled against the real usage when the request ends)
// that its partitions are of the requests topic (partition_share.h), so the
// consumer group's loops together admit the limit (docs/architecture.md,
// "Rate limits over several workers", states the bound). A request over the
// loop's part waits (state admitting) up to max_wait_ms, then fails with
// rate_limited.
//
// Budgets (docs/ledger.md, "Budgets"), once the request is routed: its
// estimated cost, on top of the tenant's published spend and of what this
// process's requests in flight or just finished may still add to it, against
// every budget of the tenant, its model and its tags. Past a hard limit it
// is refused (budget_exceeded); past a soft one it is moved to the cheapest
// tier (unless pinned) and checked again. Admitted, its estimate counts as
// pending spend until it ends, then its actual cost until the ledger's
// state has it.
//
// Threading: one event loop's thread. The BudgetBook and its pending spend
// are the process's loops' (thread-safe).
#include <cstdint>
#include <string>
#include <unordered_map>

#include "budgets/budgets.h"
#include "consumers/worker/routing_stage.h"
#include "consumers/worker/stage_context.h"
#include "resilience/resilience.h"

namespace cascade {

class AdmissionStage {
 public:
  // `budgets` may be null: no budget is enforced. It is a global table's
  // book, updated by its follower thread (BudgetBook is thread-safe).
  AdmissionStage(StageContext& context, const BudgetBook* budgets);

  enum class Verdict { admitted, waiting, refused };
  struct Decision {
    Verdict verdict = Verdict::admitted;
    Error error;  // why it was refused
  };

  // The tenant's rate limits. waiting: a timer (TimerKind::admission) is set
  // and the request is in state admitting.
  [[nodiscard]] Decision admit(Request& r);
  // Gives back what the request reserved of its tenant's token rate beyond
  // what it used.
  void settle_tokens(Request& r, const TokenUsage& used);

  // The request's budgets, once routed (and its cascade begun): it may be
  // downgraded through `routing`, or lose fallbacks and escalation models
  // over their own model budget. Refused: budget_exceeded.
  [[nodiscard]] Decision check_budget(Request& r, RoutingStage& routing);
  // The request ended: its estimate leaves the pending spend; what it was
  // charged stays until the ledger's spend state includes it.
  void settle_budget(Request& r);

 private:
  struct TenantBuckets {
    TokenBucket requests;
    TokenBucket tokens;
    std::uint64_t share_generation = 0;  // of the partition share their rates come from
  };
  // The part of every tenant's rate limits this loop admits: its partitions'
  // part of the requests topic; before it holds any (unit tests), each loop
  // of the process an even part.
  double limits_share() const;
  // The tenant's buckets at this loop's current share of its limits.
  TenantBuckets& buckets_for(const std::string& tenant, Clock::time_point now);
  double estimated_cost(Request& r) const;
  Decision check_budget_locked(Request& r, RoutingStage& routing, const BudgetBook& book, PendingSpend& pending);
  bool drop_over_budget_alternatives(Request& r, const BudgetBook& book, const PendingSpend& pending, double estimate,
                                     std::int64_t now);
  Decision refuse_over_budget(Request& r, std::string reason);

  StageContext& ctx_;
  const BudgetBook* budgets_;
  std::unordered_map<std::string, TenantBuckets> tenant_buckets_;
  // Spend of the process's requests that the ledger's spend state may not
  // show yet: every loop's, since a tenant's requests reach every loop.
  // Null without budgets.
  SharedPendingSpend* pending_spend_;
  std::int64_t pending_spend_swept_ms_ = 0;  // when this loop last swept it
};

}  // namespace cascade
