#pragma once
// Cascade as a Model Context Protocol server (docs/mcp.md): the server side
// of MCP's JSON-RPC 2.0 messages, whatever carries them. `cascade mcp`
// carries them over stdio (apps/cascade/mcp_command.cpp); an HTTP gateway
// can carry the same messages over Streamable HTTP with its own backend.
//
//   transport ──message──▶ McpServer::handle ──validated, typed call──▶ McpBackend
//             ◀─response──                   ◀──Result<...> callback──
//
// McpServer speaks the protocol: initialize (version negotiation),
// notifications/initialized, ping, tools/list, tools/call,
// notifications/cancelled, and JSON-RPC's errors. It checks every tool's
// arguments against the JSON Schema that tools/list shows, turns them into
// the typed requests below, and the backend's results into tool results
// (text content, and structuredContent matching the tool's outputSchema).
//
// McpBackend does the work, asynchronously: a call returns at once or when
// it likes, and its callback runs once, on any thread. The caller's tenant
// (McpCaller) is fixed per session by the transport (stdio: the --tenant flag
// or mcp.tenant; HTTP: from the API key) and handed to every call; no tool
// takes a tenant from its arguments.
//
// The functions at the end are the tools' own computations (cost estimates,
// the router's recommendation, the budget record, the ledger's usage), so
// that every backend answers the same way.
#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "catalog/catalog.h"
#include "core/result.h"
#include "events/events.h"
#include "router/router.h"
#include "tokenizer/tokenizer.h"

namespace cascade {

class BudgetBook;  // budgets/budgets.h
struct Config;     // config/config.h

// ------------------------------------------------------------ the caller ----

// Who a session calls for. Fixed by the transport for the whole session.
struct McpCaller {
  std::string tenant;
};

// ---------------------------------------------------- the tools' requests ----

// complete_prompt: answered through Cascade (routing, caching, budgets).
struct CompletionRequest {
  nlohmann::json messages = nlohmann::json::array();  // OpenAI chat format; `prompt` is one user message
  std::string model = "auto";                          // "auto" or a catalog id (checked against the catalog)
  Preference preference = Preference::balanced;
  std::optional<int> max_tokens;                       // absent = limits.default_max_tokens
};

struct CompletionAnswer {
  FinalReply reply;                   // the request's final event
  std::optional<double> savings_usd;  // the baseline's cost of the same usage minus cost_usd, when known
  std::string baseline_model;         // what savings_usd is measured against ("" when unknown)
};

// check_model_costs: catalog prices, and a prompt's estimated cost per model.
struct CostEstimateRequest {
  nlohmann::json messages = nlohmann::json::array();  // empty = no prompt: prices only
  std::int64_t expected_output_tokens = 500;
  std::optional<Tier> tier;          // only this tier
  std::vector<std::string> models;   // only these catalog ids; empty = every routed model
};

struct ModelCostEstimate {
  std::string model;
  std::string provider;
  Tier tier = Tier::medium;
  double input_per_mtok = 0;
  double output_per_mtok = 0;
  double cached_input_per_mtok = 0;
  double blended_per_mtok = 0;  // blended_price(): (3 x input + output) / 4
  std::int64_t context_window = 0;
  // With a prompt: its input tokens as this model is billed for them, and
  // what it costs with expected_output_tokens of answer.
  std::int64_t input_tokens = 0;
  TokenCountMethod count_method = TokenCountMethod::exact;
  double estimated_cost_usd = 0;
  bool fits_context = true;  // input + expected output within the context window
};

struct CostEstimate {
  bool has_prompt = false;
  std::int64_t expected_output_tokens = 0;
  std::string price_version;
  std::string baseline_model;
  double baseline_cost_usd = 0;  // with a prompt: the estimate on the baseline model
  // Cheapest first: by estimated cost with a prompt, by blended price without.
  std::vector<ModelCostEstimate> models;
};

// get_recommendation: where the router would send a prompt, and why; no model call.
struct RouteRequest {
  nlohmann::json messages = nlohmann::json::array();
  Preference preference = Preference::balanced;
  std::string model = "auto";  // a catalog id: is the pin usable for this prompt?
  std::optional<int> max_tokens;
};

struct RouteRecommendation {
  std::string model;
  std::string provider;
  Tier tier = Tier::medium;
  double score = 0;      // RouteDecision::score: higher needs a stronger model
  double p_weak_ok = 0;  // the scorer's probability that the cheaper model does as well
  std::string reason;    // the route reason the final and cost events would carry
  std::string scorer;    // heuristic | learned | knn
  std::string scorer_description;
  Preference preference = Preference::balanced;
  // The preference's thresholds: complexity (heuristic: score < small -> small
  // tier, < medium -> medium) or probability (p_weak_ok >= small -> small, >= medium -> medium).
  std::string threshold_kind;
  double small_threshold = 0;
  double medium_threshold = 0;
  std::vector<std::pair<std::string, double>> drivers;  // largest first, at most 8
  std::string policy;       // a rule's policy or an experiment arm; "" = the thresholds above
  std::string rule;         // the rule that matched; "" = none
  std::string constraints;  // the hard constraints applied
  std::vector<std::string> skipped;    // cheaper models passed over, "id: why"
  std::vector<std::string> fallbacks;  // tried in order if the model fails
  std::int64_t input_tokens = 0;
  std::int64_t max_tokens = 0;     // the request's, else limits.default_max_tokens
  double max_cost_usd = 0;         // input + max_tokens of output on the model: what budgets reserve
  std::vector<std::string> providers_available;  // empty = none has its key set here: all assumed
};

// query_usage: the caller's usage from the ledger. `from`/`to` as the
// ledger's /api/usage takes them: "YYYY-MM-DD" (UTC) or "<N>d" (the last N
// days); "" = its default (from: the last 30 days; to: today).
struct UsageRequest {
  std::string from;
  std::string to;
};

struct UsageFigures {
  std::string key;  // the model id of a row; "" for the totals
  std::uint64_t requests = 0;
  std::uint64_t cache_hits = 0;
  double cache_hit_rate = 0;
  double cost_usd = 0;
  double baseline_cost_usd = 0;
  double savings_usd = 0;
  double savings_percent = 0;
  std::uint64_t input_tokens = 0;
  std::uint64_t output_tokens = 0;
};

struct UsageSummary {
  std::string tenant;
  std::string from_day;  // resolved by the ledger: "YYYY-MM-DD"
  std::string to_day;
  std::string baseline_model;
  UsageFigures totals;
  std::vector<UsageFigures> models;  // most requests first
};

// set_budget: a run-time budget of the caller's tenant (the whole tenant,
// one model or one tag) on kafka.topics.budgets, like `cascade budget set`.
struct BudgetChange {
  std::string model;  // a model budget of the tenant (catalog id)
  std::string tag;    // a tag budget of the tenant
  std::optional<double> daily_usd;    // absent = unchanged; 0 = no daily limit
  std::optional<double> monthly_usd;  // absent = unchanged; 0 = no monthly limit
  std::optional<double> soft_percent; // absent = unchanged
  bool clear = false;  // remove the run-time budget: the configured one applies again
};

struct BudgetSetting {
  std::string tenant;
  std::string scope;  // "" | model:<id> | tag:<tag>
  bool cleared = false;
  // The limits now in force for the scope (after a clear: the configured
  // ones, zeros when none).
  double daily_usd = 0;
  double monthly_usd = 0;
  double soft_percent = 80;
  std::string topic;  // where it was published
};

// ------------------------------------------------------------ the backend ----

template <class T>
using McpCallback = std::function<void(Result<T>)>;

// Does the tools' work. Every method may answer inline (before it returns)
// or later from any thread, and calls `done` exactly once. Errors are
// values: their code and message become the tool result's text, with
// isError (e.g. "budget_exceeded: ..."). Requests are already validated
// against the tool's schema; `caller` is the session's.
class McpBackend {
 public:
  virtual ~McpBackend() = default;
  virtual void complete_prompt(const McpCaller& caller, CompletionRequest request,
                               McpCallback<CompletionAnswer> done) = 0;
  virtual void estimate_costs(const McpCaller& caller, CostEstimateRequest request,
                              McpCallback<CostEstimate> done) = 0;
  virtual void recommend_route(const McpCaller& caller, RouteRequest request,
                               McpCallback<RouteRecommendation> done) = 0;
  virtual void query_usage(const McpCaller& caller, UsageRequest request, McpCallback<UsageSummary> done) = 0;
  virtual void set_budget(const McpCaller& caller, BudgetChange change, McpCallback<BudgetSetting> done) = 0;
};

// ------------------------------------------------------------- the server ----

// Protocol versions McpServer speaks, latest first. A client asking for one
// of them gets it; any other gets the latest.
inline constexpr std::array<std::string_view, 3> kMcpProtocolVersions = {"2025-06-18", "2025-03-26", "2024-11-05"};

struct McpServerOptions {
  std::string tenant;          // the session's caller (required)
  std::string server_version;  // serverInfo.version; "" = Cascade's version
  // A larger message is refused unread (-32600), so a hostile client cannot
  // make the server parse an arbitrary amount of JSON.
  std::size_t max_message_bytes = 4 << 20;
};

// The JSON-RPC codes MCP uses (JSON-RPC 2.0, section 5.1).
enum class JsonRpcError : int {
  parse_error = -32700,
  invalid_request = -32600,
  method_not_found = -32601,
  invalid_params = -32602,
  internal_error = -32603,
};

// One MCP session, server side.
//
// Threading: handle() may be called from any thread, also while earlier
// calls are still being answered; `respond` may run on the calling thread
// before handle() returns or later on a backend thread, so a transport
// serializes its own writes. State (the negotiated version, requests in
// flight) is shared with pending callbacks: destroying the server while a
// backend call is outstanding is safe (its result is dropped).
//
// Errors: protocol errors are JSON-RPC error responses (parse error, invalid
// request, method not found, invalid params: an unknown tool, tools/call
// without a name, a tools/list cursor). A tool's own failures (arguments
// that break its schema, a backend error) are tool results with isError, so
// the model can read and correct them. JSON-RPC batches (arrays), which MCP
// 2025-06-18 removed, are refused with -32600.
class McpServer {
 public:
  // respond(response) once per message: the response's JSON text (one line,
  // no newline), or nullopt when the message gets none (notifications, a
  // client's responses, a request the client cancelled).
  using Respond = std::function<void(std::optional<std::string> response)>;

  // std::invalid_argument when options.tenant is not a valid tenant or
  // backend is null (programmer errors: transports check tenants first).
  McpServer(McpServerOptions options, std::shared_ptr<McpBackend> backend);
  ~McpServer();
  McpServer(const McpServer&) = delete;
  McpServer& operator=(const McpServer&) = delete;

  void handle(std::string_view message, Respond respond);

  // The version agreed by initialize; "" before it.
  std::string protocol_version() const;
  const std::string& tenant() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

// The tools tools/list shows, as MCP Tool objects (name, title, description,
// inputSchema, outputSchema, annotations) under the latest protocol version.
const nlohmann::json& mcp_tool_definitions();

// ------------------------------------------- the tools' own computations ----
// Shared by every backend, so stdio and HTTP answer alike.

// The prompt event complete_prompt sends: the caller's tenant, the request's
// fields, stream off (the tool returns the whole answer), cache exact,
// metadata {"source":"mcp"}.
PromptEvent completion_prompt_event(const McpCaller& caller, const CompletionRequest& request, std::string id,
                                    std::string reply_to);

// savings_usd and baseline_model of a final event: its usage at the
// baseline model's price, minus cost_usd. (The cost event's baseline also
// counts attempts that were retried or escalated; the final event cannot.)
CompletionAnswer completion_answer(FinalReply reply, const ModelCatalog& catalog);

// check_model_costs. Tokens are counted per model as it is billed (exact for
// OpenAI models, o200k_base estimates for others; `tokens` null = bytes / 4).
// invalid_request naming an unknown model of request.models.
[[nodiscard]] Result<CostEstimate> estimate_model_costs(const ModelCatalog& catalog, const TokenCounter* tokens,
                                                        const CostEstimateRequest& request);

// get_recommendation: the router of a configuration, as `cascade route
// --explain` builds it. Immutable once created; recommend() is thread-safe.
class RouteAdvisor {
 public:
  // `available`: which providers a worker would use; null = those whose key
  // variable is set in this process, or all of them when none is (a laptop
  // asking how a deployment would route). Errors: a router model or rules
  // that do not load.
  [[nodiscard]] static Result<std::unique_ptr<RouteAdvisor>> create(const Config& config, const ModelCatalog& catalog,
                                                                    std::shared_ptr<const TokenCounter> tokens,
                                                                    ProviderAvailable available = nullptr);
  ~RouteAdvisor();

  // invalid_request / unavailable as Router::route (a pin that breaks a
  // constraint, no model meets them, no provider serves them).
  [[nodiscard]] Result<RouteRecommendation> recommend(const McpCaller& caller, const RouteRequest& request) const;

  struct Parts;

 private:
  explicit RouteAdvisor(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

// set_budget: the record to publish on kafka.topics.budgets (key, and value
// or nullopt for a tombstone when clearing) and the setting it makes. Limits
// the change leaves out keep their value in `current` (the budgets topic
// read to its end over the configured budgets), so the record is whole.
// invalid_request: both model and tag, an unknown model, nothing to change,
// soft_percent outside (0, 100], a negative limit.
struct BudgetRecord {
  std::string key;
  std::optional<std::string> value;
  BudgetSetting setting;
};
[[nodiscard]] Result<BudgetRecord> budget_record(const McpCaller& caller, const BudgetChange& change,
                                                 const BudgetBook& current, const ModelCatalog& catalog,
                                                 std::string topic, std::int64_t now_ms);

// query_usage: the ledger's /api/usage URL for the caller, per model, and
// its reply read back. `ledger_base_url` as mcp.ledger_url ("http://host:port").
std::string ledger_usage_url(std::string_view ledger_base_url, const McpCaller& caller, const UsageRequest& request);
// internal when the body is not /api/usage's JSON.
[[nodiscard]] Result<UsageSummary> parse_ledger_usage(std::string_view body, const McpCaller& caller);

}  // namespace cascade
