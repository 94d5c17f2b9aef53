// The terminal publisher: every way a request ends publishes exactly one
// terminal event (and the cost event that goes with it), stores what a
// redelivery must find, and nothing ends twice.
#include "consumers/worker/terminal_publisher.h"

#include <gtest/gtest.h>

#include "consumers/worker/single_flight.h"
#include "support/temp_dir.h"
#include "support/worker_host.h"

namespace cascade {
namespace {

using testing::LifecycleHarness;

class TerminalPublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = CompletedAnswerStore::open(dir_.sub("completed"));
    ASSERT_TRUE(store) << store.error().message;
    completed_ = std::move(*store);
    publisher_ = std::make_unique<TerminalPublisher>(h_.context(), completed_.get(),
                                                     [this](Request& r) { ended_.push_back(r.serial); });
  }

  // A request as the lifecycle has it once parsed.
  Request& request(const std::string& id, const std::string& tenant = "acme") {
    auto owned = std::make_unique<Request>();
    owned->serial = h_.requests.next_serial();
    owned->partition = 3;
    owned->offset = 41;
    owned->started = h_.host.clock;
    owned->event.id = id;
    owned->event.tenant = tenant;
    owned->event.reply_to = tenant + ".replies";
    owned->event.metadata = {{"tags", {"checkout"}}};
    owned->tags = {"checkout"};
    return h_.requests.add(std::move(owned));
  }

  const ModelInfo& model(const std::string& id) { return *h_.catalog().find(id); }

  CacheHit cached_hit() {
    CacheHit hit;
    hit.kind = CacheOutcome::semantic;
    hit.reason = "semantic cache: similarity 0.97";
    hit.answer.content = "Paris.";
    hit.answer.model = "small-a";
    hit.answer.provider = "a";
    hit.answer.finish_reason = "stop";
    hit.answer.usage = {100, 20};
    return hit;
  }

  testing::TempDir dir_{"cascade-terminal"};
  LifecycleHarness h_;
  std::unique_ptr<CompletedAnswerStore> completed_;
  std::unique_ptr<TerminalPublisher> publisher_;
  std::vector<std::uint64_t> ended_;
};

TEST_F(TerminalPublisherTest, AnAnswerIsStoredThenPublishedAsOneFinalAndOneCostEventAndEndsTheRequest) {
  Request& r = request("q-1");
  r.reply.content = "The answer is 4.";
  r.reply.next_seq = 3;  // three chunks went out before
  r.route.tier = Tier::small;
  r.route.reason = "heuristic score=0.10";
  r.route.policy = "default";
  r.attempts.notes = "; small-b: HTTP 500 -> fall_back";
  r.charges.wasted_usd = 0.001;
  r.first_token = h_.host.clock + std::chrono::milliseconds(30);
  h_.host.clock += std::chrono::milliseconds(120);
  ChatCompletion completion;
  completion.finish_reason = "stop";
  const TokenUsage usage{1000, 200};

  const PublishedAnswer published = publisher_->answer(r, model("small-a"), completion, usage);

  EXPECT_TRUE(r.terminal());
  EXPECT_EQ(h_.host.terminals, (std::vector<std::uint64_t>{r.serial}));
  EXPECT_EQ(ended_, (std::vector<std::uint64_t>{r.serial}));
  ASSERT_EQ(h_.host.events.size(), 2u);
  EXPECT_TRUE(h_.host.events[0].tracked && h_.host.events[1].tracked);
  const auto final = h_.host.terminal_event("q-1");
  ASSERT_TRUE(final);
  EXPECT_EQ(final->type, "final");
  EXPECT_EQ(final->seq, 3);
  EXPECT_EQ(final->text, "The answer is 4.");
  const double model_usd = cost_usd(model("small-a").price, usage);
  EXPECT_DOUBLE_EQ(published.final.cost_usd, model_usd + 0.001) << "failed attempts are paid too";
  EXPECT_EQ(published.final.route.reason, "heuristic score=0.10 | small-b: HTTP 500 -> fall_back");

  const auto costs = h_.host.cost_events(h_.ledger_topic(), "q-1");
  ASSERT_EQ(costs.size(), 1u);
  const CostEvent& cost = costs[0];
  EXPECT_EQ(cost.tenant, "acme");
  EXPECT_EQ(cost.model, "small-a");
  EXPECT_DOUBLE_EQ(cost.cost_usd, model_usd + 0.001);
  EXPECT_EQ(cost.baseline_model, "large-a");
  EXPECT_DOUBLE_EQ(cost.baseline_cost_usd, cost_usd(model("large-a").price, usage));
  EXPECT_DOUBLE_EQ(cost.savings_usd, cost.baseline_cost_usd - cost.cost_usd);
  EXPECT_EQ(cost.cache, CacheOutcome::miss);
  EXPECT_DOUBLE_EQ(cost.latency_ms, 120);
  EXPECT_DOUBLE_EQ(cost.ttft_ms, 30);
  EXPECT_EQ(cost.price_version, "worker-test");
  EXPECT_EQ(cost.tags, (std::vector<std::string>{"checkout"}));
  EXPECT_EQ(cost.policy, "default");
  EXPECT_EQ(cost.ts_ms, h_.host.wall);
  EXPECT_DOUBLE_EQ(r.charges.charged_usd, cost.cost_usd);

  // What a redelivery finds: the same two events, byte for byte.
  const auto stored = completed_->get("acme", "q-1");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->final_event, h_.host.events[0].payload);
  EXPECT_EQ(stored->cost_event, h_.host.events[1].payload);
}

TEST_F(TerminalPublisherTest, ASecondEndOfTheSameRequestPublishesNothing) {
  Request& r = request("q-2");
  ChatCompletion completion;
  (void)publisher_->answer(r, model("small-a"), completion, {10, 5});
  const auto events = h_.host.events.size();
  EXPECT_EQ(publisher_->fail(r, Error{ErrorCode::timeout, "late"}), -1);
  (void)publisher_->answer(r, model("small-a"), completion, {10, 5});
  publisher_->cache_hit(r, cached_hit());
  publisher_->replay(r, CompletedAnswer{"{}", "{}"});
  EXPECT_EQ(h_.host.events.size(), events);
  EXPECT_EQ(h_.host.terminals.size(), 1u);
  EXPECT_EQ(ended_.size(), 1u);
  EXPECT_EQ(h_.host.terminal_events("q-2"), 1u);
}

TEST_F(TerminalPublisherTest, AFailureWithNothingSpentIsOneErrorEventAndNoCostEvent) {
  Request& r = request("q-3");
  r.reply.next_seq = 2;
  EXPECT_EQ(publisher_->fail(r, Error{ErrorCode::rate_limited, "tenant 'acme' is over its rate limit"}), 2);
  EXPECT_TRUE(r.terminal());
  EXPECT_TRUE(h_.host.cost_events(h_.ledger_topic(), "q-3").empty());
  const auto error = h_.host.terminal_event("q-3");
  ASSERT_TRUE(error);
  EXPECT_EQ(error->type, "error");
  EXPECT_EQ(error->seq, 2);
  EXPECT_EQ(h_.stats.failed.load(), 1u);
  EXPECT_FALSE(completed_->get("acme", "q-3")) << "a failure is not an answer to replay";
}

TEST_F(TerminalPublisherTest, AFailureAfterPaidAttemptsChargesThemOnTheCurrentModelWithNothingSaved) {
  Request& r = request("q-4");
  r.attempts.chain = {&model("small-a"), &model("small-b")};
  r.attempts.index = 1;
  r.attempts.notes = "; small-a: HTTP 500 -> fall_back; small-b: timeout -> give_up";
  r.route.reason = "heuristic";
  r.charges.wasted_usd = 0.0004;
  r.charges.wasted_usage = {300, 40};
  (void)publisher_->fail(r, Error{ErrorCode::timeout, "stream idle"});
  const auto costs = h_.host.cost_events(h_.ledger_topic(), "q-4");
  ASSERT_EQ(costs.size(), 1u);
  EXPECT_EQ(costs[0].model, "small-b");
  EXPECT_DOUBLE_EQ(costs[0].cost_usd, 0.0004);
  EXPECT_DOUBLE_EQ(costs[0].baseline_cost_usd, 0.0004);
  EXPECT_DOUBLE_EQ(costs[0].savings_usd, 0);
  EXPECT_EQ(costs[0].usage.input_tokens, 300);
  EXPECT_EQ(costs[0].route_reason, "heuristic | small-a: HTTP 500 -> fall_back; small-b: timeout -> give_up");
  EXPECT_EQ(h_.host.terminal_events("q-4"), 1u);
  EXPECT_EQ(h_.host.events.back().key, "q-4") << "the cost event goes out before the error event";
}

TEST_F(TerminalPublisherTest, ACacheHitCostsNothingSavesTheBaselineAndIsStored) {
  Request& r = request("q-5");
  h_.host.clock += std::chrono::milliseconds(8);
  publisher_->cache_hit(r, cached_hit());
  const auto final = h_.host.terminal_event("q-5");
  ASSERT_TRUE(final);
  EXPECT_EQ(final->final->cache, CacheOutcome::semantic);
  EXPECT_EQ(final->final->cost_usd, 0);
  EXPECT_EQ(final->final->route.tier, "cache");
  const auto costs = h_.host.cost_events(h_.ledger_topic(), "q-5");
  ASSERT_EQ(costs.size(), 1u);
  EXPECT_EQ(costs[0].cost_usd, 0);
  EXPECT_DOUBLE_EQ(costs[0].savings_usd, cost_usd(model("large-a").price, TokenUsage{100, 20}));
  EXPECT_DOUBLE_EQ(costs[0].ttft_ms, costs[0].latency_ms) << "the first chunk came with the answer";
  EXPECT_TRUE(completed_->get("acme", "q-5"));
}

TEST_F(TerminalPublisherTest, AReplayPublishesTheStoredEventsAsTheyWereAndStoresNothing) {
  Request& r = request("q-6");
  publisher_->replay(r, CompletedAnswer{"final-bytes", "cost-bytes"});
  ASSERT_EQ(h_.host.events.size(), 2u);
  EXPECT_EQ(h_.host.events[0].payload, "final-bytes");
  EXPECT_EQ(h_.host.events[0].topic, "acme.replies");
  EXPECT_EQ(h_.host.events[1].payload, "cost-bytes");
  EXPECT_EQ(h_.host.events[1].topic, h_.ledger_topic());
  EXPECT_EQ(h_.stats.replayed.load(), 1u);
  EXPECT_FALSE(completed_->get("acme", "q-6"));
  EXPECT_TRUE(r.terminal());
}

TEST_F(TerminalPublisherTest, AFollowerGetsTheLeadersAnswerFreeUnderItsOwnIdAndAnEchoGetsTheLeadersEvents) {
  Request& leader = request("lead");
  leader.route.tier = Tier::small;
  leader.reply.content = "42";
  ChatCompletion completion;
  const PublishedAnswer published = publisher_->answer(leader, model("small-a"), completion, {50, 2});

  Request& follower = request("follow");
  follower.reply.next_seq = 1;  // it got the answer as one chunk
  follower.first_token = h_.host.clock;
  h_.host.clock += std::chrono::milliseconds(5);
  publisher_->follower_answer(follower, leader, published);
  const auto final = h_.host.terminal_event("follow");
  ASSERT_TRUE(final);
  EXPECT_EQ(final->text, "42");
  EXPECT_EQ(final->seq, 1);
  EXPECT_EQ(final->final->cache, CacheOutcome::exact);
  EXPECT_EQ(final->final->route.reason, single_flight_reason("lead"));
  const auto costs = h_.host.cost_events(h_.ledger_topic(), "follow");
  ASSERT_EQ(costs.size(), 1u);
  EXPECT_EQ(costs[0].cost_usd, 0);
  EXPECT_DOUBLE_EQ(costs[0].savings_usd, cost_usd(model("large-a").price, TokenUsage{50, 2}));
  EXPECT_EQ(costs[0].cache, CacheOutcome::exact);
  EXPECT_DOUBLE_EQ(costs[0].latency_ms, 5);
  EXPECT_DOUBLE_EQ(costs[0].ttft_ms, 0);
  EXPECT_EQ(costs[0].price_version, "worker-test");
  EXPECT_EQ(costs[0].tags, (std::vector<std::string>{"checkout"}));
  EXPECT_TRUE(completed_->get("acme", "follow"));

  // The leader's own request delivered twice follows it: the leader's bytes.
  Request& echo = request("lead");
  echo.flight.duplicate_of_leader = true;
  const auto before = h_.host.events.size();
  publisher_->follower_answer(echo, leader, published);
  ASSERT_EQ(h_.host.events.size(), before + 2);
  EXPECT_EQ(h_.host.events[before].payload, make_final_event(published.final));
  EXPECT_EQ(h_.host.events[before + 1].payload, make_cost_event(published.cost));
  EXPECT_TRUE(echo.terminal());
}

TEST_F(TerminalPublisherTest, AFollowerFailsWithItsLeaderAndAnEchoSharesTheLeadersSeq) {
  Request& leader = request("lead");
  leader.reply.next_seq = 5;
  const std::int64_t seq = publisher_->fail(leader, Error{ErrorCode::unavailable, "no provider"});
  EXPECT_EQ(seq, 5);
  Request& follower = request("f");
  publisher_->follower_failed(follower, leader, Error{ErrorCode::unavailable, "no provider"}, seq);
  Request& echo = request("lead");
  echo.flight.duplicate_of_leader = true;
  publisher_->follower_failed(echo, leader, Error{ErrorCode::unavailable, "no provider"}, seq);
  EXPECT_EQ(h_.host.terminal_event("f")->seq, 0);
  EXPECT_EQ(h_.host.replies("lead").size(), 2u);
  EXPECT_EQ(h_.host.replies("lead")[1].seq, 5) << "the same (id, seq) as the leader's error";
  EXPECT_TRUE(h_.host.cost_events(h_.ledger_topic(), "f").empty()) << "a follower paid nothing";
  EXPECT_EQ(h_.stats.failed.load(), 3u);
}

TEST_F(TerminalPublisherTest, ARejectedEventIsAnErrorReplyWhenAddressableAndAlwaysADeadLetter) {
  Request& addressable = request("");
  RejectedPrompt rejected;
  rejected.error = Error{ErrorCode::invalid_request, "messages: missing"};
  rejected.id = "bad-1";
  rejected.reply_to = "acme.replies";
  rejected.tenant = "acme";
  publisher_->reject(addressable, rejected, "{\"id\":\"bad-1\"}");
  EXPECT_EQ(h_.host.terminal_event("bad-1")->type, "error");
  EXPECT_EQ(h_.host.published_to(h_.dlq_topic()), 1u);

  Request& anonymous = request("");
  publisher_->reject(anonymous, RejectedPrompt{Error{ErrorCode::invalid_request, "not JSON"}, {}, {}, {}}, "garbage");
  EXPECT_EQ(h_.host.published_to(h_.dlq_topic()), 2u);
  EXPECT_TRUE(anonymous.terminal());
  EXPECT_EQ(h_.stats.rejected.load(), 2u);
  const auto& letter = nlohmann::json::parse(h_.host.events.back().payload);
  EXPECT_EQ(letter["payload"], "garbage");
  EXPECT_EQ(letter["source"]["partition"], 3);
  EXPECT_EQ(letter["source"]["offset"], 41);
}

}  // namespace
}  // namespace cascade
