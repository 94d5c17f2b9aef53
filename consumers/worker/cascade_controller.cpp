#include "consumers/worker/cascade_controller.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

#include "consumers/worker/answer_check.h"
#include "consumers/worker/cascade_policy.h"
#include "consumers/worker/judge.h"

namespace cascade {
namespace {

// Enough for any final answer: it is near the end of a worked answer, and an
// answer cut here compares as one without a final answer.
constexpr std::size_t kMaxAgreementAnswerBytes = 64 * 1024;
constexpr std::size_t kMaxGradeReplyBytes = 4096;

std::string format_probability(double p) {
  char text[16];
  const int n = std::snprintf(text, sizeof text, "%.2f", p);
  return std::string(text, static_cast<std::size_t>(std::max(n, 0)));
}

std::string format_grade(double grade) {
  char text[32];
  const int n = std::snprintf(text, sizeof text, "%g", grade);
  return std::string(text, static_cast<std::size_t>(std::max(n, 0)));
}

}  // namespace

CascadeController::CascadeController(StageContext& context, SideCalls& side_calls, CascadeOwner& owner,
                                     std::shared_ptr<const AnswerVerifier> verifier)
    : ctx_(context), side_calls_(side_calls), owner_(owner), verifier_(std::move(verifier)) {
  const CascadeConfig& config = ctx_.config.router.cascade;
  if (!config.judge_model.empty()) judge_ = ctx_.catalog.find(config.judge_model);
  if (!config.agreement_model.empty()) agreement_ = ctx_.catalog.find(config.agreement_model);
}

void CascadeController::begin(Request& r) {
  // The escalation meets the request's hard constraints as its routed model does.
  auto needs = route_requirements(r.event, ctx_.route_context(r));
  if (!needs) return;  // routed already, so not expected: answered as usual
  auto escalation = escalation_chain(
      ctx_.catalog, r.route.model->tier,
      [&](const ModelInfo& m) {
        return ctx_.host.provider(m.provider) != nullptr && constraint_violation(m, *needs).empty();
      },
      ctx_.config.router.max_fallbacks);
  if (escalation.empty()) return;  // nothing stronger is available: answered as usual
  const Tier strong_tier = escalation.front()->tier;
  // Fallbacks as strong as the escalation belong to the escalation.
  std::erase_if(r.attempts.chain, [&](const ModelInfo* m) { return m->tier >= strong_tier; });
  if (r.attempts.chain.empty()) return;
  r.cascade.escalation = std::move(escalation);
  r.cascade.holding = true;
}

void CascadeController::start_agreement(Request& r) {
  if (!agreement_ || !r.event.tools.is_null()) return;  // tool calls have no final answer
  const ModelInfo& model = *agreement_;
  auto needs = route_requirements(r.event, ctx_.route_context(r));
  if (!needs || !constraint_violation(model, *needs).empty() || ctx_.host.provider(model.provider) == nullptr) {
    r.attempts.notes += "; cascade: agreement " + model.id + " cannot serve this request";
    return;
  }
  SideCallSpec spec;
  spec.model = &model;
  spec.messages = r.event.messages;
  spec.chat.max_tokens = ctx_.max_tokens_for(model, r.event);
  spec.chat.temperature = r.event.temperature;
  // No deadline while the cheap model answers too: check() sets one.
  spec.max_reply_bytes = kMaxAgreementAnswerBytes;
  spec.charge_cut_calls = true;  // paid on every cascaded request, agreeing or not
  spec.on_end = [this, serial = r.serial](std::uint64_t id, const ModelInfo&, SideCallEnd end) {
    on_agreement(serial, id, std::move(end));
  };
  r.cascade.agreement = side_calls_.start(std::move(spec));
}

void CascadeController::hold(Request& r, std::string_view text) {
  r.reply.content.append(text);
  // A non-streaming answer is gathered whole anyway: it stays held back.
  if (!r.event.stream || r.reply.content.size() <= ctx_.config.router.cascade.max_buffer_bytes) return;
  // Long enough not to be a refusal; holding it back longer only delays the user.
  const ModelInfo& model = *r.attempts.chain[r.attempts.index];
  ctx_.stats.cascade_accepted++;
  if (ctx_.metrics) ctx_.metrics->cascade("accepted", "unchecked");
  r.attempts.notes += "; cascade: " + model.id + " accepted unchecked (answer over max_buffer_bytes)";
  cancel_agreement(r);  // nothing left to compare with
  r.cascade.holding = false;
  owner_.publish_held(r);
}

void CascadeController::check(Request& r, const ModelInfo& model, ChatCompletion completion) {
  const AnswerCheck checked = check_answer(r.reply.content, completion.finish_reason, completion.tool_calls,
                                           answer_format_of(r.event.response_format));
  if (!checked.ok) {
    reject(r, model, completion, checked.reason, checked.kind);
    return;
  }
  r.cascade.check_note.clear();  // the checks' word, in the reason of an accepted answer
  r.cascade.check_kind = "checked";
  // It was trained on text answers: tool calls are left to the checks above and the judge.
  if (verifier_ && completion.tool_calls.empty()) {
    const double p = verifier_->p_ok_for_messages(r.event.messages, r.reply.content);
    const double min = ctx_.config.router.cascade.min_verifier_p;
    if (p < min) {
      reject(r, model, completion, "verifier p=" + format_probability(p) + " < " + format_probability(min), "verifier");
      return;
    }
    r.cascade.check_note = " (verifier p=" + format_probability(p) + ")";
    r.cascade.check_kind = "verified";
  }
  if (r.cascade.agreement != 0) {
    // The agreement model is still answering: the held answer waits for it,
    // from now on within judge_timeout_ms.
    side_calls_.set_deadline(r.cascade.agreement,
                             ctx_.host.now() + std::chrono::milliseconds(ctx_.config.router.cascade.judge_timeout_ms));
    r.cascade.held = std::move(completion);
    enter(r, RequestState::checking);
    return;  // on_agreement goes on
  }
  check_agreement_then_judge(r, model, std::move(completion));
}

void CascadeController::on_agreement(std::uint64_t serial, std::uint64_t call, SideCallEnd end) {
  if (ctx_.metrics) ctx_.metrics->judge_call("agreement", std::string(outcome_label(end.how, "answered")));
  Request* r = ctx_.requests.find(serial);
  if (!r || r->cascade.agreement != call) return;
  r->cascade.agreement = 0;
  r->charges.wasted_usd += end.cost_usd;  // paid on every cascaded request, agreeing or not
  r->cascade.agreement_answer = std::move(end.reply);
  // The held answer was waiting for this one (and not for a judge yet).
  if (r->state != RequestState::checking || !r->cascade.held || r->cascade.judge != 0) return;
  ChatCompletion completion = std::move(*r->cascade.held);
  r->cascade.held.reset();
  check_agreement_then_judge(*r, *r->attempts.chain[r->attempts.index], std::move(completion));
}

void CascadeController::check_agreement_then_judge(Request& r, const ModelInfo& model, ChatCompletion completion) {
  auto& c = r.cascade;
  if (c.agreement_answer) {
    const Result<std::string> other = std::move(*c.agreement_answer);
    c.agreement_answer.reset();
    const std::string& other_id = agreement_->id;
    if (!other) {
      // Without a second answer the other checks decide, as without the check.
      c.check_note += " (agreement " + other_id + " gave no answer: " + std::string(to_string(other.error().code)) + ")";
      c.check_kind = "agreement_failed";
    } else if (const auto mine = final_answer_in_conversation(r.event.messages, r.reply.content); !mine) {
      c.check_note += " (no final answer to compare with " + other_id + ")";
      c.check_kind = "not_comparable";
    } else {
      const auto theirs = final_answer_in_conversation(r.event.messages, *other);
      if (!theirs || *theirs != *mine) {
        reject(r, model, completion,
               "disagrees with " + other_id + ": " + *mine + " vs " + (theirs ? *theirs : "no final answer"),
               "disagreement");
        return;
      }
      c.check_note += " (agrees with " + other_id + ": " + *mine + ")";
      c.check_kind = "agreed";
    }
  }
  if (!judge_) {
    accept(r, model, std::move(completion), c.check_note, c.check_kind);
    return;
  }
  SideCallSpec spec;
  spec.model = judge_;
  spec.messages = judge_messages(r.event.messages, r.reply.content);
  spec.chat.max_tokens = kJudgeMaxTokens;
  spec.deadline = ctx_.host.now() + std::chrono::milliseconds(ctx_.config.router.cascade.judge_timeout_ms);
  spec.max_reply_bytes = kMaxGradeReplyBytes;
  spec.on_end = [this, serial = r.serial](std::uint64_t id, const ModelInfo& judge, SideCallEnd end) {
    on_judged(serial, id, judge, std::move(end));
  };
  if (const std::uint64_t id = side_calls_.start(std::move(spec))) {
    c.judge = id;
    c.held = std::move(completion);
    enter(r, RequestState::checking);
    return;  // on_judged goes on
  }
  accept(r, model, std::move(completion), c.check_note + " (judge " + judge_->id + " unavailable)", "judge_failed");
}

void CascadeController::on_judged(std::uint64_t serial, std::uint64_t call, const ModelInfo& judge, SideCallEnd end) {
  const Result<double> score = grade_of(end);
  if (ctx_.metrics)
    ctx_.metrics->judge_call("cascade", std::string(outcome_label(end.how, score ? "graded" : "unreadable")));
  Request* r = ctx_.requests.find(serial);
  if (!r || r->cascade.judge != call) return;
  r->cascade.judge = 0;
  r->charges.wasted_usd += end.cost_usd;  // grading is part of what the request cost
  if (!r->cascade.held) return;
  ChatCompletion completion = std::move(*r->cascade.held);
  r->cascade.held.reset();
  const ModelInfo& model = *r->attempts.chain[r->attempts.index];
  if (!score) {
    // Without a grade the checks that passed decide, as without a judge.
    accept(*r, model, std::move(completion),
           r->cascade.check_note + " (judge " + judge.id + " gave no grade: " +
               std::string(to_string(score.error().code)) + ")",
           "judge_failed");
    return;
  }
  const double min = ctx_.config.router.cascade.min_judge_score;
  if (*score < min) {
    reject(*r, model, completion, "judge " + judge.id + ": " + format_grade(*score) + " < " + format_grade(min),
           "judge_score");
    return;
  }
  accept(*r, model, std::move(completion),
         r->cascade.check_note + " (judge " + judge.id + ": " + format_grade(*score) + ")", "judged");
}

void CascadeController::accept(Request& r, const ModelInfo& model, ChatCompletion completion, const std::string& note,
                               const std::string& kind) {
  ctx_.stats.cascade_accepted++;
  if (ctx_.metrics) ctx_.metrics->cascade("accepted", kind);
  r.attempts.notes += "; cascade: " + model.id + " accepted" + note;
  r.cascade.holding = false;
  owner_.publish_held(r);
  owner_.accept(r, model, std::move(completion));
}

void CascadeController::reject(Request& r, const ModelInfo& model, const ChatCompletion& completion,
                               const std::string& why, const std::string& kind) {
  // Generated and billed, though nobody sees it.
  const TokenUsage usage = ctx_.billed_usage(model, r, completion);
  r.charges.wasted_usd += cost_usd(model.price, usage);
  r.charges.wasted_usage.input_tokens += usage.input_tokens;
  r.charges.wasted_usage.output_tokens += usage.output_tokens;
  r.charges.wasted_usage.cached_tokens += usage.cached_tokens;
  escalate(r, model.id + " rejected (" + why + ")", kind);
}

void CascadeController::cheap_failed(Request& r) {
  escalate(r, r.attempts.chain.front()->id + " failed", "cheap_failed");
}

// The next tier answers, streamed: the request's chain becomes the escalation chain.
void CascadeController::escalate(Request& r, const std::string& why, const std::string& kind) {
  cancel_agreement(r);  // e.g. every cheap attempt failed while it still answered
  ctx_.stats.cascade_escalated++;
  if (ctx_.metrics) ctx_.metrics->cascade("escalated", kind);
  auto& c = r.cascade;
  const ModelInfo& strong = *c.escalation.front();
  spdlog::debug("worker: request {} tenant {}: cascade: {} -> {}", r.event.id, r.event.tenant, why, strong.id);
  r.attempts.notes += "; cascade: " + why + " -> " + strong.id;
  c.holding = false;
  c.held.reset();
  c.agreement_answer.reset();
  r.reply.content.clear();
  owner_.escalate(r, std::exchange(c.escalation, {}));
}

void CascadeController::cancel(Request& r) {
  cancel_agreement(r);
  auto& c = r.cascade;
  if (const std::uint64_t judge = std::exchange(c.judge, 0); judge != 0) {
    if (const std::optional<double> cost = side_calls_.cancel(judge)) {
      r.charges.wasted_usd += *cost;
      if (ctx_.metrics) ctx_.metrics->judge_call("cascade", "cancelled");
    }
  }
  if (c.held) {
    // Generated and billed, though nobody will see it.
    const ModelInfo& model = *r.attempts.chain[r.attempts.index];
    const TokenUsage usage = ctx_.billed_usage(model, r, *c.held);
    r.charges.wasted_usd += cost_usd(model.price, usage);
    r.charges.wasted_usage.input_tokens += usage.input_tokens;
    r.charges.wasted_usage.output_tokens += usage.output_tokens;
    r.charges.wasted_usage.cached_tokens += usage.cached_tokens;
    c.held.reset();
  }
  c.holding = false;
}

void CascadeController::cancel_agreement(Request& r) {
  const std::uint64_t id = std::exchange(r.cascade.agreement, 0);
  if (id == 0) return;
  const std::optional<double> cost = side_calls_.cancel(id);
  if (!cost) return;
  r.charges.wasted_usd += *cost;
  if (ctx_.metrics) ctx_.metrics->judge_call("agreement", "cancelled");
}

}  // namespace cascade
