#pragma once
// Providers stream chat completions over HTTP. All I/O runs on the caller's
// event loop (HttpClient wraps a curl multi handle): no thread per request.
#include <curl/curl.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/config_reader.h"
#include "providers/provider_config.h"
#include "core/result.h"
#include "events/events.h"

namespace cascade {

// ---------------------------------------------------------------- HTTP ----

struct HttpRequest {
  std::string method = "POST";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  long connect_timeout_ms = 5000;
  long total_timeout_ms = 120000;
};

// Receives one transfer's events on the loop thread. on_done is called exactly once.
class HttpResponseHandler {
 public:
  virtual ~HttpResponseHandler() = default;
  virtual void on_status(long status) {}
  virtual void on_header(std::string_view name, std::string_view value) {}
  // Body bytes as they arrive (any split). Return false to abort the transfer.
  virtual bool on_body(std::string_view bytes) = 0;
  // curl result of the transfer (CURLE_OK on a complete response, whatever its status).
  virtual void on_done(CURLcode result, std::string_view curl_error) = 0;
};

// One curl multi handle driven by the owning thread's event loop.
class HttpClient {
 public:
  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Starts a transfer; the handler must outlive it (until on_done).
  // Returns a transfer id usable with cancel().
  std::uint64_t start(HttpRequest request, HttpResponseHandler& handler);
  // Same, but the client owns the handler and destroys it when the transfer
  // ends: after on_done returns, on cancel(), or with the client. Lets per-call
  // state live exactly as long as its transfer, whoever ends it.
  std::uint64_t start(HttpRequest request, std::unique_ptr<HttpResponseHandler> handler);
  // Aborts a transfer; its handler gets no further calls (not even on_done).
  void cancel(std::uint64_t transfer_id);

  // Drives transfers: waits up to timeout_ms for socket activity, or for
  // `wake_fd` (e.g. a Kafka queue's io-event fd) to become readable, then
  // delivers callbacks. wake_fd is drained by the caller.
  void poll(int timeout_ms, int wake_fd = -1);
  // Makes a blocked poll() return now (thread-safe).
  void wakeup();

  std::size_t active() const;
  // False once the transfer has finished (from its on_done on) or was
  // cancelled. A handler checks it after calling out to code that may have
  // cancelled it, since a cancel() from inside a callback takes effect later.
  bool running(std::uint64_t transfer_id) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ------------------------------------------------------------- providers ----

struct ChatRequest {
  std::string upstream_model;
  const nlohmann::json* messages = nullptr;  // OpenAI format; not owned
  int max_tokens = 1024;
  std::optional<double> temperature;
  // OpenAI's response_format, passed through by OpenAI-compatible providers
  // (others ignore it); null or nullptr = none. Not owned.
  const nlohmann::json* response_format = nullptr;
  // OpenAI's tools and tool_choice, forwarded by OpenAI-compatible providers;
  // the Anthropic and Gemini adapters do not translate them yet and fail
  // such a call as a provider_error (so a fallback may take it). Not owned.
  const nlohmann::json* tools = nullptr;
  const nlohmann::json* tool_choice = nullptr;
};

// Whether a chat asks for tool calling (a non-empty tools array).
inline bool has_tools(const ChatRequest& request) {
  return request.tools != nullptr && request.tools->is_array() && !request.tools->empty();
}

struct ChatCompletion {
  std::string finish_reason;  // "stop", "length", "tool_calls", ...
  TokenUsage usage;
  bool usage_reported = false;  // false if the provider sent no usage
  // Tool calls assembled from the stream, in OpenAI's non-streamed form
  // ([{"id","type","function":{"name","arguments"}}], by index); [] if none.
  nlohmann::json tool_calls = nlohmann::json::array();
};

// Receives a streamed chat on the loop thread; on_complete is called exactly once.
class ChatStreamObserver {
 public:
  virtual ~ChatStreamObserver() = default;
  virtual void on_delta(std::string_view text) = 0;
  // Errors: provider_error (HTTP status >= 400, malformed stream, stream cut
  // before its end marker), timeout, unavailable (connection failed).
  virtual void on_complete(Result<ChatCompletion> outcome) = 0;
};

class ChatProvider {
 public:
  virtual ~ChatProvider() = default;
  virtual const std::string& name() const = 0;
  // Starts a streamed chat; returns the transfer id (HttpClient::cancel).
  virtual std::uint64_t start_chat(const ChatRequest& request, ChatStreamObserver& observer) = 0;
};

// Incremental Server-Sent Events parser (WHATWG rules: LF, CR or CRLF line
// ends, comments, multi-line data joined with '\n', events end at a blank line).
class SseParser {
 public:
  struct Event {
    std::string event;  // "" when no event: field
    std::string data;
  };
  // Feeds bytes in any split; calls on_event for each complete event.
  void feed(std::string_view bytes, const std::function<void(const Event&)>& on_event);

 private:
  void line(std::string_view line, const std::function<void(const Event&)>& on_event);
  std::string buffer_;
  bool last_was_cr_ = false;
  Event current_;
  bool has_data_ = false;
  bool at_stream_start_ = true;  // a BOM is skipped only at the very start
};

// Providers enabled for one event loop, by name (cascade.yaml providers.*).
class ProviderRegistry {
 public:
  // Builds every configured provider whose key is present in env; logs one
  // line per disabled provider. Unknown kinds are a startup error.
  [[nodiscard]] static Result<ProviderRegistry> build(const std::map<std::string, ProviderConfig>& configs,
                                        HttpClient& http, const EnvLookup& env);
  ChatProvider* find(std::string_view name) const;
  bool available(std::string_view name) const { return find(name) != nullptr; }
  std::vector<std::string> names() const;

 private:
  std::map<std::string, std::unique_ptr<ChatProvider>, std::less<>> providers_;
};

}  // namespace cascade
