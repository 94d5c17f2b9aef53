#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "kafka/kafka.h"

namespace cascade {

struct TopicFollower::Impl {
  std::string name;
  OnRecord on_record;
  KafkaHandle consumer;
  std::set<std::pair<std::string, std::int32_t>> partitions;  // every partition followed
  std::thread thread;
  std::atomic<bool> stopping{false};
  std::atomic<bool> running{false};

  // One poll round, up to 5,000 records; `ends` collects partitions that
  // reported their end.
  void poll_once(int timeout_ms, std::set<std::pair<std::string, std::int32_t>>* ends) {
    std::size_t n = 0;
    for (rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer.get(), timeout_ms); msg;
         msg = rd_kafka_consumer_poll(consumer.get(), 0)) {
      if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (ends) ends->insert({msg->rkt ? rd_kafka_topic_name(msg->rkt) : "", msg->partition});
      } else if (msg->err) {
        spdlog::warn("{}: consumer: {}", name, rd_kafka_message_errstr(msg));
      } else {
        on_record(*msg);
        ++n;
      }
      rd_kafka_message_destroy(msg);
      if (n >= 5000) break;
    }
  }
};

Result<std::unique_ptr<TopicFollower>> TopicFollower::open(const KafkaConfig& config, const std::string& bootstrap,
                                                           const std::vector<std::string>& topics, std::string name,
                                                           OnRecord on_record) {
  auto follower = std::unique_ptr<TopicFollower>(new TopicFollower());
  follower->impl_ = std::make_unique<Impl>();
  Impl& f = *follower->impl_;
  f.name = std::move(name);
  f.on_record = std::move(on_record);

  // No consumer group: every process reads everything; the id is only there
  // because librdkafka wants one, and nothing is committed.
  auto conf = make_client_conf(config, bootstrap, ClientRole::consumer, "cascade-" + f.name);
  if (!conf) return std::unexpected(conf.error());
  for (const auto& [key, value] : {std::pair{"enable.auto.commit", "false"}, std::pair{"enable.partition.eof", "true"}}) {
    if (auto ok = set_property(*conf, key, value); !ok) {
      rd_kafka_conf_destroy(*conf);
      return std::unexpected(ok.error());
    }
  }
  auto consumer = make_client(*conf, ClientRole::consumer);
  if (!consumer) return std::unexpected(consumer.error());
  f.consumer = std::move(*consumer);
  rd_kafka_t* rk = f.consumer.get();

  TopicPartitionList list(rd_kafka_topic_partition_list_new(8));
  for (const std::string& topic : topics) {
    const std::string missing = f.name + " topic " + topic + " does not exist (the embedded broker creates it; "
                                "on a real cluster, create Cascade's topics first)";
    // Asked among all topics first: asking for one by name may create it.
    auto exists = topic_exists(config, bootstrap, topic);
    if (!exists) return std::unexpected(exists.error());
    if (!*exists) return fail(ErrorCode::unavailable, missing);
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    auto err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (err) return fail(ErrorCode::unavailable, f.name + " topic " + topic + ": " + rd_kafka_err2str(err));
    const int partitions = (md->topic_cnt == 1 && !md->topics[0].err) ? md->topics[0].partition_cnt : 0;
    rd_kafka_metadata_destroy(md);
    if (partitions == 0) return fail(ErrorCode::unavailable, missing);
    for (int p = 0; p < partitions; ++p) {
      rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
      f.partitions.insert({topic, p});
    }
  }
  if (auto err = rd_kafka_assign(rk, list.get()))
    return fail(ErrorCode::unavailable, f.name + " topics assign: " + rd_kafka_err2str(err));
  return follower;
}

TopicFollower::~TopicFollower() { stop(); }

Result<void> TopicFollower::restore(int timeout_ms) {
  if (impl_->running) return fail(ErrorCode::internal, impl_->name + ": restore runs before start()");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  // A fresh assignment reports each partition's end once it has read up to
  // the high watermark it found, empty partitions included.
  std::set<std::pair<std::string, std::int32_t>> ends;
  while (!std::ranges::includes(ends, impl_->partitions)) {
    if (std::chrono::steady_clock::now() > deadline)
      return fail(ErrorCode::timeout,
                  impl_->name + " topics not read to their end within " + std::to_string(timeout_ms) + " ms");
    impl_->poll_once(100, &ends);
  }
  return {};
}

Result<void> TopicFollower::start() {
  if (impl_->running.exchange(true)) return fail(ErrorCode::internal, impl_->name + " already started");
  impl_->thread = std::thread([&f = *impl_] {
    while (!f.stopping.load()) f.poll_once(100, nullptr);
  });
  return {};
}

void TopicFollower::stop() {
  if (!impl_) return;
  impl_->stopping = true;
  if (impl_->thread.joinable()) impl_->thread.join();
  if (impl_->consumer) {
    rd_kafka_consumer_close(impl_->consumer.get());
    impl_->consumer.reset();
  }
}

}  // namespace cascade
