// KafkaProducer: keyed records with a delivery report each; and
// produce_record_and_wait, its one-record use.
#include <algorithm>

#include "kafka/native.h"

namespace cascade {

static_assert(kAnyPartition == RD_KAFKA_PARTITION_UA);

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

struct KafkaProducer::Impl {
  KafkaHandle handle;
  std::function<void(const DeliveryReport&)> on_delivery;

  static void on_delivery_report(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
    const auto* self = static_cast<const Impl*>(opaque);
    if (!self->on_delivery) return;
    DeliveryReport report;
    report.token = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(msg->_private));
    report.delivered = !msg->err;
    report.permanent = msg->err && permanent_delivery_error(msg->err);
    if (msg->err) report.error = rd_kafka_err2str(msg->err);  // a static string
    report.topic = msg->rkt ? rd_kafka_topic_name(msg->rkt) : "";
    report.purged = msg->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || msg->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT;
    self->on_delivery(report);
  }
};

KafkaProducer::KafkaProducer() : impl_(std::make_unique<Impl>()) {}
KafkaProducer::~KafkaProducer() = default;

Result<std::unique_ptr<KafkaProducer>> KafkaProducer::create(const KafkaConfig& config, const std::string& bootstrap,
                                                             KafkaProducerOptions options) {
  std::vector<std::pair<std::string, std::string>> overrides;
  // Java clients' partitioner, so every client agrees on a key's partition
  // (compacted topics: a key's records must stay in one partition).
  if (options.java_partitioner) overrides.emplace_back("partitioner", "murmur2_random");
  auto conf = make_client_conf(config, bootstrap, ClientRole::producer, "", overrides);
  if (!conf) return std::unexpected(conf.error());
  auto producer = std::unique_ptr<KafkaProducer>(new KafkaProducer());
  producer->impl_->on_delivery = std::move(options.on_delivery);
  rd_kafka_conf_set_opaque(*conf, producer->impl_.get());
  rd_kafka_conf_set_dr_msg_cb(*conf, &Impl::on_delivery_report);
  auto handle = make_client(*conf, ClientRole::producer);
  if (!handle) return std::unexpected(handle.error());
  producer->impl_->handle = std::move(*handle);
  return producer;
}

Result<KafkaProducer::Enqueued> KafkaProducer::produce(const std::string& topic, const OutgoingRecord& record) {
  rd_kafka_headers_t* headers = nullptr;
  if (record.header) {
    headers = rd_kafka_headers_new(1);
    rd_kafka_header_add(headers, record.header->name.data(), static_cast<ssize_t>(record.header->name.size()),
                        record.header->value.data(), static_cast<ssize_t>(record.header->value.size()));
  }
  // A null payload is the tombstone; an empty value is not.
  void* payload = record.value ? const_cast<char*>(record.value->data()) : nullptr;
  const std::size_t payload_len = record.value ? record.value->size() : 0;
  const auto err = rd_kafka_producev(
      impl_->handle.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(record.partition),
      RD_KAFKA_V_KEY(const_cast<char*>(record.key.data()), record.key.size()), RD_KAFKA_V_VALUE(payload, payload_len),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
      RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<std::uintptr_t>(record.token))), RD_KAFKA_V_END);
  if (!err) return Enqueued::yes;
  // On failure the headers were not handed over.
  if (headers) rd_kafka_headers_destroy(headers);
  if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) return Enqueued::queue_full;
  return fail(ErrorCode::unavailable, "kafka produce to " + topic + ": " + rd_kafka_err2str(err));
}

int KafkaProducer::poll(int timeout_ms) { return rd_kafka_poll(impl_->handle.get(), timeout_ms); }

bool KafkaProducer::flush(int timeout_ms) {
  return rd_kafka_flush(impl_->handle.get(), timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

void KafkaProducer::purge() {
  rd_kafka_purge(impl_->handle.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(impl_->handle.get(), 0);
}

std::size_t KafkaProducer::queued() const {
  return static_cast<std::size_t>(std::max(rd_kafka_outq_len(impl_->handle.get()), 0));
}

void KafkaProducer::enable_wakeup_fd(int fd) {
  rd_kafka_queue_t* queue = rd_kafka_queue_get_main(impl_->handle.get());
  static const char kByte = 1;
  rd_kafka_queue_io_event_enable(queue, fd, &kByte, 1);
  rd_kafka_queue_destroy(queue);
}

Result<void> produce_record_and_wait(const KafkaConfig& config, const std::string& bootstrap,
                                     const std::string& topic, std::string_view key,
                                     const std::optional<std::string>& value, int timeout_ms,
                                     std::optional<RecordHeader> header) {
  std::optional<std::string> failure;  // set by the report: "" when delivered
  auto producer = KafkaProducer::create(
      config, bootstrap,
      {.java_partitioner = true,
       .on_delivery = [&failure](const DeliveryReport& report) { failure = std::string(report.error); }});
  if (!producer) return std::unexpected(producer.error());
  std::optional<std::string_view> payload;
  if (value) payload = *value;
  auto queued = (*producer)->produce(topic, {.key = key, .value = payload, .header = header});
  if (!queued) return std::unexpected(queued.error());
  if (*queued == KafkaProducer::Enqueued::queue_full)
    return fail(ErrorCode::unavailable, topic + ": the producer's queue is full");
  (*producer)->flush(timeout_ms);
  if (!failure) return fail(ErrorCode::timeout, topic + ": record not confirmed by the cluster in time");
  if (!failure->empty()) return fail(ErrorCode::unavailable, topic + ": " + *failure);
  return {};
}

}  // namespace cascade
