#include "apps/cascade/commands.h"
#include "apps/cascade/gateway_commands.h"
#include "apps/cascade/ledger_commands.h"
#include "apps/cascade/mcp_command.h"

#include <prometheus/exposer.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include <unistd.h>

#include "cache/semantic.h"
#include "catalog/catalog.h"
#include "client/cascade_client.h"
#include "consumers/ledger/ledger.h"
#include "consumers/worker/worker.h"
#include "consumers/worker/worker_state.h"
#include "budgets/budgets.h"
#include "tokenizer/tokenizer.h"
#include "config/config.h"
#include "core/logging.h"
#include "kafka/kafka.h"
#include "router/router.h"
#include "router/tools/evaluation.h"
#include "simulator/simulated_upstream.h"
#include "state/state.h"
#include "tuning/tuning.h"

namespace cascade::cli {
namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true); }

// Blocks until SIGINT/SIGTERM.
void wait_for_signal() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

std::string read_trimmed(const std::string& path) {
  std::ifstream in(path);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

bool write_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    if (!out) return false;
    out << text << "\n";
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// Config from file + env, with --bootstrap-file taking precedence for brokers.
std::optional<Config> load(const CommonOptions& common) {
  auto config = load_config(common.config_file);
  if (!config) {
    std::fprintf(stderr, "cascade: %s\n", config.error().message.c_str());
    return std::nullopt;
  }
  init_logging(config->log.level);
  // Verifier rules are the cache's to parse: a bad one stops every command
  // here, not a worker later.
  if (auto semantic = semantic_matcher_options(*config); !semantic) {
    std::fprintf(stderr, "cascade: %s\n", semantic.error().message.c_str());
    return std::nullopt;
  }
  if (!common.bootstrap_file.empty()) {
    config->kafka.bootstrap = read_trimmed(common.bootstrap_file);
    if (config->kafka.bootstrap.empty()) {
      std::fprintf(stderr, "cascade: %s is empty or unreadable\n", common.bootstrap_file.c_str());
      return std::nullopt;
    }
  }
  return *config;
}

// Client commands talk to running services, so an embedded broker of their own
// would be useless.
bool has_brokers(const Config& config, const char* command) {
  if (!config.kafka.embedded()) return true;
  std::fprintf(stderr, "cascade %s: no brokers configured; pass --bootstrap-file or set CASCADE_KAFKA_BOOTSTRAP\n",
               command);
  return false;
}

std::string new_request_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[32];
  std::snprintf(buf, sizeof buf, "req-%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

std::optional<Preference> parse_preference(const std::string& s) {
  for (auto p : {Preference::cost, Preference::balanced, Preference::quality, Preference::speed}) {
    if (to_string(p) == s) return p;
  }
  return std::nullopt;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * (v.size() - 1) + 0.5))];
}

template <class Duration>
double ms(Duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

int print_error(const Error& e) {
  std::fprintf(stderr, "cascade: %s: %s\n", std::string(to_string(e.code)).c_str(), e.message.c_str());
  return 1;
}

}  // namespace

int run_broker(const CommonOptions& common, const BrokerOptions& options) {
  auto config = load(common);
  if (!config) return 2;
  if (options.partitions > 0) config->kafka.partitions = options.partitions;
  auto broker = EmbeddedBroker::start(options.brokers);
  if (!broker) return print_error(broker.error());
  if (auto ok = (*broker)->create_topics(cascade_topics(config->kafka)); !ok) return print_error(ok.error());
  if (!write_file(options.bootstrap_file, (*broker)->bootstrap())) {
    std::fprintf(stderr, "cascade: cannot write %s\n", options.bootstrap_file.c_str());
    return 1;
  }
  spdlog::info("broker: embedded Kafka (librdkafka mock cluster) at {}, {} partitions per topic; "
               "bootstrap written to {}", (*broker)->bootstrap(), config->kafka.partitions,
               options.bootstrap_file);
  wait_for_signal();
  spdlog::info("broker: stopping");
  return 0;
}

int run_worker(const CommonOptions& common) {
  auto config = load(common);
  if (!config) return 2;
  auto kafka = KafkaConnection::open(config->kafka);
  if (!kafka) return print_error(kafka.error());
  auto catalog = ModelCatalog::load(config->catalog);
  if (!catalog) return print_error(catalog.error());
  // A router model that does not load, or rules that do not compile, stop the
  // worker here, before its state is restored; the worker shares them.
  auto scorer = load_route_scorer(config->router);
  if (!scorer) return print_error(scorer.error());
  auto policies = compile_route_policies(config->router, *catalog);
  if (!policies) return print_error(policies.error());
  // Restores the cache from the changelog before the worker takes requests.
  auto state = WorkerState::open(*config, kafka->bootstrap(), *catalog, kafka->embedded());
  if (!state) return print_error(state.error());

  WorkerMetrics metrics;
  std::unique_ptr<prometheus::Exposer> exposer;
  if (!config->worker.metrics_listen.empty()) {
    try {
      exposer = std::make_unique<prometheus::Exposer>(config->worker.metrics_listen);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "cascade: cannot listen on %s: %s\n", config->worker.metrics_listen.c_str(), e.what());
      return 1;
    }
    exposer->RegisterCollectable(metrics.registry());
    spdlog::info("worker: Prometheus metrics at http://{}/metrics", config->worker.metrics_listen);
  }
  // State and changelog figures, refreshed every second off the request path;
  // declared after `state`, so it stops before the state closes.
  std::optional<StateMetricsSampler> state_metrics;
  if (exposer) state_metrics.emplace(metrics, (*state)->store(), (*state)->changelog());

  // Budgets and the ledger's spend: read to their end before requests are
  // taken, then followed (a global table, like the cache changelog).
  auto budgets = BudgetTable::open(*config, kafka->bootstrap());
  if (!budgets) return print_error(budgets.error());
  if (auto restored = (*budgets)->restore(); !restored) return print_error(restored.error());
  if (auto started = (*budgets)->start(); !started) return print_error(started.error());
  auto tokens = load_token_counter(config->tokenizer);
  if (!tokens) return print_error(tokens.error());
  // The closed loop's tuned cuts (docs/routing.md, "Closed loop"), when the
  // ledger has created their topic; without it the configured thresholds apply.
  auto tuned_cuts = std::make_shared<TunedCuts>();
  auto router_updates = follow_router_updates(config->kafka, kafka->bootstrap(), config->kafka.router_updates_topic,
                                              tuned_cuts);
  if (!router_updates && router_updates.error().code != ErrorCode::unavailable)
    return print_error(router_updates.error());
  if (!router_updates)
    spdlog::info("worker: no {} topic: routing with the configured thresholds only ({})",
                 config->kafka.router_updates_topic, router_updates.error().message);
  else if (!tuned_cuts->empty())
    spdlog::info("worker: {} tuned tier cuts from {}", tuned_cuts->size(), config->kafka.router_updates_topic);

  // On a real cluster the workers own the cancels topic (gateways and apps
  // write to it): created, with its retention, when missing.
  if (!kafka->embedded()) {
    auto exists = topic_exists(config->kafka, kafka->bootstrap(), config->kafka.cancels_topic);
    if (!exists) return print_error(exists.error());
    if (!*exists) {
      for (const auto& topic : cascade_topics(config->kafka)) {
        if (topic.name != config->kafka.cancels_topic) continue;
        if (auto ok = create_topics_admin(config->kafka, kafka->bootstrap(), {topic}); !ok)
          return print_error(ok.error());
      }
    }
  }

  WorkerOptions options;
  options.config = *config;
  options.bootstrap = kafka->bootstrap();
  options.catalog = &*catalog;
  options.completed = (*state)->completed();
  options.changelog = (*state)->changelog();
  options.cache = (*state)->cache();
  options.metrics = &metrics;
  options.budgets = budgets->get();
  options.tokens = std::move(*tokens);
  options.route_scorer = std::move(*scorer);
  options.route_policies = std::move(*policies);
  options.tuned_cuts = tuned_cuts;
  auto worker = Worker::start(std::move(options));
  if (!worker) return print_error(worker.error());
  wait_for_signal();
  spdlog::info("worker: stopping (draining in-flight requests)");
  (*worker)->stop();
  if (router_updates) (*router_updates)->stop();
  const auto& s = (*worker)->stats();
  spdlog::info("worker: consumed={} completed={} failed={} rejected={} replayed={} provider_calls={}",
               s.consumed.load(), s.completed.load(), s.failed.load(), s.rejected.load(), s.replayed.load(),
               s.provider_calls.load());
  return 0;
}

int run_ledger(const CommonOptions& common) {
  auto config = load(common);
  if (!config) return 2;
  return ledger_service(*config);
}

int run_gateway(const CommonOptions& common, const GatewayCommandOptions& options) {
  auto config = load(common);
  if (!config) return 2;
  return gateway_service(*config, options);
}

int run_keys_create(const CommonOptions& common, const KeysCommandOptions& options) {
  auto config = load(common);
  if (!config) return 2;
  if (!has_brokers(*config, "keys create")) return 2;
  return keys_create(*config, options);
}

int run_keys_list(const CommonOptions& common, const KeysCommandOptions& options) {
  auto config = load(common);
  if (!config) return 2;
  if (!has_brokers(*config, "keys list")) return 2;
  return keys_list(*config, options);
}

int run_keys_revoke(const CommonOptions& common, const KeysCommandOptions& options) {
  auto config = load(common);
  if (!config) return 2;
  if (!has_brokers(*config, "keys revoke")) return 2;
  return keys_revoke(*config, options);
}

int run_send(const CommonOptions& common, const SendOptions& options) {
  auto config = load(common);
  if (!config) return 2;
  if (!has_brokers(*config, "send")) return 2;
  auto preference = parse_preference(options.preference);
  if (!preference) {
    std::fprintf(stderr, "cascade send: unknown preference '%s'\n", options.preference.c_str());
    return 2;
  }
  auto client = CascadeClient::open(config->kafka, config->kafka.bootstrap, config->kafka.replies_topic);
  if (!client) return print_error(client.error());

  PromptEvent event;
  event.id = new_request_id();
  event.tenant = options.tenant;
  event.model = options.model;
  event.preference = *preference;
  if (options.max_tokens > 0) event.max_tokens = options.max_tokens;
  if (!options.cascade.empty()) event.cascade = options.cascade == "on";
  if (!options.tags.empty()) event.metadata["tags"] = options.tags;
  if (!options.system.empty()) event.messages.push_back({{"role", "system"}, {"content", options.system}});
  event.messages.push_back({{"role", "user"}, {"content", options.prompt}});
  if (auto ok = (*client)->send(event); !ok) return print_error(ok.error());
  (*client)->flush(10000);

  int exit_code = 1;
  const bool done = (*client)->wait_all(std::chrono::seconds(options.timeout_s), [&](const ReplyEvent& e) {
    if (e.type == "chunk") {
      std::cout << e.body.value("delta", "") << std::flush;
    } else if (e.type == "final") {
      const auto& b = e.body;
      const auto& u = b["usage"];
      std::cout << "\n\n-- model " << b.value("model", "") << " (" << b.value("provider", "") << ")"
                << ", route: " << b["route"].value("tier", "") << " tier, score "
                << b["route"].value("score", 0.0) << ", " << b["route"].value("reason", "")
                << "\n-- tokens in " << u.value("input_tokens", 0) << " (cached " << u.value("cached_tokens", 0)
                << "), out " << u.value("output_tokens", 0) << ", cost $" << b.value("cost_usd", 0.0)
                << ", cache " << b.value("cache", "") << ", finish " << b.value("finish_reason", "") << "\n";
      exit_code = 0;
    } else if (e.type == "error") {
      std::cerr << "\nerror " << e.body["error"].value("code", "") << ": " << e.body["error"].value("message", "")
                << "\n";
    }
  });
  if (!done) {
    std::fprintf(stderr, "cascade send: no answer within %d s (is a worker running?)\n", options.timeout_s);
    return 1;
  }
  return exit_code;
}

int run_replay(const CommonOptions& common, const ReplayOptions& options) {
  auto config = load(common);
  if (!config) return 2;
  if (!has_brokers(*config, "replay")) return 2;
  std::ifstream in(options.file);
  if (!in) {
    std::fprintf(stderr, "cascade replay: cannot read %s\n", options.file.c_str());
    return 2;
  }
  std::vector<std::string> prompts;
  for (std::string line; std::getline(in, line) && static_cast<int>(prompts.size()) < options.count;) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object()) continue;
    for (const char* field : {"prompt", "instruction", "question", "text"}) {
      if (j.contains(field) && j[field].is_string() && !j[field].get_ref<const std::string&>().empty()) {
        std::string p = j[field];
        if (j.contains("context") && j["context"].is_string() && !j["context"].get_ref<const std::string&>().empty())
          p += "\n\n" + j["context"].get<std::string>();
        prompts.push_back(std::move(p));
        break;
      }
    }
  }
  if (prompts.empty()) {
    std::fprintf(stderr, "cascade replay: no prompts found in %s\n", options.file.c_str());
    return 2;
  }
  auto client = CascadeClient::open(config->kafka, config->kafka.bootstrap, config->kafka.replies_topic);
  if (!client) return print_error(client.error());
  static const char* kTenants[] = {"acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka"};
  const int tenants = std::clamp(options.tenants, 1, 8);
  const Preference prefs[] = {Preference::balanced, Preference::cost, Preference::balanced, Preference::quality};

  auto make_event = [&](std::size_t i) {
    PromptEvent e;
    e.id = new_request_id();
    e.tenant = kTenants[i % tenants];
    e.preference = prefs[i % 4];
    e.messages.push_back({{"role", "user"}, {"content", prompts[i]}});
    e.metadata = {{"source", "replay"}, {"line", i}};
    return e;
  };

  // A few answers streamed live, one at a time so they stay readable.
  const std::size_t shown = std::min<std::size_t>(std::max(options.show, 0), prompts.size());
  for (std::size_t i = 0; i < shown; ++i) {
    auto event = make_event(i);
    std::cout << "\n[" << event.tenant << "] " << prompts[i].substr(0, 200) << "\n> " << std::flush;
    if (auto ok = (*client)->send(event); !ok) return print_error(ok.error());
    (*client)->flush(10000);
    (*client)->wait_all(std::chrono::seconds(60), [&](const ReplyEvent& e) {
      if (e.id != event.id) return;
      if (e.type == "chunk") std::cout << e.body.value("delta", "") << std::flush;
      if (e.type == "final")
        std::cout << "\n  (" << e.body.value("model", "") << ", " << e.body["route"].value("reason", "")
                  << ", $" << e.body.value("cost_usd", 0.0) << ")\n";
      if (e.type == "error") std::cout << "\n  error: " << e.body["error"].value("message", "") << "\n";
    });
  }

  const auto start = std::chrono::steady_clock::now();
  for (std::size_t i = shown; i < prompts.size(); ++i) {
    if (auto ok = (*client)->send(make_event(i)); !ok) return print_error(ok.error());
    if (i % 64 == 0) (*client)->poll(0);
  }
  (*client)->flush(30000);
  std::cout << "\nsent " << prompts.size() - shown << " more prompts from " << tenants << " tenants; waiting for answers...\n";
  const bool all = (*client)->wait_all(std::chrono::seconds(options.timeout_s));
  const double elapsed_s = ms(std::chrono::steady_clock::now() - start) / 1000.0;

  std::size_t finals = 0, errors = 0;
  std::vector<double> ttft, total;
  std::map<std::string, int> models;
  for (const auto& [id, r] : (*client)->replies()) {
    if (!r.terminal) continue;
    if (r.terminal->type == "final") {
      finals++;
      models[r.terminal->body.value("model", "?")]++;
    } else {
      errors++;
    }
    if (r.first_chunk_at) ttft.push_back(ms(*r.first_chunk_at - r.sent_at));
    if (r.terminal_at) total.push_back(ms(*r.terminal_at - r.sent_at));
  }
  std::printf("\nreplay: %zu answered, %zu errors, %zu unanswered, in %.1f s\n", finals, errors,
              (*client)->outstanding(), elapsed_s);
  std::printf("replay: time to first chunk p50 %.1f ms, p99 %.1f ms; to final p50 %.1f ms, p99 %.1f ms\n",
              percentile(ttft, 0.5), percentile(ttft, 0.99), percentile(total, 0.5), percentile(total, 0.99));
  return all ? 0 : 1;
}

int run_report(const CommonOptions& common, const ReportOptions& options) {
  auto config = load(common);
  if (!config) return 2;
  if (!has_brokers(*config, "report")) return 2;
  return savings_report(*config, options);
}

int run_budget_set(const CommonOptions& common, const BudgetCommandOptions& options) {
  auto config = load(common);
  if (!config) return 2;
  if (!has_brokers(*config, "budget set")) return 2;
  return budget_set(*config, options);
}

int run_budget_show(const CommonOptions& common, const BudgetCommandOptions& options) {
  auto config = load(common);
  if (!config) return 2;
  if (!has_brokers(*config, "budget show")) return 2;
  return budget_show(*config, options);
}

int run_tuning_show(const CommonOptions& common, const TuningCommandOptions& options) {
  auto config = load(common);
  if (!config) return 2;
  if (!has_brokers(*config, "tuning show")) return 2;
  return tuning_show(*config, options);
}

int run_tuning_reset(const CommonOptions& common, const TuningCommandOptions& options) {
  auto config = load(common);
  if (!config) return 2;
  if (!has_brokers(*config, "tuning reset")) return 2;
  return tuning_reset(*config, options);
}

int run_mcp(const CommonOptions& common, const McpOptions& options) {
  // stdout is the MCP client's: only protocol messages may reach it. Keep it
  // for them and point fd 1 at stderr, so that nothing else written to
  // stdout (a library's printf, a log sink) can corrupt the stream.
  const int protocol_fd = ::dup(STDOUT_FILENO);
  if (protocol_fd < 0 || ::dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
    std::perror("cascade mcp: cannot set stdout aside for the protocol");
    return 1;
  }
  auto config = load(common);
  if (!config) return 2;
  if (!has_brokers(*config, "mcp")) return 2;
  const std::string tenant = options.tenant.empty() ? config->mcp.tenant : options.tenant;
  if (tenant.empty()) {
    std::fprintf(stderr, "cascade mcp: no tenant: pass --tenant T or set mcp.tenant (CASCADE_MCP_TENANT); every "
                         "tool call is charged and reported as that tenant\n");
    return 2;
  }
  if (!valid_tenant(tenant)) {
    std::fprintf(stderr, "cascade mcp: tenant '%s' must be 1-128 characters from [A-Za-z0-9._:-]\n", tenant.c_str());
    return 2;
  }
  return mcp_stdio_service(*config, tenant, protocol_fd);
}

int run_cache_purge(const CommonOptions& common, const CachePurgeOptions& options) {
  auto config = load(common);
  if (!config) return 2;
  if (!options.bootstrap.empty()) config->kafka.bootstrap = options.bootstrap;
  if (config->kafka.embedded()) {
    std::fprintf(stderr,
                 "cascade cache purge: no brokers configured, so there is no changelog to purge through: an "
                 "embedded broker lives inside one process, and a worker running on one keeps its cache to "
                 "itself. Pass --bootstrap HOST:PORT, --bootstrap-file F (as written by `cascade broker`) or "
                 "set CASCADE_KAFKA_BOOTSTRAP to the workers' cluster.\n");
    return 2;
  }
  if (!config->state.replicated) {
    std::fprintf(stderr,
                 "cascade cache purge: state.replicated is false in this configuration: workers then do not "
                 "apply the changelog, and a purge published there would reach none of them\n");
    return 2;
  }
  const std::string& topic = config->kafka.cache_changelog_topic;
  const int timeout_ms = std::max(options.timeout_s, 1) * 1000;
  auto exists = topic_exists(config->kafka, config->kafka.bootstrap, topic, timeout_ms);
  if (!exists) return print_error(exists.error());
  if (!*exists) {
    std::fprintf(stderr,
                 "cascade cache purge: %s has no topic %s: no worker replicates its state there, so there is "
                 "nothing to purge (is kafka.topics.cache_changelog the workers' topic?)\n",
                 config->kafka.bootstrap.c_str(), topic.c_str());
    return 1;
  }
  auto through = publish_tenant_purge(config->kafka, config->kafka.bootstrap, topic, options.tenant, timeout_ms);
  if (!through) return print_error(through.error());
  const std::time_t seconds = static_cast<std::time_t>(*through / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &utc);
  std::printf("purged tenant %s: cached answers and semantic entries created up to %s.%03lldZ (%lld ms) "
              "are removed on every worker as it applies %s; completed answers are kept\n",
              options.tenant.c_str(), when, static_cast<long long>(*through % 1000),
              static_cast<long long>(*through), topic.c_str());
  return 0;
}

namespace {

// The answers of an outcomes file under the model names requests use: a
// recorded model is served under its own name and under every UPSTREAM that
// --model-map sends to it.
Result<std::vector<RecordedAnswer>> recorded_answers(const std::string& path, const std::vector<std::string>& model_map) {
  std::multimap<std::string, std::string> names;  // recorded -> upstream
  for (const std::string& spec : model_map) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      return fail(ErrorCode::invalid_request, "--model-map wants UPSTREAM=RECORDED, got " + spec);
    names.emplace(spec.substr(eq + 1), spec.substr(0, eq));
  }
  auto rows = read_outcomes(path);
  if (!rows) return std::unexpected(rows.error());
  std::vector<RecordedAnswer> answers;
  for (const OutcomeRow& row : *rows) {
    for (const auto& [model, outcome] : row.outcomes) {
      if (!outcome.response) continue;
      answers.push_back({model, row.prompt, *outcome.response, outcome.quality});
      const auto [first, last] = names.equal_range(model);
      for (auto it = first; it != last; ++it) answers.push_back({it->second, row.prompt, *outcome.response, outcome.quality});
    }
  }
  if (answers.empty()) return fail(ErrorCode::invalid_request, path + " holds no answers (outcomes with a response)");
  return answers;
}

}  // namespace

int run_upstream(const CommonOptions& common, const UpstreamOptions& options) {
  init_logging("info");
  std::vector<std::string> model_map = options.model_map;
  if (options.outcomes.empty() && (!options.model_map.empty() || !options.tier_map.empty())) {
    std::fprintf(stderr, "cascade upstream: --model-map and --tier-map need --outcomes\n");
    return 2;
  }
  if (!options.tier_map.empty()) {
    // The catalog's models by tier, as the worker will name them upstream.
    auto config = load(common);
    if (!config) return 2;
    auto catalog = ModelCatalog::load(config->catalog);
    if (!catalog) return print_error(catalog.error());
    for (const std::string& spec : options.tier_map) {
      const auto eq = spec.find('=');
      const auto tier = eq == std::string::npos ? std::nullopt : parse_tier(spec.substr(0, eq));
      if (!tier || eq + 1 == spec.size()) {
        std::fprintf(stderr, "cascade upstream: --tier-map wants small|medium|large=RECORDED, got %s\n", spec.c_str());
        return 2;
      }
      for (const ModelInfo& model : catalog->models()) {
        // An explicit --model-map of the same model wins over its tier's.
        const bool mapped = std::ranges::any_of(options.model_map, [&](const std::string& m) {
          return m.starts_with(model.upstream_model + "=");
        });
        if (model.tier == *tier && !mapped) model_map.push_back(model.upstream_model + "=" + spec.substr(eq + 1));
      }
    }
  }
  SimulatedUpstreamOptions o;
  o.port = static_cast<std::uint16_t>(options.port);
  o.chunks = options.chunks;
  o.chunk_delay_ms = options.delay_ms;
  o.threads = options.threads;
  if (!options.outcomes.empty()) {
    auto recorded = recorded_answers(options.outcomes, model_map);
    if (!recorded) return print_error(recorded.error());
    o.recorded = std::move(*recorded);
    spdlog::info("upstream: {} recorded answers from {}", o.recorded.size(), options.outcomes);
  }
  SimulatedUpstream upstream(o);
  if (!options.rules.empty()) {
    std::ifstream in(options.rules);
    if (!in) {
      std::fprintf(stderr, "cascade upstream: cannot read %s\n", options.rules.c_str());
      return 2;
    }
    std::vector<SimulatedAnswerRule> rules;
    for (std::string line; std::getline(in, line);) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_object()) {
        std::fprintf(stderr, "cascade upstream: %s: not a JSON object: %s\n", options.rules.c_str(), line.c_str());
        return 2;
      }
      rules.push_back({j.value("model", ""), j.value("prompt_contains", ""), j.value("answer", ""),
                       j.value("http_status", 0), j.value("tool_name", "")});
    }
    upstream.set_answer_rules(std::move(rules));
  }
  if (auto ok = upstream.start(); !ok) return print_error(ok.error());
  if (!options.port_file.empty() && !write_file(options.port_file, std::to_string(upstream.port()))) {
    std::fprintf(stderr, "cascade: cannot write %s\n", options.port_file.c_str());
    return 1;
  }
  spdlog::info("upstream: SIMULATED OpenAI-compatible endpoint at {} (answers are {}, not from a live model)",
               upstream.base_url(), o.recorded.empty() ? "simulated" : "recorded or simulated");
  wait_for_signal();
  spdlog::info("upstream: served {} requests", upstream.requests_served());
  upstream.stop();
  return 0;
}

}  // namespace cascade::cli
