// The request state machine's transition table, as a specification.
#include "consumers/worker/request.h"

#include <gtest/gtest.h>

#include <set>
#include <utility>

namespace cascade {
namespace {

using S = RequestState;

constexpr S kAll[] = {S::received, S::embedding, S::following,  S::admitting, S::waiting_for_slot,
                      S::backing_off, S::calling, S::checking, S::delivering};

TEST(RequestState, EveryStateHasAName) {
  std::set<std::string_view> names;
  for (S s : kAll) names.insert(to_string(s));
  EXPECT_EQ(names.size(), std::size(kAll));
  EXPECT_FALSE(names.contains("unknown"));
}

TEST(RequestState, TheTransitionTableIsExactlyTheLifecycle) {
  const std::set<std::pair<S, S>> allowed = {
      // consumed: the cache may wait for an embedding, single flight may make
      // it a follower, admission may make it wait; routed, it calls.
      {S::received, S::embedding},
      {S::received, S::following},
      {S::received, S::admitting},
      {S::received, S::calling},
      {S::received, S::waiting_for_slot},
      {S::embedding, S::received},
      {S::admitting, S::received},
      // its leader was cancelled before any of the answer reached it: it runs on its own
      {S::following, S::received},
      // attempts follow each other
      {S::calling, S::calling},
      {S::calling, S::waiting_for_slot},
      {S::calling, S::backing_off},
      {S::calling, S::checking},
      {S::backing_off, S::calling},
      {S::backing_off, S::waiting_for_slot},
      {S::backing_off, S::backing_off},
      {S::waiting_for_slot, S::calling},
      {S::waiting_for_slot, S::waiting_for_slot},
      {S::waiting_for_slot, S::backing_off},
      // a held cheap answer is rejected: the escalation calls
      {S::checking, S::calling},
      {S::checking, S::waiting_for_slot},
  };
  for (S from : kAll) {
    for (S to : kAll) {
      SCOPED_TRACE(std::string(to_string(from)) + " -> " + std::string(to_string(to)));
      const bool expected = from != S::delivering && (to == S::delivering || allowed.contains({from, to}));
      EXPECT_EQ(transition_allowed(from, to), expected);
    }
  }
}

TEST(RequestState, NothingFollowsTheTerminalState) {
  for (S to : kAll) EXPECT_FALSE(transition_allowed(S::delivering, to)) << to_string(to);
}

TEST(RequestState, AFollowerEndsWithItsLeaderOrRunsOnItsOwnWhenTheLeaderIsCancelled) {
  for (S to : kAll) {
    EXPECT_EQ(transition_allowed(S::following, to), to == S::delivering || to == S::received) << to_string(to);
  }
}

TEST(RequestState, EnterMovesAlongAllowedTransitionsAndMarksTheEnd) {
  Request r;
  EXPECT_EQ(r.state, S::received);
  enter(r, S::calling);
  enter(r, S::backing_off);
  enter(r, S::calling);
  EXPECT_FALSE(r.terminal());
  enter(r, S::delivering);
  EXPECT_TRUE(r.terminal());
}

TEST(RequestTable, FindsAddsAndErasesBySerial) {
  RequestTable table;
  auto a = std::make_unique<Request>();
  a->serial = table.next_serial();
  auto b = std::make_unique<Request>();
  b->serial = table.next_serial();
  EXPECT_NE(a->serial, b->serial);
  const auto sa = a->serial;
  const auto sb = b->serial;
  table.add(std::move(a));
  table.add(std::move(b));
  EXPECT_EQ(table.size(), 2u);
  ASSERT_NE(table.find(sa), nullptr);
  EXPECT_EQ(table.find(sa)->serial, sa);
  table.erase(sa);
  EXPECT_EQ(table.find(sa), nullptr);
  EXPECT_NE(table.find(sb), nullptr);
  int seen = 0;
  table.for_each([&](Request&) { ++seen; });
  EXPECT_EQ(seen, 1);
}

}  // namespace
}  // namespace cascade
