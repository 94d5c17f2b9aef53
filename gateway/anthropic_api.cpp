// Anthropic's Messages API (POST /v1/messages), as Anthropic documents and
// streams it: https://docs.anthropic.com/en/api/messages and .../messages-streaming
#include <algorithm>

#include "gateway/api.h"

namespace cascade::gateway {

using json = nlohmann::json;

std::unique_ptr<ResponseRenderer> make_openai_renderer(const TranslatedRequest& request, std::int64_t created);
std::string openai_error_body(const ApiError& error);

namespace {

ApiError unsupported(const std::string& where, const std::string& what) {
  return bad_request(where + ": " + what + " is not supported by Cascade", where, "unsupported_parameter");
}

// Text of a string or an array of text blocks (system prompts, tool results).
std::expected<std::string, ApiError> text_of(const json& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return std::unexpected(bad_request(where + " must be a string or an array of blocks", where));
  std::string text;
  for (std::size_t i = 0; i < content.size(); ++i) {
    const json& block = content[i];
    if (!block.is_object() || block.value("type", "") != "text" || !block.contains("text") || !block["text"].is_string())
      return std::unexpected(bad_request(where + "[" + std::to_string(i) + "] must be a text block", where));
    if (!text.empty()) text += "\n\n";
    text += block["text"].get<std::string>();
  }
  return text;
}

// One Anthropic message as OpenAI messages: tool results become `tool`
// messages (ahead of the rest of the turn), tool uses the assistant's tool_calls.
std::optional<ApiError> append_message(const json& message, std::size_t index, json& out) {
  const std::string where = "messages[" + std::to_string(index) + "]";
  if (!message.is_object()) return bad_request(where + " must be an object", where);
  const std::string role = message.value("role", "");
  if (role != "user" && role != "assistant")
    return bad_request(where + ".role must be user or assistant, got " + describe_value(message.value("role", json())),
                       where + ".role");
  if (!message.contains("content")) return bad_request(where + ".content is required", where + ".content");
  const json& content = message["content"];
  if (content.is_string()) {
    out.push_back({{"role", role}, {"content", content}});
    return std::nullopt;
  }
  if (!content.is_array()) return bad_request(where + ".content must be a string or an array of blocks", where + ".content");
  json parts = json::array();
  json tool_calls = json::array();
  for (std::size_t i = 0; i < content.size(); ++i) {
    const json& block = content[i];
    const std::string at = where + ".content[" + std::to_string(i) + "]";
    if (!block.is_object() || !block.contains("type") || !block["type"].is_string())
      return bad_request(at + " must be an object with a string 'type'", at);
    const std::string type = block["type"];
    if (type == "text") {
      if (!block.contains("text") || !block["text"].is_string()) return bad_request(at + ".text must be a string", at);
      parts.push_back({{"type", "text"}, {"text", block["text"]}});
    } else if (type == "image") {
      const json source = block.value("source", json::object());
      const std::string kind = source.value("type", "");
      if (kind == "base64") {
        parts.push_back({{"type", "image_url"},
                         {"image_url", {{"url", "data:" + source.value("media_type", std::string("image/png")) +
                                                    ";base64," + source.value("data", std::string())}}}});
      } else if (kind == "url") {
        parts.push_back({{"type", "image_url"}, {"image_url", {{"url", source.value("url", std::string())}}}});
      } else {
        return unsupported(at + ".source", "an image source of type " + describe_value(source.value("type", json())));
      }
    } else if (type == "tool_use" && role == "assistant") {
      tool_calls.push_back({{"id", block.value("id", std::string())},
                            {"type", "function"},
                            {"function",
                             {{"name", block.value("name", std::string())},
                              {"arguments", block.value("input", json::object()).dump()}}}});
    } else if (type == "tool_result" && role == "user") {
      std::string text;
      if (block.contains("content") && !block["content"].is_null()) {
        auto result = text_of(block["content"], at + ".content");
        if (!result) return result.error();
        text = std::move(*result);
      }
      if (block.value("is_error", false)) text = "Error: " + text;
      out.push_back({{"role", "tool"}, {"tool_call_id", block.value("tool_use_id", std::string())}, {"content", text}});
    } else {
      return unsupported(at, "a '" + type + "' block in a " + role + " message");
    }
  }
  if (!tool_calls.empty()) {
    json m = {{"role", "assistant"}, {"content", parts.empty() ? json(nullptr) : parts}, {"tool_calls", tool_calls}};
    out.push_back(std::move(m));
  } else if (!parts.empty()) {
    out.push_back({{"role", role}, {"content", std::move(parts)}});
  }
  return std::nullopt;
}

std::string stop_reason_of(const std::string& finish_reason) {
  if (finish_reason == "length") return "max_tokens";
  if (finish_reason == "tool_calls") return "tool_use";
  return "end_turn";
}

// Anthropic counts input_tokens without the cache's reads and writes.
json usage_json(const TokenUsage& u) {
  return {{"input_tokens", std::max<std::int64_t>(0, u.input_tokens - u.cached_tokens - u.cache_write_tokens)},
          {"output_tokens", u.output_tokens},
          {"cache_read_input_tokens", u.cached_tokens},
          {"cache_creation_input_tokens", u.cache_write_tokens}};
}

json tool_use_blocks(const json& tool_calls) {
  json blocks = json::array();
  if (!tool_calls.is_array()) return blocks;
  for (const json& call : tool_calls) {
    const json function = call.value("function", json::object());
    json input = json::parse(function.value("arguments", std::string("{}")), nullptr, false);
    if (input.is_discarded() || !input.is_object()) input = json::object();
    blocks.push_back({{"type", "tool_use"},
                      {"id", call.value("id", std::string())},
                      {"name", function.value("name", std::string())},
                      {"input", std::move(input)}});
  }
  return blocks;
}

std::string event(std::string_view name, const json& data) {
  std::string out = "event: ";
  out += name;
  out += "\ndata: ";
  out += data.dump(-1, ' ', false, json::error_handler_t::replace);
  out += "\n\n";
  return out;
}

class AnthropicRenderer final : public ResponseRenderer {
 public:
  AnthropicRenderer(const TranslatedRequest& request, std::int64_t)
      : id_("msg_" + request.event.id), model_(request.requested_model) {}

  std::string stream_open(const StreamHead& head) override {
    model_ = head.model;
    json message = {{"id", id_},          {"type", "message"},       {"role", "assistant"},
                    {"model", model_},    {"content", json::array()}, {"stop_reason", nullptr},
                    {"stop_sequence", nullptr}, {"usage", usage_json({})}};
    return event("message_start", {{"type", "message_start"}, {"message", std::move(message)}}) +
           event("ping", {{"type", "ping"}});
  }

  std::string stream_delta(std::string_view text) override {
    std::string out;
    if (!text_open_) {
      text_open_ = true;
      out += event("content_block_start",
                   {{"type", "content_block_start"}, {"index", next_index_}, {"content_block", {{"type", "text"}, {"text", ""}}}});
    }
    out += event("content_block_delta",
                 {{"type", "content_block_delta"}, {"index", next_index_}, {"delta", {{"type", "text_delta"}, {"text", text}}}});
    return out;
  }

  std::string stream_close(const FinalReply& f) override {
    std::string out;
    const json tools = tool_use_blocks(f.tool_calls);
    if (!text_open_ && tools.empty()) out += stream_delta("");
    if (text_open_) {
      out += event("content_block_stop", {{"type", "content_block_stop"}, {"index", next_index_}});
      ++next_index_;
      text_open_ = false;
    }
    for (const json& block : tools) {
      json start = block;
      start["input"] = json::object();
      out += event("content_block_start", {{"type", "content_block_start"}, {"index", next_index_}, {"content_block", start}});
      out += event("content_block_delta", {{"type", "content_block_delta"},
                                           {"index", next_index_},
                                           {"delta", {{"type", "input_json_delta"}, {"partial_json", block["input"].dump()}}}});
      out += event("content_block_stop", {{"type", "content_block_stop"}, {"index", next_index_}});
      ++next_index_;
    }
    out += event("message_delta", {{"type", "message_delta"},
                                   {"delta", {{"stop_reason", stop_reason_of(f.finish_reason)}, {"stop_sequence", nullptr}}},
                                   {"usage", usage_json(f.usage)},
                                   {"cascade", {{"request_id", f.id}, {"model", f.model}, {"cost_usd", f.cost_usd},
                                                {"cache", to_string(f.cache)}, {"route_reason", f.route.reason}}}});
    out += event("message_stop", {{"type", "message_stop"}});
    return out;
  }

  std::string stream_error(const ApiError& error) override {
    return event("error", json::parse(error_body(ApiKind::anthropic, error)));
  }

  std::string whole(const FinalReply& f) override {
    json content = json::array();
    if (!f.content.empty() || f.tool_calls.empty()) content.push_back({{"type", "text"}, {"text", f.content}});
    for (json& block : tool_use_blocks(f.tool_calls)) content.push_back(std::move(block));
    json out = {{"id", id_},
                {"type", "message"},
                {"role", "assistant"},
                {"model", f.model},
                {"content", std::move(content)},
                {"stop_reason", stop_reason_of(f.finish_reason)},
                {"stop_sequence", nullptr},
                {"usage", usage_json(f.usage)},
                {"cascade", {{"request_id", f.id}, {"provider", f.provider}, {"cost_usd", f.cost_usd},
                             {"cache", to_string(f.cache)}, {"route", {{"tier", f.route.tier}, {"reason", f.route.reason}}}}}};
    return out.dump(-1, ' ', false, json::error_handler_t::replace);
  }

 private:
  std::string id_;
  std::string model_;
  bool text_open_ = false;
  int next_index_ = 0;
};

}  // namespace

Translation translate_anthropic_messages(const json& request_body, const RequestContext& context) {
  json body = request_body;
  auto begun = begin_translation(body, context);
  if (!begun) return std::unexpected(std::move(begun.error()));
  TranslatedRequest& out = *begun;
  PromptEvent& e = out.event;

  json messages = json::array();
  json event = {{"id", e.id}, {"tenant", e.tenant}, {"reply_to", e.reply_to}, {"stream", false}};
  for (auto& [name, value] : body.items()) {
    if (name == "model" || name == "temperature") {
      event[name] = value;
    } else if (name == "max_tokens") {
      event["max_tokens"] = value;
    } else if (name == "stream") {
      if (!value.is_null()) event["stream"] = value;
    } else if (name == "system") {
      if (value.is_null()) continue;
      auto text = text_of(value, "system");
      if (!text) return std::unexpected(text.error());
      messages.insert(messages.begin(), json{{"role", "system"}, {"content", *text}});
    } else if (name == "messages") {
      if (!value.is_array()) return std::unexpected(bad_request("'messages' must be an array", "messages"));
      for (std::size_t i = 0; i < value.size(); ++i) {
        if (auto problem = append_message(value[i], i, messages)) return std::unexpected(std::move(*problem));
      }
    } else if (name == "metadata") {
      if (value.is_null()) continue;
      if (!value.is_object()) return std::unexpected(bad_request("'metadata' must be an object", "metadata"));
      if (value.contains("user_id") && value["user_id"].is_string()) e.metadata["user"] = value["user_id"];
    } else if (name == "tools") {
      if (value.is_null()) continue;
      if (!value.is_array()) return std::unexpected(bad_request("'tools' must be an array", "tools"));
      json tools = json::array();
      for (std::size_t i = 0; i < value.size(); ++i) {
        const json& tool = value[i];
        const std::string at = "tools[" + std::to_string(i) + "]";
        if (!tool.is_object() || !tool.contains("name") || !tool["name"].is_string())
          return std::unexpected(bad_request(at + " must be an object with a string 'name'", at));
        if (tool.contains("type") && tool["type"] != "custom")
          return std::unexpected(unsupported(at, "a server tool of type " + describe_value(tool["type"])));
        json function = {{"name", tool["name"]}, {"parameters", tool.value("input_schema", json::object())}};
        if (tool.contains("description")) function["description"] = tool["description"];
        tools.push_back({{"type", "function"}, {"function", std::move(function)}});
      }
      event["tools"] = std::move(tools);
    } else if (name == "tool_choice") {
      if (value.is_null()) continue;
      const std::string type = value.is_object() ? value.value("type", "") : "";
      if (value.is_object() && value.value("disable_parallel_tool_use", false))
        return std::unexpected(unsupported("tool_choice.disable_parallel_tool_use", "true"));
      if (type == "auto") event["tool_choice"] = "auto";
      else if (type == "any") event["tool_choice"] = "required";
      else if (type == "none") event["tool_choice"] = "none";
      else if (type == "tool")
        event["tool_choice"] = {{"type", "function"}, {"function", {{"name", value.value("name", std::string())}}}};
      else
        return std::unexpected(bad_request("'tool_choice' must be an object with type auto, any, tool or none",
                                           "tool_choice"));
    } else if (name == "stop_sequences") {
      if (!value.is_null() && !(value.is_array() && value.empty()))
        return std::unexpected(unsupported("stop_sequences", "a non-empty list"));
    } else if (name == "top_p" || name == "top_k" || name == "thinking" || name == "container" ||
               name == "mcp_servers") {
      if (!value.is_null()) return std::unexpected(unsupported(name, "'" + name + "'"));
    } else if (name == "service_tier") {
      if (!value.is_null() && value != "auto" && value != "standard_only")
        return std::unexpected(unsupported("service_tier", describe_value(value)));
    } else {
      return std::unexpected(bad_request(name + ": Extra inputs are not permitted", name, "unknown_parameter"));
    }
  }
  if (!event.contains("model") || !event["model"].is_string())
    return std::unexpected(bad_request("model: Field required (\"auto\" or a model id from GET /v1/models)", "model"));
  if (!event.contains("max_tokens")) return std::unexpected(bad_request("max_tokens: Field required", "max_tokens"));
  if (!body.contains("messages")) return std::unexpected(bad_request("messages: Field required", "messages"));
  event["messages"] = std::move(messages);
  return finish_translation(ApiKind::anthropic, std::move(event), std::move(out), context);
}

std::unique_ptr<ResponseRenderer> make_renderer(ApiKind api, const TranslatedRequest& request, std::int64_t created) {
  if (api == ApiKind::anthropic) return std::make_unique<AnthropicRenderer>(request, created);
  return make_openai_renderer(request, created);
}

std::string error_body(ApiKind api, const ApiError& error) {
  if (api == ApiKind::openai) return openai_error_body(error);
  std::string type = "api_error";
  switch (error.status) {
    case 400: type = "invalid_request_error"; break;
    case 401: type = "authentication_error"; break;
    case 402: type = "billing_error"; break;
    case 403: type = "permission_error"; break;
    case 404: type = "not_found_error"; break;
    case 409: type = "invalid_request_error"; break;
    case 413: type = "request_too_large"; break;
    case 429: type = "rate_limit_error"; break;
    case 503: case 529: type = "overloaded_error"; break;
    case 504: type = "timeout_error"; break;
    default: break;
  }
  return json({{"type", "error"}, {"error", {{"type", type}, {"message", error.message}}}})
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace cascade::gateway
