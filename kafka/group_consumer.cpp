#include <spdlog/spdlog.h>

#include "kafka/kafka.h"

namespace cascade {

// ------------------------------------------------------------ KafkaRecord ----

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

// ---------------------------------------------------------- GroupConsumer ----

Result<std::unique_ptr<GroupConsumer>> GroupConsumer::open(const KafkaConfig& config, const std::string& bootstrap,
                                                           GroupConsumerOptions options) {
  auto conf = make_client_conf(config, bootstrap, ClientRole::consumer, options.group);
  if (!conf) return std::unexpected(conf.error());
  if (options.commit_interval_ms > 0) {
    if (auto ok = set_property(*conf, "auto.commit.interval.ms", std::to_string(options.commit_interval_ms)); !ok) {
      rd_kafka_conf_destroy(*conf);
      return std::unexpected(ok.error());
    }
  }
  auto consumer = std::unique_ptr<GroupConsumer>(new GroupConsumer());
  consumer->topic_ = options.topic;
  consumer->listener_ = options.listener;
  rd_kafka_conf_set_opaque(*conf, consumer.get());
  rd_kafka_conf_set_rebalance_cb(*conf, &GroupConsumer::on_rebalance);
  auto handle = make_client(*conf, ClientRole::consumer);
  if (!handle) return std::unexpected(handle.error());
  consumer->handle_ = std::move(*handle);
  rd_kafka_poll_set_consumer(consumer->handle_.get());

  TopicPartitionList topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), options.topic.c_str(), RD_KAFKA_PARTITION_UA);
  if (auto err = rd_kafka_subscribe(consumer->handle_.get(), topics.get())) {
    return fail(ErrorCode::unavailable, "subscribe to " + options.topic + ": " + rd_kafka_err2str(err));
  }
  return consumer;
}

GroupConsumer::~GroupConsumer() { close(); }

void GroupConsumer::on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions,
                                 void* opaque) {
  auto* self = static_cast<GroupConsumer*>(opaque);
  const bool cooperative = std::string_view(rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
  std::vector<std::int32_t> ids;
  ids.reserve(static_cast<std::size_t>(partitions->cnt));
  for (int i = 0; i < partitions->cnt; ++i) ids.push_back(partitions->elems[i].partition);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    if (cooperative) {
      if (rd_kafka_error_t* e = rd_kafka_incremental_assign(rk, partitions)) {
        spdlog::warn("kafka: incremental assign: {}", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
      }
    } else {
      rd_kafka_assign(rk, partitions);
    }
    if (self->listener_) self->listener_->on_assigned(ids);
    return;
  }
  if (self->listener_) self->listener_->on_revoked(ids);
  if (cooperative) {
    if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk, partitions)) {
      spdlog::warn("kafka: incremental unassign: {}", rd_kafka_error_string(e));
      rd_kafka_error_destroy(e);
    }
  } else {
    rd_kafka_assign(rk, nullptr);
  }
}

std::optional<KafkaRecord> GroupConsumer::poll(int timeout_ms) {
  if (closed_) return std::nullopt;
  rd_kafka_message_t* message = rd_kafka_consumer_poll(handle_.get(), timeout_ms);
  if (!message) return std::nullopt;
  return KafkaRecord::adopt(message);
}

TopicPartitionList GroupConsumer::partition_list(const std::vector<std::int32_t>& partitions) const {
  TopicPartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(std::max<std::size_t>(partitions.size(), 1))));
  for (const auto p : partitions) rd_kafka_topic_partition_list_add(list.get(), topic_.c_str(), p);
  return list;
}

void GroupConsumer::store_offsets(const std::vector<std::pair<std::int32_t, std::int64_t>>& next_offsets) {
  if (next_offsets.empty() || closed_) return;
  TopicPartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(next_offsets.size())));
  for (const auto& [partition, offset] : next_offsets)
    rd_kafka_topic_partition_list_add(list.get(), topic_.c_str(), partition)->offset = offset;
  if (auto err = rd_kafka_offsets_store(handle_.get(), list.get())) {
    // A partition revoked meanwhile: its new owner starts from the last commit.
    spdlog::debug("kafka: offsets_store on {}: {}", topic_, rd_kafka_err2str(err));
  }
}

Result<void> GroupConsumer::commit() {
  if (closed_) return {};
  const auto err = rd_kafka_commit(handle_.get(), nullptr, 0);
  if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
    return fail(ErrorCode::unavailable, "commit on " + topic_ + ": " + rd_kafka_err2str(err));
  return {};
}

void GroupConsumer::pause(const std::vector<std::int32_t>& partitions) {
  if (partitions.empty() || closed_) return;
  auto list = partition_list(partitions);
  rd_kafka_pause_partitions(handle_.get(), list.get());
}

void GroupConsumer::resume(const std::vector<std::int32_t>& partitions) {
  if (partitions.empty() || closed_) return;
  auto list = partition_list(partitions);
  rd_kafka_resume_partitions(handle_.get(), list.get());
}

std::vector<std::int32_t> GroupConsumer::assignment() const {
  std::vector<std::int32_t> out;
  if (closed_) return out;
  rd_kafka_topic_partition_list_t* assigned = nullptr;
  if (rd_kafka_assignment(handle_.get(), &assigned) != RD_KAFKA_RESP_ERR_NO_ERROR) return out;
  TopicPartitionList owned(assigned);
  for (int i = 0; i < assigned->cnt; ++i) out.push_back(assigned->elems[i].partition);
  return out;
}

void GroupConsumer::enable_wakeup_fd(int fd) {
  rd_kafka_queue_t* queue = rd_kafka_queue_get_consumer(handle_.get());
  static const char kByte = 1;
  rd_kafka_queue_io_event_enable(queue, fd, &kByte, 1);
  rd_kafka_queue_destroy(queue);
}

void GroupConsumer::close() {
  if (closed_ || !handle_) return;
  closed_ = true;
  rd_kafka_consumer_close(handle_.get());
  handle_.reset();
}

void GroupConsumer::abandon() {
  if (closed_ || !handle_) return;
  closed_ = true;
  rd_kafka_destroy_flags(handle_.release(), RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

}  // namespace cascade
