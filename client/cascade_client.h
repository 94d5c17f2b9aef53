#pragma once
// A Cascade client over Kafka: produces prompt events and reads the reply
// events of its own requests. Used by `cascade send`, the demo replay, the
// integration tests and the pipeline benchmark.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "kafka/kafka_config.h"
#include "core/result.h"
#include "events/events.h"
#include "kafka/kafka.h"
#include "producers/event_producer.h"

namespace cascade {

// Reads a reply topic from its current end (events produced after open()).
class ReplyReader {
 public:
  [[nodiscard]] static Result<std::unique_ptr<ReplyReader>> open(const KafkaConfig& config, const std::string& bootstrap,
                                                   const std::string& topic);
  // Waits up to timeout_ms for reply events; returns what arrived (maybe none).
  std::vector<ReplyEvent> poll(int timeout_ms);

 private:
  explicit ReplyReader(std::unique_ptr<PartitionReader> reader) : reader_(std::move(reader)) {}
  std::unique_ptr<PartitionReader> reader_;
};

// One request's replies as collected by a client.
struct CollectedReply {
  std::vector<ReplyEvent> chunks;
  std::optional<ReplyEvent> terminal;  // final or error
  std::uint64_t terminal_count = 0;    // > 1 only after at-least-once redelivery
  std::int64_t next_seq = 0;
  bool seq_in_order = true;
  std::chrono::steady_clock::time_point sent_at;
  std::optional<std::chrono::steady_clock::time_point> first_chunk_at;
  std::optional<std::chrono::steady_clock::time_point> terminal_at;
};

class CascadeClient {
 public:
  [[nodiscard]] static Result<std::unique_ptr<CascadeClient>> open(const KafkaConfig& config, const std::string& bootstrap,
                                                     const std::string& reply_topic);
  // Sends a prompt event (reply_to is set to this client's reply topic when
  // empty), keyed by prompt_event_key with the Java client's partitioner, as
  // the gateway and the examples send them.
  [[nodiscard]] Result<void> send(PromptEvent event);
  // Sends raw bytes as a prompt event (tests of bad input); replies to
  // `expect_id`, if given, are collected like those of send().
  [[nodiscard]] Result<void> send_raw(const std::string& key, const std::string& payload, const std::string& expect_id = "");
  bool flush(int timeout_ms);

  // Reads replies for up to timeout_ms; calls on_event for each of our events.
  void poll(int timeout_ms, const std::function<void(const ReplyEvent&)>& on_event = {});
  // Polls until every sent request has a terminal event or the timeout passes.
  bool wait_all(std::chrono::milliseconds timeout,
                const std::function<void(const ReplyEvent&)>& on_event = {});

  const std::unordered_map<std::string, CollectedReply>& replies() const { return replies_; }
  std::size_t outstanding() const { return outstanding_; }

  // Hands over the replies of the requests answered so far and stops holding
  // them (long runs). Events that still arrive for a taken request are
  // counted, not collected: late_events() then tells of a duplicate answer.
  std::unordered_map<std::string, CollectedReply> take_answered();
  std::uint64_t late_events() const { return late_events_; }
  const std::string& reply_topic() const { return reply_topic_; }

 private:
  CascadeClient() = default;
  KafkaConfig config_;
  std::string reply_topic_;
  std::unique_ptr<EventProducer> producer_;
  std::unique_ptr<ReplyReader> reader_;
  std::unordered_map<std::string, CollectedReply> replies_;
  std::size_t outstanding_ = 0;
  std::unordered_set<std::string> taken_;
  std::uint64_t late_events_ = 0;
};

}  // namespace cascade
