// Cancels (docs/events.md, "Cancel event") over fakes (tests/support/worker_host.h):
// wherever a request is when its cancel comes, what it runs stops, it ends
// with exactly one error `cancelled`, and its cost event charges exactly
// what its calls generated. A cancel that comes first ends the request on
// arrival; one of another tenant, or of an answered request, changes nothing.
#include <gtest/gtest.h>

#include <set>

#include "consumers/worker/cancel_follower.h"
#include "consumers/worker/cancel_stage.h"
#include "consumers/worker/judge.h"
#include "consumers/worker/request_lifecycle.h"
#include "support/temp_dir.h"
#include "support/worker_host.h"

namespace cascade {
namespace {

using testing::LifecycleHarness;
using testing::worker_test_config;
using json = nlohmann::json;
using std::chrono::milliseconds;

const json kStream = {{"stream", true}};

void expect_one_terminal_each(LifecycleHarness& h, const std::vector<std::string>& ids) {
  std::multiset<std::uint64_t> terminals(h.host.terminals.begin(), h.host.terminals.end());
  for (auto serial : terminals) EXPECT_EQ(terminals.count(serial), 1u) << "request " << serial << " ended twice";
  for (const auto& id : ids) EXPECT_EQ(h.host.terminal_events(id), 1u) << id;
}

// What a call of `model` for the request `id` that wrote `text` is charged.
TokenUsage counted(LifecycleHarness& h, const std::string& model, const std::string& id, const std::string& text) {
  return h.context().counted_usage(*h.catalog().find(model), h.request(id)->event.messages, text);
}

TEST(Cancel, AStreamCancelledMidwayStopsItsCallAndEndsWithOneCancelledErrorChargedForTheStreamedTokens) {
  LifecycleHarness h;
  h.consume(LifecycleHarness::prompt("r1", "Tell me a long story.", kStream));
  auto& a = h.provider("a");
  a.calls[0].observer->on_delta("Once upon ");
  h.end_iteration();
  a.calls[0].observer->on_delta("a time");
  h.end_iteration();
  h.cancel("r1", "client_closed");

  EXPECT_TRUE(a.calls[0].cancelled) << "the provider stream is stopped";
  expect_one_terminal_each(h, {"r1"});
  const auto replies = h.host.replies("r1");
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[2].type, "error");
  EXPECT_EQ(replies[2].seq, 2) << "after the chunks already sent";
  EXPECT_EQ(replies[2].error_code, "cancelled");
  EXPECT_EQ(replies[2].text, "cancelled by its requester: client_closed");

  const auto costs = h.host.cost_events(h.ledger_topic(), "r1");
  ASSERT_EQ(costs.size(), 1u);
  const TokenUsage streamed = counted(h, "small-a", "r1", "Once upon a time");
  EXPECT_EQ(costs[0].usage.input_tokens, streamed.input_tokens);
  EXPECT_EQ(costs[0].usage.output_tokens, streamed.output_tokens);
  EXPECT_DOUBLE_EQ(costs[0].cost_usd, cost_usd(h.catalog().find("small-a")->price, streamed));
  EXPECT_EQ(costs[0].model, "small-a");
  EXPECT_EQ(costs[0].cache, CacheOutcome::miss);
  EXPECT_NE(costs[0].route_reason.find("cancelled while calling (client_closed)"), std::string::npos)
      << costs[0].route_reason;
  EXPECT_EQ(h.stats.cancelled.load(), 1u);
  EXPECT_EQ(h.stats.failed.load(), 1u);
}

TEST(Cancel, ACallCancelledBeforeItsFirstTokenIsChargedNothingAsAFirstTokenTimeoutIsnt) {
  LifecycleHarness h;
  h.consume(LifecycleHarness::prompt("r1", "Hi", kStream));
  h.cancel("r1", "");
  EXPECT_TRUE(h.provider("a").calls[0].cancelled);
  expect_one_terminal_each(h, {"r1"});
  EXPECT_EQ(h.host.terminal_event("r1")->error_code, "cancelled");
  EXPECT_EQ(h.host.terminal_event("r1")->text, "cancelled by its requester");
  EXPECT_TRUE(h.host.cost_events(h.ledger_topic(), "r1").empty());
}

TEST(Cancel, ACancelThatCameFirstEndsTheRequestOnArrivalWithoutACallOrACost) {
  LifecycleHarness h;
  h.cancel("r1", "timeout");
  h.consume(LifecycleHarness::prompt("r1", "Hi", kStream));
  h.consume(LifecycleHarness::prompt("r2", "Hi there", kStream));
  EXPECT_EQ(h.provider("a").calls.size(), 1u) << "only r2 calls";
  const auto replies = h.host.replies("r1");
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].seq, 0);
  EXPECT_EQ(replies[0].error_code, "cancelled");
  EXPECT_EQ(replies[0].text, "cancelled by its requester: timeout");
  EXPECT_TRUE(h.host.cost_events(h.ledger_topic(), "r1").empty()) << "nothing was called: nothing to charge";
  EXPECT_EQ(h.stats.cancelled.load(), 1u);

  // Delivered again (a crash before its offset was committed): cancelled again.
  h.consume(LifecycleHarness::prompt("r1", "Hi", kStream));
  EXPECT_EQ(h.provider("a").calls.size(), 1u);
  EXPECT_EQ(h.host.terminal_events("r1"), 2u);
  EXPECT_EQ(h.stats.cancelled.load(), 2u);
}

TEST(Cancel, ARememberedCancelExpiresAfterTheWindow) {
  Config config = worker_test_config();
  config.worker.cancel_window_ms = 1000;
  LifecycleHarness h(config);
  h.cancel("r1");
  h.advance(milliseconds(1001));
  h.consume(LifecycleHarness::prompt("r1", "Hi"));
  EXPECT_EQ(h.provider("a").calls.size(), 1u) << "the cancel was forgotten: the request runs";
}

TEST(Cancel, AnotherTenantsCancelIsIgnoredInFlightAndOnArrival) {
  LifecycleHarness h;
  h.consume(LifecycleHarness::prompt("r1", "Hi", kStream));
  h.cancel("r1", "client_closed", "globex");
  EXPECT_FALSE(h.provider("a").calls[0].cancelled);
  EXPECT_EQ(h.request("r1")->state, RequestState::calling);
  EXPECT_EQ(h.stats.cancels_ignored.load(), 1u);

  h.cancel("r2", "client_closed", "globex");
  h.consume(LifecycleHarness::prompt("r2", "Hello", kStream));
  EXPECT_EQ(h.provider("a").calls.size(), 2u) << "r2 runs";
  EXPECT_EQ(h.stats.cancels_ignored.load(), 2u);

  auto& a = h.provider("a");
  a.answer(a.calls[0], {"One"});
  a.answer(a.calls[1], {"Two"});
  expect_one_terminal_each(h, {"r1", "r2"});
  EXPECT_EQ(h.host.terminal_event("r1")->type, "final");
  EXPECT_EQ(h.host.terminal_event("r2")->type, "final");
  EXPECT_EQ(h.stats.cancelled.load(), 0u);
}

TEST(Cancel, ACancelAfterTheAnswerChangesNothingAndARedeliveryStillReplaysTheAnswer) {
  testing::TempDir dir("cascade-cancel");
  auto store = CompletedAnswerStore::open(dir.sub("completed"));
  ASSERT_TRUE(store) << store.error().message;
  LifecycleParts parts;
  parts.completed = store->get();
  LifecycleHarness h(worker_test_config(), parts);
  h.consume(LifecycleHarness::prompt("r1", "Hello"));
  h.provider("a").answer(h.provider("a").open_call(), {"Hi!"});
  std::vector<std::string> answered;
  for (const auto& e : h.host.events) {
    if (e.tracked) answered.push_back(e.payload);
  }
  const std::size_t before = h.host.events.size();

  h.cancel("r1");
  EXPECT_EQ(h.host.events.size(), before) << "nothing published";
  EXPECT_EQ(h.stats.cancels_ignored.load(), 1u);
  EXPECT_EQ(h.stats.cancelled.load(), 0u);

  h.consume(LifecycleHarness::prompt("r1", "Hello"));
  ASSERT_EQ(h.host.events.size(), before + 2);
  EXPECT_EQ(h.host.events[before].payload, answered[0]) << "the stored final, replayed";
  EXPECT_EQ(h.host.events[before + 1].payload, answered[1]);
  EXPECT_EQ(h.provider("a").calls.size(), 1u);
}

TEST(Cancel, TheCancelFollowerIgnoresACancelOfAnAnsweredRequest) {
  testing::TempDir dir("cascade-cancel-follower");
  auto store = CompletedAnswerStore::open(dir.sub("completed"));
  ASSERT_TRUE(store) << store.error().message;
  ASSERT_TRUE((*store)->put("acme", "done", CompletedAnswer{"{}", "{}"}));
  const std::int64_t now = 1'767'225'600'000;
  const auto cancel = [&](const std::string& id) {
    return make_cancel_event(CancelEvent{id, "acme", "client_closed", now - 10});
  };
  EXPECT_STREQ(judge_cancel(cancel("done"), now - 5, now, 600000, store->get()).ignored, "completed");
  const CancelVerdict fresh = judge_cancel(cancel("open"), now - 5, now, 600000, store->get());
  ASSERT_TRUE(fresh.notice);
  EXPECT_EQ(fresh.notice->cancel.id, "open");
  EXPECT_EQ(fresh.notice->expires_at_ms, now - 5 + 600000) << "remembered from the record's time";
}

TEST(Cancel, TheCancelFollowerIgnoresInvalidAndStaleCancels) {
  const std::int64_t now = 1'767'225'600'000;
  const std::int64_t window = 600000;
  const CancelVerdict invalid = judge_cancel(R"({"id":"r1"})", now, now, window, nullptr);
  EXPECT_STREQ(invalid.ignored, "invalid");
  EXPECT_EQ(invalid.problem, "cancel event: missing required field 'tenant'");
  const std::string old_event = make_cancel_event(CancelEvent{"r1", "acme", "", now - window - 1});
  EXPECT_STREQ(judge_cancel(old_event, now - window - 1, now, window, nullptr).ignored, "stale") << "by the record";
  EXPECT_STREQ(judge_cancel(old_event, -1, now, window, nullptr).ignored, "stale") << "by ts_ms without one";
  EXPECT_TRUE(judge_cancel(old_event, now - 1000, now, window, nullptr).notice) << "the record's time decides";
  const std::string timeless = make_cancel_event(CancelEvent{"r1", "acme", "", 0});
  EXPECT_STREQ(judge_cancel(timeless, -1, now, window, nullptr).ignored, "stale") << "no time at all";
}

TEST(Cancel, ACancelledCallsProviderSlotPassesToTheNextWaiter) {
  Config config = worker_test_config();
  config.providers["a"].max_concurrency = 1;
  config.providers["a"].queue_timeout_ms = 5000;
  LifecycleHarness h(config);
  h.consume(LifecycleHarness::prompt("r1", "One"));
  h.consume(LifecycleHarness::prompt("r2", "Two"));
  h.consume(LifecycleHarness::prompt("r3", "Three"));
  auto& a = h.provider("a");
  ASSERT_EQ(a.calls.size(), 1u);
  EXPECT_EQ(h.request("r3")->state, RequestState::waiting_for_slot);
  h.cancel("r3");  // waiting: it gives up its place in the line
  h.cancel("r1");  // calling: its slot passes on
  h.fire_due();
  ASSERT_EQ(a.calls.size(), 2u);
  EXPECT_EQ(h.request("r2")->state, RequestState::calling);
  a.answer(a.open_call(), {"2"});
  h.fire_due();
  EXPECT_EQ(a.calls.size(), 2u) << "r3 was cancelled: no call";
  expect_one_terminal_each(h, {"r1", "r2", "r3"});
  EXPECT_EQ(h.host.terminal_event("r3")->error_code, "cancelled");
  EXPECT_EQ(h.host.terminal_event("r2")->type, "final");

  // The slot is free again: a new request calls at once.
  h.consume(LifecycleHarness::prompt("r4", "Four"));
  EXPECT_EQ(a.calls.size(), 3u);
}

TEST(Cancel, ARequestBackingOffOrWaitingForItsRateEndsAndNeverCalls) {
  Config config = worker_test_config();
  TenantLimits limits;
  limits.requests_per_second = 1;
  limits.max_wait_ms = 5000;
  config.tenants["acme"] = limits;
  LifecycleHarness h(config);
  h.consume(LifecycleHarness::prompt("r1", "One"));
  h.consume(LifecycleHarness::prompt("r2", "Two"));
  auto& a = h.provider("a");
  a.fail(a.open_call(), Error{ErrorCode::provider_error, "HTTP 500", 500});
  ASSERT_EQ(h.request("r1")->state, RequestState::backing_off);
  ASSERT_EQ(h.request("r2")->state, RequestState::admitting);
  h.cancel("r1");
  h.cancel("r2");
  h.advance(milliseconds(6000));  // past the retry's backoff and r2's turn
  EXPECT_EQ(a.calls.size(), 1u);
  expect_one_terminal_each(h, {"r1", "r2"});
  EXPECT_EQ(h.host.terminal_event("r1")->error_code, "cancelled");
  EXPECT_EQ(h.host.terminal_event("r2")->error_code, "cancelled");
  EXPECT_TRUE(h.host.cost_events(h.ledger_topic(), "r1").empty()) << "the failed attempt generated nothing";
  EXPECT_NE(h.request("r1")->attempts.notes.find("cancelled while backing_off"), std::string::npos);
}

TEST(Cancel, ACancelledRequestGivesBackTheTenantTokensItDidNotUse) {
  Config config = worker_test_config();
  TenantLimits limits;
  limits.tokens_per_minute = 1200;  // one request's estimate (prompt + max_tokens 1000) at a time
  limits.max_wait_ms = 1000;
  config.tenants["acme"] = limits;
  LifecycleHarness h(config);
  const json big = {{"max_tokens", 1000}};
  h.consume(LifecycleHarness::prompt("r1", "One", big));
  h.cancel("r1");
  h.consume(LifecycleHarness::prompt("r2", "Two", big));
  EXPECT_EQ(h.provider("a").calls.size(), 2u) << "r1's reservation was given back: r2 is admitted at once";
  EXPECT_EQ(h.request("r2")->state, RequestState::calling);
}

TEST(Cancel, CancelledCallsLeaveTheBreakerToTheCallsThatAnswered) {
  Config config = worker_test_config();
  config.resilience.retry.max_retries = 0;
  config.resilience.breaker = BreakerConfig{.window = 4, .min_calls = 2, .failure_rate = 0.5, .open_ms = 60000};
  LifecycleHarness h(config);
  auto& a = h.provider("a");
  h.consume(LifecycleHarness::prompt("r1", "One"));
  h.cancel("r1");  // before its first token: says nothing about small-a
  for (const char* id : {"r2", "r3"}) {
    h.consume(LifecycleHarness::prompt(id, id));
    a.fail(a.open_call(), Error{ErrorCode::provider_error, "HTTP 500", 500});
    h.provider("b").answer(h.provider("b").open_call(), {"ok"});
  }
  const std::size_t calls_to_a = a.calls.size();
  h.consume(LifecycleHarness::prompt("r4", "Four"));
  EXPECT_EQ(a.calls.size(), calls_to_a) << "two failures of two counted calls opened small-a's breaker";
  EXPECT_NE(h.request("r4")->attempts.notes.find("small-a: breaker open"), std::string::npos);
}

Config cascade_config() {
  Config config = worker_test_config();
  config.router.cascade.enabled = true;
  config.router.cascade.preferences = {"cost"};
  return config;
}

TEST(Cancel, ACheapAnswerWaitingForItsJudgeIsChargedAndTheJudgeStops) {
  Config config = cascade_config();
  config.router.cascade.judge_model = "large-a";
  LifecycleHarness h(config);
  h.consume(LifecycleHarness::prompt("r1", "Write a haiku about rain.", {{"preference", "cost"}, {"stream", true}}));
  auto& a = h.provider("a");
  a.answer(a.calls[0], {"Rain on the roof."}, {12, 4});
  ASSERT_EQ(h.request("r1")->state, RequestState::checking);
  ASSERT_EQ(a.open_calls(), 1u);
  EXPECT_EQ(a.open_call().upstream_model, "large-a");
  const json judge_prompt = judge_messages(h.request("r1")->event.messages, "Rain on the roof.");

  h.cancel("r1", "client_closed");
  EXPECT_TRUE(a.calls[1].cancelled) << "the judge's call stops";
  const auto replies = h.host.replies("r1");
  ASSERT_EQ(replies.size(), 1u) << "nothing of the held answer was sent";
  EXPECT_EQ(replies[0].error_code, "cancelled");
  const auto costs = h.host.cost_events(h.ledger_topic(), "r1");
  ASSERT_EQ(costs.size(), 1u);
  EXPECT_EQ(costs[0].usage.input_tokens, 12);
  EXPECT_EQ(costs[0].usage.output_tokens, 4);
  const ModelInfo& judge = *h.catalog().find("large-a");
  const double held = cost_usd(h.catalog().find("small-a")->price, TokenUsage{12, 4});
  const double judged = cost_usd(judge.price, h.context().counted_usage(judge, judge_prompt, ""));
  EXPECT_DOUBLE_EQ(costs[0].cost_usd, held + judged) << "the held answer and the judge's prompt";
  EXPECT_NE(costs[0].route_reason.find("cancelled while checking"), std::string::npos);
}

TEST(Cancel, TheAgreementCallOfACascadedRequestStopsWithIt) {
  Config config = cascade_config();
  config.router.cascade.agreement_model = "small-b";
  LifecycleHarness h(config);
  h.consume(LifecycleHarness::prompt("r1", "What is 6 times 7?", {{"preference", "cost"}, {"stream", true}}));
  auto& a = h.provider("a");
  auto& b = h.provider("b");
  ASSERT_EQ(b.calls.size(), 1u);
  a.calls[0].observer->on_delta("6 times 7");  // held back
  h.cancel("r1");
  EXPECT_TRUE(a.calls[0].cancelled);
  EXPECT_TRUE(b.calls[0].cancelled);
  expect_one_terminal_each(h, {"r1"});
  EXPECT_EQ(h.host.replies("r1").size(), 1u);
  const auto costs = h.host.cost_events(h.ledger_topic(), "r1");
  ASSERT_EQ(costs.size(), 1u);
  const TokenUsage held = counted(h, "small-a", "r1", "6 times 7");
  EXPECT_EQ(costs[0].usage.output_tokens, held.output_tokens);
  EXPECT_GT(costs[0].cost_usd, cost_usd(h.catalog().find("small-a")->price, held)) << "and the agreement's prompt";
}

// ------------------------------------------------------------ single flight ----

TEST(Cancel, FollowersOfACancelledLeaderRunOnTheirOwnUnlessPartOfItsAnswerReachedThem) {
  LifecycleHarness h;
  auto& a = h.provider("a");
  h.consume(LifecycleHarness::prompt("lead", "Name a prime.", kStream));
  a.calls[0].observer->on_delta("Two");
  h.consume(LifecycleHarness::prompt("streaming", "Name a prime.", kStream));      // caught up with "Two"
  h.consume(LifecycleHarness::prompt("quiet", "Name a prime.", {{"stream", false}}));   // nothing sent yet
  h.consume(LifecycleHarness::prompt("quiet-2", "Name a prime.", {{"stream", false}}));
  h.consume(LifecycleHarness::prompt("lead", "Name a prime.", kStream));           // the leader, delivered again
  ASSERT_EQ(a.calls.size(), 1u);

  h.cancel("lead", "client_closed");
  EXPECT_TRUE(a.calls[0].cancelled);
  // The leader and its second delivery: one error each, the same event.
  const auto lead = h.host.replies("lead");
  ASSERT_EQ(lead.size(), 3u);
  EXPECT_EQ(lead[1].error_code, "cancelled");
  EXPECT_EQ(lead[2].error_code, "cancelled");
  EXPECT_EQ(lead[1].seq, lead[2].seq);
  // Part of the answer reached it: its chunks cannot be taken back, so it fails.
  const auto streaming = h.host.replies("streaming");
  ASSERT_EQ(streaming.size(), 2u);
  EXPECT_EQ(streaming[0].text, "Two");
  EXPECT_EQ(streaming[1].error_code, "provider_error");
  EXPECT_NE(streaming[1].text.find("send it again with a new id"), std::string::npos);
  EXPECT_TRUE(h.host.cost_events(h.ledger_topic(), "streaming").empty());
  // Nothing reached them: the first runs on its own, the second follows it.
  ASSERT_EQ(a.calls.size(), 2u) << "one new call for both";
  EXPECT_EQ(h.request("quiet")->state, RequestState::calling);
  EXPECT_EQ(h.request("quiet-2")->state, RequestState::following);
  a.answer(a.open_call(), {"Three."}, {10, 2});
  expect_one_terminal_each(h, {"streaming", "quiet", "quiet-2"});
  const auto quiet = h.host.terminal_event("quiet");
  ASSERT_TRUE(quiet->final);
  EXPECT_EQ(quiet->text, "Three.");
  EXPECT_EQ(quiet->final->cache, CacheOutcome::miss);
  const auto quiet_cost = h.host.cost_events(h.ledger_topic(), "quiet");
  ASSERT_EQ(quiet_cost.size(), 1u);
  EXPECT_DOUBLE_EQ(quiet_cost[0].cost_usd, cost_usd(h.catalog().find("small-a")->price, TokenUsage{10, 2}))
      << "it paid for its own answer";
  EXPECT_EQ(h.host.terminal_event("quiet-2")->final->route.reason, "single flight: answer shared with request quiet");
  // The leader paid for what it streamed, once.
  const auto lead_cost = h.host.cost_events(h.ledger_topic(), "lead");
  ASSERT_EQ(lead_cost.size(), 1u);
  EXPECT_EQ(lead_cost[0].usage.output_tokens, counted(h, "small-a", "lead", "Two").output_tokens);
}

TEST(Cancel, ACancelledFollowerLeavesItsLeaderRunning) {
  LifecycleHarness h;
  auto& a = h.provider("a");
  h.consume(LifecycleHarness::prompt("lead", "Name a prime.", kStream));
  a.calls[0].observer->on_delta("Two");
  h.consume(LifecycleHarness::prompt("f1", "Name a prime.", kStream));
  h.cancel("f1");
  EXPECT_FALSE(a.calls[0].cancelled);
  a.calls[0].observer->on_delta(" is prime.");
  a.answer(a.calls[0], {}, {10, 4});
  expect_one_terminal_each(h, {"lead", "f1"});
  const auto f1 = h.host.replies("f1");
  ASSERT_EQ(f1.size(), 2u) << "its catch-up chunk, then its error; nothing after it";
  EXPECT_EQ(f1[1].error_code, "cancelled");
  EXPECT_TRUE(h.host.cost_events(h.ledger_topic(), "f1").empty()) << "a follower calls nothing";
  EXPECT_EQ(h.host.terminal_event("lead")->text, "Two is prime.");
  EXPECT_EQ(h.stats.cancelled.load(), 1u);
}

// ------------------------------------------------------- remembered cancels ----

CancelNotice notice(const std::string& id, const std::string& tenant, std::int64_t expires_at_ms,
                    const std::string& reason = "r") {
  return CancelNotice{CancelEvent{id, tenant, reason, 0}, expires_at_ms};
}

TEST(PendingCancels, RemembersByTenantAndIdUntilTheyExpire) {
  PendingCancels pending(10);
  EXPECT_EQ(pending.remember(notice("r1", "acme", 1000, "client_closed")), 0u);
  EXPECT_EQ(pending.reason_for("acme", "r1", 999), "client_closed");
  EXPECT_FALSE(pending.reason_for("globex", "r1", 999));
  EXPECT_TRUE(pending.cancelled_for_another_tenant("globex", "r1", 999));
  EXPECT_FALSE(pending.cancelled_for_another_tenant("acme", "r1", 999));
  EXPECT_FALSE(pending.reason_for("acme", "r1", 1000)) << "expired";
  pending.expire(999);
  EXPECT_EQ(pending.size(), 1u);
  pending.expire(1000);
  EXPECT_EQ(pending.size(), 0u);
}

TEST(PendingCancels, AFullTableForgetsTheOldestFirstAndACancelAgainKeepsItsPlace) {
  PendingCancels pending(2);
  pending.remember(notice("r1", "acme", 100));
  pending.remember(notice("r2", "acme", 100));
  EXPECT_EQ(pending.remember(notice("r1", "acme", 500, "again")), 0u) << "already remembered";
  EXPECT_EQ(pending.reason_for("acme", "r1", 200), "again") << "the later expiry and the newer reason";
  EXPECT_EQ(pending.remember(notice("r3", "acme", 100)), 1u);
  EXPECT_FALSE(pending.reason_for("acme", "r1", 0)) << "the oldest is forgotten";
  EXPECT_TRUE(pending.reason_for("acme", "r2", 0));
  EXPECT_TRUE(pending.reason_for("acme", "r3", 0));
  EXPECT_EQ(pending.size(), 2u);
}

TEST(PendingCancels, OneIdOfTwoTenantsIsTwoCancels) {
  PendingCancels pending(10);
  pending.remember(notice("r1", "acme", 100));
  pending.remember(notice("r1", "globex", 100));
  EXPECT_EQ(pending.size(), 2u);
  EXPECT_TRUE(pending.reason_for("acme", "r1", 0));
  EXPECT_TRUE(pending.reason_for("globex", "r1", 0));
}

TEST(CancelledError, SaysTheReasonCutToABoundAtACharacter) {
  EXPECT_EQ(cancelled_error("shutdown").message, "cancelled by its requester: shutdown");
  EXPECT_EQ(cancelled_error("shutdown").code, ErrorCode::cancelled);
  std::string long_reason(255, 'x');
  long_reason += "é and more";  // the cut falls inside the é
  const std::string message = cancelled_error(long_reason).message;
  EXPECT_EQ(message, "cancelled by its requester: " + std::string(255, 'x'));
  EXPECT_EQ(cancelled_note("calling", "client_closed"), "cancelled while calling (client_closed)");
  EXPECT_EQ(cancelled_note("admitting", ""), "cancelled while admitting");
}

}  // namespace
}  // namespace cascade
