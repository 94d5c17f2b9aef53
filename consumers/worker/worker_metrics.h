#pragma once
// Prometheus metrics of a worker process (served on worker.metrics_listen):
// provider attempts by outcome, retries, fallbacks, stream timeouts, breaker
// state per provider+model, requests by outcome, in-flight requests, requests
// that followed an identical in-flight request (single flight), cancels, and the
// state store and its changelog replication (StateMetricsSampler).
// Thread-safe; each event loop caches its metric handles (no lock per event).
#include <chrono>
#include <cstddef>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace cascade {

struct StateStats;
struct ChangelogLag;
class StateStore;
class StateChangelog;

class WorkerMetrics {
 public:
  WorkerMetrics();
  ~WorkerMetrics();
  std::shared_ptr<prometheus::Registry> registry() const;
  // Text exposition of everything recorded (tests, debugging).
  std::string serialize() const;

  // The state store's figures and its changelog's (docs/state.md, "Metrics"):
  // gauges take the values, counters advance by what the store's totals grew
  // since the previous call. lag == nullptr: the store is not replicated (no
  // changelog metrics). The replication delay and the foreign-apply age
  // appear once a record of another worker was applied.
  void record_state(const StateStats& stats, const ChangelogLag* lag);

  // Per event loop: handles looked up once per label set.
  class Recorder {
   public:
    explicit Recorder(WorkerMetrics& metrics);
    ~Recorder();
    void attempt(const std::string& provider, const std::string& model, bool success);
    void retry(const std::string& provider, const std::string& model);
    void fallback(const std::string& provider, const std::string& model, const std::string& why);
    void timeout(const std::string& provider, const std::string& kind);  // first_token | idle
    // 0 closed, 1 half-open, 2 open.
    void breaker_state(const std::string& provider, const std::string& model, int state);
    void request(const std::string& outcome);  // final | error | rejected | replayed
    void in_flight(int loop, double value);
    // A request joined an identical request in flight instead of calling upstream.
    void single_flight_join();
    // A request answered from the response cache (kind: exact | semantic).
    void cache_hit(const std::string& kind);
    // A semantic lookup that got no embedding from the remote embedder and
    // was a miss; reason: the error code (timeout, unavailable, provider_error...).
    void semantic_embedding_failure(const std::string& reason);
    // Cheap-first cascade: what became of a cascaded request's cheap answer.
    // outcome accepted (reason checked | judged | judge_failed | unchecked)
    // or escalated (reason refusal | empty | truncated | content_filter |
    // not_json | judge_score | cheap_failed).
    void cascade(const std::string& outcome, const std::string& reason);
    // A budget acted on a request before its provider call: refused | downgraded.
    void budget(const std::string& outcome);
    // A grading call ended (purpose cascade | quality; outcome graded | cancelled |
    // error | timeout | unreadable), or an agreement call (purpose
    // agreement; outcome answered | error | timeout | cancelled).
    void judge_call(const std::string& purpose, const std::string& outcome);
    // Quality sampling: published | failed (no grade) | skipped (too many in flight).
    void quality_sample(const std::string& outcome);
    // A request ended by a cancel (docs/events.md, "Cancel event"), by where
    // it was: queued (cancelled before it was read) or its state (calling,
    // waiting_for_slot, backing_off, checking, admitting, embedding, following).
    void cancelled(const std::string& where);
    // A cancel that ended nothing, by reason: invalid, stale (older than
    // worker.cancel_window_ms), completed (its request was answered),
    // finished (its request had ended), wrong_tenant.
    void cancel_ignored(const std::string& reason);
    // Remembered cancels pushed out of a loop's full table before they expired.
    void cancels_forgotten(std::size_t n);

   private:
    struct Cache;
    WorkerMetrics& metrics_;
    std::unique_ptr<Cache> cache_;
  };

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Copies StateStore::stats() and StateChangelog::lag() into the metrics at
// start and then every `interval`, on a thread of its own: never on a request's
// path. Destroy it before the store and the changelog.
class StateMetricsSampler {
 public:
  // changelog == nullptr: a store that is not replicated.
  StateMetricsSampler(WorkerMetrics& metrics, const StateStore& store, const StateChangelog* changelog,
                      std::chrono::milliseconds interval = std::chrono::seconds(1));
  ~StateMetricsSampler();  // stops the thread
  StateMetricsSampler(const StateMetricsSampler&) = delete;
  StateMetricsSampler& operator=(const StateMetricsSampler&) = delete;

  // One sample now, on the calling thread.
  void sample();

 private:
  WorkerMetrics& metrics_;
  const StateStore& store_;
  const StateChangelog* changelog_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace cascade
