#include "consumers/worker/side_calls.h"

#include <algorithm>

#include "consumers/worker/judge.h"

namespace cascade {

std::string_view outcome_label(SideCallEnd::How how, std::string_view answered) {
  switch (how) {
    case SideCallEnd::How::answered: return answered;
    case SideCallEnd::How::failed: return "error";
    case SideCallEnd::How::timed_out: return "timeout";
  }
  return "error";
}

Result<double> grade_of(const SideCallEnd& end) {
  if (!end.reply) return std::unexpected(end.reply.error());
  return parse_judge_score(*end.reply);
}

struct SideCalls::Call final : ChatStreamObserver {
  SideCalls* owner = nullptr;
  std::uint64_t id = 0;
  SideCallSpec spec;
  std::string reply;
  std::uint64_t transfer = 0;
  bool finished = false;

  void on_delta(std::string_view text) override {
    if (reply.size() < spec.max_reply_bytes) reply.append(text);
  }
  void on_complete(Result<ChatCompletion> outcome) override { owner->on_complete(*this, std::move(outcome)); }
};

SideCalls::SideCalls(StageContext& context) : ctx_(context) {}

SideCalls::~SideCalls() = default;

void SideCalls::free_ended() { ended_.clear(); }

std::uint64_t SideCalls::start(SideCallSpec spec) {
  ChatProvider* provider = ctx_.host.provider(spec.model->provider);
  if (!provider) return 0;
  auto owned = std::make_unique<Call>();
  Call& call = *owned;
  call.owner = this;
  call.id = ++last_id_;
  call.spec = std::move(spec);
  call.spec.chat.upstream_model = call.spec.model->upstream_model;
  call.spec.chat.messages = &call.spec.messages;
  calls_.emplace(call.id, std::move(owned));
  ctx_.stats.judge_calls++;
  call.transfer = provider->start_chat(call.spec.chat, call);
  return call.id;
}

void SideCalls::set_deadline(std::uint64_t id, Clock::time_point deadline) {
  if (auto it = calls_.find(id); it != calls_.end()) it->second->spec.deadline = deadline;
}

double SideCalls::partial_cost(const Call& call) const {
  const ModelInfo& model = *call.spec.model;
  return cost_usd(model.price, ctx_.counted_usage(model, call.spec.messages, call.reply));
}

std::optional<double> SideCalls::cancel(std::uint64_t id) {
  auto owned = calls_.extract(id);
  if (owned.empty()) return std::nullopt;
  Call& call = *owned.mapped();
  call.finished = true;
  ctx_.host.cancel_call(call.transfer);
  const double cost = partial_cost(call);
  ended_.push_back(std::move(owned.mapped()));
  return cost;
}

void SideCalls::on_complete(Call& call, Result<ChatCompletion> outcome) {
  if (call.finished) return;
  SideCallEnd result;
  if (!outcome) {
    result.how = SideCallEnd::How::failed;
    result.reply = std::unexpected(std::move(outcome.error()));
  } else {
    const ModelInfo& model = *call.spec.model;
    const TokenUsage usage =
        outcome->usage_reported ? outcome->usage : ctx_.counted_usage(model, call.spec.messages, call.reply);
    result.how = SideCallEnd::How::answered;
    result.cost_usd = cost_usd(model.price, usage);
    result.reply = call.reply;
  }
  end(call, std::move(result));
}

void SideCalls::end(Call& call, SideCallEnd result) {
  call.finished = true;
  auto owned = calls_.extract(call.id);
  // Freed by free_ended(), not inside the callback that ended it.
  if (!owned.empty()) ended_.push_back(std::move(owned.mapped()));
  if (call.spec.on_end) call.spec.on_end(call.id, *call.spec.model, std::move(result));
}

void SideCalls::enforce_deadlines(Clock::time_point now) {
  std::vector<Call*> late;
  for (auto& [id, call] : calls_) {
    if (now >= call->spec.deadline) late.push_back(call.get());
  }
  // In the order they started: the same inputs end the same way.
  std::ranges::sort(late, {}, &Call::id);
  for (Call* call : late) {
    if (call->finished) continue;  // ended by an earlier one's callback
    ctx_.host.cancel_call(call->transfer);
    SideCallEnd result;
    result.how = SideCallEnd::How::timed_out;
    result.reply = std::unexpected(Error{ErrorCode::timeout, "no answer before the call's deadline"});
    result.cost_usd = call->spec.charge_cut_calls ? partial_cost(*call) : 0;
    end(*call, std::move(result));
  }
}

void SideCalls::clear() {
  for (auto& [id, call] : calls_) call->finished = true;
  calls_.clear();
  ended_.clear();
}

}  // namespace cascade
