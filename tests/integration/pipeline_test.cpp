// End-to-end behaviour of the pipeline: prompt events in, ordered chunks and
// exactly one terminal event out, a ledger that matches the answers, no
// request lost across a worker crash, poison events to the DLQ.
#include <set>

#include "integration/pipeline_fixture.h"

namespace cascade::testing {
namespace {

TEST_F(PipelineTest, FiveHundredPromptsFromEightTenantsGetOrderedChunksAndExactlyOneFinal) {
  start_pipeline();
  const auto prompts = load_prompts(500);
  for (std::size_t i = 0; i < prompts.size(); ++i) ASSERT_TRUE(client_->send(prompt(i, prompts[i])));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(120))) << where_requests_are();
  // Let any stray duplicate arrive before counting terminals.
  client_->poll(500);

  double final_cost_sum = 0;
  std::int64_t input_tokens = 0, output_tokens = 0;
  std::map<std::string, std::uint64_t> finals_per_tenant;
  ASSERT_EQ(client_->replies().size(), 500u);
  for (const auto& [id, r] : client_->replies()) {
    ASSERT_TRUE(r.terminal) << id;
    ASSERT_EQ(r.terminal->type, "final") << id << ": " << r.terminal->body.dump();
    EXPECT_EQ(r.terminal_count, 1u) << id;
    EXPECT_TRUE(r.seq_in_order) << id;
    const auto& body = r.terminal->body;
    EXPECT_EQ(r.terminal->seq, static_cast<std::int64_t>(r.chunks.size())) << id;
    EXPECT_EQ(concat_chunks(r), body.value("content", "")) << id;

    // The answer is exactly what the upstream streamed for the routed model.
    const ModelInfo* model = catalog_->find(body.value("model", ""));
    ASSERT_NE(model, nullptr) << body.dump();
    const std::size_t n = std::stoul(id.substr(id.rfind('-') + 1));
    EXPECT_EQ(body.value("content", ""), SimulatedUpstream::answer_for(model->upstream_model, prompts[n], kChunks));
    EXPECT_EQ(body["metadata"].value("n", -1), static_cast<int>(n));
    EXPECT_EQ(body.value("cache", ""), "miss");
    EXPECT_FALSE(body["route"].value("reason", "").empty());
    EXPECT_GT(body["usage"].value("input_tokens", 0), 0);
    EXPECT_EQ(body["usage"].value("output_tokens", 0), kChunks);

    final_cost_sum += body.value("cost_usd", 0.0);
    input_tokens += body["usage"].value("input_tokens", 0);
    output_tokens += body["usage"].value("output_tokens", 0);
    finals_per_tenant["tenant-" + std::to_string(n % 8)]++;
  }

  ASSERT_TRUE(wait_ledger(500, std::chrono::seconds(30)));
  const auto total = aggregator_.total();
  EXPECT_EQ(total.requests, 500u);
  EXPECT_NEAR(total.cost_usd, final_cost_sum, 1e-12 * std::max(1.0, final_cost_sum));
  EXPECT_EQ(total.input_tokens, input_tokens);
  EXPECT_EQ(total.output_tokens, output_tokens);
  EXPECT_GT(total.baseline_cost_usd, total.cost_usd);  // routing saved money against gpt-4o
  const auto tenants = aggregator_.by_tenant();
  ASSERT_EQ(tenants.size(), 8u);
  for (const auto& [tenant, totals] : tenants) EXPECT_EQ(totals.requests, finals_per_tenant[tenant]) << tenant;
  EXPECT_EQ(upstream_->requests_served(), 500u);
}

TEST_F(PipelineTest, WorkerCrashMidRunLosesNoRequestAndPaysNoCompletedRequestTwice) {
  // Slow answers and a lazy commit: at the crash many requests are in flight
  // and many are completed but not yet committed.
  chunk_delay_ms = 3;
  env_overrides["CASCADE_WORKER_COMMIT_INTERVAL_MS"] = "2000";
  start_pipeline();
  const auto prompts = load_prompts(500);
  for (std::size_t i = 0; i < prompts.size(); ++i) ASSERT_TRUE(client_->send(prompt(i, prompts[i])));
  ASSERT_TRUE(client_->flush(10000));

  eventually([&] { return client_->replies().size() - client_->outstanding() >= 150; }, std::chrono::seconds(60),
             [&] { client_->poll(20); });
  ASSERT_GE(500 - client_->outstanding(), 150u);
  workers_.front()->abort();
  const auto in_flight_at_crash = static_cast<std::uint64_t>(workers_.front()->stats().in_flight.load());
  const auto calls_before = upstream_->requests_served();

  start_worker();  // a fresh worker takes over the partitions after the session timeout
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(120))) << client_->outstanding() << " lost";
  for (const auto& [id, r] : client_->replies()) {
    ASSERT_TRUE(r.terminal) << id;
    EXPECT_EQ(r.terminal->type, "final") << id << ": " << r.terminal->body.dump();
  }
  // Only requests in flight at the crash may be paid again.
  EXPECT_LE(upstream_->requests_served(), 500u + in_flight_at_crash)
      << "calls before crash " << calls_before << ", in flight " << in_flight_at_crash;

  // The ledger counts each request once, whatever was redelivered.
  ASSERT_TRUE(wait_ledger(500, std::chrono::seconds(30)));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(aggregator_.total().requests, 500u);
}

TEST_F(PipelineTest, RedeliveredCompletedRequestsAreAnsweredFromTheStoreWithoutASecondCall) {
  start_pipeline();
  const auto prompts = load_prompts(200);
  for (std::size_t i = 0; i < prompts.size(); ++i) ASSERT_TRUE(client_->send(prompt(i, prompts[i])));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60))) << where_requests_are();
  ASSERT_TRUE(wait_ledger(200, std::chrono::seconds(30)));
  workers_.front()->stop(5000);
  std::map<std::string, std::string> first_answers;
  for (const auto& [id, r] : client_->replies()) first_answers[id] = r.terminal->body.value("content", "");

  // As if every offset had been lost in a crash: a worker with no committed
  // offsets reads all requests again.
  config_.kafka.worker_group += "-after-crash";
  start_worker();
  auto all_answered_twice = [&] {
    for (const auto& [id, r] : client_->replies())
      if (r.terminal_count < 2) return false;
    return true;
  };
  eventually(all_answered_twice, std::chrono::seconds(60), [&] { client_->poll(50); });
  EXPECT_EQ(workers_.back()->stats().replayed.load(), 200u);
  EXPECT_EQ(workers_.back()->stats().provider_calls.load(), 0u);
  EXPECT_EQ(upstream_->requests_served(), 200u);
  for (const auto& [id, r] : client_->replies()) {
    EXPECT_EQ(r.terminal_count, 2u) << id;  // at-least-once: the answer is sent again...
    EXPECT_EQ(r.terminal->body.value("content", ""), first_answers[id]) << id;  // ...identical
  }
  // ...and the ledger, deduplicating by id, charges nothing twice.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(aggregator_.total().requests, 200u);
  EXPECT_GE(aggregator_.duplicates(), 1u);
}

TEST_F(PipelineTest, BackpressurePausesPartitionsAtMaxInFlightAndResumesUntilAllAreAnswered) {
  chunk_delay_ms = 5;
  env_overrides["CASCADE_WORKER_MAX_IN_FLIGHT"] = "16";
  start_pipeline();
  const auto prompts = load_prompts(100);
  for (std::size_t i = 0; i < prompts.size(); ++i) ASSERT_TRUE(client_->send(prompt(i, prompts[i])));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(120))) << client_->outstanding() << " unanswered";
  const auto& stats = workers_.front()->stats();
  EXPECT_GT(stats.pauses.load(), 0u);
  // A paused partition may still hand over a message fetched before the pause.
  EXPECT_LE(stats.peak_in_flight.load(), 16 + 4);
  EXPECT_GE(stats.peak_in_flight.load(), 16);
}

TEST_F(PipelineTest, AnUnreachableProviderIsRetriedThenFallenBackFromAndItsBreakerOpens) {
  // groq serves the cheapest small model; nothing listens on its port.
  env_overrides["CASCADE_PROVIDERS_GROQ_BASE_URL"] = "http://127.0.0.1:1/v1";
  env_overrides["CASCADE_RESILIENCE_RETRY_BACKOFF_BASE_MS"] = "5";
  env_overrides["CASCADE_RESILIENCE_RETRY_BACKOFF_CAP_MS"] = "20";
  start_pipeline();
  const auto prompts = load_prompts(120);
  for (std::size_t i = 0; i < prompts.size(); ++i) ASSERT_TRUE(client_->send(prompt(i, "What is " + std::to_string(i) + "?")));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60))) << client_->outstanding() << " unanswered";
  for (const auto& [id, r] : client_->replies()) {
    ASSERT_EQ(r.terminal->type, "final") << r.terminal->body.dump();
    EXPECT_NE(r.terminal->body.value("provider", ""), "groq") << id;
    EXPECT_EQ(concat_chunks(r), r.terminal->body.value("content", "")) << id;  // no partial answer mixed in
  }
  const auto& stats = workers_.front()->stats();
  EXPECT_GT(stats.retries.load(), 0u);
  EXPECT_GT(stats.fallbacks.load(), 0u);
  // Once the breaker is open, later requests skip groq without calling it.
  EXPECT_GT(stats.breaker_rejections.load(), 0u);
  EXPECT_LT(stats.provider_calls.load(), 120u * 4);
  const auto any = client_->replies().begin()->second.terminal->body;
  EXPECT_NE(any["route"].value("reason", "").find("llama-3.1-8b-instant"), std::string::npos) << any.dump();
}

TEST_F(PipelineTest, ATenantOverItsRateLimitGetsRateLimitedErrorsWhileOtherTenantsAreServed) {
  env_overrides["CASCADE_TENANTS_DEFAULT_REQUESTS_PER_SECOND"] = "0";  // others: unlimited
  start_pipeline_with_tenant_limit("tenant-0", 10, 300);
  for (std::size_t i = 0; i < 160; ++i) ASSERT_TRUE(client_->send(prompt(i, "What is " + std::to_string(i) + "?", 2)));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60))) << client_->outstanding() << " unanswered";
  std::map<std::string, std::map<std::string, int>> by_tenant;  // tenant -> outcome -> n
  for (const auto& [id, r] : client_->replies()) {
    const std::size_t n = std::stoul(id.substr(id.rfind('-') + 1));
    const std::string outcome =
        r.terminal->type == "final" ? "final" : r.terminal->body["error"].value("code", "?");
    by_tenant["tenant-" + std::to_string(n % 2)][outcome]++;
    EXPECT_EQ(r.terminal_count, 1u);
  }
  // 80 requests at once against 10/s with a 0.3 s wait: the burst and what
  // refills in the wait get through, the rest are refused with a clear code.
  EXPECT_GT(by_tenant["tenant-0"]["rate_limited"], 40);
  EXPECT_GE(by_tenant["tenant-0"]["final"], 10);
  EXPECT_LE(by_tenant["tenant-0"]["final"], 25);
  EXPECT_EQ(by_tenant["tenant-1"]["final"], 80);  // the other tenant is not slowed down
  EXPECT_GT(workers_.front()->stats().rate_limited.load(), 40u);
}

TEST_F(PipelineTest, CallsOverAProvidersMaxConcurrencyQueueForASlotInsteadOfFailing) {
  chunk_delay_ms = 10;
  env_overrides["CASCADE_PROVIDERS_GROQ_MAX_CONCURRENCY"] = "4";
  env_overrides["CASCADE_PROVIDERS_GROQ_QUEUE_TIMEOUT_MS"] = "30000";
  start_pipeline();
  for (std::size_t i = 0; i < 40; ++i) ASSERT_TRUE(client_->send(prompt(i, "What is " + std::to_string(i) + "?")));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60))) << client_->outstanding() << " unanswered";
  for (const auto& [id, r] : client_->replies()) {
    ASSERT_EQ(r.terminal->type, "final") << r.terminal->body.dump();
    EXPECT_EQ(r.terminal->body.value("provider", ""), "groq");  // waited, did not fall back
  }
  EXPECT_GE(workers_.front()->stats().queued_for_slot.load(), 30u);
}

TEST_F(PipelineTest, AProviderSlotWaitThatRunsOutFallsBackToTheNextModel) {
  chunk_delay_ms = 20;
  env_overrides["CASCADE_PROVIDERS_GROQ_MAX_CONCURRENCY"] = "2";
  env_overrides["CASCADE_PROVIDERS_GROQ_QUEUE_TIMEOUT_MS"] = "30";
  start_pipeline();
  for (std::size_t i = 0; i < 40; ++i) ASSERT_TRUE(client_->send(prompt(i, "What is " + std::to_string(i) + "?")));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60))) << client_->outstanding() << " unanswered";
  std::map<std::string, int> providers;
  for (const auto& [id, r] : client_->replies()) {
    ASSERT_EQ(r.terminal->type, "final") << r.terminal->body.dump();
    providers[r.terminal->body.value("provider", "")]++;
  }
  EXPECT_GE(providers["groq"], 2);
  EXPECT_GT(40 - providers["groq"], 20);  // most went to the fallback chain
}

// Reads the dead letters published so far.
std::vector<nlohmann::json> read_dead_letters(const Config& config) {
  std::vector<nlohmann::json> out;
  auto n = read_topic_to_end(config.kafka, config.kafka.bootstrap, config.kafka.dlq_topic,
                             [&](const KafkaRecord& m) {
                               out.push_back(nlohmann::json::parse(m.payload()));
                             });
  EXPECT_TRUE(n) << n.error().message;
  return out;
}

TEST_F(PipelineTest, PoisonEventsGetAnErrorReplyAndLandInTheDlqWhileTheWorkerKeepsGoing) {
  env_overrides["CASCADE_LIMITS_MAX_EVENT_BYTES"] = "4096";
  start_pipeline();
  const std::string reply = reply_topic_;
  auto with = [&](const std::string& id, nlohmann::json patch) {
    nlohmann::json j = {{"id", id}, {"tenant", "acme"}, {"reply_to", reply},
                        {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
    j.merge_patch(patch);
    return j.dump();
  };
  struct Poison {
    std::string id;  // empty when no reply is possible
    std::string payload;
    std::string reason_mentions;
  };
  const std::vector<Poison> poison = {
      {"", "this is not json {", "JSON"},
      {"", R"({"id":"p-noreply","tenant":"acme","messages":[{"role":"user","content":"hi"}]})", "reply_to"},
      {"p-nomessages", with("p-nomessages", {{"messages", nullptr}}), "messages"},
      {"p-badtemp", with("p-badtemp", {{"temperature", "hot"}}), "temperature"},
      {"p-badmodel", with("p-badmodel", {{"model", "gpt-9-ultra"}}), "gpt-9-ultra"},
      {"p-badrole", with("p-badrole", {{"messages", {{{"role", "wizard"}, {"content", "x"}}}}}), "role"},
      {"p-huge", with("p-huge", {{"messages", {{{"role", "user"}, {"content", std::string(8000, 'x')}}}}}),
       "max_event_bytes"},
  };
  for (const auto& p : poison) ASSERT_TRUE(client_->send_raw("acme", p.payload, p.id));
  // A valid request after the poison is still answered.
  const auto valid = prompt(1, "What is the capital of France?");
  ASSERT_TRUE(client_->send(valid));
  ASSERT_TRUE(client_->flush(10000));
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(60))) << client_->outstanding() << " without reply";
  EXPECT_EQ(client_->replies().at(valid.id).terminal->type, "final");

  // Poison with a readable id and reply_to gets an invalid_request error reply.
  for (const auto& p : poison) {
    if (p.id.empty()) continue;
    const auto& r = client_->replies().at(p.id);
    ASSERT_TRUE(r.terminal) << p.id;
    EXPECT_EQ(r.terminal->type, "error") << p.id;
    EXPECT_EQ(r.terminal->body["error"].value("code", ""), "invalid_request") << p.id;
    EXPECT_NE(r.terminal->body["error"].value("message", "").find(p.reason_mentions), std::string::npos)
        << r.terminal->body.dump();
  }

  // Every poison event has its dead letter with a reason naming the problem.
  std::vector<nlohmann::json> letters;
  eventually(
      [&] {
        letters = read_dead_letters(config_);
        return letters.size() >= poison.size();
      },
      std::chrono::seconds(30), std::chrono::milliseconds(100));
  ASSERT_EQ(letters.size(), poison.size());
  for (const auto& p : poison) {
    const auto it = std::find_if(letters.begin(), letters.end(), [&](const nlohmann::json& l) {
      return l.value("reason", "").find(p.reason_mentions) != std::string::npos;
    });
    EXPECT_NE(it, letters.end()) << "no dead letter mentioning " << p.reason_mentions;
    if (it != letters.end()) {
      EXPECT_EQ(it->value("source", nlohmann::json::object()).value("topic", ""), config_.kafka.requests_topic);
    }
  }
  EXPECT_EQ(workers_.front()->stats().rejected.load(), poison.size());
}

}  // namespace
}  // namespace cascade::testing
