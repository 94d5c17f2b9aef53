#include "consumers/worker/terminal_publisher.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "consumers/worker/single_flight.h"

namespace cascade {

std::string route_reason(const Request& r) {
  if (r.attempts.notes.empty()) return r.route.reason;
  return r.route.reason + " | " + r.attempts.notes.substr(2);
}

TerminalPublisher::TerminalPublisher(StageContext& context, CompletedAnswerStore* completed, EndHook on_end)
    : ctx_(context), completed_(completed), on_end_(std::move(on_end)) {}

bool TerminalPublisher::may_end(const Request& r, std::string_view how) const {
  if (!r.terminal()) return true;
  spdlog::error("worker: request {} has ended already; {} not published", r.event.id, how);
  return false;
}

CostEvent TerminalPublisher::cost_event(Request& r, const Charge& charge) const {
  const auto now = ctx_.host.now();
  CostEvent cost;
  cost.id = r.event.id;
  cost.tenant = r.event.tenant;
  cost.ts_ms = ctx_.host.wall_ms();
  cost.price_version = ctx_.catalog.price_version();
  cost.tags = r.tags;
  cost.model = charge.model;
  cost.provider = charge.provider;
  cost.usage = charge.usage;
  cost.cost_usd = charge.cost_usd;
  cost.baseline_model = ctx_.catalog.baseline().id;
  cost.baseline_cost_usd = charge.baseline_cost_usd;
  cost.savings_usd = charge.baseline_cost_usd - charge.cost_usd;
  cost.cache = charge.cache;
  cost.latency_ms = ms_between(r.started, now);
  cost.ttft_ms = r.first_token ? ms_between(r.started, *r.first_token) : cost.latency_ms;
  cost.route_reason = charge.route_reason;
  cost.policy = charge.policy;
  r.charges.charged_usd = cost.cost_usd;
  return cost;
}

void TerminalPublisher::store(Request& r, const CompletedAnswer& answer) {
  if (!completed_) return;
  // Stored before the events go out: a crash after this point replays the
  // answer instead of paying the provider again.
  if (auto seq = completed_->put(r.event.tenant, r.event.id, answer)) {
    r.delivery.completed_seq = *seq;
  } else {
    spdlog::warn("worker: completed answer of {} not stored: {}", r.event.id, seq.error().message);
  }
}

void TerminalPublisher::publish(Request& r, CompletedAnswer events) {
  ctx_.host.publish_tracked(r, r.event.reply_to, r.event.id, std::move(events.final_event));
  ctx_.host.publish_tracked(r, ctx_.config.kafka.ledger_topic, r.event.tenant, std::move(events.cost_event));
}

void TerminalPublisher::store_and_publish(Request& r, const FinalReply& final, const CostEvent& cost) {
  CompletedAnswer answer{make_final_event(final), make_cost_event(cost)};
  store(r, answer);
  publish(r, std::move(answer));
  end(r);
}

CostEvent TerminalPublisher::free_answer_cost(Request& r, const FinalReply& final) const {
  return cost_event(r, {.model = final.model,
                        .provider = final.provider,
                        .usage = final.usage,
                        .cost_usd = 0,
                        .baseline_cost_usd = cost_usd(ctx_.catalog.baseline().price, final.usage),
                        .cache = final.cache,
                        .route_reason = final.route.reason,
                        .policy = {}});
}

void TerminalPublisher::end(Request& r) {
  enter(r, RequestState::delivering);
  if (on_end_) on_end_(r);
  ctx_.host.terminal_published(r);
}

void TerminalPublisher::replay(Request& r, CompletedAnswer answer) {
  if (!may_end(r, "replay")) return;
  ctx_.stats.replayed++;
  if (ctx_.metrics) ctx_.metrics->request("replayed");
  publish(r, std::move(answer));
  end(r);
}

void TerminalPublisher::cache_hit(Request& r, const CacheHit& hit) {
  if (!may_end(r, "cache hit")) return;
  if (ctx_.metrics) ctx_.metrics->request("final");
  FinalReply final;
  final.id = r.event.id;
  final.seq = r.reply.next_seq++;
  final.content = hit.answer.content;
  final.model = hit.answer.model;
  final.provider = hit.answer.provider;
  final.finish_reason = hit.answer.finish_reason;
  final.usage = hit.answer.usage;
  final.cost_usd = 0;
  final.cache = hit.kind;
  final.route = RouteInfo{"cache", 0, hit.reason, {}};  // a cache hit was decided by no policy
  final.metadata = r.event.metadata;
  store_and_publish(r, final, free_answer_cost(r, final));
}

PublishedAnswer TerminalPublisher::answer(Request& r, const ModelInfo& model, ChatCompletion completion,
                                          const TokenUsage& usage) {
  PublishedAnswer published;
  if (!may_end(r, "answer")) return published;
  if (ctx_.metrics) ctx_.metrics->request("final");
  FinalReply& final = published.final;
  final.id = r.event.id;
  final.seq = r.reply.next_seq++;
  final.content = std::move(r.reply.content);
  final.model = model.id;
  final.provider = model.provider;
  final.finish_reason = completion.finish_reason;
  final.tool_calls = std::move(completion.tool_calls);  // passed through as the provider assembled them
  final.usage = usage;
  final.cost_usd = cost_usd(model.price, usage) + r.charges.wasted_usd;
  final.cache = CacheOutcome::miss;
  final.route = RouteInfo{std::string(to_string(r.route.tier)), r.route.score, route_reason(r), r.route.policy};
  final.metadata = r.event.metadata;
  published.cost = cost_event(r, {.model = model.id,
                                  .provider = model.provider,
                                  .usage = usage,
                                  .cost_usd = final.cost_usd,
                                  .baseline_cost_usd = cost_usd(ctx_.catalog.baseline().price, usage),
                                  .cache = CacheOutcome::miss,
                                  .route_reason = final.route.reason,
                                  .policy = r.route.policy});
  store_and_publish(r, final, published.cost);
  return published;
}

void TerminalPublisher::follower_answer(Request& f, const Request& leader, const PublishedAnswer& answer) {
  if (!may_end(f, "follower answer")) return;
  if (ctx_.metrics) ctx_.metrics->request("final");
  if (f.flight.duplicate_of_leader) {
    // Byte for byte the leader's events, as a replay would send them.
    publish(f, CompletedAnswer{make_final_event(answer.final), make_cost_event(answer.cost)});
    end(f);
    return;
  }
  const FinalReply own = follower_final(answer.final, leader.event.id, f.event, f.reply.next_seq++);
  store_and_publish(f, own, free_answer_cost(f, own));
}

std::int64_t TerminalPublisher::fail(Request& r, const Error& error) {
  if (!may_end(r, "error")) return -1;
  if (r.charges.wasted_usd > 0) {
    // A failed request still pays for the tokens its attempts generated;
    // nothing was saved on it.
    const ModelInfo& model = r.attempts.chain.empty()
                                 ? ctx_.catalog.baseline()
                                 : *r.attempts.chain[std::min(r.attempts.index, r.attempts.chain.size() - 1)];
    const CostEvent cost = cost_event(r, {.model = model.id,
                                          .provider = model.provider,
                                          .usage = r.charges.wasted_usage,
                                          .cost_usd = r.charges.wasted_usd,
                                          .baseline_cost_usd = r.charges.wasted_usd,
                                          .cache = CacheOutcome::miss,
                                          .route_reason = route_reason(r),
                                          .policy = r.route.policy});
    ctx_.host.publish_tracked(r, ctx_.config.kafka.ledger_topic, r.event.tenant, make_cost_event(cost));
  }
  ctx_.stats.failed++;
  if (ctx_.metrics) ctx_.metrics->request("error");
  spdlog::info("worker: request {} tenant {} failed: {} {}", r.event.id, r.event.tenant, to_string(error.code),
               error.message);
  const std::int64_t seq = r.reply.next_seq++;
  ctx_.host.publish_tracked(r, r.event.reply_to, r.event.id, make_error_event(r.event.id, seq, error));
  end(r);
  return seq;
}

void TerminalPublisher::follower_failed(Request& f, const Request& leader, const Error& error,
                                        std::int64_t leader_error_seq) {
  if (!may_end(f, "follower error")) return;
  ctx_.stats.failed++;
  if (ctx_.metrics) ctx_.metrics->request("error");
  spdlog::debug("worker: request {} tenant {} failed with the request it followed, {}: {}", f.event.id,
                f.event.tenant, leader.event.id, to_string(error.code));
  // A second delivery of the leader's own request shares its (id, seq) space.
  const std::int64_t seq = f.flight.duplicate_of_leader ? leader_error_seq : f.reply.next_seq++;
  ctx_.host.publish_tracked(f, f.event.reply_to, f.event.id, make_error_event(f.event.id, seq, error));
  end(f);
}

void TerminalPublisher::reject(Request& r, const RejectedPrompt& rejected, std::string_view payload) {
  if (!may_end(r, "rejection")) return;
  ctx_.stats.rejected++;
  if (ctx_.metrics) ctx_.metrics->request("rejected");
  spdlog::info("worker: rejected prompt event at {}/{}: {}", r.partition, r.offset, rejected.error.message);
  if (rejected.id && rejected.reply_to) {
    ctx_.host.publish_tracked(r, *rejected.reply_to, *rejected.id, make_error_event(*rejected.id, 0, rejected.error));
  }
  DeadLetter letter;
  letter.reason = rejected.error.message;
  letter.source_topic = ctx_.config.kafka.requests_topic;
  letter.source_partition = r.partition;
  letter.source_offset = r.offset;
  letter.id = rejected.id;
  letter.tenant = rejected.tenant;
  letter.payload.assign(payload);
  ctx_.host.publish_tracked(r, ctx_.config.kafka.dlq_topic, rejected.tenant.value_or(""), make_dead_letter(letter));
  end(r);
}

}  // namespace cascade
