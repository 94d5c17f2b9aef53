#pragma once
// A whole Cascade pipeline in one process, with real parts: the embedded
// Kafka broker, worker event loops, the simulated OpenAI-compatible upstream
// (real HTTP/SSE over loopback), the ledger consumer and a Kafka client.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "client/cascade_client.h"
#include "consumers/ledger/ledger.h"
#include "consumers/worker/worker.h"
#include "consumers/worker/worker_state.h"
#include "config/config.h"
#include "kafka/kafka.h"
#include "simulator/simulated_upstream.h"
#include "state/state.h"
#include "support/embedded_kafka.h"
#include "support/env.h"
#include "support/temp_dir.h"
#include "support/wait.h"
#include "tuning/tuning.h"

namespace cascade::testing {

// A reply's streamed text: its chunks' deltas in order.
inline std::string concat_chunks(const CollectedReply& r) {
  std::string s;
  for (const auto& c : r.chunks) s += c.body.value("delta", "");
  return s;
}

inline const char* kProviders[] = {"openai", "groq", "deepseek", "mistral", "anthropic", "gemini"};

// Real prompts from ../shared when present, else generated ones.
inline std::vector<std::string> load_prompts(std::size_t n) {
  std::vector<std::string> out;
  if (const char* shared = std::getenv("CASCADE_SHARED_DIR")) {
    for (const char* file : {"/data/prompts/NQ-open.dev.jsonl", "/data/prompts/dolly_6400_categories.jsonl"}) {
      std::ifstream in(std::string(shared) + file);
      std::string line;
      for (std::size_t i = 0; i < n / 2 && std::getline(in, line); ++i) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.contains("question")) out.push_back(j["question"]);
        else if (j.contains("instruction")) out.push_back(j["instruction"]);
      }
    }
  }
  for (std::size_t i = out.size(); i < n; ++i) {
    out.push_back(i % 3 == 0 ? "What is " + std::to_string(i) + " times 7?"
                             : "Explain step by step why prompt number " + std::to_string(i) +
                                   " needs a careful answer, then compare two approaches.");
  }
  out.resize(n);
  return out;
}

class PipelineTest : public ::testing::Test {
 protected:
  static constexpr int kChunks = 8;

  // Settings a test may change before start_pipeline().
  std::map<std::string, std::string> env_overrides;
  int chunk_delay_ms = 0;
  // Providers that get an upstream of their own, with these faults injected.
  std::map<std::string, FaultInjectionOptions> provider_faults;
  // The whole ledger side of budgets: the ledger consumer with its store and
  // budget monitor (publishing the spend state), and a BudgetTable for the
  // workers, which then enforce the configured budgets.
  bool with_budgets = false;
  // The closed loop (docs/routing.md, "Closed loop"): the ledger's tuner fed
  // from the quality topic (quality.tuning.*), and the workers' tuned cuts
  // followed from the router-updates topic.
  bool with_tuning = false;

  // The embedded broker, or the real cluster in CASCADE_TEST_KAFKA_BOOTSTRAP
  // (then every topic and group name gets a per-run suffix).
  void start_pipeline() {
    ++instance_;
    std::string suffix;
    if (const char* real = std::getenv("CASCADE_TEST_KAFKA_BOOTSTRAP"); real && *real) {
      bootstrap_ = real;
      suffix = "." + std::to_string(::getpid()) + "." + std::to_string(instance_);
    } else {
      broker_ = start_broker();
      ASSERT_TRUE(broker_);
      bootstrap_ = broker_->bootstrap();
    }
    reply_topic_ = "test.replies" + suffix;

    SimulatedUpstreamOptions up;
    up.chunks = kChunks;
    up.chunk_delay_ms = chunk_delay_ms;
    upstream_ = std::make_unique<SimulatedUpstream>(up);
    ASSERT_TRUE(upstream_->start());

    // Configured the way an operator would: environment overrides over the
    // built-in defaults. No provider key is set: every provider is a local server.
    std::map<std::string, std::string> env = {
        {"CASCADE_KAFKA_BOOTSTRAP", bootstrap_},
        {"CASCADE_KAFKA_TOPICS_REQUESTS", "cascade.requests" + suffix},
        {"CASCADE_KAFKA_TOPICS_LEDGER", "cascade.ledger" + suffix},
        {"CASCADE_KAFKA_TOPICS_DLQ", "cascade.dlq" + suffix},
        {"CASCADE_KAFKA_TOPICS_REPLIES", "cascade.replies" + suffix},
        {"CASCADE_KAFKA_TOPICS_CACHE_CHANGELOG", "cascade.cache-changelog" + suffix},
        {"CASCADE_KAFKA_TOPICS_QUALITY", "cascade.quality" + suffix},
        {"CASCADE_KAFKA_TOPICS_ROUTER_UPDATES", "cascade.router-updates" + suffix},
        {"CASCADE_KAFKA_TOPICS_BUDGETS", "cascade.budgets" + suffix},
        {"CASCADE_KAFKA_TOPICS_SPEND", "cascade.spend" + suffix},
        {"CASCADE_KAFKA_TOPICS_ALERTS", "cascade.alerts" + suffix},
        {"CASCADE_KAFKA_TOPICS_CANCELS", "cascade.cancels" + suffix},
        {"CASCADE_KAFKA_WORKER_GROUP", "cascade-workers" + suffix},
        {"CASCADE_KAFKA_LEDGER_GROUP", "cascade-ledger" + suffix},
        {"CASCADE_KAFKA_PARTITIONS", "16"},
        {"CASCADE_KAFKA_FETCH_WAIT_MAX_MS", "2"},
        {"CASCADE_KAFKA_EXTRA", "session.timeout.ms=6000;heartbeat.interval.ms=500"},
        {"CASCADE_WORKER_COMMIT_INTERVAL_MS", "200"},
    };
    for (const char* p : kProviders) {
      std::string prefix = std::string("CASCADE_PROVIDERS_") + p;
      for (auto& c : prefix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      env[prefix + "_BASE_URL"] = upstream_->base_url();
      if (auto f = provider_faults.find(p); f != provider_faults.end()) {
        SimulatedUpstreamOptions own = up;
        own.faults = f->second;
        auto& server = faulty_upstreams_[p];
        server = std::make_unique<SimulatedUpstream>(own);
        ASSERT_TRUE(server->start());
        env[prefix + "_BASE_URL"] = server->base_url();
      }
      env[prefix + "_API_KEY_ENV"] = "";
      env[prefix + "_KIND"] = "openai";  // the simulator speaks OpenAI's wire format
    }
    for (const auto& [k, v] : env_overrides) env[k] = v;
    auto config = load_config(config_file_, env_of(env));
    ASSERT_TRUE(config) << config.error().message;
    config_ = *config;

    auto topics = cascade_topics(config_.kafka);
    topics.push_back({reply_topic_, 8});
    auto created = broker_ ? broker_->create_topics(topics) : create_topics_admin(config_.kafka, bootstrap_, topics);
    ASSERT_TRUE(created) << created.error().message;

    auto catalog = ModelCatalog::load(config_.catalog);
    ASSERT_TRUE(catalog) << catalog.error().message;
    catalog_ = std::make_unique<ModelCatalog>(std::move(*catalog));

    state_ = open_state(temp_dir_.sub("worker"));
    ASSERT_TRUE(state_);

    if (with_budgets) {
      start_ledger_with_budgets();
    } else {
      auto ledger = LedgerConsumer::start(config_.kafka, bootstrap_, aggregator_, nullptr);
      ASSERT_TRUE(ledger) << ledger.error().message;
      ledger_ = std::move(*ledger);
    }

    auto client = CascadeClient::open(config_.kafka, bootstrap_, reply_topic_);
    ASSERT_TRUE(client) << client.error().message;
    client_ = std::move(*client);

    if (with_tuning) start_tuning();
    start_worker();
  }

  // What `cascade ledger` and `cascade worker` run for the closed loop.
  void start_tuning() {
    tuned_cuts_ = std::make_shared<TunedCuts>();
    auto updates = follow_router_updates(config_.kafka, bootstrap_, config_.kafka.router_updates_topic, tuned_cuts_);
    ASSERT_TRUE(updates) << updates.error().message;
    router_updates_ = std::move(*updates);
    auto tuning = RouterTuningService::start(config_.kafka, bootstrap_, config_.kafka.router_updates_topic,
                                             tuning_options(config_.quality));
    ASSERT_TRUE(tuning) << tuning.error().message;
    tuning_ = std::move(*tuning);
    auto followers = follow_quality_topic(config_.kafka, bootstrap_, quality_, tuning_.get());
    ASSERT_TRUE(followers) << followers.error().message;
    quality_followers_ = std::move(*followers);
  }

  void start_ledger_with_budgets() {
    LedgerStoreOptions store_options;
    store_options.dir = temp_dir_.sub("ledger");
    auto store = LedgerStore::open(store_options);
    ASSERT_TRUE(store) << store.error().message;
    ledger_store_ = std::move(*store);
    ledger_budgets_ = std::make_unique<BudgetBook>(budgets_from_config(config_));
    BudgetMonitorOptions monitor_options = budget_monitor_options(config_);
    monitor_options.heartbeat_ms = 200;
    auto monitor = BudgetMonitor::start(config_.kafka, bootstrap_, *ledger_store_, *ledger_budgets_, nullptr,
                                        monitor_options);
    ASSERT_TRUE(monitor) << monitor.error().message;
    budget_monitor_ = std::move(*monitor);
    auto ledger = LedgerConsumer::start(config_.kafka, bootstrap_,
                                        {.store = ledger_store_.get(), .aggregator = &aggregator_,
                                         .budgets = budget_monitor_.get()});
    ASSERT_TRUE(ledger) << ledger.error().message;
    ledger_ = std::move(*ledger);
    auto table = BudgetTable::open(config_, bootstrap_);
    ASSERT_TRUE(table) << table.error().message;
    ASSERT_TRUE((*table)->restore());
    ASSERT_TRUE((*table)->start());
    budget_table_ = std::move(*table);
  }

  // A YAML file of the test's own, over the built-in defaults.
  void use_config_yaml(const std::string& yaml) { config_file_ = temp_dir_.write("cascade.yaml", yaml); }

  // Tenant limits are a map keyed by tenant name: set them through a YAML file.
  void start_pipeline_with_tenant_limit(const std::string& tenant, double rps, long max_wait_ms) {
    std::ostringstream yaml;
    yaml << "tenants:\n  " << tenant << ":\n    requests_per_second: " << rps << "\n    max_wait_ms: " << max_wait_ms
         << "\n";
    use_config_yaml(yaml.str());
    start_pipeline();
  }

  // The state a worker process opens (store, changelog restore, cache), in
  // `dir`; several may share the broker's changelog, as workers on several hosts.
  std::unique_ptr<WorkerState> open_state(const std::filesystem::path& dir) {
    Config config = config_;
    config.state.dir = dir.string();
    config.state.maintenance_interval_ms = 0;
    auto state = WorkerState::open(config, bootstrap_, *catalog_, broker_ != nullptr);
    if (!state) {
      ADD_FAILURE() << "WorkerState::open: " << state.error().message;
      return nullptr;
    }
    return std::move(*state);
  }

  void start_worker() {
    WorkerOptions options;
    options.config = config_;
    options.bootstrap = bootstrap_;
    options.catalog = catalog_.get();
    options.completed = state_->completed();
    options.changelog = state_->changelog();
    options.cache = state_->cache();
    options.metrics = &worker_metrics_;
    options.budgets = budget_table_.get();
    options.tuned_cuts = tuned_cuts_;
    options.env = no_env();
    auto worker = Worker::start(std::move(options));
    ASSERT_TRUE(worker) << worker.error().message;
    workers_.push_back(std::move(*worker));
  }

  void TearDown() override {
    for (auto& w : workers_) w->stop(5000);
    workers_.clear();
    client_.reset();
    if (ledger_) ledger_->stop();
    ledger_.reset();
    quality_followers_.stop();
    quality_followers_ = {};
    tuning_.reset();
    if (router_updates_) router_updates_->stop();
    router_updates_.reset();
    if (budget_table_) budget_table_->stop();
    budget_table_.reset();
    if (budget_monitor_) budget_monitor_->stop();
    budget_monitor_.reset();
    ledger_store_.reset();
    state_.reset();
    if (upstream_) upstream_->stop();
    for (auto& [name, server] : faulty_upstreams_) server->stop();
    broker_.reset();
  }

  PromptEvent prompt(std::size_t i, const std::string& text, int tenants = 8) {
    PromptEvent e;
    e.id = "it-" + std::to_string(instance_) + "-" + std::to_string(i);
    e.tenant = "tenant-" + std::to_string(i % tenants);
    e.reply_to = reply_topic_;
    e.messages = nlohmann::json::array({{{"role", "user"}, {"content", text}}});
    e.metadata = {{"n", i}};
    return e;
  }

  // Where the requests are, for a failed wait: what each worker read,
  // finished and holds, and what the upstream served.
  std::string where_requests_are() const {
    std::string out = std::to_string(client_->outstanding()) + " unanswered;";
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      const auto& s = workers_[i]->stats();
      out += " worker " + std::to_string(i) + ": consumed " + std::to_string(s.consumed.load()) + ", completed " +
             std::to_string(s.completed.load()) + ", failed " + std::to_string(s.failed.load()) + ", in flight " +
             std::to_string(s.in_flight.load()) + ", provider calls " + std::to_string(s.provider_calls.load()) +
             ", pauses " + std::to_string(s.pauses.load()) + ", followers " +
             std::to_string(s.single_flight_followers.load()) + ", exact hits " +
             std::to_string(s.cache_hits_exact.load()) + ";";
    }
    out += " upstream served " + std::to_string(upstream_->requests_served());
    return out;
  }

  // The first `n` pieces the simulated upstream streams for `prompt`, from the
  // model the reply's first chunk names; "" before that chunk arrives. The
  // worker merges deltas that reach it together (worker.coalesce_ms), so a
  // test waits for text, not for a number of chunks.
  std::string first_pieces(const CollectedReply& reply, const std::string& prompt, int n) const {
    if (reply.chunks.empty()) return {};
    const ModelInfo* model = catalog_->find(reply.chunks.front().body.value("model", ""));
    if (!model) return {};
    const auto pieces = SimulatedUpstream::answer_pieces(model->upstream_model, prompt, kChunks);
    std::string out;
    for (int i = 0; i < n && i < static_cast<int>(pieces.size()); ++i) out += pieces[i];
    return out;
  }

  // Waits until the ledger has applied `n` distinct cost events.
  bool wait_ledger(std::uint64_t n, std::chrono::seconds timeout) {
    return eventually([&] { return aggregator_.total().requests >= n; }, timeout);
  }

  static inline int instance_ = 0;
  // What the pipeline keeps on disk (state stores, the ledger's store,
  // configuration files); removed after everything that uses it.
  TempDir temp_dir_{"cascade-it"};
  std::unique_ptr<EmbeddedBroker> broker_;  // null on a real cluster
  std::string bootstrap_;
  std::string reply_topic_;
  std::unique_ptr<SimulatedUpstream> upstream_;
  std::map<std::string, std::unique_ptr<SimulatedUpstream>> faulty_upstreams_;
  Config config_;
  std::unique_ptr<ModelCatalog> catalog_;
  std::string config_file_;
  std::unique_ptr<WorkerState> state_;
  LedgerAggregator aggregator_;
  WorkerMetrics worker_metrics_;
  std::unique_ptr<LedgerConsumer> ledger_;
  std::unique_ptr<LedgerStore> ledger_store_;
  std::unique_ptr<BudgetBook> ledger_budgets_;
  std::unique_ptr<BudgetMonitor> budget_monitor_;
  std::unique_ptr<BudgetTable> budget_table_;
  QualityAggregator quality_;  // fed when with_tuning
  std::unique_ptr<RouterTuningService> tuning_;
  QualityFollowers quality_followers_;
  std::shared_ptr<TunedCuts> tuned_cuts_;  // null unless with_tuning
  std::unique_ptr<TopicFollower> router_updates_;
  std::unique_ptr<CascadeClient> client_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace cascade::testing
