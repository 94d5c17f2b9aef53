// router.cascade and quality: the documented defaults (cascade off, no
// sampling), overrides from file and env, and values that cannot work.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "config/config.h"
#include "support/config_file.h"
#include "support/env.h"

namespace cascade {
namespace {

using ::testing::HasSubstr;
using testing::env_of;
using testing::load_config_text;

TEST(CascadeConfig, DefaultsLeaveTheCascadeOffAndSampleNothing) {
  auto c = load_config("", env_of({}));
  ASSERT_TRUE(c) << c.error().message;
  const CascadeConfig& cascade = c->router.cascade;
  EXPECT_FALSE(cascade.enabled);
  EXPECT_EQ(cascade.preferences, std::vector<std::string>{"cost"});
  EXPECT_EQ(cascade.judge_model, "");
  EXPECT_EQ(cascade.min_judge_score, 3);
  EXPECT_EQ(cascade.judge_timeout_ms, 10000);
  EXPECT_EQ(cascade.max_buffer_bytes, 65536u);
  EXPECT_EQ(cascade.verifier_file, "");
  EXPECT_EQ(cascade.min_verifier_p, 0.5);
  EXPECT_EQ(cascade.agreement_model, "");
  EXPECT_EQ(c->quality.sample_rate, 0);
  EXPECT_EQ(c->quality.judge_model, "");
  EXPECT_EQ(c->quality.timeout_ms, 30000);
  EXPECT_EQ(c->quality.max_in_flight, 64);
  EXPECT_EQ(c->kafka.quality_topic, "cascade.quality");
  // The closed loop is off until asked for.
  EXPECT_EQ(c->quality.calibration_rate, 0);
  EXPECT_EQ(c->quality.target, 0.95);
  EXPECT_FALSE(c->quality.tuning.enabled);
  EXPECT_EQ(c->quality.tuning.min_samples, 50u);
  EXPECT_EQ(c->quality.tuning.confidence_z, 2.58);
  EXPECT_EQ(c->quality.tuning.max_step, 0.05);
  EXPECT_EQ(c->quality.tuning.window, 2000u);
  EXPECT_EQ(c->quality.tuning.every, 20u);
  EXPECT_EQ(c->kafka.router_updates_topic, "cascade.router-updates");
  EXPECT_EQ(c->kafka.cancels_topic, "cascade.cancels");
}

TEST(CascadeConfig, TheCancelsTopicComesFromTheFileOrTheEnvironment) {
  auto from_file = load_config_text("kafka:\n  topics:\n    cancels: acme.cancels\n");
  ASSERT_TRUE(from_file) << from_file.error().message;
  EXPECT_EQ(from_file->kafka.cancels_topic, "acme.cancels");
  auto from_env = load_config_text("", env_of({{"CASCADE_KAFKA_TOPICS_CANCELS", "t.cancels"}}));
  ASSERT_TRUE(from_env) << from_env.error().message;
  EXPECT_EQ(from_env->kafka.cancels_topic, "t.cancels");
}

TEST(CascadeConfig, TheClosedLoopsKeysComeFromTheFileOrTheEnvironment) {
  auto c = load_config_text(R"(
quality:
  calibration_rate: 0.02
  tuning:
    enabled: true
    min_samples: 200
kafka:
  topics:
    router_updates: acme.router-updates
)",
                            env_of({{"CASCADE_QUALITY_TARGET", "0.9"},
                                    {"CASCADE_QUALITY_TUNING_MAX_STEP", "0.02"},
                                    {"CASCADE_QUALITY_TUNING_EVERY", "50"}}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->quality.calibration_rate, 0.02);
  EXPECT_EQ(c->quality.target, 0.9);
  EXPECT_TRUE(c->quality.tuning.enabled);
  EXPECT_EQ(c->quality.tuning.min_samples, 200u);
  EXPECT_EQ(c->quality.tuning.max_step, 0.02);
  EXPECT_EQ(c->quality.tuning.every, 50u);
  EXPECT_EQ(c->kafka.router_updates_topic, "acme.router-updates");
}

TEST(CascadeConfig, EveryKeyComesFromTheFileOrTheEnvironment) {
  auto c = load_config_text(R"(
router:
  cascade:
    enabled: true
    preferences: [cost, balanced]
    judge_model: gpt-4.1-nano
    min_judge_score: 4
    verifier_file: config/router/verifier.json
quality:
  sample_rate: 0.05
  judge_model: gpt-5
kafka:
  topics:
    quality: acme.quality
)",
                     env_of({{"CASCADE_ROUTER_CASCADE_MAX_BUFFER_BYTES", "1024"},
                             {"CASCADE_ROUTER_CASCADE_JUDGE_TIMEOUT_MS", "2500"},
                             {"CASCADE_ROUTER_CASCADE_MIN_VERIFIER_P", "0.7"},
                             {"CASCADE_ROUTER_CASCADE_AGREEMENT_MODEL", "gpt-4o-mini"},
                             {"CASCADE_QUALITY_TIMEOUT_MS", "9000"},
                             {"CASCADE_QUALITY_MAX_IN_FLIGHT", "8"}}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->router.cascade.enabled);
  EXPECT_EQ(c->router.cascade.preferences, (std::vector<std::string>{"cost", "balanced"}));
  EXPECT_EQ(c->router.cascade.judge_model, "gpt-4.1-nano");
  EXPECT_EQ(c->router.cascade.min_judge_score, 4);
  EXPECT_EQ(c->router.cascade.judge_timeout_ms, 2500);
  EXPECT_EQ(c->router.cascade.max_buffer_bytes, 1024u);
  EXPECT_EQ(c->router.cascade.verifier_file, "config/router/verifier.json");
  EXPECT_EQ(c->router.cascade.min_verifier_p, 0.7);
  EXPECT_EQ(c->router.cascade.agreement_model, "gpt-4o-mini");
  EXPECT_EQ(c->quality.sample_rate, 0.05);
  EXPECT_EQ(c->quality.judge_model, "gpt-5");
  EXPECT_EQ(c->quality.timeout_ms, 9000);
  EXPECT_EQ(c->quality.max_in_flight, 8);
  EXPECT_EQ(c->kafka.quality_topic, "acme.quality");

  auto from_env = load_config("", env_of({{"CASCADE_ROUTER_CASCADE_PREFERENCES", "quality, speed"},
                                          {"CASCADE_ROUTER_CASCADE_ENABLED", "true"}}));
  ASSERT_TRUE(from_env) << from_env.error().message;
  EXPECT_TRUE(from_env->router.cascade.enabled);
  EXPECT_EQ(from_env->router.cascade.preferences, (std::vector<std::string>{"quality", "speed"}));
}

TEST(CascadeConfig, ValuesThatCannotWorkAreErrorsNamingTheKey) {
  const std::pair<const char*, const char*> cases[] = {
      {"router: {cascade: {preferences: [cheap]}}", "router.cascade.preferences"},
      {"router: {cascade: {min_judge_score: 6}}", "router.cascade.min_judge_score"},
      {"router: {cascade: {min_judge_score: 0.5}}", "router.cascade.min_judge_score"},
      {"router: {cascade: {max_buffer_bytes: 0}}", "router.cascade"},
      {"router: {cascade: {judge_timeout_ms: 0}}", "router.cascade"},
      {"router: {cascade: {enabled: maybe}}", "router.cascade.enabled"},
      {"router: {cascade: {min_verifier_p: 1.5}}", "router.cascade.min_verifier_p"},
      {"router: {cascade: {min_verifier_p: -0.1}}", "router.cascade.min_verifier_p"},
      {"quality: {sample_rate: 1.5}", "quality.sample_rate"},
      {"quality: {sample_rate: -0.1}", "quality.sample_rate"},
      {"quality: {max_in_flight: 0}", "quality"},
      {"quality: {timeout_ms: 0}", "quality"},
      {"quality: {calibration_rate: 2}", "quality.calibration_rate"},
      {"quality: {target: 0}", "quality.target"},
      {"quality: {target: 1.2}", "quality.target"},
      {"quality: {tuning: {min_samples: 1}}", "quality.tuning"},
      {"quality: {tuning: {window: 10}}", "quality.tuning"},
      {"quality: {tuning: {max_step: 0}}", "quality.tuning"},
      {"quality: {tuning: {confidence_z: -1}}", "quality.tuning"},
      {"quality: {tuning: {enabled: sometimes}}", "quality.tuning.enabled"},
  };
  for (const auto& [yaml, key] : cases) {
    auto c = load_config_text(yaml);
    ASSERT_FALSE(c) << yaml;
    EXPECT_THAT(c.error().message, HasSubstr(key)) << yaml;
  }
}

}  // namespace
}  // namespace cascade
