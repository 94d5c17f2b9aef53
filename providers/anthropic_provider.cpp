#include "providers/adapter_support.h"
#include "providers/anthropic_provider.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>
#include <vector>

#include "core/logging.h"
#include "providers/retry_after.h"
#include "providers/stream_json.h"

namespace cascade {

namespace {

using nlohmann::json;

// The API version whose wire format this adapter speaks; a configured
// anthropic-version header (e.g. for a beta) replaces it.
constexpr std::string_view kAnthropicVersion = "2023-06-01";
// Anthropic requires max_tokens; used when the request carries none.
constexpr int kDefaultMaxTokens = 1024;
// Error bodies are read only to quote their message; anything longer is abuse.
// The image types Anthropic accepts in base64 image blocks.
constexpr std::array<std::string_view, 4> kImageMediaTypes = {"image/jpeg", "image/png",
                                                              "image/gif", "image/webp"};

std::string string_field(const json& object, std::string_view key) {
  if (!object.is_object()) return {};
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Anthropic: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}.
// Also reads {"error":"..."} and {"message":...} from proxies in front of it.
// `with_type` prefixes the error type, which is all a stream error event has
// to tell an overload from an internal failure (there is no HTTP status).
std::string error_message_of(const json& body, bool with_type) {
  if (!body.is_object()) return {};
  if (const auto error = body.find("error"); error != body.end()) {
    if (error->is_string()) return error->get<std::string>();
    if (error->is_object()) {
      std::string message = string_field(*error, "message");
      if (message.empty()) message = dump(*error);
      const std::string type = string_field(*error, "type");
      return with_type && !type.empty() ? type + ": " + message : message;
    }
  }
  return string_field(body, "message");
}

std::string finish_reason_of(const std::string& stop_reason) {
  if (stop_reason == "end_turn" || stop_reason == "stop_sequence") return "stop";
  if (stop_reason == "max_tokens") return "length";
  return stop_reason;
}

// ------------------------------------------------------------ request ----

std::unexpected<Error> invalid(std::string message) {
  return fail(ErrorCode::invalid_request, "anthropic: " + std::move(message));
}

// "data:image/png;base64,iVBOR..." -> an Anthropic base64 image source.
Result<json> image_source_of(std::string_view url, const std::string& where) {
  if (url.starts_with("https://") || url.starts_with("http://")) {
    return json{{"type", "url"}, {"url", std::string(url)}};
  }
  if (!url.starts_with("data:")) {
    return invalid(where + ": image_url must be an http(s) or data: URL");
  }
  const auto comma = url.find(',');
  if (comma == std::string_view::npos) return invalid(where + ": malformed data: URL");
  std::string_view header = url.substr(5, comma - 5);
  if (!header.ends_with(";base64")) {
    return invalid(where + ": only base64 data: URLs are supported for images");
  }
  header.remove_suffix(7);
  std::string media_type(header);
  std::ranges::transform(media_type, media_type.begin(),
                         [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (std::ranges::find(kImageMediaTypes, media_type) == kImageMediaTypes.end()) {
    return invalid(where + ": image type '" + media_type +
                   "' is not supported (image/jpeg, image/png, image/gif, image/webp)");
  }
  return json{{"type", "base64"}, {"media_type", media_type}, {"data", std::string(url.substr(comma + 1))}};
}

// cache_control on a content part is how a client marks Anthropic's prompt
// cache breakpoints; it only has meaning to Anthropic, so it is carried over.
void copy_cache_control(const json& part, json& block) {
  if (const auto it = part.find("cache_control"); it != part.end() && it->is_object()) {
    block["cache_control"] = *it;
  }
}

// OpenAI content (a string or an array of parts) as Anthropic content blocks.
// Empty text is left out: Anthropic rejects empty text blocks, and they carry nothing.
Result<json> content_blocks_of(const json& content, const std::string& where, bool text_only) {
  json blocks = json::array();
  if (content.is_null()) return blocks;
  if (content.is_string()) {
    if (!content.get_ref<const std::string&>().empty()) {
      blocks.push_back({{"type", "text"}, {"text", content}});
    }
    return blocks;
  }
  if (!content.is_array()) return invalid(where + ".content must be a string or an array of parts");
  for (std::size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    const std::string part_where = where + ".content[" + std::to_string(i) + "]";
    const std::string type = string_field(part, "type");
    if (type == "text") {
      const auto text = part.find("text");
      if (text == part.end() || !text->is_string()) return invalid(part_where + ".text must be a string");
      if (text->get_ref<const std::string&>().empty()) continue;
      json block{{"type", "text"}, {"text", *text}};
      copy_cache_control(part, block);
      blocks.push_back(std::move(block));
    } else if (type == "image_url" && !text_only) {
      const auto image = part.find("image_url");
      std::string url;
      if (image != part.end() && image->is_string()) url = image->get<std::string>();
      if (image != part.end() && image->is_object()) url = string_field(*image, "url");
      if (url.empty()) return invalid(part_where + ".image_url.url must be a non-empty string");
      auto source = image_source_of(url, part_where);
      if (!source) return std::unexpected(source.error());
      json block{{"type", "image"}, {"source", std::move(*source)}};
      copy_cache_control(part, block);
      blocks.push_back(std::move(block));
    } else {
      return invalid(part_where + ": content part type '" + type + "' is not supported" +
                     (text_only ? " in a system message" : ""));
    }
  }
  return blocks;
}

struct AnthropicTurn {
  std::string role;  // user | assistant
  json blocks = json::array();
};

// The Messages API body. Messages are translated, not passed through: the
// system prompt is a top-level field, roles must alternate, and content is
// made of typed blocks.
Result<std::string> request_body_of(const ChatRequest& request) {
  if (request.messages == nullptr || !request.messages->is_array()) {
    return invalid("messages must be an array");
  }
  json system_blocks = json::array();
  std::vector<AnthropicTurn> turns;
  const json& messages = *request.messages;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const json& message = messages[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!message.is_object()) return invalid(where + " must be an object");
    const std::string role = string_field(message, "role");
    for (const char* key : {"tool_calls", "function_call"}) {
      const auto calls = message.find(key);
      if (calls != message.end() && !calls->is_null() && !(calls->is_array() && calls->empty())) {
        return invalid(where + ": " + key + " are not supported by this provider");
      }
    }
    if (role == "tool" || role == "function") {
      return invalid(where + ": role '" + role + "' (tool results) is not supported by this provider");
    }
    static const json kNoContent;
    const auto content_it = message.find("content");
    const json& content = content_it != message.end() ? *content_it : kNoContent;
    if (role == "system" || role == "developer") {
      auto blocks = content_blocks_of(content, where, /*text_only=*/true);
      if (!blocks) return std::unexpected(blocks.error());
      for (auto& block : *blocks) system_blocks.push_back(std::move(block));
      continue;
    }
    if (role != "user" && role != "assistant") {
      return invalid(where + ": unknown role '" + role + "'");
    }
    auto blocks = content_blocks_of(content, where, /*text_only=*/false);
    if (!blocks) return std::unexpected(blocks.error());
    if (blocks->empty()) continue;
    // Anthropic requires user and assistant turns to alternate.
    if (turns.empty() || turns.back().role != role) turns.push_back({role, json::array()});
    for (auto& block : *blocks) turns.back().blocks.push_back(std::move(block));
  }
  if (turns.empty()) return invalid("no user or assistant message with content");

  json body = json::object();
  body["model"] = request.upstream_model;
  body["max_tokens"] = request.max_tokens > 0 ? request.max_tokens : kDefaultMaxTokens;
  body["stream"] = true;
  if (request.temperature) body["temperature"] = std::clamp(*request.temperature, 0.0, 1.0);
  if (!system_blocks.empty()) {
    const bool cache_marked = std::ranges::any_of(
        system_blocks, [](const json& block) { return block.contains("cache_control"); });
    if (cache_marked) {
      body["system"] = std::move(system_blocks);  // blocks keep their cache breakpoints
    } else {
      std::string system;
      for (const json& block : system_blocks) {
        if (!system.empty()) system += "\n\n";
        system += block["text"].get_ref<const std::string&>();
      }
      body["system"] = std::move(system);
    }
  }
  json& out = body["messages"] = json::array();
  for (auto& turn : turns) {
    const bool plain_text = turn.blocks.size() == 1 && turn.blocks[0].size() == 2 &&
                            turn.blocks[0]["type"] == "text";
    out.push_back({{"role", turn.role},
                   {"content", plain_text ? std::move(turn.blocks[0]["text"]) : std::move(turn.blocks)}});
  }
  return dump(body);
}

// ----------------------------------------------------------- response ----

// The state of one streamed message. Owned by the HttpClient transfer, so it
// is freed when the transfer ends, however it ends (done, aborted, cancelled).
class AnthropicChatCall final : public HttpResponseHandler {
 public:
  AnthropicChatCall(ChatStreamObserver& observer, HttpClient& http,
                    std::shared_ptr<const std::string> api_key)
      : observer_(&observer), http_(http), api_key_(std::move(api_key)) {}

  void set_transfer_id(std::uint64_t id) { transfer_id_ = id; }

  void on_status(long status) override { status_ = status; }

  // Anthropic sends retry-after (seconds) with 429 and 529; its
  // anthropic-ratelimit-*-reset headers are timestamps and not read.
  void on_header(std::string_view name, std::string_view value) override { retry_after_.observe(name, value); }

  bool on_body(std::string_view bytes) override {
    if (completed_) return answered_;  // after message_stop, drain so the connection is reused
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
      complete(fail(ErrorCode::provider_error, "stream ended before message_stop"));
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
    if (event.event == "ping") return;
    if (event.event == "content_block_delta" && read_text_delta(event.data)) return;
    const json data = json::parse(event.data, nullptr, /*allow_exceptions=*/false);
    const std::string type = data.is_object() && data.contains("type") ? string_field(data, "type") : event.event;
    if (event.event == "error" || type == "error") {
      std::string message = error_message_of(data, /*with_type=*/true);
      if (message.empty()) message = quotable(event.data);
      complete(fail(ErrorCode::provider_error, "upstream error: " + message));
      return;
    }
    if (data.is_discarded() || !data.is_object()) {
      complete(fail(ErrorCode::provider_error, "malformed stream event"));
      return;
    }
    if (type == "content_block_delta") {
      on_content_delta(data);
    } else if (type == "message_start") {
      if (const auto message = data.find("message"); message != data.end() && message->is_object()) {
        if (const auto usage = message->find("usage"); usage != message->end()) read_usage(*usage);
      }
    } else if (type == "message_delta") {
      if (const auto delta = data.find("delta"); delta != data.end() && delta->is_object()) {
        if (const std::string reason = string_field(*delta, "stop_reason"); !reason.empty()) {
          completion_.finish_reason = finish_reason_of(reason);
        }
      }
      if (const auto usage = data.find("usage"); usage != data.end()) read_usage(*usage);
    } else if (type == "message_stop") {
      answered_ = true;
      completion_.usage = cascade_usage();
      complete(std::move(completion_));
    }
    // content_block_start/stop carry nothing for a text answer; Anthropic
    // asks clients to ignore event types they do not know.
  }

  void on_content_delta(const json& data) {
    const auto delta = data.find("delta");
    if (delta == data.end() || !delta->is_object()) {
      complete(fail(ErrorCode::provider_error, "malformed stream event"));
      return;
    }
    // thinking_delta, signature_delta and input_json_delta are not answer text.
    if (string_field(*delta, "type") != "text_delta") return;
    const auto text = delta->find("text");
    if (text == delta->end() || !text->is_string()) {
      complete(fail(ErrorCode::provider_error, "malformed stream event"));
      return;
    }
    const auto& piece = text->get_ref<const std::string&>();
    if (!piece.empty()) observer_->on_delta(piece);
  }

  // The common event, a content_block_delta of text, without a DOM
  // (stream_json.h). False for anything else (another delta type, an error,
  // invalid JSON): the DOM path reads it as before.
  bool read_text_delta(std::string_view data) {
    using stream_json::Kind;
    using stream_json::Verdict;
    bool block_delta = false, text_delta = false, has_text = false, other = false;
    const auto visit = [&](stream_json::Path p, const stream_json::Value& v) {
      if (p.size() == 1 && p[0].is("type")) {
        block_delta = v.kind == Kind::string && *v.text == "content_block_delta";
        if (!block_delta) other = true;
      } else if (p.size() == 1 && p[0].is("error")) {
        other = true;
      } else if (p.size() == 1 && p[0].is("delta") && v.kind != Kind::object) {
        other = true;
      } else if (p.size() == 2 && p[0].is("delta") && p[1].is("type")) {
        text_delta = v.kind == Kind::string && *v.text == "text_delta";
        if (!text_delta) other = true;
      } else if (p.size() == 2 && p[0].is("delta") && p[1].is("text")) {
        if (v.kind != Kind::string) {
          other = true;
        } else {
          text_.swap(*v.text);
          has_text = true;
        }
      }
      return other ? Verdict::stop : Verdict::go_on;
    };
    if (!scan_(data, visit) || other || !block_delta || !text_delta || !has_text) return false;
    if (!text_.empty()) observer_->on_delta(text_);
    return true;
  }

  // message_start has the input side; message_delta has cumulative output
  // and, from newer API versions, the input side again: the latest count wins.
  void read_usage(const json& usage) {
    if (!usage.is_object()) return;
    completion_.usage_reported = true;
    if (usage.contains("input_tokens")) uncached_input_ = count_of(usage, "input_tokens");
    if (usage.contains("cache_read_input_tokens")) cache_read_ = count_of(usage, "cache_read_input_tokens");
    if (usage.contains("cache_creation_input_tokens")) {
      cache_creation_ = count_of(usage, "cache_creation_input_tokens");
    }
    if (usage.contains("output_tokens")) output_ = count_of(usage, "output_tokens");
  }

  // Anthropic's input_tokens excludes cache reads and writes; Cascade's
  // input_tokens is the whole prompt, of which cached and cache-write tokens
  // are the parts billed at other prices.
  TokenUsage cascade_usage() const {
    TokenUsage usage;
    usage.input_tokens = uncached_input_ + cache_read_ + cache_creation_;
    usage.cached_tokens = cache_read_;
    usage.cache_write_tokens = cache_creation_;
    usage.output_tokens = output_;
    return usage;
  }

  Error http_error() const {
    std::string message = "HTTP " + std::to_string(status_);
    const json body = json::parse(error_body_, nullptr, /*allow_exceptions=*/false);
    std::string detail = error_message_of(body, /*with_type=*/false);
    if (detail.empty() && !body.is_object()) detail = quotable(error_body_);
    if (!detail.empty()) message += ": " + detail;
    return http_status_error(status_, std::move(message), retry_after_.ms());
  }

  Error transport_error(CURLcode result, std::string_view curl_error) const {
    return cascade::transport_error(result, curl_error, status_ != 0, "stream ended before message_stop");
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
  std::string text_;  // read_text_delta's text, buffer kept
  std::string error_body_;
  ChatCompletion completion_;
  std::int64_t uncached_input_ = 0;
  std::int64_t cache_read_ = 0;
  std::int64_t cache_creation_ = 0;
  std::int64_t output_ = 0;
  bool completed_ = false;  // on_complete has been called
  bool answered_ = false;   // ... with success, at message_stop
};

class AnthropicProvider final : public ChatProvider {
 public:
  AnthropicProvider(ProviderConfig config, std::string api_key, HttpClient& http)
      : config_(std::move(config)),
        api_key_(std::make_shared<const std::string>(std::move(api_key))),
        http_(http) {
    std::string_view base = config_.base_url;
    while (base.ends_with('/')) base.remove_suffix(1);
    // Both "https://api.anthropic.com" and ".../v1" name the same API.
    url_ = std::string(base) + (base.ends_with("/v1") ? "/messages" : "/v1/messages");

    const auto configured = [this](std::string_view name) {
      for (const auto& [header, value] : config_.headers) {
        if (equals_ignore_case(header, name)) return true;
      }
      return false;
    };
    if (!configured("content-type")) headers_.emplace_back("content-type: application/json");
    if (!configured("accept")) headers_.emplace_back("accept: text/event-stream");
    if (!configured("anthropic-version")) {
      headers_.push_back("anthropic-version: " + std::string(kAnthropicVersion));
    }
    if (!api_key_->empty() && !configured("x-api-key")) headers_.push_back("x-api-key: " + *api_key_);
    for (const auto& [header, value] : config_.headers) headers_.push_back(header + ": " + value);
  }

  const std::string& name() const override { return config_.name; }

  std::uint64_t start_chat(const ChatRequest& request, ChatStreamObserver& observer) override {
    if (has_tools(request)) {
      observer.on_complete(fail(ErrorCode::provider_error, "the anthropic adapter does not forward tool definitions"));
      return 0;
    }
    auto body = request_body_of(request);
    if (!body) {
      // Nothing was sent, so there is no transfer to report through.
      observer.on_complete(std::unexpected(std::move(body.error())));
      return 0;
    }
    HttpRequest http_request;
    http_request.method = "POST";
    http_request.url = url_;
    http_request.headers = headers_;
    http_request.body = std::move(*body);
    http_request.connect_timeout_ms = config_.connect_timeout_ms;
    http_request.total_timeout_ms = config_.request_timeout_ms;

    auto call = std::make_unique<AnthropicChatCall>(observer, http_, api_key_);
    AnthropicChatCall& call_ref = *call;
    const std::uint64_t id = http_.start(std::move(http_request), std::move(call));
    // No callback runs inside start(), so the id is known before the first one.
    call_ref.set_transfer_id(id);
    return id;
  }

 private:
  ProviderConfig config_;
  std::shared_ptr<const std::string> api_key_;
  HttpClient& http_;
  std::string url_;
  std::vector<std::string> headers_;
};

}  // namespace

std::unique_ptr<ChatProvider> make_anthropic_provider(ProviderConfig config, std::string api_key,
                                                      HttpClient& http) {
  return std::make_unique<AnthropicProvider>(std::move(config), std::move(api_key), http);
}

}  // namespace cascade
