#pragma once
// Asynchronous event producer for one event loop. Events that matter for
// offset commits (terminal replies, cost events, dead letters) carry a token;
// their delivery reports come back to the loop's DeliveryListener on poll().
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/config.h"
#include "core/result.h"
#include "kafka/kafka.h"

namespace cascade {

class DeliveryListener {
 public:
  virtual ~DeliveryListener() = default;
  // Called on the thread that calls EventProducer::poll(). err == 0 means the
  // event is durably in the topic (acks=all).
  virtual void on_delivery(std::uint64_t token, rd_kafka_resp_err_t err) = 0;
};

class EventProducer {
 public:
  // Token value for events whose delivery nobody waits for (e.g. chunks).
  static constexpr std::uint64_t kUntracked = 0;

  static Result<std::unique_ptr<EventProducer>> create(const KafkaConfig& config,
                                                       const std::string& bootstrap,
                                                       DeliveryListener* listener = nullptr);
  ~EventProducer();

  // Enqueues one event (copied). Waits (serving delivery reports) while the
  // local queue is full, up to a bound, then fails with unavailable.
  Result<void> produce(const std::string& topic, std::string_view key, std::string_view payload,
                       std::uint64_t token = kUntracked);

  // Serves delivery reports; returns how many were served.
  int poll(int timeout_ms = 0);
  // Waits until everything enqueued is delivered (or timeout). True if all were.
  bool flush(int timeout_ms);
  // Drops everything not yet sent (a crash-like stop, used by tests).
  void purge();
  // Makes the producer's queue write to `fd` when reports arrive (event loop wake-up).
  void enable_wakeup_fd(int fd);

  std::size_t queued() const;
  rd_kafka_t* handle() const { return handle_.get(); }

 private:
  EventProducer() = default;
  static void on_delivery_report(rd_kafka_t* rk, const rd_kafka_message_t* msg, void* opaque);

  KafkaHandle handle_;
  DeliveryListener* listener_ = nullptr;
};

}  // namespace cascade
