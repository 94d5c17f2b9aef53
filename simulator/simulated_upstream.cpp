#include "simulator/simulated_upstream.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "simulator/chat_completion.h"
#include "simulator/upstream_faults.h"

namespace cascade {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using beast::error_code;

constexpr std::size_t kHeaderLimit = 64 * 1024;
constexpr std::uint64_t kBodyLimit = 16 * 1024 * 1024;
// Per-connection buffers grow to the largest request/response seen; beyond this
// they are released after the request so thousands of idle keep-alive
// connections stay small.
constexpr std::size_t kRetainedBufferBytes = 64 * 1024;
// How long a closing connection keeps reading so the client receives the
// response before the socket closes (closing with unread input sends a RST).
constexpr auto kLingerTimeout = std::chrono::seconds(2);

// Lives as long as the SimulatedUpstream; sessions only reference it.
struct ServerShared {
  SimulatedUpstreamOptions options;
  std::atomic<std::uint64_t> requests_served{0};
  std::atomic<std::uint64_t> responses_abandoned{0};
  std::atomic<std::uint64_t> next_completion_number{1};
  simulator::FaultPlanner fault_planner;
  simulator::FaultCounter fault_counter;
  mutable std::mutex fault_log_mutex;
  std::vector<FaultLogEntry> fault_log;
  mutable std::mutex answers_mutex;  // guards the five below
  std::vector<SimulatedAnswerRule> answers;
  std::map<std::string, std::uint64_t> requests_by_model;
  // The recorded answers, by model + '\0' + prompt, and the grade of each by
  // its first kGradeKeyBytes.
  std::vector<RecordedAnswer> recorded;
  std::unordered_map<std::string, const RecordedAnswer*> recorded_by_prompt;
  std::unordered_map<std::string, double> grade_by_answer;
  std::atomic<std::uint64_t> recorded_answers_served{0};
  std::atomic<std::uint64_t> recorded_grades_served{0};
};

// A judge sees at most the first 8,000 bytes of an answer; a recorded answer
// is recognised by fewer, so a cut one is still found.
constexpr std::size_t kGradeKeyBytes = 4000;

std::string recorded_key(std::string_view model, std::string_view prompt) {
  std::string key(model);
  key += '\0';
  key += prompt;
  return key;
}

// The answer a judge call asks to grade: after the marker's line, up to the
// judge's closing instruction (or the note that the answer was cut).
std::optional<std::string_view> judged_answer(std::string_view judge_text) {
  const auto marker = judge_text.find(kJudgeCallAnswerMarker);
  if (marker == std::string_view::npos) return std::nullopt;
  std::size_t begin = marker + kJudgeCallAnswerMarker.size();
  if (begin < judge_text.size() && judge_text[begin] == '\n') ++begin;
  std::string_view answer = judge_text.substr(begin);
  for (std::string_view end : {std::string_view("\n[... rest of the answer left out ...]"),
                               std::string_view("\n\nGrade the answer")}) {
    if (const auto at = answer.rfind(end); at != std::string_view::npos) answer = answer.substr(0, at);
  }
  return answer;
}

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

void append_decimal(std::string& out, std::uint64_t value) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, end);
}

// One client connection. Every asynchronous operation of a session runs on its
// strand, so its state needs no lock even with several I/O threads.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, ServerShared& shared)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), shared_(shared) {}

  void start() { read_request(); }

 private:
  enum class AfterWrite {
    read_body,
    stream_next_piece,
    read_next_request,
    close,
    hang,   // a hang_mid_stream fault: stall, then send the rest
    cut,    // a cut_mid_stream fault: orderly close in the middle of the body
    reset,  // a reset_mid_stream fault: abortive close in the middle of the body
  };
  enum class AfterHang { respond_with_answer, continue_stream, send_held_back };

  void read_request() {
    if (buffer_.size() == 0 && buffer_.capacity() > kRetainedBufferBytes) buffer_.shrink_to_fit();
    if (out_.capacity() > kRetainedBufferBytes) std::string().swap(out_);
    if (event_.capacity() > kRetainedBufferBytes) std::string().swap(event_);
    if (held_back_.capacity() > kRetainedBufferBytes) std::string().swap(held_back_);
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(kBodyLimit);
    http::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](error_code ec, std::size_t) { self->on_header(ec); });
  }

  void on_header(error_code ec) {
    if (ec) return on_read_error(ec);
    auto expect = parser_->get()[http::field::expect];
    if (beast::iequals(expect, "100-continue") && !parser_->is_done()) {
      out_.assign("HTTP/1.1 100 Continue\r\n\r\n");
      after_write_ = AfterWrite::read_body;
      return write_out();
    }
    read_body();
  }

  void read_body() {
    if (parser_->is_done()) return on_request();
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](error_code ec, std::size_t) {
                       if (ec) return self->on_read_error(ec);
                       self->on_request();
                     });
  }

  void on_read_error(error_code ec) {
    if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec.category() != http::make_error_code(http::error::bad_target).category()) {
      return;  // the client went away; nothing to answer
    }
    keep_alive_ = false;
    chunked_ = true;
    if (ec == http::error::body_limit || ec == http::error::header_limit) {
      return respond_error(simulator::invalid_request(413, "The request is too large."));
    }
    respond_error(simulator::invalid_request(400, "Malformed HTTP request: " + ec.message()));
  }

  void on_request() {
    const auto& request = parser_->get();
    keep_alive_ = request.keep_alive();
    chunked_ = request.version() >= 11;
    std::string_view target(request.target().data(), request.target().size());
    std::string_view path = target.substr(0, target.find('?'));
    const http::verb method = request.method();

    if (path == "/v1/chat/completions") {
      if (method != http::verb::post) return respond_method_not_allowed(request, "POST");
      return serve_chat_completion();
    }
    if (path == "/v1/models") {
      if (method != http::verb::get) return respond_method_not_allowed(request, "GET");
      parser_.reset();
      return respond(200, simulator::models_list_json(unix_now()));
    }
    std::string message = "Invalid URL (";
    message.append(request.method_string().data(), request.method_string().size());
    message.append(" ").append(path).append(")");
    parser_.reset();
    respond_error(simulator::invalid_request(404, message));
  }

  void respond_method_not_allowed(const http::request<http::string_body>& request,
                                  std::string_view allowed) {
    std::string message = "Method not allowed: ";
    message.append(request.method_string().data(), request.method_string().size());
    std::string allow_header = "Allow: ";
    allow_header.append(allowed).append("\r\n");
    parser_.reset();
    auto error = simulator::invalid_request(405, message);
    respond(error.status, error.body, allow_header);
  }

  // Request handling is split in a decision (parse, then what to send,
  // including which fault) and its execution (stream or respond).
  void serve_chat_completion() {
    shared_.requests_served.fetch_add(1, std::memory_order_relaxed);
    auto requested_fault = fault_from_header();
    auto parsed = simulator::parse_chat_completion_request(parser_->get().body());
    parser_.reset();
    if (!requested_fault) return respond_error(requested_fault.error());
    if (!parsed) return respond_error(parsed.error());
    request_ = std::move(*parsed);
    if (requested_fault->has_value()) {
      fault_ = **requested_fault;
    } else if (!shared_.fault_planner.empty()) {
      fault_ = shared_.fault_planner.next();
    } else {
      fault_ = UpstreamFault{};
    }
    shared_.fault_counter.count(fault_);
    if (shared_.options.faults.log_faults) {
      std::lock_guard lock(shared_.fault_log_mutex);
      shared_.fault_log.push_back({request_.last_user_text, fault_label(fault_)});
    }

    simulator::compose_answer(request_.model, request_.last_user_text, shared_.options.chunks,
                              answer_);
    answer_from_recording();
    tool_call_.name.clear();
    {
      std::lock_guard lock(shared_.answers_mutex);
      shared_.requests_by_model[request_.model]++;
      for (const SimulatedAnswerRule& rule : shared_.answers) {
        if (!rule.model.empty() && rule.model != request_.model) continue;
        if (!rule.prompt_contains.empty() &&
            request_.last_user_text.find(rule.prompt_contains) == std::string::npos)
          continue;
        if (rule.http_status > 0) {
          fault_ = UpstreamFault::http_status(rule.http_status);
        } else {
          simulator::compose_fixed_answer(rule.answer, shared_.options.chunks, answer_);
          tool_call_.name = rule.tool_name;
        }
        break;
      }
    }
    const std::size_t piece_count = answer_.piece_ends.size();
    pieces_to_send_ =
        request_.max_tokens > 0
            ? std::min<std::size_t>(piece_count, static_cast<std::size_t>(request_.max_tokens))
            : piece_count;
    finish_reason_ = pieces_to_send_ < piece_count ? "length" : is_tool_call() ? "tool_calls" : "stop";
    usage_ = {request_.prompt_tokens, static_cast<std::int64_t>(pieces_to_send_)};
    completion_number_ = shared_.next_completion_number.fetch_add(1, std::memory_order_relaxed);
    if (is_tool_call()) {
      tool_call_.id = "call_sim_";
      append_decimal(tool_call_.id, completion_number_);
    }
    created_ = unix_now();
    chunk_delay_ms_ = shared_.options.chunk_delay_ms;

    switch (fault_.kind) {
      case UpstreamFaultKind::http_status:
        return respond_with_status_fault();
      case UpstreamFaultKind::hang_before_headers:
        return hang(fault_.duration_ms, AfterHang::respond_with_answer);
      case UpstreamFaultKind::slow:
        chunk_delay_ms_ = fault_.duration_ms;
        // A whole response takes as long as its stream would have.
        if (!request_.stream) {
          return hang(fault_.duration_ms * static_cast<int>(std::max<std::size_t>(
                                               pieces_to_send_ - 1, 1)),
                      AfterHang::respond_with_answer);
        }
        break;
      default:
        break;
    }
    respond_with_answer();
  }

  // The fault named by the request's X-Cascade-Fault header, if any.
  std::expected<std::optional<UpstreamFault>, simulator::ApiError> fault_from_header() const {
    if (!shared_.options.faults.honor_fault_header) return std::nullopt;
    const auto& request = parser_->get();
    auto header = request.find(beast::string_view(simulator::kFaultHeader.data(),
                                                  simulator::kFaultHeader.size()));
    if (header == request.end()) return std::nullopt;
    auto fault = parse_upstream_fault(std::string_view(header->value().data(),
                                                       header->value().size()));
    if (!fault) {
      return std::unexpected(simulator::invalid_request(
          400, "Invalid X-Cascade-Fault header: " + fault.error().message));
    }
    return *fault;
  }

  void respond_with_status_fault() {
    simulator::ApiError error = simulator::fault_status_error(fault_.status);
    std::string retry_after;
    if (fault_.retry_after_seconds >= 0) {
      retry_after = "Retry-After: ";
      append_decimal(retry_after, static_cast<std::uint64_t>(fault_.retry_after_seconds));
      retry_after.append("\r\n");
    }
    respond(error.status, error.body, retry_after);
  }

  bool has_mid_stream_fault() const {
    switch (fault_.kind) {
      case UpstreamFaultKind::hang_mid_stream:
      case UpstreamFaultKind::cut_mid_stream:
      case UpstreamFaultKind::reset_mid_stream:
      case UpstreamFaultKind::malformed_sse:
      case UpstreamFaultKind::huge_chunk:
        return true;
      default:
        return false;
    }
  }

  void respond_with_answer() {
    if (request_.stream) return start_stream();
    event_.clear();
    std::string_view content =
        std::string_view(answer_.text).substr(0, answer_.piece_ends[pieces_to_send_ - 1]);
    switch (fault_.kind) {
      case UpstreamFaultKind::malformed_sse:
        return respond(200, SimulatedUpstream::kMalformedSseData);
      case UpstreamFaultKind::huge_chunk: {
        const std::size_t at = simulator::fault_piece_index(fault_, pieces_to_send_);
        const std::size_t huge_at = at == 0 ? 0 : answer_.piece_ends[at - 1];
        held_back_.assign(content.substr(0, huge_at));
        simulator::append_huge_chunk_text(held_back_, fault_.huge_chunk_bytes);
        held_back_.append(content.substr(huge_at));
        simulator::append_completion_json(event_, completion_number_, created_, request_.model,
                                          held_back_, finish_reason_, usage_, tool_call());
        held_back_.clear();
        return respond(200, event_);
      }
      default:
        break;
    }
    simulator::append_completion_json(event_, completion_number_, created_, request_.model,
                                      content, finish_reason_, usage_, tool_call());
    if (!has_mid_stream_fault()) return respond(200, event_);
    // Stalled or cut after the headers and half of the body.
    format_response(200, event_);
    const std::size_t split = out_.size() - event_.size() / 2;
    held_back_.assign(out_, split);
    out_.resize(split);
    after_write_ = fault_.kind == UpstreamFaultKind::hang_mid_stream ? AfterWrite::hang
                   : fault_.kind == UpstreamFaultKind::cut_mid_stream ? AfterWrite::cut
                                                                       : AfterWrite::reset;
    write_out();
  }

  void start_stream() {
    const simulator::ChatCompletionRequest& request = request_;
    // Without chunked encoding (HTTP/1.0) the end of the stream is the close.
    if (!chunked_) keep_alive_ = false;
    include_usage_ = request.include_usage;
    formatter_.begin(completion_number_, created_, request.model, request.include_usage);
    out_.assign(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n");
    if (chunked_) out_.append("Transfer-Encoding: chunked\r\n");
    out_.append(keep_alive_ ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
    out_.append("Server: cascade-simulator\r\n\r\n");

    event_.clear();
    if (is_tool_call()) formatter_.append_tool_call_role_event(event_, tool_call_);
    else formatter_.append_role_event(event_);
    append_event_to_out();
    next_piece_ = 0;
    mid_stream_fault_pending_ = has_mid_stream_fault();
    fault_piece_ = simulator::fault_piece_index(fault_, pieces_to_send_);
    append_pieces_to_out();
    write_out();
  }

  // Without a delay every remaining event goes out in one write (still one
  // HTTP chunk per event); with a delay, one content event per write.
  void append_pieces_to_out() {
    const bool send_all = chunk_delay_ms_ <= 0;
    bool appended_piece = false;
    for (;;) {
      if (mid_stream_fault_pending_ && next_piece_ == fault_piece_) {
        mid_stream_fault_pending_ = false;
        if (append_mid_stream_fault()) return;
      }
      if (next_piece_ >= pieces_to_send_) break;
      if (appended_piece && !send_all) {
        after_write_ = AfterWrite::stream_next_piece;
        return;
      }
      event_.clear();
      if (is_tool_call()) formatter_.append_tool_arguments_event(event_, answer_.piece(next_piece_));
      else formatter_.append_content_event(event_, answer_.piece(next_piece_));
      append_event_to_out();
      ++next_piece_;
      appended_piece = true;
    }
    event_.clear();
    formatter_.append_finish_event(event_, finish_reason_);
    append_event_to_out();
    if (include_usage_) {
      event_.clear();
      formatter_.append_usage_event(event_, usage_);
      append_event_to_out();
    }
    event_.clear();
    simulator::StreamEventFormatter::append_done_event(event_);
    append_event_to_out();
    if (chunked_) out_.append("0\r\n\r\n");
    after_write_ = keep_alive_ ? AfterWrite::read_next_request : AfterWrite::close;
  }

  // Adds the fault's event to out_, or ends this write at the fault point
  // (returns true, with after_write_ saying what the fault does next).
  bool append_mid_stream_fault() {
    switch (fault_.kind) {
      case UpstreamFaultKind::malformed_sse:
        event_.assign("data: ").append(SimulatedUpstream::kMalformedSseData).append("\n\n");
        append_event_to_out();
        return false;
      case UpstreamFaultKind::huge_chunk:
        held_back_.clear();
        simulator::append_huge_chunk_text(held_back_, fault_.huge_chunk_bytes);
        event_.clear();
        formatter_.append_content_event(event_, held_back_);
        append_event_to_out();
        held_back_.clear();
        return false;
      case UpstreamFaultKind::hang_mid_stream:
        after_write_ = AfterWrite::hang;
        return true;
      case UpstreamFaultKind::cut_mid_stream:
        after_write_ = AfterWrite::cut;
        return true;
      case UpstreamFaultKind::reset_mid_stream:
        after_write_ = AfterWrite::reset;
        return true;
      default:
        return false;
    }
  }

  void append_event_to_out() {
    if (chunked_) {
      char size_hex[16];
      auto [end, ec] = std::to_chars(size_hex, size_hex + sizeof size_hex, event_.size(), 16);
      out_.append(size_hex, end).append("\r\n").append(event_).append("\r\n");
    } else {
      out_.append(event_);
    }
  }

  void respond_error(const simulator::ApiError& error) { respond(error.status, error.body); }

  void respond(int status, std::string_view json_body, std::string_view extra_headers = {}) {
    format_response(status, json_body, extra_headers);
    write_out();
  }

  void format_response(int status, std::string_view json_body,
                       std::string_view extra_headers = {}) {
    out_.assign("HTTP/1.1 ");
    append_decimal(out_, static_cast<std::uint64_t>(status));
    auto reason = http::obsolete_reason(http::int_to_status(static_cast<unsigned>(status)));
    out_.append(" ").append(reason.data(), reason.size()).append("\r\n");
    out_.append("Content-Type: application/json\r\nContent-Length: ");
    append_decimal(out_, json_body.size());
    out_.append("\r\n").append(extra_headers);
    out_.append(keep_alive_ ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
    out_.append("Server: cascade-simulator\r\n\r\n").append(json_body);
    after_write_ = keep_alive_ ? AfterWrite::read_next_request : AfterWrite::close;
  }

  void write_out() {
    asio::async_write(socket_, asio::buffer(out_),
                      [self = shared_from_this()](error_code ec, std::size_t) {
                        if (ec) {  // the client went away
                          if (ec != asio::error::operation_aborted) self->client_left();
                          return;
                        }
                        self->on_written();
                      });
  }

  void on_written() {
    switch (after_write_) {
      case AfterWrite::read_body:
        return read_body();
      case AfterWrite::stream_next_piece:
        timer_.expires_after(std::chrono::milliseconds(chunk_delay_ms_));
        timer_.async_wait([self = shared_from_this()](error_code ec) {
          if (ec) return;
          self->out_.clear();
          self->append_pieces_to_out();
          self->write_out();
        });
        return;
      case AfterWrite::read_next_request:
        return read_request();
      case AfterWrite::close:
        return linger_and_close();
      case AfterWrite::hang:
        return hang(fault_.duration_ms,
                    request_.stream ? AfterHang::continue_stream : AfterHang::send_held_back);
      case AfterWrite::cut:
        return linger_and_close();
      case AfterWrite::reset: {
        error_code ignored;
        socket_.set_option(asio::socket_base::linger(true, 0), ignored);
        socket_.close(ignored);
        return;
      }
    }
  }

  // Sends nothing for duration_ms (0 = until the client leaves or the server
  // stops), then goes on with `after`. Meanwhile the socket is read so a
  // client that gives up is noticed and its connection closed.
  void hang(int duration_ms, AfterHang after) {
    hanging_ = true;
    after_hang_ = after;
    if (duration_ms > 0) {
      timer_.expires_after(std::chrono::milliseconds(duration_ms));
    } else {
      timer_.expires_at(asio::steady_timer::time_point::max());
    }
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || !self->hanging_) return;
      self->hanging_ = false;
      // Ends the pending read, whose handler resumes the response.
      error_code ignored;
      self->socket_.cancel(ignored);
    });
    watch_for_client_leaving();
  }

  void watch_for_client_leaving() {
    socket_.async_read_some(
        buffer_.prepare(sizeof drain_buffer_),
        [self = shared_from_this()](error_code ec, std::size_t bytes) {
          if (!ec) {
            self->buffer_.commit(bytes);  // an early next request: keep it for later
            if (self->hanging_) return self->watch_for_client_leaving();
            return self->resume_after_hang();
          }
          if (self->hanging_) {
            self->hanging_ = false;
            self->timer_.cancel();
            error_code ignored;
            self->socket_.close(ignored);
            if (ec != asio::error::operation_aborted) self->client_left();
            return;
          }
          self->resume_after_hang();
        });
  }

  void resume_after_hang() {
    switch (after_hang_) {
      case AfterHang::respond_with_answer:
        return respond_with_answer();
      case AfterHang::continue_stream:
        out_.clear();
        append_pieces_to_out();
        return write_out();
      case AfterHang::send_held_back:
        out_.swap(held_back_);
        held_back_.clear();
        after_write_ = keep_alive_ ? AfterWrite::read_next_request : AfterWrite::close;
        return write_out();
    }
  }

  // The client closed its connection before the response was complete.
  void client_left() { shared_.responses_abandoned.fetch_add(1, std::memory_order_relaxed); }

  void linger_and_close() {
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    timer_.expires_after(kLingerTimeout);
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      error_code ignored_close;
      if (!ec) self->socket_.close(ignored_close);
    });
    drain_until_closed();
  }

  void drain_until_closed() {
    socket_.async_read_some(asio::buffer(drain_buffer_),
                            [self = shared_from_this()](error_code ec, std::size_t) {
                              if (ec) return void(self->timer_.cancel());
                              self->drain_until_closed();
                            });
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  ServerShared& shared_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool keep_alive_ = true;
  bool chunked_ = true;
  AfterWrite after_write_ = AfterWrite::close;

  std::string out_;    // bytes of the current write; untouched while it is in flight
  std::string event_;  // one SSE event or JSON body being formatted
  // Fault scratch: a huge delta's text, or the rest of a stalled response.
  std::string held_back_;
  simulator::ChatCompletionRequest request_;
  std::uint64_t completion_number_ = 0;
  std::int64_t created_ = 0;
  simulator::ComposedAnswer answer_;
  simulator::StreamEventFormatter formatter_;
  std::size_t next_piece_ = 0;
  std::size_t pieces_to_send_ = 0;
  int chunk_delay_ms_ = 0;
  UpstreamFault fault_;
  bool mid_stream_fault_pending_ = false;
  std::size_t fault_piece_ = 0;  // content deltas sent before a mid-stream fault
  bool hanging_ = false;
  AfterHang after_hang_ = AfterHang::respond_with_answer;
  std::string_view finish_reason_ = "stop";
  simulator::SimulatedToolCall tool_call_;  // name empty: a text answer
  bool is_tool_call() const { return !tool_call_.name.empty(); }
  // Replaces the composed answer with a recorded one, or with the grade of a
  // recorded answer when this is a judge call.
  void answer_from_recording() {
    std::lock_guard lock(shared_.answers_mutex);
    if (shared_.recorded.empty()) return;
    if (const auto judged = judged_answer(request_.last_user_text)) {
      const auto grade = shared_.grade_by_answer.find(std::string(judged->substr(0, kGradeKeyBytes)));
      if (grade == shared_.grade_by_answer.end()) return;
      char text[32];
      std::snprintf(text, sizeof text, "Score: %.1f", grade->second);
      simulator::compose_fixed_answer(text, shared_.options.chunks, answer_);
      shared_.recorded_grades_served.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    const auto recorded = shared_.recorded_by_prompt.find(recorded_key(request_.model, request_.last_user_text));
    if (recorded == shared_.recorded_by_prompt.end()) return;
    simulator::compose_fixed_answer(recorded->second->response, shared_.options.chunks, answer_);
    shared_.recorded_answers_served.fetch_add(1, std::memory_order_relaxed);
  }
  const simulator::SimulatedToolCall* tool_call() const { return is_tool_call() ? &tool_call_ : nullptr; }
  simulator::TokenUsage usage_;
  bool include_usage_ = false;
  char drain_buffer_[512];
};

// Replaces the recorded answers; the caller holds answers_mutex or owns `shared`.
void index_recorded(ServerShared& shared, std::vector<RecordedAnswer> recorded) {
  shared.recorded = std::move(recorded);
  shared.recorded_by_prompt.clear();
  shared.grade_by_answer.clear();
  for (const RecordedAnswer& answer : shared.recorded) {
    shared.recorded_by_prompt[recorded_key(answer.model, answer.prompt)] = &answer;
    // An empty answer is never recognised in a judge call: it would match every empty one.
    if (!answer.response.empty()) {
      shared.grade_by_answer[answer.response.substr(0, kGradeKeyBytes)] = recorded_grade(answer.quality);
    }
  }
}

// Thousands of concurrent streams need thousands of descriptors on both ends
// of loopback; the soft limit is often 1024 while the hard limit allows more.
void raise_open_file_limit() {
  constexpr rlim_t kWanted = 65536;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= kWanted) return;
  rlim_t raised = std::min(kWanted, limit.rlim_max);
  if (raised <= limit.rlim_cur) return;
  limit.rlim_cur = raised;
  setrlimit(RLIMIT_NOFILE, &limit);
}

}  // namespace

struct SimulatedUpstream::Impl {
  explicit Impl(SimulatedUpstreamOptions options) {
    shared.options = std::move(options);
    fault_plan_status = shared.fault_planner.configure(shared.options.faults);
    shared.answers = shared.options.answers;
    // Kept once, in `shared.recorded` (options.recorded is not read again).
    index_recorded(shared, std::move(shared.options.recorded));
  }

  void accept_next() {
    acceptor->async_accept(asio::make_strand(*io), [this](error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (ec) {
        // Typically out of descriptors: pause instead of spinning on accept.
        spdlog::warn("simulated upstream: accept failed: {}", ec.message());
        accept_retry_timer->expires_after(std::chrono::milliseconds(50));
        accept_retry_timer->async_wait([this](error_code wait_ec) {
          if (!wait_ec) accept_next();
        });
        return;
      }
      error_code ignored;
      // SSE events are small writes that must leave immediately.
      socket.set_option(tcp::no_delay(true), ignored);
      std::make_shared<Session>(std::move(socket), shared)->start();
      accept_next();
    });
  }

  ServerShared shared;
  Result<void> fault_plan_status;  // reported by start()
  std::mutex lifecycle_mutex;
  // Destroyed in stop() in this order: acceptor and timer before the
  // io_context, whose destruction then frees every session still pending.
  std::unique_ptr<asio::io_context> io;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<asio::steady_timer> accept_retry_timer;
  std::vector<std::thread> threads;
  std::atomic<std::uint16_t> bound_port{0};
};

SimulatedUpstream::SimulatedUpstream(SimulatedUpstreamOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

SimulatedUpstream::~SimulatedUpstream() { stop(); }

Result<void> SimulatedUpstream::start() {
  std::lock_guard lock(impl_->lifecycle_mutex);
  if (impl_->io) return fail(ErrorCode::internal, "simulated upstream already started");
  if (!impl_->fault_plan_status) return std::unexpected(impl_->fault_plan_status.error());
  const SimulatedUpstreamOptions& options = impl_->shared.options;
  const int thread_count = std::max(1, options.threads);
  auto io = std::make_unique<asio::io_context>(thread_count);

  error_code ec;
  tcp::resolver resolver(*io);
  auto endpoints = resolver.resolve(options.host, std::to_string(options.port),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || endpoints.empty()) {
    return fail(ErrorCode::invalid_request,
                "simulated upstream cannot resolve host '" + options.host + "': " + ec.message());
  }
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  auto acceptor = std::make_unique<tcp::acceptor>(*io);
  if (!acceptor->open(endpoint.protocol(), ec) &&
      !acceptor->set_option(asio::socket_base::reuse_address(true), ec) &&
      !acceptor->bind(endpoint, ec)) {
    acceptor->listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    return fail(ErrorCode::unavailable, "simulated upstream cannot listen on " + options.host +
                                            ":" + std::to_string(options.port) + ": " +
                                            ec.message());
  }
  impl_->bound_port = acceptor->local_endpoint().port();
  raise_open_file_limit();

  impl_->accept_retry_timer = std::make_unique<asio::steady_timer>(*io);
  impl_->acceptor = std::move(acceptor);
  impl_->io = std::move(io);
  impl_->accept_next();
  for (int i = 0; i < thread_count; ++i) {
    impl_->threads.emplace_back([io = impl_->io.get()] {
      auto keep_running = asio::make_work_guard(*io);
      for (;;) {
        try {
          io->run();
          return;
        } catch (const std::exception& e) {
          // One broken connection must not take the server down.
          spdlog::error("simulated upstream: handler failed: {}", e.what());
        }
      }
    });
  }
  return {};
}

void SimulatedUpstream::stop() {
  std::lock_guard lock(impl_->lifecycle_mutex);
  if (!impl_->io) return;
  impl_->io->stop();
  for (std::thread& thread : impl_->threads) thread.join();
  impl_->threads.clear();
  impl_->accept_retry_timer.reset();
  impl_->acceptor.reset();
  impl_->io.reset();
}

std::uint16_t SimulatedUpstream::port() const { return impl_->bound_port; }

std::string SimulatedUpstream::base_url() const {
  const std::string& host = impl_->shared.options.host;
  std::string url = "http://";
  if (host.find(':') != std::string::npos) {
    url.append("[").append(host).append("]");
  } else {
    url.append(host);
  }
  url.append(":").append(std::to_string(port())).append("/v1");
  return url;
}

std::uint64_t SimulatedUpstream::requests_served() const {
  return impl_->shared.requests_served.load(std::memory_order_relaxed);
}

std::uint64_t SimulatedUpstream::responses_abandoned() const {
  return impl_->shared.responses_abandoned.load(std::memory_order_relaxed);
}

std::map<std::string, std::uint64_t> SimulatedUpstream::fault_counts() const {
  return impl_->shared.fault_counter.snapshot();
}

std::vector<FaultLogEntry> SimulatedUpstream::fault_log() const {
  std::lock_guard lock(impl_->shared.fault_log_mutex);
  return impl_->shared.fault_log;
}

void SimulatedUpstream::set_answer_rules(std::vector<SimulatedAnswerRule> rules) {
  std::lock_guard lock(impl_->shared.answers_mutex);
  impl_->shared.answers = std::move(rules);
}

void SimulatedUpstream::set_recorded_answers(std::vector<RecordedAnswer> recorded) {
  std::lock_guard lock(impl_->shared.answers_mutex);
  index_recorded(impl_->shared, std::move(recorded));
}

std::uint64_t SimulatedUpstream::recorded_answers_served() const {
  return impl_->shared.recorded_answers_served.load(std::memory_order_relaxed);
}

std::uint64_t SimulatedUpstream::recorded_grades_served() const {
  return impl_->shared.recorded_grades_served.load(std::memory_order_relaxed);
}

double recorded_grade(double quality) { return 1.0 + 4.0 * std::clamp(quality, 0.0, 1.0); }

std::map<std::string, std::uint64_t> SimulatedUpstream::requests_by_model() const {
  std::lock_guard lock(impl_->shared.answers_mutex);
  return impl_->shared.requests_by_model;
}

UpstreamFault SimulatedUpstream::planned_fault(std::uint64_t ordinal) const {
  return impl_->shared.fault_planner.at(ordinal);
}

std::string SimulatedUpstream::answer_for(const std::string& model,
                                          const std::string& last_user_text, int chunks) {
  simulator::ComposedAnswer answer;
  simulator::compose_answer(model, last_user_text, chunks, answer);
  return std::move(answer.text);
}

std::vector<std::string> SimulatedUpstream::answer_pieces(const std::string& model,
                                                          const std::string& last_user_text,
                                                          int chunks) {
  simulator::ComposedAnswer answer;
  simulator::compose_answer(model, last_user_text, chunks, answer);
  std::vector<std::string> pieces;
  pieces.reserve(answer.piece_ends.size());
  for (std::size_t i = 0; i < answer.piece_ends.size(); ++i) pieces.emplace_back(answer.piece(i));
  return pieces;
}

}  // namespace cascade
