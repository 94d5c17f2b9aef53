// `cascade mcp`: the Model Context Protocol over stdio (docs/mcp.md). One
// JSON-RPC message per line on stdin, one per line on stdout, and nothing
// else on stdout: logs go to stderr.
#include "apps/cascade/mcp_command.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>

#include "apps/cascade/mcp_stdio_backend.h"
#include "mcp/mcp.h"

namespace cascade::cli {
namespace {

// Writes whole lines to the protocol's stdout; several threads answer.
class ProtocolWriter {
 public:
  explicit ProtocolWriter(int fd) : fd_(fd) {}

  void write_line(const std::string& message) {
    std::lock_guard lock(mu_);
    if (broken_) return;
    std::string line = message;
    line.push_back('\n');
    std::size_t written = 0;
    while (written < line.size()) {
      const ssize_t n = ::write(fd_, line.data() + written, line.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // The client is gone; reading stdin will end too.
        spdlog::warn("mcp: stdout closed ({}): no more responses", std::strerror(errno));
        broken_ = true;
        return;
      }
      written += static_cast<std::size_t>(n);
    }
  }

 private:
  int fd_;
  std::mutex mu_;
  bool broken_ = false;
};

// Splits stdin into lines. A line longer than `max_bytes` is kept only up to
// max_bytes + 1 bytes: enough for the server to refuse it, without holding it.
class LineReader {
 public:
  explicit LineReader(std::size_t max_bytes) : max_bytes_(max_bytes) {}

  // The next line without its "\n" (and "\r"), or nullopt at end of input.
  std::optional<std::string> next() {
    while (true) {
      if (const auto newline = buffer_.find('\n', scanned_); newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        scanned_ = 0;
        if (overflow_) {
          overflow_ = false;
          line.resize(max_bytes_ + 1);  // only its size matters now
        }
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return line;
      }
      scanned_ = buffer_.size();
      if (buffer_.size() > max_bytes_) {
        overflow_ = true;  // drop what follows up to the newline
        buffer_.resize(max_bytes_ + 1);
        scanned_ = buffer_.size();
      }
      char chunk[65536];
      const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (buffer_.empty() || overflow_) return std::nullopt;
        std::string last;
        last.swap(buffer_);
        return last;  // a last message without its newline
      }
      if (overflow_) {
        const char* newline = static_cast<const char*>(std::memchr(chunk, '\n', static_cast<std::size_t>(n)));
        if (!newline) continue;
        buffer_.append(newline, static_cast<std::size_t>(chunk + n - newline));
        continue;
      }
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  std::size_t max_bytes_;
  std::string buffer_;
  std::size_t scanned_ = 0;
  bool overflow_ = false;
};

}  // namespace

int mcp_stdio_service(const Config& config, const std::string& tenant, int protocol_fd) {
  std::signal(SIGPIPE, SIG_IGN);  // a closed stdout is an error to handle, not a signal
  auto backend = StdioMcpBackend::open(config);
  if (!backend) {
    std::fprintf(stderr, "cascade mcp: %s: %s\n", std::string(to_string(backend.error().code)).c_str(),
                 backend.error().message.c_str());
    return 1;
  }
  McpServerOptions options;
  options.tenant = tenant;
  McpServer server(options, *backend);
  ProtocolWriter out(protocol_fd);
  spdlog::info("mcp: serving tenant {} over stdio (Kafka {}, ledger {}); stdout carries MCP messages only", tenant,
               config.kafka.bootstrap, mcp_ledger_url(config));
  LineReader in(options.max_message_bytes);
  while (auto line = in.next()) {
    if (line->find_first_not_of(" \t") == std::string::npos) continue;  // blank lines are no messages
    server.handle(*line, [&out](std::optional<std::string> response) {
      if (response) out.write_line(*response);
    });
  }
  // The client closed stdin: it is shutting down and reads nothing more.
  spdlog::info("mcp: stdin closed; stopping");
  (*backend)->stop();
  return 0;
}

}  // namespace cascade::cli
