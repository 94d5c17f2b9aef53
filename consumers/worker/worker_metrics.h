#pragma once
// Prometheus metrics of a worker process (served on worker.metrics_listen):
// provider attempts by outcome, retries, fallbacks, stream timeouts, breaker
// state per provider+model, requests by outcome, in-flight requests, requests
// that followed an identical in-flight request (single flight).
// Thread-safe; each event loop caches its metric handles (no lock per event).
#include <memory>
#include <string>

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace cascade {

class WorkerMetrics {
 public:
  WorkerMetrics();
  ~WorkerMetrics();
  std::shared_ptr<prometheus::Registry> registry() const;
  // Text exposition of everything recorded (tests, debugging).
  std::string serialize() const;

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

   private:
    struct Cache;
    WorkerMetrics& metrics_;
    std::unique_ptr<Cache> cache_;
  };

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cascade
