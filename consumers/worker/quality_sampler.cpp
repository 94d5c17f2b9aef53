#include "consumers/worker/quality_sampler.h"

#include <spdlog/spdlog.h>

#include "consumers/worker/judge.h"
#include "tuning/tuning.h"

namespace cascade {
namespace {

constexpr std::size_t kMaxGradeReplyBytes = 4096;
// A calibration answer is graded whole up to this size (longer ones are cut).
constexpr std::size_t kMaxCalibrationAnswerBytes = 65536;

}  // namespace

// One calibration sample in progress: the distinct models asked, their
// answers and grades. Shared by its side calls' callbacks.
struct QualitySampler::Calibration {
  struct Slot {
    const ModelInfo* model = nullptr;
    int max_tokens = 0;
    std::string answer;
    bool answered = false;
    bool served = false;
    double grade = 0;
  };
  QualityEvent event;
  nlohmann::json messages;
  std::optional<double> temperature;
  std::vector<Slot> slots;
  int small = -1, medium = -1, reference = -1, served = -1;  // slot of each role
  std::size_t ungraded = 0;
  int running = 0;  // side calls of this sample not ended
  bool failed = false;
  double answers_cost_usd = 0;
  double judge_cost_usd = 0;

  int slot_of(const ModelInfo* model) {
    for (std::size_t i = 0; i < slots.size(); ++i)
      if (slots[i].model == model) return static_cast<int>(i);
    Slot slot;
    slot.model = model;
    slots.push_back(std::move(slot));
    return static_cast<int>(slots.size() - 1);
  }
};

QualitySampler::QualitySampler(StageContext& context, SideCalls& side_calls, RoutingStage& routing)
    : ctx_(context), side_calls_(side_calls), routing_(routing), sampler_(context.seed) {
  const QualityConfig& config = ctx_.config.quality;
  if (config.sample_rate > 0 || config.calibration_rate > 0)
    judge_ = config.judge_model.empty() ? &ctx_.catalog.baseline() : ctx_.catalog.find(config.judge_model);
}

QualityEvent QualitySampler::event_for(const Request& r, const ModelInfo& model, const FinalReply& final,
                                       double rate) const {
  QualityEvent q;
  q.id = r.event.id;
  q.tenant = r.event.tenant;
  q.model = model.id;
  q.provider = model.provider;
  q.tier = std::string(to_string(model.tier));
  q.judge_model = judge_->id;
  q.route_reason = final.route.reason;
  q.sample_rate = rate;
  return q;
}

void QualitySampler::count(const char* outcome) {
  if (std::string_view(outcome) == "failed") ctx_.stats.quality_failed++;
  if (std::string_view(outcome) == "skipped") ctx_.stats.quality_skipped++;
  if (ctx_.metrics) ctx_.metrics->quality_sample(outcome);
}

void QualitySampler::sample(Request& r, const ModelInfo& model, const FinalReply& final) {
  if (!judge_ || final.content.empty()) return;
  const QualityConfig& config = ctx_.config.quality;
  std::uniform_real_distribution<double> uniform(0, 1);
  if (config.calibration_rate > 0 && (config.calibration_rate >= 1 || uniform(sampler_) < config.calibration_rate) &&
      calibrate(r, model, final))
    return;
  const double rate = config.sample_rate;
  if (rate <= 0) return;
  if (model.id == judge_->id || !(model.tier < judge_->tier)) return;  // cheaper tiers only
  if (rate < 1 && uniform(sampler_) >= rate) return;
  if (in_flight_ >= config.max_in_flight) {
    count("skipped");
    return;
  }
  QualityEvent q = event_for(r, model, final, rate);
  SideCallSpec spec;
  spec.model = judge_;
  spec.messages = judge_messages(r.event.messages, final.content);
  spec.chat.max_tokens = kJudgeMaxTokens;
  spec.deadline = ctx_.host.now() + std::chrono::milliseconds(config.timeout_ms);
  spec.max_reply_bytes = kMaxGradeReplyBytes;
  spec.on_end = [this, q = std::move(q)](std::uint64_t, const ModelInfo&, SideCallEnd end) mutable {
    graded(std::move(q), std::move(end));
  };
  if (side_calls_.start(std::move(spec)) == 0) {
    count("failed");
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
    count("failed");
    spdlog::debug("worker: quality sample of {} got no grade from {}: {}", q.id, q.judge_model, score.error().message);
    return;
  }
  q.score = *score;
  q.judge_cost_usd = end.cost_usd;
  q.ts_ms = ctx_.host.wall_ms();
  if (!ctx_.host.publish(ctx_.config.kafka.quality_topic, q.tenant, make_quality_event(q))) {
    count("failed");
    return;
  }
  ctx_.stats.quality_published++;
  count("published");
}

// ------------------------------------------------------ calibration samples ----

bool QualitySampler::calibrate(Request& r, const ModelInfo& model, const FinalReply& final) {
  // Only requests whose tier came from the cuts, and answers a judge can
  // compare: no tool calls.
  if (!r.route.cuts || !r.event.tools.is_null() || !final.tool_calls.empty()) return false;
  const ModelInfo& reference = ctx_.catalog.baseline();
  if (ctx_.host.provider(reference.provider) == nullptr) return false;
  auto models = routing_.models_by_tier(r);
  if (!models) return false;
  if (in_flight_ >= ctx_.config.quality.max_in_flight) {
    count("skipped");
    return true;
  }
  const RouteCuts& cuts = *r.route.cuts;
  auto c = std::make_shared<Calibration>();
  c->event = event_for(r, model, final, ctx_.config.quality.calibration_rate);
  QualityCalibration& k = c->event.calibration.emplace();
  k.key = tuning_key(r.route.policy, to_string(cuts.preference));
  k.route_score = cuts.score;
  k.small_cut = cuts.small;
  k.medium_cut = cuts.medium;
  k.configured_small_cut = cuts.configured_small;
  k.configured_medium_cut = cuts.configured_medium;
  c->messages = r.event.messages;
  c->temperature = r.event.temperature;

  c->served = c->slot_of(&model);
  c->slots[c->served].answer = final.content;
  c->slots[c->served].answered = true;
  c->slots[c->served].served = true;
  if (const ModelInfo* m = (*models)[static_cast<std::size_t>(Tier::small)]) c->small = c->slot_of(m);
  if (const ModelInfo* m = (*models)[static_cast<std::size_t>(Tier::medium)]) c->medium = c->slot_of(m);
  c->reference = c->slot_of(&reference);
  for (auto& slot : c->slots) slot.max_tokens = ctx_.max_tokens_for(*slot.model, r.event);
  c->ungraded = c->slots.size();
  in_flight_++;

  for (std::size_t i = 0; i < c->slots.size() && !c->failed; ++i) {
    if (c->slots[i].answered) {
      start_grade(c, i);
      continue;
    }
    Calibration::Slot& slot = c->slots[i];
    SideCallSpec spec;
    spec.model = slot.model;
    spec.messages = c->messages;
    spec.chat.max_tokens = slot.max_tokens;
    spec.chat.temperature = c->temperature;
    spec.deadline = ctx_.host.now() + std::chrono::milliseconds(ctx_.config.quality.timeout_ms);
    spec.max_reply_bytes = kMaxCalibrationAnswerBytes;
    spec.charge_cut_calls = true;
    spec.on_end = [this, c, i](std::uint64_t, const ModelInfo&, SideCallEnd end) {
      calibration_answered(c, i, std::move(end));
    };
    if (side_calls_.start(std::move(spec)) == 0) {
      calibration_failed(*c, "the provider of " + slot.model->id + " is not available");
      break;
    }
    c->running++;
  }
  return true;
}

void QualitySampler::calibration_answered(const std::shared_ptr<Calibration>& c, std::size_t slot, SideCallEnd end) {
  c->running--;
  c->answers_cost_usd += end.cost_usd;
  if (c->failed) {
    calibration_failed(*c, "");
    return;
  }
  if (end.how != SideCallEnd::How::answered || !end.reply || end.reply->empty()) {
    calibration_failed(*c, c->slots[slot].model->id + " gave no answer" +
                               (end.reply ? std::string() : ": " + end.reply.error().message));
    return;
  }
  c->slots[slot].answer = std::move(*end.reply);
  c->slots[slot].answered = true;
  start_grade(c, slot);
}

void QualitySampler::start_grade(const std::shared_ptr<Calibration>& c, std::size_t slot) {
  SideCallSpec spec;
  spec.model = judge_;
  spec.messages = judge_messages(c->messages, c->slots[slot].answer);
  spec.chat.max_tokens = kJudgeMaxTokens;
  spec.deadline = ctx_.host.now() + std::chrono::milliseconds(ctx_.config.quality.timeout_ms);
  spec.max_reply_bytes = kMaxGradeReplyBytes;
  spec.on_end = [this, c, slot](std::uint64_t, const ModelInfo&, SideCallEnd end) {
    calibration_graded(c, slot, std::move(end));
  };
  if (side_calls_.start(std::move(spec)) == 0) {
    calibration_failed(*c, "judge " + judge_->id + "'s provider is not available");
    return;
  }
  c->running++;
}

void QualitySampler::calibration_graded(const std::shared_ptr<Calibration>& c, std::size_t slot, SideCallEnd end) {
  c->running--;
  c->judge_cost_usd += end.cost_usd;
  const Result<double> score = grade_of(end);
  if (ctx_.metrics)
    ctx_.metrics->judge_call("calibration", std::string(outcome_label(end.how, score ? "graded" : "unreadable")));
  if (c->failed) {
    calibration_failed(*c, "");
    return;
  }
  if (!score) {
    calibration_failed(*c, "no grade for " + c->slots[slot].model->id + "'s answer: " + score.error().message);
    return;
  }
  c->slots[slot].grade = *score;
  if (--c->ungraded > 0) return;

  QualityEvent& q = c->event;
  QualityCalibration& k = *q.calibration;
  auto graded_answer = [&](int i) {
    const Calibration::Slot& s = c->slots[static_cast<std::size_t>(i)];
    return GradedAnswer{s.model->id, std::string(to_string(s.model->tier)), s.grade, s.served};
  };
  q.score = c->slots[static_cast<std::size_t>(c->served)].grade;
  if (c->small >= 0) k.small = graded_answer(c->small);
  if (c->medium >= 0) k.medium = graded_answer(c->medium);
  k.reference = graded_answer(c->reference);
  k.answers_cost_usd = c->answers_cost_usd;
  q.judge_cost_usd = c->judge_cost_usd;
  q.ts_ms = ctx_.host.wall_ms();
  in_flight_--;
  if (!ctx_.host.publish(ctx_.config.kafka.quality_topic, q.tenant, make_quality_event(q))) {
    count("failed");
    return;
  }
  ctx_.stats.quality_published++;
  ctx_.stats.calibrations_published++;
  count("published");
}

// Marks the sample failed (counted once, `why` logged) and releases its
// place when none of its calls is still running.
void QualitySampler::calibration_failed(Calibration& c, std::string_view why) {
  if (!c.failed) {
    c.failed = true;
    count("failed");
    spdlog::debug("worker: calibration sample of {} dropped: {}", c.event.id, why);
  }
  if (c.running == 0) {
    c.running = -1;  // released once
    in_flight_--;
  }
}

}  // namespace cascade
