#include "apps/cascade/gateway_commands.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <random>
#include <thread>

#include "auth/api_keys.h"
#include "catalog/catalog.h"
#include "events/events.h"
#include "gateway/gateway.h"
#include "apps/cascade/mcp_stdio_backend.h"
#include "kafka/kafka.h"
#include "mcp/mcp.h"

namespace cascade::cli {
namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

int report_error(const Error& e) {
  std::fprintf(stderr, "cascade: %s: %s\n", std::string(to_string(e.code)).c_str(), e.message.c_str());
  return 1;
}

// The keys topic read to its end.
Result<std::unique_ptr<ApiKeyTable>> read_keys(const Config& config) {
  auto table = std::make_unique<ApiKeyTable>();
  auto read = read_topic_to_end(config.kafka, config.kafka.bootstrap, config.kafka.api_keys_topic,
                                [&](const KafkaRecord& record) {
                                  std::optional<std::string_view> value;
                                  if (!record.tombstone()) value = record.payload();
                                  if (auto ok = table->apply(record.key(), value); !ok)
                                    spdlog::warn("skipping an API key record: {}", ok.error().message);
                                });
  if (!read) return std::unexpected(read.error());
  return table;
}

std::string utc_time(std::int64_t ms) {
  if (ms <= 0) return "-";
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm);
  return buf;
}

// The gateway's MCP tools (/mcp): complete_prompt goes through the gateway
// itself (its reply topic, its limits, a cancel on timeout); the other tools
// are answered as `cascade mcp` answers them.
class GatewayMcpBackend final : public McpBackend {
 public:
  GatewayMcpBackend(std::shared_ptr<StdioMcpBackend> tools, const ModelCatalog& catalog)
      : tools_(std::move(tools)), catalog_(catalog) {}
  void attach(Gateway* gateway) { gateway_ = gateway; }

  void complete_prompt(const McpCaller& caller, CompletionRequest request,
                       McpCallback<CompletionAnswer> done) override {
    Gateway* gateway = gateway_.load();
    if (!gateway) return done(fail(ErrorCode::unavailable, "the gateway is not serving"));
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    char id[40];
    std::snprintf(id, sizeof id, "mcp-%016llx%016llx", static_cast<unsigned long long>(rng()),
                  static_cast<unsigned long long>(rng()));
    gateway->submit(completion_prompt_event(caller, request, id, ""),
                     [done = std::move(done), &catalog = catalog_](Result<FinalReply> reply) {
                       if (!reply) return done(std::unexpected(reply.error()));
                       done(completion_answer(std::move(*reply), catalog));
                     });
  }
  void estimate_costs(const McpCaller& caller, CostEstimateRequest request, McpCallback<CostEstimate> done) override {
    tools_->estimate_costs(caller, std::move(request), std::move(done));
  }
  void recommend_route(const McpCaller& caller, RouteRequest request,
                       McpCallback<RouteRecommendation> done) override {
    tools_->recommend_route(caller, std::move(request), std::move(done));
  }
  void query_usage(const McpCaller& caller, UsageRequest request, McpCallback<UsageSummary> done) override {
    tools_->query_usage(caller, std::move(request), std::move(done));
  }
  void set_budget(const McpCaller& caller, BudgetChange change, McpCallback<BudgetSetting> done) override {
    tools_->set_budget(caller, std::move(change), std::move(done));
  }

 private:
  std::shared_ptr<StdioMcpBackend> tools_;
  const ModelCatalog& catalog_;
  std::atomic<Gateway*> gateway_{nullptr};
};

}  // namespace

int gateway_service(const Config& config, const GatewayCommandOptions& command) {
  auto kafka = KafkaConnection::open(config.kafka);
  if (!kafka) return report_error(kafka.error());
  if (kafka->embedded())
    spdlog::warn("gateway: no kafka.bootstrap: an embedded broker of its own, which no worker reads; "
                 "pass --bootstrap-file or CASCADE_KAFKA_BOOTSTRAP");
  auto catalog = ModelCatalog::load(config.catalog);
  if (!catalog) return report_error(catalog.error());
  std::shared_ptr<ApiKeyTable> keys;
  std::unique_ptr<TopicFollower> keys_follower;
  if (config.gateway.auth == "keys") {
    keys = std::make_shared<ApiKeyTable>();
    auto follower = follow_api_keys(config.kafka, kafka->bootstrap(), config.kafka.api_keys_topic, keys);
    if (!follower) return report_error(follower.error());
    keys_follower = std::move(*follower);
    spdlog::info("gateway: {} API key(s) in force", keys->active());
  }
  // MCP at /mcp: its tools need the brokers the gateway uses.
  Config with_brokers = config;
  with_brokers.kafka.bootstrap = kafka->bootstrap();
  auto mcp_tools = StdioMcpBackend::open(with_brokers);
  if (!mcp_tools) return report_error(mcp_tools.error());
  auto mcp = std::make_shared<GatewayMcpBackend>(*mcp_tools, *catalog);

  GatewayOptions options;
  options.mcp = mcp;
  options.config = &config;
  options.bootstrap = kafka->bootstrap();
  options.broker = kafka->broker();
  options.catalog = &*catalog;
  options.keys = keys;
  auto gateway = Gateway::start(std::move(options));
  if (!gateway) return report_error(gateway.error());
  mcp->attach(gateway->get());
  if (!command.port_file.empty()) {
    const std::string tmp = command.port_file + ".tmp";
    if (std::FILE* f = std::fopen(tmp.c_str(), "w")) {
      std::fprintf(f, "%u\n", static_cast<unsigned>((*gateway)->port()));
      std::fclose(f);
      std::rename(tmp.c_str(), command.port_file.c_str());
    }
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  (*gateway)->stop();
  mcp->attach(nullptr);
  (*mcp_tools)->stop();
  if (keys_follower) keys_follower->stop();
  return 0;
}

int keys_create(const Config& config, const KeysCommandOptions& options) {
  const KeyRole role = options.admin ? KeyRole::admin : KeyRole::tenant;
  if (role == KeyRole::tenant && options.tenant.empty()) {
    std::fprintf(stderr, "cascade keys create: --tenant is required (or --admin for an operator key)\n");
    return 2;
  }
  auto key = generate_api_key(options.tenant, options.name, role, now_ms());
  if (!key) return report_error(key.error());
  auto ok = produce_record_and_wait(config.kafka, config.kafka.bootstrap, config.kafka.api_keys_topic,
                                    key->record.key_id, make_api_key_record(key->record), options.timeout_s * 1000);
  if (!ok) return report_error(ok.error());
  // The only time the key is ever shown: only its hash is stored.
  std::printf("%s\n", key->key.c_str());
  std::fprintf(stderr, "key %s for %s%s created; store it now, it is not shown again\n", key->record.key_id.c_str(),
               role == KeyRole::admin ? "admin use" : ("tenant " + options.tenant).c_str(),
               options.name.empty() ? "" : (" (" + options.name + ")").c_str());
  return 0;
}

int keys_list(const Config& config, const KeysCommandOptions& options) {
  auto table = read_keys(config);
  if (!table) return report_error(table.error());
  std::printf("%-16s  %-6s  %-24s  %-20s  %-20s  %s\n", "KEY ID", "ROLE", "TENANT", "CREATED", "REVOKED", "NAME");
  for (const ApiKeyRecord& r : (*table)->list()) {
    if (!options.tenant.empty() && r.tenant != options.tenant) continue;
    std::printf("%-16s  %-6s  %-24s  %-20s  %-20s  %s\n", r.key_id.c_str(), std::string(to_string(r.role)).c_str(),
                r.tenant.empty() ? "-" : r.tenant.c_str(), utc_time(r.created_ms).c_str(),
                utc_time(r.revoked_ms).c_str(), r.name.c_str());
  }
  return 0;
}

int keys_revoke(const Config& config, const KeysCommandOptions& options) {
  auto table = read_keys(config);
  if (!table) return report_error(table.error());
  for (ApiKeyRecord r : (*table)->list()) {
    if (r.key_id != options.key_id) continue;
    if (r.revoked()) {
      std::fprintf(stderr, "key %s was revoked at %s\n", r.key_id.c_str(), utc_time(r.revoked_ms).c_str());
      return 0;
    }
    r.revoked_ms = now_ms();
    auto ok = produce_record_and_wait(config.kafka, config.kafka.bootstrap, config.kafka.api_keys_topic, r.key_id,
                                      make_api_key_record(r), options.timeout_s * 1000);
    if (!ok) return report_error(ok.error());
    std::fprintf(stderr, "key %s revoked\n", r.key_id.c_str());
    return 0;
  }
  std::fprintf(stderr, "cascade keys revoke: no key %s\n", options.key_id.c_str());
  return 1;
}

}  // namespace cascade::cli
