#pragma once
// A local OpenAI-compatible chat completions server (POST /v1/chat/completions,
// streaming SSE exactly as OpenAI sends it, or a plain JSON response). Used by
// `make demo` when no provider keys are set (its answers say they are
// simulated), by the integration tests and by the pipeline benchmark.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"

namespace cascade {

struct SimulatedUpstreamOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0 = any free port
  int chunks = 20;         // content chunks per streamed answer
  int chunk_delay_ms = 0;  // pause between chunks (simulates generation speed)
  int threads = 1;         // server I/O threads
};

class SimulatedUpstream {
 public:
  explicit SimulatedUpstream(SimulatedUpstreamOptions options = {});
  ~SimulatedUpstream();
  SimulatedUpstream(const SimulatedUpstream&) = delete;
  SimulatedUpstream& operator=(const SimulatedUpstream&) = delete;

  // Binds and starts serving on background threads.
  Result<void> start();
  void stop();

  std::uint16_t port() const;
  std::string base_url() const;  // "http://127.0.0.1:<port>/v1"
  // Chat completion requests answered so far (any status).
  std::uint64_t requests_served() const;

  // The deterministic answer the simulator gives for a model and prompt text;
  // tests compare streamed content with it.
  static std::string answer_for(const std::string& model, const std::string& last_user_text,
                                int chunks);
  // answer_for split the way it is streamed: exactly max(chunks, 1) non-empty
  // content deltas (split at word boundaries) whose concatenation is answer_for.
  static std::vector<std::string> answer_pieces(const std::string& model,
                                                const std::string& last_user_text, int chunks);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cascade
