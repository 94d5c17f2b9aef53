#pragma once
// Listen addresses ("127.0.0.1:8080", "[::1]:80", "0.0.0.0:9464") as the
// config gives them to Cascade's HTTP servers.
#include <string>

namespace cascade {

// Whether a listen address binds to loopback only: the servers that are open
// without a key there (the ledger's API, a gateway with auth none) ask for
// one anywhere else.
inline bool is_loopback_listen(const std::string& listen) {
  const auto colon = listen.rfind(':');
  std::string host = colon == std::string::npos ? listen : listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

}  // namespace cascade
