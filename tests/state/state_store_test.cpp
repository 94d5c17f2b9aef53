#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rocksdb/utilities/db_ttl.h>

#include <chrono>
#include <string>
#include <vector>

#include "state/state.h"
#include "support/state_store.h"
#include "support/temp_dir.h"
#include "support/wait.h"

namespace cascade {
namespace {

using testing::ManualClock;
using testing::open_state_store;
using testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr std::int64_t kHourMs = 3600 * 1000;

StateOptions options_for(const TempDir& dir, const ManualClock& clock) {
  StateOptions o = testing::state_options_in(dir.path());  // tests call maintain() themselves
  o.now_ms = clock.fn();
  o.responses_ttl_s = 3600;
  o.vectors_ttl_s = 3600;
  o.embeddings_ttl_s = 24 * 3600;
  o.completed_ttl_s = 7 * 24 * 3600;
  return o;
}

std::vector<std::string> response_keys(const StateStore& store, std::string_view prefix = "") {
  std::vector<std::string> keys;
  auto ok = store.for_each(StateFamily::responses, prefix, [&](std::string_view k, const StoredEntry&) {
    keys.emplace_back(k);
    return true;
  });
  EXPECT_TRUE(ok);
  return keys;
}

TEST(StateStore, ResponseRoundTripsWithItsMetadata) {
  TempDir dir;
  ManualClock clock;
  auto store = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->put_response("acme", "fp-1", R"({"text":"hi"})", "gpt-4o@1"));
  auto got = store->get_response("acme", "fp-1", "gpt-4o@1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->payload, R"({"text":"hi"})");
  EXPECT_EQ(got->version, "gpt-4o@1");
  EXPECT_EQ(got->created_ms, clock.now());
  EXPECT_EQ(got->expires_ms, clock.now() + kHourMs);
}

TEST(StateStore, EmbeddingRoundTripsAsFloats) {
  TempDir dir;
  ManualClock clock;
  auto store = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(store);
  const std::vector<float> v = {0.25f, -1.5f, 3.0e-7f, 42.0f};
  ASSERT_TRUE(store->put_embedding("minilm-v2", "sha256:ab", v));
  auto got = store->get_embedding("minilm-v2", "sha256:ab");
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, v);
  EXPECT_EQ(store->get_embedding("minilm-v2", "sha256:cd"), std::nullopt);
}

TEST(StateStore, VectorEntryRoundTripsWithTextAndResponseKey) {
  TempDir dir;
  ManualClock clock;
  auto store = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(store);
  VectorEntry e{{1.0f, 0.0f, -0.5f}, "what is the capital of france", tenant_key("acme", "fp-9")};
  ASSERT_TRUE(store->put_vector("acme", "entry-1", e, "minilm-v2"));
  auto got = store->get_vector("acme", "entry-1", "minilm-v2");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->vector, e.vector);
  EXPECT_EQ(got->normalized_text, e.normalized_text);
  EXPECT_EQ(got->response_key, e.response_key);
}

TEST(StateStore, FamiliesAreSeparateKeySpaces) {
  TempDir dir;
  ManualClock clock;
  auto store = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(store);
  const std::string key = tenant_key("acme", "same");
  ASSERT_TRUE(store->put(StateFamily::responses, key, "response", ""));
  EXPECT_FALSE(store->get(StateFamily::vectors, key, ""));
  EXPECT_FALSE(store->get(StateFamily::completed, key, ""));
  ASSERT_TRUE(store->get(StateFamily::responses, key, ""));
}

TEST(StateStore, CompletedAnswerViewWritesTheStoresCompletedFamily) {
  TempDir dir;
  ManualClock clock;
  auto store = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(store);
  auto view = CompletedAnswerStore::view(*store);
  ASSERT_TRUE(view->put("acme", "req-1", CompletedAnswer{"final", "cost"}));
  auto entry = store->get(StateFamily::completed, tenant_key("acme", "req-1"), "");
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->expires_ms, clock.now() + 7 * 24 * kHourMs);
  auto answer = view->get("acme", "req-1");
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->final_event, "final");
  EXPECT_EQ(answer->cost_event, "cost");
}

TEST(StateStore, TenantFamiliesRefuseKeysWithoutATenant) {
  TempDir dir;
  ManualClock clock;
  auto store = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(store);
  auto no_tenant = store->put(StateFamily::responses, "no-separator", "x", "");
  ASSERT_FALSE(no_tenant);
  EXPECT_EQ(no_tenant.error().code, ErrorCode::invalid_request);
  EXPECT_FALSE(store->put(StateFamily::vectors, tenant_key("", "id"), "x", ""));
  EXPECT_FALSE(store->put_response("", "fp", "x", ""));
  EXPECT_FALSE(store->put_response(std::string("ac\0me", 5), "fp", "x", ""));
  EXPECT_FALSE(store->purge_tenant(""));
}

TEST(StateStore, AnEntryIsServedUntilItsExpiryAndNeverAfter) {
  TempDir dir;
  ManualClock clock;
  auto store = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->put_response("acme", "fp", "answer", "v1"));
  clock.advance_ms(kHourMs - 1);
  EXPECT_TRUE(store->get_response("acme", "fp", "v1"));
  clock.advance_ms(1);
  EXPECT_FALSE(store->get_response("acme", "fp", "v1"));
  EXPECT_TRUE(response_keys(*store).empty());
}

TEST(StateStore, CompactionDropsExpiredEntriesFromTheFiles) {
  TempDir dir;
  ManualClock clock;
  auto store = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(store);
  const auto start = clock.now();
  ASSERT_TRUE(store->put_response("acme", "old", "answer", "v1"));
  clock.advance_ms(30 * 60 * 1000);
  ASSERT_TRUE(store->put_response("acme", "young", "answer", "v1"));
  clock.advance_ms(31 * 60 * 1000);  // "old" expired, "young" not
  ASSERT_TRUE(store->compact());
  // Turning the clock back shows what is still in the files.
  clock.set(start);
  EXPECT_FALSE(store->get_response("acme", "old", "v1"));
  EXPECT_TRUE(store->get_response("acme", "young", "v1"));
}

TEST(StateStore, WithoutCompactionAnExpiredEntryIsStillInTheFiles) {
  // Control for the test above: reads alone do not delete.
  TempDir dir;
  ManualClock clock;
  auto store = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(store);
  const auto start = clock.now();
  ASSERT_TRUE(store->put_response("acme", "old", "answer", "v1"));
  clock.advance_ms(2 * kHourMs);
  EXPECT_FALSE(store->get_response("acme", "old", "v1"));
  clock.set(start);
  EXPECT_TRUE(store->get_response("acme", "old", "v1"));
}

TEST(StateStore, AReadExpectingAnotherVersionMisses) {
  TempDir dir;
  ManualClock clock;
  auto store = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->put_response("acme", "fp", "answer", "gpt-4o@2024-08"));
  EXPECT_FALSE(store->get_response("acme", "fp", "gpt-4o@2024-11"));
  EXPECT_FALSE(store->get_response("acme", "fp", ""));
  EXPECT_TRUE(store->get_response("acme", "fp", "gpt-4o@2024-08"));

  VectorEntry e{{1.0f}, "text", "key"};
  ASSERT_TRUE(store->put_vector("acme", "e1", e, "embedder-1"));
  EXPECT_FALSE(store->get_vector("acme", "e1", "embedder-2"));
  EXPECT_TRUE(store->get_vector("acme", "e1", "embedder-1"));
}

TEST(StateStore, TenantsNeverReadEachOthersEntries) {
  TempDir dir;
  ManualClock clock;
  auto store = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->put_response("acme", "fp", "acme answer", "v"));
  EXPECT_FALSE(store->get_response("globex", "fp", "v"));
  EXPECT_FALSE(store->get_response("acm", "efp", "v"));
  ASSERT_TRUE(store->put_vector("acme", "e1", VectorEntry{{1.0f}, "t", "k"}, "v"));
  EXPECT_FALSE(store->get_vector("globex", "e1", "v"));
}

TEST(StateStore, PurgeRemovesOnlyThatTenantsCacheEntries) {
  TempDir dir;
  ManualClock clock;
  auto store = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(store);
  auto completed = CompletedAnswerStore::view(*store);
  for (const char* tenant : {"acme", "acme2", "acm", "globex"}) {
    ASSERT_TRUE(store->put_response(tenant, "fp-1", "a", "v"));
    ASSERT_TRUE(store->put_response(tenant, "fp-2", "b", "v"));
    ASSERT_TRUE(store->put_vector(tenant, "e1", VectorEntry{{1.0f}, "t", "k"}, "v"));
    ASSERT_TRUE(completed->put(tenant, "req-1", CompletedAnswer{"final", "cost"}));
  }
  ASSERT_TRUE(store->put_embedding("emb", "hash", std::vector<float>{1.0f}));
  clock.advance_ms(5);
  ASSERT_TRUE(store->purge_tenant("acme"));

  EXPECT_FALSE(store->get_response("acme", "fp-1", "v"));
  EXPECT_FALSE(store->get_response("acme", "fp-2", "v"));
  EXPECT_FALSE(store->get_vector("acme", "e1", "v"));
  // Completed answers guard against double charges: a purge keeps them.
  EXPECT_TRUE(completed->get("acme", "req-1"));
  for (const char* tenant : {"acme2", "acm", "globex"}) {
    EXPECT_TRUE(store->get_response(tenant, "fp-1", "v")) << tenant;
    EXPECT_TRUE(store->get_response(tenant, "fp-2", "v")) << tenant;
    EXPECT_TRUE(store->get_vector(tenant, "e1", "v")) << tenant;
  }
  EXPECT_TRUE(store->get_embedding("emb", "hash"));
}

TEST(StateStore, AnEntryWrittenRightAfterAPurgeIsKept) {
  TempDir dir;
  ManualClock clock;
  auto store = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->put_response("acme", "fp", "before", "v"));
  ASSERT_TRUE(store->purge_tenant("acme"));
  // Same millisecond as the purge: still after it.
  ASSERT_TRUE(store->put_response("acme", "fp", "after", "v"));
  auto got = store->get_response("acme", "fp", "v");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->payload, "after");
  EXPECT_GT(got->created_ms, clock.now());
}

TEST(StateStore, EraseRemovesOneEntry) {
  TempDir dir;
  ManualClock clock;
  auto store = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->put_response("acme", "fp-1", "a", "v"));
  ASSERT_TRUE(store->put_response("acme", "fp-2", "b", "v"));
  ASSERT_TRUE(store->erase(StateFamily::responses, tenant_key("acme", "fp-1")));
  EXPECT_FALSE(store->get_response("acme", "fp-1", "v"));
  EXPECT_TRUE(store->get_response("acme", "fp-2", "v"));
  EXPECT_TRUE(store->erase(StateFamily::responses, tenant_key("acme", "never-written")));
}

TEST(StateStore, ForEachVisitsTheLiveEntriesUnderAPrefixInKeyOrder) {
  TempDir dir;
  ManualClock clock;
  auto store = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->put_response("acme", "b", "x", ""));
  ASSERT_TRUE(store->put_response("acme", "a", "x", ""));
  ASSERT_TRUE(store->put_response("globex", "a", "x", ""));
  EXPECT_THAT(response_keys(*store, tenant_key("acme", "")),
              ElementsAre(tenant_key("acme", "a"), tenant_key("acme", "b")));
  EXPECT_EQ(response_keys(*store).size(), 3u);
}

TEST(StateStore, SizeBoundEvictsTheOldestCacheEntriesFirst) {
  TempDir dir;
  ManualClock clock;
  auto o = options_for(dir, clock);
  o.max_bytes = 20 * 1024;
  auto store = open_state_store(o);
  ASSERT_TRUE(store);
  const std::string payload(1000, 'x');
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(store->put_response("acme", "fp-" + std::to_string(i), payload, "v"));
    clock.advance_ms(1);
  }
  EXPECT_GT(store->stats().cache_bytes, o.max_bytes);
  auto report = store->maintain();
  ASSERT_TRUE(report);
  EXPECT_GT(report->evicted, 0u);
  EXPECT_EQ(report->expired, 0u);
  EXPECT_LE(report->bytes_after, o.max_bytes);
  EXPECT_FALSE(report->over_bound);
  EXPECT_EQ(store->stats().cache_bytes, report->bytes_after);

  // What is left is a suffix of the write order: the newest.
  std::vector<int> kept;
  for (int i = 0; i < 40; ++i) {
    if (store->get_response("acme", "fp-" + std::to_string(i), "v")) kept.push_back(i);
  }
  ASSERT_FALSE(kept.empty());
  EXPECT_EQ(kept.back(), 39);
  EXPECT_EQ(kept.front(), 40 - static_cast<int>(kept.size()));
  EXPECT_EQ(kept.size() + report->evicted, 40u);
}

TEST(StateStore, SizeBoundNeverEvictsUnexpiredCompletedAnswers) {
  TempDir dir;
  ManualClock clock;
  auto o = options_for(dir, clock);
  o.max_bytes = 8 * 1024;
  auto store = open_state_store(o);
  ASSERT_TRUE(store);
  auto completed = CompletedAnswerStore::view(*store);
  const std::string big(1000, 'c');
  // The completed answers are the oldest entries and alone exceed the bound.
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(completed->put("acme", "req-" + std::to_string(i), CompletedAnswer{big, "cost"}));
    clock.advance_ms(1);
  }
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store->put_response("acme", "fp-" + std::to_string(i), big, "v"));
    clock.advance_ms(1);
  }
  auto report = store->maintain();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->evicted, 5u);
  EXPECT_TRUE(report->over_bound);
  EXPECT_EQ(store->stats().cache_bytes, 0u);
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(completed->get("acme", "req-" + std::to_string(i))) << i;
}

TEST(StateStore, ExpirySweepRemovesExpiredCompletedAnswersAndTheirBytes) {
  TempDir dir;
  ManualClock clock;
  auto store = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(store);
  auto completed = CompletedAnswerStore::view(*store);
  ASSERT_TRUE(completed->put("acme", "req-old", CompletedAnswer{"f", "c"}));
  clock.advance_ms(7 * 24 * kHourMs - 10);
  ASSERT_TRUE(completed->put("acme", "req-new", CompletedAnswer{"f", "c"}));
  ASSERT_TRUE(store->put_response("acme", "fp", "x", "v"));
  clock.advance_ms(10);
  const auto before = store->stats();
  auto report = store->maintain();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->expired, 1u);
  EXPECT_EQ(report->evicted, 0u);
  EXPECT_LT(store->stats().completed_bytes, before.completed_bytes);
  EXPECT_FALSE(completed->get("acme", "req-old"));
  EXPECT_TRUE(completed->get("acme", "req-new"));
  EXPECT_TRUE(store->get_response("acme", "fp", "v"));
}

TEST(StateStore, OverwritingAnEntryCountsItsBytesOnce) {
  TempDir dir;
  ManualClock clock;
  auto store = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->put_response("acme", "fp", std::string(100, 'a'), "v"));
  const auto once = store->stats().cache_bytes;
  clock.advance_ms(1);
  ASSERT_TRUE(store->put_response("acme", "fp", std::string(100, 'b'), "v"));
  EXPECT_EQ(store->stats().cache_bytes, once);
  ASSERT_TRUE(store->erase(StateFamily::responses, tenant_key("acme", "fp")));
  EXPECT_EQ(store->stats().cache_bytes, 0u);
}

TEST(StateStore, ByteCountsAndPurgesSurviveAReopen) {
  TempDir dir;
  ManualClock clock;
  auto o = options_for(dir, clock);
  StateStats before;
  {
    auto store = open_state_store(o);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->put_response("acme", "fp", std::string(100, 'a'), "v"));
    ASSERT_TRUE(CompletedAnswerStore::view(*store)->put("acme", "r", CompletedAnswer{"f", "c"}));
    ASSERT_TRUE(store->purge_tenant("globex"));
    before = store->stats();
    ASSERT_TRUE(store->close());
  }
  auto store = open_state_store(o);
  ASSERT_TRUE(store);
  EXPECT_EQ(store->stats().cache_bytes, before.cache_bytes);
  EXPECT_EQ(store->stats().completed_bytes, before.completed_bytes);
  EXPECT_TRUE(store->get_response("acme", "fp", "v"));
  // The purge floor is remembered: a write in the purge's millisecond lands after it.
  ASSERT_TRUE(store->put_response("globex", "fp", "x", "v"));
  EXPECT_GT(store->get_response("globex", "fp", "v")->created_ms, clock.now());
}

TEST(StateStore, AClosedStoreRefusesWritesAndMissesReads) {
  TempDir dir;
  ManualClock clock;
  auto store = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(store);
  ASSERT_TRUE(store->put_response("acme", "fp", "x", "v"));
  ASSERT_TRUE(store->close());
  EXPECT_FALSE(store->put_response("acme", "fp", "x", "v"));
  EXPECT_FALSE(store->get_response("acme", "fp", "v"));
  EXPECT_FALSE(store->maintain());
  EXPECT_TRUE(store->close());  // idempotent
}

TEST(StateStore, AReplicatedStoreKeepsUnpublishedChangesInItsOutboxAcrossRestarts) {
  TempDir dir;
  ManualClock clock;
  auto o = options_for(dir, clock);
  o.replicated = true;
  std::uint64_t seq = 0;
  {
    auto store = open_state_store(o);
    ASSERT_TRUE(store);
    auto put = store->put_response("acme", "fp", "x", "v");
    ASSERT_TRUE(put);
    seq = *put;
    EXPECT_GT(seq, 0u);
    EXPECT_FALSE(store->published(seq));
    EXPECT_EQ(store->stats().outbox_pending, 1u);
  }
  auto store = open_state_store(o);
  ASSERT_TRUE(store);
  EXPECT_EQ(store->stats().outbox_pending, 1u);
  EXPECT_FALSE(store->published(seq));
  EXPECT_TRUE(store->published(0));
}

TEST(StateStore, AnUnreplicatedStoreQueuesNothing) {
  TempDir dir;
  ManualClock clock;
  auto store = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(store);
  auto put = store->put_response("acme", "fp", "x", "v");
  ASSERT_TRUE(put);
  EXPECT_EQ(*put, 0u);
  EXPECT_EQ(store->stats().outbox_pending, 0u);
}

TEST(StateStore, AStoreOfTheEarlierCompletedOnlyFormatIsMigrated) {
  TempDir dir;
  ManualClock clock;  // the legacy timestamps are real time: use the system clock below
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions(options)},
        {"completed", rocksdb::ColumnFamilyOptions(options)}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DBWithTTL* db = nullptr;
    const std::int32_t ttl = 7 * 24 * 3600;
    ASSERT_TRUE(rocksdb::DBWithTTL::Open(options, dir.path(), families, &handles, &db, {ttl, ttl}).ok());
    // The earlier layout: 8-byte length of the final event, the final event, the cost event.
    std::string value;
    const std::string final_event = R"({"type":"final"})";
    const std::uint64_t n = final_event.size();
    value.append(reinterpret_cast<const char*>(&n), sizeof n);
    value += final_event;
    value += R"({"type":"cost"})";
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), handles[1], tenant_key("acme", "req-1"), value).ok());
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    ASSERT_TRUE(db->Close().ok());
    delete db;
  }
  auto store = CompletedAnswerStore::open(dir.path());
  ASSERT_TRUE(store) << store.error().message;
  auto got = (*store)->get("acme", "req-1");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->final_event, R"({"type":"final"})");
  EXPECT_EQ(got->cost_event, R"({"type":"cost"})");
  EXPECT_GT((*store)->store().stats().completed_bytes, 0u);
  auto entry = (*store)->store().get(StateFamily::completed, tenant_key("acme", "req-1"), "");
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->expires_ms - entry->created_ms, 7 * 24 * kHourMs);
}

TEST(StateStore, OpeningADirectoryAlreadyOpenFailsNamingStateDir) {
  TempDir dir;
  ManualClock clock;
  auto first = open_state_store(options_for(dir, clock));
  ASSERT_TRUE(first);
  auto second = StateStore::open(options_for(dir, clock));
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, ErrorCode::unavailable);
  EXPECT_THAT(second.error().message, HasSubstr("state.dir"));
}

TEST(StateStore, MaintenanceThreadEnforcesTheBoundWithoutBeingCalled) {
  TempDir dir;
  ManualClock clock;
  auto o = options_for(dir, clock);
  o.max_bytes = 4 * 1024;
  o.maintenance_interval_ms = 5;
  auto store = open_state_store(o);
  ASSERT_TRUE(store);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(store->put_response("acme", "fp-" + std::to_string(i), std::string(500, 'x'), "v"));
    clock.advance_ms(1);
  }
  // Eventually, however loaded the machine: bounded by a generous deadline.
  testing::eventually([&] { return store->stats().cache_bytes <= o.max_bytes; }, std::chrono::seconds(30),
                      std::chrono::milliseconds(5));
  EXPECT_LE(store->stats().cache_bytes, o.max_bytes);
  EXPECT_GT(store->stats().evicted_total, 0u);
}

}  // namespace
}  // namespace cascade
