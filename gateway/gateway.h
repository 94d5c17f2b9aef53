#pragma once
// `cascade gateway`: the HTTP front door (docs/gateway.md). OpenAI's chat
// completions and Anthropic's Messages API, served by turning each request
// into a prompt event on kafka.topics.requests and streaming its reply events
// back from this instance's own reply topic, so unchanged SDKs work with
// Cascade and Kafka stays the engine behind them.
//
// Threading: one I/O thread runs every connection (Boost.Asio, no thread per
// request); one Kafka thread reads the reply topic and serves the producer's
// delivery reports, handing both to the I/O thread. start() and stop() are
// called from one controlling thread.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "auth/api_keys.h"
#include "catalog/catalog.h"
#include "config/config.h"
#include "core/result.h"
#include "kafka/kafka.h"
#include "mcp/mcp.h"

namespace cascade {

// Serves extra paths on the gateway's listener (the MCP endpoint /mcp):
// given the method, target, headers and body of a request and the caller's
// tenant, answers through `respond` (status, content type, body), on the
// gateway's I/O thread, once.
struct GatewayHttpRequest {
  std::string method;
  std::string target;
  std::function<std::string_view(std::string_view lower_case_name)> header;
  std::string body;
  std::string tenant;  // from the API key ("" for an admin key)
};
struct GatewayHttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers = {};
};
using GatewayRoute = std::function<void(GatewayHttpRequest request, std::function<void(GatewayHttpResponse)> respond)>;

struct GatewayOptions {
  const Config* config = nullptr;  // not owned; outlives the gateway
  std::string bootstrap;
  EmbeddedBroker* broker = nullptr;  // the embedded broker, to create the reply topic on; null on a real cluster
  const ModelCatalog* catalog = nullptr;  // not owned
  // The keys in force (followed from kafka.topics.api_keys); null when
  // gateway.auth is none.
  std::shared_ptr<const ApiKeyTable> keys;
  // Extra routes by path prefix, checked before the built-in ones.
  std::vector<std::pair<std::string, GatewayRoute>> routes = {};
  // Serves MCP over Streamable HTTP at /mcp (docs/mcp.md) when given.
  std::shared_ptr<McpBackend> mcp = nullptr;
};

struct GatewayStats {
  std::uint64_t requests = 0;   // HTTP requests answered
  std::uint64_t prompts = 0;    // prompt events produced
  std::uint64_t cancels = 0;    // cancel events produced
  std::uint64_t rejected_busy = 0;  // 429 at max_in_flight
  std::size_t in_flight = 0;
};

class Gateway {
 public:
  // Creates the reply topic if needed, opens the Kafka clients, binds and
  // starts serving. Errors: invalid_request (configuration), unavailable
  // (cannot bind, no cluster).
  [[nodiscard]] static Result<std::unique_ptr<Gateway>> start(GatewayOptions options);
  ~Gateway();  // stop()
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  std::uint16_t port() const;
  const std::string& reply_topic() const;
  GatewayStats stats() const;
  // Sends a prompt event through this gateway (its reply topic, its
  // max_in_flight, its request timeout with a cancel) and calls `done` once
  // with the final event or the error: for front doors hosted by the
  // gateway (MCP's complete_prompt). Thread-safe; `done` runs on the
  // gateway's I/O thread. The event should not stream (chunks are dropped).
  void submit(PromptEvent event, std::function<void(Result<FinalReply>)> done);
  // Cancels every request in flight (reason "shutdown": their clients get a
  // 503 or a stream error), closes every connection, flushes the producer.
  void stop();

  struct Impl;

 private:
  Gateway() = default;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cascade
