// A request's whole lifecycle over fakes (tests/support/worker_host.h): a
// fake clock, providers the test answers, a recording producer. Every path a
// request can take ends it with exactly one terminal event, published once,
// and the money it cost on exactly one cost event (none when nothing was
// spent and nothing was answered).
#include "consumers/worker/request_lifecycle.h"

#include <gtest/gtest.h>

#include <set>

#include "support/state_store.h"
#include "support/temp_dir.h"
#include "support/worker_host.h"

namespace cascade {
namespace {

using testing::LifecycleHarness;
using testing::worker_test_config;
using json = nlohmann::json;
using std::chrono::milliseconds;

// Exactly one terminal per request (delivery), and it is the one the
// requester sees: one final or error event per id, unless `echoes` deliveries
// of the same id were in flight together.
void expect_one_terminal_each(LifecycleHarness& h, const std::vector<std::string>& ids) {
  std::multiset<std::uint64_t> terminals(h.host.terminals.begin(), h.host.terminals.end());
  for (auto serial : terminals) EXPECT_EQ(terminals.count(serial), 1u) << "request " << serial << " ended twice";
  for (const auto& id : ids) EXPECT_EQ(h.host.terminal_events(id), 1u) << id;
  std::size_t ended = 0;
  h.requests.for_each([&](Request& r) { ended += r.terminal(); });
  EXPECT_EQ(ended, h.requests.size()) << "every request ended";
}

TEST(RequestLifecycle, AStreamedAnswerIsChunksThenOneFinalAndOneCostEvent) {
  LifecycleHarness h;
  h.consume(LifecycleHarness::prompt("r1", "What is 2+2?", {{"stream", true}}));
  auto& a = h.provider("a");
  ASSERT_EQ(a.calls.size(), 1u);
  EXPECT_EQ(a.calls[0].upstream_model, "small-a");
  EXPECT_EQ(h.request("r1")->state, RequestState::calling);
  a.open_call().observer->on_delta("The answer ");
  h.end_iteration();
  a.answer(a.open_call(), {"is ", "4."}, {12, 6});  // two deltas and the end, read together
  expect_one_terminal_each(h, {"r1"});
  const auto replies = h.host.replies("r1");
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[0].text, "The answer ");
  EXPECT_EQ(replies[1].text, "is 4.") << "deltas that arrived together are one chunk event";
  EXPECT_EQ(replies[2].type, "final");
  EXPECT_EQ(replies[2].seq, 2);
  EXPECT_EQ(replies[2].text, "The answer is 4.");
  const auto costs = h.host.cost_events(h.ledger_topic(), "r1");
  ASSERT_EQ(costs.size(), 1u);
  EXPECT_DOUBLE_EQ(costs[0].cost_usd, cost_usd(h.catalog().find("small-a")->price, TokenUsage{12, 6}));
}

TEST(RequestLifecycle, ARejectedEventEndsAtOnceWithAnErrorReplyAndADeadLetter) {
  LifecycleHarness h;
  h.consume(R"({"id":"bad","tenant":"acme","reply_to":"acme.replies"})");  // no messages
  h.consume("not json at all");
  EXPECT_EQ(h.host.terminals.size(), 2u);
  EXPECT_EQ(h.host.terminal_events("bad"), 1u);
  EXPECT_EQ(h.host.published_to(h.dlq_topic()), 2u);
  EXPECT_TRUE(h.provider("a").calls.empty());
}

TEST(RequestLifecycle, ARedeliveredRequestIsReplayedFromTheCompletedStoreWithoutACall) {
  testing::TempDir dir("cascade-lifecycle");
  auto store = CompletedAnswerStore::open(dir.sub("completed"));
  ASSERT_TRUE(store) << store.error().message;
  LifecycleParts parts;
  parts.completed = store->get();
  LifecycleHarness h(worker_test_config(), parts);
  h.consume(LifecycleHarness::prompt("r1", "Hello"));
  h.provider("a").answer(h.provider("a").open_call(), {"Hi!"});
  std::vector<std::string> first;  // the final and cost events of the first answer
  for (const auto& e : h.host.events) {
    if (e.tracked) first.push_back(e.payload);
  }
  ASSERT_EQ(first.size(), 2u);
  const std::size_t before = h.host.events.size();

  h.consume(LifecycleHarness::prompt("r1", "Hello"));  // the same event, delivered again
  EXPECT_EQ(h.provider("a").calls.size(), 1u) << "not paid twice";
  EXPECT_EQ(h.host.terminals.size(), 2u);
  ASSERT_EQ(h.host.events.size(), before + 2) << "no chunks: the final and the cost event, as they were";
  EXPECT_EQ(h.host.events[before].payload, first[0]);
  EXPECT_EQ(h.host.events[before + 1].payload, first[1]);
  EXPECT_EQ(h.stats.replayed.load(), 1u);
}

class LifecycleWithCache : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = testing::open_state_store(testing::state_options_in(dir_.path()));
    ASSERT_TRUE(store_);
    completed_ = CompletedAnswerStore::view(*store_);
  }
  std::unique_ptr<LifecycleHarness> harness() {
    cache_ = std::make_unique<AnswerCache>(*store_, catalog_, CacheConfig{}, SemanticMatcherOptions{},
                                           SemanticEmbedding{});
    LifecycleParts parts;
    parts.completed = completed_.get();
    parts.cache = cache_.get();
    return std::make_unique<LifecycleHarness>(worker_test_config(), parts, catalog_);
  }
  ModelCatalog catalog_ = testing::worker_test_catalog();
  testing::TempDir dir_{"cascade-lifecycle-cache"};
  std::unique_ptr<StateStore> store_;
  std::unique_ptr<CompletedAnswerStore> completed_;
  std::unique_ptr<AnswerCache> cache_;
};

TEST_F(LifecycleWithCache, AnIdenticalLaterRequestIsAnExactHitThatCallsNothing) {
  auto h = harness();
  h->consume(LifecycleHarness::prompt("first", "Capital of France?", {{"stream", true}}));
  h->provider("a").answer(h->provider("a").open_call(), {"Paris."});
  h->consume(LifecycleHarness::prompt("second", "Capital of France?", {{"stream", true}}));
  EXPECT_EQ(h->provider("a").calls.size(), 1u);
  expect_one_terminal_each(*h, {"first", "second"});
  const auto final = h->host.terminal_event("second");
  ASSERT_TRUE(final);
  EXPECT_EQ(final->final->cache, CacheOutcome::exact);
  EXPECT_EQ(final->text, "Paris.");
  EXPECT_EQ(h->host.replies("second").front().type, "chunk") << "a streamed hit is replayed as chunks";
  EXPECT_EQ(h->stats.cache_hits_exact.load(), 1u);
  EXPECT_EQ(h->host.cost_events(h->ledger_topic(), "second").at(0).cost_usd, 0);
}

TEST(RequestLifecycle, IdenticalRequestsInFlightMakeOneCallAndEachGetsOneTerminal) {
  LifecycleHarness h;
  const json stream = {{"stream", true}};
  h.consume(LifecycleHarness::prompt("lead", "Name a prime.", stream));
  auto& a = h.provider("a");
  a.open_call().observer->on_delta("Two");  // the leader has published a first chunk
  h.consume(LifecycleHarness::prompt("f1", "Name a prime.", stream));
  h.consume(LifecycleHarness::prompt("lead", "Name a prime.", stream));  // the leader's event, delivered again
  EXPECT_EQ(h.request("f1")->state, RequestState::following);
  EXPECT_EQ(a.calls.size(), 1u);
  a.open_call().observer->on_delta(" is prime.");
  ChatCompletion done;
  done.finish_reason = "stop";
  a.calls[0].ended = true;
  a.calls[0].observer->on_complete(done);

  EXPECT_EQ(h.host.terminals.size(), 3u);
  std::set<std::uint64_t> distinct(h.host.terminals.begin(), h.host.terminals.end());
  EXPECT_EQ(distinct.size(), 3u) << "each delivery ends once";
  EXPECT_EQ(h.host.terminal_events("f1"), 1u);
  EXPECT_EQ(h.host.terminal_events("lead"), 2u) << "the echo gets the leader's own final again";
  const auto f1 = h.host.replies("f1");
  ASSERT_EQ(f1.size(), 3u) << "caught up in one chunk, then the live one, then the final";
  EXPECT_EQ(f1[0].text, "Two");
  EXPECT_EQ(f1[1].text, " is prime.");
  EXPECT_EQ(f1[2].text, "Two is prime.");
  EXPECT_EQ(h.stats.single_flight_followers.load(), 2u);
}

TEST(RequestLifecycle, FollowersOfAFailedLeaderGetItsErrorAndNoCharge) {
  LifecycleHarness h;
  h.consume(LifecycleHarness::prompt("lead", "Q"));
  h.consume(LifecycleHarness::prompt("f1", "Q"));
  // Every model fails on the request's own fault: the chain runs out.
  const Error bad{ErrorCode::invalid_request, "bad request", 400};
  h.provider("a").fail(h.provider("a").open_call(), bad);  // small-a
  h.provider("b").fail(h.provider("b").open_call(), bad);  // small-b
  h.provider("a").fail(h.provider("a").open_call(), bad);  // medium-a
  expect_one_terminal_each(h, {"lead", "f1"});
  EXPECT_EQ(h.host.terminal_event("f1")->type, "error");
  EXPECT_TRUE(h.host.cost_events(h.ledger_topic(), "f1").empty());
  EXPECT_EQ(h.host.terminal_event("lead")->error_code, "invalid_request");
}

TEST(RequestLifecycle, AProviderErrorIsRetriedAfterItsBackoffOnTheClock) {
  LifecycleHarness h;
  h.consume(LifecycleHarness::prompt("r1", "Hi"));
  auto& a = h.provider("a");
  a.fail(a.open_call(), Error{ErrorCode::provider_error, "HTTP 500", 500});
  EXPECT_EQ(h.request("r1")->state, RequestState::backing_off);
  ASSERT_EQ(h.host.timers.size(), 1u);
  EXPECT_EQ(h.host.timers[0].kind, TimerKind::retry);
  EXPECT_EQ(a.calls.size(), 1u) << "nothing before the backoff ends";
  h.advance(milliseconds(h.context().config.resilience.retry.backoff_cap_ms));
  ASSERT_EQ(a.calls.size(), 2u);
  a.answer(a.open_call(), {"Hello"});
  expect_one_terminal_each(h, {"r1"});
  EXPECT_EQ(h.stats.retries.load(), 1u);
  EXPECT_NE(h.host.terminal_event("r1")->final->route.reason.find("small-a: HTTP 500 -> retry"), std::string::npos);
}

TEST(RequestLifecycle, ARequestSideErrorFallsBackToTheNextModelAtOnce) {
  LifecycleHarness h;
  h.consume(LifecycleHarness::prompt("r1", "Hi"));
  h.provider("a").fail(h.provider("a").open_call(), Error{ErrorCode::invalid_request, "HTTP 400", 400});
  ASSERT_EQ(h.provider("b").calls.size(), 1u);
  EXPECT_EQ(h.provider("b").calls[0].upstream_model, "small-b");
  h.provider("b").answer(h.provider("b").open_call(), {"Hello"});
  expect_one_terminal_each(h, {"r1"});
  EXPECT_EQ(h.host.terminal_event("r1")->final->model, "small-b");
}

TEST(RequestLifecycle, ASilentStreamIsCutAtItsFirstTokenTimeoutAndRetried) {
  Config config = worker_test_config();
  config.providers["a"].first_token_timeout_ms = 1000;
  LifecycleHarness h(config);
  h.consume(LifecycleHarness::prompt("r1", "Hi"));
  auto& a = h.provider("a");
  h.advance(milliseconds(900));
  EXPECT_FALSE(a.calls[0].cancelled);
  h.advance(milliseconds(200));
  EXPECT_TRUE(a.calls[0].cancelled);
  EXPECT_EQ(h.stats.timeouts.load(), 1u);
  h.advance(milliseconds(config.resilience.retry.backoff_cap_ms));
  ASSERT_EQ(a.calls.size(), 2u);
  a.answer(a.open_call(), {"Hello"});
  expect_one_terminal_each(h, {"r1"});
}

TEST(RequestLifecycle, AStreamCutAfterItsFirstChunkFailsOnceAndPaysWhatItGenerated) {
  LifecycleHarness h;
  h.consume(LifecycleHarness::prompt("r1", "Tell a story", {{"stream", true}}));
  auto& a = h.provider("a");
  a.open_call().observer->on_delta("Once upon a time");
  a.fail(a.open_call(), Error{ErrorCode::provider_error, "stream cut", 0});
  expect_one_terminal_each(h, {"r1"});
  EXPECT_EQ(h.host.terminal_event("r1")->type, "error") << "a published chunk cannot be retried away";
  const auto costs = h.host.cost_events(h.ledger_topic(), "r1");
  ASSERT_EQ(costs.size(), 1u);
  EXPECT_GT(costs[0].cost_usd, 0);
  EXPECT_EQ(a.calls.size(), 1u);
}

TEST(RequestLifecycle, AProviderAtItsConcurrencyQueuesTheNextRequestUntilASlotFrees) {
  Config config = worker_test_config();
  config.providers["a"].max_concurrency = 1;
  config.providers["a"].queue_timeout_ms = 5000;
  LifecycleHarness h(config);
  h.consume(LifecycleHarness::prompt("r1", "One"));
  h.consume(LifecycleHarness::prompt("r2", "Two"));
  auto& a = h.provider("a");
  ASSERT_EQ(a.calls.size(), 1u);
  EXPECT_EQ(h.request("r2")->state, RequestState::waiting_for_slot);
  a.answer(a.open_call(), {"1"});
  h.fire_due();  // the slot passes to r2
  ASSERT_EQ(a.calls.size(), 2u);
  a.answer(a.open_call(), {"2"});
  expect_one_terminal_each(h, {"r1", "r2"});
  EXPECT_EQ(h.stats.queued_for_slot.load(), 1u);
}

TEST(RequestLifecycle, AWaitForASlotThatRunsOutFallsBackToTheNextModel) {
  Config config = worker_test_config();
  config.providers["a"].max_concurrency = 1;
  config.providers["a"].queue_timeout_ms = 500;
  LifecycleHarness h(config);
  h.consume(LifecycleHarness::prompt("r1", "One"));
  h.consume(LifecycleHarness::prompt("r2", "Two"));
  h.advance(milliseconds(600));
  ASSERT_EQ(h.provider("b").calls.size(), 1u);
  h.provider("b").answer(h.provider("b").open_call(), {"2"});
  h.provider("a").answer(h.provider("a").open_call(), {"1"});
  expect_one_terminal_each(h, {"r1", "r2"});
  EXPECT_NE(h.host.terminal_event("r2")->final->route.reason.find("small-a: provider at max_concurrency"),
            std::string::npos);
}

TEST(RequestLifecycle, ATenantOverItsRateWaitsForItsTurnThenIsRefusedPastMaxWait) {
  Config config = worker_test_config();
  TenantLimits limits;
  limits.requests_per_second = 1;
  limits.max_wait_ms = 1500;
  config.tenants["acme"] = limits;
  LifecycleHarness h(config);
  h.consume(LifecycleHarness::prompt("r1", "One"));
  h.consume(LifecycleHarness::prompt("r2", "Two"));
  h.consume(LifecycleHarness::prompt("r3", "Three"));
  EXPECT_EQ(h.provider("a").calls.size(), 1u);
  EXPECT_EQ(h.request("r2")->state, RequestState::admitting);
  EXPECT_EQ(h.request("r3")->state, RequestState::admitting);
  h.advance(milliseconds(1000));  // r2's turn; r3's is a second further, past its max_wait_ms
  EXPECT_EQ(h.provider("a").calls.size(), 2u);
  ASSERT_EQ(h.host.terminal_events("r3"), 1u);
  EXPECT_EQ(h.host.terminal_event("r3")->error_code, "rate_limited");
  auto& a = h.provider("a");
  a.answer(a.calls[0], {"1"});
  a.answer(a.calls[1], {"2"});
  expect_one_terminal_each(h, {"r1", "r2", "r3"});
  EXPECT_EQ(h.stats.rate_limited.load(), 1u);
}

TEST(RequestLifecycle, ARequestOverItsTenantsHardBudgetIsRefusedBeforeAnyCall) {
  Config config = worker_test_config();
  BudgetBook book({Budget{"acme", "", BudgetLimits{.daily_usd = 0.000001, .monthly_usd = 0, .soft_percent = 80}}});
  LifecycleParts parts;
  parts.budgets = &book;
  LifecycleHarness h(config, parts);
  h.consume(LifecycleHarness::prompt("r1", "Hi", {{"max_tokens", 1000}}));
  expect_one_terminal_each(h, {"r1"});
  EXPECT_EQ(h.host.terminal_event("r1")->error_code, "budget_exceeded");
  EXPECT_TRUE(h.provider("a").calls.empty());
  EXPECT_EQ(h.stats.budget_refused.load(), 1u);
}

// ------------------------------------------------------ cheap-first cascade ----

Config cascade_config() {
  Config config = worker_test_config();
  config.router.cascade.enabled = true;
  config.router.cascade.preferences = {"cost"};
  return config;
}

const json kCascaded = {{"preference", "cost"}, {"stream", true}};

TEST(RequestLifecycle, ARefusedCheapAnswerIsHeldBackAndTheEscalationAnswersOnce) {
  LifecycleHarness h(cascade_config());
  h.consume(LifecycleHarness::prompt("r1", "Summarize the plot of Hamlet.", kCascaded));
  auto& a = h.provider("a");
  ASSERT_EQ(a.calls.size(), 1u);
  EXPECT_EQ(a.calls[0].upstream_model, "small-a");
  a.answer(a.open_call(), {"I'm sorry, but I can't help with that."}, {20, 10});
  EXPECT_TRUE(h.host.replies("r1").empty()) << "nothing of the cheap answer reached the requester";
  ASSERT_EQ(a.calls.size(), 2u);
  EXPECT_EQ(a.calls[1].upstream_model, "medium-a");
  a.answer(a.open_call(), {"Hamlet ", "avenges his father."}, {20, 30});
  expect_one_terminal_each(h, {"r1"});
  const auto final = h.host.terminal_event("r1");
  EXPECT_EQ(final->final->model, "medium-a");
  EXPECT_EQ(final->text, "Hamlet avenges his father.");
  const auto costs = h.host.cost_events(h.ledger_topic(), "r1");
  ASSERT_EQ(costs.size(), 1u);
  const double both = cost_usd(h.catalog().find("small-a")->price, TokenUsage{20, 10}) +
                      cost_usd(h.catalog().find("medium-a")->price, TokenUsage{20, 30});
  EXPECT_DOUBLE_EQ(costs[0].cost_usd, both) << "the rejected cheap answer is paid too";
  EXPECT_EQ(h.stats.cascade_escalated.load(), 1u);
}

TEST(RequestLifecycle, AnAcceptedCheapAnswerIsReleasedAsChunksThenItsFinal) {
  LifecycleHarness h(cascade_config());
  h.consume(LifecycleHarness::prompt("r1", "Capital of Japan?", kCascaded));
  h.provider("a").answer(h.provider("a").open_call(), {"Tokyo ", "is the capital."});
  expect_one_terminal_each(h, {"r1"});
  const auto replies = h.host.replies("r1");
  ASSERT_GE(replies.size(), 2u);
  EXPECT_EQ(replies.front().type, "chunk");
  EXPECT_EQ(replies.back().final->model, "small-a");
  EXPECT_EQ(h.stats.cascade_accepted.load(), 1u);
}

TEST(RequestLifecycle, FollowersOfAnEscalatedLeaderGetTheStrongAnswerOnly) {
  LifecycleHarness h(cascade_config());
  h.consume(LifecycleHarness::prompt("lead", "Explain entropy.", kCascaded));
  h.consume(LifecycleHarness::prompt("f1", "Explain entropy.", kCascaded));
  auto& a = h.provider("a");
  a.answer(a.open_call(), {"I cannot answer that."});
  a.answer(a.open_call(), {"Entropy measures disorder."});
  expect_one_terminal_each(h, {"lead", "f1"});
  EXPECT_EQ(h.host.terminal_event("f1")->text, "Entropy measures disorder.");
  for (const auto& reply : h.host.replies("f1")) EXPECT_EQ(reply.text.find("cannot"), std::string::npos);
}

TEST(RequestLifecycle, EveryCheapAttemptFailingEscalatesInsteadOfFailing) {
  LifecycleHarness h(cascade_config());
  h.consume(LifecycleHarness::prompt("r1", "Hi there", kCascaded));
  const Error bad{ErrorCode::invalid_request, "HTTP 400", 400};
  h.provider("a").fail(h.provider("a").open_call(), bad);  // small-a
  h.provider("b").fail(h.provider("b").open_call(), bad);  // small-b
  ASSERT_EQ(h.provider("a").open_calls(), 1u);
  EXPECT_EQ(h.provider("a").open_call().upstream_model, "medium-a");
  h.provider("a").answer(h.provider("a").open_call(), {"Hello!"});
  expect_one_terminal_each(h, {"r1"});
  EXPECT_EQ(h.host.terminal_event("r1")->type, "final");
}

TEST(RequestLifecycle, ADisagreeingAgreementModelEscalatesAndBothSideCallsArePaid) {
  Config config = cascade_config();
  config.router.cascade.agreement_model = "small-b";
  LifecycleHarness h(config);
  h.consume(LifecycleHarness::prompt("r1", "What is 6 times 7? Answer with a number.", kCascaded));
  auto& a = h.provider("a");
  auto& b = h.provider("b");
  ASSERT_EQ(b.calls.size(), 1u) << "asked in parallel with the cheap model";
  a.answer(a.open_call(), {"6 times 7 is 42."}, {15, 8});
  EXPECT_EQ(h.request("r1")->state, RequestState::checking) << "the cheap answer waits for the agreement";
  b.answer(b.open_call(), {"The answer is 41."}, {15, 8});
  ASSERT_EQ(a.open_calls(), 1u);
  EXPECT_EQ(a.open_call().upstream_model, "medium-a");
  a.answer(a.open_call(), {"42"}, {15, 2});
  expect_one_terminal_each(h, {"r1"});
  const auto costs = h.host.cost_events(h.ledger_topic(), "r1");
  ASSERT_EQ(costs.size(), 1u);
  const double expected = cost_usd(h.catalog().find("small-a")->price, TokenUsage{15, 8}) +
                          cost_usd(h.catalog().find("small-b")->price, TokenUsage{15, 8}) +
                          cost_usd(h.catalog().find("medium-a")->price, TokenUsage{15, 2});
  EXPECT_DOUBLE_EQ(costs[0].cost_usd, expected);
  EXPECT_NE(h.host.terminal_event("r1")->final->route.reason.find("disagrees with small-b: 42 vs 41"),
            std::string::npos);
}

TEST(RequestLifecycle, ALowJudgeGradeEscalatesAndALateGradeLetsTheAnswerThrough) {
  Config config = cascade_config();
  config.router.cascade.judge_model = "large-a";
  config.router.cascade.judge_timeout_ms = 2000;
  LifecycleHarness h(config);
  auto& a = h.provider("a");

  h.consume(LifecycleHarness::prompt("low", "Write a haiku about rain.", kCascaded));
  a.answer(a.calls[0], {"Rain rain rain."});
  ASSERT_EQ(a.open_calls(), 1u);
  EXPECT_EQ(a.open_call().upstream_model, "large-a") << "the judge";
  a.answer(a.open_call(), {"Score: 2"});
  EXPECT_EQ(a.open_call().upstream_model, "medium-a") << "escalated";
  a.answer(a.open_call(), {"Soft rain on the roof"});

  h.consume(LifecycleHarness::prompt("late", "Write a haiku about snow.", kCascaded));
  a.answer(a.open_call(), {"Snow falls softly down."});
  EXPECT_EQ(h.request("late")->state, RequestState::checking);
  h.advance(milliseconds(2100));  // no grade in time
  expect_one_terminal_each(h, {"low", "late"});
  EXPECT_EQ(h.host.terminal_event("late")->final->model, "small-a");
  EXPECT_NE(h.host.terminal_event("late")->final->route.reason.find("gave no grade: timeout"), std::string::npos);
}

}  // namespace
}  // namespace cascade
