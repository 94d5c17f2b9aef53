#include "gateway/gateway_config.h"

namespace cascade {

Result<GatewayConfig> read_gateway_config(ConfigReader& r) {
  GatewayConfig c;
  const auto gateway = r.root()["gateway"];
  r.read(gateway, "listen", c.listen, "gateway");
  r.read(gateway, "instance", c.instance, "gateway");
  r.read(gateway, "reply_topic", c.reply_topic, "gateway");
  r.read(gateway, "max_in_flight", c.max_in_flight, "gateway");
  r.read(gateway, "request_timeout_ms", c.request_timeout_ms, "gateway");
  r.read(gateway, "max_body_bytes", c.max_body_bytes, "gateway");
  r.read(gateway, "auth", c.auth, "gateway");
  r.read(gateway, "default_tenant", c.default_tenant, "gateway");
  r.read(gateway, "idle_timeout_ms", c.idle_timeout_ms, "gateway");
  if (auto ok = r.status(); !ok) return std::unexpected(ok.error());
  if (c.max_in_flight < 1 || c.request_timeout_ms < 1 || c.max_body_bytes < 1024 || c.idle_timeout_ms < 1)
    return fail(ErrorCode::invalid_request,
                "config 'gateway': max_in_flight, request_timeout_ms and idle_timeout_ms must be >= 1, "
                "max_body_bytes >= 1024");
  if (c.auth != "keys" && c.auth != "none")
    return fail(ErrorCode::invalid_request, "config 'gateway.auth' must be keys or none, got '" + c.auth + "'");
  if (c.auth == "none" && !is_loopback_listen(c.listen))
    return fail(ErrorCode::invalid_request, "config 'gateway.auth: none' is allowed only with a loopback listen "
                                            "address (127.0.0.1, ::1, localhost), got '" + c.listen + "'");
  return c;
}

}  // namespace cascade
