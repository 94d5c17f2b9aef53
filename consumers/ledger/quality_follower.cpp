// The ledger's reader of quality events: the aggregator and the closed
// loop's tuner (consumers/ledger/ledger.h, follow_quality_topic).
#include <spdlog/spdlog.h>

#include "consumers/ledger/ledger.h"

namespace cascade {

TuningOptions tuning_options(const QualityConfig& quality) {
  TuningOptions o;
  o.target = quality.target;
  o.min_samples = quality.tuning.min_samples;
  o.z = quality.tuning.confidence_z;
  o.max_step = quality.tuning.max_step;
  o.window = quality.tuning.window;
  o.every = quality.tuning.every;
  return o;
}

void QualityFollowers::stop() {
  if (quality) quality->stop();
  if (resets) resets->stop();
}

Result<QualityFollowers> follow_quality_topic(const KafkaConfig& config, const std::string& bootstrap,
                                              QualityAggregator& quality, RouterTuningService* tuning) {
  QualityFollowers out;
  if (tuning) {
    auto resets = TopicFollower::open(config, bootstrap, {config.router_updates_topic}, "router-resets",
                                      [tuning](const KafkaRecord& record) {
                                        std::optional<std::string_view> value;
                                        if (!record.tombstone()) value = record.payload();
                                        tuning->on_router_update(record.key(), value);
                                      });
    if (!resets) return std::unexpected(resets.error());
    if (auto restored = (*resets)->restore(); !restored) return std::unexpected(restored.error());
    out.resets = std::move(*resets);
  }
  auto follower = TopicFollower::open(config, bootstrap, {config.quality_topic}, "quality",
                                      [&quality, tuning](const KafkaRecord& record) {
                                        if (record.tombstone()) return;
                                        auto event = parse_quality_event(record.payload());
                                        if (!event) {
                                          spdlog::warn("ledger: skipping quality record {}/{}: {}", record.partition(),
                                                       record.offset(), event.error().message);
                                          return;
                                        }
                                        quality.add(*event);
                                        if (tuning) tuning->on_quality_event(*event);
                                      });
  if (!follower) return std::unexpected(follower.error());
  if (auto restored = (*follower)->restore(); !restored) return std::unexpected(restored.error());
  if (tuning) tuning->go_live();
  if (auto ok = (*follower)->start(); !ok) return std::unexpected(ok.error());
  out.quality = std::move(*follower);
  if (out.resets) {
    if (auto ok = out.resets->start(); !ok) return std::unexpected(ok.error());
  }
  return out;
}

}  // namespace cascade
