#include "client/cascade_client.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "events/request_fingerprint.h"

namespace cascade {

Result<std::unique_ptr<ReplyReader>> ReplyReader::open(const KafkaConfig& config,
                                                       const std::string& bootstrap,
                                                       const std::string& topic) {
  // No group: every partition from its current end, resolved before
  // returning so nothing produced afterwards can be missed.
  auto reader = PartitionReader::open(
      config, bootstrap, {.topics = {topic}, .name = "reply", .start = ReadStart::end, .group_id = "cascade-client"});
  if (!reader) return std::unexpected(reader.error());
  return std::unique_ptr<ReplyReader>(new ReplyReader(std::move(*reader)));
}

std::vector<ReplyEvent> ReplyReader::poll(int timeout_ms) {
  std::vector<ReplyEvent> out;
  for (const KafkaRecord& record : reader_->poll_batch(timeout_ms, 512)) {
    if (!record.ok()) continue;
    if (auto event = parse_reply_event(record.payload())) out.push_back(std::move(*event));
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
  // The gateway's partitioner too: a prompt event key lands on the same
  // partition whichever Cascade producer sends it.
  auto producer = EventProducer::create(config, bootstrap, nullptr, /*java_partitioner=*/true);
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
  return producer_->produce(config_.requests_topic, prompt_event_key(event), to_json(event).dump());
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
