#pragma once
// One worker event loop: the I/O driver of the requests on its thread, and
// nothing else. Each iteration it
//   - consumes prompt records (a GroupConsumer member of the workers' group)
//     and hands each to the request lifecycle;
//   - drives curl multi (provider streams, side calls, embeddings);
//   - fires due timers and periodic checks (stream timeouts, deadlines);
//   - polls the producer (delivery reports of tracked events: the Outbox);
//   - finishes requests whose terminal events are delivered (and whose
//     completed answer is in the changelog), advancing the per-partition
//     offset watermark and storing committable offsets;
//   - applies backpressure: partitions pause at worker.max_in_flight or
//     while the producer has a backlog, and resume at resume_fraction;
//   - keeps newly assigned partitions paused until the state changelog has
//     caught up (a redelivered request must find its completed answer).
// Cancels (docs/events.md, "Cancel event") are posted to it by the worker's
// cancel follower from its thread and applied on the loop's thread at the
// start of its next iteration, before any record is read (the wake pipe
// ends its wait at once).
// Request logic lives in the lifecycle and its stages (request_lifecycle.h).
//
// Threading: run() on the loop's own thread; request_stop, request_abort
// and post_cancel from any thread.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "consumers/worker/offset_watermark.h"
#include "consumers/worker/outbox.h"
#include "consumers/worker/request_host.h"
#include "consumers/worker/request_lifecycle.h"
#include "consumers/worker/stage_context.h"
#include "consumers/worker/worker.h"
#include "kafka/kafka.h"
#include "producers/event_producer.h"
#include "providers/provider.h"

namespace cascade {

// The loops of one worker stopping together: each makes its final commit,
// then waits (bounded) for the others' before its consumer leaves the group.
// The first loop to leave would start a rebalance, and a commit made during
// one fails ("rebalance in progress"): its requests would be redelivered
// and answered twice (bench/README.md, finding 5). Any thread.
class CommitBarrier {
 public:
  explicit CommitBarrier(int loops) : left_(loops) {}
  void arrive_and_wait(Clock::time_point deadline) {
    std::unique_lock lock(mu_);
    if (--left_ <= 0) {
      cv_.notify_all();
      return;
    }
    cv_.wait_until(lock, deadline, [this] { return left_ <= 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int left_;
};

class EventLoop final : public RequestHost, public DeliveryListener, public RebalanceListener {
 public:
  // `options` and `stats` outlive the loop.
  EventLoop(const WorkerOptions& options, WorkerStats& stats, int index);
  ~EventLoop() override;

  // Creates its clients (HTTP, providers, Kafka) and subscribes. Errors:
  // bad provider configuration, Kafka client creation.
  [[nodiscard]] Result<void> init();
  void launch();
  // Drains, then commits; with a barrier, leaves the group only once every
  // loop sharing it has committed (or the barrier's wait ran out).
  void request_stop(int drain_timeout_ms, std::shared_ptr<CommitBarrier> barrier = nullptr);
  void request_abort();
  void join();
  // A cancel for whatever request of this loop it matches (any thread). At
  // most worker.cancel_max_pending wait for the loop (a topic read from its
  // start, before the loop runs): past that the oldest are forgotten (counted).
  void post_cancel(const CancelNotice& notice);

  // RequestHost
  Clock::time_point now() const override { return Clock::now(); }
  std::int64_t wall_ms() const override;
  ChatProvider* provider(std::string_view name) override;
  void cancel_call(std::uint64_t transfer) override;
  HttpClient& http() override { return *http_; }
  bool publish(const std::string& topic, std::string_view key, std::string_view payload) override;
  void publish_tracked(Request& r, const std::string& topic, std::string key, std::string payload) override;
  void terminal_published(Request& r) override;
  void schedule(Clock::time_point due, std::uint64_t serial, TimerKind kind) override;

  // DeliveryListener
  void on_delivery(const DeliveryReport& report) override;
  // RebalanceListener: called from the consumer's poll, on this loop's thread.
  void on_assigned(const std::vector<std::int32_t>& partitions) override;
  void on_revoked(const std::vector<std::int32_t>& partitions) override;

 private:
  void run();
  bool consume_batch();
  int run_due_timers();
  void tick();
  void finish_delivered();
  bool answer_replicated(const Request& r) const;
  void store_offsets();
  void apply_backpressure();
  void set_paused(bool pause);
  void finish_catch_ups();
  void update_in_flight();
  void shutdown_graceful();
  void shutdown_abort();
  void wake();
  void drain_wake_pipe();
  void apply_cancels();

  const WorkerOptions& options_;
  const Config& config_;
  WorkerStats& stats_;
  const int index_;
  int wake_[2] = {-1, -1};
  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<ProviderRegistry> providers_;
  std::optional<WorkerMetrics::Recorder> recorder_;
  std::shared_ptr<const TokenCounter> tokens_;
  std::unique_ptr<EventProducer> producer_;
  std::unique_ptr<GroupConsumer> consumer_;
  RequestTable requests_;
  std::unique_ptr<StageContext> context_;
  std::unique_ptr<RequestLifecycle> lifecycle_;
  std::unique_ptr<Outbox> outbox_;

  struct Timer {
    std::uint64_t serial;
    TimerKind kind;
  };
  std::multimap<Clock::time_point, Timer> timers_;
  Clock::time_point last_tick_{};
  std::unordered_map<std::int32_t, PartitionWatermark> watermarks_;
  std::vector<std::uint64_t> delivered_;  // requests whose tracked events are all delivered
  // Finished requests whose completed answer is not yet in the changelog.
  std::vector<std::uint64_t> awaiting_changelog_;
  // Partitions assigned to this loop that stay paused until the changelog
  // applier has caught up (request_catch_up): the previous owner's completed
  // answers must be here before any of its requests is redelivered here.
  struct CatchUp {
    std::uint64_t ticket = 0;
    std::vector<std::int32_t> partitions;
    Clock::time_point deadline;
  };
  std::vector<CatchUp> catch_ups_;
  std::mutex cancels_mutex_;
  std::deque<CancelNotice> posted_cancels_;  // guarded by cancels_mutex_
  std::size_t posted_cancels_dropped_ = 0;   // guarded by cancels_mutex_
  bool paused_ = false;
  std::shared_ptr<CommitBarrier> commit_barrier_;  // set before stopping_
  // Requests whose terminal event is published and which wait only for
  // delivery reports (and their changelog record): they no longer count
  // against worker.max_in_flight (bench/README.md, finding 4), only against
  // max_held_requests().
  int ended_ = 0;
  int active_requests() const { return static_cast<int>(requests_.size()) - ended_; }
  int max_held_requests() const { return 2 * config_.worker.max_in_flight; }
  std::atomic<bool> stopping_{false};
  std::atomic<bool> aborting_{false};
  Clock::time_point drain_deadline_;
  std::thread thread_;
};

}  // namespace cascade
