#include <spdlog/spdlog.h>

#include <atomic>
#include <thread>

#include "kafka/kafka.h"

namespace cascade {

struct TopicFollower::Impl {
  OnRecord on_record;
  std::unique_ptr<PartitionReader> reader;
  std::thread thread;
  std::atomic<bool> stopping{false};
  std::atomic<bool> running{false};

  void follow() {
    while (!stopping.load()) {
      auto record = reader->poll(100);
      if (!record || record->partition_end()) continue;
      if (record->ok()) {
        on_record(*record);
      } else {
        spdlog::warn("{}: consumer: {}", reader->name(), record->error());
      }
    }
  }
};

TopicFollower::TopicFollower() : impl_(std::make_unique<Impl>()) {}

Result<std::unique_ptr<TopicFollower>> TopicFollower::open(const KafkaConfig& config, const std::string& bootstrap,
                                                           const std::vector<std::string>& topics, std::string name,
                                                           OnRecord on_record) {
  auto follower = std::unique_ptr<TopicFollower>(new TopicFollower());
  follower->impl_->on_record = std::move(on_record);
  // Ends tell restore() that a partition is caught up, also when it is empty.
  auto reader = PartitionReader::open(
      config, bootstrap,
      {.topics = topics,
       .name = std::move(name),
       .missing_topic_hint = "the embedded broker creates it; on a real cluster, create Cascade's topics first",
       .report_partition_ends = true});
  if (!reader) return std::unexpected(reader.error());
  follower->impl_->reader = std::move(*reader);
  return follower;
}

TopicFollower::~TopicFollower() { stop(); }

Result<void> TopicFollower::restore(int timeout_ms) {
  if (!impl_->reader) return fail(ErrorCode::internal, "the follower was stopped");
  if (impl_->running) return fail(ErrorCode::internal, impl_->reader->name() + ": restore runs before start()");
  auto read = impl_->reader->read_to_end(impl_->on_record, timeout_ms);
  if (!read) return std::unexpected(read.error());
  return {};
}

Result<void> TopicFollower::start() {
  if (!impl_->reader) return fail(ErrorCode::internal, "the follower was stopped");
  if (impl_->running.exchange(true)) return fail(ErrorCode::internal, impl_->reader->name() + " already started");
  impl_->thread = std::thread([&f = *impl_] { f.follow(); });
  return {};
}

void TopicFollower::stop() {
  impl_->stopping = true;
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->reader.reset();  // closes its consumer
}

}  // namespace cascade
