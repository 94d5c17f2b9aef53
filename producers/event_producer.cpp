#include "producers/event_producer.h"

#include <spdlog/spdlog.h>

namespace cascade {

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
    spdlog::warn("kafka: delivery to {} failed: {}", rd_kafka_topic_name(msg->rkt),
                 rd_kafka_err2str(msg->err));
  }
  if (token != kUntracked && self->listener_) self->listener_->on_delivery(token, msg->err);
}

Result<void> EventProducer::produce(const std::string& topic, std::string_view key,
                                    std::string_view payload, std::uint64_t token) {
  // Bounded wait for queue space: backpressure reaches the caller as an error
  // instead of unbounded memory.
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const auto err = rd_kafka_producev(
        handle_.get(), RD_KAFKA_V_TOPIC(topic.c_str()),
        RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<std::uintptr_t>(token))), RD_KAFKA_V_END);
    if (!err) return {};
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      return fail(ErrorCode::unavailable, std::string("kafka produce to ") + topic + ": " +
                                              rd_kafka_err2str(err));
    }
    rd_kafka_poll(handle_.get(), 10);
  }
  return fail(ErrorCode::unavailable, "kafka producer queue full");
}

int EventProducer::poll(int timeout_ms) { return rd_kafka_poll(handle_.get(), timeout_ms); }

bool EventProducer::flush(int timeout_ms) {
  return rd_kafka_flush(handle_.get(), timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

void EventProducer::purge() {
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
  return static_cast<std::size_t>(rd_kafka_outq_len(handle_.get()));
}

}  // namespace cascade
