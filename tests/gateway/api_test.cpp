// The gateway's API translation as specification: OpenAI and Anthropic
// request bodies into prompt events, and reply events into each API's
// responses (the SDK tests check the same against the official clients).
#include <gtest/gtest.h>

#include "gateway/api.h"

namespace cascade::gateway {
namespace {

using json = nlohmann::json;

class GatewayApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto catalog = ModelCatalog::from_yaml(default_models_yaml());
    ASSERT_TRUE(catalog) << catalog.error().message;
    catalog_ = std::make_unique<ModelCatalog>(std::move(*catalog));
  }
  RequestContext context() {
    return {"gw-1", "acme", "cascade.gateway.t.replies", catalog_.get(), [this](std::string_view name) {
              const auto it = headers_.find(std::string(name));
              return it == headers_.end() ? std::string_view{} : std::string_view(it->second);
            }};
  }
  std::unique_ptr<ModelCatalog> catalog_;
  std::map<std::string, std::string> headers_;
};

FinalReply final_reply() {
  FinalReply f;
  f.id = "gw-1";
  f.content = "Paris.";
  f.model = "gpt-4o-mini";
  f.provider = "openai";
  f.finish_reason = "stop";
  f.usage.input_tokens = 12;
  f.usage.output_tokens = 3;
  f.usage.cached_tokens = 4;
  f.cost_usd = 0.00001;
  f.route.tier = "small";
  f.route.reason = "heuristic score=0.10 pref=cost tier=small";
  return f;
}

TEST_F(GatewayApiTest, AnOpenAiBodyBecomesAPromptEventOfTheKeysTenantWithTheRequestsOptions) {
  headers_["x-cascade-tags"] = "team-a, beta";
  const json body = {{"model", "auto"},
                     {"messages", json::array({{{"role", "user"}, {"content", "Capital of France?"}}})},
                     {"stream", true},
                     {"stream_options", {{"include_usage", true}}},
                     {"max_completion_tokens", 50},
                     {"temperature", 0.3},
                     {"preference", "cost"},
                     {"user", "u-17"},
                     {"tenant", nullptr}};
  // `tenant` is no OpenAI parameter: refused like any unknown one.
  auto refused = translate_openai_chat(body, context());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().param, "tenant");
  json clean = body;
  clean.erase("tenant");
  auto t = translate_openai_chat(clean, context());
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->event.tenant, "acme");
  EXPECT_EQ(t->event.reply_to, "cascade.gateway.t.replies");
  EXPECT_EQ(t->event.model, "auto");
  EXPECT_TRUE(t->event.stream);
  EXPECT_TRUE(t->include_usage);
  EXPECT_EQ(t->event.max_tokens, 50);
  EXPECT_EQ(t->event.preference, Preference::cost);
  EXPECT_EQ(t->event.metadata["user"], "u-17");
  EXPECT_EQ(t->event.metadata["tags"], json::array({"team-a", "beta"}));
}

TEST_F(GatewayApiTest, OpenAiDefaultsToNotStreamingAndPinsACatalogModel) {
  auto t = translate_openai_chat({{"model", "gpt-4o-mini"}, {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}},
                                 context());
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_FALSE(t->event.stream);
  EXPECT_EQ(t->event.model, "gpt-4o-mini");
}

TEST_F(GatewayApiTest, UnsupportedOpenAiParametersAreA400NamingThemButTheirDefaultsPass) {
  const json messages = json::array({{{"role", "user"}, {"content", "hi"}}});
  for (const auto& [name, value] : std::vector<std::pair<std::string, json>>{
           {"n", 2}, {"top_p", 0.5}, {"seed", 7}, {"stop", "END"}, {"logprobs", true}, {"presence_penalty", 1}}) {
    auto t = translate_openai_chat({{"model", "auto"}, {"messages", messages}, {name, value}}, context());
    ASSERT_FALSE(t) << name;
    EXPECT_EQ(t.error().status, 400);
    EXPECT_EQ(t.error().param, name);
  }
  auto t = translate_openai_chat({{"model", "auto"}, {"messages", messages}, {"n", 1}, {"top_p", 1}, {"seed", nullptr},
                                  {"logprobs", false}, {"parallel_tool_calls", true}},
                                 context());
  EXPECT_TRUE(t) << t.error().message;
}

TEST_F(GatewayApiTest, AnUnknownModelIsA404AndABadMessageA400NamingTheField) {
  auto unknown = translate_openai_chat({{"model", "gpt-9"}, {"messages", json::array({{{"role", "user"}, {"content", "x"}}})}},
                                       context());
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().status, 404);
  EXPECT_EQ(unknown.error().code, "model_not_found");
  auto bad = translate_openai_chat({{"model", "auto"}, {"messages", json::array({{{"role", "bot"}, {"content", "x"}}})}},
                                   context());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().status, 400);
  EXPECT_EQ(bad.error().param, "messages[0].role");
  headers_["x-cascade-preference"] = "fast";
  auto header = translate_openai_chat({{"model", "auto"}, {"messages", json::array({{{"role", "user"}, {"content", "x"}}})}},
                                      context());
  ASSERT_FALSE(header);
  EXPECT_EQ(header.error().param, "preference");
}

TEST_F(GatewayApiTest, OpenAiToolsAndToolChoiceAreCarriedOnThePromptEvent) {
  const json tools = json::array({{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", json::object()}}}}});
  auto t = translate_openai_chat({{"model", "auto"},
                                  {"messages", json::array({{{"role", "user"}, {"content", "x"}}})},
                                  {"tools", tools},
                                  {"tool_choice", "required"}},
                                 context());
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->event.tools, tools);
  EXPECT_EQ(t->event.tool_choice, "required");
}

TEST_F(GatewayApiTest, AnOpenAiStreamIsRoleChunkDeltasFinishUsageAndDone) {
  TranslatedRequest request;
  request.event.id = "gw-1";
  request.requested_model = "auto";
  request.include_usage = true;
  auto r = make_renderer(ApiKind::openai, request, 1700000000);
  const std::string open = r->stream_open({"gpt-4o-mini"});
  const std::string delta = r->stream_delta("Par");
  const std::string close = r->stream_close(final_reply());
  ASSERT_TRUE(open.starts_with("data: {") && open.ends_with("}\n\n"));
  const json first = json::parse(open.substr(6));
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["id"], "chatcmpl-gw-1");
  EXPECT_EQ(first["model"], "gpt-4o-mini");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(first["usage"].is_null());
  EXPECT_EQ(json::parse(delta.substr(6))["choices"][0]["delta"]["content"], "Par");
  // The finish chunk, the usage chunk, then [DONE].
  std::vector<std::string> events;
  for (std::size_t at = 0; at < close.size();) {
    const auto end = close.find("\n\n", at);
    events.push_back(close.substr(at, end - at));
    at = end + 2;
  }
  ASSERT_EQ(events.size(), 3u);
  const json finish = json::parse(events[0].substr(6));
  EXPECT_EQ(finish["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(finish["cascade"]["cost_usd"], 0.00001);
  const json usage = json::parse(events[1].substr(6));
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["prompt_tokens"], 12);
  EXPECT_EQ(usage["usage"]["completion_tokens"], 3);
  EXPECT_EQ(usage["usage"]["total_tokens"], 15);
  EXPECT_EQ(usage["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
  EXPECT_EQ(events[2], "data: [DONE]");
}

TEST_F(GatewayApiTest, AnOpenAiStreamWithoutIncludeUsageHasNoUsageChunk) {
  TranslatedRequest request;
  request.event.id = "gw-1";
  auto r = make_renderer(ApiKind::openai, request, 1);
  const std::string close = r->stream_close(final_reply());
  EXPECT_EQ(close.find("\"usage\""), std::string::npos);
  EXPECT_TRUE(close.ends_with("data: [DONE]\n\n"));
}

TEST_F(GatewayApiTest, ToolCallsAreStreamedWithTheirIndexBeforeTheFinishChunk) {
  TranslatedRequest request;
  request.event.id = "gw-1";
  auto r = make_renderer(ApiKind::openai, request, 1);
  FinalReply f = final_reply();
  f.content.clear();
  f.finish_reason = "tool_calls";
  f.tool_calls = json::array({{{"id", "call_1"}, {"type", "function"}, {"function", {{"name", "f"}, {"arguments", "{}"}}}}});
  const std::string close = r->stream_close(f);
  const json calls = json::parse(close.substr(6, close.find("\n\n") - 6));
  EXPECT_EQ(calls["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
  EXPECT_EQ(calls["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "f");
  const json whole = json::parse(r->whole(f));
  EXPECT_TRUE(whole["choices"][0]["message"]["content"].is_null());
  EXPECT_EQ(whole["choices"][0]["message"]["tool_calls"][0]["id"], "call_1");
  EXPECT_EQ(whole["choices"][0]["finish_reason"], "tool_calls");
}

TEST_F(GatewayApiTest, AnAnthropicBodyBecomesOpenAiMessagesWithSystemToolUseAndToolResults) {
  const json body = {
      {"model", "auto"},
      {"max_tokens", 100},
      {"system", json::array({{{"type", "text"}, {"text", "Be brief."}}})},
      {"metadata", {{"user_id", "u-1"}}},
      {"tools", json::array({{{"name", "get_weather"}, {"description", "d"}, {"input_schema", {{"type", "object"}}}}})},
      {"tool_choice", {{"type", "any"}}},
      {"messages",
       json::array({{{"role", "user"}, {"content", "Weather in Paris?"}},
                    {{"role", "assistant"},
                     {"content", json::array({{{"type", "tool_use"}, {"id", "tu_1"}, {"name", "get_weather"},
                                               {"input", {{"city", "Paris"}}}}})}},
                    {{"role", "user"},
                     {"content", json::array({{{"type", "tool_result"}, {"tool_use_id", "tu_1"}, {"content", "18C"}},
                                              {{"type", "text"}, {"text", "Summarize."}}})}}})}};
  auto t = translate_anthropic_messages(body, context());
  ASSERT_TRUE(t) << t.error().message;
  const json& m = t->event.messages;
  ASSERT_EQ(m.size(), 5u) << m.dump();
  EXPECT_EQ(m[0], (json{{"role", "system"}, {"content", "Be brief."}}));
  EXPECT_EQ(m[2]["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(m[2]["tool_calls"][0]["function"]["arguments"].get<std::string>()), (json{{"city", "Paris"}}));
  EXPECT_EQ(m[3], (json{{"role", "tool"}, {"tool_call_id", "tu_1"}, {"content", "18C"}}));
  EXPECT_EQ(m[4]["role"], "user");
  EXPECT_EQ(t->event.tools[0]["function"]["name"], "get_weather");
  EXPECT_EQ(t->event.tool_choice, "required");
  EXPECT_EQ(t->event.max_tokens, 100);
  EXPECT_FALSE(t->event.stream);
  EXPECT_EQ(t->event.metadata["user"], "u-1");
}

TEST_F(GatewayApiTest, AnthropicRequiresMaxTokensAndRefusesWhatItCannotHonour) {
  const json messages = json::array({{{"role", "user"}, {"content", "x"}}});
  auto missing = translate_anthropic_messages({{"model", "auto"}, {"messages", messages}}, context());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().param, "max_tokens");
  for (const auto& [name, value] : std::vector<std::pair<std::string, json>>{
           {"top_k", 5}, {"stop_sequences", json::array({"END"})}, {"thinking", {{"type", "enabled"}}}, {"foo", 1}}) {
    auto t = translate_anthropic_messages({{"model", "auto"}, {"max_tokens", 5}, {"messages", messages}, {name, value}},
                                          context());
    ASSERT_FALSE(t) << name;
    EXPECT_EQ(t.error().status, 400) << name;
  }
}

TEST_F(GatewayApiTest, AnAnthropicStreamIsMessageStartBlocksMessageDeltaAndStop) {
  TranslatedRequest request;
  request.event.id = "gw-1";
  request.requested_model = "auto";
  auto r = make_renderer(ApiKind::anthropic, request, 1);
  std::string all = r->stream_open({"claude-haiku-4-5"});
  all += r->stream_delta("Par");
  all += r->stream_delta("is.");
  FinalReply f = final_reply();
  f.tool_calls = json::array({{{"id", "call_1"}, {"type", "function"}, {"function", {{"name", "f"}, {"arguments", "{\"a\":1}"}}}}});
  f.finish_reason = "tool_calls";
  all += r->stream_close(f);
  std::vector<std::pair<std::string, json>> events;
  for (std::size_t at = 0; at < all.size();) {
    const auto end = all.find("\n\n", at);
    const std::string block = all.substr(at, end - at);
    const auto newline = block.find('\n');
    events.emplace_back(block.substr(7, newline - 7), json::parse(block.substr(newline + 7)));
    at = end + 2;
  }
  std::vector<std::string> names;
  for (const auto& [name, data] : events) {
    names.push_back(name);
    EXPECT_EQ(data["type"], name);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"message_start", "ping", "content_block_start", "content_block_delta",
                                             "content_block_delta", "content_block_stop", "content_block_start",
                                             "content_block_delta", "content_block_stop", "message_delta",
                                             "message_stop"}));
  EXPECT_EQ(events[0].second["message"]["model"], "claude-haiku-4-5");
  EXPECT_EQ(events[6].second["content_block"]["type"], "tool_use");
  EXPECT_EQ(events[6].second["index"], 1);
  EXPECT_EQ(events[7].second["delta"]["partial_json"], "{\"a\":1}");
  EXPECT_EQ(events[9].second["delta"]["stop_reason"], "tool_use");
  // Anthropic's input_tokens leave out cache reads.
  EXPECT_EQ(events[9].second["usage"]["input_tokens"], 8);
  EXPECT_EQ(events[9].second["usage"]["cache_read_input_tokens"], 4);
}

TEST_F(GatewayApiTest, ErrorsTakeEachApisShape) {
  const ApiError error{429, "slow down", "", "rate_limited", 1};
  const json openai = json::parse(error_body(ApiKind::openai, error));
  EXPECT_EQ(openai["error"]["type"], "rate_limit_error");
  EXPECT_EQ(openai["error"]["message"], "slow down");
  EXPECT_TRUE(openai["error"]["param"].is_null());
  const json anthropic = json::parse(error_body(ApiKind::anthropic, error));
  EXPECT_EQ(anthropic["type"], "error");
  EXPECT_EQ(anthropic["error"]["type"], "rate_limit_error");
  EXPECT_EQ(api_error_of(ErrorCode::budget_exceeded, "over").status, 429);
  EXPECT_EQ(api_error_of(ErrorCode::timeout, "late").status, 504);
  EXPECT_EQ(api_error_of(ErrorCode::provider_error, "bad").status, 502);
  EXPECT_EQ(api_error_of("cancelled", "gone").status, 499);
  EXPECT_EQ(api_error_of("something_new", "?").status, 500);
}

TEST_F(GatewayApiTest, TheModelListIsTheCatalogWithAutoFirst) {
  const json list = json::parse(models_list(*catalog_, 5));
  EXPECT_EQ(list["object"], "list");
  EXPECT_EQ(list["data"][0]["id"], "auto");
  EXPECT_EQ(list["data"].size(), catalog_->models().size() + 1);
  EXPECT_FALSE(model_object(*catalog_, "no-such-model", 5));
}

}  // namespace
}  // namespace cascade::gateway
