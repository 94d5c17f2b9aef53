#pragma once
// The closed loop of routing (docs/routing.md, "Closed loop"): the judge's
// grades of calibration samples move, per tenant and policy, the cuts that
// send prompts to the cheaper tiers, so that the judged quality of each
// cheaper tier stays at or above quality.target of the reference model's on
// the same prompts.
//
// A calibration sample is one prompt answered by every tier's routed model
// and by the reference (catalog.baseline_model), each answer graded 1-5 by
// the judge (events/quality_event.h, QualityCalibration). A cut is in units
// of RouteDecision::score (higher = needs a stronger model): a prompt scoring
// at or below the small cut goes to the small tier, else at or below the
// medium cut to the medium tier, else to the large tier.
//
// - ThresholdTuner (pure: no clock, no I/O): the evidence, the decision with
//   its confidence bounds, and the state per tenant and key. Deterministic in
//   the order of its samples, so every process that replays a tenant's
//   quality events publishes the same records (idempotent sink).
// - TuningRecord: one record of the compacted topic cascade.router-updates
//   (kafka.topics.router_updates): the cuts in force for one tenant and key.
// - TunedCuts: what a worker process applies, a table of the latest records
//   read lock-free by every router of the process.
#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "events/quality_event.h"
#include "kafka/kafka.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace cascade {

// ---- evidence and decision (pure) --------------------------------------------

// One prompt's grades: the cheaper tier's answer and the reference's answer.
struct PairedGrade {
  double route_score = 0;  // RouteDecision::score of the prompt (its effective score)
  double cheap = 0;        // 1..5
  double reference = 0;    // 1..5
};

// The judged quality of a cheaper tier, relative to the reference, over the
// samples a cut would send it: ratio = sum(cheap) / sum(reference) (mean
// grades on the 1-5 scale), with a normal confidence interval of the ratio
// estimator (delta method), ratio +- z x se.
struct CutEvidence {
  std::size_t samples = 0;
  double ratio = 0;
  double lower = 0;
  double upper = 0;
};

// Over samples with floor < route_score <= cut (floor: the tier below's cut,
// -infinity for the small tier). samples == 0: ratio, lower, upper are 0.
CutEvidence evidence_at(std::span<const PairedGrade> samples, double floor, double cut, double z);

struct TuningOptions {
  double target = 0.95;        // quality.target: cheaper tier's judged quality / the reference's
  std::size_t min_samples = 50;  // below this many samples under a cut, it neither rises to it nor is judged too loose
  double z = 2.58;             // width of the confidence interval, in standard errors (two-sided 99%)
  double max_step = 0.05;      // largest move of a cut per decision
  // The most recent samples kept per tenant and key. A decision weighs
  // those since the last move only, so that each move rests on evidence of
  // its own.
  std::size_t window = 2000;
  std::size_t every = 20;      // a decision after this many new samples of a tenant and key
};

struct CutDecision {
  double cut = 0;
  bool moved = false;
  CutEvidence evidence;  // at the new cut
  // "raised: lower bound 0.962 >= 0.95 over 212 samples", "lowered: upper
  // bound 0.91 < 0.95 ...", "kept: ...".
  std::string why;
};

// The next cut from `current`. Lowered (by at most max_step, to the highest
// sample score whose ratio reaches the target, else by max_step) when at
// least min_samples fall under the current cut and the upper bound of their
// ratio is below the target: evidence that the tier serves worse than
// allowed. Else raised to the highest sample score within max_step above it
// when at least min_samples fall under that and the lower bound of their
// ratio reaches the target: evidence that more prompts can go cheaper (one
// candidate, so that noise gets one chance, not one per score). Else kept:
// little evidence moves nothing, and evidence at the target moves nothing.
// The cut stays within [floor, ceiling].
CutDecision next_cut(std::span<const PairedGrade> samples, double floor, double current, double ceiling,
                     const TuningOptions& options);

// ---- records of cascade.router-updates -----------------------------------------

// The tuning key of a routed request: its policy label ("" = the router's own
// thresholds, shown as "default") and the preference whose thresholds applied.
std::string tuning_key(std::string_view policy_label, std::string_view preference);

struct TierCuts {
  double small = 0;
  double medium = 0;
  bool operator==(const TierCuts&) const = default;
};

struct TuningRecord {
  std::string tenant;
  std::string key;          // tuning_key
  TierCuts cuts;            // in force
  TierCuts configured;      // the configuration's, when these were tuned from it
  std::uint64_t version = 0;   // decisions that moved a cut, for this tenant and key
  CutEvidence small;        // at cuts.small
  CutEvidence medium;       // at cuts.medium (above cuts.small)
  double target = 0;
  std::int64_t ts_ms = 0;   // the quality event's time of the decision
  std::string why;          // the last decision, in words
};

// Record key: tenant '\0' key.
std::string tuning_record_key(std::string_view tenant, std::string_view key);
std::string encode_tuning_record(const TuningRecord& record);
// invalid_request naming the field.
[[nodiscard]] Result<TuningRecord> decode_tuning_record(std::string_view value);

// An operator's reset (`cascade tuning reset`): a marker on the same topic,
// key "reset" '\0' tenant '\0' key (kept by compaction beside the cuts it
// resets), that the ledger's tuner acts on: the key's cuts go back to the
// configured ones (it publishes the key's tombstone) and its evidence starts
// again. key "" = every key of the tenant. Workers skip markers.
struct TuningReset {
  std::string tenant;
  std::string key;  // "" = every key of the tenant
  std::int64_t ts_ms = 0;
};
std::string tuning_reset_key(std::string_view tenant, std::string_view key);
bool is_tuning_reset_key(std::string_view record_key);
std::string encode_tuning_reset(const TuningReset& reset);
[[nodiscard]] Result<TuningReset> decode_tuning_reset(std::string_view value);

// ---- the tuner (the ledger process) -----------------------------------------

// One calibration sample as the tuner reads it from a quality event.
struct CalibrationSample {
  std::string tenant;
  std::string key;
  double route_score = 0;
  TierCuts cuts;        // in force when the request was routed
  TierCuts configured;  // the configuration's
  std::optional<double> small;   // the small tier's grade (no small model: none)
  std::optional<double> medium;
  double reference = 0;
  std::int64_t ts_ms = 0;
};

// Keeps the recent samples of every tenant and key and decides their cuts.
// Single-threaded (the caller serializes).
class ThresholdTuner {
 public:
  explicit ThresholdTuner(TuningOptions options);

  // Adds a sample; the record to publish when a decision moved a cut.
  std::optional<TuningRecord> add(const CalibrationSample& sample);
  // Every tenant and key whose cuts were ever moved: their records now (after
  // a replay of the quality topic, to publish the state once).
  std::vector<TuningRecord> moved_records() const;
  // The record of one tenant and key, moved or not; nullopt when no sample came.
  std::optional<TuningRecord> record(std::string_view tenant, std::string_view key) const;
  const TuningOptions& options() const { return options_; }

  // An operator's reset, applied at the key's first sample at or after its
  // time (so that a replay of the quality topic applies it where it applied
  // live), or by apply_pending_resets(). A reset of a key resets its cuts
  // to the configured ones and drops its evidence.
  void schedule_reset(const TuningReset& reset);
  // Applies every scheduled reset not applied yet; the tuning_record_keys
  // whose cuts it reset (to tombstone: the workers' configured cuts apply).
  std::vector<std::string> apply_pending_resets();
  // The tuning_record_keys reset and not moved since (after a replay: their
  // tombstones, as moved_records() are the records).
  std::vector<std::string> reset_keys() const;

 private:
  struct State {
    TuningRecord record;
    std::deque<CalibrationSample> samples;
    std::size_t fresh = 0;  // the newest samples, those since the last move: the evidence of the next
    std::size_t since_decision = 0;
    std::int64_t reset_through_ms = -1;  // the latest reset applied
  };
  TuningRecord decide(State& state) const;
  // Resets `state` when a scheduled reset covers it and is due at now_ms
  // (nullopt: whatever its time); true when it did.
  bool reset_if_due(State& state, std::optional<std::int64_t> now_ms);

  TuningOptions options_;
  std::map<std::string, State> states_;  // tuning_record_key -> state
  std::map<std::string, std::int64_t> resets_;  // tuning_reset_key -> its latest time
};

// The calibration sample of a quality event; nullopt when it carries none.
std::optional<CalibrationSample> calibration_sample(const QualityEvent& event);

// ---- the ledger side: tuner + publisher ---------------------------------------

// The tuner fed with the quality topic's calibration samples, publishing
// every moved cut to kafka.topics.router_updates (compacted; key =
// tuning_record_key). While the quality topic is replayed (before
// go_live()) nothing is published; go_live() publishes every moved key's
// record once. Records are a function of a tenant's events in topic order,
// so two ledgers publish the same ones. A failed delivery is logged and
// counted; the key's next decision or the next start publishes it again.
// With a Prometheus registry it exports, per tenant, key and tier (small |
// medium), what the ledger's /metrics shows of the loop:
//
//   cascade_tuning_cut{tenant,key,tier}            gauge, the cut in force
//   cascade_tuning_quality_ratio{tenant,key,tier}  gauge, the tier's judged quality / the reference's under it
//   cascade_tuning_quality_lower{tenant,key,tier}  gauge, the lower bound of that ratio
//   cascade_tuning_moves_total{tenant,key}         counter, decisions that moved a cut
//
// so an alert can fire when a tier's lower bound stays under quality.target.
// Thread-safe.
class RouterTuningService {
 public:
  [[nodiscard]] static Result<std::unique_ptr<RouterTuningService>> start(const KafkaConfig& config,
                                                                         const std::string& bootstrap,
                                                                         std::string topic, TuningOptions options,
                                                                         prometheus::Registry* registry = nullptr);
  ~RouterTuningService();
  void on_quality_event(const QualityEvent& event);
  // A record of the router-updates topic: resets (tuning_reset_key) are
  // scheduled, and applied at once when live; the rest (the cuts, its own
  // output) are ignored.
  void on_router_update(std::string_view record_key, std::optional<std::string_view> value);
  void go_live();
  // Waits for the records queued so far (up to timeout_ms); true when none is left.
  bool flush(int timeout_ms);

  std::optional<TuningRecord> record(std::string_view tenant, std::string_view key) const;
  std::uint64_t samples() const;
  std::uint64_t published() const;  // records delivered
  std::uint64_t failed() const;     // records that failed delivery

 private:
  RouterTuningService() = default;
  void publish(const TuningRecord& record);
  void publish_tombstone(const std::string& record_key);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- the tuned cuts a worker applies ------------------------------------------

// The latest record of every tenant and key, as the process read them from
// kafka.topics.router_updates. Thread-safe: find() reads an immutable
// snapshot without a lock (routers, every request); apply() copies and swaps
// (the follower's thread, rare).
class TunedCuts {
 public:
  TunedCuts();
  // A record of the topic: value nullopt (tombstone) removes the key.
  // invalid_request when the value is not a tuning record (skip it).
  [[nodiscard]] Result<void> apply(std::string_view record_key, std::optional<std::string_view> value);
  void set(const TuningRecord& record);

  // The record for a tenant and key; nullptr when none. The pointer stays
  // valid while the returned snapshot is held.
  // tenant -> key -> record; std::less<> so that a lookup by string_view
  // allocates nothing.
  using Map = std::map<std::string, std::map<std::string, TuningRecord, std::less<>>, std::less<>>;
  struct Found {
    std::shared_ptr<const Map> snapshot;
    const TuningRecord* record = nullptr;
  };
  Found find(std::string_view tenant, std::string_view key) const;
  // Every record (tools: `cascade tuning show`).
  std::shared_ptr<const Map> snapshot() const { return snapshot_.load(std::memory_order_acquire); }
  bool empty() const { return size_.load(std::memory_order_acquire) == 0; }
  std::size_t size() const { return size_.load(std::memory_order_acquire); }

 private:
  void store(std::shared_ptr<const Map> next);
  std::mutex write_mutex_;
  std::atomic<std::shared_ptr<const Map>> snapshot_;
  std::atomic<std::size_t> size_{0};
};

// Follows kafka.topics.router_updates into `cuts`: every partition from the
// beginning (a global table), restored before it returns, then on the
// follower's own thread. Malformed records are logged and skipped.
// unavailable when the topic does not exist.
[[nodiscard]] Result<std::unique_ptr<TopicFollower>> follow_router_updates(const KafkaConfig& config,
                                                                         const std::string& bootstrap,
                                                                         const std::string& topic,
                                                                         std::shared_ptr<TunedCuts> cuts,
                                                                         int restore_timeout_ms = 30000);

}  // namespace cascade
