#pragma once
// Quality sampling (docs/routing.md, "Quality sampling"): a fresh answer of
// a tier below the quality judge's is graded, with probability
// quality.sample_rate, after its terminal event is out; the grade goes to
// kafka.topics.quality. The request is finished (offset, watermark)
// whatever becomes of its sample: a sample never delays an answer.
//
// Calibration samples (docs/routing.md, "Closed loop"): with probability
// quality.calibration_rate, an auto-routed request's prompt is also
// answered by the routed model of every tier and by the reference model
// (catalog.baseline_model), each answer graded; one quality event carries
// them all, the evidence the ledger's tuner moves the tier cuts on. The
// answers asked for the sample only are paid on that event
// (calibration.answers_cost_usd), never on the request's cost event.
//
// Threading: one event loop's thread.
#include <memory>
#include <random>

#include "consumers/worker/routing_stage.h"
#include "consumers/worker/side_calls.h"
#include "consumers/worker/stage_context.h"
#include "events/quality_event.h"

namespace cascade {

class QualitySampler {
 public:
  QualitySampler(StageContext& context, SideCalls& side_calls, RoutingStage& routing);

  // Maybe grades the answer `model` gave to the request (a sample or a calibration sample).
  void sample(Request& r, const ModelInfo& model, const FinalReply& final);

 private:
  struct Calibration;
  // Starts a calibration sample; false when the request cannot have one.
  bool calibrate(Request& r, const ModelInfo& model, const FinalReply& final);
  void calibration_answered(const std::shared_ptr<Calibration>& c, std::size_t slot, SideCallEnd end);
  void start_grade(const std::shared_ptr<Calibration>& c, std::size_t slot);
  void calibration_graded(const std::shared_ptr<Calibration>& c, std::size_t slot, SideCallEnd end);
  void calibration_failed(Calibration& c, std::string_view why);
  void graded(QualityEvent sample, SideCallEnd end);
  // The event of a sample of the answer `model` gave: all but the grades.
  QualityEvent event_for(const Request& r, const ModelInfo& model, const FinalReply& final, double rate) const;
  void count(const char* outcome);

  StageContext& ctx_;
  SideCalls& side_calls_;
  RoutingStage& routing_;
  const ModelInfo* judge_ = nullptr;  // quality.judge_model or the baseline; null = no sampling
  int in_flight_ = 0;                 // grading calls and calibration samples
  std::mt19937_64 sampler_;
};

}  // namespace cascade
