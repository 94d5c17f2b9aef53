#pragma once
// The cheap-first cascade's controller (docs/routing.md, "Cheap-first
// cascade"). A cascaded request's routed (cheap) model answers with nothing
// published, to the requester or to followers (r.cascade.holding). When that
// answer completes it is checked: check_answer, then, when configured, the
// answer verifier, the agreement model's answer (asked in parallel when the
// cascade began) and the judge. Accepted, it goes out as chunks and a final
// like any answer. Rejected, it is dropped and the cheapest available model
// of the next stronger tier answers, streamed as usual. Both answers (and
// the judge and agreement calls) are charged on the request's cost event.
// Retries and fallbacks among the cheap tier's models happen while held
// back; if every cheap attempt fails, the request escalates instead of
// failing. An answer growing past max_buffer_bytes stops being held back.
//
// The controller decides; its owner (the request lifecycle) publishes and
// restarts attempts, through CascadeOwner.
//
// Threading: one event loop's thread.
#include <memory>
#include <string>
#include <vector>

#include "consumers/worker/side_calls.h"
#include "consumers/worker/stage_context.h"
#include "router/router.h"

namespace cascade {

class CascadeOwner {
 public:
  virtual ~CascadeOwner() = default;
  // The held-back answer (r.reply.content) goes out as chunks, to followers
  // too: the requester's first token.
  virtual void publish_held(Request& r) = 0;
  // The cheap answer passed: it is the request's answer.
  virtual void accept(Request& r, const ModelInfo& model, ChatCompletion completion) = 0;
  // The next tier answers: `chain` is tried from its start, streamed.
  virtual void escalate(Request& r, std::vector<const ModelInfo*> chain) = 0;
};

class CascadeController {
 public:
  // `verifier` may be null (no learned check). The judge and agreement
  // models come from router.cascade (checked against the catalog at start).
  CascadeController(StageContext& context, SideCalls& side_calls, CascadeOwner& owner,
                    std::shared_ptr<const AnswerVerifier> verifier);

  // After routing, for a request cascade_requested() says is cascaded: its
  // escalation chain, and holding its answer back. Nothing changes when no
  // stronger tier can serve it.
  void begin(Request& r);
  // The agreement check's call: the agreement model answers the cascaded
  // request alongside the cheap model, so comparing costs no extra latency
  // when it is not slower. Skipped (the other checks decide) when it cannot
  // serve the request.
  void start_agreement(Request& r);
  // A piece of the cheap answer, held back.
  void hold(Request& r, std::string_view text);
  // The cheap answer completed: checked now, or once its side calls answer.
  void check(Request& r, const ModelInfo& model, ChatCompletion completion);
  // Every cheap attempt failed: the stronger tier answers instead.
  void cheap_failed(Request& r);
  // The request no longer needs the agreement answer: the call is cancelled
  // and what it wrote so far is charged to the request.
  void cancel_agreement(Request& r);
  // The request is cancelled by its requester: its agreement and judge calls
  // stop (what they wrote so far is charged), and a held cheap answer
  // waiting for them is charged as generated (reported usage, else counted).
  void cancel(Request& r);

 private:
  void check_agreement_then_judge(Request& r, const ModelInfo& model, ChatCompletion completion);
  void on_agreement(std::uint64_t serial, std::uint64_t call, SideCallEnd end);
  void on_judged(std::uint64_t serial, std::uint64_t call, const ModelInfo& judge, SideCallEnd end);
  void accept(Request& r, const ModelInfo& model, ChatCompletion completion, const std::string& note,
              const std::string& kind);
  void reject(Request& r, const ModelInfo& model, const ChatCompletion& completion, const std::string& why,
              const std::string& kind);
  void escalate(Request& r, const std::string& why, const std::string& kind);

  StageContext& ctx_;
  SideCalls& side_calls_;
  CascadeOwner& owner_;
  std::shared_ptr<const AnswerVerifier> verifier_;
  const ModelInfo* judge_ = nullptr;      // router.cascade.judge_model; null = no judge
  const ModelInfo* agreement_ = nullptr;  // router.cascade.agreement_model; null = no agreement check
};

}  // namespace cascade
