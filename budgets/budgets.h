#pragma once
// Budgets: spending limits per tenant (and optionally per model or tag), per
// UTC day and month, and what a worker needs to enforce them.
//
// Where the figures come from (docs/ledger.md):
// - budget definitions: `budgets:` in the configuration, overridden at run
//   time by records on the compacted topic cascade.budgets (`cascade budget set`);
// - spend: the ledger consumer publishes, for every tenant/model/tag it
//   charges, the spend of the current day and month on the compacted topic
//   cascade.spend.
// BudgetTable follows both topics in every process that needs them (a global
// table, like the cache changelog) and answers BudgetTable::check() before a
// provider is called. The spend it sees lags the real spend by the ledger's
// delay; docs/ledger.md bounds the overshoot that allows.
#include <atomic>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/config.h"
#include "core/result.h"
#include "core/utc_day.h"

namespace cascade {

// ---- periods ---------------------------------------------------------------

// Budget periods are UTC calendar days and months.
enum class BudgetPeriod { daily, monthly };
inline constexpr BudgetPeriod kBudgetPeriods[] = {BudgetPeriod::daily, BudgetPeriod::monthly};
std::string_view to_string(BudgetPeriod period);
// The period containing ts_ms: "2026-07-14" (daily) or "2026-07" (monthly).
// Ids of one kind sort in time order.
std::string period_id(BudgetPeriod period, std::int64_t ts_ms);
// utc_day and parse_utc_day: core/utc_day.h.

// ---- scopes ----------------------------------------------------------------

// What part of a tenant's spend a budget covers: "" = all of it,
// "model:<catalog id>", "tag:<tag>".
std::string model_scope(std::string_view model);
std::string tag_scope(std::string_view tag);
// "tenant", "model gpt-4o", "tag research".
std::string describe_scope(std::string_view scope);
// Checks the shape of a scope ("" or model:/tag: with a non-empty name).
bool valid_scope(std::string_view scope);

// ---- budgets ---------------------------------------------------------------

struct BudgetLimits {
  double daily_usd = 0;    // 0 = no daily limit
  double monthly_usd = 0;  // 0 = no monthly limit
  double soft_percent = 80;  // share of a limit above which requests are downgraded

  double limit(BudgetPeriod period) const { return period == BudgetPeriod::daily ? daily_usd : monthly_usd; }
  bool any() const { return daily_usd > 0 || monthly_usd > 0; }
};

struct Budget {
  std::string tenant;
  std::string scope;  // "" | model:<id> | tag:<tag>
  BudgetLimits limits;
};

// The budgets of a configuration's `budgets:` section, one per tenant and scope.
std::vector<Budget> budgets_from_config(const Config& config);

// Records of cascade.budgets (key = budget_record_key, value = JSON; a null
// value removes the run-time budget, and the configured one applies again).
std::string budget_record_key(std::string_view tenant, std::string_view scope);
std::string encode_budget_record(const Budget& budget, std::int64_t ts_ms);
[[nodiscard]] Result<Budget> decode_budget_record(std::string_view value);
// The tenant and scope of a key.
[[nodiscard]] Result<std::pair<std::string, std::string>> decode_budget_key(std::string_view key);

// ---- spend state -----------------------------------------------------------

// One record of cascade.spend: what a tenant (scope) has spent in the current
// period, as of the ledger's last applied batch.
struct SpendRecord {
  std::string tenant;
  std::string scope;
  BudgetPeriod period = BudgetPeriod::daily;
  std::string period_id;  // "2026-07-14" | "2026-07"
  double spend_usd = 0;
  std::uint64_t requests = 0;
  std::int64_t updated_ms = 0;  // ledger clock when published
};
// One key per tenant, scope and period kind: compaction keeps only the
// latest period's figure.
std::string spend_record_key(std::string_view tenant, std::string_view scope, BudgetPeriod period);
std::string encode_spend_record(const SpendRecord& record);
[[nodiscard]] Result<SpendRecord> decode_spend_record(std::string_view value);
// The ledger's liveness record on cascade.spend, so readers know how fresh
// the spend state is even when nothing is being spent.
inline constexpr std::string_view kSpendHeartbeatKey = "__ledger_heartbeat__";
std::string encode_spend_heartbeat(std::int64_t ts_ms);
std::optional<std::int64_t> decode_spend_heartbeat(std::string_view value);

// ---- checking --------------------------------------------------------------

enum class BudgetVerdict {
  ok,
  soft_exceeded,  // past a soft limit: downgrade (cheapest tier), still serve
  hard_exceeded,  // the estimated cost would take the spend past a limit: refuse (budget_exceeded)
};
std::string_view to_string(BudgetVerdict verdict);

struct BudgetDecision {
  BudgetVerdict verdict = BudgetVerdict::ok;
  // Smallest limit - spend over every limit that applies (may be negative);
  // +infinity when no budget applies.
  double remaining_usd = std::numeric_limits<double>::infinity();
  // The binding limit in words, for the error event and logs; "" when ok.
  std::string reason;
  std::string scope;  // of the binding limit
  BudgetPeriod period = BudgetPeriod::daily;
  // Age of the spend state (now - the ledger's last heartbeat or record);
  // -1 = no spend state seen yet.
  std::int64_t state_age_ms = -1;
};

// One budget with its current spend (cascade budget show, /api/budgets, report).
struct BudgetStatus {
  Budget budget;
  bool runtime = false;  // set by `cascade budget set` (else from the configuration)
  double spent_daily_usd = 0;
  double spent_monthly_usd = 0;
};

// Spend a worker process has committed to that the spend state may not show
// yet: the estimates of its requests in flight, and the actual cost of those
// that finished within the last settle_ms of the ledger's clock (the ledger
// needs that long to consume a cost event and publish the spend).
// BudgetBook::check adds it to the published spend, so requests admitted
// together by one process never overshoot a limit between them; the bound
// left is docs/ledger.md's "Overshoot bound". Single-threaded: the event
// loops of a process share one through SharedPendingSpend.
class PendingSpend {
 public:
  // settle_ms: how long a finished request's cost is counted here after it
  // finished, unless the ledger's spend state is newer by that much
  // (forget_included). Must exceed the ledger's delay (measured ~50-70 ms).
  explicit PendingSpend(std::int64_t settle_ms) : settle_ms_(settle_ms) {}

  // Counts usd against the tenant, its model and each tag until settle().
  // Returns the reservation's id (never 0).
  std::uint64_t reserve(std::string_view tenant, std::string_view model, std::span<const std::string> tags,
                        double usd);
  // The request finished having cost actual_usd (0 when nothing was paid);
  // unknown ids (0, settled already) are ignored.
  void settle(std::uint64_t id, double actual_usd, std::int64_t now_ms);
  // Drops finished costs the spend state includes by now: finished more than
  // settle_ms before ledger_seen_ms, or (ledger down) more than max_age_ms ago.
  void forget_included(std::int64_t ledger_seen_ms, std::int64_t now_ms, std::int64_t max_age_ms = 600000);

  // What is pending for (tenant, scope).
  double amount(std::string_view tenant, std::string_view scope) const;
  std::size_t reservations() const { return reserved_.size(); }
  std::size_t settled() const { return settled_.size(); }

 private:
  struct Reservation {
    std::vector<std::string> keys;  // tenant '\0' scope
    double usd = 0;
  };
  struct Settled {
    std::int64_t settled_ms = 0;
    std::vector<std::string> keys;
    double usd = 0;
  };
  struct Sum {
    double usd = 0;
    std::size_t entries = 0;  // back to exactly 0 when none is left (no drift)
  };
  void add(const std::vector<std::string>& keys, double usd);
  void remove(const std::vector<std::string>& keys, double usd);

  std::int64_t settle_ms_;
  std::uint64_t next_id_ = 0;
  std::unordered_map<std::uint64_t, Reservation> reserved_;
  std::deque<Settled> settled_;  // in the order they finished
  std::unordered_map<std::string, Sum> sums_;
};

// The PendingSpend of every event loop of one process, behind a lock. A
// tenant's prompt events are keyed by request (prompt_event_key), so its
// requests reach every loop; loops that count each other's spend in flight
// never take a tenant past a limit between them, as one loop never did.
// Thread-safe.
class SharedPendingSpend {
 public:
  explicit SharedPendingSpend(std::int64_t settle_ms) : spend_(settle_ms) {}
  // Runs fn(PendingSpend&) under the lock: a check and the reservation it
  // leads to are one step, which no other loop's can come between.
  template <class Fn>
  decltype(auto) with(Fn&& fn) {
    std::lock_guard lock(mu_);
    return std::forward<Fn>(fn)(spend_);
  }

 private:
  std::mutex mu_;
  PendingSpend spend_;
};

// Budgets and spend in memory: configured budgets, run-time overrides, and the
// latest spend per tenant/scope/period. Thread-safe; check() takes a shared lock.
class BudgetBook {
 public:
  explicit BudgetBook(std::vector<Budget> configured = {});

  // Applies one record of cascade.budgets / cascade.spend (value nullopt = tombstone).
  [[nodiscard]] Result<void> apply_budget_record(std::string_view key, const std::optional<std::string_view>& value);
  [[nodiscard]] Result<void> apply_spend_record(std::string_view key, const std::optional<std::string_view>& value);
  void set_runtime_budget(const Budget& budget);
  void remove_runtime_budget(std::string_view tenant, std::string_view scope);
  void set_spend(const SpendRecord& record);

  // The limits in force for (tenant, scope): run-time over configured.
  std::optional<BudgetLimits> limits(std::string_view tenant, std::string_view scope) const;
  // The configured limits alone: what applies once the run-time budget is removed.
  std::optional<BudgetLimits> configured_limits(std::string_view tenant, std::string_view scope) const;
  // Spend of the current period at now_ms: the latest record's figure when it
  // is of this period (or a later one: the ledger's clock is ahead), else 0.
  double spend(std::string_view tenant, std::string_view scope, BudgetPeriod period, std::int64_t now_ms) const;

  // The verdict for a request about to cost up to estimated_cost_usd: every
  // budget of the tenant, of the model and of each tag, daily and monthly.
  // hard_exceeded when spend + estimate > limit for any of them, else
  // soft_exceeded when spend + estimate > soft_percent of any, else ok.
  // `pending` (may be null): this process's spend not yet in the state, added to it.
  BudgetDecision check(std::string_view tenant, std::string_view model, std::span<const std::string> tags,
                       double estimated_cost_usd, std::int64_t now_ms,
                       const PendingSpend* pending = nullptr) const;
  // Whether any budget (configured or run-time) names this tenant.
  bool has_budgets(std::string_view tenant) const;

  // Every budget in force (of one tenant, or all when tenant is empty) with its spend.
  std::vector<BudgetStatus> statuses(std::string_view tenant, std::int64_t now_ms) const;
  // The latest time the ledger was heard from (heartbeat or spend record); 0 = never.
  std::int64_t ledger_seen_ms() const { return ledger_seen_ms_.load(); }

  // The spend in flight of the event loops that check this book (a worker
  // process's loops share its BudgetTable's book), made at the first call
  // with that call's settle_ms (every loop passes limits.budget_settle_ms).
  // Not the book's budgets or spend: a reader of the book may add to it.
  SharedPendingSpend& pending_spend(std::int64_t settle_ms) const;

 private:
  using Key = std::pair<std::string, std::string>;  // tenant, scope
  struct Spend {
    std::string period_id;
    double usd = 0;
  };
  const BudgetLimits* limits_locked(const Key& key) const;

  mutable std::shared_mutex mu_;
  mutable std::mutex pending_mu_;  // guards pending_'s creation
  mutable std::unique_ptr<SharedPendingSpend> pending_;
  std::map<Key, BudgetLimits, std::less<>> configured_;
  std::map<Key, BudgetLimits, std::less<>> runtime_;
  std::map<std::tuple<std::string, std::string, BudgetPeriod>, Spend, std::less<>> spend_;
  std::atomic<std::int64_t> ledger_seen_ms_{0};
};

// BudgetBook fed from cascade.budgets and cascade.spend: every partition by
// assignment from the beginning, no consumer group, nothing committed (every
// process reads everything), on its own thread after start().
class BudgetTable {
 public:
  // The configured budgets come from config.budgets; the topics from config.kafka.
  [[nodiscard]] static Result<std::unique_ptr<BudgetTable>> open(const Config& config, const std::string& bootstrap);
  ~BudgetTable();

  // Reads both topics up to their ends (call before start()). Returns the records applied.
  [[nodiscard]] Result<std::uint64_t> restore(int timeout_ms = 30000);
  // Follows the topics on a thread of its own until stop().
  [[nodiscard]] Result<void> start();
  void stop();

  BudgetDecision check(std::string_view tenant, std::string_view model, std::span<const std::string> tags,
                       double estimated_cost_usd, std::int64_t now_ms,
                       const PendingSpend* pending = nullptr) const {
    return book_->check(tenant, model, tags, estimated_cost_usd, now_ms, pending);
  }
  const BudgetBook& book() const { return *book_; }
  BudgetBook& book() { return *book_; }
  std::uint64_t records_applied() const;
  std::uint64_t records_malformed() const;

  struct Impl;

 private:
  BudgetTable() = default;
  std::unique_ptr<BudgetBook> book_;
  std::unique_ptr<Impl> impl_;
};

// Publishes a run-time budget to cascade.budgets and waits for the broker's
// acknowledgement (`cascade budget set`); remove = a tombstone.
[[nodiscard]] Result<void> publish_budget(const KafkaConfig& kafka, const std::string& bootstrap, const Budget& budget,
                            int timeout_ms = 30000);
[[nodiscard]] Result<void> publish_budget_removal(const KafkaConfig& kafka, const std::string& bootstrap,
                                    std::string_view tenant, std::string_view scope, int timeout_ms = 30000);

}  // namespace cascade
