#include <spdlog/spdlog.h>

#include <algorithm>

#include "kafka/native.h"

namespace cascade {

struct GroupConsumer::Impl {
  KafkaHandle handle;
  std::string topic;
  RebalanceListener* listener = nullptr;
  bool closed = false;
  TopicShare share;  // as the last rebalance left it

  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions,
                           void* opaque);
  // The topic's partitions, for pause and resume (offsets unused).
  TopicPartitionList partitions_of_topic(const std::vector<std::int32_t>& partitions) const {
    std::map<TopicPartition, std::int64_t> list;
    for (const auto p : partitions) list[{topic, p}] = RD_KAFKA_OFFSET_INVALID;
    return partition_list(list);
  }
};

GroupConsumer::GroupConsumer() : impl_(std::make_unique<Impl>()) {}

namespace {

// The topic's partition count from the cluster's metadata; 0 when it did not
// answer within timeout_ms. Asked in a rebalance callback: a round trip to a
// broker, as a commit there is.
int topic_partition_count(rd_kafka_t* rk, const std::string& topic, int timeout_ms) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  if (!rkt) return 0;
  int count = 0;
  const rd_kafka_metadata_t* md = nullptr;
  if (const auto err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms); !err) {
    for (int i = 0; i < md->topic_cnt; ++i) {
      if (!md->topics[i].err && topic == md->topics[i].topic) count = md->topics[i].partition_cnt;
    }
    rd_kafka_metadata_destroy(md);
  } else {
    spdlog::warn("kafka: partitions of {}: metadata: {}", topic, rd_kafka_err2str(err));
  }
  rd_kafka_topic_destroy(rkt);
  return count;
}

}  // namespace

Result<std::unique_ptr<GroupConsumer>> GroupConsumer::open(const KafkaConfig& config, const std::string& bootstrap,
                                                           GroupConsumerOptions options) {
  std::vector<std::pair<std::string, std::string>> overrides;
  if (options.commit_interval_ms > 0)
    overrides.emplace_back("auto.commit.interval.ms", std::to_string(options.commit_interval_ms));
  auto conf = make_client_conf(config, bootstrap, ClientRole::consumer, options.group, overrides);
  if (!conf) return std::unexpected(conf.error());
  auto consumer = std::unique_ptr<GroupConsumer>(new GroupConsumer());
  Impl& c = *consumer->impl_;
  c.topic = options.topic;
  c.listener = options.listener;
  rd_kafka_conf_set_opaque(*conf, &c);
  rd_kafka_conf_set_rebalance_cb(*conf, &Impl::on_rebalance);
  auto handle = make_client(*conf, ClientRole::consumer);
  if (!handle) return std::unexpected(handle.error());
  c.handle = std::move(*handle);
  rd_kafka_poll_set_consumer(c.handle.get());

  TopicPartitionList topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), options.topic.c_str(), RD_KAFKA_PARTITION_UA);
  if (auto err = rd_kafka_subscribe(c.handle.get(), topics.get())) {
    return fail(ErrorCode::unavailable, "subscribe to " + options.topic + ": " + rd_kafka_err2str(err));
  }
  return consumer;
}

GroupConsumer::~GroupConsumer() { close(); }

void GroupConsumer::Impl::on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                       rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  auto* self = static_cast<Impl*>(opaque);
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
    self->share.assigned = cooperative ? self->share.assigned + ids.size() : ids.size();
    if (const int count = topic_partition_count(rk, self->topic, 2000); count > 0) self->share.partitions = count;
    if (self->listener) self->listener->on_assigned(ids);
    return;
  }
  self->share.assigned = cooperative ? self->share.assigned - std::min(self->share.assigned, ids.size()) : 0;
  if (self->listener) self->listener->on_revoked(ids);
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
  if (impl_->closed) return std::nullopt;
  rd_kafka_message_t* message = rd_kafka_consumer_poll(impl_->handle.get(), timeout_ms);
  if (!message) return std::nullopt;
  return KafkaRecord::adopt(message);
}

void GroupConsumer::store_offsets(const std::vector<std::pair<std::int32_t, std::int64_t>>& next_offsets) {
  if (next_offsets.empty() || impl_->closed) return;
  std::map<TopicPartition, std::int64_t> offsets;
  for (const auto& [partition, offset] : next_offsets) offsets[{impl_->topic, partition}] = offset;
  TopicPartitionList list = partition_list(offsets);
  if (auto err = rd_kafka_offsets_store(impl_->handle.get(), list.get())) {
    // A partition revoked meanwhile: its new owner starts from the last commit.
    spdlog::debug("kafka: offsets_store on {}: {}", impl_->topic, rd_kafka_err2str(err));
  }
}

Result<void> GroupConsumer::commit() {
  if (impl_->closed) return {};
  const auto err = rd_kafka_commit(impl_->handle.get(), nullptr, 0);
  if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
    return fail(ErrorCode::unavailable, "commit on " + impl_->topic + ": " + rd_kafka_err2str(err));
  return {};
}

void GroupConsumer::pause(const std::vector<std::int32_t>& partitions) {
  if (partitions.empty() || impl_->closed) return;
  auto list = impl_->partitions_of_topic(partitions);
  rd_kafka_pause_partitions(impl_->handle.get(), list.get());
}

void GroupConsumer::resume(const std::vector<std::int32_t>& partitions) {
  if (partitions.empty() || impl_->closed) return;
  auto list = impl_->partitions_of_topic(partitions);
  rd_kafka_resume_partitions(impl_->handle.get(), list.get());
}

std::vector<std::int32_t> GroupConsumer::assignment() const {
  std::vector<std::int32_t> out;
  if (impl_->closed) return out;
  rd_kafka_topic_partition_list_t* assigned = nullptr;
  if (rd_kafka_assignment(impl_->handle.get(), &assigned) != RD_KAFKA_RESP_ERR_NO_ERROR) return out;
  TopicPartitionList owned(assigned);
  for (int i = 0; i < assigned->cnt; ++i) out.push_back(assigned->elems[i].partition);
  return out;
}

TopicShare GroupConsumer::topic_share() const { return impl_->share; }

void GroupConsumer::enable_wakeup_fd(int fd) {
  rd_kafka_queue_t* queue = rd_kafka_queue_get_consumer(impl_->handle.get());
  static const char kByte = 1;
  rd_kafka_queue_io_event_enable(queue, fd, &kByte, 1);
  rd_kafka_queue_destroy(queue);
}

void GroupConsumer::close() {
  if (impl_->closed || !impl_->handle) return;
  impl_->closed = true;
  rd_kafka_consumer_close(impl_->handle.get());
  impl_->handle.reset();
}

void GroupConsumer::abandon() {
  if (impl_->closed || !impl_->handle) return;
  impl_->closed = true;
  rd_kafka_destroy_flags(impl_->handle.release(), RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

const std::string& GroupConsumer::topic() const { return impl_->topic; }

}  // namespace cascade
