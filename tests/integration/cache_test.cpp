// The response cache in the running pipeline: exact and semantic hits are
// replayed as chunks and a final at cost 0 with the baseline saved, tenants
// never share entries, uncacheable requests call again, and a cache entry
// written by one worker reaches another worker's store (and a wiped one)
// through the changelog.
#include "events/request_fingerprint.h"
#include "integration/pipeline_fixture.h"

namespace cascade::testing {
namespace {

class CacheTest : public PipelineTest {
 protected:
  PromptEvent request(const std::string& id, const std::string& tenant, const std::string& text,
                      CacheMode cache = CacheMode::exact) {
    PromptEvent e;
    e.id = id;
    e.tenant = tenant;
    e.reply_to = reply_topic_;
    e.messages = nlohmann::json::array({{{"role", "system"}, {"content", "Answer briefly."}},
                                        {{"role", "user"}, {"content", text}}});
    e.cache = cache;
    return e;
  }

  const CollectedReply& ask(const PromptEvent& e) {
    EXPECT_TRUE(client_->send(e));
    EXPECT_TRUE(client_->flush(10000));
    EXPECT_TRUE(client_->wait_all(std::chrono::seconds(60))) << e.id;
    return client_->replies().at(e.id);
  }

  static std::string streamed(const CollectedReply& r) {
    std::string s;
    for (const auto& c : r.chunks) s += c.body.value("delta", "");
    return s;
  }

  std::uint64_t calls() const { return upstream_->requests_served(); }
};

TEST_F(CacheTest, AnIdenticalRequestIsReplayedFromTheCacheAtNoCostWithTheBaselineSaved) {
  start_pipeline();
  const auto& first = ask(request("c-1", "acme", "What is the capital of France?"));
  ASSERT_EQ(first.terminal->type, "final");
  EXPECT_EQ(first.terminal->body.value("cache", ""), "miss");
  const auto calls_after_first = calls();

  const auto& again = ask(request("c-2", "acme", "What is the capital of France?"));
  ASSERT_EQ(again.terminal->type, "final");
  const auto& body = again.terminal->body;
  EXPECT_EQ(body.value("cache", ""), "exact");
  EXPECT_EQ(body.value("cost_usd", -1.0), 0.0);
  EXPECT_EQ(body.value("content", ""), first.terminal->body.value("content", ""));
  EXPECT_EQ(body.value("model", ""), first.terminal->body.value("model", ""));
  EXPECT_EQ(streamed(again), body.value("content", "")) << "replayed as chunks, then the final";
  EXPECT_TRUE(again.seq_in_order);
  EXPECT_EQ(calls(), calls_after_first) << "no provider call for a hit";

  ASSERT_TRUE(wait_ledger(2, std::chrono::seconds(30)));
  const auto total = aggregator_.tenant_total("acme");
  EXPECT_EQ(total.requests, 2u);
  EXPECT_EQ(total.cache_hits, 1u);
  EXPECT_NEAR(total.cost_usd, first.terminal->body.value("cost_usd", -1.0), 1e-15) << "only the first call is paid";
  // The hit saved its whole baseline cost: savings exceed the first request's by that much.
  EXPECT_NEAR(total.savings_usd, total.baseline_cost_usd - total.cost_usd, 1e-12);
  EXPECT_GT(total.baseline_cost_usd, 0.0);
  EXPECT_NE(worker_metrics_.serialize().find("cascade_worker_cache_hits_total{kind=\"exact\"} 1"), std::string::npos);
}

TEST_F(CacheTest, ATenantNeverGetsAnotherTenantsCachedAnswer) {
  start_pipeline();
  ask(request("t-1", "acme", "What is the capital of France?", CacheMode::semantic));
  const auto before = calls();
  const auto& other = ask(request("t-2", "globex", "What is the capital of France?", CacheMode::semantic));
  EXPECT_EQ(other.terminal->body.value("cache", ""), "miss");
  EXPECT_EQ(calls(), before + 1);
}

TEST_F(CacheTest, AParaphraseIsASemanticHitAndADifferentQuestionIsNot) {
  start_pipeline();
  const auto& first = ask(request("s-1", "acme", "What is the capital of France?", CacheMode::semantic));
  ASSERT_EQ(first.terminal->type, "final");
  const auto before = calls();

  const auto& paraphrase = ask(request("s-2", "acme", "what is the capital of  France ?", CacheMode::semantic));
  EXPECT_EQ(paraphrase.terminal->body.value("cache", ""), "semantic");
  EXPECT_EQ(paraphrase.terminal->body.value("content", ""), first.terminal->body.value("content", ""));
  EXPECT_EQ(calls(), before);

  // Nearly the same words, another question: the verifier refuses the hit.
  const auto& other = ask(request("s-3", "acme", "What is the capital of Germany?", CacheMode::semantic));
  EXPECT_EQ(other.terminal->body.value("cache", ""), "miss");
  EXPECT_EQ(calls(), before + 1);

  // An exact-only request does not take a paraphrase's answer.
  const auto& exact_only = ask(request("s-4", "acme", "what is the capital of  France ?", CacheMode::exact));
  EXPECT_EQ(exact_only.terminal->body.value("cache", ""), "miss");
}

TEST_F(CacheTest, HotTemperatureAndCacheOffRequestsAlwaysCall) {
  start_pipeline();
  PromptEvent hot = request("h-1", "acme", "Write a haiku about rain.");
  hot.temperature = 1.5;
  ask(hot);
  hot.id = "h-2";
  const auto before = calls();
  EXPECT_EQ(ask(hot).terminal->body.value("cache", ""), "miss");
  EXPECT_EQ(calls(), before + 1);

  ask(request("o-1", "acme", "Name a prime number.", CacheMode::off));
  const auto& off = ask(request("o-2", "acme", "Name a prime number.", CacheMode::off));
  EXPECT_EQ(off.terminal->body.value("cache", ""), "miss");
  EXPECT_EQ(calls(), before + 3);
}

TEST_F(CacheTest, AnEntryWrittenByOneWorkerReachesAnotherAndAWipedWorkerRestoresIt) {
  start_pipeline();
  const PromptEvent asked = request("r-1", "acme", "What is the capital of France?", CacheMode::semantic);
  ASSERT_EQ(ask(asked).terminal->type, "final");
  ASSERT_TRUE(state_->changelog()->flush(10000));

  // Another worker process (its own store) following the same changelog.
  auto other = open_state(temp_dir_.sub("other-worker"));
  ASSERT_TRUE(other);
  PromptEvent same = asked;
  same.id = "r-2";
  auto fingerprint = request_fingerprint(same, config_.limits.default_max_tokens);
  ASSERT_TRUE(fingerprint);
  auto hit = other->cache()->lookup(same, *fingerprint);
  ASSERT_TRUE(hit) << "restored from the changelog at open";
  EXPECT_EQ(hit->kind, CacheOutcome::exact);
  EXPECT_GT(other->restored().records, 0u);

  PromptEvent paraphrase = asked;
  paraphrase.messages.back()["content"] = "what is the capital of France";
  auto paraphrase_fingerprint = request_fingerprint(paraphrase, config_.limits.default_max_tokens);
  ASSERT_TRUE(paraphrase_fingerprint);
  auto semantic = other->cache()->lookup(paraphrase, *paraphrase_fingerprint);
  ASSERT_TRUE(semantic) << "the vector came through the changelog too";
  EXPECT_EQ(semantic->kind, CacheOutcome::semantic);
}

}  // namespace
}  // namespace cascade::testing
