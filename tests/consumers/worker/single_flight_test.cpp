#include "consumers/worker/single_flight.h"

#include <gtest/gtest.h>

namespace cascade {
namespace {

TEST(FlightTable, OneLeaderPerFingerprintUntilItCloses) {
  FlightTable table;
  EXPECT_EQ(table.leader("fp-a"), std::nullopt);
  EXPECT_TRUE(table.open("fp-a", 7));
  EXPECT_FALSE(table.open("fp-a", 8));  // the flight is taken: 8 follows 7
  EXPECT_EQ(table.leader("fp-a"), 7u);
  EXPECT_TRUE(table.open("fp-b", 8));
  EXPECT_EQ(table.size(), 2u);

  table.close("fp-a", 7);
  EXPECT_EQ(table.leader("fp-a"), std::nullopt);  // the next identical request leads again
  EXPECT_EQ(table.leader("fp-b"), 8u);
  EXPECT_TRUE(table.open("fp-a", 9));
  EXPECT_EQ(table.leader("fp-a"), 9u);
}

TEST(FlightTable, AStaleCloseLeavesAnotherLeadersFlightOpen) {
  FlightTable table;
  ASSERT_TRUE(table.open("fp", 1));
  table.close("fp", 1);
  ASSERT_TRUE(table.open("fp", 2));
  table.close("fp", 1);  // request 1 again: no longer the leader
  EXPECT_EQ(table.leader("fp"), 2u);
  table.close("other", 2);
  EXPECT_EQ(table.leader("fp"), 2u);
  table.clear();
  EXPECT_EQ(table.size(), 0u);
}

FinalReply leader_final() {
  FinalReply f;
  f.id = "lead-1";
  f.seq = 8;
  f.content = "The capital of France is Paris.";
  f.model = "gpt-4o-mini";
  f.provider = "openai";
  f.finish_reason = "stop";
  f.tool_calls = nlohmann::json::array(
      {{{"id", "call_1"}, {"type", "function"}, {"function", {{"name", "f"}, {"arguments", "{}"}}}}});
  f.usage = TokenUsage{412, 11, 256, 3, 2};
  f.cost_usd = 4.32e-05;
  f.cache = CacheOutcome::miss;
  f.route = RouteInfo{"small", 0.21, "short factual question | groq: HTTP 500 -> fall_back", {}};
  f.metadata = {{"who", "leader"}};
  return f;
}

PromptEvent follower_event() {
  PromptEvent e;
  e.id = "follow-2";
  e.tenant = "acme";
  e.reply_to = "acme.replies";
  e.metadata = {{"who", "follower"}, {"n", 2}};
  return e;
}

TEST(FollowerReplies, TheFinalIsTheLeadersAnswerUnderTheFollowersIdAsAFreeExactHit) {
  const FinalReply lead = leader_final();
  const FinalReply f = follower_final(lead, "lead-1", follower_event(), 3);
  EXPECT_EQ(f.id, "follow-2");
  EXPECT_EQ(f.seq, 3);
  EXPECT_EQ(f.content, lead.content);
  EXPECT_EQ(f.model, lead.model);
  EXPECT_EQ(f.provider, lead.provider);
  EXPECT_EQ(f.finish_reason, lead.finish_reason);
  EXPECT_EQ(f.tool_calls, lead.tool_calls);
  EXPECT_EQ(f.usage.input_tokens, 412);
  EXPECT_EQ(f.usage.output_tokens, 11);
  EXPECT_EQ(f.usage.cached_tokens, 256);
  EXPECT_EQ(f.usage.cache_write_tokens, 3);
  EXPECT_EQ(f.usage.reasoning_tokens, 2);
  EXPECT_EQ(f.cost_usd, 0.0);
  EXPECT_EQ(f.cache, CacheOutcome::exact);
  EXPECT_EQ(f.route.tier, "small");
  EXPECT_EQ(f.route.score, 0.21);
  EXPECT_EQ(f.route.reason, "single flight: answer shared with request lead-1");
  EXPECT_EQ(f.metadata, (nlohmann::json{{"who", "follower"}, {"n", 2}}));  // its own, not the leader's

  // And it survives the wire like any final.
  auto parsed = parse_final_event(make_final_event(f));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->cache, CacheOutcome::exact);
  EXPECT_EQ(parsed->content, lead.content);
}

}  // namespace
}  // namespace cascade
