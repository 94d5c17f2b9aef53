#pragma once
// Internal to mcp/: the five tools. What tools/list shows of each (its MCP
// Tool object), how arguments already checked against its inputSchema
// become the backend's typed request, and how the backend's result becomes
// structuredContent matching its outputSchema.
#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "mcp/json_schema.h"
#include "mcp/mcp.h"

namespace cascade {

enum class McpToolKind { complete_prompt, check_model_costs, get_recommendation, query_usage, set_budget };

struct McpTool {
  McpToolKind kind;
  std::string name;
  nlohmann::json definition;  // the Tool object under the latest protocol version
  JsonSchema input;           // its inputSchema, compiled
};

// The tools in tools/list order. Built once; a schema the validator cannot
// enforce is a programmer error (std::logic_error on first use).
const std::vector<McpTool>& mcp_tools();
// nullptr when no tool has that name.
const McpTool* find_mcp_tool(std::string_view name);

// Arguments valid against the tool's inputSchema to its request.
// invalid_request for what the schema does not say: `prompt` and `messages`
// together (or neither where one is required), `days` with `from`/`to`,
// `from` after `to`, both `model` and `tag`, a set_budget that changes nothing.
[[nodiscard]] Result<CompletionRequest> completion_request(const nlohmann::json& arguments);
[[nodiscard]] Result<CostEstimateRequest> cost_estimate_request(const nlohmann::json& arguments);
[[nodiscard]] Result<RouteRequest> route_request(const nlohmann::json& arguments);
[[nodiscard]] Result<UsageRequest> usage_request(const nlohmann::json& arguments);
[[nodiscard]] Result<BudgetChange> budget_change(const nlohmann::json& arguments);

// Results as structuredContent (each matches its tool's outputSchema).
nlohmann::json structured_result(const CompletionAnswer& answer);
nlohmann::json structured_result(const CostEstimate& estimate);
nlohmann::json structured_result(const RouteRecommendation& recommendation);
nlohmann::json structured_result(const UsageSummary& usage);
nlohmann::json structured_result(const BudgetSetting& setting);

}  // namespace cascade
