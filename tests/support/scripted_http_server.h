#pragma once
// A real HTTP/1.1 server on 127.0.0.1 for tests that must see exact wire bytes:
// it records every request and answers with scripted raw bytes, sent in
// scripted pieces with pauses, optionally closing or resetting the connection
// early. Each connection is served by its own thread; keep-alive is supported
// so connection reuse can be observed.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace cascade::testing {

struct RecordedRequest {
  std::string method;
  std::string target;  // "/v1/chat/completions"
  std::vector<std::pair<std::string, std::string>> headers;  // in order, as sent
  std::string body;
  std::uint64_t connection = 0;  // 1, 2, ... in accept order

  // First header with that name (case-insensitive).
  std::optional<std::string> header(std::string_view name) const;
};

struct ResponsePiece {
  ResponsePiece() = default;
  ResponsePiece(std::string bytes, std::chrono::milliseconds delay_before = {})
      : bytes(std::move(bytes)), delay_before(delay_before) {}

  std::string bytes;
  std::chrono::milliseconds delay_before{0};
  // Runs on the server's connection thread after the delay, before sending:
  // lets a test hold a response at an exact point (e.g. wait on a future).
  std::function<void()> before_send;
};

enum class ConnectionEnd {
  keep_alive,  // wait for the next request on this connection
  close,       // orderly close (FIN) after the last piece
  reset,       // abortive close (RST) after the last piece
};

struct ScriptedResponse {
  std::vector<ResponsePiece> pieces;
  ConnectionEnd end = ConnectionEnd::keep_alive;

  // The whole response as sent, all pieces joined.
  std::string bytes() const;

  // A complete response with Content-Length.
  static ScriptedResponse http(int status, std::string_view content_type, std::string_view body);
  // Status line and headers of a chunked text/event-stream response, then each
  // body piece as one HTTP chunk, then the terminating chunk (unless
  // `terminate` is false: a stream cut mid-body).
  static ScriptedResponse sse_chunked(const std::vector<std::string>& body_pieces,
                                      std::chrono::milliseconds delay_between = {},
                                      bool terminate = true);
  // Raw bytes re-split into pieces of at most `piece_size` bytes, each sent
  // after `delay_between` (so the client sees them in separate reads).
  static ScriptedResponse raw_in_pieces(std::string_view bytes, std::size_t piece_size,
                                        std::chrono::milliseconds delay_between,
                                        ConnectionEnd end = ConnectionEnd::keep_alive);
};

// "HTTP/1.1 <status> <reason>" for common statuses.
std::string status_line(int status);
// One HTTP/1.1 chunk: "<hex size>\r\n<bytes>\r\n".
std::string http_chunk(std::string_view bytes);

class ScriptedHttpServer {
 public:
  using Responder = std::function<ScriptedResponse(const RecordedRequest&)>;

  ScriptedHttpServer();
  ~ScriptedHttpServer();
  ScriptedHttpServer(const ScriptedHttpServer&) = delete;
  ScriptedHttpServer& operator=(const ScriptedHttpServer&) = delete;

  // Binds 127.0.0.1 on a free port and starts accepting. False (with errno
  // text in error()) if the socket cannot be set up.
  bool start();
  // Closes the listener and every connection (interrupting pauses), joins threads.
  void stop();

  std::uint16_t port() const { return port_; }
  std::string base_url() const;  // "http://127.0.0.1:<port>"
  const std::string& error() const { return error_; }

  // Scripted responses are used once each, in order; when none is queued the
  // responder answers; without a responder the answer is a 500.
  void enqueue(ScriptedResponse response);
  void set_responder(Responder responder);

  std::vector<RecordedRequest> requests() const;
  std::size_t connections_accepted() const;
  // Waits until at least `count` requests arrived; false on timeout.
  bool wait_for_requests(std::size_t count, std::chrono::milliseconds timeout) const;

 private:
  void accept_loop();
  void serve(int fd, std::uint64_t connection);
  std::optional<RecordedRequest> read_request(int fd, std::string& pending, std::uint64_t connection);
  ScriptedResponse next_response(const RecordedRequest& request);
  // Sleeps unless the server stops first; false if stopping.
  bool pause(std::chrono::milliseconds delay);

  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::string error_;
  std::thread acceptor_;

  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  bool stopping_ = false;
  std::vector<ScriptedResponse> queue_;
  std::size_t next_queued_ = 0;
  Responder responder_;
  std::vector<RecordedRequest> requests_;
  std::map<std::uint64_t, int> open_connections_;  // connection -> fd
  std::vector<std::thread> connection_threads_;
  std::uint64_t connections_ = 0;
};

}  // namespace cascade::testing
