// `cascade tuning show`, run through the command's own function on an
// embedded broker: the latest router update per tenant and key, a
// tombstone's key gone, and a clear line when nothing was tuned.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "apps/cascade/commands.h"
#include "kafka/kafka.h"
#include "support/embedded_kafka.h"
#include "support/env.h"
#include "support/temp_dir.h"
#include "tuning/tuning.h"

namespace cascade::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kTopic = "cascade.router-updates";

TuningRecord record(std::string tenant, std::string key, double small, std::uint64_t version) {
  TuningRecord r;
  r.tenant = std::move(tenant);
  r.key = std::move(key);
  r.cuts = {small, 0.7};
  r.configured = {0.3, 0.6};
  r.version = version;
  r.small = {120, 0.96, 0.951, 0.97};
  r.target = 0.95;
  r.why = "small raised to " + std::to_string(small);
  return r;
}

TEST(TuningShowCommand, PrintsTheLatestCutsPerTenantAndKeyWithTheirEvidence) {
  testing::UnsetEnv no_bootstrap("CASCADE_KAFKA_BOOTSTRAP");
  testing::UnsetEnv no_topic("CASCADE_KAFKA_TOPICS_ROUTER_UPDATES");
  auto kafka = testing::start_embedded_kafka({{kTopic, 2, {{"cleanup.policy", "compact"}}}});
  ASSERT_TRUE(kafka.broker);
  testing::TempDir dir;
  CommonOptions common;
  common.bootstrap_file = dir.write("bootstrap", kafka.bootstrap() + "\n");
  auto run = [&](const std::string& tenant) {
    ::testing::internal::CaptureStdout();
    TuningCommandOptions options;
    options.tenant = tenant;
    const int code = run_tuning_show(common, options);
    std::string out = ::testing::internal::GetCapturedStdout();
    EXPECT_EQ(code, 0);
    return out;
  };
  EXPECT_THAT(run(""), HasSubstr("no tuned cuts: the configured thresholds apply"));

  auto publish = [&](const TuningRecord& r, bool tombstone = false) {
    ASSERT_TRUE(produce_record_and_wait(kafka.config, kafka.bootstrap(), kTopic, tuning_record_key(r.tenant, r.key),
                                        tombstone ? std::nullopt : std::optional(encode_tuning_record(r)), 10000));
  };
  publish(record("acme", "default/balanced", 0.35, 1));
  publish(record("acme", "default/balanced", 0.40, 2));  // the latest wins
  publish(record("acme", "default/cost", 0.5, 1));
  publish(record("globex", "default/balanced", 0.2, 1));
  publish(record("acme", "default/cost", 0, 0), true);  // removed

  const std::string all = run("");
  EXPECT_THAT(all, HasSubstr("0.400 (was 0.30)"));
  EXPECT_THAT(all, Not(HasSubstr("0.350 (was")));
  EXPECT_THAT(all, Not(HasSubstr("default/cost")));
  EXPECT_THAT(all, HasSubstr("96% [95%, 97%] n=120"));
  EXPECT_THAT(all, HasSubstr("target 95% of the reference's judged quality"));
  EXPECT_THAT(all, HasSubstr("globex"));
  const std::string acme = run("acme");
  EXPECT_THAT(acme, Not(HasSubstr("globex")));
  EXPECT_THAT(run("initech"), HasSubstr("no tuned cuts for tenant initech"));

  // `cascade tuning reset` writes the marker the ledger's tuner acts on;
  // `show` is not confused by it.
  TuningCommandOptions reset;
  reset.tenant = "acme";
  reset.key = "default/balanced";
  ::testing::internal::CaptureStdout();
  ASSERT_EQ(run_tuning_reset(common, reset), 0);
  EXPECT_THAT(::testing::internal::GetCapturedStdout(), HasSubstr("reset key default/balanced of tenant acme"));
  std::optional<TuningReset> marker;
  auto read = read_topic_to_end(kafka.config, kafka.bootstrap(), kTopic, [&](const KafkaRecord& r) {
    if (r.key() == tuning_reset_key("acme", "default/balanced")) marker = *decode_tuning_reset(r.payload());
  });
  ASSERT_TRUE(read) << read.error().message;
  ASSERT_TRUE(marker);
  EXPECT_EQ(marker->tenant, "acme");
  EXPECT_GT(marker->ts_ms, 0);
  EXPECT_THAT(run("acme"), HasSubstr("0.400 (was 0.30)"));  // until the ledger tombstones it
  TuningCommandOptions no_tenant;
  ::testing::internal::CaptureStderr();
  EXPECT_NE(run_tuning_reset(common, no_tenant), 0);
  ::testing::internal::GetCapturedStderr();
}

}  // namespace
}  // namespace cascade::cli
