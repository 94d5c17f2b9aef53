#include "consumers/quality/quality_aggregator.h"

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "core/utc_day.h"

namespace cascade {

struct QualityAggregator::Metrics {
  explicit Metrics(prometheus::Registry& registry)
      : score(prometheus::BuildHistogram()
                  .Name("cascade_quality_score")
                  .Help("Grades (1-5, 5 = correct, complete and helpful) an LLM judge gave to sampled answers "
                        "of tiers cheaper than the judge's, by the model and tier that answered "
                        "(quality.sample_rate of them). Mean = _sum / _count.")
                  .Register(registry)),
        judge_cost(prometheus::BuildCounter()
                       .Name("cascade_quality_judge_cost_usd_total")
                       .Help("Money spent on grading sampled answers, in US dollars (not part of "
                             "cascade_cost_usd_total).")
                       .Register(registry)),
        calibration_samples(prometheus::BuildCounter()
                                .Name("cascade_quality_calibration_samples_total")
                                .Help("Calibration samples: prompts whose served answer and the reference "
                                      "model's answer were both graded (quality.calibration_rate).")
                                .Register(registry)),
        calibration_grades(prometheus::BuildCounter()
                               .Name("cascade_quality_calibration_grade_total")
                               .Help("Sum of the judge's grades in calibration samples, of the served answers "
                                     "and of the reference model's answers to the same prompts: "
                                     "rate(served) / rate(reference) is the served quality as a share of "
                                     "the reference's.")
                               .Register(registry)) {}

  prometheus::Family<prometheus::Histogram>& score;
  prometheus::Family<prometheus::Counter>& judge_cost;
  prometheus::Family<prometheus::Counter>& calibration_samples;
  prometheus::Family<prometheus::Counter>& calibration_grades;
};

namespace {
const prometheus::Histogram::BucketBoundaries kGradeBuckets = {1, 2, 3, 4, 5};

}  // namespace

void DailyQuality::add(const DailyQuality& other) {
  graded += other.graded;
  score_sum += other.score_sum;
  paired += other.paired;
  served_sum += other.served_sum;
  reference_sum += other.reference_sum;
  answers_cost_usd += other.answers_cost_usd;
  if (!other.reference_model.empty()) reference_model = other.reference_model;
}

QualityAggregator::QualityAggregator(prometheus::Registry* registry, std::size_t dedupe_window)
    : dedupe_window_(std::max<std::size_t>(dedupe_window, 1)) {
  if (registry) metrics_ = std::make_unique<Metrics>(*registry);
}

QualityAggregator::~QualityAggregator() = default;

bool QualityAggregator::add(const QualityEvent& event) {
  std::lock_guard lock(mutex_);
  std::string key = event.tenant;
  key += '\0';
  key += event.id;
  if (!seen_.insert(key).second) return false;
  seen_order_.push_back(std::move(key));
  if (seen_order_.size() > dedupe_window_) {
    seen_.erase(seen_order_.front());
    seen_order_.pop_front();
  }

  auto row = std::find_if(rows_.begin(), rows_.end(), [&](const QualityRow& r) {
    return r.tenant == event.tenant && r.model == event.model && r.tier == event.tier;
  });
  if (row == rows_.end()) {
    rows_.push_back(QualityRow{event.tenant, event.model, event.tier});
    row = rows_.end() - 1;
  }
  row->samples++;
  row->score_sum += event.score;
  const auto grade = static_cast<std::size_t>(std::clamp(std::lround(event.score), 1L, 5L));
  row->by_grade[grade - 1]++;
  row->judge_cost_usd += event.judge_cost_usd;

  const std::string day = utc_day(event.ts_ms);
  auto daily = std::find_if(daily_.begin(), daily_.end(),
                            [&](const DailyQuality& d) { return d.tenant == event.tenant && d.day == day; });
  if (daily == daily_.end()) {
    DailyQuality fresh;
    fresh.tenant = event.tenant;
    fresh.day = day;
    daily_.push_back(std::move(fresh));
    daily = daily_.end() - 1;
  }
  daily->graded++;
  daily->score_sum += event.score;
  if (const auto& c = event.calibration) {
    daily->paired++;
    daily->served_sum += event.score;
    daily->reference_sum += c->reference.score;
    daily->reference_model = c->reference.model;
    daily->answers_cost_usd += c->answers_cost_usd;
  }

  if (metrics_) {
    if (const auto& c = event.calibration) {
      metrics_->calibration_samples.Add({{"tenant", event.tenant}}).Increment();
      metrics_->calibration_grades.Add({{"tenant", event.tenant}, {"answer", "served"}}).Increment(event.score);
      metrics_->calibration_grades.Add({{"tenant", event.tenant}, {"answer", "reference"}})
          .Increment(c->reference.score);
    }
    metrics_->score.Add({{"tenant", event.tenant}, {"model", event.model}, {"tier", event.tier}}, kGradeBuckets)
        .Observe(event.score);
    if (event.judge_cost_usd > 0) {
      metrics_->judge_cost.Add({{"tenant", event.tenant}, {"judge_model", event.judge_model}})
          .Increment(event.judge_cost_usd);
    }
  }
  return true;
}

Result<bool> QualityAggregator::apply(std::string_view payload) {
  auto event = parse_quality_event(payload);
  if (!event) return std::unexpected(event.error());
  return add(*event);
}

std::vector<QualityRow> QualityAggregator::rows(const std::optional<std::string>& tenant) const {
  std::vector<QualityRow> out;
  {
    std::lock_guard lock(mutex_);
    for (const QualityRow& r : rows_) {
      if (!tenant || r.tenant == *tenant) out.push_back(r);
    }
  }
  std::sort(out.begin(), out.end(), [](const QualityRow& a, const QualityRow& b) {
    return std::tie(a.tenant, a.model, a.tier) < std::tie(b.tenant, b.model, b.tier);
  });
  return out;
}

QualityRow QualityAggregator::total(std::string_view model, std::string_view tier) const {
  QualityRow out{"", std::string(model), std::string(tier)};
  std::lock_guard lock(mutex_);
  for (const QualityRow& r : rows_) {
    if (r.model != model || r.tier != tier) continue;
    out.samples += r.samples;
    out.score_sum += r.score_sum;
    for (std::size_t i = 0; i < out.by_grade.size(); ++i) out.by_grade[i] += r.by_grade[i];
    out.judge_cost_usd += r.judge_cost_usd;
  }
  return out;
}

}  // namespace cascade

namespace cascade {

std::vector<DailyQuality> QualityAggregator::daily(const std::optional<std::string>& tenant) const {
  std::vector<DailyQuality> out;
  {
    std::lock_guard lock(mutex_);
    for (const DailyQuality& d : daily_)
      if (!tenant || d.tenant == *tenant) out.push_back(d);
  }
  std::sort(out.begin(), out.end(),
            [](const DailyQuality& a, const DailyQuality& b) { return std::tie(a.tenant, a.day) < std::tie(b.tenant, b.day); });
  return out;
}

DailyQuality QualityAggregator::overall(const std::optional<std::string>& tenant) const {
  DailyQuality out;
  if (tenant) out.tenant = *tenant;
  std::lock_guard lock(mutex_);
  for (const DailyQuality& d : daily_)
    if (!tenant || d.tenant == *tenant) out.add(d);
  return out;
}

}  // namespace cascade
