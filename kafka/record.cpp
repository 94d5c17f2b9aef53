// KafkaRecord: a view of one librdkafka message it owns.
#include "kafka/native.h"

namespace cascade {

void KafkaRecord::Deleter::operator()(rd_kafka_message_t* message) const {
  if (message) rd_kafka_message_destroy(message);
}

KafkaRecord::~KafkaRecord() = default;

KafkaRecord KafkaRecord::adopt(rd_kafka_message_t* message) {
  KafkaRecord record;
  record.message_.reset(message);
  return record;
}

bool KafkaRecord::ok() const { return message_ && !message_->err; }

bool KafkaRecord::partition_end() const { return message_ && message_->err == RD_KAFKA_RESP_ERR__PARTITION_EOF; }

std::string KafkaRecord::error() const {
  if (!message_ || !message_->err) return {};
  return rd_kafka_message_errstr(message_.get());
}

std::string_view KafkaRecord::topic() const {
  return message_ && message_->rkt ? std::string_view(rd_kafka_topic_name(message_->rkt)) : std::string_view();
}

std::int32_t KafkaRecord::partition() const { return message_ ? message_->partition : -1; }

std::int64_t KafkaRecord::offset() const { return message_ ? message_->offset : -1; }

std::string_view KafkaRecord::key() const {
  if (!message_ || !message_->key) return {};
  return {static_cast<const char*>(message_->key), message_->key_len};
}

std::string_view KafkaRecord::payload() const {
  if (!message_ || !message_->payload) return {};
  return {static_cast<const char*>(message_->payload), message_->len};
}

bool KafkaRecord::tombstone() const { return message_ && !message_->err && message_->payload == nullptr; }

std::int64_t KafkaRecord::timestamp_ms() const {
  if (!message_) return -1;
  rd_kafka_timestamp_type_t type;
  const std::int64_t ts = rd_kafka_message_timestamp(message_.get(), &type);
  return type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts;
}

std::optional<std::string_view> KafkaRecord::header(std::string_view name) const {
  if (!message_) return std::nullopt;
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(message_.get(), &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  const void* value = nullptr;
  std::size_t size = 0;
  // librdkafka wants a NUL-terminated name.
  const std::string key(name);
  if (rd_kafka_header_get_last(headers, key.c_str(), &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  return std::string_view(static_cast<const char*>(value), value ? size : 0);
}

}  // namespace cascade
