#pragma once
// Asynchronous event producer for one event loop. Events that matter for
// offset commits (terminal replies, cost events, dead letters) carry a token;
// their delivery reports come back to the loop's DeliveryListener on poll().
//
// produce() never waits: when librdkafka's queue is full, events wait in a
// local backlog, in the order they were produced, and poll() moves them on
// as room frees up. A non-empty backlog is the caller's signal to stop taking
// new work (an event loop pauses its partitions), never a stall of its thread.
//
// Threading: one thread calls everything (the event loop's).
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>

#include "kafka/kafka_config.h"
#include "core/result.h"
#include "kafka/kafka.h"

namespace cascade {

// Told the outcome of each tracked event (DeliveryReport, in kafka/kafka.h).
class DeliveryListener {
 public:
  virtual ~DeliveryListener() = default;
  // Called on the thread that calls EventProducer::poll().
  virtual void on_delivery(const DeliveryReport& report) = 0;
};

class EventProducer {
 public:
  // Token value for events whose delivery nobody waits for (e.g. chunks).
  static constexpr std::uint64_t kUntracked = 0;

  // java_partitioner: the Java client's murmur2 partitioner
  // (KafkaProducerOptions::java_partitioner), for a topic other clients
  // produce to by key too: every producer of prompt events uses it, so a key
  // lands on one partition whoever sends it. Otherwise librdkafka's default.
  [[nodiscard]] static Result<std::unique_ptr<EventProducer>> create(const KafkaConfig& config,
                                                                     const std::string& bootstrap,
                                                                     DeliveryListener* listener = nullptr,
                                                                     bool java_partitioner = false);
  ~EventProducer();

  // Enqueues one event (copied), without waiting: into librdkafka's queue, or
  // behind the backlog when that is full or not empty. Errors: unavailable,
  // for failures queuing cannot fix (e.g. an invalid topic name).
  [[nodiscard]] Result<void> produce(const std::string& topic, std::string_view key, std::string_view payload,
                                     std::uint64_t token = kUntracked);

  // Moves backlogged events on, then serves delivery reports; returns how
  // many reports were served.
  int poll(int timeout_ms = 0);
  // Waits until everything enqueued, backlog included, is delivered (or the
  // timeout passed). True if all were.
  bool flush(int timeout_ms);
  // Drops everything not yet sent, backlog included (a crash-like stop, used by tests).
  void purge();
  // Makes the producer's queue write to `fd` when reports arrive (event loop wake-up).
  void enable_wakeup_fd(int fd);

  // Events not yet delivered: in librdkafka's queue or in the backlog.
  std::size_t queued() const;
  // Events waiting for room in librdkafka's queue.
  std::size_t backlog() const { return backlog_.size(); }

 private:
  EventProducer() = default;
  void on_delivery(const DeliveryReport& report);
  void drain_backlog();

  struct Pending {
    std::string topic;
    std::string key;
    std::string payload;
    std::uint64_t token = kUntracked;
  };
  std::unique_ptr<KafkaProducer> producer_;
  DeliveryListener* listener_ = nullptr;
  std::deque<Pending> backlog_;
};

}  // namespace cascade
