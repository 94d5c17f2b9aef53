#include <spdlog/spdlog.h>

#include <atomic>
#include <optional>

#include "budgets/budgets.h"
#include "events/events.h"
#include "kafka/kafka.h"

namespace cascade {

struct BudgetTable::Impl {
  std::unique_ptr<TopicFollower> follower;
  std::atomic<std::uint64_t> applied{0};
  std::atomic<std::uint64_t> malformed{0};
};

Result<std::unique_ptr<BudgetTable>> BudgetTable::open(const Config& config, const std::string& bootstrap) {
  auto table = std::unique_ptr<BudgetTable>(new BudgetTable());
  table->book_ = std::make_unique<BudgetBook>(budgets_from_config(config));
  table->impl_ = std::make_unique<Impl>();
  BudgetBook* book = table->book_.get();
  Impl* impl = table->impl_.get();
  const std::string budgets_topic = config.kafka.budgets_topic;
  auto follower = TopicFollower::open(
      config.kafka, bootstrap, {config.kafka.budgets_topic, config.kafka.spend_topic}, "budgets",
      [book, impl, budgets_topic](const KafkaRecord& record) {
        std::optional<std::string_view> value;
        if (!record.tombstone()) value = record.payload();
        const Result<void> ok = record.topic() == budgets_topic ? book->apply_budget_record(record.key(), value)
                                                                : book->apply_spend_record(record.key(), value);
        if (ok) {
          ++impl->applied;
        } else {
          ++impl->malformed;
          spdlog::warn("budgets: skipping record {}/{} of {}: {}", record.partition(), record.offset(),
                       record.topic(), ok.error().message);
        }
      });
  if (!follower) return std::unexpected(follower.error());
  impl->follower = std::move(*follower);
  return table;
}

BudgetTable::~BudgetTable() { stop(); }

Result<std::uint64_t> BudgetTable::restore(int timeout_ms) {
  const std::uint64_t before = impl_->applied.load();
  if (auto ok = impl_->follower->restore(timeout_ms); !ok) return std::unexpected(ok.error());
  return impl_->applied.load() - before;
}

Result<void> BudgetTable::start() { return impl_->follower->start(); }

void BudgetTable::stop() {
  if (impl_ && impl_->follower) impl_->follower->stop();
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
