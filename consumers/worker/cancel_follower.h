#pragma once
// A worker process's reader of kafka.topics.cancels (docs/events.md, "Cancel
// event"): every partition, no consumer group, from the beginning (a
// TopicFollower). Each record is judged once per process (judge_cancel):
// a valid cancel within worker.cancel_window_ms whose request has no
// completed answer goes to the sink, which hands it to every event loop
// (they alone know which requests they hold); the others are counted as
// ignored (invalid, stale, completed). Old cancels are ignored, so reading
// the topic from its start costs little.
//
// Threading: records are judged and sunk on the caller's thread during
// restore(), then on the follower's own thread after start(). The sink must
// be thread-safe. Errors: `unavailable` when the topic does not exist.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"
#include "consumers/worker/cancel_stage.h"
#include "consumers/worker/worker.h"
#include "consumers/worker/worker_metrics.h"
#include "kafka/kafka.h"
#include "state/state.h"

namespace cascade {

// What becomes of one record of the cancels topic.
struct CancelVerdict {
  std::optional<CancelNotice> notice;  // for every event loop
  const char* ignored = nullptr;       // else why not: invalid, stale, completed
  std::string problem;                 // invalid: what is wrong with it
};

// A cancel record's payload and timestamp (-1 = none), judged at now_ms: its
// time is the record's timestamp, else its ts_ms; older than window_ms (or
// with no time at all) it is stale. `completed` may be null (no check).
CancelVerdict judge_cancel(std::string_view payload, std::int64_t record_timestamp_ms, std::int64_t now_ms,
                           std::int64_t window_ms, const CompletedAnswerStore* completed);

class CancelFollower {
 public:
  using Sink = std::function<void(const CancelNotice& notice)>;
  // `completed` (may be null), `stats` and `metrics` (may be null) outlive the follower.
  [[nodiscard]] static Result<std::unique_ptr<CancelFollower>> open(const Config& config, const std::string& bootstrap,
                                                                    const CompletedAnswerStore* completed,
                                                                    WorkerStats& stats, WorkerMetrics* metrics,
                                                                    Sink sink);
  ~CancelFollower();
  CancelFollower(const CancelFollower&) = delete;
  CancelFollower& operator=(const CancelFollower&) = delete;

  // Reads the topic to its end (before start()): the cancels that came before
  // this worker did reach its loops before their first request.
  [[nodiscard]] Result<void> restore(int timeout_ms);
  [[nodiscard]] Result<void> start();
  void stop();

 private:
  CancelFollower() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cascade
