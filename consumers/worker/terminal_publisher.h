#pragma once
// The terminal publisher: the only code that ends a request. Every way a
// request ends (an answer, a replay, a cache hit, a single-flight follower's
// share, an error, a rejected event) goes through here, which
//   1. stores the completed answer (a redelivery is answered from it),
//   2. publishes the final or error event (and the dead letter),
//   3. publishes the cost event, when there is something to account for,
//   4. marks the request terminal (its offset follows once all is delivered),
// in that order, and counts the outcome. A request that already ended is
// refused (logged, nothing published): exactly one terminal event, by
// construction rather than by convention.
//
// Threading: the event loop's thread. Errors: a completed answer that cannot
// be stored is logged and the answer still goes out (at worst a redelivery
// after a crash pays again).
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "consumers/worker/answer_cache.h"
#include "consumers/worker/stage_context.h"
#include "events/events.h"
#include "state/state.h"

namespace cascade {

// A leader's published answer, shared with its single-flight followers.
struct PublishedAnswer {
  FinalReply final;
  CostEvent cost;
};

class TerminalPublisher {
 public:
  // Called once for every request as it ends, after its events went out:
  // what it still holds (a side call, a budget reservation) is let go.
  using EndHook = std::function<void(Request& r)>;
  // `completed` may be null (no redelivery protection).
  TerminalPublisher(StageContext& context, CompletedAnswerStore* completed, EndHook on_end = {});

  // A redelivered request answered from the completed-answer store, byte for
  // byte as the first time: nothing is paid again.
  void replay(Request& r, CompletedAnswer answer);
  // An answer from the response cache (its chunks already replayed): nothing
  // paid, the baseline's cost saved.
  void cache_hit(Request& r, const CacheHit& hit);
  // A model's answer: charged with what every attempt, check and side call cost.
  PublishedAnswer answer(Request& r, const ModelInfo& model, ChatCompletion completion, const TokenUsage& usage);
  // A single-flight follower gets its leader's answer as a free exact hit; a
  // second delivery of the leader's own request gets the leader's events as they were.
  void follower_answer(Request& follower, const Request& leader, const PublishedAnswer& answer);
  // The request failed: a cost event for what its attempts generated (when
  // anything), then its error event. Returns the error event's seq.
  std::int64_t fail(Request& r, const Error& error);
  // A follower fails with its leader; it paid nothing.
  void follower_failed(Request& follower, const Request& leader, const Error& error, std::int64_t leader_error_seq);
  // An event that is not a valid prompt: an error reply when it can be
  // addressed, and the event in the dead-letter topic.
  void reject(Request& r, const RejectedPrompt& rejected, std::string_view payload);

 private:
  // What one cost event says; the rest comes from the request.
  struct Charge {
    std::string_view model;
    std::string_view provider;
    TokenUsage usage;
    double cost_usd = 0;
    double baseline_cost_usd = 0;
    CacheOutcome cache = CacheOutcome::miss;
    std::string route_reason;
    std::string policy;
  };
  // The one place a cost event is made.
  CostEvent cost_event(Request& r, const Charge& charge) const;
  // False, and logged, when the request has ended already.
  bool may_end(const Request& r, std::string_view how) const;
  // An answer served without a model call (cache hit, single-flight
  // follower): nothing paid, the baseline's cost saved.
  CostEvent free_answer_cost(Request& r, const FinalReply& final) const;
  void store(Request& r, const CompletedAnswer& answer);
  // The request's final and cost events, tracked.
  void publish(Request& r, CompletedAnswer events);
  // Stores the answer, publishes its two events, ends the request.
  void store_and_publish(Request& r, const FinalReply& final, const CostEvent& cost);
  void end(Request& r);

  StageContext& ctx_;
  CompletedAnswerStore* completed_;
  EndHook on_end_;
};

// The route reason of an answer: the router's, then what happened to each
// attempt, so the ledger shows where the money went.
std::string route_reason(const Request& r);

}  // namespace cascade
