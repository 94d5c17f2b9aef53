#include "producers/event_producer.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace cascade {

Result<std::unique_ptr<EventProducer>> EventProducer::create(const KafkaConfig& config,
                                                             const std::string& bootstrap,
                                                             DeliveryListener* listener, bool java_partitioner) {
  auto event_producer = std::unique_ptr<EventProducer>(new EventProducer());
  event_producer->listener_ = listener;
  auto producer = KafkaProducer::create(
      config, bootstrap,
      {.java_partitioner = java_partitioner,
       .on_delivery = [self = event_producer.get()](const DeliveryReport& report) { self->on_delivery(report); }});
  if (!producer) return std::unexpected(producer.error());
  event_producer->producer_ = std::move(*producer);
  return event_producer;
}

EventProducer::~EventProducer() = default;

void EventProducer::on_delivery(const DeliveryReport& report) {
  if (!report.delivered) spdlog::warn("kafka: delivery to {} failed: {}", report.topic, report.error);
  if (report.token == kUntracked || !listener_) return;
  listener_->on_delivery(report);
}

Result<void> EventProducer::produce(const std::string& topic, std::string_view key, std::string_view payload,
                                    std::uint64_t token) {
  // Behind a backlog, in line: events of one request keep their order.
  if (backlog_.empty()) {
    auto queued = producer_->produce(topic, {.key = key, .value = payload, .token = token});
    if (!queued) return std::unexpected(queued.error());
    if (*queued == KafkaProducer::Enqueued::yes) return {};
  }
  backlog_.push_back(Pending{topic, std::string(key), std::string(payload), token});
  return {};
}

void EventProducer::drain_backlog() {
  while (!backlog_.empty()) {
    Pending& next = backlog_.front();
    auto queued = producer_->produce(next.topic, {.key = next.key, .value = next.payload, .token = next.token});
    if (queued && *queued == KafkaProducer::Enqueued::queue_full) return;
    if (!queued) {
      spdlog::warn("{}", queued.error().message);
      // Its caller was told it was queued: a tracked event learns its fate here.
      if (next.token != kUntracked && listener_) {
        DeliveryReport report;
        report.token = next.token;
        report.permanent = true;
        report.error = queued.error().message;
        report.topic = next.topic;
        listener_->on_delivery(report);
      }
    }
    backlog_.pop_front();
  }
}

int EventProducer::poll(int timeout_ms) {
  drain_backlog();
  const int served = producer_->poll(backlog_.empty() ? timeout_ms : 0);
  drain_backlog();
  return served;
}

bool EventProducer::flush(int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!backlog_.empty()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    poll(10);
  }
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return producer_->flush(static_cast<int>(std::max<std::int64_t>(left.count(), 0)));
}

void EventProducer::purge() {
  backlog_.clear();
  producer_->purge();
}

void EventProducer::enable_wakeup_fd(int fd) { producer_->enable_wakeup_fd(fd); }

std::size_t EventProducer::queued() const { return producer_->queued() + backlog_.size(); }

}  // namespace cascade
