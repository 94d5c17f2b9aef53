// CascadeClient over the embedded broker: what it sends, and how it collects
// the reply events of its own requests.
#include "client/cascade_client.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>
#include <string>

#include "events/request_fingerprint.h"

#include "support/embedded_kafka.h"
#include "support/wait.h"

namespace cascade {
namespace {

using namespace std::chrono_literals;

class CascadeClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.partitions = 2;
    auto conn = KafkaConnection::open(config_);
    ASSERT_TRUE(conn) << conn.error().message;
    conn_ = *conn;
    auto replier = EventProducer::create(config_, conn_.bootstrap());
    ASSERT_TRUE(replier) << replier.error().message;
    replier_ = std::move(*replier);
  }

  std::unique_ptr<CascadeClient> open_client() {
    auto client = CascadeClient::open(config_, conn_.bootstrap(), config_.replies_topic);
    if (!client) {
      ADD_FAILURE() << "CascadeClient::open: " << client.error().message;
      return nullptr;
    }
    return std::move(*client);
  }

  // What a worker would write to the reply topic (key = request id).
  void reply(const std::string& id, const std::string& event) {
    ASSERT_TRUE(replier_->produce(config_.replies_topic, id, event));
    ASSERT_TRUE(replier_->flush(10000));
  }

  static PromptEvent prompt(const std::string& id) {
    PromptEvent p;
    p.id = id;
    p.tenant = "acme";
    p.messages = nlohmann::json::array({{{"role", "user"}, {"content", "hello"}}});
    return p;
  }

  static std::string final_event(const std::string& id, std::int64_t seq, const std::string& content) {
    FinalReply f;
    f.id = id;
    f.seq = seq;
    f.content = content;
    f.model = "m";
    f.provider = "p";
    f.finish_reason = "stop";
    return make_final_event(f);
  }

  // Polls until `done` holds or a generous deadline passes (no timing assertion).
  template <class Pred>
  static bool poll_until(CascadeClient& client, Pred done) {
    return testing::eventually(done, 10s, [&] { client.poll(20); });
  }

  KafkaConfig config_ = testing::fast_kafka_config();
  KafkaConnection conn_;
  std::unique_ptr<EventProducer> replier_;
};

TEST_F(CascadeClientTest, SendWritesThePromptToTheRequestsTopicKeyedByItsPromptEventKeyWithItsReplyTopic) {
  auto client = open_client();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->send(prompt("req-1")));
  ASSERT_TRUE(client->flush(10000));

  std::vector<std::pair<std::string, nlohmann::json>> records;
  auto read = read_topic_to_end(config_, conn_.bootstrap(), config_.requests_topic,
                                [&](const KafkaRecord& m) {
                                  records.emplace_back(m.key(), nlohmann::json::parse(m.payload()));
                                });
  ASSERT_TRUE(read) << read.error().message;
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].first, prompt_event_key(prompt("req-1")));
  EXPECT_TRUE(records[0].first.starts_with("acme/")) << records[0].first;
  EXPECT_EQ(records[0].second.value("id", ""), "req-1");
  EXPECT_EQ(records[0].second.value("reply_to", ""), config_.replies_topic);
  EXPECT_EQ(client->outstanding(), 1u);
}

// Why prompts are keyed so (docs/events.md, "Prompt event key"): one
// tenant's distinct requests reach every partition, hence every worker
// loop; identical ones one partition, where single flight meets them; and
// a key lands where the gateway's producer (the Java partitioner) puts it.
TEST_F(CascadeClientTest, OneTenantsRequestsSpreadOverEveryPartitionAndIdenticalOnesShareOne) {
  constexpr int kPartitions = 8;
  constexpr int kDistinct = 800;
  KafkaConfig config = config_;
  config.requests_topic = "spread.requests";
  ASSERT_TRUE(conn_.broker()->create_topic({config.requests_topic, kPartitions}));
  auto opened = CascadeClient::open(config, conn_.bootstrap(), config_.replies_topic);
  ASSERT_TRUE(opened) << opened.error().message;
  auto& client = **opened;
  auto distinct = [](int i) {
    PromptEvent p = prompt("distinct-" + std::to_string(i));
    p.messages[0]["content"] = "question " + std::to_string(i);
    return p;
  };
  for (int i = 0; i < kDistinct; ++i) ASSERT_TRUE(client.send(distinct(i)));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(client.send(prompt("same-" + std::to_string(i))));
  ASSERT_TRUE(client.flush(10000));
  // The same keys through the producer the gateway uses.
  auto gateway_like = KafkaProducer::create(config, conn_.bootstrap(), {.java_partitioner = true});
  ASSERT_TRUE(gateway_like);
  const std::string same_key = prompt_event_key(prompt("any"));
  for (const std::string& key : {same_key, prompt_event_key(distinct(0))}) {
    ASSERT_TRUE((*gateway_like)->produce(config.requests_topic, {.key = key, .value = "gateway"}));
  }
  ASSERT_TRUE((*gateway_like)->flush(10000));

  std::map<int, int> distinct_per_partition;
  std::map<std::string, std::set<std::int32_t>> partitions_of_key;
  auto read = read_topic_to_end(config, conn_.bootstrap(), config.requests_topic, [&](const KafkaRecord& m) {
    partitions_of_key[std::string(m.key())].insert(m.partition());
    if (m.payload().find("distinct-") != std::string_view::npos) distinct_per_partition[m.partition()]++;
  });
  ASSERT_TRUE(read) << read.error().message;
  EXPECT_EQ(*read, static_cast<std::uint64_t>(kDistinct + 20 + 2));
  EXPECT_EQ(partitions_of_key.at(same_key).size(), 1u) << "20 identical requests and the gateway's twin";
  for (const auto& [key, partitions] : partitions_of_key) EXPECT_EQ(partitions.size(), 1u) << key;
  // 100 expected per partition, binomial: sd ~9.4; 40-160 is over 6 sd.
  ASSERT_EQ(distinct_per_partition.size(), static_cast<std::size_t>(kPartitions));
  for (const auto& [partition, n] : distinct_per_partition) {
    EXPECT_GT(n, 40) << "partition " << partition;
    EXPECT_LT(n, 160) << "partition " << partition;
  }
}

TEST_F(CascadeClientTest, CollectsChunksAndTheFinalOfItsOwnRequestsOnly) {
  auto client = open_client();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->send(prompt("req-1")));
  reply("req-1", make_chunk_event("req-1", 0, "Hel"));
  reply("someone-else", make_chunk_event("someone-else", 0, "not ours"));
  reply("req-1", make_chunk_event("req-1", 1, "lo"));
  reply("req-1", final_event("req-1", 2, "Hello"));

  ASSERT_TRUE(client->wait_all(10s));
  EXPECT_EQ(client->outstanding(), 0u);
  ASSERT_EQ(client->replies().size(), 1u);
  const CollectedReply& r = client->replies().at("req-1");
  ASSERT_EQ(r.chunks.size(), 2u);
  EXPECT_EQ(r.chunks[0].body.value("delta", ""), "Hel");
  EXPECT_EQ(r.chunks[1].body.value("delta", ""), "lo");
  ASSERT_TRUE(r.terminal);
  EXPECT_EQ(r.terminal->type, "final");
  EXPECT_EQ(r.terminal_count, 1u);
  EXPECT_TRUE(r.seq_in_order);
  EXPECT_TRUE(r.first_chunk_at && r.terminal_at);
}

TEST_F(CascadeClientTest, AnErrorEventIsATerminalToo) {
  auto client = open_client();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->send_raw("acme", "{not json", "bad-1"));
  reply("bad-1", make_error_event("bad-1", 0, Error{ErrorCode::invalid_request, "not JSON"}));
  ASSERT_TRUE(client->wait_all(10s));
  const CollectedReply& r = client->replies().at("bad-1");
  ASSERT_TRUE(r.terminal);
  EXPECT_EQ(r.terminal->type, "error");
  EXPECT_TRUE(r.chunks.empty());
}

TEST_F(CascadeClientTest, RedeliveredTerminalIsCountedButCompletesTheRequestOnce) {
  auto client = open_client();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->send(prompt("req-1")));
  ASSERT_TRUE(client->send(prompt("req-2")));
  reply("req-1", final_event("req-1", 0, "first"));
  reply("req-1", final_event("req-1", 0, "again"));

  ASSERT_TRUE(poll_until(*client, [&] { return client->replies().at("req-1").terminal_count == 2; }));
  EXPECT_EQ(client->outstanding(), 1u) << "req-2 is still waiting";
  EXPECT_EQ(client->replies().at("req-1").terminal->body.value("content", ""), "first");
}

TEST_F(CascadeClientTest, TakeAnsweredHandsOverAnsweredRepliesAndCountsLateEventsForThem) {
  auto client = open_client();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->send(prompt("req-1")));
  ASSERT_TRUE(client->send(prompt("req-2")));
  reply("req-1", final_event("req-1", 0, "first"));
  ASSERT_TRUE(poll_until(*client, [&] { return client->outstanding() == 1; }));

  auto answered = client->take_answered();
  ASSERT_EQ(answered.size(), 1u);
  EXPECT_EQ(answered.at("req-1").terminal->body.value("content", ""), "first");
  EXPECT_FALSE(client->replies().contains("req-1"));
  EXPECT_TRUE(client->replies().contains("req-2")) << "still waiting, still held";

  reply("req-1", final_event("req-1", 0, "again"));  // a redelivered answer
  reply("req-2", final_event("req-2", 0, "second"));
  ASSERT_TRUE(poll_until(*client, [&] { return client->outstanding() == 0; }));
  EXPECT_EQ(client->late_events(), 1u);
  EXPECT_EQ(client->take_answered().size(), 1u);
}

TEST_F(CascadeClientTest, ChunkSequenceGapIsReported) {
  auto client = open_client();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->send(prompt("req-1")));
  reply("req-1", make_chunk_event("req-1", 0, "a"));
  reply("req-1", make_chunk_event("req-1", 2, "c"));
  reply("req-1", final_event("req-1", 3, "ac"));
  ASSERT_TRUE(client->wait_all(10s));
  EXPECT_FALSE(client->replies().at("req-1").seq_in_order);
}

TEST_F(CascadeClientTest, RepliesWrittenBeforeTheClientOpenedAreNotRead) {
  reply("req-1", final_event("req-1", 0, "stale"));
  auto client = open_client();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->send(prompt("req-1")));
  reply("req-1", make_chunk_event("req-1", 0, "fresh"));
  reply("req-1", final_event("req-1", 1, "fresh"));
  ASSERT_TRUE(client->wait_all(10s));
  const CollectedReply& r = client->replies().at("req-1");
  ASSERT_TRUE(r.terminal);
  EXPECT_EQ(r.terminal->body.value("content", ""), "fresh");
  EXPECT_EQ(r.chunks.size(), 1u);
}

TEST_F(CascadeClientTest, WaitAllGivesUpWhenARequestNeverCompletes) {
  auto client = open_client();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->send(prompt("req-1")));
  EXPECT_FALSE(client->wait_all(200ms));
  EXPECT_EQ(client->outstanding(), 1u);
}

}  // namespace
}  // namespace cascade
