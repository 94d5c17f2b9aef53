#include "bench/pipeline/raw_streams.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace cascade::bench {
namespace {

// Connections opened before waiting for the upstream to take them: the
// kernel's accept queue (somaxconn, 4096 by default) must not overflow, or
// the dropped handshakes are only retried after a second.
constexpr std::size_t kConnectBatch = 256;

using Clock = std::chrono::steady_clock;

bool send_all(int fd, const std::string& bytes) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const auto n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

bool wait_for(const std::function<bool()>& done, Clock::time_point deadline) {
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace

RawUpstreamStreams::~RawUpstreamStreams() { close_all(); }

Result<void> RawUpstreamStreams::open(std::uint16_t port, const std::vector<std::string>& bodies,
                                      const std::function<std::uint64_t()>& received,
                                      std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::uint64_t received_before = received();
  auto received_so_far = [&] { return received() - received_before; };
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const std::string head = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                           "\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: ";
  fds_.reserve(fds_.size() + bodies.size());
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    if (i > 0 && i % kConnectBatch == 0 &&
        !wait_for([&] { return received_so_far() + kConnectBatch >= i; }, deadline)) {
      return fail(ErrorCode::timeout, "upstream did not take the raw streams in time");
    }
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail(ErrorCode::internal, std::string("socket: ") + std::strerror(errno));
    fds_.push_back(fd);
    const linger reset_on_close{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset_on_close, sizeof reset_on_close);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      return fail(ErrorCode::unavailable, std::string("connect to the upstream: ") + std::strerror(errno));
    }
    if (!send_all(fd, head + std::to_string(bodies[i].size()) + "\r\n\r\n" + bodies[i])) {
      return fail(ErrorCode::unavailable, std::string("send to the upstream: ") + std::strerror(errno));
    }
  }
  if (!wait_for([&] { return received_so_far() >= bodies.size(); }, deadline)) {
    return fail(ErrorCode::timeout, "upstream did not take the raw streams in time");
  }
  return {};
}

void RawUpstreamStreams::close_all() {
  for (int fd : fds_) ::close(fd);
  fds_.clear();
}

}  // namespace cascade::bench
