#pragma once
// A request's lifecycle: the stages a prompt event goes through, in order,
// and every decision to move it from one to the next (docs/architecture.md):
//
//   parse ─bad─► reject ──────────────────────────────────────────┐
//   replay ─answered before─► replay the stored answer ────────────┤
//   cancel stage ─cancelled before it was read─► cancelled ────────┤
//   cache ─hit─► replay the cached answer ─────────────────────────┤
//         (semantic: may wait for an embedding)                     │
//   single flight ─identical request in flight─► follow it ────────┤
//   admission: rate limits (may wait) ─over─► rate_limited ────────┤  terminal
//   routing ─no model─► error                                       │  publisher
//     (cascade begins: escalation chain, cheap answer held back)    │  (exactly one
//   admission: budgets ─over─► budget_exceeded ────────────────────┤   terminal
//   attempt runner: slots, breakers, retries, fallbacks ─failed──► ┤   event and
//     cascade controller: checks, agreement, judge ─rejected─►      │   one cost
//       escalation (attempt runner again)                           │   event)
//   answer ───────────────────────────────────────────────────────►┘
//     then: cache store, followers' answers, quality sample
//   a cancel, wherever the request is: what it runs stops, what it
//   generated is charged, it ends with `cancelled` ─────────────────►
//
// A cancelled leader's followers that have none of its answer yet run on
// their own (the first leads a new flight); those that have part of it end
// with an error, since their chunks cannot be taken back (docs/events.md,
// "Cancel event").
//
// The lifecycle owns the stages and wires them together; the stages hold
// the logic. It is driven by its event loop (on_record, on_timer, on_tick)
// and by the stages' callbacks (AttemptOwner, CascadeOwner).
//
// Threading: one event loop's thread.
#include <memory>
#include <string_view>

#include "budgets/budgets.h"
#include "consumers/worker/admission_stage.h"
#include "consumers/worker/attempt_runner.h"
#include "consumers/worker/cache_stage.h"
#include "consumers/worker/cancel_stage.h"
#include "consumers/worker/cascade_controller.h"
#include "consumers/worker/chunk_coalescer.h"
#include "consumers/worker/quality_sampler.h"
#include "consumers/worker/replay_stage.h"
#include "consumers/worker/routing_stage.h"
#include "consumers/worker/side_calls.h"
#include "consumers/worker/single_flight.h"
#include "consumers/worker/stage_context.h"
#include "consumers/worker/terminal_publisher.h"

namespace cascade {

// What the stages use beyond the loop's context; each may be null.
struct LifecycleParts {
  CompletedAnswerStore* completed = nullptr;  // no redelivery protection
  AnswerCache* cache = nullptr;               // no response cache
  const BudgetBook* budgets = nullptr;        // no budgets enforced
  std::shared_ptr<const AnswerVerifier> answer_verifier;  // no learned cascade check
  std::shared_ptr<const RouteScorer> route_scorer;        // the heuristic
  std::shared_ptr<const RoutePolicies> route_policies;    // no rules, policies or experiment
  std::shared_ptr<const TunedCuts> tuned_cuts;            // the configuration's thresholds only
};

class RequestLifecycle final : AttemptOwner, CascadeOwner {
 public:
  RequestLifecycle(StageContext& context, LifecycleParts parts);
  ~RequestLifecycle() override;

  // A prompt event consumed at (partition, offset): a new request, taken as
  // far as it goes now.
  void on_record(std::int32_t partition, std::int64_t offset, std::string_view payload);
  // A timer the request asked for (RequestHost::schedule) is due.
  void on_timer(std::uint64_t serial, TimerKind kind);
  // A cancel (docs/events.md, "Cancel event"), handed to every loop: the
  // requests it matches end now with `cancelled`; it is remembered for one
  // read later.
  void on_cancel(const CancelNotice& notice);
  // Periodically: stream timeouts, side-call deadlines, expired cancels.
  void on_tick(Clock::time_point now);
  // The loop is about to forget a finished request.
  void on_finished(Request& r);
  // Side calls still running (the loop waits for them when it drains).
  std::size_t side_calls_running() const { return side_calls_.running(); }
  // End of a loop iteration: publishes the streamed text that is due as
  // chunk events, frees what ended during it.
  void end_of_iteration(Clock::time_point now);
  // When held streamed text is next due (the loop wakes by then), if any.
  std::optional<Clock::time_point> next_chunk_due() const { return coalescer_.next_due(); }
  // The loop stops: open flights and side calls are forgotten.
  void shutdown();

 private:
  void after_cache_miss(Request& r);
  void admit_and_route(Request& r);
  void route_and_start(Request& r);
  void serve_cache_hit(Request& r, const CacheHit& hit);
  void finish_answer(Request& r, const ModelInfo& model, ChatCompletion completion);
  void fail(Request& r, const Error& error);
  // Ends a request its requester cancelled, wherever it is.
  void cancel(Request& r, std::string_view reason);
  // A follower whose leader was cancelled before any of the answer reached
  // it goes on as a request of its own: single flight, admission, routing.
  void run_alone(Request& follower, const Request& cancelled_leader);
  void publish_answer_delta(Request& r, std::string_view text);
  // The request's pending streamed text as one chunk event (to it and to its
  // followers); nothing when none is pending. Called before every terminal.
  void flush_chunks(Request& r);

  // AttemptOwner
  void on_attempt_delta(Request& r, std::string_view text) override;
  void on_answer(Request& r, const ModelInfo& model, ChatCompletion completion) override;
  void on_chain_exhausted(Request& r, Error error) override;
  void on_gave_up(Request& r, Error error) override;
  // CascadeOwner
  void publish_held(Request& r) override;
  void accept(Request& r, const ModelInfo& model, ChatCompletion completion) override;
  void escalate(Request& r, std::vector<const ModelInfo*> chain) override;

  StageContext& ctx_;
  SideCalls side_calls_;
  TerminalPublisher terminal_;
  ReplayStage replay_;
  CacheStage cache_;
  SingleFlight flights_;
  AdmissionStage admission_;
  RoutingStage routing_;
  AttemptRunner attempts_;
  CascadeController cascade_;
  QualitySampler quality_;
  CancelStage cancels_;
  ChunkCoalescer coalescer_;
};

}  // namespace cascade
