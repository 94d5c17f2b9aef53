// The fault matrix: 2,000 requests over three providers whose upstreams inject
// every fault Cascade must survive. Every request gets exactly one terminal
// event, every final is complete and uncorrupted and comes from a call that
// was let finish, nothing crashes, memory does not grow with the requests.
// Prints fault x outcome counts.
#include <malloc.h>

#include <cstdio>
#include <fstream>
#include <set>
#include <unordered_map>

#include "integration/pipeline_fixture.h"

namespace cascade::testing {
namespace {

std::string question(int i) { return "What is " + std::to_string(i) + " plus 1?"; }

struct MemorySample {
  std::size_t heap_bytes = 0;    // malloc'd and in use (all threads, all libraries)
  std::size_t rss_bytes = 0;
  std::uint64_t broker_bytes = 0;  // payload bytes produced in the round, roughly
  std::uint64_t state_bytes = 0;   // entries in the worker's state store (completed answers, cache)
};

MemorySample sample_memory(std::uint64_t broker_bytes, const StateStats& state) {
  MemorySample m;
  const struct mallinfo2 info = mallinfo2();
  m.heap_bytes = info.uordblks + info.hblkhd;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("VmRSS:")) m.rss_bytes = std::stoull(line.substr(6)) * 1024;
  }
  m.broker_bytes = broker_bytes;
  m.state_bytes = state.cache_bytes + state.completed_bytes;
  return m;
}

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
  for (auto& [provider, faults] : provider_faults) faults.log_faults = true;
  start_pipeline();

  // In rounds, so memory can be sampled between them; the client hands over
  // each round's replies (checked, then dropped) to hold nothing across rounds.
  constexpr int kRounds = 4;
  constexpr int kPerRound = kRequests / kRounds;
  std::map<std::string, int> outcomes;                   // "final via groq", "error provider_error", ...
  std::unordered_map<std::string, std::string> outcome_of;  // prompt text -> outcome
  std::unordered_map<std::string, std::string> provider_of;  // prompt text -> provider of a final
  std::vector<MemorySample> memory;
  std::size_t answered_total = 0;
  for (int round = 0; round < kRounds; ++round) {
    std::uint64_t bytes = 0;  // what went through the broker this round, roughly
    for (int i = round * kPerRound; i < (round + 1) * kPerRound; ++i) {
      const PromptEvent event = prompt(static_cast<std::size_t>(i), question(i));
      bytes += to_json(event).dump().size();
      ASSERT_TRUE(client_->send(event));
      if (i % 128 == 0) client_->poll(0);
    }
    ASSERT_TRUE(client_->flush(30000));
    ASSERT_TRUE(client_->wait_all(std::chrono::seconds(240))) << client_->outstanding() << " requests lost";
    client_->poll(300);
    auto answered = client_->take_answered();
    answered_total += answered.size();
    for (const auto& [id, r] : answered) {
      EXPECT_EQ(r.terminal_count, 1u) << id;
      EXPECT_TRUE(r.seq_in_order) << id;
      for (const auto& c : r.chunks) bytes += c.body.dump().size();
      const auto& body = r.terminal->body;
      bytes += body.dump().size();
      const std::string text = question(std::stoi(id.substr(id.rfind('-') + 1)));  // ids are it-<run>-<i>
      if (r.terminal->type == "final") {
        outcome_of[text] = "final via " + body.value("provider", "?");
        provider_of[text] = body.value("provider", "?");
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
        outcome_of[text] = "error " + body["error"].value("code", "?");
      }
      outcomes[outcome_of[text]]++;
    }
    memory.push_back(sample_memory(bytes, state_->store().stats()));
  }
  client_->poll(500);
  EXPECT_EQ(client_->late_events(), 0u) << "events after a request's terminal: a duplicate answer";
  EXPECT_EQ(answered_total, static_cast<std::size_t>(kRequests));
  const auto& s = workers_.front()->stats();
  EXPECT_EQ(s.in_flight.load(), 0) << "the worker still holds requests";

  // Every call the upstreams saw, per request, in chain order (groq, then
  // mistral, then openai; arrival order within one).
  std::unordered_map<std::string, std::vector<std::pair<std::string, std::string>>> calls_of;
  std::uint64_t logged_calls = 0;
  for (const char* provider : {"groq", "mistral", "openai"}) {
    for (const auto& entry : faulty_upstreams_.at(provider)->fault_log()) {
      calls_of[entry.last_user_text].emplace_back(provider, entry.fault);
      logged_calls++;
    }
  }
  EXPECT_EQ(logged_calls, s.provider_calls.load()) << "every call the worker made reached an upstream";

  // The matrix: for each fault a request met, what became of the request
  // (a request that met a fault twice counts once in its row).
  std::map<std::string, std::map<std::string, int>> matrix;
  std::set<std::string> columns;
  for (const auto& [text, outcome] : outcome_of) {
    std::set<std::string> met;
    for (const auto& [provider, fault] : calls_of[text])
      if (fault != "none") met.insert(provider + " " + fault);
    if (met.empty()) met.insert("(no fault)");
    for (const auto& row : met) matrix[row][outcome]++;
    columns.insert(outcome);
    // A final comes from the request's last call, and that call was let finish.
    if (auto final_provider = provider_of.find(text); final_provider != provider_of.end()) {
      const auto& calls = calls_of[text];
      ASSERT_FALSE(calls.empty()) << text;
      EXPECT_EQ(calls.back().first, final_provider->second) << text;
      EXPECT_TRUE(calls.back().second == "none" || calls.back().second.starts_with("slow") ||
                  calls.back().second.starts_with("huge_chunk"))
          << text << " answered from a call given " << calls.back().second;
    }
  }
  std::printf("\nfault matrix (%d requests): rows = fault met on some call, columns = outcome\n", kRequests);
  std::printf("  %-30s", "");
  for (const auto& c : columns) std::printf(" %20s", c.c_str());
  std::printf("\n");
  for (const auto& [row, counts] : matrix) {
    std::printf("  %-30s", row.c_str());
    for (const auto& c : columns) {
      auto it = counts.find(c);
      std::printf(" %20d", it == counts.end() ? 0 : it->second);
    }
    std::printf("\n");
  }
  std::printf("  injected per upstream:\n");
  for (const auto& [provider, server] : faulty_upstreams_) {
    std::printf("    %-8s", provider.c_str());
    for (const auto& [fault, n] : server->fault_counts()) std::printf("  %s=%llu", fault.c_str(), static_cast<unsigned long long>(n));
    std::printf("\n");
  }
  std::printf("  outcomes:");
  for (const auto& [outcome, n] : outcomes) std::printf("  %s=%d", outcome.c_str(), n);
  std::printf("\n  worker: provider_calls=%llu retries=%llu fallbacks=%llu breaker_rejections=%llu timeouts=%llu\n",
              static_cast<unsigned long long>(s.provider_calls.load()), static_cast<unsigned long long>(s.retries.load()),
              static_cast<unsigned long long>(s.fallbacks.load()),
              static_cast<unsigned long long>(s.breaker_rejections.load()),
              static_cast<unsigned long long>(s.timeouts.load()));
  std::printf("  memory after each round of %d: ", kPerRound);
  for (const auto& m : memory)
    std::printf(" [heap %.1f MiB, rss %.1f MiB, broker +%.1f MiB, state %.1f MiB]", m.heap_bytes / 1048576.0,
                m.rss_bytes / 1048576.0, m.broker_bytes / 1048576.0, m.state_bytes / 1048576.0);
  std::printf("\n");

  // Memory does not grow with the requests: after the first round has warmed
  // up pools, caches and connections, what the process holds grows by no
  // more than what it is meant to keep: the in-process broker keeps every
  // record (requests, replies, ledger, and the state changelog, about what the
  // store wrote), RocksDB keeps the store's new entries in its memtable (and
  // their outbox records) until a flush, plus a margin: RocksDB's memtable
  // grows in arena blocks of 8 MiB, so the heap moves in steps.
  const double later_broker = memory[2].broker_bytes + memory[3].broker_bytes;
  const double later_state = static_cast<double>(memory[3].state_bytes) - static_cast<double>(memory[1].state_bytes);
  const double heap_growth = static_cast<double>(memory[3].heap_bytes) - static_cast<double>(memory[1].heap_bytes);
  EXPECT_LT(heap_growth, 2.0 * later_broker + 4.0 * later_state + 16.0 * 1048576)
      << "heap grew " << heap_growth / 1048576 << " MiB over two rounds that moved " << later_broker / 1048576
      << " MiB through the broker and stored " << later_state / 1048576 << " MiB";

  // Retries, fallbacks, timeouts and breaker states are visible to Prometheus.
  const std::string exposition = worker_metrics_.serialize();
  for (const char* line : {"cascade_provider_retries_total{model=\"llama-3.1-8b-instant\",provider=\"groq\"}",
                           "cascade_provider_fallbacks_total{", "cascade_provider_stream_timeouts_total{",
                           "cascade_provider_breaker_state{model=\"mistral-small\",provider=\"mistral\"}",
                           "cascade_provider_attempts_total{model=\"gpt-5-nano\",outcome=\"failure\",provider=\"openai\"}",
                           "cascade_worker_requests_total{outcome=\"final\"}"}) {
    EXPECT_NE(exposition.find(line), std::string::npos) << line;
  }

  EXPECT_GT(s.retries.load(), 0u);
  EXPECT_GT(s.fallbacks.load(), 0u);
  EXPECT_GT(s.timeouts.load(), 0u);
  // Faults before the first token are absorbed by retries and fallbacks; the
  // errors are streams that broke after their answer began streaming.
  int finals = 0;
  for (const auto& [outcome, n] : outcomes)
    if (outcome.starts_with("final")) finals += n;
  EXPECT_GT(finals, kRequests * 85 / 100);
  // The ledger saw one cost event per answered request (and one per failed
  // request that had paid for tokens).
  ASSERT_TRUE(wait_ledger(static_cast<std::uint64_t>(finals), std::chrono::seconds(30)));
}

}  // namespace
}  // namespace cascade::testing
