// McpServer: MCP's JSON-RPC 2.0 messages, server side (mcp/mcp.h).
#include <atomic>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "mcp/mcp.h"
#include "mcp/mcp_tools.h"

#ifndef CASCADE_VERSION
#define CASCADE_VERSION "0.0.0"
#endif

namespace cascade {
namespace {

using json = nlohmann::json;

// Deeper JSON is refused: what follows (the router, providers, dumps) recurses per level.
constexpr int kMaxNestingDepth = 128;
// Values echoed in error messages are cut.
constexpr std::size_t kMaxEchoBytes = 64;
constexpr std::size_t kMaxParserMessageBytes = 256;

// Versions that know a tool's title, outputSchema and structuredContent,
// and a tool's annotations. Versions are dates: they compare as text.
constexpr std::string_view kStructuredSince = "2025-06-18";
constexpr std::string_view kAnnotationsSince = "2025-03-26";

std::string cut(std::string_view text, std::size_t bytes) {
  if (text.size() <= bytes) return std::string(text);
  std::size_t n = bytes;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  return std::string(text.substr(0, n)) + "...";
}

// Responses must never throw on bad UTF-8 (an answer's text from upstream): it becomes U+FFFD.
std::string dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string error_response(const json& id, JsonRpcError code, std::string message) {
  return dump({{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", static_cast<int>(code)}, {"message", std::move(message)}}}});
}

std::string result_response(const json& id, json result) {
  return dump({{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}});
}

bool valid_id(const json& id) { return id.is_string() || id.is_number_integer(); }

std::string negotiate(const std::string& requested) {
  for (const std::string_view version : kMcpProtocolVersions)
    if (version == requested) return requested;
  return std::string(kMcpProtocolVersions.front());
}

// A tool as a session of `version` knows tools.
json tool_for_version(const json& definition, const std::string& version) {
  json tool = definition;
  if (version < kStructuredSince) {
    tool.erase("outputSchema");
    if (version >= kAnnotationsSince && tool.contains("title")) tool["annotations"]["title"] = tool["title"];
    tool.erase("title");
  }
  if (version < kAnnotationsSince) tool.erase("annotations");
  return tool;
}

json text_content(std::string text) { return {{"type", "text"}, {"text", std::move(text)}}; }

json tool_error(std::string text) { return {{"content", json::array({text_content(std::move(text))})}, {"isError", true}}; }

std::string error_text(const Error& error) { return std::string(to_string(error.code)) + ": " + error.message; }

// A successful tool result: the structured result, and as text for clients
// (and versions) without structuredContent. complete_prompt's answer leads
// as plain text, the rest follows as JSON.
json tool_success(McpToolKind kind, json structured, const std::string& version) {
  json content = json::array();
  if (kind == McpToolKind::complete_prompt) {
    content.push_back(text_content(structured.value("answer", "")));
    json details = structured;
    details.erase("answer");
    content.push_back(text_content(dump(details)));
  } else {
    content.push_back(text_content(dump(structured)));
  }
  json result = {{"content", std::move(content)}};
  if (version >= kStructuredSince) result["structuredContent"] = std::move(structured);
  return result;
}

}  // namespace

// Shared with the backend's callbacks, which may outlive the server.
struct McpServer::State {
  McpServerOptions options;
  std::shared_ptr<McpBackend> backend;

  // A request being answered by the backend: answered once, by its result
  // or by the client's cancellation, whichever comes first.
  struct InFlight {
    std::atomic<bool> answered{false};
    Respond respond;
  };

  std::mutex mu;
  std::string version;  // negotiated; "" before initialize
  std::unordered_multimap<std::string, std::shared_ptr<InFlight>> in_flight;  // by the id's JSON text

  std::string session_version() {
    std::lock_guard lock(mu);
    return version.empty() ? std::string(kMcpProtocolVersions.front()) : version;
  }

  void forget(const std::string& key, const std::shared_ptr<InFlight>& call) {
    std::lock_guard lock(mu);
    auto [first, last] = in_flight.equal_range(key);
    for (auto it = first; it != last; ++it) {
      if (it->second == call) {
        in_flight.erase(it);
        return;
      }
    }
  }

  void cancel(const json& request_id) {
    if (!valid_id(request_id)) return;
    std::vector<std::shared_ptr<InFlight>> cancelled;
    {
      std::lock_guard lock(mu);
      auto [first, last] = in_flight.equal_range(request_id.dump());
      for (auto it = first; it != last; ++it) cancelled.push_back(it->second);
      in_flight.erase(first, last);
    }
    // The client stops waiting: the request gets no response (its result, if
    // it still comes, is dropped).
    for (const auto& call : cancelled)
      if (!call->answered.exchange(true)) call->respond(std::nullopt);
  }
};

McpServer::McpServer(McpServerOptions options, std::shared_ptr<McpBackend> backend)
    : state_(std::make_shared<State>()) {
  if (!valid_tenant(options.tenant))
    throw std::invalid_argument("McpServer: '" + options.tenant + "' is not a valid tenant");
  if (!backend) throw std::invalid_argument("McpServer: no backend");
  if (options.server_version.empty()) options.server_version = CASCADE_VERSION;
  state_->options = std::move(options);
  state_->backend = std::move(backend);
  (void)mcp_tools();  // a tool schema the validator cannot enforce fails here, not on a call
}

McpServer::~McpServer() = default;

std::string McpServer::protocol_version() const {
  std::lock_guard lock(state_->mu);
  return state_->version;
}

const std::string& McpServer::tenant() const { return state_->options.tenant; }

namespace {

// Runs a validated tool call on the backend and answers through `call`.
template <class Request, class Answer>
void run_tool(const std::shared_ptr<McpServer::State>& state, McpToolKind kind, const json& id,
              Result<Request> request,
              void (McpBackend::*method)(const McpCaller&, Request, McpCallback<Answer>),
              McpServer::Respond respond) {
  if (!request) {
    respond(result_response(id, tool_error(request.error().message)));
    return;
  }
  auto call = std::make_shared<McpServer::State::InFlight>();
  call->respond = std::move(respond);
  const std::string key = id.dump();
  {
    std::lock_guard lock(state->mu);
    state->in_flight.emplace(key, call);
  }
  const std::string version = state->session_version();
  const McpCaller caller{state->options.tenant};
  std::weak_ptr<McpServer::State> weak = state;
  auto done = [weak, call, key, id, kind, version](Result<Answer> answer) {
    if (auto alive = weak.lock()) alive->forget(key, call);
    if (call->answered.exchange(true)) return;  // cancelled, or answered already
    json result = answer ? tool_success(kind, structured_result(*answer), version) : tool_error(error_text(answer.error()));
    call->respond(result_response(id, std::move(result)));
  };
  try {
    (state->backend.get()->*method)(caller, std::move(*request), std::move(done));
  } catch (const std::exception& e) {
    // A backend must not throw; if it does, the request still gets one answer.
    spdlog::error("mcp: the backend threw on a tools/call: {}", e.what());
    state->forget(key, call);
    if (!call->answered.exchange(true))
      call->respond(error_response(id, JsonRpcError::internal_error, std::string("Internal error: ") + e.what()));
  }
}

void call_tool(const std::shared_ptr<McpServer::State>& state, const json& id, const json& params,
               McpServer::Respond respond) {
  const auto name = params.find("name");
  if (name == params.end() || !name->is_string()) {
    respond(error_response(id, JsonRpcError::invalid_params, "Invalid params: tools/call needs a tool 'name' (a string)"));
    return;
  }
  const McpTool* tool = find_mcp_tool(name->get_ref<const std::string&>());
  if (!tool) {
    respond(error_response(id, JsonRpcError::invalid_params,
                           "Unknown tool: " + cut(name->get_ref<const std::string&>(), kMaxEchoBytes)));
    return;
  }
  json arguments = json::object();
  if (auto given = params.find("arguments"); given != params.end() && !given->is_null()) {
    if (!given->is_object()) {
      respond(error_response(id, JsonRpcError::invalid_params, "Invalid params: 'arguments' must be an object"));
      return;
    }
    arguments = *given;
  }
  // The schema tools/list shows is the one enforced; what breaks it is the
  // tool's error, for the model to read and correct.
  if (const auto problems = tool->input.problems(arguments); !problems.empty()) {
    std::string text = "Invalid arguments for " + tool->name + ": ";
    for (std::size_t i = 0; i < problems.size(); ++i) text += (i ? "; " : "") + problems[i];
    if (arguments.contains("tenant"))
      text += ". The tenant is fixed by this session (" + state->options.tenant + "), never an argument";
    respond(result_response(id, tool_error(std::move(text))));
    return;
  }
  switch (tool->kind) {
    case McpToolKind::complete_prompt:
      return run_tool(state, tool->kind, id, completion_request(arguments), &McpBackend::complete_prompt,
                      std::move(respond));
    case McpToolKind::check_model_costs:
      return run_tool(state, tool->kind, id, cost_estimate_request(arguments), &McpBackend::estimate_costs,
                      std::move(respond));
    case McpToolKind::get_recommendation:
      return run_tool(state, tool->kind, id, route_request(arguments), &McpBackend::recommend_route,
                      std::move(respond));
    case McpToolKind::query_usage:
      return run_tool(state, tool->kind, id, usage_request(arguments), &McpBackend::query_usage, std::move(respond));
    case McpToolKind::set_budget:
      return run_tool(state, tool->kind, id, budget_change(arguments), &McpBackend::set_budget, std::move(respond));
  }
}

json initialize_result(McpServer::State& state, const std::string& version) {
  json server_info = {{"name", "cascade"}, {"version", state.options.server_version}};
  if (version >= kStructuredSince) server_info["title"] = "Cascade LLM cost optimizer";
  return {{"protocolVersion", version},
          {"capabilities", {{"tools", {{"listChanged", false}}}}},
          {"serverInfo", std::move(server_info)},
          {"instructions",
           "Cascade answers prompts at the lowest cost their quality allows, for tenant " + state.options.tenant +
               ". complete_prompt answers a prompt through Cascade (routed to the cheapest capable model, cached, "
               "charged to the tenant). check_model_costs and get_recommendation compare prices and explain routing "
               "without calling a model. query_usage reports the tenant's spend and savings; set_budget caps it."}};
}

}  // namespace

void McpServer::handle(std::string_view message, Respond respond) {
  const std::shared_ptr<State>& state = state_;
  if (message.size() > state->options.max_message_bytes) {
    respond(error_response(nullptr, JsonRpcError::invalid_request,
                           "Invalid Request: the message is " + std::to_string(message.size()) +
                               " bytes, larger than the " + std::to_string(state->options.max_message_bytes) +
                               "-byte limit"));
    return;
  }
  json j;
  bool too_deep = false;
  try {
    j = json::parse(message, [&](int depth, json::parse_event_t, json&) {
      if (depth > kMaxNestingDepth) too_deep = true;
      return !too_deep;
    });
  } catch (const json::exception& e) {
    std::string what = e.what();
    if (const auto close = what.find("] "); what.starts_with("[json.exception") && close != std::string::npos)
      what.erase(0, close + 2);
    respond(error_response(nullptr, JsonRpcError::parse_error, "Parse error: " + cut(what, kMaxParserMessageBytes)));
    return;
  }
  if (too_deep) {
    respond(error_response(nullptr, JsonRpcError::parse_error,
                           "Parse error: the message nests arrays/objects deeper than " +
                               std::to_string(kMaxNestingDepth) + " levels"));
    return;
  }
  if (j.is_array()) {
    respond(error_response(nullptr, JsonRpcError::invalid_request,
                           "Invalid Request: JSON-RPC batches are not supported (MCP 2025-06-18 removed them): send "
                           "one message at a time"));
    return;
  }
  if (!j.is_object()) {
    respond(error_response(nullptr, JsonRpcError::invalid_request, "Invalid Request: a message must be a JSON object"));
    return;
  }
  const bool has_id = j.contains("id");
  const json id = has_id && valid_id(j["id"]) ? j["id"] : json(nullptr);
  if (!j.contains("method")) {
    // A response to a request of ours: the server sends none, so there is
    // nothing to match it to, and responses are never answered.
    if (j.contains("result") || j.contains("error")) {
      spdlog::debug("mcp: ignoring a response from the client");
      respond(std::nullopt);
      return;
    }
    respond(error_response(id, JsonRpcError::invalid_request, "Invalid Request: no 'method'"));
    return;
  }
  if (j.value("jsonrpc", json()) != "2.0") {
    respond(error_response(id, JsonRpcError::invalid_request, "Invalid Request: 'jsonrpc' must be \"2.0\""));
    return;
  }
  if (!j["method"].is_string()) {
    respond(error_response(id, JsonRpcError::invalid_request, "Invalid Request: 'method' must be a string"));
    return;
  }
  if (has_id && !valid_id(j["id"])) {
    respond(error_response(nullptr, JsonRpcError::invalid_request,
                           "Invalid Request: 'id' must be a string or an integer (MCP forbids null)"));
    return;
  }
  const std::string& method = j["method"].get_ref<const std::string&>();
  static const json kNoParams = json::object();
  const json& params = j.contains("params") ? j["params"] : kNoParams;  // not copied: it may hold a long prompt

  if (!has_id) {  // a notification: never answered
    if (method == "notifications/cancelled" && params.is_object() && params.contains("requestId")) {
      spdlog::debug("mcp: request {} cancelled by the client", params["requestId"].dump());
      state->cancel(params["requestId"]);
    }
    // notifications/initialized and anything else: nothing to do.
    respond(std::nullopt);
    return;
  }
  if (!params.is_object()) {
    respond(error_response(id, JsonRpcError::invalid_params, "Invalid params: 'params' must be an object"));
    return;
  }

  if (method == "initialize") {
    const auto requested = params.find("protocolVersion");
    if (requested == params.end() || !requested->is_string()) {
      respond(error_response(id, JsonRpcError::invalid_params,
                             "Invalid params: initialize needs 'protocolVersion' (a string)"));
      return;
    }
    const std::string version = negotiate(requested->get<std::string>());
    {
      std::lock_guard lock(state->mu);
      state->version = version;
    }
    spdlog::info("mcp: session for tenant {}: protocol {} (client asked for {}), client {}", state->options.tenant,
                 version, cut(requested->get<std::string>(), kMaxEchoBytes),
                 cut(params.value("clientInfo", json::object()).value("name", "?"), kMaxEchoBytes));
    respond(result_response(id, initialize_result(*state, version)));
    return;
  }
  if (method == "ping") {
    respond(result_response(id, json::object()));
    return;
  }
  if (method == "tools/list") {
    if (params.contains("cursor") && !params["cursor"].is_null()) {
      respond(error_response(id, JsonRpcError::invalid_params,
                             "Invalid params: unknown cursor (tools/list has a single page)"));
      return;
    }
    const std::string version = state->session_version();
    json tools = json::array();
    for (const json& definition : mcp_tool_definitions()) tools.push_back(tool_for_version(definition, version));
    respond(result_response(id, {{"tools", std::move(tools)}}));
    return;
  }
  if (method == "tools/call") {
    call_tool(state, id, params, std::move(respond));
    return;
  }
  respond(error_response(id, JsonRpcError::method_not_found, "Method not found: " + cut(method, kMaxEchoBytes)));
}

}  // namespace cascade
