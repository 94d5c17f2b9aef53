#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "kafka/kafka.h"
#include "state/state.h"
#include "support/embedded_kafka.h"
#include "support/state_store.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace cascade {
namespace {

using testing::ManualClock;
using testing::Replica;
using testing::TempDir;
using ::testing::HasSubstr;

constexpr const char* kTopic = "cascade.cache-changelog";
constexpr int kPartitions = 4;
constexpr int kWaitMs = 30000;  // generous bound for anything asynchronous

struct AppliedRecord {
  std::string what;  // "put", "delete" or "purge"
  StateFamily family = StateFamily::responses;
  std::string key;
  std::string payload;
};

class RecordingListener : public ChangelogListener {
 public:
  void on_applied(StateFamily family, std::string_view key, const StoredEntry* entry) override {
    records.push_back({entry ? "put" : "delete", family, std::string(key), entry ? entry->payload : ""});
  }
  void on_tenant_purged(std::string_view tenant, std::int64_t) override {
    records.push_back({"purge", StateFamily::responses, std::string(tenant), ""});
  }
  std::vector<AppliedRecord> records;
};

class StateChangelogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kafka_ = testing::start_embedded_kafka({{kTopic, kPartitions}}, testing::fast_kafka_config(2));
    ASSERT_TRUE(kafka_.broker);
  }

  StateOptions options(const std::string& dir, const std::string& writer) const {
    return testing::replica_options(dir, kTopic, writer, &clock_);
  }

  Replica open_replica(const std::string& dir, const std::string& writer, ChangelogListener* listener = nullptr,
                       const KafkaConfig* kafka = nullptr) {
    return testing::open_replica(options(dir, writer), kafka ? *kafka : kafka_.config, kafka_.bootstrap(), listener);
  }

  RestoreReport restore_ok(Replica& r) {
    auto report = r.changelog->restore(kWaitMs);
    if (!report) {
      ADD_FAILURE() << "restore: " << report.error().message;
      return {};
    }
    return *report;
  }

  // Raw records, for what a StateStore would never write itself.
  void produce_raw(const std::string& key, const std::string& value, int partition) {
    ASSERT_TRUE(testing::produce_raw(kafka_, kTopic, key, value, partition));
  }

  TempDir dir_;
  ManualClock clock_;
  testing::EmbeddedKafka kafka_;
};

TEST_F(StateChangelogTest, AWriteOnOneWorkerIsAHitOnAnotherAfterItsApplierRuns) {
  auto a = open_replica(dir_.sub("a"), "worker-a");
  auto b = open_replica(dir_.sub("b"), "worker-b");
  ASSERT_TRUE(a.changelog && b.changelog);
  ASSERT_TRUE(a.store->put_response("acme", "fp-1", "the answer", "gpt-4o@1"));
  ASSERT_TRUE(a.changelog->flush(kWaitMs));
  EXPECT_FALSE(b.store->get_response("acme", "fp-1", "gpt-4o@1"));  // not applied yet

  auto report = restore_ok(b);
  EXPECT_EQ(report.records, 1u);
  EXPECT_EQ(report.partitions, kPartitions);
  auto got = b.store->get_response("acme", "fp-1", "gpt-4o@1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->payload, "the answer");
  EXPECT_EQ(got->created_ms, a.store->get_response("acme", "fp-1", "gpt-4o@1")->created_ms);
  EXPECT_FALSE(b.store->get_response("globex", "fp-1", "gpt-4o@1"));
}

TEST_F(StateChangelogTest, PublishedChangesLeaveTheOutbox) {
  auto a = open_replica(dir_.sub("a"), "worker-a");
  ASSERT_TRUE(a.changelog);
  auto seq = a.store->put_response("acme", "fp", "x", "v");
  ASSERT_TRUE(seq);
  ASSERT_TRUE(a.changelog->flush(kWaitMs));
  EXPECT_TRUE(a.store->published(*seq));
  EXPECT_EQ(a.store->stats().outbox_pending, 0u);
}

TEST_F(StateChangelogTest, AWipedWorkerRestoresEverythingWithDeletesAndPurgesHonoured) {
  auto a = open_replica(dir_.sub("a"), "worker-a");
  ASSERT_TRUE(a.changelog);
  auto completed = CompletedAnswerStore::view(*a.store);
  ASSERT_TRUE(a.store->put_response("acme", "kept", "acme answer", "v"));
  ASSERT_TRUE(a.store->put_response("acme", "erased", "gone", "v"));
  ASSERT_TRUE(a.store->put_response("globex", "purged", "gone", "v"));
  ASSERT_TRUE(a.store->put_vector("globex", "e1", VectorEntry{{1.0f}, "t", "k"}, "v"));
  ASSERT_TRUE(a.store->put_vector("acme", "e1", VectorEntry{{0.5f, 0.5f}, "acme text", "k"}, "v"));
  ASSERT_TRUE(a.store->put_embedding("emb-1", "hash", std::vector<float>{1.0f, 2.0f}));
  ASSERT_TRUE(completed->put("acme", "req-1", CompletedAnswer{"final", "cost"}));
  ASSERT_TRUE(a.store->put_response("acme", "overwritten", "first", "v"));
  ASSERT_TRUE(a.store->put_response("acme", "overwritten", "second", "v"));
  ASSERT_TRUE(a.store->erase(StateFamily::responses, tenant_key("acme", "erased")));
  clock_.advance_ms(1);
  ASSERT_TRUE(a.store->purge_tenant("globex"));
  ASSERT_TRUE(a.store->put_response("globex", "after-purge", "kept", "v"));
  ASSERT_TRUE(a.changelog->flush(kWaitMs));

  auto c = open_replica(dir_.sub("c"), "worker-c");
  ASSERT_TRUE(c.changelog);
  auto report = restore_ok(c);
  EXPECT_EQ(report.records, 12u);
  EXPECT_GT(report.bytes, 0u);

  EXPECT_EQ(c.store->get_response("acme", "kept", "v")->payload, "acme answer");
  EXPECT_EQ(c.store->get_response("acme", "overwritten", "v")->payload, "second");
  EXPECT_FALSE(c.store->get_response("acme", "erased", "v"));
  EXPECT_FALSE(c.store->get_response("globex", "purged", "v"));
  EXPECT_FALSE(c.store->get_vector("globex", "e1", "v"));
  EXPECT_EQ(c.store->get_response("globex", "after-purge", "v")->payload, "kept");
  EXPECT_EQ(c.store->get_vector("acme", "e1", "v")->normalized_text, "acme text");
  EXPECT_EQ(*c.store->get_embedding("emb-1", "hash"), (std::vector<float>{1.0f, 2.0f}));
  auto answer = CompletedAnswerStore::view(*c.store)->get("acme", "req-1");
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->final_event, "final");
  // Same entries, same accounting.
  EXPECT_EQ(c.store->stats().cache_bytes, a.store->stats().cache_bytes);
  EXPECT_EQ(c.store->stats().completed_bytes, a.store->stats().completed_bytes);
}

TEST_F(StateChangelogTest, AnEntryStampedBeforeAPurgeIsGoneWhicheverArrivesFirst) {
  // The purge and an older write of the tenant sit in different partitions, so
  // replicas may apply them in either order; both orders must end equal.
  auto a = open_replica(dir_.sub("a"), "worker-a");
  ASSERT_TRUE(a.changelog);
  ManualClock late_clock(clock_.now() - 1000);  // a worker whose clock is behind
  StateOptions d_options = options(dir_.sub("d"), "worker-d");
  d_options.now_ms = late_clock.fn();
  auto d = testing::open_replica(d_options, kafka_.config, kafka_.bootstrap());
  ASSERT_TRUE(d.store);
  ASSERT_TRUE(d.changelog);

  ASSERT_TRUE(a.store->purge_tenant("acme"));
  ASSERT_TRUE(a.changelog->flush(kWaitMs));
  auto purge_first = open_replica(dir_.sub("purge-first"), "worker-p");
  ASSERT_TRUE(purge_first.changelog);
  EXPECT_EQ(restore_ok(purge_first).records, 1u);

  // D has not seen the purge: it writes an entry stamped before it, and one
  // stamped after it.
  ASSERT_TRUE(d.store->put_response("acme", "stale", "x", "v"));
  late_clock.advance_ms(2000);
  ASSERT_TRUE(d.store->put_response("acme", "fresh", "y", "v"));
  ASSERT_TRUE(d.changelog->flush(kWaitMs));

  EXPECT_EQ(restore_ok(purge_first).records, 2u);  // the writes after the purge
  auto writes_first = open_replica(dir_.sub("writes-first"), "worker-w");
  ASSERT_TRUE(writes_first.changelog);
  EXPECT_EQ(restore_ok(writes_first).records, 3u);
  auto d_restored = d.changelog->restore(kWaitMs);  // D applies the purge after its own writes
  ASSERT_TRUE(d_restored);

  for (StateStore* s : {purge_first.store.get(), writes_first.store.get(), d.store.get()}) {
    EXPECT_FALSE(s->get_response("acme", "stale", "v"));
    auto fresh = s->get_response("acme", "fresh", "v");
    ASSERT_TRUE(fresh);
    EXPECT_EQ(fresh->payload, "y");
  }
  d.changelog.reset();
}

TEST_F(StateChangelogTest, ARestartedWorkerResumesFromItsStoredOffsets) {
  auto a = open_replica(dir_.sub("a"), "worker-a");
  ASSERT_TRUE(a.changelog);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(a.store->put_response("acme", "fp-" + std::to_string(i), "x", "v"));
  ASSERT_TRUE(a.changelog->flush(kWaitMs));

  {
    auto c = open_replica(dir_.sub("c"), "worker-c");
    ASSERT_TRUE(c.changelog);
    EXPECT_EQ(restore_ok(c).records, 20u);
    c.close();
  }
  auto c = open_replica(dir_.sub("c"), "worker-c");
  ASSERT_TRUE(c.changelog);
  EXPECT_EQ(restore_ok(c).records, 0u);
  EXPECT_TRUE(c.store->get_response("acme", "fp-7", "v"));

  ASSERT_TRUE(a.store->put_response("acme", "fp-new", "x", "v"));
  ASSERT_TRUE(a.changelog->flush(kWaitMs));
  EXPECT_EQ(restore_ok(c).records, 1u);
  EXPECT_EQ(c.changelog->lag().applied, 1u);
  EXPECT_TRUE(c.store->get_response("acme", "fp-new", "v"));
}

TEST_F(StateChangelogTest, TheListenerHearsOfEveryAppliedRecord) {
  auto a = open_replica(dir_.sub("a"), "worker-a");
  RecordingListener listener;
  auto b = open_replica(dir_.sub("b"), "worker-b", &listener);
  ASSERT_TRUE(a.changelog && b.changelog);
  ASSERT_TRUE(a.store->put_response("acme", "fp", "answer", "v"));
  ASSERT_TRUE(a.store->put_vector("acme", "e1", VectorEntry{{1.0f}, "t", "k"}, "v"));
  ASSERT_TRUE(a.store->erase(StateFamily::responses, tenant_key("acme", "fp")));
  ASSERT_TRUE(a.store->purge_tenant("globex"));
  ASSERT_TRUE(a.changelog->flush(kWaitMs));
  EXPECT_EQ(restore_ok(b).records, 4u);

  ASSERT_EQ(listener.records.size(), 4u);
  int puts = 0, deletes = 0, purges = 0;
  for (const auto& r : listener.records) {
    if (r.what == "put") {
      puts++;
      // Partitions interleave; a key's own records keep their order.
      if (r.family == StateFamily::vectors) {
        EXPECT_EQ(r.key, tenant_key("acme", "e1"));
        EXPECT_EQ(decode_vector_entry(r.payload)->normalized_text, "t");
      } else {
        EXPECT_EQ(r.payload, "answer");
      }
    }
    if (r.what == "delete") {
      deletes++;
      EXPECT_EQ(r.family, StateFamily::responses);
      EXPECT_EQ(r.key, tenant_key("acme", "fp"));
    }
    if (r.what == "purge") {
      purges++;
      EXPECT_EQ(r.key, "globex");
    }
  }
  EXPECT_EQ(puts, 2);
  EXPECT_EQ(deletes, 1);
  EXPECT_EQ(purges, 1);
}

TEST_F(StateChangelogTest, ChangesLostInACrashBeforePublishingArePublishedOnRestart) {
  KafkaConfig slow = kafka_.config;
  slow.linger_ms = 60000;  // nothing leaves the producer before the "crash"
  {
    auto a = open_replica(dir_.sub("a"), "worker-a", nullptr, &slow);
    ASSERT_TRUE(a.changelog);
    ASSERT_TRUE(a.store->put_response("acme", "fp", "written before the crash", "v"));
    a.changelog->abandon_unsent();
    a.close();
  }
  auto b = open_replica(dir_.sub("b"), "worker-b");
  ASSERT_TRUE(b.changelog);
  EXPECT_EQ(restore_ok(b).records, 0u);  // the record never reached the topic

  auto a = open_replica(dir_.sub("a"), "worker-a");
  ASSERT_TRUE(a.changelog);
  ASSERT_TRUE(a.changelog->flush(kWaitMs));
  EXPECT_EQ(a.store->stats().outbox_pending, 0u);
  EXPECT_EQ(restore_ok(b).records, 1u);
  auto got = b.store->get_response("acme", "fp", "v");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->payload, "written before the crash");
}

TEST_F(StateChangelogTest, LagCountsRecordsNotYetAppliedAndOnlyOtherWorkersRecordsAsForeign) {
  auto a = open_replica(dir_.sub("a"), "worker-a");
  auto b = open_replica(dir_.sub("b"), "worker-b");
  ASSERT_TRUE(a.changelog && b.changelog);
  ASSERT_TRUE(a.store->put_response("acme", "fp-0", "x", "v"));
  ASSERT_TRUE(a.changelog->flush(kWaitMs));
  restore_ok(a);  // A applies its own record
  EXPECT_EQ(a.changelog->lag().ms_since_foreign_apply, -1);
  EXPECT_EQ(a.changelog->lag().messages_behind, 0);

  restore_ok(b);
  EXPECT_EQ(b.changelog->lag().messages_behind, 0);
  EXPECT_GE(b.changelog->lag().ms_since_foreign_apply, 0);
  EXPECT_GE(b.changelog->lag().last_foreign_delay_ms, 0);

  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(a.store->put_response("acme", "fp-" + std::to_string(i), "x", "v"));
  ASSERT_TRUE(a.changelog->flush(kWaitMs));
  // B's consumer learns the new high watermarks from its background fetches.
  testing::eventually([&] { return b.changelog->lag().messages_behind >= 3; }, kWaitMs, 5);
  EXPECT_EQ(b.changelog->lag().messages_behind, 3);
  restore_ok(b);
  EXPECT_EQ(b.changelog->lag().messages_behind, 0);
  EXPECT_EQ(b.changelog->lag().applied, 4u);
}

TEST_F(StateChangelogTest, AStoresOwnRecordsAreNotWrittenAgainWhenTheyComeBack) {
  RecordingListener listener;
  auto a = open_replica(dir_.sub("a"), "worker-a", &listener);
  ASSERT_TRUE(a.changelog);
  ASSERT_TRUE(a.store->put_response("acme", "fp-1", "the answer", "v"));
  ASSERT_TRUE(a.store->erase(StateFamily::responses, tenant_key("acme", "fp-1")));
  ASSERT_TRUE(a.store->put_response("acme", "fp-2", "another", "v"));
  ASSERT_TRUE(a.changelog->flush(kWaitMs));
  EXPECT_EQ(restore_ok(a).records, 3u);
  EXPECT_EQ(a.changelog->lag().echoes_skipped, 3u) << "each was in the store since its local write";
  EXPECT_TRUE(listener.records.empty()) << "nothing changed: the listener heard of each write when it was made";
  EXPECT_FALSE(a.store->get_response("acme", "fp-1", "v"));
  ASSERT_TRUE(a.store->get_response("acme", "fp-2", "v"));
  EXPECT_EQ(a.store->get_response("acme", "fp-2", "v")->payload, "another");
}

TEST_F(StateChangelogTest, AnOwnRecordAfterAnotherWritersRecordOfItsKeyIsAppliedSoLogOrderDecides) {
  // One partition: the two writers' records of the key are in one order.
  const std::string topic = "cascade.cache-changelog-one";
  ASSERT_TRUE(kafka_.broker->create_topics({{topic, 1}}));
  auto a = testing::open_replica(testing::replica_options(dir_.sub("a"), topic, "worker-a", &clock_), kafka_.config,
                                 kafka_.bootstrap(), nullptr);
  auto b = testing::open_replica(testing::replica_options(dir_.sub("b"), topic, "worker-b", &clock_), kafka_.config,
                                 kafka_.bootstrap(), nullptr);
  ASSERT_TRUE(a.changelog && b.changelog);
  ASSERT_TRUE(b.store->put_response("acme", "fp", "from b", "v"));
  ASSERT_TRUE(b.changelog->flush(kWaitMs));  // b's record first in the log
  ASSERT_TRUE(a.store->put_response("acme", "fp", "from a", "v"));
  ASSERT_TRUE(a.changelog->flush(kWaitMs));  // then a's

  restore_ok(a);  // applies b's record over its own write, then its own echo
  restore_ok(b);
  ASSERT_TRUE(a.store->get_response("acme", "fp", "v"));
  ASSERT_TRUE(b.store->get_response("acme", "fp", "v"));
  EXPECT_EQ(a.store->get_response("acme", "fp", "v")->payload, "from a") << "the log's last record wins";
  EXPECT_EQ(b.store->get_response("acme", "fp", "v")->payload, "from a") << "both replicas agree";
  EXPECT_EQ(a.changelog->lag().echoes_skipped, 0u) << "another writer's record came between: applied";
  EXPECT_EQ(b.changelog->lag().echoes_skipped, 1u);
}

TEST_F(StateChangelogTest, AStartedApplierFollowsOnItsOwnThread) {
  auto a = open_replica(dir_.sub("a"), "worker-a");
  auto b = open_replica(dir_.sub("b"), "worker-b");
  ASSERT_TRUE(a.changelog && b.changelog);
  ASSERT_TRUE(b.changelog->start());
  // While it runs, restore (which drives the applier itself) is refused.
  EXPECT_FALSE(b.changelog->restore(1000));

  ASSERT_TRUE(a.store->put_response("acme", "fp", "followed", "v"));
  ASSERT_TRUE(a.changelog->flush(kWaitMs));
  EXPECT_TRUE(testing::eventually([&] { return b.store->get_response("acme", "fp", "v").has_value(); }, kWaitMs, 5));
  b.changelog->stop();
}

// A worker taking over partitions asks its applier to catch up: the ticket is
// served only once everything in the changelog at the time of asking is
// applied, here with the applier driven by hand so nothing runs early.
TEST_F(StateChangelogTest, ACatchUpTicketIsServedOnlyOnceEverythingWrittenBeforeItIsApplied) {
  auto a = open_replica(dir_.sub("a"), "worker-a");
  auto b = open_replica(dir_.sub("b"), "worker-b");
  ASSERT_TRUE(a.changelog && b.changelog);
  restore_ok(b);
  auto completed = CompletedAnswerStore::view(*a.store);
  std::vector<std::uint64_t> seqs;
  for (int i = 0; i < 50; ++i) {
    auto seq = completed->put("acme", "req-" + std::to_string(i), CompletedAnswer{"final", "cost"});
    ASSERT_TRUE(seq);
    EXPECT_GT(*seq, 0u);  // replicated: there is something to wait for
    seqs.push_back(*seq);
  }
  ASSERT_TRUE(a.changelog->flush(kWaitMs));
  for (auto seq : seqs) EXPECT_TRUE(a.store->published(seq));

  const std::uint64_t ticket = b.changelog->request_catch_up();
  EXPECT_FALSE(b.changelog->caught_up(ticket));  // nothing applied since
  const auto later_ticket = b.changelog->request_catch_up();
  EXPECT_GT(later_ticket, ticket);
  auto view = CompletedAnswerStore::view(*b.store);
  // Driven by hand: a failed apply ends the wait.
  ASSERT_TRUE(testing::eventually([&] { return b.changelog->caught_up(later_ticket); },
                                  std::chrono::milliseconds(kWaitMs),
                                  [&] { return b.changelog->apply_available(100).has_value(); }));
  ASSERT_TRUE(b.changelog->caught_up(later_ticket));
  EXPECT_TRUE(b.changelog->caught_up(ticket));
  for (int i = 0; i < 50; ++i) EXPECT_TRUE(view->get("acme", "req-" + std::to_string(i))) << i;
}

TEST_F(StateChangelogTest, ACatchUpIsServedByARunningApplierToo) {
  auto a = open_replica(dir_.sub("a"), "worker-a");
  auto b = open_replica(dir_.sub("b"), "worker-b");
  ASSERT_TRUE(a.changelog && b.changelog);
  restore_ok(b);
  ASSERT_TRUE(b.changelog->start());
  auto completed = CompletedAnswerStore::view(*a.store);
  ASSERT_TRUE(completed->put("acme", "req-1", CompletedAnswer{"final", "cost"}));
  ASSERT_TRUE(a.changelog->flush(kWaitMs));
  const std::uint64_t ticket = b.changelog->request_catch_up();
  ASSERT_TRUE(testing::eventually([&] { return b.changelog->caught_up(ticket); }, kWaitMs, 2));
  EXPECT_TRUE(CompletedAnswerStore::view(*b.store)->get("acme", "req-1"));
  b.changelog->stop();
}

TEST_F(StateChangelogTest, UndecodableRecordsAreSkippedAndCounted) {
  produce_raw("no-family-separator", "x", 0);
  produce_raw("future-family/key", "x", 1);
  produce_raw(std::string("responses/acme\0fp", 17), "not an entry", 2);
  auto a = open_replica(dir_.sub("a"), "worker-a");
  ASSERT_TRUE(a.changelog);
  ASSERT_TRUE(a.store->put_response("acme", "ok", "x", "v"));
  ASSERT_TRUE(a.changelog->flush(kWaitMs));
  auto report = restore_ok(a);
  EXPECT_EQ(report.records, 4u);
  EXPECT_EQ(a.changelog->lag().malformed, 3u);
  EXPECT_FALSE(a.store->get_response("acme", "fp", ""));
  EXPECT_TRUE(a.store->get_response("acme", "ok", "v"));
}

TEST_F(StateChangelogTest, AnExpiredRecordIsAppliedAsADelete) {
  auto a = open_replica(dir_.sub("a"), "worker-a");
  ASSERT_TRUE(a.changelog);
  ASSERT_TRUE(a.store->put_response("acme", "fp", "x", "v"));
  ASSERT_TRUE(a.changelog->flush(kWaitMs));
  clock_.advance_ms(25 * 3600 * 1000LL);  // past the default 24 h responses TTL
  RecordingListener listener;
  auto c = open_replica(dir_.sub("c"), "worker-c", &listener);
  ASSERT_TRUE(c.changelog);
  EXPECT_EQ(restore_ok(c).records, 1u);
  ASSERT_EQ(listener.records.size(), 1u);
  EXPECT_EQ(listener.records[0].what, "delete");
  EXPECT_EQ(c.store->stats().cache_bytes, 0u);
}

TEST_F(StateChangelogTest, APurgePublishedFromOutsideAWorkerIsExecutedByEveryWorker) {
  auto a = open_replica(dir_.sub("a"), "worker-a");
  RecordingListener listener;
  auto b = open_replica(dir_.sub("b"), "worker-b", &listener);
  ASSERT_TRUE(a.changelog && b.changelog);
  ASSERT_TRUE(a.store->put_response("acme", "fp", "x", "v"));
  ASSERT_TRUE(a.store->put_vector("acme", "e1", VectorEntry{{1.0f}, "t", "k"}, "v"));
  ASSERT_TRUE(a.store->put_response("globex", "fp", "y", "v"));
  ASSERT_TRUE(a.changelog->flush(kWaitMs));
  // Entries stamped by the test clock, the purge by the wall clock: the
  // test clock (2023) is behind, so every entry written so far is covered.
  auto through = publish_tenant_purge(kafka_.config, kafka_.bootstrap(), kTopic, "acme");
  ASSERT_TRUE(through) << through.error().message;
  EXPECT_GT(*through, clock_.now());
  EXPECT_FALSE(publish_tenant_purge(kafka_.config, kafka_.bootstrap(), kTopic, ""));

  for (Replica* r : {&a, &b}) {
    restore_ok(*r);
    EXPECT_FALSE(r->store->get_response("acme", "fp", "v"));
    EXPECT_FALSE(r->store->get_vector("acme", "e1", "v"));
    EXPECT_TRUE(r->store->get_response("globex", "fp", "v"));
  }
  // Partitions interleave: the purge is somewhere among B's applied records.
  int purges = 0;
  for (const auto& r : listener.records) {
    if (r.what == "purge") {
      purges++;
      EXPECT_EQ(r.key, "acme");
    }
  }
  EXPECT_EQ(purges, 1);
}

TEST_F(StateChangelogTest, ARestoreOutOfTimeFailsWithTimeoutAndTheNextOneCatchesUp) {
  auto a = open_replica(dir_.sub("a"), "worker-a");
  ASSERT_TRUE(a.changelog);
  ASSERT_TRUE(a.store->put_response("acme", "fp", "x", "v"));
  ASSERT_TRUE(a.changelog->flush(kWaitMs));
  auto c = open_replica(dir_.sub("c"), "worker-c");
  ASSERT_TRUE(c.changelog);
  auto hurried = c.changelog->restore(0);
  ASSERT_FALSE(hurried);
  EXPECT_EQ(hurried.error().code, ErrorCode::timeout);
  EXPECT_THAT(hurried.error().message, HasSubstr(kTopic));
  EXPECT_EQ(restore_ok(c).records, 1u);
  EXPECT_TRUE(c.store->get_response("acme", "fp", "v"));
}

TEST_F(StateChangelogTest, RestoreAndShutdownEndWhenTheBrokerIsGone) {
  auto a = open_replica(dir_.sub("a"), "worker-a");
  ASSERT_TRUE(a.changelog);
  auto c = open_replica(dir_.sub("c"), "worker-c");
  ASSERT_TRUE(c.changelog);
  ASSERT_TRUE(a.store->put_response("acme", "fp", "x", "v"));
  ASSERT_TRUE(a.changelog->flush(kWaitMs));
  kafka_.broker.reset();
  // C may or may not have fetched A's record before the broker went: either
  // it catches up from what it has, or it gives up at the timeout. It must
  // not hang, nor must the shutdown that follows.
  auto report = c.changelog->restore(500);
  if (!report) {
    EXPECT_EQ(report.error().code, ErrorCode::timeout) << report.error().message;
  }
  ASSERT_TRUE(c.store->put_response("acme", "unpublished", "x", "v"));
  c.close();
  a.close();
}

}  // namespace
}  // namespace cascade
