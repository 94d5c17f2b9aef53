#include "client/cascade_client.h"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace cascade {

Result<std::unique_ptr<ReplyReader>> ReplyReader::open(const KafkaConfig& config,
                                                       const std::string& bootstrap,
                                                       const std::string& topic) {
  auto conf = make_client_conf(config, bootstrap, ClientRole::consumer, "cascade-client");
  if (!conf) return std::unexpected(conf.error());
  (void)set_property(*conf, "enable.auto.commit", "false");
  auto handle = make_client(*conf, ClientRole::consumer);
  if (!handle) return std::unexpected(handle.error());
  auto reader = std::unique_ptr<ReplyReader>(new ReplyReader());
  reader->consumer_ = std::move(*handle);
  rd_kafka_t* rk = reader->consumer_.get();

  // No group: read every partition from its current end, which we resolve
  // before returning so nothing produced afterwards can be missed.
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  auto err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
  rd_kafka_topic_destroy(rkt);
  if (err) return fail(ErrorCode::unavailable, "reply topic " + topic + ": " + rd_kafka_err2str(err));
  int partitions = 0;
  if (md->topic_cnt == 1 && !md->topics[0].err) partitions = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  if (partitions == 0) return fail(ErrorCode::unavailable, "reply topic " + topic + " does not exist");

  TopicPartitionList list(rd_kafka_topic_partition_list_new(partitions));
  for (int p = 0; p < partitions; ++p) {
    std::int64_t low = 0, high = 0;
    err = rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &low, &high, 10000);
    if (err) return fail(ErrorCode::unavailable, "reply topic offsets: " + std::string(rd_kafka_err2str(err)));
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = high;
  }
  if ((err = rd_kafka_assign(rk, list.get()))) {
    return fail(ErrorCode::unavailable, std::string("assign: ") + rd_kafka_err2str(err));
  }
  reader->queue_ = rd_kafka_queue_get_consumer(rk);
  return reader;
}

ReplyReader::~ReplyReader() {
  if (queue_) rd_kafka_queue_destroy(queue_);
  if (consumer_) rd_kafka_consumer_close(consumer_.get());
}

std::vector<ReplyEvent> ReplyReader::poll(int timeout_ms) {
  std::vector<ReplyEvent> out;
  // Waits for the first message only, then takes what else is there without
  // waiting: a batch call would wait out its whole timeout for a full batch,
  // and callers time the events by when poll returns them.
  rd_kafka_message_t* batch[512];
  ssize_t n = 0;
  if (rd_kafka_message_t* first = rd_kafka_consume_queue(queue_, timeout_ms)) {
    batch[0] = first;
    const ssize_t more = rd_kafka_consume_batch_queue(queue_, 0, batch + 1, 511);
    n = 1 + std::max<ssize_t>(more, 0);
  }
  for (ssize_t i = 0; i < n; ++i) {
    rd_kafka_message_t* msg = batch[i];
    if (!msg->err) {
      auto event = parse_reply_event(std::string_view(static_cast<const char*>(msg->payload), msg->len));
      if (event) out.push_back(std::move(*event));
    }
    rd_kafka_message_destroy(msg);
  }
  return out;
}

Result<std::unique_ptr<CascadeClient>> CascadeClient::open(const KafkaConfig& config,
                                                           const std::string& bootstrap,
                                                           const std::string& reply_topic) {
  auto client = std::unique_ptr<CascadeClient>(new CascadeClient());
  client->config_ = config;
  client->reply_topic_ = reply_topic;
  auto reader = ReplyReader::open(config, bootstrap, reply_topic);
  if (!reader) return std::unexpected(reader.error());
  client->reader_ = std::move(*reader);
  auto producer = EventProducer::create(config, bootstrap);
  if (!producer) return std::unexpected(producer.error());
  client->producer_ = std::move(*producer);
  return client;
}

Result<void> CascadeClient::send(PromptEvent event) {
  if (event.reply_to.empty()) event.reply_to = reply_topic_;
  auto [it, fresh] = replies_.try_emplace(event.id);
  if (fresh) {
    it->second.sent_at = std::chrono::steady_clock::now();
    outstanding_++;  // a re-sent id still has one answer to wait for
  }
  return producer_->produce(config_.requests_topic, event.tenant, to_json(event).dump());
}

Result<void> CascadeClient::send_raw(const std::string& key, const std::string& payload,
                                     const std::string& expect_id) {
  if (!expect_id.empty()) {
    if (auto [it, fresh] = replies_.try_emplace(expect_id); fresh) {
      it->second.sent_at = std::chrono::steady_clock::now();
      outstanding_++;
    }
  }
  return producer_->produce(config_.requests_topic, key, payload);
}

bool CascadeClient::flush(int timeout_ms) { return producer_->flush(timeout_ms); }

void CascadeClient::poll(int timeout_ms, const std::function<void(const ReplyEvent&)>& on_event) {
  producer_->poll(0);
  auto events = reader_->poll(timeout_ms);
  const auto now = std::chrono::steady_clock::now();  // when these events arrived
  for (auto& event : events) {
    auto it = replies_.find(event.id);
    if (it == replies_.end()) {
      if (taken_.contains(event.id)) late_events_++;
      continue;  // else another client's request
    }
    CollectedReply& r = it->second;
    if (event.type == "chunk") {
      if (!r.first_chunk_at) r.first_chunk_at = now;
      if (event.seq != r.next_seq) r.seq_in_order = false;
      r.next_seq = event.seq + 1;
      r.chunks.push_back(event);
    } else {
      if (r.terminal_count++ == 0) {
        if (event.seq != r.next_seq) r.seq_in_order = false;
        r.terminal_at = now;
        r.terminal = event;
        outstanding_--;
      }
    }
    if (on_event) on_event(event);
  }
}

std::unordered_map<std::string, CollectedReply> CascadeClient::take_answered() {
  std::unordered_map<std::string, CollectedReply> answered;
  for (auto it = replies_.begin(); it != replies_.end();) {
    if (it->second.terminal) {
      taken_.insert(it->first);
      answered.insert(replies_.extract(it++));
    } else {
      ++it;
    }
  }
  return answered;
}

bool CascadeClient::wait_all(std::chrono::milliseconds timeout,
                             const std::function<void(const ReplyEvent&)>& on_event) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (outstanding_ > 0 && std::chrono::steady_clock::now() < deadline) poll(50, on_event);
  return outstanding_ == 0;
}

}  // namespace cascade
