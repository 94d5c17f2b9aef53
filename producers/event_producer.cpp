#include "producers/event_producer.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace cascade {
namespace {

// Delivery failures that retrying cannot fix.
bool permanent_delivery_error(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
      return true;
    default:
      return false;
  }
}

}  // namespace

Result<std::unique_ptr<EventProducer>> EventProducer::create(const KafkaConfig& config,
                                                             const std::string& bootstrap,
                                                             DeliveryListener* listener) {
  auto conf = make_client_conf(config, bootstrap, ClientRole::producer);
  if (!conf) return std::unexpected(conf.error());
  auto producer = std::unique_ptr<EventProducer>(new EventProducer());
  producer->listener_ = listener;
  rd_kafka_conf_set_opaque(*conf, producer.get());
  rd_kafka_conf_set_dr_msg_cb(*conf, &EventProducer::on_delivery_report);
  auto handle = make_client(*conf, ClientRole::producer);
  if (!handle) return std::unexpected(handle.error());
  producer->handle_ = std::move(*handle);
  return producer;
}

EventProducer::~EventProducer() = default;

void EventProducer::on_delivery_report(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
  auto* self = static_cast<EventProducer*>(opaque);
  const auto token = reinterpret_cast<std::uintptr_t>(msg->_private);
  if (msg->err) {
    spdlog::warn("kafka: delivery to {} failed: {}", rd_kafka_topic_name(msg->rkt), rd_kafka_err2str(msg->err));
  }
  if (token == kUntracked || !self->listener_) return;
  DeliveryReport report;
  report.token = token;
  report.delivered = !msg->err;
  report.permanent = msg->err && permanent_delivery_error(msg->err);
  if (msg->err) report.error = rd_kafka_err2str(msg->err);
  self->listener_->on_delivery(report);
}

EventProducer::Enqueued EventProducer::enqueue(const std::string& topic, std::string_view key,
                                               std::string_view payload, std::uint64_t token, std::string* error) {
  const auto err = rd_kafka_producev(
      handle_.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
      RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<std::uintptr_t>(token))), RD_KAFKA_V_END);
  if (!err) return Enqueued::yes;
  if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) return Enqueued::queue_full;
  *error = std::string("kafka produce to ") + topic + ": " + rd_kafka_err2str(err);
  return Enqueued::failed;
}

Result<void> EventProducer::produce(const std::string& topic, std::string_view key, std::string_view payload,
                                    std::uint64_t token) {
  // Behind a backlog, in line: events of one request keep their order.
  if (backlog_.empty()) {
    std::string error;
    switch (enqueue(topic, key, payload, token, &error)) {
      case Enqueued::yes:
        return {};
      case Enqueued::failed:
        return fail(ErrorCode::unavailable, std::move(error));
      case Enqueued::queue_full:
        break;
    }
  }
  backlog_.push_back(Pending{topic, std::string(key), std::string(payload), token});
  return {};
}

void EventProducer::drain_backlog() {
  while (!backlog_.empty()) {
    Pending& next = backlog_.front();
    std::string error;
    const Enqueued outcome = enqueue(next.topic, next.key, next.payload, next.token, &error);
    if (outcome == Enqueued::queue_full) return;
    if (outcome == Enqueued::failed) {
      spdlog::warn("{}", error);
      // Its caller was told it was queued: a tracked event learns its fate here.
      if (next.token != kUntracked && listener_) {
        DeliveryReport report;
        report.token = next.token;
        report.permanent = true;
        report.error = error;
        listener_->on_delivery(report);
      }
    }
    backlog_.pop_front();
  }
}

int EventProducer::poll(int timeout_ms) {
  drain_backlog();
  const int served = rd_kafka_poll(handle_.get(), backlog_.empty() ? timeout_ms : 0);
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
  return rd_kafka_flush(handle_.get(), static_cast<int>(std::max<std::int64_t>(left.count(), 0))) ==
         RD_KAFKA_RESP_ERR_NO_ERROR;
}

void EventProducer::purge() {
  backlog_.clear();
  rd_kafka_purge(handle_.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(handle_.get(), 0);
}

void EventProducer::enable_wakeup_fd(int fd) {
  rd_kafka_queue_t* q = rd_kafka_queue_get_main(handle_.get());
  static const char kByte = 1;
  rd_kafka_queue_io_event_enable(q, fd, &kByte, 1);
  rd_kafka_queue_destroy(q);
}

std::size_t EventProducer::queued() const {
  return static_cast<std::size_t>(rd_kafka_outq_len(handle_.get())) + backlog_.size();
}

}  // namespace cascade
