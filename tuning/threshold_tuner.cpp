// Evidence, decisions and the per-tenant state of the closed loop
// (tuning/tuning.h; docs/routing.md, "Closed loop").
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "tuning/tuning.h"

namespace cascade {
namespace {

// A ratio of mean grades on 1..5 lies in [1/5, 5]: the interval is clamped there.
constexpr double kMaxRatio = 5;

// The samples between a floor and a ceiling, sorted by score, with prefix
// sums: the evidence at any cut in O(log n).
class SortedEvidence {
 public:
  SortedEvidence(std::span<const PairedGrade> samples, double floor, double z) : z_(z) {
    for (const PairedGrade& s : samples)
      if (s.route_score > floor) sorted_.push_back(s);
    std::sort(sorted_.begin(), sorted_.end(),
              [](const PairedGrade& a, const PairedGrade& b) { return a.route_score < b.route_score; });
    sums_.resize(sorted_.size() + 1);
    for (std::size_t i = 0; i < sorted_.size(); ++i) {
      const PairedGrade& s = sorted_[i];
      Sums& next = sums_[i + 1];
      next = sums_[i];
      next.c += s.cheap;
      next.r += s.reference;
      next.cc += s.cheap * s.cheap;
      next.rr += s.reference * s.reference;
      next.cr += s.cheap * s.reference;
    }
  }

  CutEvidence at(double cut) const {
    const auto end = std::upper_bound(sorted_.begin(), sorted_.end(), cut,
                                      [](double c, const PairedGrade& s) { return c < s.route_score; });
    const std::size_t n = static_cast<std::size_t>(end - sorted_.begin());
    CutEvidence e;
    e.samples = n;
    if (n == 0) return e;
    const Sums& s = sums_[n];
    if (s.r <= 0) return e;
    e.ratio = s.c / s.r;
    if (n < 2) {
      e.lower = 0;
      e.upper = kMaxRatio;
      return e;
    }
    // Delta method: var(R) ~ sum (c - R r)^2 / (n (n - 1)) / mean(r)^2.
    const double residual = std::max(0.0, s.cc - 2 * e.ratio * s.cr + e.ratio * e.ratio * s.rr);
    const double dn = static_cast<double>(n);
    const double se = std::sqrt(residual / (dn * (dn - 1))) / (s.r / dn);
    e.lower = std::clamp(e.ratio - z_ * se, 0.0, kMaxRatio);
    e.upper = std::clamp(e.ratio + z_ * se, 0.0, kMaxRatio);
    return e;
  }

  // Distinct sample scores in (from, to], highest first.
  std::vector<double> scores_between(double from, double to) const {
    std::vector<double> out;
    for (auto it = sorted_.rbegin(); it != sorted_.rend(); ++it) {
      if (it->route_score > to) continue;
      if (it->route_score <= from) break;
      if (out.empty() || out.back() != it->route_score) out.push_back(it->route_score);
    }
    return out;
  }

 private:
  struct Sums {
    double c = 0, r = 0, cc = 0, rr = 0, cr = 0;
  };
  double z_;
  std::vector<PairedGrade> sorted_;
  std::vector<Sums> sums_;
};

std::string describe(const char* verb, const char* bound_name, double bound, const char* relation, double target,
                     const CutEvidence& e, double cut) {
  char buffer[160];
  std::snprintf(buffer, sizeof buffer, "%s to %.3f: %s %.3f %s %.2f over %zu samples (ratio %.3f)", verb, cut,
                bound_name, bound, relation, target, e.samples, e.ratio);
  return buffer;
}

}  // namespace

CutEvidence evidence_at(std::span<const PairedGrade> samples, double floor, double cut, double z) {
  return SortedEvidence(samples, floor, z).at(cut);
}

CutDecision next_cut(std::span<const PairedGrade> samples, double floor, double current, double ceiling,
                     const TuningOptions& options) {
  current = std::clamp(current, floor, std::max(floor, ceiling));
  const SortedEvidence evidence(samples, floor, options.z);
  const CutEvidence now = evidence.at(current);

  if (now.samples >= options.min_samples && now.upper < options.target) {
    // Too loose: the tier serves worse than allowed. Step down to the
    // highest score whose ratio reaches the target, at most max_step.
    const double lowest = std::max(floor, current - options.max_step);
    double cut = lowest;
    for (const double s : evidence.scores_between(lowest, current)) {
      if (s >= current) continue;
      if (evidence.at(s).ratio >= options.target) {
        cut = s;
        break;
      }
    }
    CutDecision d{cut, cut != current, evidence.at(cut), {}};
    d.why = describe("lowered", "upper bound", now.upper, "<", options.target, now, cut);
    return d;
  }

  // One candidate only, the highest sample score within a step: testing
  // every score in the step would find a lucky one in noise.
  const double highest = std::min(ceiling, current + options.max_step);
  if (const auto above = evidence.scores_between(current, highest); !above.empty()) {
    const double s = above.front();
    const CutEvidence e = evidence.at(s);
    if (e.samples >= options.min_samples && e.lower >= options.target) {
      CutDecision d{s, true, e, {}};
      d.why = describe("raised", "lower bound", e.lower, ">=", options.target, e, s);
      return d;
    }
  }
  CutDecision d{current, false, now, {}};
  char buffer[160];
  if (now.samples < options.min_samples)
    std::snprintf(buffer, sizeof buffer, "kept %.3f: %zu samples < %zu", current, now.samples, options.min_samples);
  else
    std::snprintf(buffer, sizeof buffer, "kept %.3f: ratio %.3f in [%.3f, %.3f] over %zu samples", current, now.ratio,
                  now.lower, now.upper, now.samples);
  d.why = buffer;
  return d;
}

std::string tuning_key(std::string_view policy_label, std::string_view preference) {
  std::string key = policy_label.empty() ? std::string("default") : std::string(policy_label);
  key += '/';
  key += preference;
  return key;
}

ThresholdTuner::ThresholdTuner(TuningOptions options) : options_(options) {}

std::optional<TuningRecord> ThresholdTuner::add(const CalibrationSample& sample) {
  const std::string id = tuning_record_key(sample.tenant, sample.key);
  auto [it, fresh] = states_.try_emplace(id);
  State& state = it->second;
  if (fresh) {
    state.record.tenant = sample.tenant;
    state.record.key = sample.key;
    state.record.cuts = sample.cuts;
    state.record.configured = sample.configured;
  }
  // A reset scheduled before this sample applies first.
  reset_if_due(state, sample.ts_ms);
  if (!fresh && !(sample.configured == state.record.configured)) {
    // The configuration changed: workers ignore cuts tuned from another one,
    // so tuning starts again from the new cuts. The samples stay evidence:
    // a prompt's grades do not depend on the cuts.
    state.record.cuts = sample.configured;
    state.record.configured = sample.configured;
  }
  state.record.target = options_.target;
  state.samples.push_back(sample);
  while (state.samples.size() > options_.window) state.samples.pop_front();
  state.fresh = std::min(state.fresh + 1, state.samples.size());
  if (++state.since_decision < options_.every) return std::nullopt;
  state.since_decision = 0;
  const TierCuts before = state.record.cuts;
  state.record = decide(state);
  state.record.ts_ms = sample.ts_ms;
  if (state.record.cuts == before) return std::nullopt;
  state.record.version++;
  // The next move needs evidence of its own: deciding again on the samples
  // that moved this cut would move it again, in runs, on a lucky window.
  state.fresh = 0;
  return state.record;
}

TuningRecord ThresholdTuner::decide(State& state) const {
  TuningRecord record = state.record;
  std::vector<PairedGrade> small, medium;
  small.reserve(state.fresh);
  medium.reserve(state.fresh);
  for (auto it = state.samples.end() - static_cast<std::ptrdiff_t>(state.fresh); it != state.samples.end(); ++it) {
    const CalibrationSample& s = *it;
    if (s.small) small.push_back({s.route_score, *s.small, s.reference});
    if (s.medium) medium.push_back({s.route_score, *s.medium, s.reference});
  }
  constexpr double kUnbounded = std::numeric_limits<double>::infinity();
  // Scores lie in [0, 1]; a configured cut above 1 sends everything cheaper already.
  const double top = std::max(1.0, record.cuts.medium);
  const CutDecision s = next_cut(small, -kUnbounded, record.cuts.small, record.cuts.medium, options_);
  const CutDecision m = next_cut(medium, s.cut, record.cuts.medium, top, options_);
  record.cuts = {s.cut, m.cut};
  record.small = s.evidence;
  record.medium = m.evidence;
  record.why = "small " + s.why + "; medium " + m.why;
  return record;
}

std::vector<TuningRecord> ThresholdTuner::moved_records() const {
  std::vector<TuningRecord> out;
  for (const auto& [id, state] : states_)
    if (state.record.version > 0 && !(state.record.cuts == state.record.configured)) out.push_back(state.record);
  return out;
}

void ThresholdTuner::schedule_reset(const TuningReset& reset) {
  std::int64_t& at = resets_[tuning_reset_key(reset.tenant, reset.key)];
  at = std::max(at, reset.ts_ms);
}

bool ThresholdTuner::reset_if_due(State& state, std::optional<std::int64_t> now_ms) {
  if (resets_.empty()) return false;  // the usual case: no key built per sample
  std::int64_t due = -1;
  for (const std::string& key : {tuning_reset_key(state.record.tenant, state.record.key),
                                 tuning_reset_key(state.record.tenant, "")}) {
    const auto it = resets_.find(key);
    if (it != resets_.end() && it->second > state.reset_through_ms && (!now_ms || *now_ms >= it->second))
      due = std::max(due, it->second);
  }
  if (due < 0) return false;
  state.reset_through_ms = due;
  state.record.cuts = state.record.configured;
  state.record.small = {};
  state.record.medium = {};
  state.record.why = "reset by an operator";
  state.samples.clear();
  state.fresh = 0;
  state.since_decision = 0;
  return true;
}

std::vector<std::string> ThresholdTuner::reset_keys() const {
  std::vector<std::string> out;
  for (const auto& [id, state] : states_)
    if (state.reset_through_ms >= 0 && state.record.cuts == state.record.configured) out.push_back(id);
  return out;
}

std::vector<std::string> ThresholdTuner::apply_pending_resets() {
  std::vector<std::string> out;
  for (auto& [id, state] : states_)
    if (reset_if_due(state, std::nullopt)) out.push_back(id);
  return out;
}

std::optional<TuningRecord> ThresholdTuner::record(std::string_view tenant, std::string_view key) const {
  const auto it = states_.find(tuning_record_key(tenant, key));
  if (it == states_.end()) return std::nullopt;
  return it->second.record;
}

}  // namespace cascade
