#include "consumers/worker/request_lifecycle.h"

#include <spdlog/spdlog.h>

#include "consumers/worker/cascade_policy.h"

namespace cascade {
namespace {

// The request's tags (metadata.tags; entries that are not strings are left
// out), for per-tag budgets and the cost event.
std::vector<std::string> request_tags(const PromptEvent& event) {
  std::vector<std::string> tags;
  const auto it = event.metadata.find("tags");
  if (it == event.metadata.end() || !it->is_array()) return tags;
  for (const auto& tag : *it) {
    if (tag.is_string() && !tag.get_ref<const std::string&>().empty()) tags.push_back(tag.get<std::string>());
  }
  return tags;
}

}  // namespace

RequestLifecycle::RequestLifecycle(StageContext& context, LifecycleParts parts)
    : ctx_(context),
      side_calls_(context),
      // Whatever way a request ends, what it still holds is let go: a running
      // agreement call stops (and is paid), its budget estimate settles.
      terminal_(context, parts.completed,
                [this](Request& r) {
                  cascade_.cancel_agreement(r);
                  admission_.settle_budget(r);
                }),
      replay_(parts.completed),
      cache_(context, parts.cache,
             [this](Request& r, std::optional<CacheHit> hit) {
               if (hit) {
                 serve_cache_hit(r, *hit);
               } else {
                 after_cache_miss(r);
               }
             }),
      flights_(context),
      admission_(context, parts.budgets),
      routing_(context, std::move(parts.route_scorer), std::move(parts.route_policies), std::move(parts.tuned_cuts)),
      attempts_(context, *this),
      cascade_(context, side_calls_, *this, std::move(parts.answer_verifier)),
      quality_(context, side_calls_, routing_),
      cancels_(context),
      coalescer_(std::chrono::milliseconds(context.config.worker.coalesce_ms)) {}

RequestLifecycle::~RequestLifecycle() = default;

// ------------------------------------------------------------ the stages ----

void RequestLifecycle::on_record(std::int32_t partition, std::int64_t offset, std::string_view payload) {
  auto owned = std::make_unique<Request>();
  owned->serial = ctx_.requests.next_serial();
  owned->partition = partition;
  owned->offset = offset;
  owned->started = ctx_.host.now();
  owned->sink = &attempts_;
  Request& r = ctx_.requests.add(std::move(owned));

  auto parsed = parse_prompt_event(payload, PromptLimits{ctx_.config.limits.max_event_bytes},
                                   [this](std::string_view model) { return ctx_.catalog.find(model) != nullptr; });
  if (!parsed) {
    terminal_.reject(r, parsed.error(), payload);
    return;
  }
  r.event = std::move(*parsed);
  r.tags = request_tags(r.event);

  if (auto done = replay_.completed_answer(r)) {
    terminal_.replay(r, std::move(*done));  // redelivered after a crash: answered again, paid once
    return;
  }
  if (auto cancelled = cancels_.cancelled_before_arrival(r)) {
    // Nothing called, nothing paid: no cost event, as for a refused request.
    cancels_.count_cancelled("queued");
    terminal_.fail(r, *cancelled);
    return;
  }
  cache_.fingerprint(r);
  auto lookup = cache_.look_up(r);
  switch (lookup.outcome) {
    case CacheStage::Outcome::hit:
      serve_cache_hit(r, *lookup.hit);
      return;
    case CacheStage::Outcome::waiting:
      return;  // resumed when its embedding comes
    case CacheStage::Outcome::miss:
      after_cache_miss(r);
      return;
  }
}

// A stored answer replayed as chunks and a final: no router, no provider,
// nothing paid; the ledger records what the baseline model would have cost.
void RequestLifecycle::serve_cache_hit(Request& r, const CacheHit& hit) {
  cache_.count_hit(r, hit);
  if (r.event.stream) {
    const ChunkHead head{.model = hit.answer.model, .provider = hit.answer.provider, .cache = hit.kind,
                         .tier = {}, .reason = hit.reason};
    for (const auto piece :
         replay_pieces(hit.answer.content, static_cast<std::size_t>(ctx_.config.cache.replay_chunk_bytes))) {
      ctx_.publish_chunk(r, piece, &head);
    }
  }
  terminal_.cache_hit(r, hit);
}

// No cached answer: join an identical request in flight, or call a model.
void RequestLifecycle::after_cache_miss(Request& r) {
  if (flights_.follow_or_lead(r)) return;
  admit_and_route(r);
}

void RequestLifecycle::admit_and_route(Request& r) {
  const AdmissionStage::Decision decision = admission_.admit(r);
  switch (decision.verdict) {
    case AdmissionStage::Verdict::refused:
      fail(r, decision.error);
      return;
    case AdmissionStage::Verdict::waiting:
      return;  // on_timer(admission) comes back here
    case AdmissionStage::Verdict::admitted:
      route_and_start(r);
      return;
  }
}

void RequestLifecycle::route_and_start(Request& r) {
  if (auto routed = routing_.route(r); !routed) {
    fail(r, routed.error());
    return;
  }
  if (cascade_requested(ctx_.config.router.cascade, r.event)) cascade_.begin(r);
  if (const auto budget = admission_.check_budget(r, routing_); budget.verdict == AdmissionStage::Verdict::refused) {
    fail(r, budget.error);
    return;
  }
  if (r.cascade.holding) cascade_.start_agreement(r);
  attempts_.start(r);
}

// A model's answer is the request's: final and cost events, stored, cached,
// shared with followers; then, maybe, a quality sample.
void RequestLifecycle::finish_answer(Request& r, const ModelInfo& model, ChatCompletion completion) {
  flush_chunks(r);
  const TokenUsage usage = ctx_.billed_usage(model, r, completion);
  admission_.settle_tokens(r, usage);
  const PublishedAnswer published = terminal_.answer(r, model, std::move(completion), usage);
  cache_.store(r, published.final, model);
  for (Request* f : flights_.end_flight(r)) {
    // A non-streaming leader published no chunks (its content could still
    // be retried away): a streaming follower gets the answer in one chunk.
    if (!r.event.stream && !published.final.content.empty()) flights_.pass_delta(*f, r, published.final.content);
    terminal_.follower_answer(*f, r, published);
  }
  // After the terminal event is out: a sample never delays it.
  quality_.sample(r, model, published.final);
}

// The request fails, and every follower with it (they paid nothing: what
// the attempts cost is on the leader's cost event).
void RequestLifecycle::fail(Request& r, const Error& error) {
  flush_chunks(r);  // what the requester was promised precedes the error
  cascade_.cancel_agreement(r);  // what it wrote so far is paid, on the cost event
  const std::int64_t seq = terminal_.fail(r, error);
  for (Request* f : flights_.end_flight(r)) terminal_.follower_failed(*f, r, error, seq);
}

void RequestLifecycle::cancel(Request& r, std::string_view reason) {
  const std::string where(to_string(r.state));
  cancels_.count_cancelled(where);
  const Error error = cancelled_error(reason);
  if (r.state == RequestState::following) {
    // It called nothing and paid nothing: its error, and no cost event.
    flights_.leave(r);
    terminal_.fail(r, error);
    return;
  }
  // Whatever it runs stops, and what was generated is charged on its cost
  // event (before the event is made): the current attempt's text, a held
  // cheap answer, the side calls' words so far.
  attempts_.cancel(r);
  cascade_.cancel(r);
  flush_chunks(r);
  r.attempts.notes += "; " + cancelled_note(where, reason);
  admission_.settle_tokens(r, r.charges.wasted_usage);
  const std::int64_t seq = terminal_.fail(r, error);
  for (Request* f : flights_.end_flight(r)) {
    if (f->flight.duplicate_of_leader) {
      terminal_.follower_failed(*f, r, error, seq);  // the same request delivered twice: the same end
    } else if (f->reply.next_seq == 0) {
      run_alone(*f, r);
    } else {
      // Part of the answer reached it and cannot be taken back, nor
      // continued by another call (as for a stream cut after its first chunk).
      terminal_.follower_failed(
          *f, r,
          Error{ErrorCode::provider_error, "the identical request " + r.event.id +
                                               " whose answer it shared (single flight) was cancelled after part of "
                                               "the answer was sent; send it again with a new id"},
          seq);
    }
  }
}

void RequestLifecycle::run_alone(Request& f, const Request& cancelled_leader) {
  spdlog::debug("worker: request {} tenant {} runs on its own: the identical request {} it followed was cancelled",
                f.event.id, f.event.tenant, cancelled_leader.event.id);
  enter(f, RequestState::received);
  f.flight = {};
  f.first_token.reset();
  after_cache_miss(f);  // leads a flight of its own (or follows another such follower), then admission
}

void RequestLifecycle::publish_answer_delta(Request& r, std::string_view text) {
  if (!r.first_token) r.first_token = ctx_.host.now();
  r.reply.content.append(text);
  if (!r.event.stream) return;  // followers get a non-streaming leader's answer when it ends
  r.reply.published_chunks++;
  coalescer_.note(r, ctx_.host.now());  // out at the end of this loop iteration, or its window
}

void RequestLifecycle::flush_chunks(Request& r) {
  if (!std::exchange(r.reply.flush_queued, false)) return;
  const std::string_view all(r.reply.content);
  if (r.reply.published_bytes >= all.size()) return;
  const std::string_view text = all.substr(r.reply.published_bytes);
  r.reply.published_bytes = all.size();
  ctx_.publish_chunk(r, text);
  flights_.pass_to_followers(r, text);
}

void RequestLifecycle::end_of_iteration(Clock::time_point now) {
  coalescer_.take_due(now, [this](std::uint64_t serial) {
    if (Request* r = ctx_.requests.find(serial); r && !r->terminal()) flush_chunks(*r);
  });
  side_calls_.free_ended();
}

// ---------------------------------------------------------- AttemptOwner ----

void RequestLifecycle::on_attempt_delta(Request& r, std::string_view text) {
  if (r.cascade.holding) {
    cascade_.hold(r, text);
    return;
  }
  publish_answer_delta(r, text);
}

void RequestLifecycle::on_answer(Request& r, const ModelInfo& model, ChatCompletion completion) {
  if (r.cascade.holding) {
    cascade_.check(r, model, std::move(completion));
    return;
  }
  finish_answer(r, model, std::move(completion));
}

void RequestLifecycle::on_chain_exhausted(Request& r, Error error) {
  if (r.cascade.holding) {
    cascade_.cheap_failed(r);  // the stronger tier answers instead
    return;
  }
  fail(r, error);
}

void RequestLifecycle::on_gave_up(Request& r, Error error) { fail(r, error); }

// ---------------------------------------------------------- CascadeOwner ----

void RequestLifecycle::publish_held(Request& r) {
  if (r.reply.content.empty()) return;
  if (!r.first_token) r.first_token = ctx_.host.now();
  if (!r.event.stream) return;  // followers get a non-streaming leader's answer when it ends
  for (const auto piece :
       replay_pieces(r.reply.content, static_cast<std::size_t>(ctx_.config.cache.replay_chunk_bytes))) {
    r.reply.published_chunks++;
    ctx_.publish_chunk(r, piece);
    flights_.pass_to_followers(r, piece);
  }
  r.reply.published_bytes = r.reply.content.size();  // live deltas that follow go through the coalescer
}

void RequestLifecycle::accept(Request& r, const ModelInfo& model, ChatCompletion completion) {
  finish_answer(r, model, std::move(completion));
}

void RequestLifecycle::escalate(Request& r, std::vector<const ModelInfo*> chain) {
  attempts_.restart(r, std::move(chain));
}

// ------------------------------------------------------------ the loop's ----

void RequestLifecycle::on_timer(std::uint64_t serial, TimerKind kind) {
  Request* r = ctx_.requests.find(serial);
  if (!r || r->terminal()) return;
  if (kind == TimerKind::admission) {
    if (r->state == RequestState::admitting) admit_and_route(*r);
    return;
  }
  attempts_.on_timer(*r, kind);
}

void RequestLifecycle::on_cancel(const CancelNotice& notice) {
  for (Request* r : cancels_.on_notice(notice)) {
    if (r->terminal()) continue;  // ended already by this cancel: a duplicate of its leader
    cancel(*r, notice.cancel.reason);
  }
}

void RequestLifecycle::on_tick(Clock::time_point now) {
  side_calls_.enforce_deadlines(now);
  attempts_.enforce_timeouts(now);
  cancels_.expire(ctx_.host.wall_ms());
}

void RequestLifecycle::on_finished(Request& r) {
  // A leader closes its flight when it ends; never leave one dangling.
  (void)flights_.end_flight(r);
}

void RequestLifecycle::shutdown() {
  flights_.clear();
  side_calls_.clear();
}

}  // namespace cascade
