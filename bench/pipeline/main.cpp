// cascade_bench_pipeline: N prompts through the real pipeline in one process.
// Embedded Kafka broker (librdkafka mock cluster) -> worker event loops (curl
// multi) -> simulated OpenAI-compatible upstream over loopback HTTP/SSE ->
// reply topic -> CascadeClient. Prints throughput, client-observed latency,
// CPU per 1,000 requests and peak RSS. See bench/README.md.
#include <malloc.h>
#include <sys/resource.h>
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
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench/pipeline/thread_cpu.h"
#include "catalog/catalog.h"
#include "client/cascade_client.h"
#include "consumers/worker/worker.h"
#include "core/config.h"
#include "core/logging.h"
#include "kafka/kafka.h"
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
  p.upstream = std::make_unique<SimulatedUpstream>(up);
  if (auto ok = start_part(p, "upstream", [&] { return p.upstream->start(); }); !ok) return ok;

  // Configured the way an operator would, through CASCADE_* overrides of the
  // built-in defaults; every provider points at the local upstream, keyless.
  std::map<std::string, std::string> env = {
      {"CASCADE_KAFKA_BOOTSTRAP", p.broker->bootstrap()},
      {"CASCADE_KAFKA_PARTITIONS", std::to_string(o.partitions)},
      {"CASCADE_KAFKA_FETCH_WAIT_MAX_MS", std::to_string(o.fetch_wait_ms)},
      {"CASCADE_KAFKA_LINGER_MS", std::to_string(o.linger_ms)},
      {"CASCADE_WORKER_THREADS", std::to_string(o.worker_threads)},
      {"CASCADE_WORKER_MAX_IN_FLIGHT", std::to_string(o.max_in_flight)},
  };
  for (const char* provider : kProviders) {
    std::string prefix = std::string("CASCADE_PROVIDERS_") + provider;
    for (auto& c : prefix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    env[prefix + "_BASE_URL"] = p.upstream->base_url();
    env[prefix + "_API_KEY_ENV"] = "";
  }
  auto config = load_config("", [env](const std::string& name) -> std::optional<std::string> {
    if (auto it = env.find(name); it != env.end()) return it->second;
    return std::nullopt;
  });
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
};

struct StreamOutcome {
  Clock::time_point first_send;
  Clock::time_point end;
  std::size_t send_failures = 0;
  bool timed_out = false;
};

// Sends `count` requests with ids `prefix`<n> in a steady stream, never more
// than `window` unanswered at the client, and reads replies until all are
// answered or the deadline passes.
StreamOutcome stream_requests(CascadeClient& client, const PromptPool& pool, const std::string& prefix,
                              std::size_t first_n, std::size_t count, std::size_t window, int tenants,
                              Clock::time_point deadline) {
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

void print_report(const BenchOptions& o, const PromptPool& pool, std::size_t window, const RunFigures& f,
                  const WorkerStats& stats, std::uint64_t upstream_requests) {
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

void print_json(const BenchOptions& o, std::size_t window, const RunFigures& f) {
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
  std::printf("%s\n", j.dump().c_str());
}

// Reads the run's cost events back from the ledger topic (after the measured
// span, so it costs the figures nothing).
void read_worker_timings(const Pipeline& p, const std::string& prefix, RunFigures& f) {
  std::vector<double> ttft, latency;
  auto read = read_topic_to_end(p.config.kafka, p.broker->bootstrap(), p.config.kafka.ledger_topic,
                                [&](const rd_kafka_message_t& record) {
                                  auto cost = parse_cost_event(
                                      std::string_view(static_cast<const char*>(record.payload), record.len));
                                  if (!cost || !cost->id.starts_with(prefix)) return;
                                  ttft.push_back(cost->ttft_ms);
                                  latency.push_back(cost->latency_ms);
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

int run(const BenchOptions& o) {
  init_logging(o.log_level);
  const PromptPool pool = load_prompt_pool(o.shared_dir);
  const std::size_t window =
      o.window > 0 ? o.window : static_cast<std::size_t>(o.worker_threads) * static_cast<std::size_t>(o.max_in_flight);

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
  const std::uint64_t upstream_before = p.upstream->requests_served();

  const double rss_before = current_rss_mib();
  rusage usage_before{};
  ::getrusage(RUSAGE_SELF, &usage_before);
  const auto threads_before = sample_threads();
  const auto stream = stream_requests(client, pool, "req-", static_cast<std::size_t>(warmup_rounds) * o.warmup,
                                      o.requests, window, o.tenants, run_deadline);
  rusage usage_after{};
  ::getrusage(RUSAGE_SELF, &usage_after);
  const auto threads_after = sample_threads();

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
  const double rss_with_client = current_rss_mib();
  p.client.reset();
  ::malloc_trim(0);
  f.client_replies_mib = std::max(0.0, rss_with_client - current_rss_mib());

  print_report(o, pool, window, f, p.worker->stats(), p.upstream->requests_served() - upstream_before);
  if (o.json) print_json(o, window, f);
  std::fflush(stdout);
  return f.unanswered == 0 ? 0 : 2;
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
  app.add_option("--max-in-flight", o.max_in_flight, "Requests in flight per worker thread before it pauses")
      ->check(CLI::Range(1, 100000));
  app.add_option("--partitions", o.partitions,
                 "Partitions of the requests and reply topics (the mock broker keeps ~100k batches / 5 MiB "
                 "per partition: use many for bulk runs)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--chunk-delay-ms", o.chunk_delay_ms, "Upstream pause between chunks")->check(CLI::Range(0, 10000));
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
  CLI11_PARSE(app, argc, argv);
  // Before any thread allocates: arenas are bound to threads on first use.
  if (o.malloc_arena_max > 0) ::mallopt(M_ARENA_MAX, o.malloc_arena_max);

  // Ctrl-C ends the run early but still reports and removes the state dir.
  std::signal(SIGINT, [](int) { cascade::bench::interrupted.store(true); });
  std::signal(SIGTERM, [](int) { cascade::bench::interrupted.store(true); });
  return cascade::bench::run(o);
}
