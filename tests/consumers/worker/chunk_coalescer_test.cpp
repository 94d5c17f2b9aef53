// Coalescing streamed deltas into chunk events (worker.coalesce_ms,
// consumers/worker/chunk_coalescer.h), over fakes: what a requester
// reassembles never changes, only how many chunk events carry it; the first
// chunk is never held; chunks always precede the terminal event.
#include <gtest/gtest.h>

#include "consumers/worker/chunk_coalescer.h"
#include "consumers/worker/request_lifecycle.h"
#include "support/worker_host.h"

namespace cascade {
namespace {

using testing::LifecycleHarness;
using testing::worker_test_config;
using json = nlohmann::json;
using std::chrono::milliseconds;

const json kStream = {{"stream", true}};

std::vector<std::string> chunk_texts(const LifecycleHarness& h, std::string_view id) {
  std::vector<std::string> out;
  for (const auto& r : h.host.replies(id)) {
    if (r.type == "chunk") out.push_back(r.text);
  }
  return out;
}

Config with_window(int ms) {
  Config config = worker_test_config();
  config.worker.coalesce_ms = ms;
  return config;
}

TEST(ChunkCoalescer, WithoutAWindowEachIterationsDeltasAreOneChunkAndNothingWaitsForTheNext) {
  LifecycleHarness h;
  h.consume(LifecycleHarness::prompt("r1", "Count to five.", kStream));
  auto& call = h.provider("a").open_call();
  call.observer->on_delta("one ");
  call.observer->on_delta("two ");
  EXPECT_TRUE(chunk_texts(h, "r1").empty()) << "not before the loop iteration ends";
  h.end_iteration();
  EXPECT_EQ(chunk_texts(h, "r1"), (std::vector<std::string>{"one two "}));
  call.observer->on_delta("three ");
  h.end_iteration();
  h.end_iteration();  // an iteration without text publishes nothing
  EXPECT_EQ(chunk_texts(h, "r1"), (std::vector<std::string>{"one two ", "three "}));
  EXPECT_FALSE(h.lifecycle().next_chunk_due()) << "nothing held: the loop need not wake";
}

TEST(ChunkCoalescer, AWindowHoldsLaterTextUpToItsLengthButNeverTheFirstChunk) {
  LifecycleHarness h(with_window(50));
  h.consume(LifecycleHarness::prompt("r1", "Count to five.", kStream));
  auto& call = h.provider("a").open_call();
  call.observer->on_delta("one ");
  h.end_iteration();
  EXPECT_EQ(chunk_texts(h, "r1").size(), 1u) << "the first chunk goes out at once (time to first token)";

  call.observer->on_delta("two ");
  h.end_iteration();
  ASSERT_TRUE(h.lifecycle().next_chunk_due());
  EXPECT_EQ(*h.lifecycle().next_chunk_due(), h.host.clock + milliseconds(50)) << "the loop wakes for it";
  h.advance(milliseconds(30));
  call.observer->on_delta("three ");
  h.end_iteration();
  EXPECT_EQ(chunk_texts(h, "r1").size(), 1u) << "held: 30 ms of a 50 ms window";
  h.advance(milliseconds(20));
  EXPECT_EQ(chunk_texts(h, "r1"), (std::vector<std::string>{"one ", "two three "}))
      << "50 ms after the first held delta, everything held goes out as one chunk";
  EXPECT_FALSE(h.lifecycle().next_chunk_due());
}

TEST(ChunkCoalescer, HeldTextGoesOutBeforeTheFinalWhichCountsTheChunksAsSeq) {
  LifecycleHarness h(with_window(1000));
  h.consume(LifecycleHarness::prompt("r1", "Count to five.", kStream));
  auto& a = h.provider("a");
  a.open_call().observer->on_delta("one ");
  h.end_iteration();
  a.open_call().observer->on_delta("two ");
  h.end_iteration();
  a.answer(a.open_call(), {"three ", "four."});
  const auto replies = h.host.replies("r1");
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[1].type, "chunk");
  EXPECT_EQ(replies[1].text, "two three four.") << "flushed by the end, not by the window";
  EXPECT_EQ(replies[2].type, "final");
  EXPECT_EQ(replies[2].seq, 2);
  EXPECT_EQ(replies[2].text, "one two three four.");
  h.advance(milliseconds(1000));
  EXPECT_EQ(h.host.replies("r1").size(), 3u) << "the window's expiry finds nothing left to send";
}

TEST(ChunkCoalescer, AStreamCutWhileTextIsHeldSendsThatTextThenTheError) {
  LifecycleHarness h(with_window(1000));
  h.consume(LifecycleHarness::prompt("r1", "Count to five.", kStream));
  auto& a = h.provider("a");
  a.open_call().observer->on_delta("one ");
  h.end_iteration();
  a.open_call().observer->on_delta("two ");
  a.fail(a.open_call(), Error{ErrorCode::provider_error, "stream cut"});
  const auto replies = h.host.replies("r1");
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[1].text, "two ") << "given to the requester, so it is sent, and cannot be retried away";
  EXPECT_EQ(replies[2].type, "error");
  EXPECT_EQ(replies[2].seq, 2);
  EXPECT_EQ(a.calls.size(), 1u) << "no retry after text was given";
}

TEST(ChunkCoalescer, AFollowerJoiningWhileTheLeadersTextIsHeldGetsEachByteOnce) {
  LifecycleHarness h(with_window(1000));
  h.consume(LifecycleHarness::prompt("lead", "Name a prime.", kStream));
  auto& a = h.provider("a");
  a.open_call().observer->on_delta("Two");
  h.end_iteration();
  a.open_call().observer->on_delta(" is");  // held in the window
  h.consume(LifecycleHarness::prompt("f1", "Name a prime.", kStream));
  a.answer(a.open_call(), {" prime."});
  EXPECT_EQ(chunk_texts(h, "f1"), (std::vector<std::string>{"Two", " is prime."}))
      << "caught up with what was published, then the held text with the leader's";
  EXPECT_EQ(h.host.terminal_event("f1")->text, "Two is prime.");
}

TEST(ChunkCoalescer, ANonStreamingRequestPublishesNoChunks) {
  LifecycleHarness h;
  h.consume(LifecycleHarness::prompt("r1", "Count to five.", {{"stream", false}}));
  auto& a = h.provider("a");
  a.answer(a.open_call(), {"one ", "two"});
  h.end_iteration();
  const auto replies = h.host.replies("r1");
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].type, "final");
  EXPECT_EQ(replies[0].text, "one two");
}

}  // namespace
}  // namespace cascade
