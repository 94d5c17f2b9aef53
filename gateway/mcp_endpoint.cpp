#include "gateway/mcp_endpoint.h"

#include <chrono>
#include <mutex>
#include <random>
#include <unordered_map>

namespace cascade::gateway {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxSessions = 10000;
constexpr auto kIdleSession = std::chrono::hours(1);

std::string new_session_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[40];
  std::snprintf(buf, sizeof buf, "mcp-%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

GatewayHttpResponse rpc_error(int status, int code, const std::string& message) {
  return {status, "application/json",
          json({{"jsonrpc", "2.0"}, {"id", nullptr}, {"error", {{"code", code}, {"message", message}}}}).dump()};
}

struct Session {
  std::shared_ptr<McpServer> server;
  std::string tenant;
  Clock::time_point last_used;
};

// Every session of one gateway. Used on the gateway's I/O thread only.
class Sessions {
 public:
  explicit Sessions(std::shared_ptr<McpBackend> backend) : backend_(std::move(backend)) {}

  void serve(GatewayHttpRequest request, std::function<void(GatewayHttpResponse)> respond) {
    expire();
    const std::string id(request.header("mcp-session-id"));
    if (request.method == "GET")
      return respond({405, "application/json", R"({"error":"no server-to-client stream: POST messages"})",
                      {{"allow", "POST, DELETE"}}});
    if (request.method == "DELETE") {
      const auto it = sessions_.find(id);
      if (it == sessions_.end() || it->second.tenant != request.tenant) return respond(rpc_error(404, -32001, "no such session"));
      sessions_.erase(it);
      return respond({200, "application/json", "{}"});
    }
    if (request.method != "POST") return respond({405, "application/json", "{}", {{"allow", "POST, DELETE"}}});
    if (request.tenant.empty()) return respond(rpc_error(403, -32600, "an admin key cannot open MCP sessions: use a tenant's key"));

    const json message = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    const bool initialize = message.is_object() && message.value("method", "") == "initialize";
    std::shared_ptr<McpServer> server;
    std::string session_id = id;
    if (initialize && id.empty()) {
      if (sessions_.size() >= kMaxSessions) return respond(rpc_error(503, -32603, "too many MCP sessions; retry later"));
      session_id = new_session_id();
      McpServerOptions options;
      options.tenant = request.tenant;
      server = std::make_shared<McpServer>(std::move(options), backend_);
      sessions_[session_id] = Session{server, request.tenant, Clock::now()};
    } else {
      if (id.empty()) return respond(rpc_error(400, -32600, "missing Mcp-Session-Id: send initialize first"));
      const auto it = sessions_.find(id);
      // Another tenant's session is as unknown as an expired one.
      if (it == sessions_.end() || it->second.tenant != request.tenant)
        return respond(rpc_error(404, -32001, "unknown or expired MCP session: initialize again"));
      it->second.last_used = Clock::now();
      server = it->second.server;
    }
    server->handle(request.body, [respond, session_id, initialize](std::optional<std::string> response) {
      GatewayHttpResponse out;
      if (response) {
        out.body = std::move(*response);
      } else {
        out.status = 202;
      }
      if (initialize) out.headers.emplace_back("mcp-session-id", session_id);
      respond(std::move(out));
    });
  }

 private:
  void expire() {
    const auto now = Clock::now();
    std::erase_if(sessions_, [&](const auto& entry) { return now - entry.second.last_used > kIdleSession; });
  }

  std::shared_ptr<McpBackend> backend_;
  std::unordered_map<std::string, Session> sessions_;
};

}  // namespace

GatewayRoute mcp_route(std::shared_ptr<McpBackend> backend) {
  auto sessions = std::make_shared<Sessions>(std::move(backend));
  return [sessions](GatewayHttpRequest request, std::function<void(GatewayHttpResponse)> respond) {
    sessions->serve(std::move(request), std::move(respond));
  };
}

}  // namespace cascade::gateway
