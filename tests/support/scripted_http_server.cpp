#include "support/scripted_http_server.h"
#include "core/text.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <charconv>

namespace cascade::testing {

namespace {

bool equals_ignore_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t sent = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(sent));
  }
  return true;
}

}  // namespace

std::optional<std::string> RecordedRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (equals_ignore_case(key, name)) return value;
  }
  return std::nullopt;
}

std::string ScriptedResponse::bytes() const {
  std::string out;
  for (const auto& piece : pieces) out += piece.bytes;
  return out;
}

std::string status_line(int status) {
  std::string_view reason = "Status";
  switch (status) {
    case 200: reason = "OK"; break;
    case 400: reason = "Bad Request"; break;
    case 401: reason = "Unauthorized"; break;
    case 404: reason = "Not Found"; break;
    case 408: reason = "Request Timeout"; break;
    case 429: reason = "Too Many Requests"; break;
    case 500: reason = "Internal Server Error"; break;
    case 502: reason = "Bad Gateway"; break;
    case 503: reason = "Service Unavailable"; break;
    case 504: reason = "Gateway Timeout"; break;
    default: break;
  }
  return "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason);
}

std::string http_chunk(std::string_view bytes) {
  char size[32];
  const auto written = std::to_chars(size, size + sizeof size, bytes.size(), 16);
  std::string chunk(size, written.ptr);
  chunk += "\r\n";
  chunk += bytes;
  chunk += "\r\n";
  return chunk;
}

ScriptedResponse ScriptedResponse::http(int status, std::string_view content_type,
                                        std::string_view body) {
  ScriptedResponse response;
  response.pieces.push_back({status_line(status) + "\r\nContent-Type: " + std::string(content_type) +
                             "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                             std::string(body)});
  return response;
}

ScriptedResponse ScriptedResponse::sse_chunked(const std::vector<std::string>& body_pieces,
                                               std::chrono::milliseconds delay_between,
                                               bool terminate) {
  ScriptedResponse response;
  response.pieces.push_back({status_line(200) +
                             "\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                             "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"});
  for (const auto& piece : body_pieces) {
    response.pieces.push_back({http_chunk(piece), delay_between});
  }
  if (terminate) {
    response.pieces.push_back({"0\r\n\r\n", delay_between});
  } else {
    response.end = ConnectionEnd::close;
  }
  return response;
}

ScriptedResponse ScriptedResponse::raw_in_pieces(std::string_view bytes, std::size_t piece_size,
                                                 std::chrono::milliseconds delay_between,
                                                 ConnectionEnd end) {
  ScriptedResponse response;
  response.end = end;
  for (std::size_t pos = 0; pos < bytes.size(); pos += piece_size) {
    response.pieces.push_back(
        {std::string(bytes.substr(pos, piece_size)), pos == 0 ? std::chrono::milliseconds{0} : delay_between});
  }
  return response;
}

ScriptedHttpServer::ScriptedHttpServer() = default;

ScriptedHttpServer::~ScriptedHttpServer() { stop(); }

bool ScriptedHttpServer::start() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) {
    error_ = std::strerror(errno);
    return false;
  }
  const int on = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listen_fd_, SOMAXCONN) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    error_ = std::strerror(errno);
    ::close(listen_fd_);
    listen_fd_ = -1;
    return false;
  }
  port_ = ntohs(address.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
  return true;
}

void ScriptedHttpServer::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    // Unblocks accept() and every recv() so the threads can finish.
    if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
    for (const auto& [connection, fd] : open_connections_) ::shutdown(fd, SHUT_RDWR);
  }
  changed_.notify_all();
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    threads.swap(connection_threads_);
  }
  for (auto& thread : threads) thread.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

std::string ScriptedHttpServer::base_url() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

void ScriptedHttpServer::enqueue(ScriptedResponse response) {
  std::lock_guard lock(mutex_);
  queue_.push_back(std::move(response));
}

void ScriptedHttpServer::set_responder(Responder responder) {
  std::lock_guard lock(mutex_);
  responder_ = std::move(responder);
}

std::vector<RecordedRequest> ScriptedHttpServer::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

std::size_t ScriptedHttpServer::connections_accepted() const {
  std::lock_guard lock(mutex_);
  return connections_;
}

bool ScriptedHttpServer::wait_for_requests(std::size_t count,
                                           std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return requests_.size() >= count; });
}

void ScriptedHttpServer::accept_loop() {
  for (;;) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // shut down (or broken): stop accepting
    }
    const int on = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    std::lock_guard lock(mutex_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    const std::uint64_t connection = ++connections_;
    open_connections_.emplace(connection, fd);
    connection_threads_.emplace_back([this, fd, connection] { serve(fd, connection); });
  }
}

void ScriptedHttpServer::serve(int fd, std::uint64_t connection) {
  std::string pending;
  ConnectionEnd end = ConnectionEnd::close;
  for (;;) {
    std::optional<RecordedRequest> request = read_request(fd, pending, connection);
    if (!request) break;
    const bool client_closes =
        equals_ignore_case(request->header("Connection").value_or(""), "close");
    ScriptedResponse response = next_response(*request);
    bool sent = true;
    for (const auto& piece : response.pieces) {
      if (!pause(piece.delay_before)) {
        sent = false;
        break;
      }
      if (piece.before_send) piece.before_send();
      if (!send_all(fd, piece.bytes)) {
        sent = false;
        break;
      }
    }
    end = response.end;
    if (!sent || client_closes || end != ConnectionEnd::keep_alive) break;
  }
  {
    std::lock_guard lock(mutex_);
    open_connections_.erase(connection);
  }
  if (end == ConnectionEnd::reset) {
    const linger abortive{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive);
  }
  ::close(fd);
}

std::optional<RecordedRequest> ScriptedHttpServer::read_request(int fd, std::string& pending,
                                                                std::uint64_t connection) {
  const auto receive_more = [&]() {
    char buffer[16384];
    for (;;) {
      const ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return false;
      pending.append(buffer, static_cast<std::size_t>(got));
      return true;
    }
  };
  std::size_t header_end;
  while ((header_end = pending.find("\r\n\r\n")) == std::string::npos) {
    if (!receive_more()) return std::nullopt;
  }
  RecordedRequest request;
  request.connection = connection;
  std::string_view head(pending.data(), header_end);
  const auto first_line_end = head.find("\r\n");
  const std::string_view request_line = head.substr(0, first_line_end);
  const auto method_end = request_line.find(' ');
  const auto target_end = request_line.find(' ', method_end + 1);
  if (method_end == std::string_view::npos || target_end == std::string_view::npos) {
    return std::nullopt;
  }
  request.method = std::string(request_line.substr(0, method_end));
  request.target = std::string(request_line.substr(method_end + 1, target_end - method_end - 1));
  std::size_t content_length = 0;
  if (first_line_end != std::string_view::npos) {
    std::string_view rest = head.substr(first_line_end + 2);
    while (!rest.empty()) {
      const auto line_end = rest.find("\r\n");
      const std::string_view line = rest.substr(0, line_end);
      rest = line_end == std::string_view::npos ? std::string_view{} : rest.substr(line_end + 2);
      const auto colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      request.headers.emplace_back(std::string(trim_space(line.substr(0, colon))),
                                   std::string(trim_space(line.substr(colon + 1))));
      if (equals_ignore_case(request.headers.back().first, "Content-Length")) {
        const std::string& value = request.headers.back().second;
        std::from_chars(value.data(), value.data() + value.size(), content_length);
      }
    }
  }
  const std::size_t body_start = header_end + 4;
  while (pending.size() < body_start + content_length) {
    if (!receive_more()) return std::nullopt;
  }
  request.body = pending.substr(body_start, content_length);
  pending.erase(0, body_start + content_length);
  {
    std::lock_guard lock(mutex_);
    requests_.push_back(request);
  }
  changed_.notify_all();
  return request;
}

ScriptedResponse ScriptedHttpServer::next_response(const RecordedRequest& request) {
  Responder responder;
  {
    std::lock_guard lock(mutex_);
    if (next_queued_ < queue_.size()) return queue_[next_queued_++];
    responder = responder_;
  }
  if (responder) return responder(request);
  return ScriptedResponse::http(500, "text/plain", "no scripted response");
}

bool ScriptedHttpServer::pause(std::chrono::milliseconds delay) {
  std::unique_lock lock(mutex_);
  if (delay.count() > 0) changed_.wait_for(lock, delay, [this] { return stopping_; });
  return !stopping_;
}

}  // namespace cascade::testing
