// Single flight end to end: identical requests in flight at the same time
// (same tenant, same request, cache not off) make one upstream call, and every
// one of them gets the answer (or the error) as its own events.

#include "integration/pipeline_fixture.h"

namespace cascade::testing {
namespace {

class SingleFlightTest : public PipelineTest {
 protected:
  // Requests sent while no worker runs reach the next worker together, in one
  // consume batch: identical ones overlap in flight however slow the machine.
  void start_pipeline_without_worker() {
    start_pipeline();
    workers_.front()->stop(5000);
    config_.kafka.worker_group += "-single-flight";  // the next worker reads the topic from its start
  }

  void send_then_start_worker(const std::vector<PromptEvent>& events) {
    for (const auto& e : events) ASSERT_TRUE(client_->send(e));
    ASSERT_TRUE(client_->flush(10000));
    start_worker();
  }

  PromptEvent request(const std::string& name, const std::string& tenant, const std::string& text) {
    PromptEvent e;
    e.id = "sf-" + std::to_string(instance_) + "-" + name;
    e.tenant = tenant;
    e.reply_to = reply_topic_;
    e.messages = nlohmann::json::array({{{"role", "user"}, {"content", text}}});
    e.metadata = {{"name", name}};
    return e;
  }

  // Chat completion calls that reached any upstream.
  std::uint64_t upstream_calls() const {
    std::uint64_t n = upstream_->requests_served();
    for (const auto& [name, server] : faulty_upstreams_) n += server->requests_served();
    return n;
  }

  // Every provider's upstream injects `fault` into every call.
  void fault_on_every_provider(const UpstreamFault& fault) {
    FaultInjectionOptions faults;
    faults.plan = {{fault, 1}};
    for (const char* p : kProviders) provider_faults[p] = faults;
  }

  const CollectedReply& reply(const PromptEvent& e) const { return client_->replies().at(e.id); }

  // Polls until `id` has `n` terminal events (at-least-once duplicates included).
  bool wait_terminals(const std::string& id, std::uint64_t n, std::chrono::seconds timeout,
                      const std::function<void(const ReplyEvent&)>& on_event) {
    return eventually([&] { return client_->replies().at(id).terminal_count >= n; }, timeout,
                      [&] { client_->poll(50, on_event); });
  }

  // A final as the test expects it: complete, streamed in order when asked to.
  void expect_complete_final(const PromptEvent& e, const std::string& text) {
    const CollectedReply& r = reply(e);
    ASSERT_TRUE(r.terminal) << e.id;
    ASSERT_EQ(r.terminal->type, "final") << e.id << ": " << r.terminal->body.dump();
    EXPECT_EQ(r.terminal_count, 1u) << e.id;
    EXPECT_TRUE(r.seq_in_order) << e.id;
    const auto& body = r.terminal->body;
    const ModelInfo* model = catalog_->find(body.value("model", ""));
    ASSERT_NE(model, nullptr) << body.dump();
    EXPECT_EQ(body.value("content", ""), SimulatedUpstream::answer_for(model->upstream_model, text, kChunks)) << e.id;
    EXPECT_EQ(body["metadata"], e.metadata) << e.id;
    EXPECT_EQ(r.terminal->seq, static_cast<std::int64_t>(r.chunks.size())) << e.id;
    if (e.stream) {
      EXPECT_FALSE(r.chunks.empty()) << e.id;
      EXPECT_EQ(concat_chunks(r), body.value("content", "")) << e.id;
    } else {
      EXPECT_TRUE(r.chunks.empty()) << e.id;
    }
  }

  // A follower's final: the leader's answer, free, as an exact cache hit.
  void expect_shared_final(const PromptEvent& follower, const PromptEvent& leader) {
    const auto& body = reply(follower).terminal->body;
    const auto& lead = reply(leader).terminal->body;
    EXPECT_EQ(body.value("cache", ""), "exact") << follower.id;
    EXPECT_EQ(body.value("cost_usd", -1.0), 0.0) << follower.id;
    EXPECT_EQ(body["route"].value("reason", ""), "single flight: answer shared with request " + leader.id);
    EXPECT_EQ(body["route"].value("tier", ""), lead["route"].value("tier", "?"));
    for (const char* field : {"content", "model", "provider", "finish_reason"}) {
      EXPECT_EQ(body.value(field, ""), lead.value(field, "?")) << follower.id << " " << field;
    }
    EXPECT_EQ(body["usage"], lead["usage"]) << follower.id;
  }
};

TEST_F(SingleFlightTest, IdenticalConcurrentRequestsMakeOneUpstreamCallAndAllGetTheAnswer) {
  chunk_delay_ms = 20;  // the leader is still streaming while its followers arrive
  start_pipeline_without_worker();
  const std::string text = "What is the capital of France?";
  std::vector<PromptEvent> acme;
  for (int i = 0; i < 20; ++i) {
    PromptEvent e = request("acme-" + std::to_string(i), "sf-acme", text);
    e.stream = i % 5 != 4;  // some followers want only the final
    e.priority = i % 2 ? Priority::batch : Priority::interactive;  // not part of the request's identity
    acme.push_back(e);
  }
  const PromptEvent other_tenant = request("globex", "sf-globex", text);
  PromptEvent no_cache = request("acme-nocache", "sf-acme", text);
  no_cache.cache = CacheMode::off;
  std::vector<PromptEvent> all = acme;
  all.push_back(other_tenant);
  all.push_back(no_cache);
  send_then_start_worker(all);
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60))) << client_->outstanding() << " unanswered";
  client_->poll(300);  // a stray duplicate would show in terminal_count

  // One call for the 20, one for the other tenant, one for the request with
  // its cache off.
  EXPECT_EQ(upstream_calls(), 3u);
  const Worker& worker = *workers_.back();
  EXPECT_EQ(worker.stats().provider_calls.load(), 3u);
  EXPECT_EQ(worker.stats().single_flight_followers.load(), 19u);

  for (const auto& e : all) expect_complete_final(e, text);
  // The first request read leads and pays; the others follow it.
  const PromptEvent& leader = acme.front();
  EXPECT_EQ(reply(leader).terminal->body.value("cache", ""), "miss");
  EXPECT_GT(reply(leader).terminal->body.value("cost_usd", 0.0), 0.0);
  EXPECT_EQ(static_cast<int>(reply(leader).chunks.size()), kChunks);
  for (std::size_t i = 1; i < acme.size(); ++i) expect_shared_final(acme[i], leader);
  for (const PromptEvent* e : std::initializer_list<const PromptEvent*>{&other_tenant, &no_cache}) {
    EXPECT_EQ(reply(*e).terminal->body.value("cache", ""), "miss") << e->id;
    EXPECT_GT(reply(*e).terminal->body.value("cost_usd", 0.0), 0.0) << e->id;
  }

  // The ledger has every request, and the provider's bill once per call.
  ASSERT_TRUE(wait_ledger(all.size(), std::chrono::seconds(30)));
  const auto cost_of = [&](const PromptEvent& e) { return reply(e).terminal->body.value("cost_usd", 0.0); };
  const auto acme_total = aggregator_.tenant_total("sf-acme");
  EXPECT_EQ(acme_total.requests, 21u);
  EXPECT_EQ(acme_total.cache_hits, 19u);
  EXPECT_NEAR(acme_total.cost_usd, cost_of(leader) + cost_of(no_cache), 1e-15);
  EXPECT_GT(acme_total.savings_usd, 0.0);
  const auto globex_total = aggregator_.tenant_total("sf-globex");
  EXPECT_EQ(globex_total.requests, 1u);
  EXPECT_NEAR(globex_total.cost_usd, cost_of(other_tenant), 1e-15);
  EXPECT_EQ(aggregator_.total().requests, all.size());

  const std::string exposition = worker_metrics_.serialize();
  EXPECT_NE(exposition.find("cascade_worker_single_flight_joins_total 19"), std::string::npos) << exposition;

  // The flight closed with its leader; the same request now finds the
  // leader's answer in the response cache: still no call.
  const PromptEvent later = request("acme-later", "sf-acme", text);
  ASSERT_TRUE(client_->send(later));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60)));
  expect_complete_final(later, text);
  EXPECT_EQ(reply(later).terminal->body.value("cache", ""), "exact");
  EXPECT_EQ(upstream_calls(), 3u);
}

TEST_F(SingleFlightTest, ANonStreamingLeadersAnswerReachesStreamingFollowersAsOneChunk) {
  chunk_delay_ms = 10;
  start_pipeline_without_worker();
  const std::string text = "Name three primary colours.";
  std::vector<PromptEvent> group;
  for (int i = 0; i < 6; ++i) {
    PromptEvent e = request("c-" + std::to_string(i), "sf-colours", text);
    e.stream = i != 0 && i != 3;  // the leader does not stream
    e.max_tokens = 1024;          // the default written out: still the same request
    if (i % 2) e.max_tokens.reset();
    group.push_back(e);
  }
  send_then_start_worker(group);
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60))) << client_->outstanding() << " unanswered";

  EXPECT_EQ(upstream_calls(), 1u);
  for (const auto& e : group) expect_complete_final(e, text);
  for (std::size_t i = 1; i < group.size(); ++i) {
    expect_shared_final(group[i], group[0]);
    // Nothing was published while the leader generated; the whole answer
    // comes in one chunk, then the final.
    if (group[i].stream) {
      EXPECT_EQ(reply(group[i]).chunks.size(), 1u) << group[i].id;
    }
  }
}

TEST_F(SingleFlightTest, AFollowerJoiningMidStreamFirstGetsWhatTheLeaderAlreadyStreamed) {
  // Every answer stalls after three deltas, long enough for followers sent
  // once the leader's third chunk is seen to arrive while it is stalled.
  constexpr int kBeforeStall = 3;
  fault_on_every_provider(UpstreamFault::hang_mid_stream(5000, kBeforeStall));
  start_pipeline();
  const std::string text = "Why is the sky blue?";
  const PromptEvent leader = request("lead", "sf-sky", text);
  ASSERT_TRUE(client_->send(leader));
  ASSERT_TRUE(client_->flush(10000));
  // Waited for as text: deltas that reach the worker together are one chunk.
  ASSERT_TRUE(eventually([&] {
    const auto& r = reply(leader);
    return !r.chunks.empty() && concat_chunks(r) == first_pieces(r, text, kBeforeStall);
  }, std::chrono::seconds(60), [&] { client_->poll(10); }));
  const std::string streamed_before_join = concat_chunks(reply(leader));
  const std::size_t leader_chunks_before_join = reply(leader).chunks.size();

  std::vector<PromptEvent> followers;
  for (int i = 0; i < 4; ++i) {
    PromptEvent e = request("late-" + std::to_string(i), "sf-sky", text);
    e.stream = i != 3;
    followers.push_back(e);
    ASSERT_TRUE(client_->send(e));
  }
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60))) << client_->outstanding() << " unanswered";

  EXPECT_EQ(upstream_calls(), 1u);
  EXPECT_EQ(workers_.front()->stats().single_flight_followers.load(), followers.size());
  expect_complete_final(leader, text);
  for (const auto& f : followers) {
    expect_complete_final(f, text);
    expect_shared_final(f, leader);
    if (!f.stream) continue;
    // One chunk with what was streamed before the join, then the live deltas.
    const auto& chunks = reply(f).chunks;
    ASSERT_EQ(chunks.size(), 1 + reply(leader).chunks.size() - leader_chunks_before_join) << f.id;
    EXPECT_EQ(chunks.front().body.value("delta", ""), streamed_before_join) << f.id;
    for (std::size_t i = 1; i < chunks.size(); ++i) {
      EXPECT_EQ(chunks[i].body.value("delta", ""),
                reply(leader).chunks[leader_chunks_before_join + i - 1].body.value("delta", ""));
    }
  }
}

TEST_F(SingleFlightTest, WhenTheLeaderFailsEveryFollowerGetsItsErrorAndNoCharge) {
  fault_on_every_provider(UpstreamFault::http_status(500));
  env_overrides["CASCADE_RESILIENCE_RETRY_MAX_RETRIES"] = "0";
  env_overrides["CASCADE_ROUTER_MAX_FALLBACKS"] = "0";
  start_pipeline_without_worker();
  const std::string text = "What is 6 times 7?";
  std::vector<PromptEvent> group;
  for (int i = 0; i < 10; ++i) {
    PromptEvent e = request("f-" + std::to_string(i), "sf-fail", text);
    e.stream = i % 3 != 2;
    group.push_back(e);
  }
  PromptEvent no_cache = request("f-nocache", "sf-fail", text);
  no_cache.cache = CacheMode::off;
  std::vector<PromptEvent> all = group;
  all.push_back(no_cache);
  send_then_start_worker(all);
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60))) << client_->outstanding() << " unanswered";
  client_->poll(300);

  EXPECT_EQ(upstream_calls(), 2u);  // the group's leader and the request with its cache off
  const auto& lead_error = reply(group.front()).terminal->body["error"];
  EXPECT_EQ(lead_error.value("code", ""), "provider_error") << lead_error.dump();
  for (const auto& e : all) {
    const CollectedReply& r = reply(e);
    ASSERT_TRUE(r.terminal) << e.id;
    ASSERT_EQ(r.terminal->type, "error") << e.id << ": " << r.terminal->body.dump();
    EXPECT_EQ(r.terminal_count, 1u) << e.id;
    EXPECT_TRUE(r.chunks.empty()) << e.id;
    EXPECT_EQ(r.terminal->seq, 0) << e.id;
    EXPECT_EQ(r.terminal->body["error"].value("code", ""), "provider_error") << e.id;
  }
  for (const auto& e : group) EXPECT_EQ(reply(e).terminal->body["error"], lead_error) << e.id;
  const auto& stats = workers_.back()->stats();
  EXPECT_EQ(stats.failed.load(), all.size());
  EXPECT_EQ(stats.single_flight_followers.load(), group.size() - 1);
  EXPECT_EQ(stats.provider_calls.load(), 2u);
}

TEST_F(SingleFlightTest, FollowersOfALeaderThatFailsMidStreamGetItsChunksThenItsError) {
  constexpr int kBeforeCut = 3;
  fault_on_every_provider(UpstreamFault::cut_mid_stream(kBeforeCut));
  env_overrides["CASCADE_RESILIENCE_RETRY_MAX_RETRIES"] = "0";
  env_overrides["CASCADE_ROUTER_MAX_FALLBACKS"] = "0";
  chunk_delay_ms = 10;
  start_pipeline_without_worker();
  const std::string text = "Describe a sunset in three sentences.";
  std::vector<PromptEvent> group;
  for (int i = 0; i < 5; ++i) group.push_back(request("m-" + std::to_string(i), "sf-cut", text));
  group.back().stream = false;
  send_then_start_worker(group);
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60))) << client_->outstanding() << " unanswered";

  EXPECT_EQ(upstream_calls(), 1u);
  const CollectedReply& lead = reply(group.front());
  ASSERT_EQ(lead.terminal->type, "error") << lead.terminal->body.dump();
  ASSERT_EQ(lead.chunks.size(), static_cast<std::size_t>(kBeforeCut));
  for (const auto& e : group) {
    const CollectedReply& r = reply(e);
    ASSERT_EQ(r.terminal->type, "error") << e.id << ": " << r.terminal->body.dump();
    EXPECT_EQ(r.terminal_count, 1u) << e.id;
    EXPECT_TRUE(r.seq_in_order) << e.id;
    EXPECT_EQ(r.terminal->body["error"], lead.terminal->body["error"]) << e.id;
    EXPECT_EQ(r.chunks.size(), e.stream ? lead.chunks.size() : 0u) << e.id;
    EXPECT_EQ(concat_chunks(r), e.stream ? concat_chunks(lead) : "") << e.id;
    EXPECT_EQ(r.terminal->seq, static_cast<std::int64_t>(r.chunks.size())) << e.id;
  }
  // Only the leader's call produced tokens, and only the leader pays for them.
  ASSERT_TRUE(wait_ledger(1, std::chrono::seconds(30)));
  client_->poll(500);
  const auto total = aggregator_.tenant_total("sf-cut");
  EXPECT_EQ(total.requests, 1u);
  EXPECT_GT(total.cost_usd, 0.0);
}

TEST_F(SingleFlightTest, AnsweredFollowersAreReplayedOnRedeliveryWithoutACall) {
  chunk_delay_ms = 10;
  start_pipeline_without_worker();
  const std::string text = "What is the boiling point of water at sea level?";
  std::vector<PromptEvent> group;
  for (int i = 0; i < 5; ++i) group.push_back(request("r-" + std::to_string(i), "sf-replay", text));
  std::map<std::string, std::vector<nlohmann::json>> finals;
  const auto collect = [&](const ReplyEvent& e) {
    if (e.type == "final") finals[e.id].push_back(e.body);
  };
  send_then_start_worker(group);
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60), collect));
  ASSERT_TRUE(wait_ledger(group.size(), std::chrono::seconds(30)));
  EXPECT_EQ(upstream_calls(), 1u);

  // As if every offset had been lost: a new worker reads all requests again.
  workers_.back()->stop(5000);
  config_.kafka.worker_group += "-again";
  start_worker();
  const auto all_twice = [&] {
    for (const auto& e : group)
      if (finals[e.id].size() < 2) return false;
    return true;
  };
  ASSERT_TRUE(eventually(all_twice, std::chrono::seconds(60), [&] { client_->poll(50, collect); }));
  EXPECT_EQ(workers_.back()->stats().replayed.load(), group.size());
  EXPECT_EQ(workers_.back()->stats().provider_calls.load(), 0u);
  EXPECT_EQ(upstream_calls(), 1u);
  for (const auto& e : group) EXPECT_EQ(finals[e.id][1], finals[e.id][0]) << e.id;  // the stored answer
  for (std::size_t i = 1; i < group.size(); ++i) EXPECT_EQ(finals[group[i].id][1].value("cache", ""), "exact");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(aggregator_.tenant_total("sf-replay").requests, group.size());  // nothing counted twice
}

TEST_F(SingleFlightTest, TheSameRequestDeliveredTwiceWhileInFlightGetsTheLeadersOwnAnswer) {
  chunk_delay_ms = 10;
  start_pipeline_without_worker();
  const std::string text = "What is the tallest mountain on Earth?";
  const PromptEvent leader = request("twice", "sf-twice", text);
  const PromptEvent other = request("other", "sf-twice", text);
  std::vector<nlohmann::json> twice_terminals;
  const auto collect = [&](const ReplyEvent& e) {
    if (e.id == leader.id && e.type != "chunk") twice_terminals.push_back(e.body);
  };
  send_then_start_worker({leader, leader, other});
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60), collect));
  ASSERT_TRUE(wait_terminals(leader.id, 2, std::chrono::seconds(30), collect));

  EXPECT_EQ(upstream_calls(), 1u);
  EXPECT_EQ(workers_.back()->stats().single_flight_followers.load(), 2u);
  // Both deliveries answered with the leader's final, byte for byte: the same
  // seq, a miss that paid. The stored answer is that one too.
  ASSERT_EQ(twice_terminals.size(), 2u);
  EXPECT_EQ(twice_terminals[0], twice_terminals[1]);
  EXPECT_EQ(twice_terminals[0].value("cache", ""), "miss");
  EXPECT_GT(twice_terminals[0].value("cost_usd", 0.0), 0.0);
  // Only the leader's chunks: the second delivery shares its (id, seq) space.
  EXPECT_EQ(static_cast<int>(reply(leader).chunks.size()), kChunks);
  EXPECT_TRUE(reply(leader).seq_in_order);
  auto stored = state_->completed()->get(leader.tenant, leader.id);
  ASSERT_TRUE(stored);
  auto stored_final = parse_final_event(stored->final_event);
  ASSERT_TRUE(stored_final) << stored_final.error().message;
  EXPECT_EQ(stored_final->cache, CacheOutcome::miss);
  EXPECT_GT(stored_final->cost_usd, 0.0);
  expect_complete_final(other, text);
  expect_shared_final(other, leader);
}

}  // namespace
}  // namespace cascade::testing
