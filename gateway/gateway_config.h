#pragma once
// The gateway's section of cascade.yaml, gateway.*, owned and checked here
// (docs/gateway.md).
#include <cstdint>
#include <string>

#include "core/config_reader.h"
#include "core/listen_address.h"
#include "core/result.h"

namespace cascade {

struct GatewayConfig {
  // host:port of `cascade gateway` (OpenAI and Anthropic APIs, /mcp, /metrics).
  std::string listen = "127.0.0.1:8080";
  // Names this gateway instance: its reply topic is
  // "cascade.gateway.<instance>.replies" unless reply_topic says otherwise.
  // "" = the host name.
  std::string instance;
  std::string reply_topic;
  // Requests in flight (waiting for or streaming an answer) over which new
  // requests get 429 with Retry-After.
  int max_in_flight = 1024;
  // A request with no terminal event by then gets 504 and is cancelled.
  int request_timeout_ms = 300000;
  // A request body over this gets 413.
  std::int64_t max_body_bytes = 4 << 20;
  // "keys": every request needs an API key (`cascade keys create`), whose
  // tenant it is billed to. "none": no key is asked for and every request is
  // `default_tenant`'s; allowed only when listen is a loopback address.
  std::string auth = "keys";
  std::string default_tenant = "default";
  // Idle keep-alive connections are closed after this.
  int idle_timeout_ms = 60000;
};

[[nodiscard]] Result<GatewayConfig> read_gateway_config(ConfigReader& reader);

}  // namespace cascade
