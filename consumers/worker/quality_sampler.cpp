#include "consumers/worker/quality_sampler.h"

#include <spdlog/spdlog.h>

#include "consumers/worker/judge.h"


namespace cascade {
namespace {

constexpr std::size_t kMaxGradeReplyBytes = 4096;

}  // namespace

QualitySampler::QualitySampler(StageContext& context, SideCalls& side_calls)
    : ctx_(context), side_calls_(side_calls), sampler_(context.seed) {
  const QualityConfig& config = ctx_.config.quality;
  if (config.sample_rate > 0)
    judge_ = config.judge_model.empty() ? &ctx_.catalog.baseline() : ctx_.catalog.find(config.judge_model);
}

void QualitySampler::sample(const Request& r, const ModelInfo& model, const FinalReply& final) {
  const double rate = ctx_.config.quality.sample_rate;
  if (rate <= 0 || !judge_ || final.content.empty()) return;
  if (model.id == judge_->id || !(model.tier < judge_->tier)) return;  // cheaper tiers only
  if (rate < 1 && std::uniform_real_distribution<double>(0, 1)(sampler_) >= rate) return;
  if (in_flight_ >= ctx_.config.quality.max_in_flight) {
    ctx_.stats.quality_skipped++;
    if (ctx_.metrics) ctx_.metrics->quality_sample("skipped");
    return;
  }
  QualityEvent q;
  q.id = r.event.id;
  q.tenant = r.event.tenant;
  q.model = model.id;
  q.provider = model.provider;
  q.tier = std::string(to_string(model.tier));
  q.judge_model = judge_->id;
  q.route_reason = final.route.reason;
  q.sample_rate = rate;
  SideCallSpec spec;
  spec.model = judge_;
  spec.messages = judge_messages(r.event.messages, final.content);
  spec.chat.max_tokens = kJudgeMaxTokens;
  spec.deadline = ctx_.host.now() + std::chrono::milliseconds(ctx_.config.quality.timeout_ms);
  spec.max_reply_bytes = kMaxGradeReplyBytes;
  spec.on_end = [this, q = std::move(q)](std::uint64_t, const ModelInfo&, SideCallEnd end) mutable {
    graded(std::move(q), std::move(end));
  };
  if (side_calls_.start(std::move(spec)) == 0) {
    ctx_.stats.quality_failed++;
    if (ctx_.metrics) ctx_.metrics->quality_sample("failed");
    spdlog::debug("worker: quality sample of {} not taken: judge {}'s provider is not available", r.event.id,
                  judge_->id);
    return;
  }
  in_flight_++;
}

void QualitySampler::graded(QualityEvent q, SideCallEnd end) {
  in_flight_--;
  const Result<double> score = grade_of(end);
  if (ctx_.metrics)
    ctx_.metrics->judge_call("quality", std::string(outcome_label(end.how, score ? "graded" : "unreadable")));
  if (!score) {
    ctx_.stats.quality_failed++;
    if (ctx_.metrics) ctx_.metrics->quality_sample("failed");
    spdlog::debug("worker: quality sample of {} got no grade from {}: {}", q.id, q.judge_model, score.error().message);
    return;
  }
  q.score = *score;
  q.judge_cost_usd = end.cost_usd;
  q.ts_ms = ctx_.host.wall_ms();
  if (!ctx_.host.publish(ctx_.config.kafka.quality_topic, q.tenant, make_quality_event(q))) {
    ctx_.stats.quality_failed++;
    if (ctx_.metrics) ctx_.metrics->quality_sample("failed");
    return;
  }
  ctx_.stats.quality_published++;
  if (ctx_.metrics) ctx_.metrics->quality_sample("published");
}

}  // namespace cascade
