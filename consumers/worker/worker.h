#pragma once
// The request worker: a member of the workers' consumer group on
// cascade.requests. Each thread runs one event loop (event_loop.h) that
// consumes prompt events and takes each through its lifecycle
// (request_lifecycle.h; docs/architecture.md): replay, cache, single flight,
// admission, routing, provider attempts streamed to the reply topic chunk by
// chunk, the cheap-first cascade, and exactly one terminal event and one
// cost event per request. Offsets are committed only up to the
// per-partition watermark of delivered terminal events. The process follows
// kafka.topics.cancels whole (cancel_follower.h) and hands each cancel to
// every loop: a request cancelled by its requester ends with `cancelled`.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "config/config.h"
#include "core/result.h"
#include "consumers/worker/answer_cache.h"
#include "consumers/worker/worker_metrics.h"
#include "budgets/budgets.h"
#include "router/router.h"
#include "state/state.h"
#include "tokenizer/tokenizer.h"

namespace cascade {

class EventLoop;
class CancelFollower;

struct WorkerStats {
  std::atomic<std::uint64_t> consumed{0};       // prompt events read
  std::atomic<std::uint64_t> completed{0};      // requests finished: terminal events delivered
  std::atomic<std::uint64_t> failed{0};         // error events for valid requests
  std::atomic<std::uint64_t> rejected{0};       // invalid prompt events (error + DLQ)
  std::atomic<std::uint64_t> replayed{0};       // answered from the completed-answer store
  std::atomic<std::uint64_t> provider_calls{0};
  std::atomic<std::int64_t> in_flight{0};
  std::atomic<std::int64_t> peak_in_flight{0};  // highest in_flight of any one loop
  std::atomic<std::uint64_t> pauses{0};         // backpressure: partition pauses
  std::atomic<std::uint64_t> retries{0};        // attempts retried on the same model
  std::atomic<std::uint64_t> fallbacks{0};      // attempts moved to the next model
  std::atomic<std::uint64_t> breaker_rejections{0};  // models skipped: breaker open
  std::atomic<std::uint64_t> timeouts{0};       // first-token / idle timeouts
  std::atomic<std::uint64_t> rate_limited{0};   // requests refused: tenant over its rate
  // Budgets (docs/ledger.md): requests refused at a hard limit (or on a stale
  // spend state, limits.budget_max_state_age_ms), and requests moved to the
  // cheapest tier past a soft limit.
  std::atomic<std::uint64_t> budget_refused{0};
  std::atomic<std::uint64_t> budget_downgraded{0};
  std::atomic<std::uint64_t> queued_for_slot{0};  // calls that waited for a provider slot
  // Requests that followed an identical request in flight (single flight):
  // answered with its answer, no router or provider call of their own.
  std::atomic<std::uint64_t> single_flight_followers{0};
  std::atomic<std::uint64_t> cache_hits_exact{0};     // answered from the response cache
  std::atomic<std::uint64_t> cache_hits_semantic{0};
  // Assigned partitions served before the changelog caught up (state.restore_timeout_ms).
  std::atomic<std::uint64_t> catch_up_timeouts{0};
  // Cheap-first cascade (docs/routing.md): cheap answers published, and
  // cheap answers dropped for the next tier's (failed a check or the judge,
  // or every cheap attempt failed).
  std::atomic<std::uint64_t> cascade_accepted{0};
  std::atomic<std::uint64_t> cascade_escalated{0};
  std::atomic<std::uint64_t> judge_calls{0};  // side calls started: grades (cascade, quality) and agreement answers
  // Quality sampling: quality events published; samples that got no grade
  // (judge error, timeout, unreadable reply, judge unavailable); samples
  // skipped with quality.max_in_flight grading calls running.
  std::atomic<std::uint64_t> quality_published{0};
  std::atomic<std::uint64_t> quality_failed{0};
  std::atomic<std::uint64_t> quality_skipped{0};
  std::atomic<std::uint64_t> calibrations_published{0};  // of quality_published: calibration samples
  // Cancels (docs/events.md, "Cancel event"): requests ended with the error
  // cancelled, cancels that ended nothing (invalid, stale, answered or
  // ended already, another tenant's: see WorkerMetrics), and remembered
  // cancels pushed out of a loop's full table (worker.cancel_max_pending).
  std::atomic<std::uint64_t> cancelled{0};
  std::atomic<std::uint64_t> cancels_ignored{0};
  std::atomic<std::uint64_t> cancels_forgotten{0};
};

struct WorkerOptions {
  Config config;
  std::string bootstrap;                 // brokers to use (already resolved)
  const ModelCatalog* catalog = nullptr;  // must outlive the worker
  CompletedAnswerStore* completed = nullptr;  // may be null (no redelivery protection)
  // The changelog replicating `completed` (may be null: local store). With
  // it, a request's offset is committed only once its completed answer is in
  // the changelog, and newly assigned partitions wait for the applier to
  // catch up: together, a request redelivered to another worker after a
  // crash is answered from the store, never paid twice.
  StateChangelog* changelog = nullptr;
  WorkerMetrics* metrics = nullptr;           // may be null (no Prometheus metrics)
  AnswerCache* cache = nullptr;               // may be null (no response cache)
  // Budgets and spend (a global table the process follows); may be null: no
  // budget is enforced. Must outlive the worker.
  const BudgetTable* budgets = nullptr;
  // Token counts for estimates (admission, budgets) and for charging a call
  // whose provider reported no usage; null = UTF-8 bytes / 4.
  std::shared_ptr<const TokenCounter> tokens;
  // The cheap-first cascade's learned answer check; null = Worker::start
  // loads router.cascade.verifier_file (none when that is empty).
  std::shared_ptr<const AnswerVerifier> answer_verifier;
  // The router's scorer and its rules and policies compiled against the
  // catalog, shared by every event loop; null = Worker::start loads and
  // compiles them from config.router (an error stops it).
  std::shared_ptr<const RouteScorer> route_scorer;
  std::shared_ptr<const RoutePolicies> route_policies;
  // The closed loop's tuned cuts (tuning/tuning.h, follow_router_updates);
  // null = the configuration's thresholds only.
  std::shared_ptr<const TunedCuts> tuned_cuts;
  EnvLookup env = process_env();
};

class Worker {
 public:
  // Starts config.worker.threads event loops, after reading the cancels
  // topic to its end (without the topic, requests cannot be cancelled: a
  // warning). Errors: bad provider config, Kafka client creation, a cancels
  // topic that cannot be read within state.restore_timeout_ms.
  [[nodiscard]] static Result<std::unique_ptr<Worker>> start(WorkerOptions options);
  ~Worker();

  // Graceful stop: stop taking new requests, let in-flight ones finish (up to
  // drain_timeout_ms), deliver everything, commit, leave the group.
  void stop(int drain_timeout_ms = 30000);
  // Crash-like stop (tests): drop in-flight work and undelivered events, no
  // commit, no group leave.
  void abort();

  const WorkerStats& stats() const { return stats_; }

 private:
  Worker() = default;
  [[nodiscard]] Result<void> follow_cancels();
  WorkerOptions options_;
  WorkerStats stats_;
  std::vector<std::unique_ptr<EventLoop>> loops_;
  std::unique_ptr<CancelFollower> cancels_;  // null without a cancels topic; stopped before the loops
};

}  // namespace cascade
