// McpServer over a fake backend: the handshake and version negotiation,
// tools/list, every tool's argument checks, JSON-RPC's error codes,
// notifications (never answered), asynchronous answers and cancellation.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <deque>
#include <thread>

#include "mcp/json_schema.h"
#include "mcp/mcp.h"

namespace cascade {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

McpServerOptions session(std::string tenant, std::size_t max_message_bytes = 4 << 20) {
  McpServerOptions options;
  options.tenant = std::move(tenant);
  options.max_message_bytes = max_message_bytes;
  return options;
}

// Records each call; answers at once with the canned result, or holds the
// callback when `defer` is set (answer_later() runs it).
class FakeBackend final : public McpBackend {
 public:
  struct Call {
    std::string tool;
    McpCaller caller;
  };
  std::vector<Call> calls;
  bool defer = false;
  std::optional<Error> fail_with;
  std::deque<std::function<void()>> held;

  CompletionRequest last_completion;
  CostEstimateRequest last_estimate;
  RouteRequest last_route;
  UsageRequest last_usage;
  BudgetChange last_budget;

  void complete_prompt(const McpCaller& caller, CompletionRequest request, McpCallback<CompletionAnswer> done) override {
    calls.push_back({"complete_prompt", caller});
    last_completion = request;
    CompletionAnswer answer;
    answer.reply.id = "mcp-1";
    answer.reply.content = "Paris.";
    answer.reply.model = "gpt-4o-mini";
    answer.reply.provider = "openai";
    answer.reply.finish_reason = "stop";
    answer.reply.usage = {12, 3};
    answer.reply.cost_usd = 0.00001;
    answer.reply.cache = CacheOutcome::miss;
    answer.reply.route = {"small", 0.1, "heuristic score=0.10 pref=balanced tier=small", ""};
    answer.savings_usd = 0.0002;
    answer.baseline_model = "gpt-4o";
    finish(std::move(done), std::move(answer));
  }
  void estimate_costs(const McpCaller& caller, CostEstimateRequest request, McpCallback<CostEstimate> done) override {
    calls.push_back({"check_model_costs", caller});
    last_estimate = request;
    CostEstimate estimate;
    estimate.has_prompt = !request.messages.empty();
    estimate.expected_output_tokens = request.expected_output_tokens;
    estimate.price_version = "test";
    estimate.baseline_model = "l";
    estimate.baseline_cost_usd = 0.01;
    ModelCostEstimate row;
    row.model = "s";
    row.provider = "p";
    row.tier = Tier::small;
    row.input_per_mtok = 0.1;
    row.output_per_mtok = 0.4;
    row.blended_per_mtok = 0.175;
    row.input_tokens = 10;
    row.estimated_cost_usd = 0.0002;
    estimate.models.push_back(row);
    finish(std::move(done), std::move(estimate));
  }
  void recommend_route(const McpCaller& caller, RouteRequest request, McpCallback<RouteRecommendation> done) override {
    calls.push_back({"get_recommendation", caller});
    last_route = request;
    RouteRecommendation r;
    r.model = "s";
    r.provider = "p";
    r.tier = Tier::small;
    r.reason = "heuristic score=0.05 pref=balanced tier=small";
    r.scorer = "heuristic";
    r.threshold_kind = "complexity";
    r.small_threshold = 0.3;
    r.medium_threshold = 0.6;
    r.drivers = {{"length", 0.05}};
    r.max_tokens = 1024;
    finish(std::move(done), std::move(r));
  }
  void query_usage(const McpCaller& caller, UsageRequest request, McpCallback<UsageSummary> done) override {
    calls.push_back({"query_usage", caller});
    last_usage = request;
    UsageSummary usage;
    usage.tenant = caller.tenant;
    usage.from_day = "2026-07-01";
    usage.to_day = "2026-07-30";
    usage.baseline_model = "gpt-4o";
    usage.totals = {"", 3, 1, 1.0 / 3, 0.01, 0.05, 0.04, 80, 100, 20};
    usage.models = {{"gpt-4o-mini", 3, 1, 1.0 / 3, 0.01, 0.05, 0.04, 80, 100, 20}};
    finish(std::move(done), std::move(usage));
  }
  void set_budget(const McpCaller& caller, BudgetChange change, McpCallback<BudgetSetting> done) override {
    calls.push_back({"set_budget", caller});
    last_budget = change;
    BudgetSetting setting;
    setting.tenant = caller.tenant;
    setting.scope = change.model.empty() ? "" : "model:" + change.model;
    setting.cleared = change.clear;
    setting.daily_usd = change.daily_usd.value_or(0);
    setting.monthly_usd = change.monthly_usd.value_or(0);
    setting.topic = "cascade.budgets";
    finish(std::move(done), std::move(setting));
  }

  void answer_later() {
    auto next = std::move(held.front());
    held.pop_front();
    next();
  }

 private:
  template <class T>
  void finish(McpCallback<T> done, T value) {
    auto run = [this, done = std::move(done), value = std::move(value)]() mutable {
      if (fail_with) {
        done(std::unexpected(*fail_with));
      } else {
        done(std::move(value));
      }
    };
    if (defer) {
      held.push_back(std::move(run));
    } else {
      run();
    }
  }
};

class McpServerTest : public ::testing::Test {
 protected:
  McpServerTest() : backend_(std::make_shared<FakeBackend>()), server_(session("acme"), backend_) {}

  // The responses to one message, parsed (a response per respond() with one).
  std::vector<json> send(std::string_view message) {
    std::vector<json> out;
    int calls = 0;
    server_.handle(message, [&](std::optional<std::string> response) {
      ++calls;
      if (!response) return;
      EXPECT_EQ(response->find('\n'), std::string::npos) << "stdio framing needs one line";
      out.push_back(json::parse(*response));
    });
    EXPECT_LE(calls, 1) << message;
    return out;
  }

  json request(std::string_view method, json params = json::object(), json id = 1) {
    auto responses = send(json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}.dump());
    if (responses.size() != 1) {
      ADD_FAILURE() << method << " got " << responses.size() << " responses";
      return json::object();
    }
    return responses[0];
  }

  json initialize(std::string_view version = "2025-06-18") {
    return request("initialize", {{"protocolVersion", version},
                                  {"capabilities", json::object()},
                                  {"clientInfo", {{"name", "test"}, {"version", "1"}}}});
  }

  // tools/call's result (fails the test on a JSON-RPC error).
  json call(std::string_view tool, json arguments) {
    const json response = request("tools/call", {{"name", tool}, {"arguments", arguments}});
    EXPECT_TRUE(response.contains("result")) << response.dump();
    return response.value("result", json::object());
  }

  // The text of an isError tool result; "" (and a failure) otherwise.
  std::string tool_error(std::string_view tool, json arguments) {
    const json result = call(tool, std::move(arguments));
    EXPECT_EQ(result.value("isError", false), true) << result.dump();
    if (!result.contains("content") || result["content"].empty()) return "";
    return result["content"][0].value("text", "");
  }

  static int error_code(const json& response) { return response.value("error", json::object()).value("code", 0); }

  std::shared_ptr<FakeBackend> backend_;
  McpServer server_;
};

// ----------------------------------------------------------------- handshake ----

TEST_F(McpServerTest, InitializeAnswersTheClientsVersionWithToolsAndServerInfo) {
  const json response = initialize();
  EXPECT_EQ(response["jsonrpc"], "2.0");
  EXPECT_EQ(response["id"], 1);
  const json& result = response["result"];
  EXPECT_EQ(result["protocolVersion"], "2025-06-18");
  EXPECT_EQ(result["capabilities"], json({{"tools", {{"listChanged", false}}}}));
  EXPECT_EQ(result["serverInfo"]["name"], "cascade");
  EXPECT_FALSE(result["serverInfo"]["version"].get<std::string>().empty());
  EXPECT_THAT(result["instructions"].get<std::string>(), HasSubstr("acme"));
  EXPECT_EQ(server_.protocol_version(), "2025-06-18");
  // The client's initialized notification gets no response.
  EXPECT_TRUE(send(R"({"jsonrpc":"2.0","method":"notifications/initialized"})").empty());
}

TEST_F(McpServerTest, EverySupportedVersionIsAnsweredAsAskedAnyOtherWithTheLatest) {
  for (const std::string_view version : kMcpProtocolVersions)
    EXPECT_EQ(initialize(version)["result"]["protocolVersion"], version);
  // A newer client (the TypeScript SDK asks for 2025-11-25) and a bogus one.
  EXPECT_EQ(initialize("2025-11-25")["result"]["protocolVersion"], "2025-06-18");
  EXPECT_EQ(initialize("1.0.0")["result"]["protocolVersion"], "2025-06-18");
  EXPECT_EQ(kMcpProtocolVersions.front(), "2025-06-18");
}

TEST_F(McpServerTest, InitializeWithoutAProtocolVersionIsInvalidParams) {
  const json response = request("initialize", {{"capabilities", json::object()}});
  EXPECT_EQ(error_code(response), -32602);
  EXPECT_THAT(response["error"]["message"].get<std::string>(), HasSubstr("protocolVersion"));
  EXPECT_EQ(server_.protocol_version(), "");
}

TEST_F(McpServerTest, PingAnswersAnEmptyResult) {
  EXPECT_EQ(request("ping", json::object(), "p-1"), json({{"jsonrpc", "2.0"}, {"id", "p-1"}, {"result", json::object()}}));
}

// ----------------------------------------------------------------- tools/list ----

TEST_F(McpServerTest, ToolsListShowsTheFiveToolsWithSchemas) {
  initialize();
  const json tools = request("tools/list")["result"]["tools"];
  std::vector<std::string> names;
  for (const json& tool : tools) {
    names.push_back(tool["name"]);
    EXPECT_FALSE(tool["title"].get<std::string>().empty());
    EXPECT_GT(tool["description"].get<std::string>().size(), 80u) << tool["name"];
    EXPECT_EQ(tool["inputSchema"]["type"], "object");
    EXPECT_EQ(tool["inputSchema"]["additionalProperties"], false);
    EXPECT_FALSE(tool["inputSchema"]["properties"].contains("tenant")) << "the session fixes the tenant";
    EXPECT_EQ(tool["outputSchema"]["type"], "object");
    EXPECT_TRUE(tool["annotations"].contains("readOnlyHint"));
    // Both schemas are ones the validator enforces in full.
    EXPECT_TRUE(JsonSchema::compile(tool["inputSchema"])) << tool["name"];
    EXPECT_TRUE(JsonSchema::compile(tool["outputSchema"])) << tool["name"];
  }
  EXPECT_THAT(names, ::testing::ElementsAre("complete_prompt", "check_model_costs", "get_recommendation",
                                            "query_usage", "set_budget"));
  EXPECT_EQ(tools, mcp_tool_definitions());
}

TEST_F(McpServerTest, OlderVersionsGetToolsWithoutTheFieldsTheyDoNotKnow) {
  initialize("2025-03-26");
  for (const json& tool : request("tools/list")["result"]["tools"]) {
    EXPECT_FALSE(tool.contains("title"));
    EXPECT_FALSE(tool.contains("outputSchema"));
    EXPECT_FALSE(tool["annotations"]["title"].get<std::string>().empty());
  }
  EXPECT_FALSE(call("query_usage", json::object()).contains("structuredContent"));
  initialize("2024-11-05");
  for (const json& tool : request("tools/list")["result"]["tools"]) {
    EXPECT_FALSE(tool.contains("annotations"));
    EXPECT_TRUE(tool.contains("inputSchema"));
  }
}

TEST_F(McpServerTest, ACursorIsInvalidParamsSinceThereIsOnePage) {
  EXPECT_EQ(error_code(request("tools/list", {{"cursor", "page-2"}})), -32602);
}

// ------------------------------------------------------------- tool calls ----

TEST_F(McpServerTest, CompletePromptSendsThePromptForTheSessionsTenantAndReturnsTheAnswer) {
  initialize();
  const json result = call("complete_prompt", {{"prompt", "Capital of France?"}, {"preference", "cost"}, {"max_tokens", 64}});
  ASSERT_EQ(backend_->calls.size(), 1u);
  EXPECT_EQ(backend_->calls[0].caller.tenant, "acme");
  const CompletionRequest& r = backend_->last_completion;
  EXPECT_EQ(r.messages, json::parse(R"([{"role":"user","content":"Capital of France?"}])"));
  EXPECT_EQ(r.model, "auto");
  EXPECT_EQ(r.preference, Preference::cost);
  EXPECT_EQ(r.max_tokens, 64);
  EXPECT_FALSE(result.contains("isError"));
  EXPECT_EQ(result["content"][0], json({{"type", "text"}, {"text", "Paris."}}));
  // The details as JSON text for clients without structuredContent.
  EXPECT_EQ(json::parse(result["content"][1]["text"].get<std::string>())["model"], "gpt-4o-mini");
  const json& s = result["structuredContent"];
  EXPECT_EQ(s["answer"], "Paris.");
  EXPECT_EQ(s["model"], "gpt-4o-mini");
  EXPECT_EQ(s["cost_usd"], 0.00001);
  EXPECT_EQ(s["savings_usd"], 0.0002);
  EXPECT_EQ(s["cache"], "miss");
  EXPECT_EQ(s["route_reason"], "heuristic score=0.10 pref=balanced tier=small");
}

TEST_F(McpServerTest, MessagesArePassedThroughAsGiven) {
  const json messages = json::parse(
      R"([{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi"}],"name":"u1"}])");
  call("complete_prompt", {{"messages", messages}, {"model", "gpt-4o"}});
  EXPECT_EQ(backend_->last_completion.messages, messages);
  EXPECT_EQ(backend_->last_completion.model, "gpt-4o");
  EXPECT_EQ(backend_->last_completion.max_tokens, std::nullopt);
}

TEST_F(McpServerTest, EveryToolsStructuredResultMatchesItsOutputSchema) {
  initialize();
  const std::vector<std::pair<std::string, json>> calls = {
      {"complete_prompt", {{"prompt", "hi"}}},
      {"check_model_costs", {{"prompt", "hi"}, {"tier", "small"}, {"models", {"s"}}, {"expected_output_tokens", 0}}},
      {"get_recommendation", {{"prompt", "hi"}, {"preference", "quality"}}},
      {"query_usage", {{"days", 7}}},
      {"set_budget", {{"daily_usd", 5}, {"model", "gpt-4o"}}},
  };
  for (const auto& [tool, arguments] : calls) {
    const json result = call(tool, arguments);
    ASSERT_TRUE(result.contains("structuredContent")) << tool;
    json output_schema;
    for (const json& definition : mcp_tool_definitions())
      if (definition["name"] == tool) output_schema = definition["outputSchema"];
    auto schema = JsonSchema::compile(output_schema);
    ASSERT_TRUE(schema);
    EXPECT_THAT(schema->problems(result["structuredContent"]), ::testing::IsEmpty()) << tool;
    // The same result as JSON text (the spec's advice for older clients).
    EXPECT_FALSE(result["content"].back()["text"].get<std::string>().empty());
    EXPECT_EQ(backend_->calls.back().caller.tenant, "acme");
  }
  EXPECT_EQ(backend_->last_estimate.tier, Tier::small);
  EXPECT_EQ(backend_->last_estimate.models, std::vector<std::string>{"s"});
  EXPECT_EQ(backend_->last_estimate.expected_output_tokens, 0);
  EXPECT_EQ(backend_->last_route.preference, Preference::quality);
  EXPECT_EQ(backend_->last_usage.from, "7d");
  EXPECT_EQ(backend_->last_budget.model, "gpt-4o");
  EXPECT_EQ(backend_->last_budget.daily_usd, 5);
  EXPECT_EQ(backend_->last_budget.monthly_usd, std::nullopt);
}

TEST_F(McpServerTest, DefaultsOfTheOptionalArguments) {
  call("check_model_costs", json::object());
  EXPECT_TRUE(backend_->last_estimate.messages.empty());
  EXPECT_EQ(backend_->last_estimate.expected_output_tokens, 500);
  EXPECT_FALSE(backend_->last_estimate.tier);
  call("query_usage", json::object());
  EXPECT_EQ(backend_->last_usage.from, "30d");
  EXPECT_EQ(backend_->last_usage.to, "");
  call("query_usage", {{"from", "2026-07-01"}, {"to", "2026-07-14"}});
  EXPECT_EQ(backend_->last_usage.from, "2026-07-01");
  EXPECT_EQ(backend_->last_usage.to, "2026-07-14");
  call("set_budget", {{"clear", true}, {"tag", "research"}});
  EXPECT_TRUE(backend_->last_budget.clear);
  EXPECT_EQ(backend_->last_budget.tag, "research");
  // A tool call without arguments is one with {}.
  const json response = request("tools/call", {{"name", "query_usage"}});
  EXPECT_FALSE(response["result"].contains("isError"));
}

TEST_F(McpServerTest, ABackendErrorIsAToolErrorWithItsCode) {
  backend_->fail_with = Error{ErrorCode::budget_exceeded, "budget exceeded: acme tenant daily limit $1.00"};
  EXPECT_EQ(tool_error("complete_prompt", {{"prompt", "hi"}}),
            "budget_exceeded: budget exceeded: acme tenant daily limit $1.00");
  backend_->fail_with = Error{ErrorCode::unavailable, "the ledger at http://127.0.0.1:1 did not answer"};
  EXPECT_THAT(tool_error("query_usage", json::object()), HasSubstr("unavailable: the ledger"));
}

// ------------------------------------------------- arguments against schemas ----

TEST_F(McpServerTest, CompletePromptArgumentsAreChecked) {
  EXPECT_THAT(tool_error("complete_prompt", json::object()), HasSubstr("give 'prompt' (text) or 'messages'"));
  EXPECT_THAT(tool_error("complete_prompt", {{"prompt", "a"}, {"messages", {{{"role", "user"}, {"content", "b"}}}}}),
              HasSubstr("either 'prompt' or 'messages', not both"));
  EXPECT_THAT(tool_error("complete_prompt", {{"prompt", ""}}), HasSubstr("'prompt' must be at least 1 character long"));
  EXPECT_THAT(tool_error("complete_prompt", {{"prompt", 42}}), HasSubstr("'prompt' must be a string, got 42"));
  EXPECT_THAT(tool_error("complete_prompt", {{"prompt", "a"}, {"max_tokens", 0}}),
              HasSubstr("'max_tokens' must be at least 1, got 0"));
  EXPECT_THAT(tool_error("complete_prompt", {{"prompt", "a"}, {"max_tokens", 2000000}}),
              HasSubstr("'max_tokens' must be at most 1000000"));
  EXPECT_THAT(tool_error("complete_prompt", {{"prompt", "a"}, {"max_tokens", 1.5}}),
              HasSubstr("'max_tokens' must be an integer, got 1.5"));
  EXPECT_THAT(tool_error("complete_prompt", {{"prompt", "a"}, {"max_tokens", "5"}}),
              HasSubstr("'max_tokens' must be an integer, got the string '5'"));
  EXPECT_THAT(tool_error("complete_prompt", {{"prompt", "a"}, {"preference", "fast"}}),
              HasSubstr("'preference' must be one of cost|balanced|quality|speed, got 'fast'"));
  EXPECT_THAT(tool_error("complete_prompt", {{"messages", json::array()}}),
              HasSubstr("'messages' must have at least 1 item, got 0"));
  EXPECT_THAT(tool_error("complete_prompt", {{"messages", {{{"role", "bot"}, {"content", "x"}}}}}),
              HasSubstr("'messages[0].role' must be one of system|developer|user|assistant|tool, got 'bot'"));
  EXPECT_THAT(tool_error("complete_prompt", {{"messages", {{{"content", "x"}}}}}),
              HasSubstr("missing required field 'messages[0].role'"));
  EXPECT_THAT(tool_error("complete_prompt", {{"messages", {"hello"}}}),
              HasSubstr("'messages[0]' must be an object, got the string 'hello'"));
  EXPECT_THAT(tool_error("complete_prompt", {{"prompt", "a"}, {"model", std::string(300, 'x')}}),
              HasSubstr("'model' must be at most 256 characters long, got 300"));
  // 5.0 is an integer, as JSON Schema has it.
  call("complete_prompt", {{"prompt", "a"}, {"max_tokens", 5.0}});
  EXPECT_EQ(backend_->last_completion.max_tokens, 5);
}

TEST_F(McpServerTest, ATenantArgumentIsRefusedAndTheSessionsTenantNamed) {
  const std::string text = tool_error("complete_prompt", {{"prompt", "a"}, {"tenant", "globex"}});
  EXPECT_THAT(text, HasSubstr("unknown argument 'tenant'"));
  EXPECT_THAT(text, HasSubstr("fixed by this session (acme)"));
  EXPECT_TRUE(backend_->calls.empty());
}

TEST_F(McpServerTest, EveryProblemOfACallIsListed) {
  const std::string text = tool_error("complete_prompt", {{"prompt", 1}, {"preference", "x"}, {"extra", true}});
  EXPECT_THAT(text, HasSubstr("Invalid arguments for complete_prompt: "));
  EXPECT_THAT(text, HasSubstr("'prompt' must be a string"));
  EXPECT_THAT(text, HasSubstr("'preference' must be one of"));
  EXPECT_THAT(text, HasSubstr("unknown argument 'extra' (known: "));
}

TEST_F(McpServerTest, CheckModelCostsArgumentsAreChecked) {
  EXPECT_THAT(tool_error("check_model_costs", {{"expected_output_tokens", -1}}),
              HasSubstr("'expected_output_tokens' must be at least 0, got -1"));
  EXPECT_THAT(tool_error("check_model_costs", {{"tier", "huge"}}),
              HasSubstr("'tier' must be one of small|medium|large, got 'huge'"));
  EXPECT_THAT(tool_error("check_model_costs", {{"models", json::array()}}), HasSubstr("'models' must have at least 1 item"));
  EXPECT_THAT(tool_error("check_model_costs", {{"models", {5}}}), HasSubstr("'models[0]' must be a string, got 5"));
  EXPECT_THAT(tool_error("check_model_costs", {{"prompt", "a"}, {"messages", {{{"role", "user"}}}}}),
              HasSubstr("not both"));
}

TEST_F(McpServerTest, GetRecommendationArgumentsAreChecked) {
  EXPECT_THAT(tool_error("get_recommendation", json::object()), HasSubstr("give 'prompt' (text) or 'messages'"));
  EXPECT_THAT(tool_error("get_recommendation", {{"prompt", "a"}, {"preference", "cheap"}}),
              HasSubstr("'preference' must be one of cost|balanced|quality|speed"));
  EXPECT_THAT(tool_error("get_recommendation", {{"prompt", "a"}, {"max_tokens", -3}}),
              HasSubstr("'max_tokens' must be at least 1"));
}

TEST_F(McpServerTest, QueryUsageArgumentsAreChecked) {
  EXPECT_THAT(tool_error("query_usage", {{"days", 0}}), HasSubstr("'days' must be at least 1, got 0"));
  EXPECT_THAT(tool_error("query_usage", {{"days", "7"}}), HasSubstr("'days' must be an integer"));
  EXPECT_THAT(tool_error("query_usage", {{"from", "2026-13-01"}}),
              HasSubstr("'from' must be a date YYYY-MM-DD, got '2026-13-01'"));
  EXPECT_THAT(tool_error("query_usage", {{"from", "yesterday"}}), HasSubstr("'from' must be a date"));
  EXPECT_THAT(tool_error("query_usage", {{"days", 7}, {"from", "2026-07-01"}}),
              HasSubstr("either 'days' or 'from' (and 'to'), not both"));
  EXPECT_THAT(tool_error("query_usage", {{"to", "2026-07-01"}}), HasSubstr("'to' needs a 'from' date"));
  EXPECT_THAT(tool_error("query_usage", {{"from", "2026-07-02"}, {"to", "2026-07-01"}}),
              HasSubstr("'from' (2026-07-02) is after 'to' (2026-07-01)"));
  EXPECT_THAT(tool_error("query_usage", {{"tenant", "globex"}}), HasSubstr("unknown argument 'tenant'"));
}

TEST_F(McpServerTest, SetBudgetArgumentsAreChecked) {
  EXPECT_THAT(tool_error("set_budget", json::object()), HasSubstr("nothing to set"));
  EXPECT_THAT(tool_error("set_budget", {{"daily_usd", -1}}), HasSubstr("'daily_usd' must be at least 0, got -1"));
  EXPECT_THAT(tool_error("set_budget", {{"soft_percent", 0}}), HasSubstr("'soft_percent' must be greater than 0, got 0"));
  EXPECT_THAT(tool_error("set_budget", {{"soft_percent", 101}}), HasSubstr("'soft_percent' must be at most 100"));
  EXPECT_THAT(tool_error("set_budget", {{"daily_usd", 1}, {"model", "m"}, {"tag", "t"}}),
              HasSubstr("one 'model' or one 'tag', not both"));
  EXPECT_THAT(tool_error("set_budget", {{"daily_usd", 1}, {"clear", true}}), HasSubstr("'clear' removes the budget"));
  EXPECT_THAT(tool_error("set_budget", {{"clear", "yes"}}), HasSubstr("'clear' must be true or false"));
  EXPECT_THAT(tool_error("set_budget", {{"monthly_usd", 1}, {"tenant", "globex"}}),
              HasSubstr("unknown argument 'tenant'"));
  EXPECT_TRUE(backend_->calls.empty());
}

// ------------------------------------------------------------ JSON-RPC errors ----

TEST_F(McpServerTest, BrokenJsonIsAParseErrorWithANullId) {
  const auto responses = send(R"({"jsonrpc":"2.0","id":1,"method":)");
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(error_code(responses[0]), -32700);
  EXPECT_TRUE(responses[0]["id"].is_null());
  EXPECT_THAT(responses[0]["error"]["message"].get<std::string>(), HasSubstr("Parse error"));
  EXPECT_EQ(error_code(send("\xff\xfe")[0]), -32700);  // not UTF-8
  std::string deep(200, '[');
  deep += std::string(200, ']');
  EXPECT_EQ(error_code(send(deep)[0]), -32700);
}

TEST_F(McpServerTest, BatchesAreRefusedAsInvalidRequests) {
  const auto responses = send(R"([{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}])");
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(error_code(responses[0]), -32600);
  EXPECT_TRUE(responses[0]["id"].is_null());
  EXPECT_THAT(responses[0]["error"]["message"].get<std::string>(), HasSubstr("batches are not supported"));
  EXPECT_EQ(error_code(send("[]")[0]), -32600);
}

TEST_F(McpServerTest, MalformedRequestsAreInvalidRequests) {
  EXPECT_EQ(error_code(send("42")[0]), -32600);
  EXPECT_EQ(error_code(send(R"("ping")")[0]), -32600);
  // Without jsonrpc 2.0: the id is kept.
  auto r = send(R"({"id":7,"method":"ping"})");
  EXPECT_EQ(error_code(r[0]), -32600);
  EXPECT_EQ(r[0]["id"], 7);
  EXPECT_EQ(error_code(send(R"({"jsonrpc":"1.0","id":7,"method":"ping"})")[0]), -32600);
  // MCP ids are strings or integers, never null.
  r = send(R"({"jsonrpc":"2.0","id":null,"method":"ping"})");
  EXPECT_EQ(error_code(r[0]), -32600);
  EXPECT_TRUE(r[0]["id"].is_null());
  EXPECT_EQ(error_code(send(R"({"jsonrpc":"2.0","id":1.5,"method":"ping"})")[0]), -32600);
  EXPECT_EQ(error_code(send(R"({"jsonrpc":"2.0","id":{"a":1},"method":"ping"})")[0]), -32600);
  EXPECT_EQ(error_code(send(R"({"jsonrpc":"2.0","id":3,"method":5})")[0]), -32600);
  EXPECT_EQ(error_code(send(R"({"jsonrpc":"2.0","id":3})")[0]), -32600);
}

TEST_F(McpServerTest, AnOversizedMessageIsRefusedUnread) {
  McpServer small(session("acme", 64), backend_);
  std::optional<std::string> response;
  small.handle(R"({"jsonrpc":"2.0","id":1,"method":"ping","params":{"padding":"................................"}})",
               [&](std::optional<std::string> r) { response = std::move(r); });
  ASSERT_TRUE(response);
  EXPECT_EQ(error_code(json::parse(*response)), -32600);
  EXPECT_THAT(*response, HasSubstr("64-byte limit"));
}

TEST_F(McpServerTest, AnUnknownMethodIsMethodNotFound) {
  for (const char* method : {"resources/list", "prompts/list", "sampling/createMessage", "nope"}) {
    const json response = request(method, json::object(), "x");
    EXPECT_EQ(error_code(response), -32601) << method;
    EXPECT_EQ(response["id"], "x");
  }
}

TEST_F(McpServerTest, BadParamsAreInvalidParams) {
  EXPECT_EQ(error_code(send(R"({"jsonrpc":"2.0","id":1,"method":"ping","params":[1]})")[0]), -32602);
  EXPECT_EQ(error_code(request("tools/call", {{"arguments", json::object()}})), -32602);
  EXPECT_EQ(error_code(request("tools/call", {{"name", 5}})), -32602);
  EXPECT_EQ(error_code(request("tools/call", {{"name", "query_usage"}, {"arguments", "days=7"}})), -32602);
  const json unknown = request("tools/call", {{"name", "delete_everything"}, {"arguments", json::object()}});
  EXPECT_EQ(error_code(unknown), -32602);
  EXPECT_EQ(unknown["error"]["message"], "Unknown tool: delete_everything");
  EXPECT_TRUE(backend_->calls.empty());
}

// ------------------------------------------------------------- notifications ----

TEST_F(McpServerTest, NotificationsAndResponsesGetNoResponse) {
  for (const char* message : {
           R"({"jsonrpc":"2.0","method":"notifications/initialized"})",
           R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":99,"reason":"gone"}})",
           R"({"jsonrpc":"2.0","method":"notifications/roots/list_changed"})",
           R"({"jsonrpc":"2.0","method":"tools/call","params":{"name":"complete_prompt","arguments":{"prompt":"x"}}})",
           R"({"jsonrpc":"2.0","id":5,"result":{}})",
           R"({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}})",
       }) {
    bool answered = false;
    server_.handle(message, [&](std::optional<std::string> response) {
      answered = true;
      EXPECT_FALSE(response) << message << " -> " << *response;
    });
    EXPECT_TRUE(answered) << "respond(nullopt) lets a transport finish: " << message;
  }
  EXPECT_TRUE(backend_->calls.empty()) << "a tools/call notification runs nothing";
}

// ------------------------------------------------------------------ async ----

TEST_F(McpServerTest, AnAnswerMayComeLaterFromAnotherThread) {
  backend_->defer = true;
  std::optional<std::string> response;
  std::atomic<int> calls{0};
  server_.handle(R"({"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"complete_prompt","arguments":{"prompt":"x"}}})",
                 [&](std::optional<std::string> r) {
                   response = std::move(r);
                   calls++;
                 });
  EXPECT_EQ(calls, 0);
  // Other requests are answered meanwhile.
  EXPECT_EQ(request("ping")["result"], json::object());
  std::thread([&] { backend_->answer_later(); }).join();
  ASSERT_EQ(calls, 1);
  ASSERT_TRUE(response);
  const json j = json::parse(*response);
  EXPECT_EQ(j["id"], "c1");
  EXPECT_EQ(j["result"]["structuredContent"]["answer"], "Paris.");
}

TEST_F(McpServerTest, ACancelledRequestGetsNoResponseAndItsLateResultIsDropped) {
  backend_->defer = true;
  std::vector<std::optional<std::string>> responses;
  server_.handle(R"({"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"complete_prompt","arguments":{"prompt":"x"}}})",
                 [&](std::optional<std::string> r) { responses.push_back(std::move(r)); });
  EXPECT_TRUE(send(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":12}})").empty());
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_FALSE(responses[0]) << "the transport may close the request";
  backend_->answer_later();
  EXPECT_EQ(responses.size(), 1u) << "answered once";
  // Cancelling a finished or unknown request changes nothing.
  EXPECT_TRUE(send(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":12}})").empty());
}

TEST_F(McpServerTest, AResultArrivingAfterTheServerIsGoneIsStillDeliveredSafely) {
  auto backend = std::make_shared<FakeBackend>();
  backend->defer = true;
  std::optional<std::string> response;
  {
    McpServer server(session("acme"), backend);
    server.handle(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"query_usage"}})",
                  [&](std::optional<std::string> r) { response = std::move(r); });
  }
  backend->answer_later();
  ASSERT_TRUE(response);
  EXPECT_EQ(json::parse(*response)["result"]["structuredContent"]["tenant"], "acme");
}

TEST_F(McpServerTest, InvalidUtf8FromAnAnswerStillMakesAValidResponse) {
  auto backend = std::make_shared<FakeBackend>();
  McpServer server(session("acme"), backend);
  backend->fail_with = Error{ErrorCode::provider_error, std::string("bad \xff\xfe bytes")};
  std::optional<std::string> response;
  server.handle(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"complete_prompt","arguments":{"prompt":"x"}}})",
                [&](std::optional<std::string> r) { response = std::move(r); });
  ASSERT_TRUE(response);
  const json j = json::parse(*response);  // throws on invalid UTF-8
  EXPECT_THAT(j["result"]["content"][0]["text"].get<std::string>(), HasSubstr("provider_error: bad"));
}

TEST(McpServer, RefusesAnInvalidTenantOrNoBackend) {
  EXPECT_THROW(McpServer(session(""), std::make_shared<FakeBackend>()), std::invalid_argument);
  EXPECT_THROW(McpServer(session("acme corp"), std::make_shared<FakeBackend>()), std::invalid_argument);
  EXPECT_THROW(McpServer(session("acme"), nullptr), std::invalid_argument);
}

}  // namespace
}  // namespace cascade
