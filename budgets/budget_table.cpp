#include <spdlog/spdlog.h>

#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include "budgets/budgets.h"
#include "events/events.h"
#include "kafka/kafka.h"

namespace cascade {

struct BudgetTable::Impl {
  BudgetBook* book = nullptr;
  std::string budgets_topic;
  std::string spend_topic;
  KafkaHandle consumer;
  // (topic, partition) not yet at their end since restore() began.
  std::set<std::pair<std::string, std::int32_t>> partitions;
  std::thread thread;
  std::atomic<bool> stopping{false};
  std::atomic<bool> running{false};
  std::atomic<std::uint64_t> applied{0};
  std::atomic<std::uint64_t> malformed{0};

  // One poll round; returns the records applied. `ends` collects partitions
  // that reported their end.
  std::size_t poll_once(int timeout_ms, std::set<std::pair<std::string, std::int32_t>>* ends) {
    std::size_t n = 0;
    for (rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer.get(), timeout_ms); msg;
         msg = rd_kafka_consumer_poll(consumer.get(), 0)) {
      const std::string topic = msg->rkt ? rd_kafka_topic_name(msg->rkt) : "";
      if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (ends) ends->insert({topic, msg->partition});
      } else if (msg->err) {
        spdlog::warn("budgets: consumer: {}", rd_kafka_message_errstr(msg));
      } else {
        const std::string_view key(static_cast<const char*>(msg->key), msg->key_len);
        std::optional<std::string_view> value;
        if (msg->payload) value = std::string_view(static_cast<const char*>(msg->payload), msg->len);
        const Result<void> ok = topic == budgets_topic ? book->apply_budget_record(key, value)
                                                       : book->apply_spend_record(key, value);
        if (ok) {
          ++applied;
        } else {
          ++malformed;
          spdlog::warn("budgets: skipping record {}/{} of {}: {}", msg->partition, msg->offset, topic,
                       ok.error().message);
        }
        ++n;
      }
      rd_kafka_message_destroy(msg);
      if (n >= 5000) break;
    }
    return n;
  }
};

Result<std::unique_ptr<BudgetTable>> BudgetTable::open(const Config& config, const std::string& bootstrap) {
  auto table = std::unique_ptr<BudgetTable>(new BudgetTable());
  table->book_ = std::make_unique<BudgetBook>(budgets_from_config(config));
  table->impl_ = std::make_unique<Impl>();
  Impl& t = *table->impl_;
  t.book = table->book_.get();
  t.budgets_topic = config.kafka.budgets_topic;
  t.spend_topic = config.kafka.spend_topic;

  // No consumer group: every process reads everything; the id is only there
  // because librdkafka wants one, and nothing is committed.
  auto conf = make_client_conf(config.kafka, bootstrap, ClientRole::consumer, "cascade-budget-table");
  if (!conf) return std::unexpected(conf.error());
  for (const auto& [key, value] : {std::pair{"enable.auto.commit", "false"}, std::pair{"enable.partition.eof", "true"}}) {
    if (auto ok = set_property(*conf, key, value); !ok) {
      rd_kafka_conf_destroy(*conf);
      return std::unexpected(ok.error());
    }
  }
  auto consumer = make_client(*conf, ClientRole::consumer);
  if (!consumer) return std::unexpected(consumer.error());
  t.consumer = std::move(*consumer);
  rd_kafka_t* rk = t.consumer.get();

  TopicPartitionList list(rd_kafka_topic_partition_list_new(8));
  for (const std::string& topic : {t.budgets_topic, t.spend_topic}) {
    // Asked among all topics first: asking for one by name may create it.
    auto exists = topic_exists(config.kafka, bootstrap, topic);
    if (!exists) return std::unexpected(exists.error());
    if (!*exists)
      return fail(ErrorCode::unavailable, "budget topic " + topic +
                                              " does not exist (the embedded broker and `cascade ledger` create it)");
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    auto err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (err) return fail(ErrorCode::unavailable, "budget topic " + topic + ": " + rd_kafka_err2str(err));
    const int partitions = (md->topic_cnt == 1 && !md->topics[0].err) ? md->topics[0].partition_cnt : 0;
    rd_kafka_metadata_destroy(md);
    if (partitions == 0)
      return fail(ErrorCode::unavailable, "budget topic " + topic +
                                              " does not exist (the embedded broker and `cascade ledger` create it)");
    for (int p = 0; p < partitions; ++p) {
      rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
      t.partitions.insert({topic, p});
    }
  }
  if (auto err = rd_kafka_assign(rk, list.get()))
    return fail(ErrorCode::unavailable, std::string("budget topics assign: ") + rd_kafka_err2str(err));
  return table;
}

BudgetTable::~BudgetTable() { stop(); }

Result<std::uint64_t> BudgetTable::restore(int timeout_ms) {
  if (impl_->running) return fail(ErrorCode::internal, "BudgetTable::restore runs before start()");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  const std::uint64_t before = impl_->applied.load();
  // A fresh assignment reports each partition's end once it has read up to
  // the high watermark it found, empty partitions included.
  std::set<std::pair<std::string, std::int32_t>> ends;
  while (!std::ranges::includes(ends, impl_->partitions)) {
    if (std::chrono::steady_clock::now() > deadline)
      return fail(ErrorCode::timeout, "budget topics not read to their end within " + std::to_string(timeout_ms) + " ms");
    impl_->poll_once(100, &ends);
  }
  return impl_->applied.load() - before;
}

Result<void> BudgetTable::start() {
  if (impl_->running.exchange(true)) return fail(ErrorCode::internal, "BudgetTable already started");
  impl_->thread = std::thread([&t = *impl_] {
    while (!t.stopping.load()) t.poll_once(100, nullptr);
  });
  return {};
}

void BudgetTable::stop() {
  if (!impl_) return;
  impl_->stopping = true;
  if (impl_->thread.joinable()) impl_->thread.join();
  if (impl_->consumer) {
    rd_kafka_consumer_close(impl_->consumer.get());
    impl_->consumer.reset();
  }
}

std::uint64_t BudgetTable::records_applied() const { return impl_->applied.load(); }
std::uint64_t BudgetTable::records_malformed() const { return impl_->malformed.load(); }

Result<void> publish_budget(const KafkaConfig& kafka, const std::string& bootstrap, const Budget& budget,
                            int timeout_ms) {
  if (budget.tenant.empty()) return fail(ErrorCode::invalid_request, "a budget needs a tenant");
  if (!valid_scope(budget.scope))
    return fail(ErrorCode::invalid_request, "budget scope '" + budget.scope + "' is not '', model:<id> or tag:<tag>");
  return produce_record_and_wait(kafka, bootstrap, kafka.budgets_topic, budget_record_key(budget.tenant, budget.scope),
                          encode_budget_record(budget, now_ms()), timeout_ms);
}

Result<void> publish_budget_removal(const KafkaConfig& kafka, const std::string& bootstrap,
                                    std::string_view tenant, std::string_view scope, int timeout_ms) {
  return produce_record_and_wait(kafka, bootstrap, kafka.budgets_topic, budget_record_key(tenant, scope), std::nullopt,
                          timeout_ms);
}

}  // namespace cascade
