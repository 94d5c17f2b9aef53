// The fault matrix: 2,000 requests over three providers whose upstreams inject
// every fault Cascade must survive. Every request gets exactly one terminal
// event, every final is complete and uncorrupted, nothing crashes.
#include <cstdio>

#include "integration/pipeline_fixture.h"

namespace cascade::testing {
namespace {

FaultInjectionOptions plan(std::uint64_t seed, std::vector<FaultPlanEntry> faults) {
  FaultInjectionOptions o;
  o.plan = std::move(faults);
  o.seed = seed;
  return o;
}

TEST_F(PipelineTest, FaultMatrixEveryRequestGetsExactlyOneTerminalEventAndNoCorruptAnswer) {
  constexpr int kRequests = 2000;
  // Only three providers are enabled: the small tier's cheapest models live on
  // groq (llama-3.1-8b-instant), mistral (mistral-small) and openai (gpt-5-nano).
  for (const char* off : {"ANTHROPIC", "GEMINI", "DEEPSEEK"}) {
    env_overrides[std::string("CASCADE_PROVIDERS_") + off + "_API_KEY_ENV"] = "CASCADE_TEST_NO_SUCH_KEY";
  }
  // Generous for healthy streams on a loaded 2-core machine; the hang faults
  // last until the client leaves, so they are caught all the same.
  env_overrides["CASCADE_PROVIDERS_GROQ_FIRST_TOKEN_TIMEOUT_MS"] = "2000";
  env_overrides["CASCADE_PROVIDERS_MISTRAL_FIRST_TOKEN_TIMEOUT_MS"] = "2000";
  env_overrides["CASCADE_PROVIDERS_OPENAI_FIRST_TOKEN_TIMEOUT_MS"] = "2000";
  env_overrides["CASCADE_PROVIDERS_GROQ_IDLE_TIMEOUT_MS"] = "1500";
  env_overrides["CASCADE_PROVIDERS_MISTRAL_IDLE_TIMEOUT_MS"] = "1500";
  env_overrides["CASCADE_PROVIDERS_OPENAI_IDLE_TIMEOUT_MS"] = "1500";
  env_overrides["CASCADE_RESILIENCE_RETRY_BACKOFF_BASE_MS"] = "10";
  env_overrides["CASCADE_RESILIENCE_RETRY_BACKOFF_CAP_MS"] = "100";
  // The breakers open only where failures clearly dominate (70% of 50 calls
  // in a row): here a stretch of groq's or mistral's seeded fault sequence,
  // never openai, the last resort, which fails only mid-stream.
  env_overrides["CASCADE_RESILIENCE_BREAKER_WINDOW"] = "50";
  env_overrides["CASCADE_RESILIENCE_BREAKER_MIN_CALLS"] = "20";
  env_overrides["CASCADE_RESILIENCE_BREAKER_FAILURE_RATE"] = "0.7";
  env_overrides["CASCADE_RESILIENCE_BREAKER_OPEN_MS"] = "300";
  env_overrides["CASCADE_ROUTER_MAX_FALLBACKS"] = "2";
  env_overrides["CASCADE_ROUTER_FALLBACKS_SMALL"] = "mistral-small,gpt-5-nano";
  // One retry per model, and fault rates that make the chain groq -> mistral
  // -> openai carry real traffic on every hop: ~45% of groq calls and ~50% of
  // mistral calls fail before their first token; openai, the last resort,
  // only fails mid-stream.
  env_overrides["CASCADE_RESILIENCE_RETRY_MAX_RETRIES"] = "1";
  using F = UpstreamFault;
  provider_faults["groq"] = plan(11, {{F::rate_limited(0), 20},
                                      {F::http_status(500), 15},
                                      {F::http_status(503, 0), 10},
                                      {F::cut_mid_stream(), 4},
                                      {F{}, 51}});
  provider_faults["mistral"] = plan(12, {{F::http_status(502), 25},
                                         {F::http_status(503), 15},
                                         {F::hang_before_headers(), 10},
                                         {F::hang_mid_stream(), 3},
                                         {F::reset_mid_stream(), 3},
                                         {F{}, 44}});
  provider_faults["openai"] = plan(13, {{F::malformed_sse(), 3},
                                        {F::huge_chunk(256 * 1024), 2},
                                        {F::slow(5), 5},
                                        {F::cut_mid_stream(), 3},
                                        {F{}, 87}});
  start_pipeline();

  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(client_->send(prompt(static_cast<std::size_t>(i), "What is " + std::to_string(i) + " plus 1?")));
    if (i % 256 == 0) client_->poll(0);
  }
  ASSERT_TRUE(client_->flush(30000));
  ASSERT_TRUE(client_->wait_all(std::chrono::seconds(240))) << client_->outstanding() << " requests lost";
  client_->poll(500);

  std::map<std::string, int> outcomes;  // "final groq", "error provider_error", ...
  for (const auto& [id, r] : client_->replies()) {
    ASSERT_TRUE(r.terminal) << id;
    EXPECT_EQ(r.terminal_count, 1u) << id;
    EXPECT_TRUE(r.seq_in_order) << id;
    const auto& body = r.terminal->body;
    if (r.terminal->type == "final") {
      outcomes["final via " + body.value("provider", "?")]++;
      std::string streamed;
      for (const auto& c : r.chunks) streamed += c.body.value("delta", "");
      // Complete and from one attempt only: what was streamed is the answer,
      // and it is the routed model's whole answer.
      EXPECT_EQ(streamed, body.value("content", "")) << id;
      const ModelInfo* model = catalog_->find(body.value("model", ""));
      ASSERT_NE(model, nullptr);
      EXPECT_EQ(body.value("content", "").rfind("[simulated " + model->upstream_model + "]", 0), 0u) << id;
      EXPECT_EQ(body.value("finish_reason", ""), "stop") << id;
    } else {
      ASSERT_EQ(r.terminal->type, "error");
      outcomes["error " + body["error"].value("code", "?")]++;
    }
  }

  // The matrix: what each upstream injected, and what the requests got.
  std::printf("\nfault matrix (%d requests)\n", kRequests);
  for (const auto& [provider, server] : faulty_upstreams_) {
    std::printf("  %-8s injected:", provider.c_str());
    for (const auto& [fault, n] : server->fault_counts()) std::printf("  %s=%llu", fault.c_str(), static_cast<unsigned long long>(n));
    std::printf("\n");
  }
  std::printf("  outcomes:");
  for (const auto& [outcome, n] : outcomes) std::printf("  %s=%d", outcome.c_str(), n);
  const auto& s = workers_.front()->stats();
  std::printf("\n  worker: provider_calls=%llu retries=%llu fallbacks=%llu breaker_rejections=%llu timeouts=%llu\n",
              static_cast<unsigned long long>(s.provider_calls.load()), static_cast<unsigned long long>(s.retries.load()),
              static_cast<unsigned long long>(s.fallbacks.load()),
              static_cast<unsigned long long>(s.breaker_rejections.load()),
              static_cast<unsigned long long>(s.timeouts.load()));

  // Retries, fallbacks, timeouts and breaker states are visible to Prometheus.
  const std::string exposition = worker_metrics_.serialize();
  for (const char* line : {"cascade_provider_retries_total{model=\"llama-3.1-8b-instant\",provider=\"groq\"}",
                           "cascade_provider_fallbacks_total{", "cascade_provider_stream_timeouts_total{",
                           "cascade_provider_breaker_state{model=\"mistral-small\",provider=\"mistral\"}",
                           "cascade_provider_attempts_total{model=\"gpt-5-nano\",outcome=\"failure\",provider=\"openai\"}",
                           "cascade_worker_requests_total{outcome=\"final\"}"}) {
    EXPECT_NE(exposition.find(line), std::string::npos) << line;
  }

  EXPECT_EQ(client_->replies().size(), static_cast<std::size_t>(kRequests));
  EXPECT_GT(s.retries.load(), 0u);
  EXPECT_GT(s.fallbacks.load(), 0u);
  EXPECT_GT(s.timeouts.load(), 0u);
  // Faults before the first token are absorbed by retries and fallbacks; only
  // streams that break after their answer began streaming may end in an error.
  int finals = 0;
  for (const auto& [outcome, n] : outcomes)
    if (outcome.rfind("final", 0) == 0) finals += n;
  EXPECT_GT(finals, kRequests * 85 / 100);
  // The ledger saw one cost event per answered request (and one per failed
  // request that had paid for tokens).
  ASSERT_TRUE(wait_ledger(static_cast<std::uint64_t>(finals), std::chrono::seconds(30)));
}

}  // namespace
}  // namespace cascade::testing
