#pragma once
// Reads quality events (kafka.topics.quality, events/quality_event.h) and
// keeps, per tenant, model and tier, how the judge graded the sampled
// answers: sample count, mean grade and the distribution of grades. With a
// Prometheus registry it also exports them, for the ledger's /metrics:
//
//   cascade_quality_score{tenant,model,tier}  histogram, buckets le=1,2,3,4,5
//       (_count = samples, _sum / _count = mean grade)
//   cascade_quality_judge_cost_usd_total{tenant,judge_model}  counter
//   cascade_quality_calibration_samples_total{tenant}          counter
//   cascade_quality_calibration_grade_total{tenant,answer}     counter, answer = served | reference
//       (rate(served) / rate(reference): the served answers' judged quality
//       as a share of the reference model's on the same prompts)
//
// so a team sees next to its savings what they cost in quality
// (docs/routing.md, "Quality sampling"). Thread-safe.
#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "core/result.h"
#include "events/quality_event.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace cascade {

struct QualityRow {
  std::string tenant;
  std::string model;
  std::string tier;
  std::uint64_t samples = 0;
  double score_sum = 0;
  // Samples per grade, rounded to the nearest whole grade: [0] = 1 ... [4] = 5.
  std::array<std::uint64_t, 5> by_grade{};
  double judge_cost_usd = 0;

  double mean_score() const { return samples == 0 ? 0 : score_sum / static_cast<double>(samples); }
};

// The grades of one tenant on one UTC day (or over everything: day ""):
// every graded answer, and the calibration samples' served answers beside
// the reference model's answers to the same prompts (docs/routing.md,
// "Closed loop"). reference_ratio() is the measured "X% of <reference>'s
// judged quality" of what Cascade served.
struct DailyQuality {
  std::string tenant;  // "" = every tenant together
  std::string day;     // "YYYY-MM-DD" (UTC, of the grade); "" = every day
  std::uint64_t graded = 0;  // answers graded (samples and calibration samples)
  double score_sum = 0;
  std::uint64_t paired = 0;  // calibration samples
  double served_sum = 0;     // their served answers' grades
  double reference_sum = 0;  // the reference's grades on the same prompts
  std::string reference_model;  // the latest sample's
  double answers_cost_usd = 0;  // what the samples' extra answers cost

  double mean_score() const { return graded == 0 ? 0 : score_sum / static_cast<double>(graded); }
  double reference_ratio() const { return reference_sum > 0 ? served_sum / reference_sum : 0; }
  // Adds another day's (or tenant's) figures to these; tenant and day stay.
  void add(const DailyQuality& other);
};

class QualityAggregator {
 public:
  // registry: where the metrics above are registered (nullptr = none).
  // dedupe_window: how many recent (tenant, id) pairs are remembered, so an
  // event published twice (a request processed again after a worker crash)
  // counts once.
  explicit QualityAggregator(prometheus::Registry* registry = nullptr, std::size_t dedupe_window = 100000);
  ~QualityAggregator();
  QualityAggregator(const QualityAggregator&) = delete;
  QualityAggregator& operator=(const QualityAggregator&) = delete;

  // Counts one event; false when its (tenant, id) was already counted.
  bool add(const QualityEvent& event);
  // parse_quality_event + add; the parse error otherwise (count it, skip the record).
  [[nodiscard]] Result<bool> apply(std::string_view payload);

  // Rows sorted by tenant, model, tier; only `tenant`'s when given.
  std::vector<QualityRow> rows(const std::optional<std::string>& tenant = std::nullopt) const;
  // Every tenant's samples of one model and tier together.
  QualityRow total(std::string_view model, std::string_view tier) const;
  // Per tenant and day, sorted by tenant then day; only `tenant`'s when given.
  std::vector<DailyQuality> daily(const std::optional<std::string>& tenant = std::nullopt) const;
  // Every day together, of `tenant` or (nullopt) of every tenant.
  DailyQuality overall(const std::optional<std::string>& tenant = std::nullopt) const;

 private:
  struct Metrics;
  mutable std::mutex mutex_;
  std::vector<QualityRow> rows_;  // few: one per tenant x model x tier
  std::vector<DailyQuality> daily_;  // one per tenant x day
  std::size_t dedupe_window_;
  std::unordered_set<std::string> seen_;
  std::deque<std::string> seen_order_;
  std::unique_ptr<Metrics> metrics_;
};

}  // namespace cascade
