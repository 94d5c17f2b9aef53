#pragma once
// The McpBackend of `cascade mcp` (docs/mcp.md): a stdio session has one
// client, so one Kafka client serves it.
//
// complete_prompt, query_usage and set_budget run on the backend's own
// thread, in the order they arrive: prompt events are sent at once and their
// answers awaited together (several prompts are in flight at a time), while
// the ledger's /api/usage and a budget's publication block that thread until
// done (bounded by mcp.timeout_ms). check_model_costs and get_recommendation
// are computed on the caller's thread, before the call returns.
//
// Threading: every method may be called from any thread. Callbacks run on
// the backend's thread (or the caller's for the inline tools). stop() (or
// the destructor) answers what is still pending with `unavailable`.
#include <memory>

#include "config/config.h"
#include "core/result.h"
#include "mcp/mcp.h"

namespace cascade::cli {

class StdioMcpBackend final : public McpBackend {
 public:
  // Needs brokers (config.kafka.bootstrap): opens the Kafka client on
  // kafka.topics.replies, loads the catalog, the tokenizer and the router.
  [[nodiscard]] static Result<std::shared_ptr<StdioMcpBackend>> open(const Config& config);
  ~StdioMcpBackend() override;

  void complete_prompt(const McpCaller& caller, CompletionRequest request,
                       McpCallback<CompletionAnswer> done) override;
  void estimate_costs(const McpCaller& caller, CostEstimateRequest request, McpCallback<CostEstimate> done) override;
  void recommend_route(const McpCaller& caller, RouteRequest request,
                       McpCallback<RouteRecommendation> done) override;
  void query_usage(const McpCaller& caller, UsageRequest request, McpCallback<UsageSummary> done) override;
  void set_budget(const McpCaller& caller, BudgetChange change, McpCallback<BudgetSetting> done) override;

  // Stops the thread; calls still pending get `unavailable`. Idempotent.
  void stop();

  struct Impl;

 private:
  explicit StdioMcpBackend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The ledger's base URL `cascade mcp` asks: mcp.ledger_url, else
// http://<ledger.metrics_listen>.
std::string mcp_ledger_url(const Config& config);

}  // namespace cascade::cli
