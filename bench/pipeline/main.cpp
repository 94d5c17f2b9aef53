// cascade_bench_pipeline: N prompts through the real pipeline in one process.
// Embedded Kafka broker (librdkafka mock cluster) -> worker event loops (curl
// multi) -> simulated OpenAI-compatible upstream over loopback HTTP/SSE ->
// reply topic -> CascadeClient. Prints throughput, client-observed latency,
// CPU per 1,000 requests and peak RSS. Scenarios add a retry or a fallback to
// every request, or hold thousands of slow streams at once to measure the
// memory per in-flight stream. See bench/README.md.
#include <fcntl.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/pipeline/raw_streams.h"
#include "bench/pipeline/scenario.h"
#include "bench/pipeline/thread_cpu.h"
#include "catalog/catalog.h"
#include "client/cascade_client.h"
#include "consumers/worker/worker.h"
#include "config/config.h"
#include "core/logging.h"
#include "kafka/kafka.h"
#include "router/router.h"
#include "simulator/simulated_upstream.h"
#include "state/state.h"

namespace cascade::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kReplyTopic = "bench.replies";
constexpr const char* kProviders[] = {"openai", "groq", "deepseek", "mistral", "anthropic", "gemini"};
// Sends between two client polls: small enough that replies are read (and
// timestamped) promptly, large enough that the producer batches.
constexpr std::size_t kSendBurst = 64;
// Time for threads a part starts lazily (librdkafka broker threads after the
// first metadata reply) to appear before the part's threads are claimed.
constexpr auto kThreadSettle = std::chrono::milliseconds(300);
constexpr int kMaxWarmupRounds = 5;
// The retry scenario at a window above 1: concurrent requests share the
// upstream's 500/ok alternation, so each attempt is a coin flip and a request
// draws k failures with probability 2^-(k+1); with 30 retries the chance that
// one falls back instead is 2^-31.
constexpr int kRetryScenarioMaxRetries = 30;
// Above the breaker's window: it never has enough outcomes to open, so every
// request really makes its failing attempt.
constexpr int kBreakerNeverOpens = 1'000'000'000;
// How often the slow-streams scenario counts the streams in flight.
constexpr auto kStreamScanInterval = std::chrono::milliseconds(100);

std::atomic<bool> interrupted{false};

struct BenchOptions {
  std::size_t requests = 5000;
  int chunks = 20;
  int worker_threads = 1;
  int max_in_flight = 512;
  int partitions = 32;
  int chunk_delay_ms = 0;
  std::size_t window = 0;  // 0 = worker_threads * max_in_flight
  std::size_t warmup = 200;
  int timeout_s = 300;
  int upstream_threads = 1;
  int fetch_wait_ms = 2;
  int linger_ms = 2;
  int tenants = 8;
  int malloc_arena_max = 0;  // 0 = glibc's default (8 per core)
  std::string shared_dir;
  std::string log_level = "warn";
  bool json = false;
  Scenario scenario = Scenario::baseline;
  int retry_backoff_ms = 0;  // retry scenario: backoff base and cap
};

// The prompt texts requests cycle through: real traffic from ../shared when
// present (short factual questions and human-written instructions), else
// generated ones of both kinds.
struct PromptPool {
  std::vector<std::string> texts;
  std::string source;
};

PromptPool load_prompt_pool(const std::string& shared_dir) {
  PromptPool pool;
  if (!shared_dir.empty()) {
    for (const char* file : {"/data/prompts/NQ-open.dev.jsonl", "/data/prompts/dolly_6400_categories.jsonl"}) {
      std::ifstream in(shared_dir + file);
      std::string line;
      while (std::getline(in, line)) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_object()) continue;
        for (const char* field : {"question", "instruction"}) {
          if (auto it = j.find(field); it != j.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
            pool.texts.push_back(*it);
            break;
          }
        }
      }
    }
  }
  if (!pool.texts.empty()) {
    pool.source = std::to_string(pool.texts.size()) + " real prompts (NQ-open + dolly) from " + shared_dir;
    return pool;
  }
  for (int i = 0; i < 1000; ++i) {
    pool.texts.push_back(i % 3 == 0 ? "What is " + std::to_string(i) + " times 7?"
                                    : "Explain step by step why prompt number " + std::to_string(i) +
                                          " needs a careful answer, then compare two approaches.");
  }
  pool.source = "1000 generated prompts (no shared prompt data found)";
  return pool;
}

// Everything a run needs, torn down in dependency order (workers before the
// store and upstream they use, everything before the broker).
struct Pipeline {
  std::unique_ptr<EmbeddedBroker> broker;
  std::unique_ptr<SimulatedUpstream> upstream;
  // Fallback scenario: the upstream of the routed model's provider, failing
  // every call.
  std::unique_ptr<SimulatedUpstream> failing_upstream;
  // Fallback scenario: the model the router picks and the one it falls back to.
  std::string routed_model, routed_provider, fallback_model, fallback_provider;
  Config config;
  std::unique_ptr<ModelCatalog> catalog;
  std::filesystem::path state_dir;
  std::unique_ptr<CompletedAnswerStore> store;
  std::unique_ptr<CascadeClient> client;
  std::unique_ptr<Worker> worker;
  ThreadAttribution threads;

  ~Pipeline() {
    if (worker) worker->stop(5000);
    worker.reset();
    client.reset();
    store.reset();
    if (upstream) upstream->stop();
    upstream.reset();
    if (failing_upstream) failing_upstream->stop();
    failing_upstream.reset();
    broker.reset();
    if (!state_dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(state_dir, ec);
    }
  }
};

// Starts a part with the calling thread named after it (threads it starts
// inherit the name) and claims the threads that appeared for it.
template <typename Start>
auto start_part(Pipeline& p, const std::string& part, Start&& start) {
  name_this_thread(part);
  auto result = start();
  std::this_thread::sleep_for(kThreadSettle);
  p.threads.claim_new(part);
  name_this_thread("bench-main");
  return result;
}

using EnvOverrides = std::map<std::string, std::string>;

Result<Config> config_from(const EnvOverrides& env) {
  return load_config("", [env](const std::string& name) -> std::optional<std::string> {
    if (auto it = env.find(name); it != env.end()) return it->second;
    return std::nullopt;
  });
}

// "CASCADE_PROVIDERS_GROQ_BASE_URL" for ("groq", "BASE_URL").
std::string provider_env(std::string_view provider, std::string_view key) {
  std::string name = "CASCADE_PROVIDERS_" + std::string(provider) + "_" + std::string(key);
  for (auto& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

// Fallback scenario: finds the model the router picks for the benchmark's
// traffic (every request is pushed into one tier, so there is one) and the
// first alternative it would fall back to on another OpenAI-compatible
// provider, then points the routed provider at the failing upstream and
// configures that alternative as the tier's fallback.
Result<void> route_to_failing_provider(Pipeline& p, EnvOverrides& env) {
  env["CASCADE_ROUTER_BALANCED_SMALL_MAX"] = "1";
  env["CASCADE_ROUTER_BALANCED_MEDIUM_MAX"] = "1";
  auto probe_config = config_from(env);
  if (!probe_config) return std::unexpected(probe_config.error());
  auto probe_catalog = ModelCatalog::load(probe_config->catalog);
  if (!probe_catalog) return std::unexpected(probe_catalog.error());
  // The worker's view: every configured provider is keyless, hence enabled.
  const Router router(probe_config->router, *probe_catalog,
                      [&](std::string_view provider) { return probe_config->providers.contains(std::string(provider)); });
  PromptEvent probe;
  probe.id = "probe";
  probe.tenant = "probe";
  probe.messages = nlohmann::json::array({{{"role", "user"}, {"content", "Who wrote Hamlet?"}}});
  auto route = router.route(probe);
  if (!route) return std::unexpected(route.error());
  // The simulated upstream speaks the OpenAI API only.
  auto openai_compatible = [&](const ModelInfo& model) {
    auto it = probe_config->providers.find(model.provider);
    return it != probe_config->providers.end() && it->second.kind == "openai";
  };
  if (!openai_compatible(*route->model)) {
    return fail(ErrorCode::unavailable, "routed model " + route->model->id + " is not on an OpenAI-compatible provider");
  }
  const ModelInfo* fallback = nullptr;
  for (const ModelInfo* candidate : route->fallbacks) {
    if (candidate->provider != route->model->provider && openai_compatible(*candidate)) {
      fallback = candidate;
      break;
    }
  }
  if (!fallback) return fail(ErrorCode::unavailable, "no fallback for " + route->model->id + " on another provider");
  p.routed_model = route->model->id;
  p.routed_provider = route->model->provider;
  p.fallback_model = fallback->id;
  p.fallback_provider = fallback->provider;
  std::string tier(to_string(route->tier));
  for (auto& c : tier) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  env["CASCADE_ROUTER_FALLBACKS_" + tier] = fallback->id;
  env[provider_env(p.routed_provider, "BASE_URL")] = p.failing_upstream->base_url();
  return {};
}

Result<void> start_pipeline(Pipeline& p, const BenchOptions& o) {
  name_this_thread("bench-main");
  p.threads.claim_new("client (main thread)");

  auto broker = start_part(p, "broker", [] { return EmbeddedBroker::start(); });
  if (!broker) return std::unexpected(broker.error());
  p.broker = std::move(*broker);

  SimulatedUpstreamOptions up;
  up.chunks = o.chunks;
  up.chunk_delay_ms = o.chunk_delay_ms;
  up.threads = o.upstream_threads;
  if (o.scenario == Scenario::retry) {
    // An exact alternation 500, ok, 500, ok: at --window 1 every request's
    // first attempt fails and its retry succeeds. No Retry-After, so the wait
    // is the configured backoff alone.
    up.faults.plan = {{UpstreamFault::http_status(500), 1}, {UpstreamFault{}, 1}};
    up.faults.order = FaultPlanOrder::interleaved;
  }
  p.upstream = std::make_unique<SimulatedUpstream>(up);
  if (auto ok = start_part(p, "upstream", [&] { return p.upstream->start(); }); !ok) return ok;
  if (o.scenario == Scenario::fallback) {
    SimulatedUpstreamOptions failing = up;
    failing.faults.plan = {{UpstreamFault::http_status(500), 1}};
    failing.faults.order = FaultPlanOrder::interleaved;
    p.failing_upstream = std::make_unique<SimulatedUpstream>(failing);
    if (auto ok = start_part(p, "upstream 500", [&] { return p.failing_upstream->start(); }); !ok) return ok;
  }

  // Configured the way an operator would, through CASCADE_* overrides of the
  // built-in defaults; every provider points at the local upstream, keyless.
  EnvOverrides env = {
      {"CASCADE_KAFKA_BOOTSTRAP", p.broker->bootstrap()},
      {"CASCADE_KAFKA_PARTITIONS", std::to_string(o.partitions)},
      {"CASCADE_KAFKA_FETCH_WAIT_MAX_MS", std::to_string(o.fetch_wait_ms)},
      {"CASCADE_KAFKA_LINGER_MS", std::to_string(o.linger_ms)},
      {"CASCADE_WORKER_THREADS", std::to_string(o.worker_threads)},
      {"CASCADE_WORKER_MAX_IN_FLIGHT", std::to_string(o.max_in_flight)},
  };
  for (const char* provider : kProviders) {
    env[provider_env(provider, "BASE_URL")] = p.upstream->base_url();
    env[provider_env(provider, "API_KEY_ENV")] = "";
  }
  switch (o.scenario) {
    case Scenario::baseline:
      break;
    case Scenario::retry:
      env["CASCADE_RESILIENCE_RETRY_BACKOFF_BASE_MS"] = std::to_string(o.retry_backoff_ms);
      env["CASCADE_RESILIENCE_RETRY_BACKOFF_CAP_MS"] = std::to_string(o.retry_backoff_ms);
      env["CASCADE_RESILIENCE_RETRY_MAX_RETRIES"] = std::to_string(kRetryScenarioMaxRetries);
      env["CASCADE_RESILIENCE_BREAKER_MIN_CALLS"] = std::to_string(kBreakerNeverOpens);
      break;
    case Scenario::fallback:
      // A 500 is retriable: without retries the router falls back at once.
      env["CASCADE_RESILIENCE_RETRY_MAX_RETRIES"] = "0";
      env["CASCADE_RESILIENCE_BREAKER_MIN_CALLS"] = std::to_string(kBreakerNeverOpens);
      if (auto ok = route_to_failing_provider(p, env); !ok) return ok;
      break;
    case Scenario::slow_streams:
      // Streams are meant to last long: only the run's own bound ends them.
      for (const char* provider : kProviders) {
        for (const char* key : {"FIRST_TOKEN_TIMEOUT_MS", "IDLE_TIMEOUT_MS", "REQUEST_TIMEOUT_MS"}) {
          env[provider_env(provider, key)] = std::to_string(o.timeout_s * 1000);
        }
      }
      break;
  }
  auto config = config_from(env);
  if (!config) return std::unexpected(config.error());
  p.config = *config;

  if (auto ok = p.broker->create_topics(cascade_topics(p.config.kafka)); !ok) return ok;
  if (auto ok = p.broker->create_topic({kReplyTopic, o.partitions}); !ok) return ok;

  auto catalog = ModelCatalog::load(p.config.catalog);
  if (!catalog) return std::unexpected(catalog.error());
  p.catalog = std::make_unique<ModelCatalog>(std::move(*catalog));

  std::error_code ec;
  auto dir_template = (std::filesystem::temp_directory_path(ec) / "cascade-bench-XXXXXX").string();
  if (!::mkdtemp(dir_template.data())) return fail(ErrorCode::internal, "cannot create a temporary state dir");
  p.state_dir = dir_template;
  auto store = start_part(p, "state store", [&] { return CompletedAnswerStore::open(p.state_dir.string()); });
  if (!store) return std::unexpected(store.error());
  p.store = std::move(*store);

  auto client = start_part(p, "client", [&] {
    return CascadeClient::open(p.config.kafka, p.broker->bootstrap(), kReplyTopic);
  });
  if (!client) return std::unexpected(client.error());
  p.client = std::move(*client);

  WorkerOptions worker_options;
  worker_options.config = p.config;
  worker_options.bootstrap = p.broker->bootstrap();
  worker_options.catalog = p.catalog.get();
  worker_options.completed = p.store.get();
  // No provider key exists for the local upstream; nothing leaks in from the
  // process environment either.
  worker_options.env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  auto worker = start_part(p, "worker", [&] { return Worker::start(std::move(worker_options)); });
  if (!worker) return std::unexpected(worker.error());
  p.worker = std::move(*worker);
  return {};
}

PromptEvent make_prompt(const std::string& id, std::size_t n, const std::string& text, int tenants) {
  PromptEvent e;
  e.id = id;
  e.tenant = "tenant-" + std::to_string(n % static_cast<std::size_t>(tenants));
  e.reply_to = kReplyTopic;
  e.messages = nlohmann::json::array({{{"role", "user"}, {"content", text}}});
  e.metadata = {{"n", n}};
  return e;
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  // Nearest rank: the smallest value with at least p% of the values at or below it.
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size())));
  return values[std::clamp<std::size_t>(rank, 1, values.size()) - 1];
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// Resident set size now (VmRSS), in MiB; 0 when unreadable.
double current_rss_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmRSS:")) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;  // in kB
  }
  return 0;
}

double seconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; }

struct RunFigures {
  std::size_t requests = 0;
  std::size_t answered = 0, finals = 0, errors = 0, unanswered = 0, send_failures = 0;
  std::size_t duplicate_terminals = 0, out_of_order = 0, short_streams = 0;
  double wall_seconds = 0;
  double requests_per_second = 0;
  double ttfc_p50_ms = 0, ttfc_p99_ms = 0, final_p50_ms = 0, final_p99_ms = 0;
  double user_cpu_seconds = 0, sys_cpu_seconds = 0, cpu_seconds_per_1000 = 0;
  // Worker-side view from the cost events (ledger topic): from the worker
  // reading the prompt to the first upstream token / the end of the stream.
  std::size_t cost_events = 0;
  double worker_ttft_p50_ms = 0, worker_ttft_p99_ms = 0, worker_latency_p50_ms = 0, worker_latency_p99_ms = 0;
  double peak_rss_mib = 0;
  double rss_before_mib = 0;
  double client_replies_mib = 0;  // RSS released by dropping the client and its collected replies
  bool timed_out = false;
  int warmup_rounds = 0;
  double warmup_seconds = 0;
  std::vector<CpuShare> cpu_by_thread;
  // Per request, from its cost event: retries and fallbacks after failed
  // attempts (histograms: count -> requests), and the model that answered.
  std::map<int, std::size_t> retries_per_request, fallbacks_per_request;
  std::map<std::string, std::size_t> answered_by_model;
};

// The resilience scenarios' figures beyond the common ones.
struct ResilienceFigures {
  WorkerCounters worker;  // the measured run only
  std::map<std::string, std::uint64_t> upstream_faults, failing_upstream_faults;
  std::string failure;  // why the run is not what the scenario measures; empty = it is
};

// The slow-streams scenario's memory figures (MiB unless named otherwise).
struct StreamMemoryFigures {
  std::size_t target = 0;  // streams meant to be in flight at once
  // Upstream alone, over bare sockets.
  double upstream_idle_mib = 0, upstream_open_mib = 0;
  // Whole pipeline.
  double idle_mib = 0;
  bool reached = false;
  double rss_at_target_mib = 0;
  double reached_after_s = 0;
  std::int64_t worker_in_flight = 0;
  std::size_t client_open_streams = 0, client_events_held = 0;
  std::size_t peak_open_streams = 0;
  // Client footprint per reply event held, from dropping it at the end.
  std::size_t client_events_at_end = 0;
  double client_kib_per_event = 0;
  std::string failure;
};

struct StreamOutcome {
  Clock::time_point first_send;
  Clock::time_point end;
  std::size_t send_failures = 0;
  bool timed_out = false;
};

// Sends `count` requests with ids `prefix`<n> in a steady stream, never more
// than `window` unanswered at the client, and reads replies until all are
// answered or the deadline passes. `after_poll` (if any) runs after every poll.
StreamOutcome stream_requests(CascadeClient& client, const PromptPool& pool, const std::string& prefix,
                              std::size_t first_n, std::size_t count, std::size_t window, int tenants,
                              Clock::time_point deadline, const std::function<void()>& after_poll = {}) {
  StreamOutcome out;
  out.first_send = Clock::now();
  const std::size_t base_outstanding = client.outstanding();
  std::size_t sent = 0;
  auto outstanding = [&] {
    return client.outstanding() > base_outstanding ? client.outstanding() - base_outstanding : 0;
  };
  // A failed send counts as outstanding in the client but is never answered.
  while ((sent < count || outstanding() > out.send_failures) && !interrupted.load()) {
    if (Clock::now() >= deadline) {
      out.timed_out = true;
      break;
    }
    for (std::size_t burst = 0; burst < kSendBurst && sent < count && outstanding() < window; ++burst) {
      const std::size_t n = first_n + sent;
      if (!client.send(make_prompt(prefix + std::to_string(n), n, pool.texts[n % pool.texts.size()], tenants))) {
        out.send_failures++;
      }
      ++sent;
    }
    const bool may_send_more = sent < count && outstanding() < window;
    client.poll(may_send_more ? 0 : 1);
    if (after_poll) after_poll();
  }
  out.end = Clock::now();
  return out;
}

RunFigures summarize(const CascadeClient& client, const std::string& prefix, const BenchOptions& o,
                     const StreamOutcome& stream) {
  RunFigures f;
  f.requests = o.requests;
  f.send_failures = stream.send_failures;
  f.timed_out = stream.timed_out;
  std::vector<double> ttfc, to_final;
  ttfc.reserve(o.requests);
  to_final.reserve(o.requests);
  Clock::time_point last_terminal = stream.first_send;
  for (const auto& [id, reply] : client.replies()) {
    if (!id.starts_with(prefix)) continue;
    if (!reply.terminal) continue;
    f.answered++;
    last_terminal = std::max(last_terminal, *reply.terminal_at);
    if (reply.terminal_count > 1) f.duplicate_terminals++;
    if (!reply.seq_in_order) f.out_of_order++;
    if (reply.terminal->type != "final") {
      f.errors++;
      continue;
    }
    f.finals++;
    if (reply.chunks.size() < static_cast<std::size_t>(std::max(o.chunks, 1))) f.short_streams++;
    if (reply.first_chunk_at) ttfc.push_back(ms(*reply.first_chunk_at - reply.sent_at));
    to_final.push_back(ms(*reply.terminal_at - reply.sent_at));
  }
  f.unanswered = o.requests - f.answered;
  // Throughput over the span the requests were actually being answered; on a
  // timeout that is the whole bounded run.
  const auto span_end = f.unanswered == 0 ? last_terminal : stream.end;
  f.wall_seconds = std::chrono::duration<double>(span_end - stream.first_send).count();
  f.requests_per_second = f.wall_seconds > 0 ? static_cast<double>(f.answered) / f.wall_seconds : 0;
  f.ttfc_p50_ms = percentile(ttfc, 50);
  f.ttfc_p99_ms = percentile(ttfc, 99);
  f.final_p50_ms = percentile(to_final, 50);
  f.final_p99_ms = percentile(to_final, 99);
  return f;
}

// `scenario_lines` (if any) print the scenario's own figures before the CPU table.
void print_report(const BenchOptions& o, const PromptPool& pool, std::size_t window, const RunFigures& f,
                  const WorkerStats& stats, std::uint64_t upstream_requests,
                  const std::function<void()>& scenario_lines = {}) {
  std::printf("cascade pipeline benchmark (one process: embedded broker, worker, simulated upstream, client)\n");
  std::printf("  setup      %zu requests, %d chunks/answer, %d worker thread(s), "
              "max in flight %d/thread, client window %zu, %d partitions, chunk delay %d ms, "
              "fetch.wait.max.ms %d, linger.ms %d, %d upstream thread(s), malloc arenas %s\n",
              o.requests, o.chunks, o.worker_threads, o.max_in_flight, window, o.partitions,
              o.chunk_delay_ms, o.fetch_wait_ms, o.linger_ms, o.upstream_threads,
              o.malloc_arena_max > 0 ? std::to_string(o.malloc_arena_max).c_str() : "glibc default");
  std::printf("  prompts    %s, %d tenants\n", pool.source.c_str(), o.tenants);
  std::printf("  warm-up    %d round(s) of %zu requests in %.2f s (not measured)\n", f.warmup_rounds, o.warmup,
              f.warmup_seconds);
  std::printf("  answered   %zu/%zu (final %zu, error %zu, unanswered %zu%s, send failures %zu, "
              "duplicate terminals %zu, out-of-order %zu, short streams %zu)\n",
              f.answered, f.requests, f.finals, f.errors, f.unanswered,
              f.timed_out ? " after the timeout" : (interrupted.load() ? " (interrupted)" : ""), f.send_failures,
              f.duplicate_terminals, f.out_of_order, f.short_streams);
  std::printf("  throughput %.1f requests/s (%zu answered in %.2f s)\n", f.requests_per_second, f.answered,
              f.wall_seconds);
  std::printf("  first chunk  p50 %8.2f ms   p99 %8.2f ms   (client-observed: send() -> chunk read back)\n",
              f.ttfc_p50_ms, f.ttfc_p99_ms);
  std::printf("  final        p50 %8.2f ms   p99 %8.2f ms   (client-observed: send() -> final read back)\n",
              f.final_p50_ms, f.final_p99_ms);
  std::printf("  worker     first token p50 %8.2f ms   p99 %8.2f ms;  stream done p50 %8.2f ms   p99 %8.2f ms   "
              "(worker-observed from %zu cost events: prompt read by the worker -> first upstream token / "
              "end of upstream stream)\n",
              f.worker_ttft_p50_ms, f.worker_ttft_p99_ms, f.worker_latency_p50_ms, f.worker_latency_p99_ms,
              f.cost_events);
  std::printf("  CPU        %.3f s per 1,000 requests (user %.2f s + sys %.2f s over the measured run; the whole "
              "process, i.e. broker, upstream and client included, not the worker alone)\n",
              f.cpu_seconds_per_1000, f.user_cpu_seconds, f.sys_cpu_seconds);
  std::printf("  peak RSS   %.1f MiB (ru_maxrss of the whole process; %.1f MiB before the measured run; %.1f MiB "
              "released by dropping the client, which keeps every reply event it read; the mock broker keeps "
              "every record in memory too)\n",
              f.peak_rss_mib, f.rss_before_mib, f.client_replies_mib);
  std::printf("  counters   worker (warm-up included): consumed %llu, completed %llu, failed %llu, rejected %llu, replayed %llu, "
              "partition pauses %llu; upstream served %llu\n",
              static_cast<unsigned long long>(stats.consumed.load()),
              static_cast<unsigned long long>(stats.completed.load()),
              static_cast<unsigned long long>(stats.failed.load()),
              static_cast<unsigned long long>(stats.rejected.load()),
              static_cast<unsigned long long>(stats.replayed.load()),
              static_cast<unsigned long long>(stats.pauses.load()),
              static_cast<unsigned long long>(upstream_requests));
  if (scenario_lines) scenario_lines();
  std::printf("  CPU by thread over the measured run (part, thread name, threads: CPU seconds, share of the "
              "process CPU, seconds runnable but waiting for a core):\n");
  const double total = f.user_cpu_seconds + f.sys_cpu_seconds;
  for (const auto& share : f.cpu_by_thread) {
    if (share.cpu_seconds < 0.005 && share.wait_seconds < 0.005) continue;
    std::printf("    %-22s %-16s x%-2d %7.2f s %5.1f%%   waited %6.2f s\n", share.part.c_str(),
                share.thread_name.c_str(), share.threads, share.cpu_seconds,
                total > 0 ? 100.0 * share.cpu_seconds / total : 0.0, share.wait_seconds);
  }
}

// `scenario_fields` (an object, or null for the baseline) are added to the line.
void print_json(const BenchOptions& o, std::size_t window, const RunFigures& f,
                const nlohmann::json& scenario_fields = nullptr) {
  nlohmann::json cpu = nlohmann::json::array();
  for (const auto& share : f.cpu_by_thread) {
    cpu.push_back({{"part", share.part}, {"thread", share.thread_name}, {"threads", share.threads},
                   {"cpu_seconds", share.cpu_seconds}, {"runqueue_wait_seconds", share.wait_seconds}});
  }
  nlohmann::json j = {
      {"requests", f.requests},
      {"warmup", o.warmup},
      {"warmup_rounds", f.warmup_rounds},
      {"warmup_seconds", f.warmup_seconds},
      {"chunks", o.chunks},
      {"worker_threads", o.worker_threads},
      {"max_in_flight", o.max_in_flight},
      {"client_window", window},
      {"partitions", o.partitions},
      {"chunk_delay_ms", o.chunk_delay_ms},
      {"fetch_wait_max_ms", o.fetch_wait_ms},
      {"linger_ms", o.linger_ms},
      {"upstream_threads", o.upstream_threads},
      {"malloc_arena_max", o.malloc_arena_max},
      {"answered", f.answered},
      {"finals", f.finals},
      {"errors", f.errors},
      {"unanswered", f.unanswered},
      {"timed_out", f.timed_out},
      {"send_failures", f.send_failures},
      {"duplicate_terminals", f.duplicate_terminals},
      {"out_of_order", f.out_of_order},
      {"short_streams", f.short_streams},
      {"wall_seconds", f.wall_seconds},
      {"requests_per_second", f.requests_per_second},
      {"first_chunk_p50_ms", f.ttfc_p50_ms},
      {"first_chunk_p99_ms", f.ttfc_p99_ms},
      {"final_p50_ms", f.final_p50_ms},
      {"final_p99_ms", f.final_p99_ms},
      {"cost_events", f.cost_events},
      {"worker_first_token_p50_ms", f.worker_ttft_p50_ms},
      {"worker_first_token_p99_ms", f.worker_ttft_p99_ms},
      {"worker_stream_done_p50_ms", f.worker_latency_p50_ms},
      {"worker_stream_done_p99_ms", f.worker_latency_p99_ms},
      {"user_cpu_seconds", f.user_cpu_seconds},
      {"sys_cpu_seconds", f.sys_cpu_seconds},
      {"cpu_seconds_per_1000_requests", f.cpu_seconds_per_1000},
      {"cpu_scope", "whole process: broker, worker, upstream and client"},
      {"peak_rss_mib", f.peak_rss_mib},
      {"rss_before_run_mib", f.rss_before_mib},
      {"client_replies_mib", f.client_replies_mib},
      {"cpu_by_thread", cpu},
  };
  if (scenario_fields.is_object()) j.update(scenario_fields);
  std::printf("%s\n", j.dump().c_str());
}

// Reads the run's cost events back from the ledger topic (after the measured
// span, so it costs the figures nothing).
void read_worker_timings(const Pipeline& p, const std::string& prefix, RunFigures& f) {
  std::vector<double> ttft, latency;
  auto read = read_topic_to_end(p.config.kafka, p.broker->bootstrap(), p.config.kafka.ledger_topic,
                                [&](const KafkaRecord& record) {
                                  auto cost = parse_cost_event(record.payload());
                                  if (!cost || !cost->id.starts_with(prefix)) return;
                                  ttft.push_back(cost->ttft_ms);
                                  latency.push_back(cost->latency_ms);
                                  const auto outcomes = attempt_outcomes(cost->route_reason);
                                  f.retries_per_request[outcomes.retries]++;
                                  f.fallbacks_per_request[outcomes.fallbacks]++;
                                  f.answered_by_model[cost->model]++;
                                });
  if (!read) {
    std::fprintf(stderr, "cascade_bench_pipeline: cost events not read: %s\n", read.error().message.c_str());
    return;
  }
  f.cost_events = ttft.size();
  f.worker_ttft_p50_ms = percentile(ttft, 50);
  f.worker_ttft_p99_ms = percentile(ttft, 99);
  f.worker_latency_p50_ms = percentile(latency, 50);
  f.worker_latency_p99_ms = percentile(latency, 99);
}

// Why a retry or fallback run did not do what it is meant to measure (every
// request exactly one failed attempt and one retry / one fallback), from the
// worker's counters and its cost events; empty when it did.
std::string check_resilience(const BenchOptions& o, std::size_t window, const Pipeline& p, const RunFigures& f,
                             const ResilienceFigures& r) {
  const std::size_t n = o.requests;
  const WorkerCounters& w = r.worker;
  if (f.unanswered > 0 || f.errors > 0) return "not every request got a final answer";
  if (f.cost_events != n) return std::to_string(f.cost_events) + " cost events for " + std::to_string(n) + " requests";
  if (w.breaker_rejections > 0 || w.timeouts > 0) return "breaker rejections or stream timeouts happened";
  auto count = [](const std::map<std::string, std::uint64_t>& counts, const std::string& label) -> std::uint64_t {
    const auto it = counts.find(label);
    return it == counts.end() ? 0 : it->second;
  };
  if (o.scenario == Scenario::retry) {
    if (w.fallbacks > 0) return "fallbacks happened";
    if (w.provider_calls != n + w.retries) return "provider calls are not requests + retries";
    if (window == 1) {
      if (w.retries != n || f.retries_per_request != std::map<int, std::size_t>{{1, n}}) {
        return "not exactly one retry per request";
      }
      if (count(r.upstream_faults, "status_500") != n || count(r.upstream_faults, "none") != n) {
        return "the upstream did not fail exactly every first attempt";
      }
    } else if (w.retries + 1 < n || w.retries > n + 1) {
      // Concurrent requests share the alternation: one retry per request on
      // average, give or take the one failure at either end of the run.
      return "not one retry per request on average";
    }
    return {};
  }
  if (w.retries > 0) return "retries happened";
  if (w.fallbacks != n || w.provider_calls != 2 * n || f.fallbacks_per_request != std::map<int, std::size_t>{{1, n}}) {
    return "not exactly one fallback per request";
  }
  if (f.answered_by_model != std::map<std::string, std::size_t>{{p.fallback_model, n}}) {
    return "not every request was answered by the fallback model";
  }
  if (count(r.failing_upstream_faults, "status_500") != n) return "the failing upstream did not see every request";
  return {};
}

void print_resilience(const BenchOptions& o, std::size_t window, const Pipeline& p, const RunFigures& f,
                      const ResilienceFigures& r) {
  const auto& retry = p.config.resilience.retry;
  const auto& breaker = p.config.resilience.breaker;
  if (o.scenario == Scenario::retry) {
    std::printf("  scenario   retry: the upstream answers attempts alternately with HTTP 500 (no Retry-After) and "
                "normally (interleaved fault plan), %s; backoff base %d ms, cap %d ms (full jitter: wait uniform in "
                "[0, %d] ms); max retries %d; breaker min calls %d (never opens)\n",
                window == 1 ? "so every request fails once and its retry on the same model succeeds"
                            : "so concurrent requests share the alternation: one retry per request on average",
                retry.backoff_base_ms, retry.backoff_cap_ms,
                std::min(retry.backoff_base_ms, retry.backoff_cap_ms), retry.max_retries, breaker.min_calls);
  } else {
    std::printf("  scenario   fallback: routed model %s (provider %s), whose upstream answers every call with HTTP "
                "500; max retries %d, so the worker falls back at once to %s (provider %s, the tier's "
                "router.fallbacks) on the healthy upstream; all traffic in one tier (router.balanced small_max = "
                "medium_max = 1); breaker min calls %d (never opens)\n",
                p.routed_model.c_str(), p.routed_provider.c_str(), retry.max_retries, p.fallback_model.c_str(),
                p.fallback_provider.c_str(), breaker.min_calls);
  }
  const WorkerCounters& w = r.worker;
  const double n = static_cast<double>(std::max<std::size_t>(o.requests, 1));
  std::printf("  measured   worker over the measured run: provider calls %llu (%.3f per request), retries %llu "
              "(%.3f per request), fallbacks %llu (%.3f per request), breaker rejections %llu, timeouts %llu, "
              "failed %llu, partition pauses %llu\n",
              static_cast<unsigned long long>(w.provider_calls), static_cast<double>(w.provider_calls) / n,
              static_cast<unsigned long long>(w.retries), static_cast<double>(w.retries) / n,
              static_cast<unsigned long long>(w.fallbacks), static_cast<double>(w.fallbacks) / n,
              static_cast<unsigned long long>(w.breaker_rejections), static_cast<unsigned long long>(w.timeouts),
              static_cast<unsigned long long>(w.failed), static_cast<unsigned long long>(w.pauses));
  std::string models;
  for (const auto& [model, count] : f.answered_by_model) {
    models += (models.empty() ? "" : ", ") + model + " " + std::to_string(count);
  }
  std::printf("  per request  from %zu cost events (requests with k retries / k fallbacks, k: requests): retries "
              "{%s}, fallbacks {%s}; answered by %s\n",
              f.cost_events, format_histogram(f.retries_per_request).c_str(),
              format_histogram(f.fallbacks_per_request).c_str(), models.empty() ? "none" : models.c_str());
  std::printf("  upstream   faults given over the measured run: %s", format_counts(r.upstream_faults).c_str());
  if (p.failing_upstream) std::printf("; failing upstream: %s", format_counts(r.failing_upstream_faults).c_str());
  std::printf("\n");
  if (r.failure.empty()) {
    if (o.scenario == Scenario::fallback) {
      std::printf("  verified   yes: every request made the failed attempt and was answered by its fallback\n");
    } else if (window == 1) {
      std::printf("  verified   yes: every request made the failed attempt and was answered by its retry\n");
    } else {
      std::printf("  verified   yes: one retry per request on average and no fallback: every request was "
                  "answered on its routed model\n");
    }
  } else {
    std::printf("  verified   NO: %s; the figures above do not measure the scenario\n", r.failure.c_str());
  }
}

nlohmann::json resilience_json(const Pipeline& p, const RunFigures& f, const ResilienceFigures& r) {
  auto histogram = [](const std::map<int, std::size_t>& h) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [k, count] : h) out[std::to_string(k)] = count;
    return out;
  };
  const auto& retry = p.config.resilience.retry;
  return {
      {"measured_provider_calls", r.worker.provider_calls},
      {"measured_retries", r.worker.retries},
      {"measured_fallbacks", r.worker.fallbacks},
      {"measured_breaker_rejections", r.worker.breaker_rejections},
      {"measured_timeouts", r.worker.timeouts},
      {"measured_pauses", r.worker.pauses},
      {"retries_per_request", histogram(f.retries_per_request)},
      {"fallbacks_per_request", histogram(f.fallbacks_per_request)},
      {"answered_by_model", f.answered_by_model},
      {"upstream_faults", r.upstream_faults},
      {"failing_upstream_faults", r.failing_upstream_faults},
      {"retry_backoff_base_ms", retry.backoff_base_ms},
      {"retry_backoff_cap_ms", retry.backoff_cap_ms},
      {"max_retries", retry.max_retries},
      {"routed_model", p.routed_model},
      {"fallback_model", p.fallback_model},
      {"verified", r.failure.empty()},
      {"verification_failure", r.failure},
  };
}

// Slow-streams scenario, the upstream's share: its memory per open stream, on
// its own. A child process forked before the pipeline starts any thread runs
// a fresh upstream with the run's options and opens as many streams over
// bare sockets as the run will hold, with the prompts (and routed models) the
// run will send. In a separate process, pages the upstream frees afterwards
// cannot be reused by the pipeline and hide part of its growth.
std::string upstream_share_in_child(const BenchOptions& o, const std::vector<std::string>& bodies) {
  SimulatedUpstreamOptions up;
  up.chunks = o.chunks;
  up.chunk_delay_ms = o.chunk_delay_ms;
  up.threads = o.upstream_threads;
  SimulatedUpstream upstream(up);
  if (auto ok = upstream.start(); !ok) return "error " + ok.error().message;
  ::malloc_trim(0);
  const double idle = current_rss_mib();
  RawUpstreamStreams raw;
  if (auto ok = raw.open(upstream.port(), bodies, [&] { return upstream.requests_served(); }, std::chrono::seconds(60));
      !ok) {
    return "error " + ok.error().message;
  }
  // Each stream's first write (headers, role chunk, first piece) follows its
  // request at once.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const double open = current_rss_mib();
  return "ok " + std::to_string(idle) + " " + std::to_string(open);
}

Result<void> measure_upstream_share(const BenchOptions& o, const PromptPool& pool, std::size_t first_n,
                                    StreamMemoryFigures& m) {
  auto config = load_config("", [](const std::string&) -> std::optional<std::string> { return std::nullopt; });
  if (!config) return std::unexpected(config.error());
  auto catalog = ModelCatalog::load(config->catalog);
  if (!catalog) return std::unexpected(catalog.error());
  const Router router(config->router, *catalog, [](std::string_view) { return true; });
  std::vector<std::string> bodies;
  bodies.reserve(m.target);
  for (std::size_t i = 0; i < m.target; ++i) {
    const std::size_t n = first_n + i;
    const PromptEvent prompt = make_prompt("raw-" + std::to_string(n), n, pool.texts[n % pool.texts.size()], o.tenants);
    auto route = router.route(prompt);
    if (!route) return std::unexpected(route.error());
    const nlohmann::json body = {{"model", route->model->upstream_model},
                                 {"messages", prompt.messages},
                                 {"stream", true},
                                 {"stream_options", {{"include_usage", true}}},
                                 {"max_tokens", config->limits.default_max_tokens}};
    bodies.push_back(body.dump());
  }
  int result_pipe[2];
  if (::pipe2(result_pipe, O_CLOEXEC) != 0) return fail(ErrorCode::internal, "pipe failed");
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t child = ::fork();
  if (child < 0) return fail(ErrorCode::internal, "fork failed");
  if (child == 0) {
    ::close(result_pipe[0]);
    const std::string result = upstream_share_in_child(o, bodies);
    [[maybe_unused]] auto written = ::write(result_pipe[1], result.data(), result.size());
    ::_exit(0);  // no destructors: the upstream's threads are still running
  }
  ::close(result_pipe[1]);
  std::string result;
  char buffer[256];
  for (ssize_t n; (n = ::read(result_pipe[0], buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    result.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(result_pipe[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!result.starts_with("ok ")) {
    return fail(ErrorCode::internal, result.empty() ? "the measuring process failed" : result.substr(6));
  }
  std::istringstream figures(result.substr(3));
  figures >> m.upstream_idle_mib >> m.upstream_open_mib;
  return {};
}

double kib_per_stream(double mib, std::size_t streams) {
  return streams > 0 ? mib * 1024.0 / static_cast<double>(streams) : 0;
}

void print_stream_memory(const BenchOptions& o, const WorkerCounters& w, const StreamMemoryFigures& m) {
  std::printf("  scenario   slow-streams: %zu streams meant to be in flight at once; the upstream sends a chunk "
              "every %d ms (%d chunks: a stream lasts ~%.1f s); stream timeouts (first token, idle, request) raised "
              "to the run's bound of %d s\n",
              m.target, o.chunk_delay_ms, o.chunks, static_cast<double>(o.chunk_delay_ms) * (o.chunks - 1) / 1000.0,
              o.timeout_s);
  if (m.reached) {
    std::printf("  streams    all %zu in flight %.2f s after the first send (client: %zu streams open, i.e. first "
                "chunk read and no final yet; worker in flight %lld); worker timeouts %llu, partition pauses %llu\n",
                m.target, m.reached_after_s, m.client_open_streams, static_cast<long long>(m.worker_in_flight),
                static_cast<unsigned long long>(w.timeouts), static_cast<unsigned long long>(w.pauses));
    const double whole = m.rss_at_target_mib - m.idle_mib;
    const double upstream = m.upstream_open_mib - m.upstream_idle_mib;
    const double client_kib = m.client_kib_per_event * static_cast<double>(m.client_events_held) /
                              static_cast<double>(std::max<std::size_t>(m.target, 1));
    std::printf("  memory     whole process: RSS %.1f MiB idle (after malloc_trim) -> %.1f MiB with the streams "
                "in flight: %.1f KiB per stream\n",
                m.idle_mib, m.rss_at_target_mib, kib_per_stream(whole, m.target));
    std::printf("             upstream alone (as many streams over bare sockets, in a separate process before the "
                "run): RSS %.1f -> %.1f MiB: %.1f KiB per stream\n",
                m.upstream_idle_mib, m.upstream_open_mib, kib_per_stream(upstream, m.target));
    std::printf("             client, estimated (%zu reply events held then x %.2f KiB, its footprint per event "
                "when it was dropped at the end): %.1f KiB per stream\n",
                m.client_events_held, m.client_kib_per_event, client_kib);
    std::printf("             the rest (worker: request state, curl transfer and connection, librdkafka queues; "
                "the mock broker's copies of the prompts and chunk events): %.1f KiB per stream; kernel socket "
                "buffers are not in RSS\n",
                kib_per_stream(whole, m.target) - kib_per_stream(upstream, m.target) - client_kib);
  } else {
    std::printf("  streams    never all %zu in flight: at most %zu open at once (raise --chunk-delay-ms so a stream "
                "outlasts the ramp-up)\n",
                m.target, m.peak_open_streams);
  }
  if (m.failure.empty()) {
    std::printf("  verified   yes: all streams in flight at once, none cut by a timeout, every request answered\n");
  } else {
    std::printf("  verified   NO: %s\n", m.failure.c_str());
  }
}

nlohmann::json stream_memory_json(const StreamMemoryFigures& m) {
  const double client_kib = m.client_kib_per_event * static_cast<double>(m.client_events_held) /
                            static_cast<double>(std::max<std::size_t>(m.target, 1));
  const double whole_kib = kib_per_stream(m.rss_at_target_mib - m.idle_mib, m.target);
  const double upstream_kib = kib_per_stream(m.upstream_open_mib - m.upstream_idle_mib, m.target);
  return {
      {"streams_target", m.target},
      {"streams_reached", m.reached},
      {"streams_reached_after_s", m.reached_after_s},
      {"peak_open_streams", m.peak_open_streams},
      {"worker_in_flight_at_sample", m.worker_in_flight},
      {"rss_idle_mib", m.idle_mib},
      {"rss_streams_in_flight_mib", m.rss_at_target_mib},
      {"kib_per_stream_whole_process", whole_kib},
      {"upstream_rss_idle_mib", m.upstream_idle_mib},
      {"upstream_rss_streams_open_mib", m.upstream_open_mib},
      {"kib_per_stream_upstream", upstream_kib},
      {"client_events_held_at_sample", m.client_events_held},
      {"client_kib_per_event", m.client_kib_per_event},
      {"kib_per_stream_client_estimate", client_kib},
      {"kib_per_stream_rest", whole_kib - upstream_kib - client_kib},
      {"verified", m.failure.empty()},
      {"verification_failure", m.failure},
  };
}

int run(const BenchOptions& o) {
  init_logging(o.log_level);
  const PromptPool pool = load_prompt_pool(o.shared_dir);
  const std::size_t window =
      o.window > 0 ? o.window : static_cast<std::size_t>(o.worker_threads) * static_cast<std::size_t>(o.max_in_flight);

  // Slow streams: RSS while `target` streams are in flight, against RSS idle.
  StreamMemoryFigures memory;
  if (o.scenario == Scenario::slow_streams) {
    memory.target = std::min(window, o.requests);
    // Before any thread exists, so the measuring process can be forked; the
    // prompts of the measured run after one warm-up round.
    if (auto ok = measure_upstream_share(o, pool, o.warmup, memory); !ok) {
      std::fprintf(stderr, "cascade_bench_pipeline: upstream share not measured: %s\n", ok.error().message.c_str());
      return 1;
    }
  }

  Pipeline p;
  if (auto ok = start_pipeline(p, o); !ok) {
    std::fprintf(stderr, "cascade_bench_pipeline: cannot start the pipeline: %s\n", ok.error().message.c_str());
    return 1;
  }
  CascadeClient& client = *p.client;
  const auto run_deadline = Clock::now() + std::chrono::seconds(o.timeout_s);

  // Warm-up (not measured): group join and partition assignment, connections
  // to the upstream, first-use allocations. A round during which the group
  // rebalanced (requests redelivered: answered twice or from the completed
  // store) is followed by another, so the measured run starts on a settled group.
  const auto warmup_start = Clock::now();
  int warmup_rounds = 0;
  for (std::size_t first = 0; o.warmup > 0 && warmup_rounds < kMaxWarmupRounds; first += o.warmup) {
    ++warmup_rounds;
    const auto replayed_before = p.worker->stats().replayed.load();
    const auto prefix = "warm" + std::to_string(warmup_rounds) + "-";
    auto warm = stream_requests(client, pool, prefix, first, o.warmup, window, o.tenants, run_deadline);
    if (warm.timed_out || client.outstanding() > warm.send_failures || interrupted.load()) {
      std::fprintf(stderr, "cascade_bench_pipeline: warm-up not answered (%zu of %zu outstanding)\n",
                   client.outstanding(), o.warmup);
      return 1;
    }
    bool redelivered = p.worker->stats().replayed.load() != replayed_before;
    for (const auto& [id, reply] : client.replies()) {
      if (id.starts_with(prefix) && reply.terminal_count > 1) redelivered = true;
    }
    if (!redelivered) break;
  }
  const double warmup_seconds = std::chrono::duration<double>(Clock::now() - warmup_start).count();
  p.threads.claim_new("unattributed");  // threads started lazily during warm-up
  const std::size_t first_n = static_cast<std::size_t>(warmup_rounds) * o.warmup;

  Clock::time_point measured_start;
  std::function<void()> watch_streams;
  if (o.scenario == Scenario::slow_streams) {
    watch_streams = [&, last_scan = Clock::time_point{}]() mutable {
      const auto now = Clock::now();
      if (memory.reached || now - last_scan < kStreamScanInterval) return;
      last_scan = now;
      std::size_t open = 0, events = 0;
      for (const auto& [id, reply] : client.replies()) {
        if (!id.starts_with("req-")) continue;
        events += reply.chunks.size() + (reply.terminal ? 1 : 0);
        if (reply.first_chunk_at && !reply.terminal) ++open;
      }
      memory.peak_open_streams = std::max(memory.peak_open_streams, open);
      if (open < memory.target) return;
      memory.reached = true;
      memory.rss_at_target_mib = current_rss_mib();
      memory.reached_after_s = std::chrono::duration<double>(now - measured_start).count();
      memory.worker_in_flight = p.worker->stats().in_flight.load();
      memory.client_open_streams = open;
      memory.client_events_held = events;
    };
    ::malloc_trim(0);  // the idle figure must not hold freed pages the run would reuse
    memory.idle_mib = current_rss_mib();
  }

  const std::uint64_t upstream_before = p.upstream->requests_served();
  const WorkerCounters counters_before = snapshot(p.worker->stats());
  const auto faults_before = p.upstream->fault_counts();
  const auto failing_faults_before =
      p.failing_upstream ? p.failing_upstream->fault_counts() : std::map<std::string, std::uint64_t>{};

  const double rss_before = current_rss_mib();
  rusage usage_before{};
  ::getrusage(RUSAGE_SELF, &usage_before);
  const auto threads_before = sample_threads();
  measured_start = Clock::now();
  const auto stream =
      stream_requests(client, pool, "req-", first_n, o.requests, window, o.tenants, run_deadline, watch_streams);
  rusage usage_after{};
  ::getrusage(RUSAGE_SELF, &usage_after);
  const auto threads_after = sample_threads();
  ResilienceFigures resilience;
  resilience.worker = snapshot(p.worker->stats()) - counters_before;
  resilience.upstream_faults = difference(p.upstream->fault_counts(), faults_before);
  if (p.failing_upstream) {
    resilience.failing_upstream_faults = difference(p.failing_upstream->fault_counts(), failing_faults_before);
  }

  RunFigures f = summarize(client, "req-", o, stream);
  f.user_cpu_seconds = seconds(usage_after.ru_utime) - seconds(usage_before.ru_utime);
  f.sys_cpu_seconds = seconds(usage_after.ru_stime) - seconds(usage_before.ru_stime);
  f.cpu_seconds_per_1000 =
      f.answered > 0 ? (f.user_cpu_seconds + f.sys_cpu_seconds) * 1000.0 / static_cast<double>(f.answered) : 0;
  f.peak_rss_mib = static_cast<double>(usage_after.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
  f.cpu_by_thread = cpu_between(threads_before, threads_after, p.threads);
  f.warmup_rounds = warmup_rounds;
  f.rss_before_mib = rss_before;
  f.warmup_seconds = warmup_seconds;

  read_worker_timings(p, "req-", f);

  // How much of the peak is the benchmark's client holding every reply
  // (CascadeClient keeps all chunk events) rather than the pipeline.
  for (const auto& [id, reply] : client.replies()) {
    memory.client_events_at_end += reply.chunks.size() + (reply.terminal ? 1 : 0);
  }
  const double rss_with_client = current_rss_mib();
  p.client.reset();
  ::malloc_trim(0);
  f.client_replies_mib = std::max(0.0, rss_with_client - current_rss_mib());

  nlohmann::json scenario_fields = nullptr;
  std::string scenario_failure;
  std::function<void()> scenario_lines;
  switch (o.scenario) {
    case Scenario::baseline:
      break;
    case Scenario::retry:
    case Scenario::fallback:
      resilience.failure = check_resilience(o, window, p, f, resilience);
      scenario_failure = resilience.failure;
      scenario_lines = [&] { print_resilience(o, window, p, f, resilience); };
      scenario_fields = resilience_json(p, f, resilience);
      break;
    case Scenario::slow_streams:
      memory.client_kib_per_event =
          memory.client_events_at_end > 0
              ? f.client_replies_mib * 1024.0 / static_cast<double>(memory.client_events_at_end)
              : 0;
      if (!memory.reached) {
        memory.failure = "the streams were never all in flight at once";
      } else if (resilience.worker.timeouts > 0) {
        memory.failure = "streams were cut by timeouts";
      } else if (f.unanswered > 0 || f.errors > 0) {
        memory.failure = "not every request got a final answer";
      }
      scenario_failure = memory.failure;
      scenario_lines = [&] { print_stream_memory(o, resilience.worker, memory); };
      scenario_fields = stream_memory_json(memory);
      break;
  }
  print_report(o, pool, window, f, p.worker->stats(), p.upstream->requests_served() - upstream_before,
               scenario_lines);
  if (scenario_fields.is_object()) scenario_fields["scenario"] = std::string(to_string(o.scenario));
  if (o.json) print_json(o, window, f, scenario_fields);
  std::fflush(stdout);
  if (f.unanswered > 0) return 2;
  return scenario_failure.empty() ? 0 : 3;
}

}  // namespace
}  // namespace cascade::bench

int main(int argc, char** argv) {
  using cascade::bench::BenchOptions;
  BenchOptions o;
  if (const char* shared = std::getenv("CASCADE_SHARED_DIR")) o.shared_dir = shared;
#ifdef CASCADE_BENCH_DEFAULT_SHARED_DIR
  if (o.shared_dir.empty() && std::filesystem::exists(CASCADE_BENCH_DEFAULT_SHARED_DIR)) {
    o.shared_dir = CASCADE_BENCH_DEFAULT_SHARED_DIR;
  }
#endif

  CLI::App app{"Pushes N prompts through the real Cascade pipeline in one process and reports "
               "throughput, latency, CPU and memory"};
  app.add_option("--requests", o.requests, "Measured requests")->check(CLI::PositiveNumber);
  app.add_option("--chunks", o.chunks, "Content chunks per simulated answer")->check(CLI::Range(1, 10000));
  app.add_option("--worker-threads", o.worker_threads, "Worker event loops")->check(CLI::Range(1, 64));
  auto* max_in_flight_option =
      app.add_option("--max-in-flight", o.max_in_flight, "Requests in flight per worker thread before it pauses")
          ->check(CLI::Range(1, 100000));
  app.add_option("--partitions", o.partitions,
                 "Partitions of the requests and reply topics (the mock broker keeps ~100k batches / 5 MiB "
                 "per partition: use many for bulk runs)")
      ->check(CLI::Range(1, 1024));
  auto* chunk_delay_option =
      app.add_option("--chunk-delay-ms", o.chunk_delay_ms, "Upstream pause between chunks (slow-streams: 600)")
          ->check(CLI::Range(0, 10000));
  app.add_option("--window", o.window,
                 "Unanswered requests the client allows before it waits (0 = worker threads x max in flight; "
                 "larger values measure queueing in Kafka too)");
  app.add_option("--warmup", o.warmup, "Unmeasured warm-up requests");
  app.add_option("--timeout", o.timeout_s, "Overall bound in seconds for warm-up plus run; what is unanswered "
                                           "then is reported")
      ->check(CLI::Range(1, 86400));
  app.add_option("--upstream-threads", o.upstream_threads, "Simulated upstream I/O threads")->check(CLI::Range(1, 64));
  app.add_option("--fetch-wait-ms", o.fetch_wait_ms, "kafka.fetch_wait_max_ms (the mock broker's latency)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--linger-ms", o.linger_ms, "kafka.linger_ms of every producer")->check(CLI::Range(0, 1000));
  app.add_option("--tenants", o.tenants, "Tenants the requests are spread over")->check(CLI::Range(1, 100000));
  app.add_option("--shared-dir", o.shared_dir, "Folder with data/prompts (default: CASCADE_SHARED_DIR or ../shared)");
  app.add_option("--log-level", o.log_level, "trace|debug|info|warn|error");
  app.add_option("--malloc-arena-max", o.malloc_arena_max,
                 "glibc malloc arenas (M_ARENA_MAX; 0 = glibc default, 8 per core). The process runs 25+ "
                 "threads, so with the default busy threads share arenas and contend on their locks")
      ->check(CLI::Range(0, 1024));
  app.add_flag("--json", o.json, "Also print one JSON line with all figures");
  std::string scenario = "baseline";
  app.add_option("--scenario", scenario,
                 "baseline: every attempt succeeds; retry: every request's first attempt gets HTTP 500 and its retry "
                 "succeeds (exactly so at --window 1); fallback: the routed model always fails and a configured "
                 "fallback answers; slow-streams: --requests slow streams in flight at once, RSS per stream")
      ->check(CLI::IsMember({"baseline", "retry", "fallback", "slow-streams"}));
  app.add_option("--retry-backoff-ms", o.retry_backoff_ms,
                 "retry scenario: resilience.retry backoff base and cap (the wait is uniform in [0, this])")
      ->check(CLI::Range(0, 60000));
  CLI11_PARSE(app, argc, argv);
  o.scenario = *cascade::bench::parse_scenario(scenario);
  if (o.scenario == cascade::bench::Scenario::slow_streams) {
    // Every request in flight at once, each stream ~11 s long (20 chunks),
    // and the worker never pausing its partitions.
    if (o.window == 0) o.window = o.requests;
    if (chunk_delay_option->count() == 0) o.chunk_delay_ms = 600;
    if (max_in_flight_option->count() == 0) {
      const std::size_t per_thread = (o.window + static_cast<std::size_t>(o.worker_threads) - 1) /
                                     static_cast<std::size_t>(o.worker_threads);
      o.max_in_flight = static_cast<int>(per_thread) + static_cast<int>(cascade::bench::kSendBurst);
    }
  }
  // Each in-flight stream holds two sockets in this process (worker and
  // upstream side), and the upstream's share is measured with two more each.
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &files);
  }
  if (o.scenario == cascade::bench::Scenario::slow_streams) {
    const auto needed = 2 * std::min(o.window, o.requests) + 1024;
    if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < needed) {
      std::fprintf(stderr, "cascade_bench_pipeline: %zu streams need ~%zu file descriptors, the limit is %llu\n",
                   std::min(o.window, o.requests), static_cast<std::size_t>(needed),
                   static_cast<unsigned long long>(files.rlim_cur));
      return 1;
    }
  }
  // Before any thread allocates: arenas are bound to threads on first use.
  if (o.malloc_arena_max > 0) ::mallopt(M_ARENA_MAX, o.malloc_arena_max);

  // Ctrl-C ends the run early but still reports and removes the state dir.
  std::signal(SIGINT, [](int) { cascade::bench::interrupted.store(true); });
  std::signal(SIGTERM, [](int) { cascade::bench::interrupted.store(true); });
  return cascade::bench::run(o);
}
