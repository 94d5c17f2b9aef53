// OpenAI's chat completions API (POST /v1/chat/completions, GET /v1/models),
// as OpenAI documents and sends it: https://platform.openai.com/docs/api-reference/chat
#include <algorithm>
#include <array>

#include "gateway/api.h"

namespace cascade::gateway {

using json = nlohmann::json;

namespace {

// Parameters OpenAI defines that change the answer in ways Cascade cannot
// honour: accepted only at their default value, otherwise a clear 400.
bool at_default(std::string_view name, const json& value) {
  if (value.is_null()) return true;
  if (name == "n") return value.is_number_integer() && value.get<std::int64_t>() == 1;
  if (name == "top_p") return value.is_number() && value.get<double>() == 1.0;
  if (name == "frequency_penalty" || name == "presence_penalty") return value.is_number() && value.get<double>() == 0.0;
  if (name == "logprobs" || name == "store") return value.is_boolean() && !value.get<bool>();
  if (name == "parallel_tool_calls") return value.is_boolean() && value.get<bool>();
  if (name == "logit_bias") return value.is_object() && value.empty();
  if (name == "stop") return (value.is_array() && value.empty());
  if (name == "modalities") return value == json::array({"text"});
  if (name == "service_tier") return value.is_string() && (value == "auto" || value == "default");
  return false;
}

constexpr std::array kDefaultOnly{"n", "top_p", "frequency_penalty", "presence_penalty", "logprobs", "store",
                                  "parallel_tool_calls", "logit_bias", "stop", "modalities", "service_tier"};
constexpr std::array kUnsupported{"top_logprobs", "seed", "audio", "prediction", "reasoning_effort",
                                  "web_search_options", "functions", "function_call", "verbosity",
                                  "safety_identifier", "prompt_cache_key"};

std::string sse(const json& data) {
  std::string out = "data: ";
  out += data.dump(-1, ' ', false, json::error_handler_t::replace);
  out += "\n\n";
  return out;
}

json usage_json(const TokenUsage& u) {
  return {{"prompt_tokens", u.input_tokens},
          {"completion_tokens", u.output_tokens},
          {"total_tokens", u.input_tokens + u.output_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}},
          {"completion_tokens_details", {{"reasoning_tokens", u.reasoning_tokens}}}};
}

// What Cascade adds to a response: the cost, the cache and the route.
json cascade_json(const FinalReply& f) {
  json route = {{"tier", f.route.tier}, {"reason", f.route.reason}};
  if (!f.route.policy.empty()) route["policy"] = f.route.policy;
  return {{"request_id", f.id}, {"provider", f.provider}, {"cost_usd", f.cost_usd},
          {"cache", to_string(f.cache)}, {"route", std::move(route)}};
}

class OpenAiRenderer final : public ResponseRenderer {
 public:
  OpenAiRenderer(const TranslatedRequest& request, std::int64_t created)
      : id_("chatcmpl-" + request.event.id), created_(created), model_(request.requested_model),
        include_usage_(request.include_usage) {}

  std::string stream_open(const StreamHead& head) override {
    model_ = head.model;
    return sse(chunk({{"role", "assistant"}, {"content", ""}, {"refusal", nullptr}}, nullptr));
  }

  std::string stream_delta(std::string_view text) override { return sse(chunk({{"content", text}}, nullptr)); }

  std::string stream_close(const FinalReply& f) override {
    model_ = f.model;
    std::string out;
    if (f.tool_calls.is_array() && !f.tool_calls.empty()) {
      json calls = json::array();
      for (std::size_t i = 0; i < f.tool_calls.size(); ++i) {
        json call = f.tool_calls[i];
        call["index"] = i;
        calls.push_back(std::move(call));
      }
      out += sse(chunk({{"tool_calls", std::move(calls)}}, nullptr));
    }
    json last = chunk(json::object(), f.finish_reason.empty() ? json("stop") : json(f.finish_reason));
    last["cascade"] = cascade_json(f);
    out += sse(last);
    if (include_usage_) {
      json usage = base();
      usage["choices"] = json::array();
      usage["usage"] = usage_json(f.usage);
      out += sse(usage);
    }
    out += "data: [DONE]\n\n";
    return out;
  }

  // OpenAI's SDKs raise an APIError for a data event with an `error` field.
  std::string stream_error(const ApiError& error) override {
    return sse(json::parse(error_body(ApiKind::openai, error))) + "data: [DONE]\n\n";
  }

  std::string whole(const FinalReply& f) override {
    json message = {{"role", "assistant"}, {"refusal", nullptr}, {"annotations", json::array()}};
    const bool calls = f.tool_calls.is_array() && !f.tool_calls.empty();
    message["content"] = calls && f.content.empty() ? json(nullptr) : json(f.content);
    if (calls) message["tool_calls"] = f.tool_calls;
    json out = {{"id", id_},
                {"object", "chat.completion"},
                {"created", created_},
                {"model", f.model},
                {"choices", json::array({{{"index", 0},
                                          {"message", std::move(message)},
                                          {"logprobs", nullptr},
                                          {"finish_reason", f.finish_reason.empty() ? "stop" : f.finish_reason}}})},
                {"usage", usage_json(f.usage)},
                {"system_fingerprint", nullptr},
                {"cascade", cascade_json(f)}};
    return out.dump(-1, ' ', false, json::error_handler_t::replace);
  }

 private:
  json base() const {
    json out = {{"id", id_}, {"object", "chat.completion.chunk"}, {"created", created_}, {"model", model_},
                {"system_fingerprint", nullptr}};
    if (include_usage_) out["usage"] = nullptr;
    return out;
  }
  json chunk(json delta, json finish_reason) const {
    json out = base();
    out["choices"] = json::array({{{"index", 0}, {"delta", std::move(delta)}, {"logprobs", nullptr},
                                   {"finish_reason", std::move(finish_reason)}}});
    return out;
  }

  std::string id_;
  std::int64_t created_;
  std::string model_;
  bool include_usage_;
};

}  // namespace

std::optional<ApiError> read_cascade_options(json& body, const RequestContext& context, PromptEvent& event) {
  // Headers first; body fields (read by parse_prompt_event's rules) override them.
  json options = json::object();
  const auto header = [&](std::string_view name) { return context.header ? context.header(name) : std::string_view{}; };
  for (const char* name : {"preference", "cache", "priority"}) {
    if (const auto value = header(std::string("x-cascade-") + name); !value.empty()) options[name] = value;
  }
  if (const auto value = header("x-cascade-cascade"); !value.empty()) {
    if (value != "true" && value != "false")
      return bad_request("header 'x-cascade-cascade' must be true or false, got '" + std::string(value) + "'",
                         "x-cascade-cascade");
    options["cascade"] = value == "true";
  }
  if (const auto value = header("x-cascade-tags"); !value.empty()) {
    json tags = json::array();
    std::string_view rest = value;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      std::string_view tag = rest.substr(0, comma);
      while (!tag.empty() && tag.front() == ' ') tag.remove_prefix(1);
      while (!tag.empty() && tag.back() == ' ') tag.remove_suffix(1);
      if (!tag.empty()) tags.push_back(tag);
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }
    options["tags"] = std::move(tags);
  }
  for (const char* name : {"preference", "cascade", "cache", "priority", "tags"}) {
    if (auto it = body.find(name); it != body.end()) {
      if (!it->is_null()) options[name] = std::move(*it);
      body.erase(it);
    }
  }
  // Checked by the prompt event's own rules, so both front doors and Kafka
  // apps get the same messages.
  json probe = {{"id", "probe"}, {"tenant", "probe"}, {"reply_to", "probe"},
                {"messages", json::array({{{"role", "user"}, {"content", "x"}}})}};
  for (const char* name : {"preference", "cascade", "cache", "priority"}) {
    if (options.contains(name)) probe[name] = options[name];
  }
  auto parsed = parse_prompt_event(probe.dump(), PromptLimits{}, [](std::string_view) { return true; });
  if (!parsed) {
    std::string param;
    for (const char* name : {"preference", "cascade", "cache", "priority"}) {
      if (parsed.error().error.message.find(std::string("'") + name + "'") != std::string::npos) param = name;
    }
    return bad_request(parsed.error().error.message, param);
  }
  event.preference = parsed->preference;
  event.cascade = parsed->cascade;
  event.cache = parsed->cache;
  event.priority = parsed->priority;
  if (options.contains("tags")) {
    const json& tags = options["tags"];
    const bool valid = tags.is_array() && std::ranges::all_of(tags, [](const json& t) { return t.is_string(); });
    if (!valid) return bad_request("'tags' must be an array of strings, got " + describe_value(tags), "tags");
    event.metadata["tags"] = tags;
  }
  return std::nullopt;
}

std::string describe_value(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 64) text = text.substr(0, 61) + "...";
  return text;
}

std::expected<TranslatedRequest, ApiError> begin_translation(json& body, const RequestContext& context) {
  if (!body.is_object()) return std::unexpected(bad_request("the request body must be a JSON object"));
  TranslatedRequest out;
  out.event.id = context.id;
  out.event.tenant = context.tenant;
  out.event.reply_to = context.reply_to;
  if (auto problem = read_cascade_options(body, context, out.event)) return std::unexpected(std::move(*problem));
  return out;
}

Translation finish_translation(ApiKind api, json event, TranslatedRequest out, const RequestContext& context) {
  out.requested_model = event["model"].get<std::string>();
  if (out.requested_model != "auto" && !context.catalog->find(out.requested_model)) {
    if (api == ApiKind::anthropic)
      return std::unexpected(ApiError{404, "model: " + out.requested_model + " (use \"auto\" or an id from GET /v1/models)",
                                      "model", "not_found", -1});
    return std::unexpected(ApiError{
        404, "The model `" + out.requested_model + "` does not exist: use \"auto\" or an id from GET /v1/models",
        "model", "model_not_found", -1});
  }
  PromptEvent& e = out.event;
  if (!e.metadata.empty()) event["metadata"] = e.metadata;
  auto parsed = parse_prompt_event(event.dump(-1, ' ', false, json::error_handler_t::replace), PromptLimits{},
                                   [&](std::string_view id) { return context.catalog->find(id) != nullptr; });
  if (!parsed) {
    // The field the prompt event's rules name first ('messages[1].role').
    const std::string& message = parsed.error().error.message;
    std::string param;
    if (const auto open = message.find('\''); open != std::string::npos) {
      const auto close = message.find('\'', open + 1);
      if (close != std::string::npos) param = message.substr(open + 1, close - open - 1);
    }
    return std::unexpected(bad_request(message, param));
  }
  parsed->preference = e.preference;
  parsed->cascade = e.cascade;
  parsed->cache = e.cache;
  parsed->priority = e.priority;
  e = std::move(*parsed);
  return out;
}

Translation translate_openai_chat(const json& request_body, const RequestContext& context) {
  json body = request_body;
  auto begun = begin_translation(body, context);
  if (!begun) return std::unexpected(std::move(begun.error()));
  TranslatedRequest& out = *begun;
  PromptEvent& e = out.event;

  // The prompt event the worker will read, checked by the same rules first.
  json event = {{"id", e.id}, {"tenant", e.tenant}, {"reply_to", e.reply_to}};
  for (auto& [name, value] : body.items()) {
    const std::string_view key = name;
    if (std::ranges::find(kDefaultOnly, key) != kDefaultOnly.end()) {
      if (!at_default(key, value))
        return std::unexpected(bad_request("'" + name + "' is not supported by Cascade (only its default is), got " +
                                               describe_value(value),
                                           name, "unsupported_parameter"));
      continue;
    }
    if (std::ranges::find(kUnsupported, key) != kUnsupported.end()) {
      if (value.is_null()) continue;
      return std::unexpected(
          bad_request("'" + name + "' is not supported by Cascade", name, "unsupported_parameter"));
    }
    if (key == "model" || key == "messages" || key == "temperature" || key == "stream" || key == "tools" ||
        key == "tool_choice" || key == "response_format") {
      event[name] = value;
    } else if (key == "max_tokens" || key == "max_completion_tokens") {
      if (!value.is_null()) event["max_tokens"] = value;
    } else if (key == "stream_options") {
      if (value.is_null()) continue;
      if (!value.is_object())
        return std::unexpected(bad_request("'stream_options' must be an object", "stream_options"));
      for (auto& [option, setting] : value.items()) {
        if (option == "include_usage" && (setting.is_boolean() || setting.is_null())) {
          out.include_usage = setting.is_boolean() && setting.get<bool>();
        } else if (option != "include_obfuscation") {
          return std::unexpected(bad_request("'stream_options." + option + "' is not supported by Cascade",
                                             "stream_options." + option, "unsupported_parameter"));
        }
      }
    } else if (key == "user") {
      if (value.is_string()) e.metadata["user"] = value;
    } else if (key == "metadata") {
      if (value.is_null()) continue;
      if (!value.is_object()) return std::unexpected(bad_request("'metadata' must be an object", "metadata"));
      for (auto& [k, v] : value.items()) e.metadata[k] = v;
    } else {
      return std::unexpected(
          bad_request("Unrecognized request argument supplied: " + name, name, "unknown_parameter"));
    }
  }
  if (!event.contains("model") || !event["model"].is_string())
    return std::unexpected(bad_request("'model' is required: \"auto\" or a model id from GET /v1/models", "model"));
  if (!event.contains("messages")) return std::unexpected(bad_request("'messages' is required", "messages"));
  // OpenAI's default is not to stream.
  if (!event.contains("stream") || event["stream"].is_null()) event["stream"] = false;
  return finish_translation(ApiKind::openai, std::move(event), std::move(out), context);
}

std::unique_ptr<ResponseRenderer> make_openai_renderer(const TranslatedRequest& request, std::int64_t created) {
  return std::make_unique<OpenAiRenderer>(request, created);
}

std::string openai_error_body(const ApiError& error) {
  std::string type = "invalid_request_error";
  if (error.status == 401) type = "authentication_error";
  else if (error.status == 403) type = "permission_error";
  else if (error.status == 404) type = "invalid_request_error";
  else if (error.status == 429) type = error.code == "budget_exceeded" ? "insufficient_quota" : "rate_limit_error";
  else if (error.status >= 500) type = "server_error";
  json body = {{"error",
                {{"message", error.message},
                 {"type", type},
                 {"param", error.param.empty() ? json(nullptr) : json(error.param)},
                 {"code", error.code.empty() ? json(nullptr) : json(error.code)}}}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string models_list(const ModelCatalog& catalog, std::int64_t created) {
  json data = json::array();
  data.push_back({{"id", "auto"}, {"object", "model"}, {"created", created}, {"owned_by", "cascade"}});
  for (const ModelInfo& m : catalog.models()) {
    data.push_back(json::parse(*model_object(catalog, m.id, created)));
  }
  return json({{"object", "list"}, {"data", std::move(data)}}).dump();
}

std::optional<std::string> model_object(const ModelCatalog& catalog, std::string_view id, std::int64_t created) {
  if (id == "auto") return json({{"id", "auto"}, {"object", "model"}, {"created", created}, {"owned_by", "cascade"}}).dump();
  const ModelInfo* m = catalog.find(id);
  if (!m) return std::nullopt;
  return json({{"id", m->id},
               {"object", "model"},
               {"created", created},
               {"owned_by", m->provider},
               {"cascade",
                {{"tier", to_string(m->tier)},
                 {"provider", m->provider},
                 {"context_window", m->context_window},
                 {"max_output_tokens", m->max_output_tokens},
                 {"input_usd_per_mtok", m->price.input_per_mtok},
                 {"output_usd_per_mtok", m->price.output_per_mtok}}}})
      .dump();
}

}  // namespace cascade::gateway
