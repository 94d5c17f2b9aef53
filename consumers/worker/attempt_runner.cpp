#include "consumers/worker/attempt_runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

namespace cascade {
namespace {

std::string short_error(const Error& e) {
  if (e.http_status >= 400) return "HTTP " + std::to_string(e.http_status);
  return std::string(to_string(e.code));
}

}  // namespace

AttemptRunner::AttemptRunner(StageContext& context, AttemptOwner& owner)
    : ctx_(context),
      owner_(owner),
      retry_policy_(context.config.resilience.retry, context.seed),
      breakers_(context.config.resilience.breaker) {}

const ProviderConfig* AttemptRunner::provider_config(const std::string& name) const {
  auto it = ctx_.config.providers.find(name);
  return it == ctx_.config.providers.end() ? nullptr : &it->second;
}

// --------------------------------------------------------------- attempts ----

void AttemptRunner::start(Request& r) {
  const auto now = ctx_.host.now();
  auto& a = r.attempts;
  while (a.index < a.chain.size()) {
    const ModelInfo& model = *a.chain[a.index];
    ChatProvider* provider = ctx_.host.provider(model.provider);
    if (provider && !a.holds_slot && !take_slot(r, model, now)) return;  // queued for a slot
    const BreakerTicket ticket = provider ? breakers_.at(model.provider, model.id).admit(now) : BreakerTicket{};
    if (ticket.admission != Admission::refused) {
      call(r, *provider, model, ticket);
      return;
    }
    release_slot(r);
    if (provider) {
      ctx_.stats.breaker_rejections++;
      if (ctx_.metrics) ctx_.metrics->fallback(model.provider, model.id, "breaker_open");
    }
    a.notes += "; " + model.id + (provider ? ": breaker open" : ": provider disabled");
    if (a.index + 1 < a.chain.size()) ctx_.stats.fallbacks++;
    next_in_chain(r);
  }
  exhausted(r);
}

void AttemptRunner::restart(Request& r, std::vector<const ModelInfo*> chain) {
  r.attempts.chain = std::move(chain);
  r.attempts.index = 0;
  r.attempts.on_model = 0;
  start(r);
}

void AttemptRunner::call(Request& r, ChatProvider& provider, const ModelInfo& model, BreakerTicket ticket) {
  ChatRequest chat;
  chat.upstream_model = model.upstream_model;
  chat.messages = &r.event.messages;
  chat.max_tokens = ctx_.max_tokens_for(model, r.event);
  chat.temperature = r.event.temperature;
  chat.response_format = &r.event.response_format;
  chat.tools = &r.event.tools;
  chat.tool_choice = &r.event.tool_choice;
  spdlog::debug("worker: request {} tenant {} -> {} ({}{})", r.event.id, r.event.tenant, model.id, r.route.reason,
                r.cascade.holding ? ", cascade: held back" : "");
  ctx_.stats.provider_calls++;
  auto& a = r.attempts;
  const auto now = ctx_.host.now();
  a.on_model++;
  a.started = now;
  a.last_activity = now;
  a.got_token = false;
  a.breaker_ticket = ticket;
  a.breaker_told_success = false;
  enter(r, RequestState::calling);
  a.transfer = provider.start_chat(chat, r);
}

void AttemptRunner::next_in_chain(Request& r) {
  r.attempts.index++;
  r.attempts.on_model = 0;
}

void AttemptRunner::exhausted(Request& r) {
  Error error = r.attempts.last_error.value_or(
      Error{ErrorCode::unavailable, "no provider could take the request (breakers open or providers disabled)"});
  if (!r.attempts.notes.empty()) error.message += " [" + r.attempts.notes.substr(2) + "]";
  owner_.on_chain_exhausted(r, std::move(error));
}

void AttemptRunner::on_attempt_delta(Request& r, std::string_view text) {
  if (text.empty()) return;
  const auto now = ctx_.host.now();
  r.attempts.last_activity = now;
  if (!r.attempts.got_token) tell_breaker(r, current_model(r), true, now);  // the provider is answering
  r.attempts.got_token = true;
  owner_.on_attempt_delta(r, text);
}

void AttemptRunner::on_attempt_complete(Request& r, Result<ChatCompletion> outcome) {
  r.attempts.transfer = 0;
  if (!outcome) {
    on_attempt_failed(r, std::move(outcome.error()));
    return;
  }
  const ModelInfo& attempted = current_model(r);
  const auto now = ctx_.host.now();
  release_slot(r);
  tell_breaker(r, attempted, true, now);
  record_attempt(attempted, true, now);
  owner_.on_answer(r, attempted, std::move(*outcome));
}

void AttemptRunner::on_attempt_failed(Request& r, Error error) {
  const ModelInfo& model = current_model(r);
  const auto now = ctx_.host.now();
  auto& a = r.attempts;
  a.transfer = 0;
  release_slot(r);
  // A request-side failure (400, 422...) says nothing bad about the provider.
  const bool provider_fault = provider_side_failure(error);
  tell_breaker(r, model, !provider_fault, now);
  record_attempt(model, !provider_fault, now);
  charge_cut_attempt(r, model);
  const auto verdict = retry_policy_.on_failure(error, a.on_model, r.reply.published_chunks > 0);
  a.notes += "; " + model.id + ": " + short_error(error) + " -> " + std::string(to_string(verdict.action));
  a.last_error = error;
  spdlog::debug("worker: request {} attempt on {} failed ({}): {}", r.event.id, model.id, error.message,
                to_string(verdict.action));
  switch (verdict.action) {
    case FailureAction::retry:
      ctx_.stats.retries++;
      if (ctx_.metrics) ctx_.metrics->retry(model.provider, model.id);
      // Nothing of it was published, to the requester or to followers: a
      // streaming request with content has published it and gives up below;
      // a non-streaming leader's followers only get its final content.
      r.reply.content.clear();
      enter(r, RequestState::backing_off);
      ctx_.host.schedule(now + std::chrono::milliseconds(verdict.wait_ms), r.serial, TimerKind::retry);
      return;
    case FailureAction::fall_back:
      if (a.index + 1 < a.chain.size()) ctx_.stats.fallbacks++;
      if (ctx_.metrics) ctx_.metrics->fallback(model.provider, model.id, "error");
      r.reply.content.clear();  // nothing of it was published (see retry)
      next_in_chain(r);
      start(r);
      return;
    case FailureAction::give_up:
      owner_.on_gave_up(r, std::move(error));
      return;
  }
}

void AttemptRunner::charge_cut_attempt(Request& r, const ModelInfo& model) {
  if (r.reply.content.empty()) return;
  // Tokens were generated before the attempt ended: the provider bills them.
  const TokenUsage partial = ctx_.counted_usage(model, r.event.messages, r.reply.content);
  r.charges.wasted_usd += cost_usd(model.price, partial);
  r.charges.wasted_usage.input_tokens += partial.input_tokens;
  r.charges.wasted_usage.output_tokens += partial.output_tokens;
}

void AttemptRunner::cancel(Request& r) {
  auto& a = r.attempts;
  if (a.index >= a.chain.size()) return;  // never routed, or every model tried
  const ModelInfo& model = current_model(r);
  if (r.state == RequestState::calling && a.transfer != 0) {
    ctx_.host.cancel_call(std::exchange(a.transfer, 0));
    // Neither a success nor a failure of the provider: its place in the
    // breaker's window is given up (a success at its first token stays).
    breakers_.at(model.provider, model.id).abandon(ctx_.host.now(), a.breaker_ticket);
    a.breaker_ticket = {};
    charge_cut_attempt(r, model);
  }
  release_slot(r);
}

void AttemptRunner::on_timer(Request& r, TimerKind kind) {
  switch (kind) {
    case TimerKind::retry:
      if (r.state == RequestState::backing_off) start(r);
      return;
    case TimerKind::slot_granted:
      if (r.state == RequestState::waiting_for_slot && r.attempts.holds_slot) start(r);
      return;
    case TimerKind::slot_deadline:
      // The wait for a slot ran out: this model is saturated, try the next.
      if (r.state != RequestState::waiting_for_slot || r.attempts.holds_slot ||
          r.attempts.slot_deadline > ctx_.host.now())
        return;
      r.attempts.notes += "; " + current_model(r).id + ": provider at max_concurrency";
      if (r.attempts.index + 1 < r.attempts.chain.size()) ctx_.stats.fallbacks++;
      next_in_chain(r);
      start(r);
      return;
    case TimerKind::admission:
      return;  // not the runner's
  }
}

void AttemptRunner::enforce_timeouts(Clock::time_point now) {
  std::vector<Request*> expired;
  ctx_.requests.for_each([&](Request& r) {
    if (r.state != RequestState::calling || r.attempts.transfer == 0) return;
    const ProviderConfig* pc = provider_config(current_model(r).provider);
    if (!pc) return;
    const auto silence = now - (r.attempts.got_token ? r.attempts.last_activity : r.attempts.started);
    const long limit = r.attempts.got_token ? pc->idle_timeout_ms : pc->first_token_timeout_ms;
    if (limit > 0 && silence > std::chrono::milliseconds(limit)) expired.push_back(&r);
  });
  for (Request* r : expired) {
    ctx_.stats.timeouts++;
    ctx_.host.cancel_call(r->attempts.transfer);
    const bool first = !r->attempts.got_token;
    if (ctx_.metrics) ctx_.metrics->timeout(current_model(*r).provider, first ? "first_token" : "idle");
    on_attempt_failed(*r, Error{ErrorCode::timeout, first ? "no first token within first_token_timeout_ms"
                                                          : "stream idle longer than idle_timeout_ms"});
  }
}

// --------------------------------------------------------------- breakers ----

// A call counts as a success for its breaker once the provider starts
// answering, and as a failure whenever it fails (a cut stream too).
void AttemptRunner::tell_breaker(Request& r, const ModelInfo& model, bool success, Clock::time_point now) {
  auto& a = r.attempts;
  if (success && a.breaker_told_success) return;
  breakers_.at(model.provider, model.id).record(success, now, a.breaker_ticket);
  if (a.breaker_ticket.admission == Admission::probe) a.breaker_ticket = {};  // the probe has spoken
  if (success) a.breaker_told_success = true;
}

void AttemptRunner::record_attempt(const ModelInfo& model, bool success, Clock::time_point now) {
  if (!ctx_.metrics) return;
  const CircuitBreaker& breaker = breakers_.at(model.provider, model.id);
  ctx_.metrics->attempt(model.provider, model.id, success);
  const BreakerState state = breaker.state(now);
  ctx_.metrics->breaker_state(model.provider, model.id,
                              state == BreakerState::closed ? 0 : state == BreakerState::half_open ? 1 : 2);
}

// ---------------------------------------------------------- provider slots ----

int AttemptRunner::slot_limit(const std::string& provider) const {
  const ProviderConfig* pc = provider_config(provider);
  if (!pc || pc->max_concurrency <= 0) return 0;
  const int threads = std::max(ctx_.config.worker.threads, 1);
  return (pc->max_concurrency + threads - 1) / threads;  // this loop's share
}

// Takes a slot of the model's provider, or queues the request for one.
bool AttemptRunner::take_slot(Request& r, const ModelInfo& model, Clock::time_point now) {
  const int limit = slot_limit(model.provider);
  if (limit == 0) return true;
  int& active = provider_active_[model.provider];
  if (active < limit) {
    active++;
    r.attempts.holds_slot = true;
    return true;
  }
  const ProviderConfig* pc = provider_config(model.provider);
  enter(r, RequestState::waiting_for_slot);
  r.attempts.slot_deadline = now + std::chrono::milliseconds(pc->queue_timeout_ms);
  provider_waiters_[model.provider].push_back(r.serial);
  ctx_.host.schedule(r.attempts.slot_deadline, r.serial, TimerKind::slot_deadline);
  ctx_.stats.queued_for_slot++;
  return false;
}

void AttemptRunner::release_slot(Request& r) {
  if (!r.attempts.holds_slot) return;
  r.attempts.holds_slot = false;
  const std::string& provider = current_model(r).provider;
  // The slot passes straight to the longest waiter (started from the loop's
  // next iteration), so a newcomer cannot take it first.
  auto& waiters = provider_waiters_[provider];
  while (!waiters.empty()) {
    const auto serial = waiters.front();
    waiters.pop_front();
    Request* waiter = ctx_.requests.find(serial);
    // Skip entries left behind by requests that gave up and moved on.
    if (!waiter || waiter->state != RequestState::waiting_for_slot || waiter->attempts.holds_slot ||
        current_model(*waiter).provider != provider)
      continue;
    waiter->attempts.holds_slot = true;
    ctx_.host.schedule(ctx_.host.now(), serial, TimerKind::slot_granted);
    return;
  }
  provider_active_[provider]--;
}

}  // namespace cascade
