// One client connection of the gateway: HTTP/1.1 with keep-alive, requests
// read with Beast's parser, answers written by hand (a Content-Length body,
// or chunked SSE while an answer streams). While a request waits for its
// answer the session keeps a read open on the socket: the client closing it
// is how a disconnect is seen, and it is then cancelled.
#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <cstring>
#include <deque>
#include <random>

#include "gateway/gateway_impl.h"

namespace cascade {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using gateway::ApiError;
using gateway::ApiKind;

namespace {

std::string new_request_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[40];
  std::snprintf(buf, sizeof buf, "gw-%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

// A header value as it may be sent: no control characters, bounded.
std::string header_safe(std::string_view value, std::size_t max = 512) {
  std::string out;
  for (const char c : value.substr(0, max)) out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c);
  return out;
}

// OpenAI's encoding_format "base64": the vector's float32s, little-endian, in base64.
std::string base64_floats(const std::vector<float>& vector) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes(vector.size() * sizeof(float), '\0');
  for (std::size_t i = 0; i < vector.size(); ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, &vector[i], sizeof bits);
    for (int b = 0; b < 4; ++b) bytes[4 * i + b] = static_cast<char>((bits >> (8 * b)) & 0xFF);
  }
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    const std::uint32_t n = (static_cast<unsigned char>(bytes[i]) << 16) |
                            (i + 1 < bytes.size() ? static_cast<unsigned char>(bytes[i + 1]) << 8 : 0) |
                            (i + 2 < bytes.size() ? static_cast<unsigned char>(bytes[i + 2]) : 0);
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=');
    out.push_back(i + 2 < bytes.size() ? kAlphabet[n & 63] : '=');
  }
  return out;
}

std::int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class Session;

// One request of a session that waits for its reply events.
class Exchange final : public PendingExchange {
 public:
  Exchange(std::weak_ptr<Session> session) : session_(std::move(session)) {}
  void on_reply(const GatewayReply& reply) override;
  void on_not_delivered(std::string_view why) override;
  void on_shutdown() override;

 private:
  std::weak_ptr<Session> session_;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Gateway::Impl& gateway, tcp::socket socket)
      : g_(gateway), socket_(std::move(socket)), idle_(g_.ioc), deadline_(g_.ioc) {}

  void start() { read_request(); }

  // ------------------------------------------------ from the exchange ----
  void on_reply(const GatewayReply& reply) { handle_reply(reply); }
  void on_not_delivered(std::string_view why) {
    finish_with_error(ApiError{503, "Kafka did not take the request: " + std::string(why), {}, "unavailable", 1});
  }
  void on_shutdown() {
    if (!active_) return;
    g_.publish_cancel(id_, tenant_, "shutdown");
    finish_with_error(ApiError{503, "the gateway is shutting down; retry", {}, "unavailable", 1});
  }

 private:
  // ----------------------------------------------------------- reading ----
  void read_request() {
    parser_.emplace();
    parser_->body_limit(static_cast<std::uint64_t>(g_.config().gateway.max_body_bytes));
    parser_->header_limit(64 * 1024);
    arm_idle();
    http::async_read(socket_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->idle_.cancel();
      self->on_request(ec);
    });
  }

  void arm_idle() {
    idle_.expires_after(std::chrono::milliseconds(g_.config().gateway.idle_timeout_ms));
    idle_.async_wait([weak = weak_from_this()](beast::error_code ec) {
      if (ec) return;
      if (auto self = weak.lock(); self && !self->active_) self->close();
    });
  }

  void on_request(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      request_api_ = ApiKind::openai;
      keep_alive_ = false;
      respond_error(ApiError{413, "the request body is larger than gateway.max_body_bytes (" +
                                      std::to_string(g_.config().gateway.max_body_bytes) + " bytes)",
                             {}, "request_too_large", -1});
      return;
    }
    if (ec) {
      if (ec != http::error::end_of_stream && ec != asio::error::operation_aborted && ec != asio::error::eof &&
          ec != asio::error::connection_reset)
        spdlog::debug("gateway: read: {}", ec.message());
      close();
      return;
    }
    request_ = parser_->release();
    keep_alive_ = request_.keep_alive();
    started_ = GatewayClock::now();
    g_.requests++;
    handle();
  }

  // The read kept open while an answer is pending: EOF means the client left.
  void watch() {
    watch_pending_ = true;
    socket_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->watch_pending_ = false;
      if (ec) {
        if (self->active_) self->client_gone();
        self->close();
        return;
      }
      self->buffer_.commit(n);
      if (self->active_) {
        // Pipelined bytes of the next request: kept, unless there are too many.
        if (self->buffer_.size() > (1u << 20)) return self->close();
        self->watch();
      } else if (self->closed_ || self->close_after_write_) {
        self->close();
      } else {
        self->read_request_when_written();
      }
    });
  }

  std::string_view header(std::string_view name) const {
    const auto it = request_.find(beast::string_view(name.data(), name.size()));
    if (it == request_.end()) return {};
    return {it->value().data(), it->value().size()};
  }

  // ----------------------------------------------------------- routing ----
  void handle() {
    const std::string_view target(request_.target().data(), request_.target().size());
    const std::string_view path = target.substr(0, target.find('?'));
    request_api_ = path.starts_with("/v1/messages") ? ApiKind::anthropic : ApiKind::openai;
    const auto method = request_.method();

    if (path == "/healthz") return respond(200, "text/plain", "ok\n");
    if (path == "/readyz") {
      return g_.ready.load() ? respond(200, "text/plain", "ready\n") : respond(503, "text/plain", "not ready\n");
    }
    if (path == "/metrics") return respond(200, "text/plain; version=0.0.4", g_.metrics_text());

    for (auto& [prefix, route] : g_.options.routes) {
      if (path == prefix || path.starts_with(prefix + "/")) {
        auto principal = authenticate();
        if (!principal) return;
        return serve_route(route, std::move(*principal));
      }
    }

    const bool chat = path == "/v1/chat/completions" || path == "/chat/completions";
    const bool messages = path == "/v1/messages";
    const bool models = path == "/v1/models" || path.starts_with("/v1/models/");
    const bool embeddings = path == "/v1/embeddings";
    if (!chat && !messages && !models && !embeddings)
      return respond_error(ApiError{404, "no such path: " + std::string(path), {}, "not_found", -1});
    if ((models && method != http::verb::get) || (!models && method != http::verb::post))
      return respond_error(ApiError{405, std::string(request_.method_string()) + " is not allowed on " + std::string(path),
                                    {}, "method_not_allowed", -1});
    auto principal = authenticate();
    if (!principal) return;
    if (models) {
      if (path == "/v1/models") return respond(200, "application/json", gateway::models_list(*g_.options.catalog, unix_seconds()));
      const auto model = gateway::model_object(*g_.options.catalog, path.substr(std::string_view("/v1/models/").size()),
                                               unix_seconds());
      if (!model) return respond_error(ApiError{404, "no such model", "model", "model_not_found", -1});
      return respond(200, "application/json", *model);
    }
    const json body = json::parse(request_.body(), nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded())
      return respond_error(gateway::bad_request("the request body is not valid JSON", {}, "invalid_json"));
    if (embeddings) return serve_embeddings(body);
    start_exchange(messages ? ApiKind::anthropic : ApiKind::openai, body, std::move(*principal));
  }

  // The caller's tenant: from its API key, or gateway.default_tenant with
  // gateway.auth none. Answers 401/403 itself and returns nullopt.
  std::optional<Principal> authenticate() {
    if (g_.config().gateway.auth == "none") {
      return Principal{g_.config().gateway.default_tenant, "", "", KeyRole::tenant};
    }
    const auto key = key_from_headers(header("authorization"), header("x-api-key"));
    auto principal = g_.options.keys->authenticate(key);
    if (!principal) {
      respond_error(ApiError{401, principal.error().message, {}, "invalid_api_key", -1});
      return std::nullopt;
    }
    if (principal->role != KeyRole::tenant) {
      respond_error(ApiError{403, "an admin key cannot send requests: use a tenant's key", {}, "permission_denied", -1});
      return std::nullopt;
    }
    return std::move(*principal);
  }

  void serve_route(const GatewayRoute& route, Principal principal) {
    GatewayHttpRequest request;
    request.method = std::string(request_.method_string());
    request.target = std::string(request_.target());
    request.header = [self = shared_from_this()](std::string_view name) { return self->header(name); };
    request.body = std::move(request_.body());
    request.tenant = std::move(principal.tenant);
    active_route_ = true;
    // A route may answer from any thread: the answer is written on the I/O
    // thread. Until it answers, its callback keeps the session.
    route(std::move(request), [self = shared_from_this(), &ioc = g_.ioc](GatewayHttpResponse response) {
      asio::post(ioc, [self, response = std::move(response)]() mutable {
        if (!self->active_route_) return;
        self->active_route_ = false;
        self->respond(response.status, response.content_type, std::move(response.body), response.headers);
      });
    });
  }

  void serve_embeddings(const json& body) {
    if (!g_.embedder) return respond_error(ApiError{503, "no embedder is configured", {}, "unavailable", -1});
    std::vector<std::string> texts;
    const auto input = body.find("input");
    if (input != body.end() && input->is_string()) {
      texts.push_back(input->get<std::string>());
    } else if (input != body.end() && input->is_array() && !input->empty() &&
               std::ranges::all_of(*input, [](const json& t) { return t.is_string(); })) {
      for (const json& t : *input) texts.push_back(t.get<std::string>());
    } else {
      return respond_error(gateway::bad_request("'input' must be a string or a non-empty array of strings", "input"));
    }
    for (const auto& [name, value] : body.items()) {
      if (name == "input" || name == "model" || name == "user" || value.is_null()) continue;
      if (name == "encoding_format" && (value == "float" || value == "base64")) continue;
      if (name == "dimensions" && value.is_number_integer() &&
          value.get<std::size_t>() == g_.embedder->dimension())
        continue;
      return respond_error(gateway::bad_request("'" + name + "' is not supported by Cascade's embeddings", name,
                                                "unsupported_parameter"));
    }
    const bool base64 = body.value("encoding_format", json()) == "base64";
    auto run = [embedder = g_.embedder.get(), texts = std::move(texts), base64] {
      std::vector<std::string> normalized;
      normalized.reserve(texts.size());
      std::size_t tokens = 0;
      for (const auto& t : texts) {
        normalized.push_back(normalize_text(t));
        tokens += (t.size() + 3) / 4;
      }
      auto vectors = embedder->embed(normalized);
      if (!vectors) return std::make_pair(503, gateway::error_body(ApiKind::openai, ApiError{503, vectors.error().message, {}, "unavailable", -1}));
      json data = json::array();
      for (std::size_t i = 0; i < vectors->size(); ++i)
        data.push_back({{"object", "embedding"},
                        {"index", i},
                        {"embedding", base64 ? json(base64_floats((*vectors)[i])) : json((*vectors)[i])}});
      return std::make_pair(200, json({{"object", "list"},
                                       {"data", std::move(data)},
                                       {"model", embedder->tag()},
                                       {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}})
                                     .dump());
    };
    if (!g_.embedder_blocks) {
      auto [status, text] = run();
      return respond(status, "application/json", std::move(text));
    }
    active_route_ = true;
    asio::post(*g_.embed_pool, [self = shared_from_this(), &ioc = g_.ioc, run = std::move(run)]() mutable {
      auto result = run();
      asio::post(ioc, [self, result = std::move(result)]() mutable {
        if (!self->active_route_) return;
        self->active_route_ = false;
        self->respond(result.first, "application/json", std::move(result.second));
      });
    });
  }

  // ---------------------------------------------------- an LLM request ----
  void start_exchange(ApiKind api, const json& body, Principal principal) {
    if (g_.pending.size() >= static_cast<std::size_t>(g_.config().gateway.max_in_flight)) {
      g_.rejected_busy++;
      return respond_error(ApiError{429, "the gateway has gateway.max_in_flight (" +
                                             std::to_string(g_.config().gateway.max_in_flight) +
                                             ") requests in flight; retry shortly",
                                    {}, "rate_limited", 1});
    }
    gateway::RequestContext context{new_request_id(), principal.tenant, g_.reply_topic, g_.options.catalog,
                                    [this](std::string_view name) { return header(name); }};
    auto translated = api == ApiKind::anthropic ? gateway::translate_anthropic_messages(body, context)
                                                : gateway::translate_openai_chat(body, context);
    if (!translated) return respond_error(translated.error());
    auto token = g_.produce_prompt(translated->event);
    if (!token) return respond_error(ApiError{503, token.error().message, {}, "unavailable", 1});
    id_ = translated->event.id;
    tenant_ = translated->event.tenant;
    stream_ = translated->event.stream;
    renderer_ = gateway::make_renderer(api, *translated, unix_seconds());
    requested_model_ = translated->requested_model;
    next_seq_ = 0;
    opened_ = false;
    active_ = true;
    exchange_ = std::make_shared<Exchange>(weak_from_this());
    g_.pending[id_] = exchange_;
    g_.metrics->in_flight.Increment();
    deadline_.expires_after(std::chrono::milliseconds(g_.config().gateway.request_timeout_ms));
    deadline_.async_wait([weak = weak_from_this()](beast::error_code ec) {
      if (ec) return;
      if (auto self = weak.lock(); self && self->active_) {
        self->g_.publish_cancel(self->id_, self->tenant_, "timeout");
        self->finish_with_error(ApiError{504, "no answer within gateway.request_timeout_ms (" +
                                                  std::to_string(self->g_.config().gateway.request_timeout_ms) +
                                                  " ms); the request was cancelled",
                                         {}, "timeout", -1});
      }
    });
    watch();
  }

  void client_gone() {
    g_.publish_cancel(id_, tenant_, "client_closed");
    if (!opened_) count(499);
    finish(499);
  }

  // Response headers naming what answered.
  std::vector<std::pair<std::string, std::string>> answer_headers(std::string_view model, std::string_view provider,
                                                                  std::string_view cache, std::string_view reason,
                                                                  const double* cost) const {
    std::vector<std::pair<std::string, std::string>> h = {{"x-request-id", id_}, {"x-cascade-request-id", id_}};
    if (!model.empty()) h.emplace_back("x-cascade-model", header_safe(model));
    if (!provider.empty()) h.emplace_back("x-cascade-provider", header_safe(provider));
    if (!cache.empty()) h.emplace_back("x-cascade-cache", header_safe(cache));
    if (!reason.empty()) h.emplace_back("x-cascade-route-reason", header_safe(reason));
    if (cost) {
      char text[32];
      std::snprintf(text, sizeof text, "%.10f", *cost);
      h.emplace_back("x-cascade-cost-usd", text);
    }
    return h;
  }

  void open_stream(const json& head_event) {
    const std::string model = head_event.value("model", requested_model_);
    const json route = head_event.value("route", json::object());
    auto headers = answer_headers(model, head_event.value("provider", ""), head_event.value("cache", ""),
                                  route.is_object() ? route.value("reason", "") : "", nullptr);
    headers.emplace_back("cache-control", "no-cache");
    write_head(200, "text/event-stream; charset=utf-8", headers, /*chunked=*/true, 0);
    write_chunk(renderer_->stream_open(gateway::StreamHead{model}));
    opened_ = true;
    g_.metrics->first_byte.Add({{"api", api_label()}}, seconds_buckets())
        .Observe(std::chrono::duration<double>(GatewayClock::now() - started_).count());
  }

  void finish_with_error(const ApiError& error) {
    if (!active_) return;
    if (opened_) {
      write_chunk(renderer_->stream_error(error));
      finish(error.status);
    } else {
      const int status = error.status;
      finish(status, /*end_stream=*/false);
      respond_error(error);
    }
  }

 private:
  std::string api_label() const { return request_api_ == ApiKind::anthropic ? "anthropic" : "openai"; }

  static const prometheus::Histogram::BucketBoundaries& seconds_buckets() {
    static const prometheus::Histogram::BucketBoundaries buckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                                    1,     2.5,  5,     10,   30,  60,  300};
    return buckets;
  }

  // Ends the current exchange. An open stream is terminated unless
  // end_stream is false (the caller then writes the response itself).
  void finish(int status, bool end_stream = true) {
    if (!active_) return;
    active_ = false;
    deadline_.cancel();
    g_.pending.erase(id_);
    exchange_.reset();
    g_.metrics->in_flight.Decrement();
    if (opened_ && end_stream) {
      end_chunks();
      count(status);
    }
  }

  void count(int status) {
    g_.metrics->responses.Add({{"api", api_label()}, {"status", std::to_string(status)}}).Increment();
    g_.metrics->duration.Add({{"api", api_label()}}, seconds_buckets())
        .Observe(std::chrono::duration<double>(GatewayClock::now() - started_).count());
  }

  void handle_reply(const GatewayReply& reply) {
    if (!active_) return;
    const ReplyEvent& e = reply.event;
    if (e.type == "chunk") {
      if (e.seq < next_seq_) return;  // a redelivered stream's repeat
      next_seq_ = e.seq + 1;
      if (!stream_) return;
      if (!opened_) open_stream(e.body);
      write_chunk(renderer_->stream_delta(e.body.value("delta", "")));
      return;
    }
    if (e.type == "final") {
      if (!reply.final) {
        return finish_with_error(ApiError{502, "the worker's final event could not be read", {}, "internal", -1});
      }
      const FinalReply& f = *reply.final;
      if (stream_) {
        if (!opened_) {
          json head = {{"model", f.model}, {"provider", f.provider}, {"cache", to_string(f.cache)},
                       {"route", {{"reason", f.route.reason}}}};
          open_stream(head);
        }
        write_chunk(renderer_->stream_close(f));
        finish(200);
        return;
      }
      const std::string cache(to_string(f.cache));
      auto headers = answer_headers(f.model, f.provider, cache, f.route.reason, &f.cost_usd);
      std::string body = renderer_->whole(f);
      finish(200, false);
      respond(200, "application/json", std::move(body), headers);
      return;
    }
    if (e.type == "error") {
      const json error = e.body.value("error", json::object());
      finish_with_error(gateway::api_error_of(error.value("code", std::string("internal")),
                                              error.value("message", std::string("the request failed"))));
    }
    // Other types: a newer worker's; skipped.
  }

 private:
  // ----------------------------------------------------------- writing ----
  void respond_error(const ApiError& error) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (error.retry_after_seconds >= 0) headers.emplace_back("retry-after", std::to_string(error.retry_after_seconds));
    if (!id_.empty() && error.status != 401) headers.emplace_back("x-cascade-request-id", id_);
    if (error.status == 413) keep_alive_ = false;
    respond(error.status, "application/json", gateway::error_body(request_api_, error), headers);
  }

  void respond(int status, std::string_view content_type, std::string body,
               const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    count(status);
    write_head(status, content_type, headers, /*chunked=*/false, body.size());
    if (request_.method() != http::verb::head) push(std::move(body));
    after_response();
  }

  void write_head(int status, std::string_view content_type, const std::vector<std::pair<std::string, std::string>>& headers,
                  bool chunked, std::size_t length) {
    std::string head = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason_phrase(status)) + "\r\n";
    head += "server: cascade-gateway\r\ncontent-type: ";
    head += content_type;
    head += "\r\n";
    if (chunked) {
      head += "transfer-encoding: chunked\r\n";
    } else {
      head += "content-length: " + std::to_string(length) + "\r\n";
    }
    if (!keep_alive_) head += "connection: close\r\n";
    for (const auto& [name, value] : headers) head += name + ": " + value + "\r\n";
    head += "\r\n";
    push(std::move(head));
  }

  void write_chunk(std::string data) {
    if (data.empty()) return;
    char size[20];
    std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    data.insert(0, size);
    data += "\r\n";
    push(std::move(data));
  }

  void end_chunks() {
    push("0\r\n\r\n");
    after_response();
  }

  // A response is complete: keep-alive goes on with the next request (or
  // the watch already waiting for it), otherwise the socket closes once written.
  void after_response() {
    if (!keep_alive_) {
      close_after_write_ = true;
      if (!writing_) close();
      return;
    }
    // A watch still waiting brings the next request itself.
    if (!watch_pending_) read_request_when_written();
  }

  void read_request_when_written() {
    if (writing_) {
      read_after_write_ = true;
    } else {
      read_request();
    }
  }

  void push(std::string bytes) {
    out_.push_back(std::move(bytes));
    if (!writing_) write_next();
  }

  void write_next() {
    if (out_.empty()) {
      writing_ = false;
      if (close_after_write_) return close();
      if (read_after_write_) {
        read_after_write_ = false;
        read_request();
      }
      return;
    }
    writing_ = true;
    asio::async_write(socket_, asio::buffer(out_.front()), [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->out_.pop_front();
      if (ec) {
        self->out_.clear();
        self->writing_ = false;
        if (self->active_) self->client_gone();
        self->close();
        return;
      }
      self->write_next();
    });
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    idle_.cancel();
    deadline_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  Gateway::Impl& g_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> request_;
  asio::steady_timer idle_;
  asio::steady_timer deadline_;
  bool keep_alive_ = true;
  bool closed_ = false;
  GatewayClock::time_point started_;
  ApiKind request_api_ = ApiKind::openai;
  bool active_route_ = false;

  // The exchange in progress, if any.
  bool active_ = false;
  bool watch_pending_ = false;  // the read watching for a disconnect is outstanding
  std::shared_ptr<Exchange> exchange_;
  std::string id_;
  std::string tenant_;
  bool stream_ = false;
  bool opened_ = false;
  std::int64_t next_seq_ = 0;
  std::string requested_model_;
  std::unique_ptr<gateway::ResponseRenderer> renderer_;

  std::deque<std::string> out_;
  bool writing_ = false;
  bool close_after_write_ = false;
  bool read_after_write_ = false;
};

void Exchange::on_reply(const GatewayReply& reply) {
  if (auto s = session_.lock()) s->on_reply(reply);
}
void Exchange::on_not_delivered(std::string_view why) {
  if (auto s = session_.lock()) s->on_not_delivered(why);
}
void Exchange::on_shutdown() {
  if (auto s = session_.lock()) s->on_shutdown();
}

}  // namespace

void Gateway::Impl::accept() {
  acceptor->async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec != asio::error::operation_aborted) spdlog::warn("gateway: accept: {}", ec.message());
      if (stopping.load() || !acceptor->is_open()) return;
    } else {
      socket.set_option(tcp::no_delay(true), ec);
      std::make_shared<Session>(*this, std::move(socket))->start();
    }
    accept();
  });
}

}  // namespace cascade
