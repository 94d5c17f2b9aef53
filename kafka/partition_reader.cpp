// PartitionReader: every partition of some topics, assigned without a
// consumer group; and read_topic_to_end, its one-shot use.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "kafka/native.h"

namespace cascade {

static_assert(kOffsetBeginning == RD_KAFKA_OFFSET_BEGINNING);

struct PartitionReader::Impl {
  PartitionReaderOptions options;
  KafkaHandle consumer;
  rd_kafka_queue_t* queue = nullptr;  // the consumer queue: batches and wake-ups
  std::vector<TopicPartition> partitions;

  ~Impl() {
    if (queue) rd_kafka_queue_destroy(queue);
    if (consumer) rd_kafka_consumer_close(consumer.get());
  }

  // The start offset of every partition of the topics.
  Result<std::map<TopicPartition, std::int64_t>> start_offsets(const std::map<std::string, int>& cluster_topics) {
    std::map<TopicPartition, std::int64_t> starts;
    for (const std::string& topic : options.topics) {
      const auto found = cluster_topics.find(topic);
      if (found == cluster_topics.end() || found->second == 0) {
        if (options.missing_topic_is_empty) continue;
        std::string missing = options.name + " topic " + topic + " does not exist";
        if (!options.missing_topic_hint.empty()) missing += " (" + options.missing_topic_hint + ")";
        return fail(ErrorCode::unavailable, missing);
      }
      for (std::int32_t p = 0; p < found->second; ++p) {
        const TopicPartition tp{topic, p};
        std::int64_t start = RD_KAFKA_OFFSET_BEGINNING;
        if (auto given = options.offsets.find(tp); given != options.offsets.end()) {
          start = given->second;
        } else if (options.start == ReadStart::end) {
          // Resolved now rather than left to the first fetch (OFFSET_END), so
          // nothing written after open() returns can be missed.
          auto marks = query_watermarks(tp, 10000);
          if (!marks) return std::unexpected(marks.error());
          start = marks->high;
        }
        starts[tp] = start;
      }
    }
    return starts;
  }

  Result<Watermarks> query_watermarks(const TopicPartition& tp, int timeout_ms) const {
    Watermarks marks;
    if (auto err = rd_kafka_query_watermark_offsets(consumer.get(), tp.topic.c_str(), tp.partition, &marks.low,
                                                    &marks.high, timeout_ms)) {
      return fail(ErrorCode::unavailable,
                  options.name + " topic " + tp.topic + " offsets: " + std::string(rd_kafka_err2str(err)));
    }
    return marks;
  }
};

PartitionReader::PartitionReader() : impl_(std::make_unique<Impl>()) {}
PartitionReader::~PartitionReader() = default;

Result<std::unique_ptr<PartitionReader>> PartitionReader::open(const KafkaConfig& config,
                                                               const std::string& bootstrap,
                                                               PartitionReaderOptions options) {
  auto reader = std::unique_ptr<PartitionReader>(new PartitionReader());
  Impl& r = *reader->impl_;
  r.options = std::move(options);
  const std::string group = r.options.group_id.empty() ? "cascade-" + r.options.name : r.options.group_id;
  // Nothing is committed: the group id only names the client.
  auto consumer =
      open_client(config, bootstrap, ClientRole::consumer, group,
                  {{"enable.auto.commit", "false"},
                   {"enable.partition.eof", r.options.report_partition_ends ? "true" : "false"}});
  if (!consumer) return std::unexpected(consumer.error());
  r.consumer = std::move(*consumer);

  auto topics = cluster_topic_partitions(r.consumer.get(), 10000);
  if (!topics) return fail(ErrorCode::unavailable, r.options.name + " topics: " + topics.error().message);
  auto starts = r.start_offsets(*topics);
  if (!starts) return std::unexpected(starts.error());
  for (const auto& [tp, start] : *starts) r.partitions.push_back(tp);
  if (auto err = rd_kafka_assign(r.consumer.get(), partition_list(*starts).get())) {
    return fail(ErrorCode::unavailable, r.options.name + " topics assign: " + rd_kafka_err2str(err));
  }
  r.queue = rd_kafka_queue_get_consumer(r.consumer.get());
  return reader;
}

std::optional<KafkaRecord> PartitionReader::poll(int timeout_ms) {
  rd_kafka_message_t* message = rd_kafka_consumer_poll(impl_->consumer.get(), timeout_ms);
  if (!message) return std::nullopt;
  return KafkaRecord::adopt(message);
}

std::vector<KafkaRecord> PartitionReader::poll_batch(int timeout_ms, std::size_t max_records) {
  std::vector<KafkaRecord> out;
  if (max_records == 0) return out;
  // Waits for the first message only: a batch call would wait out its whole
  // timeout for a full batch, and callers time records by when poll returns.
  rd_kafka_message_t* first = rd_kafka_consume_queue(impl_->queue, timeout_ms);
  if (!first) return out;
  out.reserve(std::min<std::size_t>(max_records, 512));
  out.push_back(KafkaRecord::adopt(first));
  std::vector<rd_kafka_message_t*> more(std::min<std::size_t>(max_records - 1, 512));
  while (out.size() < max_records && !more.empty()) {
    const std::size_t want = std::min(more.size(), max_records - out.size());
    const ssize_t n = rd_kafka_consume_batch_queue(impl_->queue, 0, more.data(), want);
    for (ssize_t i = 0; i < n; ++i) out.push_back(KafkaRecord::adopt(more[static_cast<std::size_t>(i)]));
    if (n < static_cast<ssize_t>(want)) break;
  }
  return out;
}

Result<std::uint64_t> PartitionReader::read_to_end(const std::function<void(const KafkaRecord&)>& on_record,
                                                   int timeout_ms, int idle_timeout_ms) {
  const std::string& name = impl_->options.name;
  if (!impl_->options.report_partition_ends)
    return fail(ErrorCode::internal, name + ": read_to_end needs report_partition_ends");
  using Clock = std::chrono::steady_clock;
  const auto started = Clock::now();
  auto last_progress = started;
  // A partition reports its end once it has read up to the high watermark a
  // fetch found, empty partitions included.
  std::set<TopicPartition> waiting(impl_->partitions.begin(), impl_->partitions.end());
  std::uint64_t read = 0;
  while (!waiting.empty()) {
    const auto now = Clock::now();
    if (timeout_ms >= 0 && now - started > std::chrono::milliseconds(timeout_ms))
      return fail(ErrorCode::timeout,
                  name + " topics not read to their end within " + std::to_string(timeout_ms) + " ms");
    if (idle_timeout_ms >= 0 && now - last_progress > std::chrono::milliseconds(idle_timeout_ms))
      return fail(ErrorCode::timeout, "reading " + name + " stalled");
    auto record = poll(100);
    if (!record) continue;
    last_progress = Clock::now();
    if (record->partition_end()) {
      waiting.erase({std::string(record->topic()), record->partition()});
    } else if (!record->ok()) {
      spdlog::warn("{}: consumer: {}", name, record->error());
    } else {
      on_record(*record);
      ++read;
    }
  }
  return read;
}

Result<void> PartitionReader::seek(const std::map<TopicPartition, std::int64_t>& offsets, int timeout_ms) {
  if (offsets.empty()) return {};
  TopicPartitionList list = partition_list(offsets);
  if (rd_kafka_error_t* err = rd_kafka_seek_partitions(impl_->consumer.get(), list.get(), timeout_ms)) {
    std::string message = rd_kafka_error_string(err);
    rd_kafka_error_destroy(err);
    return fail(ErrorCode::unavailable, impl_->options.name + " seek: " + message);
  }
  return {};
}

std::optional<Watermarks> PartitionReader::cached_watermarks(const TopicPartition& partition) const {
  Watermarks marks;
  if (rd_kafka_get_watermark_offsets(impl_->consumer.get(), partition.topic.c_str(), partition.partition, &marks.low,
                                     &marks.high) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return std::nullopt;
  return marks;
}

Result<Watermarks> PartitionReader::query_watermarks(const TopicPartition& partition, int timeout_ms) const {
  return impl_->query_watermarks(partition, timeout_ms);
}

const std::vector<TopicPartition>& PartitionReader::partitions() const { return impl_->partitions; }

const std::string& PartitionReader::name() const { return impl_->options.name; }

void PartitionReader::wake() { rd_kafka_queue_yield(impl_->queue); }

Result<std::uint64_t> read_topic_to_end(const KafkaConfig& config, const std::string& bootstrap,
                                        const std::string& topic,
                                        const std::function<void(const KafkaRecord&)>& on_record) {
  auto reader = PartitionReader::open(config, bootstrap,
                                      {.topics = {topic},
                                       .name = topic,
                                       .report_partition_ends = true,
                                       .missing_topic_is_empty = true,
                                       .group_id = "cascade-reader"});
  if (!reader) return std::unexpected(reader.error());
  return (*reader)->read_to_end(on_record, -1, 30000);
}

}  // namespace cascade
