#include "providers/adapter_support.h"
#include "core/text.h"
#include "providers/openai_provider.h"
#include "providers/retry_after.h"
#include "providers/stream_json.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <limits>
#include <map>
#include <utility>

#include "core/logging.h"

namespace cascade {

namespace {

using nlohmann::json;

// Error bodies are read only to quote their message; anything longer is abuse.
// Azure's current GA data-plane version; a base_url carrying ?api-version= overrides it.
constexpr std::string_view kDefaultAzureApiVersion = "2024-10-21";

// {"error":{"message":...}} (OpenAI), {"error":"..."} or {"message":...}.
std::string error_message_of(const json& body) {
  if (!body.is_object()) return {};
  if (const auto error = body.find("error"); error != body.end()) {
    if (error->is_string()) return error->get<std::string>();
    if (error->is_object()) {
      if (const auto m = error->find("message"); m != error->end() && m->is_string()) {
        return m->get<std::string>();
      }
      return error->dump(-1, ' ', false, json::error_handler_t::replace);
    }
  }
  if (const auto m = body.find("message"); m != body.end() && m->is_string()) {
    return m->get<std::string>();
  }
  return {};
}

TokenUsage usage_of(const json& usage) {
  TokenUsage out;
  out.input_tokens = count_of(usage, "prompt_tokens");
  out.output_tokens = count_of(usage, "completion_tokens");
  if (const auto details = usage.find("prompt_tokens_details");
      details != usage.end() && details->is_object()) {
    out.cached_tokens = count_of(*details, "cached_tokens");
  } else {
    // DeepSeek reports cache hits at the top level.
    out.cached_tokens = count_of(usage, "prompt_cache_hit_tokens");
  }
  if (const auto details = usage.find("completion_tokens_details");
      details != usage.end() && details->is_object()) {
    out.reasoning_tokens = count_of(*details, "reasoning_tokens");
  }
  return out;
}

// Assembles the tool_calls fragments of choices[0].delta into the array a
// non-streamed response carries, merging as OpenAI's SDKs do: strings
// concatenate (function.name, function.arguments), objects merge. index, id
// and type identify a call rather than stream as text, so they are set, not
// appended: a server repeating them on every fragment must not double them.
class ToolCallAssembler {
 public:
  void add(const json& fragments) {
    if (!fragments.is_array()) return;
    for (const json& fragment : fragments) {
      if (!fragment.is_object()) continue;
      json& call = calls_[slot_of(fragment)];
      if (!call.is_object()) call = json::object();
      merge(call, fragment);
    }
  }

  bool empty() const { return calls_.empty(); }

  // In index order, without the streaming-only "index".
  json assembled() const {
    json out = json::array();
    for (const auto& [index, call] : calls_) {
      json& added = out.emplace_back(call);
      added.erase("index");
    }
    return out;
  }

 private:
  static bool is_identifier(std::string_view key) {
    return key == "index" || key == "id" || key == "type";
  }

  static void merge(json& into, const json& fragment) {
    for (const auto& [key, value] : fragment.items()) {
      if (value.is_null()) continue;  // "not in this fragment", never a reset
      const auto existing = into.find(key);
      if (existing == into.end()) {
        into[key] = value;
      } else if (existing->is_string() && value.is_string() && !is_identifier(key)) {
        existing->get_ref<std::string&>() += value.get_ref<const std::string&>();
      } else if (existing->is_object() && value.is_object()) {
        merge(*existing, value);
      } else {
        *existing = value;
      }
    }
  }

  std::int64_t slot_of(const json& fragment) const {
    if (const auto index = fragment.find("index");
        index != fragment.end() && index->is_number_integer()) {
      return index->get<std::int64_t>();
    }
    // Some OpenAI-compatible servers omit the index: a fragment with a new id
    // starts the next call, one without an id continues the last.
    if (calls_.empty()) return 0;
    const auto& [last_index, last_call] = *calls_.rbegin();
    const auto id = fragment.find("id");
    if (id == fragment.end() || !id->is_string() || id->get_ref<const std::string&>().empty()) {
      return last_index;
    }
    const auto last_id = last_call.find("id");
    const bool same_call = last_id != last_call.end() && *last_id == *id;
    // A hostile index at the top of the range must not overflow into UB.
    if (same_call || last_index == std::numeric_limits<std::int64_t>::max()) return last_index;
    return last_index + 1;
  }

  std::map<std::int64_t, json> calls_;
};

// The state of one streamed chat. Owned by the HttpClient transfer, so it is
// freed when the transfer ends, however it ends (done, aborted, cancelled).
class OpenAiChatCall final : public HttpResponseHandler {
 public:
  OpenAiChatCall(ChatStreamObserver& observer, HttpClient& http,
                 std::shared_ptr<const std::string> api_key)
      : observer_(&observer), http_(http), api_key_(std::move(api_key)) {}

  void set_transfer_id(std::uint64_t id) { transfer_id_ = id; }

  void on_status(long status) override { status_ = status; }

  void on_header(std::string_view name, std::string_view value) override { retry_after_.observe(name, value); }

  bool on_body(std::string_view bytes) override {
    if (completed_) return answered_;  // after [DONE], drain so the connection is reused
    if (!http_success()) {
      const std::size_t room = kMaxErrorBodyBytes - error_body_.size();
      error_body_.append(bytes.substr(0, room));
      return bytes.size() <= room;
    }
    sse_.feed(bytes, [this](const SseParser::Event& event) { on_event(event); });
    return !completed_ || answered_;
  }

  void on_done(CURLcode result, std::string_view curl_error) override {
    if (completed_) return;
    if (status_ != 0 && !http_success()) {
      complete(std::unexpected(http_error()));
    } else if (result == CURLE_OK) {
      complete(fail(ErrorCode::provider_error, "stream ended before [DONE]"));
    } else {
      complete(std::unexpected(transport_error(result, curl_error)));
    }
  }

 private:
  bool http_success() const { return status_ >= 200 && status_ < 300; }

  void on_event(const SseParser::Event& event) {
    // A cancel() from inside an observer call means: no more calls.
    if (completed_ || !http_.running(transfer_id_)) {
      completed_ = true;
      return;
    }
    if (trim_space(event.data) == "[DONE]") {
      answered_ = true;
      if (!tool_calls_.empty()) {
        completion_.tool_calls = tool_calls_.assembled();
        // OpenAI says "tool_calls" itself (or "stop" for a forced tool_choice,
        // kept as sent); only a server that names no reason gets one.
        if (completion_.finish_reason.empty()) completion_.finish_reason = "tool_calls";
      }
      complete(std::move(completion_));
      return;
    }
    if (event.event != "error" && read_common_chunk(event.data)) return;
    const json chunk = json::parse(event.data, nullptr, /*allow_exceptions=*/false);
    if (event.event == "error" || (chunk.is_object() && chunk.contains("error"))) {
      std::string message = error_message_of(chunk);
      if (message.empty()) message = quotable(event.data);
      complete(fail(ErrorCode::provider_error, "upstream error: " + message));
      return;
    }
    if (chunk.is_discarded() || !chunk.is_object()) {
      complete(fail(ErrorCode::provider_error, "malformed stream chunk"));
      return;
    }
    if (const auto usage = chunk.find("usage"); usage != chunk.end() && usage->is_object()) {
      completion_.usage = usage_of(*usage);
      completion_.usage_reported = true;
    }
    const auto choices = chunk.find("choices");
    if (choices == chunk.end() || !choices->is_array()) return;
    for (const json& choice : *choices) {
      if (!choice.is_object() || count_of(choice, "index") != 0) continue;
      if (const auto reason = choice.find("finish_reason");
          reason != choice.end() && reason->is_string()) {
        completion_.finish_reason = reason->get<std::string>();
      }
      const auto delta = choice.find("delta");
      if (delta == choice.end() || !delta->is_object()) continue;
      if (const auto calls = delta->find("tool_calls"); calls != delta->end()) {
        tool_calls_.add(*calls);
      }
      const auto content = delta->find("content");
      if (content == delta->end() || !content->is_string()) continue;
      const auto& text = content->get_ref<const std::string&>();
      if (!text.empty()) observer_->on_delta(text);
    }
  }

  // The common chunk (one choice, index 0, text and/or a finish reason)
  // without a DOM (stream_json.h). False when the chunk has anything else
  // (an error, usage, tool calls, more choices) or is not valid JSON: the
  // DOM path then reads it as before.
  bool read_common_chunk(std::string_view data) {
    using stream_json::Kind;
    using stream_json::Verdict;
    bool other = false;
    bool has_text = false, has_reason = false;
    const auto visit = [&](stream_json::Path p, const stream_json::Value& v) {
      const auto unusual = [&] {
        other = true;
        return Verdict::stop;
      };
      switch (p.size()) {
        case 1:
          if ((p[0].is("error") || p[0].is("usage")) && v.kind != Kind::null) return unusual();
          if (p[0].is("choices") && v.kind != Kind::array) return unusual();
          return Verdict::go_on;
        case 2:
          if (p[0].is("choices") && (!p[1].at(0) || v.kind != Kind::object)) return unusual();
          return Verdict::go_on;
        case 3:
          if (!p[0].is("choices")) return Verdict::go_on;
          if (p[2].is("index") && !(v.kind == Kind::integer && v.integer == 0)) return unusual();
          if (p[2].is("finish_reason")) {
            if (v.kind == Kind::string) {
              reason_.swap(*v.text);
              has_reason = true;
            } else if (v.kind != Kind::null) {
              return unusual();
            }
          }
          if (p[2].is("delta") && v.kind != Kind::object && v.kind != Kind::null) return unusual();
          return Verdict::go_on;
        case 4:
          if (!p[0].is("choices") || !p[2].is("delta")) return Verdict::go_on;
          if (p[3].is("content")) {
            if (v.kind == Kind::string) {
              text_.swap(*v.text);
              has_text = true;
            } else if (v.kind != Kind::null) {
              return unusual();
            }
          }
          if ((p[3].is("tool_calls") || p[3].is("function_call")) && v.kind != Kind::null) return unusual();
          return Verdict::go_on;
        default:
          return Verdict::go_on;
      }
    };
    if (!scan_(data, visit) || other) return false;
    if (has_reason) completion_.finish_reason.assign(reason_);
    if (has_text && !text_.empty()) observer_->on_delta(text_);
    return true;
  }

  Error http_error() const {
    std::string message = "HTTP " + std::to_string(status_);
    const json body = json::parse(error_body_, nullptr, /*allow_exceptions=*/false);
    std::string detail = error_message_of(body);
    if (detail.empty() && !body.is_object()) detail = quotable(error_body_);
    if (!detail.empty()) message += ": " + detail;
    return http_status_error(status_, std::move(message), retry_after_.ms());
  }

  Error transport_error(CURLcode result, std::string_view curl_error) const {
    return cascade::transport_error(result, curl_error, status_ != 0, "stream ended before [DONE]");
  }

  void complete(Result<ChatCompletion> outcome) {
    if (completed_) return;
    completed_ = true;
    if (!outcome) {
      outcome.error().message = without_secret(std::move(outcome.error().message), *api_key_);
      if (outcome.error().http_status == 0) outcome.error().http_status = static_cast<int>(status_);
    }
    observer_->on_complete(std::move(outcome));
  }

  ChatStreamObserver* observer_;
  HttpClient& http_;
  // Shared: a call owned by the HttpClient may outlive its provider.
  std::shared_ptr<const std::string> api_key_;
  std::uint64_t transfer_id_ = 0;
  long status_ = 0;
  RetryAfterTracker retry_after_;
  SseParser sse_;
  stream_json::JsonScan scan_;
  std::string text_, reason_;  // the common chunk's fields (read_common_chunk), buffers kept
  std::string error_body_;
  ChatCompletion completion_;
  ToolCallAssembler tool_calls_;
  bool completed_ = false;  // on_complete has been called
  bool answered_ = false;   // ... with success, after [DONE]
};

bool has_query_parameter(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto end = query.find('&');
    const std::string_view parameter = query.substr(0, end);
    if (parameter.starts_with(name) && parameter.substr(name.size()).starts_with('=')) return true;
    if (end == std::string_view::npos) break;
    query.remove_prefix(end + 1);
  }
  return false;
}

// Deployment names are path segments; anything outside RFC 3986's unreserved
// set is escaped so a name cannot reshape the URL.
std::string percent_encoded(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0x0F]);
    }
  }
  return out;
}

enum class OpenAiFlavor {
  openai,  // {base_url}/chat/completions, Bearer key, model in the body
  azure,   // deployment and api-version in the URL, api-key header, no model in the body
};

class OpenAiProvider final : public ChatProvider {
 public:
  OpenAiProvider(OpenAiFlavor flavor, ProviderConfig config, std::string api_key, HttpClient& http)
      : flavor_(flavor),
        config_(std::move(config)),
        api_key_(std::make_shared<const std::string>(std::move(api_key))),
        http_(http) {
    std::string_view base = config_.base_url;
    if (flavor_ == OpenAiFlavor::azure) {
      const auto query_start = base.find('?');
      std::string query(query_start == std::string_view::npos ? std::string_view()
                                                              : base.substr(query_start + 1));
      base = base.substr(0, query_start);
      while (base.ends_with('/')) base.remove_suffix(1);
      if (!has_query_parameter(query, "api-version")) {
        if (!query.empty()) query += '&';
        query += "api-version=";
        query += kDefaultAzureApiVersion;
      }
      url_ = std::string(base) + "/openai/deployments/";
      url_suffix_ = "/chat/completions?" + query;
    } else {
      while (base.ends_with('/')) base.remove_suffix(1);
      url_ = std::string(base) + "/chat/completions";
    }

    const auto configured = [this](std::string_view name) {
      for (const auto& [header, value] : config_.headers) {
        if (equals_ignore_case(header, name)) return true;
      }
      return false;
    };
    if (!configured("Content-Type")) headers_.emplace_back("Content-Type: application/json");
    if (!configured("Accept")) headers_.emplace_back("Accept: text/event-stream");
    if (flavor_ == OpenAiFlavor::azure) {
      // A configured Authorization header is an Entra ID token: it replaces the key.
      if (!api_key_->empty() && !configured("api-key") && !configured("Authorization")) {
        headers_.push_back("api-key: " + *api_key_);
      }
    } else if (!api_key_->empty() && !configured("Authorization")) {
      headers_.push_back("Authorization: Bearer " + *api_key_);
    }
    for (const auto& [header, value] : config_.headers) headers_.push_back(header + ": " + value);
  }

  const std::string& name() const override { return config_.name; }

  std::uint64_t start_chat(const ChatRequest& request, ChatStreamObserver& observer) override {
    HttpRequest http_request;
    http_request.method = "POST";
    http_request.url = flavor_ == OpenAiFlavor::azure
                           ? url_ + percent_encoded(request.upstream_model) + url_suffix_
                           : url_;
    http_request.headers = headers_;
    http_request.body = request_body(request, /*with_model=*/flavor_ == OpenAiFlavor::openai);
    http_request.connect_timeout_ms = config_.connect_timeout_ms;
    http_request.total_timeout_ms = config_.request_timeout_ms;

    auto call = std::make_unique<OpenAiChatCall>(observer, http_, api_key_);
    OpenAiChatCall& call_ref = *call;
    const std::uint64_t id = http_.start(std::move(http_request), std::move(call));
    // No callback runs inside start(), so the id is known before the first one.
    call_ref.set_transfer_id(id);
    return id;
  }

 private:
  // Built as text so the (possibly large) messages are serialized once, not copied.
  static std::string request_body(const ChatRequest& request, bool with_model) {
    static const json kNoMessages = json::array();
    const json& messages = request.messages != nullptr ? *request.messages : kNoMessages;
    const auto dump = [](const json& value) {
      return value.dump(-1, ' ', false, json::error_handler_t::replace);
    };
    std::string body = "{";
    if (with_model) {
      body += R"("model":)";
      body += dump(json(request.upstream_model));
      body += ',';
    }
    body += R"("messages":)";
    body += dump(messages);
    body += R"(,"stream":true,"stream_options":{"include_usage":true})";
    if (request.max_tokens > 0) {
      body += R"(,"max_tokens":)";
      body += std::to_string(request.max_tokens);
    }
    if (request.temperature) {
      body += R"(,"temperature":)";
      body += dump(json(*request.temperature));
    }
    if (request.response_format != nullptr && !request.response_format->is_null()) {
      body += R"(,"response_format":)";
      body += dump(*request.response_format);
    }
    if (has_tools(request)) {
      body += R"(,"tools":)";
      body += dump(*request.tools);
      if (request.tool_choice != nullptr && !request.tool_choice->is_null()) {
        body += R"(,"tool_choice":)";
        body += dump(*request.tool_choice);
      }
    }
    body += '}';
    return body;
  }

  OpenAiFlavor flavor_;
  ProviderConfig config_;
  std::shared_ptr<const std::string> api_key_;
  HttpClient& http_;
  std::string url_;         // azure: up to the deployment name
  std::string url_suffix_;  // azure: after the deployment name
  std::vector<std::string> headers_;
};

}  // namespace

std::unique_ptr<ChatProvider> make_openai_provider(ProviderConfig config, std::string api_key,
                                                   HttpClient& http) {
  return std::make_unique<OpenAiProvider>(OpenAiFlavor::openai, std::move(config),
                                          std::move(api_key), http);
}

std::unique_ptr<ChatProvider> make_azure_openai_provider(ProviderConfig config, std::string api_key,
                                                         HttpClient& http) {
  return std::make_unique<OpenAiProvider>(OpenAiFlavor::azure, std::move(config),
                                          std::move(api_key), http);
}

}  // namespace cascade
