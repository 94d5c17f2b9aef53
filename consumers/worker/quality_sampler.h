#pragma once
// Quality sampling (docs/routing.md, "Quality sampling"): a fresh answer of
// a tier below the quality judge's is graded, with probability
// quality.sample_rate, after its terminal event is out; the grade goes to
// kafka.topics.quality. The request is finished (offset, watermark)
// whatever becomes of its sample: a sample never delays an answer.
//
// Threading: one event loop's thread.
#include <random>

#include "consumers/worker/side_calls.h"
#include "consumers/worker/stage_context.h"
#include "events/quality_event.h"

namespace cascade {

class QualitySampler {
 public:
  QualitySampler(StageContext& context, SideCalls& side_calls);

  // Maybe grades the answer `model` gave to the request.
  void sample(const Request& r, const ModelInfo& model, const FinalReply& final);

 private:
  void graded(QualityEvent sample, SideCallEnd end);

  StageContext& ctx_;
  SideCalls& side_calls_;
  const ModelInfo* judge_ = nullptr;  // quality.judge_model or the baseline; null = no sampling
  int in_flight_ = 0;
  std::mt19937_64 sampler_;
};

}  // namespace cascade
