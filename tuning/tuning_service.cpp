// The Kafka side of the closed loop: the ledger's tuner publishing router
// updates, and the worker's follower applying them (tuning/tuning.h).
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include "tuning/tuning.h"

namespace cascade {

std::optional<CalibrationSample> calibration_sample(const QualityEvent& event) {
  if (!event.calibration) return std::nullopt;
  const QualityCalibration& c = *event.calibration;
  CalibrationSample s;
  s.tenant = event.tenant;
  s.key = c.key;
  s.route_score = c.route_score;
  s.cuts = {c.small_cut, c.medium_cut};
  s.configured = {c.configured_small_cut, c.configured_medium_cut};
  if (c.small) s.small = c.small->score;
  if (c.medium) s.medium = c.medium->score;
  s.reference = c.reference.score;
  s.ts_ms = event.ts_ms;
  return s;
}

namespace {

struct TuningMetrics {
  explicit TuningMetrics(prometheus::Registry& registry)
      : cut(prometheus::BuildGauge()
                .Name("cascade_tuning_cut")
                .Help("The closed loop's tier cut in force, in route-score units (docs/routing.md, \"Closed loop\").")
                .Register(registry)),
        ratio(prometheus::BuildGauge()
                  .Name("cascade_tuning_quality_ratio")
                  .Help("Judged quality of the tier's answers over the reference model's on the same prompts, "
                        "over the calibration samples under its cut since the last move.")
                  .Register(registry)),
        lower(prometheus::BuildGauge()
                  .Name("cascade_tuning_quality_lower")
                  .Help("Lower confidence bound of cascade_tuning_quality_ratio (quality.tuning.confidence_z).")
                  .Register(registry)),
        moves(prometheus::BuildCounter()
                  .Name("cascade_tuning_moves_total")
                  .Help("Decisions of the closed loop that moved a tier cut.")
                  .Register(registry)) {}

  void show(const TuningRecord& r) {
    for (const auto& [tier, cut_value, evidence] :
         {std::tuple{"small", r.cuts.small, r.small}, std::tuple{"medium", r.cuts.medium, r.medium}}) {
      const prometheus::Labels labels{{"tenant", r.tenant}, {"key", r.key}, {"tier", tier}};
      cut.Add(labels).Set(cut_value);
      if (evidence.samples == 0) continue;
      ratio.Add(labels).Set(evidence.ratio);
      lower.Add(labels).Set(evidence.lower);
    }
  }

  prometheus::Family<prometheus::Gauge>& cut;
  prometheus::Family<prometheus::Gauge>& ratio;
  prometheus::Family<prometheus::Gauge>& lower;
  prometheus::Family<prometheus::Counter>& moves;
};

}  // namespace

struct RouterTuningService::Impl {
  explicit Impl(TuningOptions options) : tuner(options) {}
  std::unique_ptr<TuningMetrics> metrics;
  mutable std::mutex mutex;
  ThresholdTuner tuner;
  bool live = false;
  std::string topic;
  std::unique_ptr<KafkaProducer> producer;
  std::uint64_t samples = 0;
  std::atomic<std::uint64_t> published{0};
  std::atomic<std::uint64_t> failed{0};
};

Result<std::unique_ptr<RouterTuningService>> RouterTuningService::start(const KafkaConfig& config,
                                                                        const std::string& bootstrap,
                                                                        std::string topic, TuningOptions options,
                                                                        prometheus::Registry* registry) {
  std::unique_ptr<RouterTuningService> service(new RouterTuningService());
  service->impl_ = std::make_unique<Impl>(options);
  Impl* impl = service->impl_.get();
  if (registry) impl->metrics = std::make_unique<TuningMetrics>(*registry);
  impl->topic = std::move(topic);
  auto producer = KafkaProducer::create(config, bootstrap,
                                        {.java_partitioner = true, .on_delivery = [impl](const DeliveryReport& report) {
                                           if (report.delivered) {
                                             impl->published++;
                                             return;
                                           }
                                           impl->failed++;
                                           spdlog::warn("tuning: a router update was not delivered to {}: {}",
                                                        report.topic, report.error);
                                         }});
  if (!producer) return std::unexpected(producer.error());
  impl->producer = std::move(*producer);
  return service;
}

RouterTuningService::~RouterTuningService() {
  if (impl_ && impl_->producer) impl_->producer->flush(5000);
}

void RouterTuningService::publish(const TuningRecord& record) {
  const std::string key = tuning_record_key(record.tenant, record.key);
  const std::string value = encode_tuning_record(record);
  auto queued = impl_->producer->produce(impl_->topic, {.key = key, .value = value});
  if (!queued || *queued != KafkaProducer::Enqueued::yes) {
    impl_->failed++;
    spdlog::warn("tuning: router update for tenant {} key {} not queued: {}", record.tenant, record.key,
                 queued ? "the producer's queue is full" : queued.error().message);
    return;
  }
  spdlog::info("tuning: tenant {} key {} cuts small<={:.3f} medium<={:.3f} (v{}): {}", record.tenant, record.key,
               record.cuts.small, record.cuts.medium, record.version, record.why);
  impl_->producer->poll(0);
}

void RouterTuningService::on_quality_event(const QualityEvent& event) {
  const auto sample = calibration_sample(event);
  if (!sample) return;
  std::lock_guard lock(impl_->mutex);
  impl_->samples++;
  const auto moved = impl_->tuner.add(*sample);
  if (impl_->metrics) {
    if (moved) impl_->metrics->moves.Add({{"tenant", moved->tenant}, {"key", moved->key}}).Increment();
    if (const auto record = impl_->tuner.record(sample->tenant, sample->key)) impl_->metrics->show(*record);
  }
  if (moved && impl_->live) publish(*moved);
}

void RouterTuningService::publish_tombstone(const std::string& record_key) {
  auto queued = impl_->producer->produce(impl_->topic, {.key = record_key, .value = std::nullopt});
  if (!queued || *queued != KafkaProducer::Enqueued::yes) {
    impl_->failed++;
    spdlog::warn("tuning: a reset's tombstone was not queued: {}",
                 queued ? "the producer's queue is full" : queued.error().message);
    return;
  }
  spdlog::info("tuning: reset tenant {} key {}: the configured cuts apply again",
               record_key.substr(0, record_key.find('\0')), record_key.substr(record_key.find('\0') + 1));
  impl_->producer->poll(0);
}

void RouterTuningService::on_router_update(std::string_view record_key, std::optional<std::string_view> value) {
  if (!is_tuning_reset_key(record_key) || !value) return;
  auto reset = decode_tuning_reset(*value);
  if (!reset) {
    spdlog::warn("tuning: skipping a reset record: {}", reset.error().message);
    return;
  }
  std::lock_guard lock(impl_->mutex);
  impl_->tuner.schedule_reset(*reset);
  if (!impl_->live) return;  // a replayed reset applies at its time among the samples
  for (const std::string& key : impl_->tuner.apply_pending_resets()) publish_tombstone(key);
}

void RouterTuningService::go_live() {
  std::lock_guard lock(impl_->mutex);
  if (impl_->live) return;
  impl_->live = true;
  (void)impl_->tuner.apply_pending_resets();
  for (const std::string& key : impl_->tuner.reset_keys()) publish_tombstone(key);
  for (const TuningRecord& record : impl_->tuner.moved_records()) publish(record);
}

bool RouterTuningService::flush(int timeout_ms) { return impl_->producer->flush(timeout_ms); }

std::optional<TuningRecord> RouterTuningService::record(std::string_view tenant, std::string_view key) const {
  std::lock_guard lock(impl_->mutex);
  return impl_->tuner.record(tenant, key);
}

std::uint64_t RouterTuningService::samples() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->samples;
}
std::uint64_t RouterTuningService::published() const { return impl_->published.load(); }
std::uint64_t RouterTuningService::failed() const { return impl_->failed.load(); }

Result<std::unique_ptr<TopicFollower>> follow_router_updates(const KafkaConfig& config, const std::string& bootstrap,
                                                             const std::string& topic, std::shared_ptr<TunedCuts> cuts,
                                                             int restore_timeout_ms) {
  auto follower = TopicFollower::open(config, bootstrap, {topic}, "router-updates",
                                      [cuts](const KafkaRecord& record) {
                                        std::optional<std::string_view> value;
                                        if (!record.tombstone()) value = record.payload();
                                        if (auto ok = cuts->apply(record.key(), value); !ok)
                                          spdlog::warn("tuning: skipping router update {}/{}: {}", record.partition(),
                                                       record.offset(), ok.error().message);
                                      });
  if (!follower) return std::unexpected(follower.error());
  if (auto ok = (*follower)->restore(restore_timeout_ms); !ok) return std::unexpected(ok.error());
  if (auto ok = (*follower)->start(); !ok) return std::unexpected(ok.error());
  return std::move(*follower);
}

}  // namespace cascade
