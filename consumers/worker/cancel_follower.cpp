#include "consumers/worker/cancel_follower.h"

#include <spdlog/spdlog.h>

#include "events/events.h"

namespace cascade {

CancelVerdict judge_cancel(std::string_view payload, std::int64_t record_timestamp_ms, std::int64_t now_ms,
                           std::int64_t window_ms, const CompletedAnswerStore* completed) {
  auto cancel = parse_cancel_event(payload);
  if (!cancel) return {std::nullopt, "invalid", std::move(cancel.error().message)};
  const std::int64_t at = record_timestamp_ms >= 0 ? record_timestamp_ms : cancel->ts_ms;
  if (at <= 0 || now_ms - at > window_ms) return {std::nullopt, "stale", {}};
  // Answered already: a delivery of it again is replayed, never cancelled.
  if (completed && completed->get(cancel->tenant, cancel->id)) return {std::nullopt, "completed", {}};
  return {CancelNotice{std::move(*cancel), at + window_ms}, nullptr, {}};
}

struct CancelFollower::Impl {
  std::int64_t window_ms = 0;
  const CompletedAnswerStore* completed = nullptr;
  WorkerStats* stats = nullptr;
  std::optional<WorkerMetrics::Recorder> metrics;  // used by one thread at a time
  Sink sink;
  std::unique_ptr<TopicFollower> follower;

  void on_record(const KafkaRecord& record) {
    CancelVerdict verdict = judge_cancel(record.payload(), record.timestamp_ms(), now_ms(), window_ms, completed);
    if (verdict.notice) {
      spdlog::debug("worker: cancel of request {} tenant {} ({})", verdict.notice->cancel.id,
                    verdict.notice->cancel.tenant, verdict.notice->cancel.reason);
      sink(*verdict.notice);
      return;
    }
    if (!verdict.problem.empty())
      spdlog::warn("worker: skipping cancel record {}/{}: {}", record.partition(), record.offset(), verdict.problem);
    stats->cancels_ignored++;
    if (metrics) metrics->cancel_ignored(verdict.ignored);
  }
};

Result<std::unique_ptr<CancelFollower>> CancelFollower::open(const Config& config, const std::string& bootstrap,
                                                             const CompletedAnswerStore* completed,
                                                             WorkerStats& stats, WorkerMetrics* metrics, Sink sink) {
  auto follower = std::unique_ptr<CancelFollower>(new CancelFollower());
  auto impl = std::make_unique<Impl>();
  impl->window_ms = config.worker.cancel_window_ms;
  impl->completed = completed;
  impl->stats = &stats;
  if (metrics) impl->metrics.emplace(*metrics);
  impl->sink = std::move(sink);
  Impl* self = impl.get();
  auto topic = TopicFollower::open(config.kafka, bootstrap, {config.kafka.cancels_topic}, "cancels",
                                   [self](const KafkaRecord& record) { self->on_record(record); });
  if (!topic) return std::unexpected(topic.error());
  impl->follower = std::move(*topic);
  follower->impl_ = std::move(impl);
  return follower;
}

CancelFollower::~CancelFollower() { stop(); }

Result<void> CancelFollower::restore(int timeout_ms) { return impl_->follower->restore(timeout_ms); }

Result<void> CancelFollower::start() { return impl_->follower->start(); }

void CancelFollower::stop() {
  if (impl_ && impl_->follower) impl_->follower->stop();
}

}  // namespace cascade
