#pragma once
// The attempt runner: calls the request's models in order (its chain: the
// routed model, then its fallbacks) until one answers. Per attempt: a
// provider slot (providers.<name>.max_concurrency, this loop's share; a
// request waits for one up to queue_timeout_ms, then falls back), the
// model's circuit breaker, the streamed call, first-token and idle timeouts.
// A failed attempt is retried on the same model after a backoff, falls back
// to the next model, or gives up, as RetryPolicy says; nothing is retried
// once part of the answer reached the requester. Failed attempts that
// generated tokens are charged to the request.
//
// The runner tells its owner (the request lifecycle) what became of the
// request through AttemptOwner; it never publishes anything itself.
// Providers never call back inside start_chat (HttpClient runs callbacks
// from poll only), so an attempt's transfer id is known before its stream.
//
// Threading: one event loop's thread.
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "consumers/worker/stage_context.h"
#include "resilience/resilience.h"

namespace cascade {

class AttemptOwner {
 public:
  virtual ~AttemptOwner() = default;
  // Content of the current attempt (its breaker was told it answers).
  virtual void on_attempt_delta(Request& r, std::string_view text) = 0;
  // The current attempt completed: `model`'s whole answer (content in r.reply.content).
  virtual void on_answer(Request& r, const ModelInfo& model, ChatCompletion completion) = 0;
  // Every model of the chain failed or could not be tried; `error` says why
  // (the last failure, with every attempt's note).
  virtual void on_chain_exhausted(Request& r, Error error) = 0;
  // An attempt failed after part of its answer reached the requester:
  // neither a retry nor a fallback could be made invisible.
  virtual void on_gave_up(Request& r, Error error) = 0;
};

class AttemptRunner final : public AttemptSink {
 public:
  AttemptRunner(StageContext& context, AttemptOwner& owner);

  // Starts the next allowed attempt along the request's chain from
  // r.attempts.index (or queues it for a provider slot).
  void start(Request& r);
  // The chain is replaced (a cascade's escalation) and tried from its start.
  void restart(Request& r, std::vector<const ModelInfo*> chain);
  // A timer of the request fired: retry, slot_granted or slot_deadline.
  void on_timer(Request& r, TimerKind kind);
  // Streams silent past first_token_timeout_ms / idle_timeout_ms are cut and
  // handled like any failed attempt.
  void enforce_timeouts(Clock::time_point now);
  // The request is cancelled by its requester: its streaming call, if any,
  // is stopped (the breaker learns nothing from it), what that call
  // generated is charged to the request as a cut attempt's is (its prompt
  // and the text so far, counted, when there is text), and its provider
  // slot, held or granted, passes on. Nothing is told to the owner; a timer
  // the request set finds it ended.
  void cancel(Request& r);

  const ModelInfo& current_model(const Request& r) const { return *r.attempts.chain[r.attempts.index]; }

  // AttemptSink: the current attempt's stream.
  void on_attempt_delta(Request& r, std::string_view text) override;
  void on_attempt_complete(Request& r, Result<ChatCompletion> outcome) override;

 private:
  void call(Request& r, ChatProvider& provider, const ModelInfo& model, BreakerTicket ticket);
  void on_attempt_failed(Request& r, Error error);
  // What a cut attempt generated (r.reply.content), charged to the request.
  void charge_cut_attempt(Request& r, const ModelInfo& model);
  void next_in_chain(Request& r);
  void exhausted(Request& r);
  void tell_breaker(Request& r, const ModelInfo& model, bool success, Clock::time_point now);
  void record_attempt(const ModelInfo& model, bool success, Clock::time_point now);
  int slot_limit(const std::string& provider) const;
  bool take_slot(Request& r, const ModelInfo& model, Clock::time_point now);
  void release_slot(Request& r);
  const ProviderConfig* provider_config(const std::string& name) const;

  StageContext& ctx_;
  AttemptOwner& owner_;
  RetryPolicy retry_policy_;
  BreakerBoard breakers_;
  std::unordered_map<std::string, int> provider_active_;
  std::unordered_map<std::string, std::deque<std::uint64_t>> provider_waiters_;
};

}  // namespace cascade
