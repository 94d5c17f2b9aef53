// RouterTuningService on an embedded broker: nothing is published while the
// quality topic is replayed, the state of every moved key once it goes
// live, each move after that; and the loop's figures on /metrics.
#include <gtest/gtest.h>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <map>
#include <string>

#include "support/embedded_kafka.h"
#include "support/quality_event.h"
#include "tuning/tuning.h"

namespace cascade {
namespace {

constexpr const char* kTopic = "cascade.router-updates";

// A calibration sample whose small answer is as good as the reference's:
// evidence that the small cut may rise.
QualityEvent as_good_as_the_reference(int i) {
  QualityEvent e = testing::calibration_event("r" + std::to_string(i), "acme", "mini", "small", 4, 4, 1700000000000 + i);
  e.calibration->route_score = (i % 100) / 100.0;
  e.calibration->medium = GradedAnswer{"mid", "medium", 4, false};
  return e;
}

std::map<std::string, TuningRecord> published(const testing::EmbeddedKafka& kafka) {
  std::map<std::string, TuningRecord> out;
  // The latest record per key, as compaction would keep it; tombstones
  // remove their key, reset markers are not cuts.
  auto n = read_topic_to_end(kafka.config, kafka.bootstrap(), kTopic, [&](const KafkaRecord& r) {
    if (is_tuning_reset_key(r.key())) return;
    if (r.tombstone()) {
      out.erase(std::string(r.key()));
      return;
    }
    auto record = decode_tuning_record(r.payload());
    ASSERT_TRUE(record) << record.error().message;
    out[std::string(r.key())] = *record;
  });
  EXPECT_TRUE(n) << n.error().message;
  return out;
}

TEST(RouterTuningService, PublishesNothingWhileReplayingThenEveryMovedKeyOnceThenEachMove) {
  auto kafka = testing::start_embedded_kafka({{kTopic, 2, {{"cleanup.policy", "compact"}}}});
  ASSERT_TRUE(kafka.broker);
  prometheus::Registry registry;
  TuningOptions options;
  options.target = 0.9;
  options.min_samples = 20;
  options.every = 10;
  auto service = RouterTuningService::start(kafka.config, kafka.bootstrap(), kTopic, options, &registry);
  ASSERT_TRUE(service) << service.error().message;

  int i = 0;
  for (; i < 300; ++i) (*service)->on_quality_event(as_good_as_the_reference(i));
  (*service)->on_quality_event(testing::graded_event("plain", "acme", "mini", "small", 2));  // no calibration: ignored
  EXPECT_EQ((*service)->samples(), 300u);
  const auto replayed = (*service)->record("acme", "default/balanced");
  ASSERT_TRUE(replayed);
  ASSERT_GT(replayed->version, 1u) << replayed->why;
  ASSERT_TRUE((*service)->flush(10000));
  EXPECT_TRUE(published(kafka).empty());

  (*service)->go_live();
  ASSERT_TRUE((*service)->flush(10000));
  auto records = published(kafka);
  ASSERT_EQ(records.size(), 1u);
  const TuningRecord& live = records.at(tuning_record_key("acme", "default/balanced"));
  EXPECT_EQ(live.version, replayed->version);
  EXPECT_EQ(live.cuts, replayed->cuts);
  EXPECT_GT(live.cuts.small, 0.3);

  for (; i < 600 && (*service)->record("acme", "default/balanced")->version == replayed->version; ++i)
    (*service)->on_quality_event(as_good_as_the_reference(i));
  const auto moved = (*service)->record("acme", "default/balanced");
  ASSERT_GT(moved->version, replayed->version);
  ASSERT_TRUE((*service)->flush(10000));
  EXPECT_EQ(published(kafka).at(tuning_record_key("acme", "default/balanced")).version, moved->version);
  EXPECT_EQ((*service)->failed(), 0u);
  EXPECT_GE((*service)->published(), 2u);

  const std::string text = prometheus::TextSerializer().Serialize(registry.Collect());
  char cut[128];
  std::snprintf(cut, sizeof cut, R"(cascade_tuning_cut{key="default/balanced",tenant="acme",tier="small"} %g)",
                moved->cuts.small);
  EXPECT_NE(text.find(cut), std::string::npos) << text;
  EXPECT_NE(text.find(R"(cascade_tuning_moves_total{key="default/balanced",tenant="acme"} )" +
                      std::to_string(moved->version)),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(cascade_tuning_quality_lower{key="default/balanced",tenant="acme",tier="small"})"),
            std::string::npos);
}

TEST(RouterTuningService, AnOperatorsResetTombstonesTheKeyWhenLiveAndAfterAReplay) {
  auto kafka = testing::start_embedded_kafka({{kTopic, 2, {{"cleanup.policy", "compact"}}}});
  ASSERT_TRUE(kafka.broker);
  TuningOptions options;
  options.target = 0.9;
  options.min_samples = 20;
  options.every = 10;
  const std::string record_key = tuning_record_key("acme", "default/balanced");
  {
    auto service = RouterTuningService::start(kafka.config, kafka.bootstrap(), kTopic, options);
    ASSERT_TRUE(service) << service.error().message;
    (*service)->go_live();
    for (int i = 0; i < 300; ++i) (*service)->on_quality_event(as_good_as_the_reference(i));
    ASSERT_TRUE((*service)->flush(10000));
    ASSERT_TRUE(published(kafka).contains(record_key));
    // Live: the reset's tombstone at once; the tuner starts from the configured cuts.
    const TuningReset reset{"acme", "", 1700000000000 + 300};
    (*service)->on_router_update(tuning_reset_key(reset.tenant, reset.key), encode_tuning_reset(reset));
    ASSERT_TRUE((*service)->flush(10000));
    EXPECT_FALSE(published(kafka).contains(record_key));  // tombstoned
    const auto after = (*service)->record("acme", "default/balanced");
    EXPECT_EQ(after->cuts, after->configured);
    // The reset marker itself goes to the topic (as `cascade tuning reset` writes it).
    ASSERT_TRUE(produce_record_and_wait(kafka.config, kafka.bootstrap(), kTopic, tuning_reset_key(reset.tenant, reset.key),
                                        encode_tuning_reset(reset), 10000));
  }
  // A new ledger replays the same history (the samples, then the reset) and
  // publishes nothing that undoes it.
  auto service = RouterTuningService::start(kafka.config, kafka.bootstrap(), kTopic, options);
  ASSERT_TRUE(service);
  (*service)->on_router_update(tuning_reset_key("acme", ""), encode_tuning_reset({"acme", "", 1700000000000 + 300}));
  for (int i = 0; i < 300; ++i) (*service)->on_quality_event(as_good_as_the_reference(i));
  (*service)->go_live();
  ASSERT_TRUE((*service)->flush(10000));
  EXPECT_FALSE(published(kafka).contains(record_key));
  const auto replayed = (*service)->record("acme", "default/balanced");
  EXPECT_EQ(replayed->cuts, replayed->configured);
}

}  // namespace
}  // namespace cascade
