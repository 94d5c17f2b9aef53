#pragma once
// The tracked events of one loop's requests (terminal replies, cost events,
// dead letters) until Kafka confirms them: a request's offset may be
// committed only once every one of its tracked events is delivered.
//
// Delivery failures are retried (up to a bound); an event its topic can
// never take (unknown topic, too large, not authorized) goes to the
// dead-letter topic instead, so a requester's broken reply topic never
// blocks the partition. A request whose events are all out and delivered is
// handed to `on_delivered`.
//
// Threading: the event loop's thread (delivery reports come from its poll).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "consumers/worker/request.h"
#include "kafka/kafka_config.h"
#include "producers/event_producer.h"

namespace cascade {

class Outbox {
 public:
  Outbox(const KafkaConfig& config, RequestTable& requests, EventProducer& producer,
         std::function<void(std::uint64_t serial)> on_delivered);

  // Sends one tracked event of the request.
  void send(Request& r, const std::string& topic, std::string key, std::string payload);
  // The request's last tracked event was sent.
  void terminal_sent(Request& r);
  // A delivery report of a tracked event.
  void on_delivery(const DeliveryReport& report);
  // Sends again what failed since the last call.
  void resend_failed();

 private:
  void produce(Request& r, std::uint64_t token);
  void delivered_one(Request& r);

  const KafkaConfig& config_;
  RequestTable& requests_;
  EventProducer& producer_;
  std::function<void(std::uint64_t)> on_delivered_;
  std::vector<std::uint64_t> retry_;  // tokens to send again
};

}  // namespace cascade
