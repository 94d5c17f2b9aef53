#include <spdlog/spdlog.h>

#include <thread>

#include "consumers/ledger/ledger.h"
#include "kafka/kafka.h"

namespace cascade {

struct LedgerConsumer::Impl {
  KafkaHandle consumer;
  LedgerAggregator* aggregator = nullptr;
  LedgerMetrics* metrics = nullptr;
  std::atomic<bool> stopping{false};
  std::thread thread;
};

Result<std::unique_ptr<LedgerConsumer>> LedgerConsumer::start(const KafkaConfig& config,
                                                              const std::string& bootstrap,
                                                              LedgerAggregator& aggregator,
                                                              LedgerMetrics* metrics) {
  auto conf = make_client_conf(config, bootstrap, ClientRole::consumer, config.ledger_group);
  if (!conf) return std::unexpected(conf.error());
  auto handle = make_client(*conf, ClientRole::consumer);
  if (!handle) return std::unexpected(handle.error());
  auto self = std::unique_ptr<LedgerConsumer>(new LedgerConsumer());
  self->impl_ = std::make_unique<Impl>();
  self->impl_->consumer = std::move(*handle);
  self->impl_->aggregator = &aggregator;
  self->impl_->metrics = metrics;
  rd_kafka_poll_set_consumer(self->impl_->consumer.get());
  TopicPartitionList topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), config.ledger_topic.c_str(), RD_KAFKA_PARTITION_UA);
  if (auto err = rd_kafka_subscribe(self->impl_->consumer.get(), topics.get())) {
    return fail(ErrorCode::unavailable, std::string("subscribe: ") + rd_kafka_err2str(err));
  }
  self->impl_->thread = std::thread([raw = self.get()] { raw->run(); });
  return self;
}

void LedgerConsumer::run() {
  rd_kafka_t* rk = impl_->consumer.get();
  while (!impl_->stopping.load()) {
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(rk, 100);
    if (!msg) continue;
    if (!msg->err) {
      auto event = parse_cost_event(std::string_view(static_cast<const char*>(msg->payload), msg->len));
      if (event) {
        // Metrics follow the deduplicated aggregate: a redelivered event counts once.
        if (impl_->aggregator->apply(*event) && impl_->metrics) impl_->metrics->record(*event);
        applied_++;
      } else {
        rejected_++;
        spdlog::warn("ledger: skipping malformed cost event at {}/{}: {}", msg->partition, msg->offset,
                     event.error().message);
      }
      TopicPartitionList done(rd_kafka_topic_partition_list_new(1));
      rd_kafka_topic_partition_list_add(done.get(), rd_kafka_topic_name(msg->rkt), msg->partition)->offset =
          msg->offset + 1;
      rd_kafka_offsets_store(rk, done.get());
    } else if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      spdlog::warn("ledger: consumer error: {}", rd_kafka_message_errstr(msg));
    }
    rd_kafka_message_destroy(msg);
  }
}

void LedgerConsumer::stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  if (impl_->thread.joinable()) impl_->thread.join();
  rd_kafka_commit(impl_->consumer.get(), nullptr, 0);
  rd_kafka_consumer_close(impl_->consumer.get());
}

LedgerConsumer::~LedgerConsumer() { stop(); }

Result<std::uint64_t> read_ledger_topic(const KafkaConfig& config, const std::string& bootstrap,
                                        LedgerAggregator& aggregator) {
  return read_topic_to_end(config, bootstrap, config.ledger_topic, [&](const rd_kafka_message_t& msg) {
    auto event = parse_cost_event(std::string_view(static_cast<const char*>(msg.payload), msg.len));
    if (event) aggregator.apply(*event);
  });
}

}  // namespace cascade
