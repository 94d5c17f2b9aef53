// `cascade cache purge --tenant T`, run through the command's own function on
// an embedded broker: a worker's replicated store loses the tenant's cached
// answers and semantic entries, other tenants keep theirs; without a broker,
// or with a bad configuration, the command says why and exits non-zero.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>

#include "apps/cascade/commands.h"
#include "kafka/kafka.h"
#include "state/state.h"
#include "support/embedded_kafka.h"
#include "support/env.h"
#include "support/state_store.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace cascade::cli {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;

constexpr const char* kTopic = "cascade.cache-changelog";
constexpr int kWaitMs = 30000;

class PurgeListener : public ChangelogListener {
 public:
  void on_applied(StateFamily, std::string_view, const StoredEntry*) override {}
  void on_tenant_purged(std::string_view tenant, std::int64_t through_ms) override {
    purged_tenant = std::string(tenant);
    purged_through_ms = through_ms;
  }
  std::string purged_tenant;
  std::int64_t purged_through_ms = -1;
};

struct CommandRun {
  int exit_code = 0;
  std::string out;
  std::string err;
};

class CachePurgeCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kafka_ = testing::start_embedded_kafka({{kTopic, 4}}, testing::fast_kafka_config(2));
    ASSERT_TRUE(kafka_.broker);
    // A worker's state: replicated store and changelog applier, as WorkerState opens them.
    worker_ = testing::open_replica(testing::replica_options(dir_.sub("worker"), kTopic), kafka_.config,
                                    kafka_.bootstrap(), &listener_);
    ASSERT_TRUE(worker_.store && worker_.changelog);
  }

  void TearDown() override { worker_.close(); }

  void write_tenant(const std::string& tenant) {
    ASSERT_TRUE(worker_.store->put_response(tenant, "fp-1", "answer of " + tenant, "v"));
    ASSERT_TRUE(
        worker_.store->put_vector(tenant, "ctx:fp-1", VectorEntry{{0.6f, 0.8f}, "Why is the sky blue?", "fp-1"}, "e"));
    ASSERT_TRUE(worker_.store->put(StateFamily::completed, tenant_key(tenant, "req-1"), "final", ""));
  }

  CommandRun purge(const CommonOptions& common, const CachePurgeOptions& options) {
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    CommandRun run;
    run.exit_code = run_cache_purge(common, options);
    run.out = ::testing::internal::GetCapturedStdout();
    run.err = ::testing::internal::GetCapturedStderr();
    return run;
  }

  // The worker's applier runs until it has executed a purge.
  bool applied_purge() {
    return testing::eventually([&] { return !listener_.purged_tenant.empty(); }, std::chrono::milliseconds(kWaitMs),
                               [&] { return worker_.changelog->apply_available(50).has_value(); });
  }

  testing::UnsetEnv no_env_bootstrap_{"CASCADE_KAFKA_BOOTSTRAP"};
  testing::UnsetEnv no_env_topic_{"CASCADE_KAFKA_TOPICS_CACHE_CHANGELOG"};
  TempDir dir_;
  testing::EmbeddedKafka kafka_;
  PurgeListener listener_;
  testing::Replica worker_;
};

TEST_F(CachePurgeCommandTest, PurgesTheTenantsCacheOnTheWorkerAndLeavesOtherTenantsAlone) {
  write_tenant("acme");
  write_tenant("globex");
  ASSERT_TRUE(worker_.changelog->flush(kWaitMs));
  ASSERT_TRUE(worker_.changelog->restore(kWaitMs));

  CommonOptions common;
  common.bootstrap_file = dir_.write("bootstrap", kafka_.bootstrap() + "\n");  // as `cascade broker` writes it
  CachePurgeOptions options;
  options.tenant = "acme";
  const auto before_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  const CommandRun run = purge(common, options);
  ASSERT_EQ(run.exit_code, 0) << run.err;

  ASSERT_TRUE(applied_purge());
  EXPECT_EQ(listener_.purged_tenant, "acme");
  EXPECT_GE(listener_.purged_through_ms, before_ms);
  // It prints the tenant and the time its purge covers.
  EXPECT_THAT(run.out, HasSubstr("purged tenant acme"));
  EXPECT_THAT(run.out, HasSubstr("(" + std::to_string(listener_.purged_through_ms) + " ms)"));

  EXPECT_FALSE(worker_.store->get_response("acme", "fp-1", "v"));
  EXPECT_FALSE(worker_.store->get_vector("acme", "ctx:fp-1", "e"));
  ASSERT_TRUE(worker_.store->get_response("globex", "fp-1", "v"));
  EXPECT_EQ(worker_.store->get_response("globex", "fp-1", "v")->payload, "answer of globex");
  ASSERT_TRUE(worker_.store->get_vector("globex", "ctx:fp-1", "e"));
  EXPECT_EQ(worker_.store->get_vector("globex", "ctx:fp-1", "e")->normalized_text, "Why is the sky blue?");
  // Completed answers guard against double charges: a purge keeps them.
  EXPECT_TRUE(worker_.store->get(StateFamily::completed, tenant_key("acme", "req-1"), ""));
}

TEST_F(CachePurgeCommandTest, TheBootstrapOptionNamesTheClusterWithoutAnyFile) {
  write_tenant("acme");
  ASSERT_TRUE(worker_.changelog->flush(kWaitMs));
  CachePurgeOptions options;
  options.tenant = "acme";
  options.bootstrap = kafka_.bootstrap();
  const CommandRun run = purge(CommonOptions{}, options);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  ASSERT_TRUE(applied_purge());
  EXPECT_FALSE(worker_.store->get_response("acme", "fp-1", "v"));
}

TEST_F(CachePurgeCommandTest, WithoutABrokerItSaysThereIsNothingToPurgeThrough) {
  CachePurgeOptions options;
  options.tenant = "acme";
  const CommandRun run = purge(CommonOptions{}, options);
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("no brokers configured"));
  EXPECT_THAT(run.err, HasSubstr("embedded broker lives inside one process"));
  EXPECT_THAT(run.err, HasSubstr("--bootstrap"));
  EXPECT_TRUE(run.out.empty());
}

TEST_F(CachePurgeCommandTest, AClusterWithoutTheChangelogTopicIsAnErrorNamingIt) {
  CommonOptions common;
  common.config_file = dir_.write("cascade.yaml", "kafka:\n  topics:\n    cache_changelog: no-such.changelog\n");
  CachePurgeOptions options;
  options.tenant = "acme";
  options.bootstrap = kafka_.bootstrap();
  const CommandRun run = purge(common, options);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.err, HasSubstr("has no topic no-such.changelog"));
}

TEST_F(CachePurgeCommandTest, ABadVerifierRuleInTheConfigStopsTheCommandAtStartup) {
  CommonOptions common;
  common.config_file =
      dir_.write("cascade.yaml", "tenants:\n  acme:\n    semantic_verifier:\n      max_order_inversions: many\n");
  CachePurgeOptions options;
  options.tenant = "acme";
  options.bootstrap = kafka_.bootstrap();
  const CommandRun run = purge(common, options);
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("tenants.acme.semantic_verifier.max_order_inversions"));
  EXPECT_THAT(run.err, HasSubstr("wants an integer"));
}

}  // namespace
}  // namespace cascade::cli
