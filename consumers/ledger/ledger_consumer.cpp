#include <spdlog/spdlog.h>

#include <chrono>
#include <map>
#include <thread>

#include "consumers/ledger/ledger.h"
#include "kafka/kafka.h"

namespace cascade {

namespace {

// How long a batch waits for more events before it is applied: bounds the
// delay a cost event adds to the spend state (docs/ledger.md, overshoot bound).
constexpr int kBatchWaitMs = 50;
constexpr int kStoreRetryMs = 1000;

}  // namespace

struct LedgerConsumer::Impl {
  std::unique_ptr<GroupConsumer> consumer;
  LedgerSinks sinks;
  std::size_t batch_max_events = 2000;
  std::atomic<bool> stopping{false};
  std::thread thread;
};

Result<std::unique_ptr<LedgerConsumer>> LedgerConsumer::start(const KafkaConfig& config,
                                                              const std::string& bootstrap,
                                                              LedgerAggregator& aggregator,
                                                              LedgerMetrics* metrics) {
  LedgerSinks sinks;
  sinks.aggregator = &aggregator;
  sinks.metrics = metrics;
  return start(config, bootstrap, sinks);
}

Result<std::unique_ptr<LedgerConsumer>> LedgerConsumer::start(const KafkaConfig& config,
                                                              const std::string& bootstrap, LedgerSinks sinks,
                                                              int batch_max_events) {
  if (sinks.budgets && !sinks.store)
    return fail(ErrorCode::invalid_request, "ledger consumer: budget monitoring needs the ledger store");
  auto consumer = GroupConsumer::open(config, bootstrap, {config.ledger_group, config.ledger_topic});
  if (!consumer) return std::unexpected(consumer.error());
  auto self = std::unique_ptr<LedgerConsumer>(new LedgerConsumer());
  self->impl_ = std::make_unique<Impl>();
  self->impl_->consumer = std::move(*consumer);
  self->impl_->sinks = sinks;
  self->impl_->batch_max_events = static_cast<std::size_t>(std::max(batch_max_events, 1));
  self->impl_->thread = std::thread([raw = self.get()] { raw->run(); });
  return self;
}

void LedgerConsumer::run() {
  GroupConsumer& consumer = *impl_->consumer;
  const LedgerSinks& sinks = impl_->sinks;
  std::vector<KafkaRecord> messages;
  std::vector<CostEvent> events;
  while (!impl_->stopping.load()) {
    // Gather a batch: what is there now, waiting at most kBatchWaitMs for more.
    messages.clear();
    events.clear();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kBatchWaitMs);
    for (int wait = 100; messages.size() < impl_->batch_max_events;) {
      std::optional<KafkaRecord> msg = consumer.poll(wait);
      if (!msg) break;
      if (msg->ok()) {
        messages.push_back(std::move(*msg));
      } else if (!msg->partition_end()) {
        spdlog::warn("ledger: consumer error: {}", msg->error());
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      wait = static_cast<int>(std::max<std::int64_t>(0, left.count()));
      if (wait == 0 && !messages.empty()) break;
    }
    if (messages.empty()) continue;

    std::uint64_t malformed = 0;
    for (const KafkaRecord& msg : messages) {
      auto event = parse_cost_event(msg.payload());
      if (event) {
        events.push_back(std::move(*event));
      } else {
        ++malformed;
        spdlog::warn("ledger: skipping malformed cost event at {}/{}: {}", msg.partition(), msg.offset(),
                     event.error().message);
      }
    }

    // The durable write first; nothing else happens until it succeeded.
    std::vector<bool> counted(events.size(), sinks.store == nullptr);
    LedgerApplyOutcome outcome;
    if (sinks.store) {
      bool written = false;
      while (!written && !impl_->stopping.load()) {
        auto applied = sinks.store->apply(events);
        if (applied) {
          outcome = std::move(*applied);
          written = true;
          break;
        }
        spdlog::error("ledger: {}; retrying the batch in {} ms", applied.error().message, kStoreRetryMs);
        for (int i = 0; i < kStoreRetryMs / 100 && !impl_->stopping.load(); ++i)
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (!written) {
        // Stopped while the store was failing: the batch stays uncommitted
        // and is read again by the next consumer.
        break;
      }
      for (std::size_t i : outcome.applied) counted[i] = true;
      if (outcome.stale > 0)
        spdlog::warn("ledger: refused {} cost event(s) older than the dedupe TTL ({} days)", outcome.stale,
                     sinks.store->options().dedupe_ttl_ms / 86'400'000);
    }
    std::uint64_t duplicates = outcome.duplicates;
    for (std::size_t i = 0; i < events.size(); ++i) {
      if (!counted[i]) continue;
      if (sinks.aggregator) {
        // With a store, the store decided; the in-memory view follows it.
        // Without one, the aggregator is the deduplicating sink.
        const bool fresh = sinks.aggregator->apply(events[i]);
        if (!fresh && !sinks.store) {
          counted[i] = false;
          ++duplicates;
          continue;
        }
      }
      if (sinks.metrics) sinks.metrics->record(events[i]);
    }
    std::uint64_t n_counted = 0;
    for (bool c : counted) n_counted += c;
    counted_ += n_counted;
    applied_ += events.size();
    rejected_ += malformed;
    if (sinks.metrics) {
      sinks.metrics->count_events("applied", n_counted);
      sinks.metrics->count_events("duplicate", duplicates);
      sinks.metrics->count_events("stale", outcome.stale);
      sinks.metrics->count_events("invalid", outcome.invalid);
      sinks.metrics->count_events("malformed", malformed);
    }
    if (sinks.budgets && !outcome.touched.empty()) sinks.budgets->on_batch(outcome.touched);

    // Offsets only now: every event up to them is durably counted (or was a
    // duplicate / refused, which a redelivery would not change).
    std::map<std::int32_t, std::int64_t> next;
    for (const KafkaRecord& msg : messages) {
      auto& offset = next[msg.partition()];
      offset = std::max(offset, msg.offset() + 1);
    }
    consumer.store_offsets({next.begin(), next.end()});
  }
}

void LedgerConsumer::stop() {
  if (!impl_ || impl_->stopping.exchange(true)) return;
  if (impl_->thread.joinable()) impl_->thread.join();
  if (auto ok = impl_->consumer->commit(); !ok) spdlog::warn("ledger: final commit: {}", ok.error().message);
  impl_->consumer->close();
}

LedgerConsumer::~LedgerConsumer() { stop(); }

Result<std::uint64_t> read_ledger_topic(const KafkaConfig& config, const std::string& bootstrap,
                                        LedgerAggregator& aggregator) {
  return read_topic_to_end(config, bootstrap, config.ledger_topic, [&](const KafkaRecord& record) {
    if (record.tombstone()) return;
    auto event = parse_cost_event(record.payload());
    if (event) aggregator.apply(*event);
  });
}

}  // namespace cascade
