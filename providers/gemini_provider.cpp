#include "providers/adapter_support.h"
#include "providers/gemini_provider.h"
#include "providers/retry_after.h"
#include "providers/stream_json.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <optional>
#include <utility>

#include "core/logging.h"

namespace cascade {

namespace {

using nlohmann::json;

// Error bodies are read only to quote their message; anything longer is abuse.

// Google's {"error":{"code":429,"message":...,"status":"RESOURCE_EXHAUSTED"}}.
// Without alt=sse the same object comes wrapped in an array, so accept that too.
std::string error_message_of(const json& body) {
  const json& object = body.is_array() && !body.empty() ? body.front() : body;
  if (!object.is_object()) return {};
  const auto error = object.find("error");
  if (error == object.end()) return {};
  if (error->is_string()) return error->get<std::string>();
  if (!error->is_object()) return {};
  for (const std::string_view key : {"message", "status"}) {
    if (const auto text = error->find(key); text != error->end() && text->is_string() &&
                                            !text->get_ref<const std::string&>().empty()) {
      return text->get<std::string>();
    }
  }
  return dump(*error);
}

// google.rpc.RetryInfo in the error's details: {"retryDelay":"22s"}, Google's
// own word on when a quota admits the request again.
std::optional<std::int64_t> retry_delay_ms_of(const json& body) {
  const json& object = body.is_array() && !body.empty() ? body.front() : body;
  if (!object.is_object()) return std::nullopt;
  const auto error = object.find("error");
  if (error == object.end() || !error->is_object()) return std::nullopt;
  const auto details = error->find("details");
  if (details == error->end() || !details->is_array()) return std::nullopt;
  for (const json& detail : *details) {
    if (!detail.is_object()) continue;
    const auto delay = detail.find("retryDelay");
    if (delay != detail.end() && delay->is_string()) {
      return parse_duration_ms(delay->get_ref<const std::string&>());
    }
  }
  return std::nullopt;
}

// usageMetadata's counts as Cascade bills them.
struct GeminiCounts {
  std::int64_t prompt = 0, cached = 0, thoughts = 0, candidates = 0;
  TokenUsage usage() const {
    TokenUsage out;
    // promptTokenCount already includes the cached part, as Cascade's input_tokens does.
    out.input_tokens = prompt;
    out.cached_tokens = cached;
    // Thinking tokens are billed at the output price but not counted as candidates.
    out.reasoning_tokens = thoughts;
    out.output_tokens = candidates + thoughts;
    return out;
  }
};

TokenUsage usage_of(const json& usage_metadata) {
  return GeminiCounts{count_of(usage_metadata, "promptTokenCount"), count_of(usage_metadata, "cachedContentTokenCount"),
                      count_of(usage_metadata, "thoughtsTokenCount"), count_of(usage_metadata, "candidatesTokenCount")}
      .usage();
}

// Gemini's FinishReason enum in the OpenAI vocabulary the rest of Cascade uses.
std::string finish_reason_of(std::string_view reason) {
  if (reason == "STOP") return "stop";
  if (reason == "MAX_TOKENS") return "length";
  for (const std::string_view filtered :
       {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}) {
    if (reason == filtered) return "content_filter";
  }
  std::string lowered(reason);
  for (char& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lowered;
}

// The state of one streamed chat. Owned by the HttpClient transfer, so it is
// freed when the transfer ends, however it ends (done, aborted, cancelled).
class GeminiChatCall final : public HttpResponseHandler {
 public:
  GeminiChatCall(ChatStreamObserver& observer, HttpClient& http,
                 std::shared_ptr<const std::string> api_key)
      : observer_(&observer), http_(http), api_key_(std::move(api_key)) {}

  void set_transfer_id(std::uint64_t id) { transfer_id_ = id; }

  void on_status(long status) override { status_ = status; }

  void on_header(std::string_view name, std::string_view value) override { retry_after_.observe(name, value); }

  bool on_body(std::string_view bytes) override {
    // Success completes only in on_done, so a completed call here has failed.
    if (completed_) return false;
    if (!http_success()) {
      const std::size_t room = kMaxErrorBodyBytes - error_body_.size();
      error_body_.append(bytes.substr(0, room));
      return bytes.size() <= room;
    }
    sse_.feed(bytes, [this](const SseParser::Event& event) { on_event(event); });
    return !completed_;
  }

  void on_done(CURLcode result, std::string_view curl_error) override {
    if (completed_) return;
    if (status_ != 0 && !http_success()) {
      complete(std::unexpected(http_error()));
    } else if (result != CURLE_OK) {
      complete(std::unexpected(transport_error(result, curl_error)));
    } else if (!finish_seen_) {
      // Gemini sends no end marker: a clean end is complete only after a finishReason.
      complete(fail(ErrorCode::provider_error, "stream ended before finishReason"));
    } else {
      complete(std::move(completion_));
    }
  }

 private:
  bool http_success() const { return status_ >= 200 && status_ < 300; }

  // False (and no more observer calls) once the observer cancelled the transfer.
  bool still_wanted() {
    if (!completed_ && !http_.running(transfer_id_)) completed_ = true;
    return !completed_;
  }

  void on_event(const SseParser::Event& event) {
    if (!still_wanted()) return;
    if (read_common_chunk(event.data)) return;
    const json chunk = json::parse(event.data, nullptr, /*allow_exceptions=*/false);
    if (chunk.is_object() && chunk.contains("error")) {
      std::string message = error_message_of(chunk);
      if (message.empty()) message = quotable(event.data);
      complete(fail(ErrorCode::provider_error, "upstream error: " + message));
      return;
    }
    if (chunk.is_discarded() || !chunk.is_object()) {
      complete(fail(ErrorCode::provider_error, "malformed stream chunk"));
      return;
    }
    // Usage comes with every chunk and is cumulative: the last one counts.
    if (const auto usage = chunk.find("usageMetadata"); usage != chunk.end() && usage->is_object()) {
      completion_.usage = usage_of(*usage);
      completion_.usage_reported = true;
    }
    if (const auto feedback = chunk.find("promptFeedback");
        feedback != chunk.end() && feedback->is_object()) {
      if (const auto reason = feedback->find("blockReason");
          reason != feedback->end() && reason->is_string()) {
        complete(fail(ErrorCode::provider_error,
                      "prompt blocked by Gemini: " + reason->get<std::string>()));
        return;
      }
    }
    const auto candidates = chunk.find("candidates");
    if (candidates == chunk.end() || !candidates->is_array() || candidates->empty()) return;
    const json& candidate = candidates->front();
    if (!candidate.is_object()) return;
    if (const auto content = candidate.find("content");
        content != candidate.end() && content->is_object()) {
      if (const auto parts = content->find("parts"); parts != content->end() && parts->is_array()) {
        for (const json& part : *parts) {
          if (!part.is_object()) continue;
          // Thought summaries are the model's reasoning, not its answer.
          if (const auto thought = part.find("thought");
              thought != part.end() && thought->is_boolean() && thought->get<bool>()) {
            continue;
          }
          const auto text = part.find("text");
          if (text == part.end() || !text->is_string()) continue;
          const auto& value = text->get_ref<const std::string&>();
          if (value.empty()) continue;
          observer_->on_delta(value);
          if (!still_wanted()) return;
        }
      }
    }
    if (const auto reason = candidate.find("finishReason");
        reason != candidate.end() && reason->is_string() &&
        !reason->get_ref<const std::string&>().empty()) {
      completion_.finish_reason = finish_reason_of(reason->get_ref<const std::string&>());
      finish_seen_ = true;
    }
  }

  // The common chunk (the first candidate's text parts, its finish reason,
  // usageMetadata's counts) without a DOM (stream_json.h). False when the
  // chunk has anything else (an error, prompt feedback, a thought part, a
  // count that is not a plain integer) or is not valid JSON: the DOM path
  // then reads it as before.
  bool read_common_chunk(std::string_view data) {
    using stream_json::Kind;
    using stream_json::Verdict;
    bool other = false, has_usage = false;
    GeminiCounts counts;
    std::size_t texts = 0;
    reason_.clear();
    const auto in_candidate = [](stream_json::Path p) { return p[0].is("candidates") && p[1].at(0); };
    const auto visit = [&](stream_json::Path p, const stream_json::Value& v) {
      const auto unusual = [&] {
        other = true;
        return Verdict::stop;
      };
      switch (p.size()) {
        case 1:
          if (p[0].is("error") || (p[0].is("promptFeedback") && v.kind != Kind::null)) return unusual();
          if (p[0].is("usageMetadata")) {
            if (v.kind != Kind::object) return unusual();
            has_usage = true;
          }
          if (p[0].is("candidates") && v.kind != Kind::array) return unusual();
          return Verdict::go_on;
        case 2:
          if (p[0].is("usageMetadata")) {
            std::int64_t* count = p[1].is("promptTokenCount")          ? &counts.prompt
                                  : p[1].is("cachedContentTokenCount") ? &counts.cached
                                  : p[1].is("thoughtsTokenCount")      ? &counts.thoughts
                                  : p[1].is("candidatesTokenCount")    ? &counts.candidates
                                                                       : nullptr;
            if (count && v.kind != Kind::integer) return unusual();
            if (count) *count = std::max<std::int64_t>(v.integer, 0);
          }
          if (p[0].is("candidates") && p[1].at(0) && v.kind != Kind::object) return unusual();
          return Verdict::go_on;
        case 3:
          if (!in_candidate(p)) return Verdict::go_on;
          if (p[2].is("content") && v.kind != Kind::object) return unusual();
          if (p[2].is("finishReason")) {
            if (v.kind != Kind::string) return unusual();
            reason_.swap(*v.text);
          }
          return Verdict::go_on;
        case 4:
          if (in_candidate(p) && p[2].is("content") && p[3].is("parts") && v.kind != Kind::array) return unusual();
          return Verdict::go_on;
        case 5:
          if (in_candidate(p) && p[2].is("content") && p[3].is("parts") && v.kind != Kind::object) return unusual();
          return Verdict::go_on;
        case 6:
          if (!in_candidate(p) || !p[2].is("content") || !p[3].is("parts")) return Verdict::go_on;
          if (p[5].is("thought")) return unusual();  // reasoning parts: the DOM path decides
          if (p[5].is("text")) {
            if (v.kind != Kind::string) return unusual();
            if (texts == texts_.size()) texts_.emplace_back();
            texts_[texts++].swap(*v.text);
          }
          return Verdict::go_on;
        default:
          return Verdict::go_on;
      }
    };
    if (!scan_(data, visit) || other) return false;
    // As the DOM path: usage, then the text parts, then the finish reason.
    if (has_usage) {
      completion_.usage = counts.usage();
      completion_.usage_reported = true;
    }
    for (std::size_t i = 0; i < texts; ++i) {
      if (texts_[i].empty()) continue;
      observer_->on_delta(texts_[i]);
      if (!still_wanted()) return true;
    }
    if (!reason_.empty()) {
      completion_.finish_reason = finish_reason_of(reason_);
      finish_seen_ = true;
    }
    return true;
  }

  Error http_error() const {
    std::string message = "HTTP " + std::to_string(status_);
    const json body = json::parse(error_body_, nullptr, /*allow_exceptions=*/false);
    std::string detail = error_message_of(body);
    if (detail.empty() && !body.is_object()) detail = quotable(error_body_);
    if (!detail.empty()) message += ": " + detail;
    Error error = http_status_error(status_, std::move(message), retry_after_.ms());
    if (!retry_after_.explicit_wait()) {
      if (const auto delay = retry_delay_ms_of(body)) error.retry_after_ms = *delay;
    }
    return error;
  }

  Error transport_error(CURLcode result, std::string_view curl_error) const {
    // Even after a finishReason a cut response may have lost the final usage.
    return cascade::transport_error(result, curl_error, status_ != 0,
                                    finish_seen_ ? "stream cut after finishReason" : "stream ended before finishReason");
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
  std::vector<std::string> texts_;  // read_common_chunk's text parts, buffers kept
  std::string reason_;
  std::string error_body_;
  ChatCompletion completion_;
  bool finish_seen_ = false;  // a candidate carried a finishReason
  bool completed_ = false;    // on_complete has been called (or the call was cancelled)
};

Error unsupported(std::size_t index, std::string_view what) {
  return Error{ErrorCode::invalid_request,
               "messages[" + std::to_string(index) + "]: " + std::string(what) +
                   " is not supported by the gemini provider"};
}

bool has_tool_calls(const json& message) {
  for (const std::string_view key : {"tool_calls", "function_call"}) {
    const auto it = message.find(key);
    if (it != message.end() && !it->is_null() && !(it->is_array() && it->empty())) return true;
  }
  return false;
}

// Appends {"text":...} for a non-empty JSON string to a comma-separated list.
void append_text_part(std::string& parts, const json& text) {
  if (text.get_ref<const std::string&>().empty()) return;
  if (!parts.empty()) parts += ',';
  parts += R"({"text":)";
  parts += dump(text);
  parts += '}';
}

// The parts of one OpenAI-format message: string content or text parts. Any
// other part is refused rather than dropped, so the model never answers a
// question it was only partly shown.
Result<std::string> parts_of(const json& message, std::size_t index) {
  std::string parts;
  const auto content = message.find("content");
  if (content == message.end() || content->is_null()) return parts;
  if (content->is_string()) {
    append_text_part(parts, *content);
    return parts;
  }
  if (!content->is_array()) {
    return fail(ErrorCode::invalid_request, "messages[" + std::to_string(index) +
                                                "].content must be a string or an array of parts");
  }
  for (const json& part : *content) {
    const auto type = part.is_object() ? part.find("type") : part.end();
    const bool typed = part.is_object() && type != part.end() && type->is_string();
    if (typed && *type == "text") {
      const auto text = part.find("text");
      if (text != part.end() && text->is_string()) {
        append_text_part(parts, *text);
        continue;
      }
    }
    return std::unexpected(unsupported(
        index, typed ? "content part of type '" + type->get<std::string>() + "'" : "a malformed content part"));
  }
  return parts;
}

class GeminiProvider final : public ChatProvider {
 public:
  GeminiProvider(ProviderConfig config, std::string api_key, HttpClient& http)
      : config_(std::move(config)),
        api_key_(std::make_shared<const std::string>(std::move(api_key))),
        http_(http) {
    std::string_view base = config_.base_url;
    while (base.ends_with('/')) base.remove_suffix(1);
    models_url_ = std::string(base) + "/models/";

    const auto configured = [this](std::string_view name) {
      for (const auto& [header, value] : config_.headers) {
        if (equals_ignore_case(header, name)) return true;
      }
      return false;
    };
    if (!configured("Content-Type")) headers_.emplace_back("Content-Type: application/json");
    if (!configured("Accept")) headers_.emplace_back("Accept: text/event-stream");
    // A header, never ?key=: URLs end up in proxy and server logs.
    if (!api_key_->empty() && !configured("x-goog-api-key")) {
      headers_.push_back("x-goog-api-key: " + *api_key_);
    }
    for (const auto& [header, value] : config_.headers) headers_.push_back(header + ": " + value);
  }

  const std::string& name() const override { return config_.name; }

  std::uint64_t start_chat(const ChatRequest& request, ChatStreamObserver& observer) override {
    if (has_tools(request)) {
      observer.on_complete(fail(ErrorCode::provider_error, "the gemini adapter does not forward tool definitions"));
      return 0;
    }
    Result<std::string> body = request_body(request);
    if (!body) {
      observer.on_complete(std::unexpected(std::move(body.error())));
      return 0;
    }
    HttpRequest http_request;
    http_request.method = "POST";
    http_request.url = models_url_ + request.upstream_model + ":streamGenerateContent?alt=sse";
    http_request.headers = headers_;
    http_request.body = std::move(*body);
    http_request.connect_timeout_ms = config_.connect_timeout_ms;
    http_request.total_timeout_ms = config_.request_timeout_ms;

    auto call = std::make_unique<GeminiChatCall>(observer, http_, api_key_);
    GeminiChatCall& call_ref = *call;
    const std::uint64_t id = http_.start(std::move(http_request), std::move(call));
    // No callback runs inside start(), so the id is known before the first one.
    call_ref.set_transfer_id(id);
    return id;
  }

 private:
  // A GenerateContentRequest, written as text so message strings are copied
  // once, straight into the body. Consecutive turns of one role are merged:
  // Gemini expects user and model turns to alternate.
  static Result<std::string> request_body(const ChatRequest& request) {
    if (request.messages == nullptr || !request.messages->is_array()) {
      return fail(ErrorCode::invalid_request, "messages must be an array");
    }
    const json& messages = *request.messages;
    std::string contents;      // the elements of "contents"
    std::string system_parts;  // the parts of "systemInstruction"
    std::string_view open_role;  // role of the turn being written; "" before the first
    for (std::size_t i = 0; i < messages.size(); ++i) {
      const json& message = messages[i];
      if (!message.is_object()) {
        return fail(ErrorCode::invalid_request, "messages[" + std::to_string(i) + "] is not an object");
      }
      const auto role_field = message.find("role");
      if (role_field == message.end() || !role_field->is_string()) {
        return fail(ErrorCode::invalid_request, "messages[" + std::to_string(i) + "].role is missing");
      }
      const auto& role = role_field->get_ref<const std::string&>();
      std::string_view gemini_role;
      if (role == "user") {
        gemini_role = "user";
      } else if (role == "assistant") {
        gemini_role = "model";
      } else if (role != "system" && role != "developer") {
        return std::unexpected(unsupported(i, "role '" + role + "'"));
      }
      if (has_tool_calls(message)) return std::unexpected(unsupported(i, "tool calling"));

      Result<std::string> parts = parts_of(message, i);
      if (!parts) return std::unexpected(std::move(parts.error()));
      if (parts->empty()) continue;
      if (gemini_role.empty()) {
        if (!system_parts.empty()) system_parts += ',';
        system_parts += *parts;
        continue;
      }
      if (gemini_role == open_role) {
        contents += ',';
      } else {
        if (!open_role.empty()) contents += "]},";
        contents += R"({"role":")";
        contents += gemini_role;
        contents += R"(","parts":[)";
        open_role = gemini_role;
      }
      contents += *parts;
    }
    if (open_role.empty()) {
      return fail(ErrorCode::invalid_request, "no user or assistant message with text to send");
    }

    std::string body = R"({"contents":[)";
    body += contents;
    body += "]}]";
    if (!system_parts.empty()) {
      body += R"(,"systemInstruction":{"parts":[)";
      body += system_parts;
      body += "]}";
    }
    std::string generation;
    if (request.max_tokens > 0) generation += R"("maxOutputTokens":)" + std::to_string(request.max_tokens);
    if (request.temperature) {
      if (!generation.empty()) generation += ',';
      generation += R"("temperature":)" + dump(json(*request.temperature));
    }
    if (!generation.empty()) body += R"(,"generationConfig":{)" + generation + '}';
    body += '}';
    return body;
  }

  ProviderConfig config_;
  std::shared_ptr<const std::string> api_key_;
  HttpClient& http_;
  std::string models_url_;  // {base_url}/models/
  std::vector<std::string> headers_;
};

}  // namespace

std::unique_ptr<ChatProvider> make_gemini_provider(ProviderConfig config, std::string api_key,
                                                   HttpClient& http) {
  return std::make_unique<GeminiProvider>(std::move(config), std::move(api_key), http);
}

}  // namespace cascade
