#include "consumers/worker/event_loop.h"

#include <fcntl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>
#include <utility>

#include "events/events.h"

namespace cascade {
namespace {

constexpr int kConsumeBatch = 256;
constexpr auto kTickInterval = std::chrono::milliseconds(50);
constexpr int kIdleWaitMs = 50;
constexpr auto kShutdownFlush = std::chrono::seconds(10);

}  // namespace

EventLoop::EventLoop(const WorkerOptions& options, WorkerStats& stats, int index)
    : options_(options),
      config_(options.config),
      stats_(stats),
      index_(index),
      tokens_(options.tokens ? options.tokens : TokenCounter::bytes_only()) {
  if (options.metrics) recorder_.emplace(*options.metrics);
}

EventLoop::~EventLoop() {
  if (thread_.joinable()) thread_.join();
  if (wake_[0] >= 0) ::close(wake_[0]);
  if (wake_[1] >= 0) ::close(wake_[1]);
}

Result<void> EventLoop::init() {
  if (::pipe2(wake_, O_NONBLOCK | O_CLOEXEC) != 0) return fail(ErrorCode::internal, "pipe2 failed");
  http_ = std::make_unique<HttpClient>();
  auto registry = ProviderRegistry::build(config_.providers, *http_, options_.env);
  if (!registry) return std::unexpected(registry.error());
  providers_ = std::make_unique<ProviderRegistry>(std::move(*registry));

  auto producer = EventProducer::create(config_.kafka, options_.bootstrap, this);
  if (!producer) return std::unexpected(producer.error());
  producer_ = std::move(*producer);
  producer_->enable_wakeup_fd(wake_[1]);
  outbox_ = std::make_unique<Outbox>(config_.kafka, requests_, *producer_,
                                     [this](std::uint64_t serial) { delivered_.push_back(serial); });

  context_ = std::make_unique<StageContext>(StageContext{.config = config_,
                                                         .catalog = *options_.catalog,
                                                         .host = *this,
                                                         .requests = requests_,
                                                         .stats = stats_,
                                                         .metrics = recorder_ ? &*recorder_ : nullptr,
                                                         .tokens = *tokens_,
                                                         .seed = std::random_device{}()});
  lifecycle_ = std::make_unique<RequestLifecycle>(
      *context_, LifecycleParts{.completed = options_.completed,
                                .cache = options_.cache,
                                .budgets = options_.budgets ? &options_.budgets->book() : nullptr,
                                .answer_verifier = options_.answer_verifier,
                                .route_scorer = options_.route_scorer,
                                .route_policies = options_.route_policies,
                                .tuned_cuts = options_.tuned_cuts});

  auto consumer = GroupConsumer::open(config_.kafka, options_.bootstrap,
                                      {config_.kafka.worker_group, config_.kafka.requests_topic,
                                       config_.worker.commit_interval_ms, this});
  if (!consumer) return std::unexpected(consumer.error());
  consumer_ = std::move(*consumer);
  consumer_->enable_wakeup_fd(wake_[1]);
  return {};
}

void EventLoop::launch() { thread_ = std::thread([this] { run(); }); }

void EventLoop::request_stop(int drain_timeout_ms, std::shared_ptr<CommitBarrier> barrier) {
  commit_barrier_ = std::move(barrier);
  drain_deadline_ = Clock::now() + std::chrono::milliseconds(drain_timeout_ms);
  stopping_.store(true);
  wake();
}

void EventLoop::request_abort() {
  aborting_.store(true);
  wake();
}

void EventLoop::join() {
  if (thread_.joinable()) thread_.join();
}

void EventLoop::post_cancel(const CancelNotice& notice) {
  {
    std::lock_guard lock(cancels_mutex_);
    // The loop would remember no more than this many either.
    if (posted_cancels_.size() >= config_.worker.cancel_max_pending) {
      posted_cancels_.pop_front();
      posted_cancels_dropped_++;
    }
    posted_cancels_.push_back(notice);
  }
  wake();
}

void EventLoop::apply_cancels() {
  std::deque<CancelNotice> notices;
  std::size_t dropped = 0;
  {
    std::lock_guard lock(cancels_mutex_);
    notices.swap(posted_cancels_);
    dropped = std::exchange(posted_cancels_dropped_, 0);
  }
  if (dropped > 0) {
    stats_.cancels_forgotten += dropped;
    if (recorder_) recorder_->cancels_forgotten(dropped);
  }
  for (const auto& notice : notices) lifecycle_->on_cancel(notice);
}

// -------------------------------------------------------------- the loop ----

void EventLoop::run() {
  while (true) {
    drain_wake_pipe();
    if (aborting_.load()) break;
    apply_cancels();  // before any record: a cancel that came first finds its request unread
    const bool stopping = stopping_.load();
    bool more_waiting = false;
    if (!stopping) more_waiting = consume_batch();
    outbox_->resend_failed();
    const int next_timer_ms = run_due_timers();
    tick();
    int wait_ms = more_waiting ? 0 : kIdleWaitMs;
    if (next_timer_ms >= 0) wait_ms = std::min(wait_ms, next_timer_ms);
    if (const auto due = lifecycle_->next_chunk_due()) {
      wait_ms = std::min<int>(wait_ms, static_cast<int>(std::max<std::int64_t>(
                                           0, std::chrono::ceil<std::chrono::milliseconds>(*due - Clock::now()).count())));
    }
    http_->poll(wait_ms, wake_[0]);
    producer_->poll(0);
    finish_delivered();
    store_offsets();
    apply_backpressure();
    finish_catch_ups();
    lifecycle_->end_of_iteration(Clock::now());
    // Side calls still running (grades) are waited for too, within the drain time.
    if (stopping && ((requests_.empty() && lifecycle_->side_calls_running() == 0) || Clock::now() > drain_deadline_))
      break;
  }
  if (aborting_.load()) {
    shutdown_abort();
  } else {
    shutdown_graceful();
  }
}

// Returns true when the batch limit was hit (more records are probably
// queued; the queue's wake-up fd only fires when it goes from empty to non-empty).
bool EventLoop::consume_batch() {
  const int room = std::min(config_.worker.max_in_flight - active_requests(),
                            max_held_requests() - static_cast<int>(requests_.size()));
  // At capacity the partitions are paused; still poll once to serve
  // rebalances (a record that was already fetched is processed, not dropped).
  const int limit = std::max(1, std::min(kConsumeBatch, room));
  for (int i = 0; i < limit; ++i) {
    std::optional<KafkaRecord> record = consumer_->poll(0);
    if (!record) return false;
    if (!record->ok()) {
      if (!record->partition_end()) spdlog::warn("worker: consumer error: {}", record->error());
      continue;
    }
    stats_.consumed++;
    watermarks_[record->partition()].track(record->offset());
    lifecycle_->on_record(record->partition(), record->offset(), record->payload());
    update_in_flight();
  }
  return room > 1;
}

// Timers whose time has come; returns ms until the next one (or -1).
int EventLoop::run_due_timers() {
  const auto now = Clock::now();
  while (!timers_.empty() && timers_.begin()->first <= now) {
    const Timer timer = timers_.begin()->second;
    timers_.erase(timers_.begin());
    lifecycle_->on_timer(timer.serial, timer.kind);
  }
  if (timers_.empty()) return -1;
  return static_cast<int>(
      std::max<std::int64_t>(0, std::chrono::ceil<std::chrono::milliseconds>(timers_.begin()->first - now).count()));
}

void EventLoop::tick() {
  const auto now = Clock::now();
  if (now - last_tick_ < kTickInterval) return;
  last_tick_ = now;
  lifecycle_->on_tick(now);
}

// Requests whose tracked events are all delivered finish, once their
// completed answer is in the changelog: their offsets may then be committed.
void EventLoop::finish_delivered() {
  if (!awaiting_changelog_.empty()) {
    // Answers whose changelog record has been confirmed since finish now.
    std::erase_if(awaiting_changelog_, [&](std::uint64_t serial) {
      const Request* r = requests_.find(serial);
      if (r && !answer_replicated(*r)) return false;
      delivered_.push_back(serial);
      return true;
    });
  }
  for (const auto serial : std::exchange(delivered_, {})) {
    Request* r = requests_.find(serial);
    if (!r) continue;
    if (!answer_replicated(*r)) {
      awaiting_changelog_.push_back(serial);
      continue;
    }
    if (auto w = watermarks_.find(r->partition); w != watermarks_.end()) w->second.complete(r->offset);
    stats_.completed++;
    if (r->delivery.ended) ended_--;
    lifecycle_->on_finished(*r);
    requests_.erase(serial);
  }
  update_in_flight();
}

bool EventLoop::answer_replicated(const Request& r) const {
  return r.delivery.completed_seq == 0 || !options_.completed ||
         options_.completed->store().published(r.delivery.completed_seq);
}

void EventLoop::store_offsets() {
  std::vector<std::pair<std::int32_t, std::int64_t>> next_offsets;
  for (auto& [partition, watermark] : watermarks_) {
    if (auto next = watermark.take_committable()) next_offsets.emplace_back(partition, *next);
  }
  consumer_->store_offsets(next_offsets);
}

void EventLoop::update_in_flight() {
  // Every request the loop holds, ended ones awaiting delivery included.
  const auto in_flight = static_cast<std::int64_t>(requests_.size());
  stats_.in_flight.store(in_flight);
  if (in_flight > stats_.peak_in_flight.load()) stats_.peak_in_flight.store(in_flight);
  if (recorder_) recorder_->in_flight(index_, static_cast<double>(in_flight));
}

// ---------------------------------------------------------- backpressure ----

// Paused at max_in_flight, or while the producer's queue is full (events
// wait in its backlog); resumed at resume_fraction with the backlog gone.
void EventLoop::apply_backpressure() {
  const int in_flight = active_requests();
  const int resume_at = static_cast<int>(config_.worker.max_in_flight * config_.worker.resume_fraction);
  const bool backlogged = producer_->backlog() > 0;
  // Ended requests waiting for delivery reports hold memory, not the loop:
  // they count only against the larger bound.
  const bool held_full = static_cast<int>(requests_.size()) >= max_held_requests();
  if (!paused_ && (in_flight >= config_.worker.max_in_flight || backlogged || held_full)) {
    set_paused(true);
  } else if (paused_ && in_flight <= resume_at && !backlogged &&
             static_cast<int>(requests_.size()) < max_held_requests()) {
    set_paused(false);
  }
}

void EventLoop::set_paused(bool pause) {
  const std::vector<std::int32_t> assignment = consumer_->assignment();
  if (pause) {
    consumer_->pause(assignment);
    stats_.pauses++;
  } else {
    consumer_->resume(assignment);
    for (const auto& catch_up : catch_ups_) consumer_->pause(catch_up.partitions);
  }
  paused_ = pause;
}

// Resumes the partitions whose changelog catch-up is done (or overdue: then
// a request redelivered from a crashed worker may be answered again).
void EventLoop::finish_catch_ups() {
  if (catch_ups_.empty()) return;
  std::erase_if(catch_ups_, [&](CatchUp& catch_up) {
    const bool done = options_.changelog->caught_up(catch_up.ticket);
    if (!done && Clock::now() < catch_up.deadline) return false;
    if (!done) {
      stats_.catch_up_timeouts++;
      spdlog::warn("worker[{}]: changelog not caught up within state.restore_timeout_ms; serving {} partition(s) "
                   "anyway (a request redelivered from a crashed worker may be paid twice)",
                   index_, catch_up.partitions.size());
    }
    if (!paused_) consumer_->resume(catch_up.partitions);
    return true;
  });
}

void EventLoop::on_assigned(const std::vector<std::int32_t>& partitions) {
  for (const auto p : partitions) watermarks_[p];
  if (options_.changelog != nullptr && !partitions.empty()) {
    CatchUp catch_up;
    catch_up.ticket = options_.changelog->request_catch_up();
    catch_up.deadline = Clock::now() + std::chrono::milliseconds(config_.state.restore_timeout_ms);
    catch_up.partitions = partitions;
    catch_ups_.push_back(std::move(catch_up));
    consumer_->pause(partitions);
  } else if (paused_) {
    consumer_->pause(partitions);
  }
  context_->partition_share.update(consumer_->topic_share());
  spdlog::info("worker[{}]: assigned {} partition(s); holds {} of {}", index_, partitions.size(),
               context_->partition_share.assigned(), context_->partition_share.partitions());
}

void EventLoop::on_revoked(const std::vector<std::int32_t>& partitions) {
  for (auto& catch_up : catch_ups_) {
    std::erase_if(catch_up.partitions,
                  [&](std::int32_t p) { return std::ranges::find(partitions, p) != partitions.end(); });
  }
  // Revoked: commit what is done; in-flight requests of these partitions are
  // redelivered to their new owner (their replies may then appear twice).
  store_offsets();
  if (auto ok = consumer_->commit(); !ok) spdlog::debug("worker: commit on revoke: {}", ok.error().message);
  for (const auto p : partitions) watermarks_.erase(p);
  context_->partition_share.update(consumer_->topic_share());
  spdlog::info("worker[{}]: revoked {} partition(s)", index_, partitions.size());
}

// ---------------------------------------------------------- RequestHost ----

std::int64_t EventLoop::wall_ms() const { return now_ms(); }

ChatProvider* EventLoop::provider(std::string_view name) { return providers_->find(name); }

void EventLoop::cancel_call(std::uint64_t transfer) { http_->cancel(transfer); }

bool EventLoop::publish(const std::string& topic, std::string_view key, std::string_view payload) {
  if (auto ok = producer_->produce(topic, key, payload); !ok) {
    spdlog::warn("worker: event for {} (key {}) not sent: {}", topic, key, ok.error().message);
    return false;
  }
  return true;
}

void EventLoop::publish_tracked(Request& r, const std::string& topic, std::string key, std::string payload) {
  outbox_->send(r, topic, std::move(key), std::move(payload));
}

void EventLoop::terminal_published(Request& r) {
  // Out of max_in_flight from now: what is left is Kafka's delivery reports.
  if (!std::exchange(r.delivery.ended, true)) ended_++;
  outbox_->terminal_sent(r);
}

void EventLoop::schedule(Clock::time_point due, std::uint64_t serial, TimerKind kind) {
  timers_.emplace(due, Timer{serial, kind});
}

void EventLoop::on_delivery(const DeliveryReport& report) { outbox_->on_delivery(report); }

// ---------------------------------------------------------------- the end ----

void EventLoop::shutdown_graceful() {
  // Let outstanding events reach the broker, then commit the final watermark.
  const auto deadline = Clock::now() + kShutdownFlush;
  while (producer_->queued() > 0 && Clock::now() < deadline) {
    producer_->poll(50);
    outbox_->resend_failed();
  }
  producer_->poll(0);
  finish_delivered();
  store_offsets();
  if (auto ok = consumer_->commit(); !ok) spdlog::warn("worker: final commit: {}", ok.error().message);
  // The other loops still drain and commit: none leaves the group before.
  if (commit_barrier_) commit_barrier_->arrive_and_wait(std::max(drain_deadline_, Clock::now()) + kShutdownFlush);
  consumer_->close();
  if (!requests_.empty()) {
    spdlog::warn("worker[{}]: stopped with {} request(s) unfinished; they will be redelivered", index_,
                 requests_.size());
  }
  if (const auto running = lifecycle_->side_calls_running(); running > 0)
    spdlog::info("worker[{}]: stopped with {} grading call(s) unfinished", index_, running);
  lifecycle_->shutdown();
  requests_.clear();
  ended_ = 0;
  http_.reset();
}

void EventLoop::shutdown_abort() {
  http_.reset();  // drops transfers without callbacks
  lifecycle_->shutdown();
  producer_->purge();
  consumer_->abandon();
  requests_.clear();
  ended_ = 0;
}

void EventLoop::wake() {
  static const char kByte = 1;
  [[maybe_unused]] auto n = ::write(wake_[1], &kByte, 1);
}

void EventLoop::drain_wake_pipe() {
  char buf[256];
  while (::read(wake_[0], buf, sizeof buf) > 0) {
  }
}

}  // namespace cascade
