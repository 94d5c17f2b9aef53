#pragma once
// A local OpenAI-compatible chat completions server (POST /v1/chat/completions,
// streaming SSE exactly as OpenAI sends it, or a plain JSON response). Used by
// `make demo` when no provider keys are set (its answers say they are
// simulated), by the integration tests and by the pipeline benchmark.
// Resilience tests make it misbehave on purpose: per request with an
// `X-Cascade-Fault: <name>[;param=value]...` header, or for a share of all
// requests with a seeded fault plan (FaultInjectionOptions). Without either,
// its bytes are exactly those of a fault-free server.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace cascade {

// Faults the simulator can inject into a chat completion, for resilience tests.
// A request gets at most one. Unless stated otherwise, what happens "after
// chunks" counts content deltas sent after the role chunk.
enum class UpstreamFaultKind : std::uint8_t {
  none,
  http_status,          // an error response (OpenAI-style body), optionally with Retry-After
  hang_before_headers,  // read the request, send nothing for duration_ms, then answer
  hang_mid_stream,      // headers + after_chunks deltas, stall duration_ms, then the rest
  cut_mid_stream,       // headers + after_chunks deltas, then close: no final chunk, no [DONE]
  reset_mid_stream,     // like cut_mid_stream but the close is a TCP RST (SO_LINGER 0)
  malformed_sse,        // after after_chunks deltas, one `data:` line that is not JSON
  huge_chunk,           // after after_chunks deltas, one extra content delta of
                        // huge_chunk_bytes (usage is unchanged)
  slow,                 // duration_ms between content chunks, for this request only
};

struct UpstreamFault {
  UpstreamFaultKind kind = UpstreamFaultKind::none;
  int status = 500;              // http_status: the HTTP status (400..599)
  int retry_after_seconds = -1;  // http_status: Retry-After header value; -1 = no header
  // hang_*: how long the stall lasts, 0 = until the client leaves or stop();
  // slow: the pause between content chunks.
  int duration_ms = 0;
  // Mid-stream faults: content deltas sent before the fault (capped at the
  // answer's length); -1 = half of them (rounded down). Non-streaming
  // requests are cut/stalled after half of the response body instead.
  int after_chunks = -1;
  std::size_t huge_chunk_bytes = 1 << 20;

  static UpstreamFault http_status(int status, int retry_after_seconds = -1);
  static UpstreamFault rate_limited(int retry_after_seconds = 1);  // 429
  static UpstreamFault hang_before_headers(int duration_ms = 0);
  static UpstreamFault hang_mid_stream(int duration_ms = 0, int after_chunks = -1);
  static UpstreamFault cut_mid_stream(int after_chunks = -1);
  static UpstreamFault reset_mid_stream(int after_chunks = -1);
  static UpstreamFault malformed_sse(int after_chunks = -1);
  static UpstreamFault huge_chunk(std::size_t bytes = 1 << 20, int after_chunks = -1);
  static UpstreamFault slow(int chunk_delay_ms);

  bool operator==(const UpstreamFault&) const = default;
};

// The name a fault is counted under in fault_counts(): "none", "status_429",
// "hang_before_headers", "cut_mid_stream", ...
std::string fault_label(const UpstreamFault& fault);

// Parses the value of the X-Cascade-Fault request header:
//   <name>[;<param>=<integer>]...
// names: none, status (params code=, retry_after=), or a bare status code
// ("429" = "status;code=429"), hang_before_headers (ms=), hang_mid_stream
// (ms=, after=), cut_mid_stream (after=), reset_mid_stream (after=),
// malformed_sse (after=), huge_chunk (bytes=, after=), slow (ms=, default 50).
// A 429 carries "Retry-After: 1" unless retry_after= says otherwise (-1 = none).
[[nodiscard]] Result<UpstreamFault> parse_upstream_fault(std::string_view text);

struct FaultPlanEntry {
  UpstreamFault fault = {};
  std::uint32_t weight = 1;  // relative; add a `none` entry for the fault-free share
};

enum class FaultPlanOrder {
  // The n-th request that consults the plan gets the fault drawn from a
  // random number derived from (seed, n) only: reproducible for a seed.
  seeded_random,
  // Exact proportions: every run of sum(weights) consecutive requests holds
  // each fault `weight` times, spread evenly (smooth weighted round robin).
  interleaved,
};

struct FaultInjectionOptions {
  // Consulted by every valid chat completion request without an
  // X-Cascade-Fault header; empty = no planned faults.
  std::vector<FaultPlanEntry> plan = {};
  FaultPlanOrder order = FaultPlanOrder::seeded_random;
  std::uint64_t seed = 1;
  bool honor_fault_header = true;  // X-Cascade-Fault wins over the plan
  // Keep a log of which fault each valid chat completion request got (see
  // fault_log()); off by default, it grows with every request.
  bool log_faults = false;
};

// One valid chat completion request and the fault it was given.
struct FaultLogEntry {
  std::string last_user_text;  // identifies the prompt the request carried
  std::string fault;           // fault_label(), "none" for no fault
};

// A scripted answer: what a model says when the simulator's composed answer
// will not do (a refusal, an answer in the wrong format, a judge's grade, an
// error of one model only).
// The first rule whose model and prompt match replaces the composed text;
// streaming, usage and max_tokens apply as to any answer (pieces split at
// word boundaries, at most `chunks` of them, never padded).
struct SimulatedAnswerRule {
  std::string model;            // upstream model name; "" = any model
  std::string prompt_contains;  // substring of the last user message; "" = any prompt
  std::string answer;
  int http_status = 0;  // 400..599: answer with this error (as UpstreamFault::http_status) instead
  // Non-empty: the answer is a call of this function instead of text, with
  // `answer` as its JSON arguments, as OpenAI sends one (content null,
  // finish_reason "tool_calls"; streamed as a first event with the call's id
  // and name, then the arguments in pieces). Its id is "call_sim_<n>", n the
  // completion's number.
  std::string tool_name = {};
};

// A recorded answer (`cascade upstream --outcomes FILE`): what `model` said
// to `prompt` (the last user message, exactly) and the quality a judge gave
// it, 0..1, as an outcomes file of `cascade route-data` holds them.
struct RecordedAnswer {
  std::string model;  // as requests name it (the upstream model name)
  std::string prompt;
  std::string response;
  double quality = 0;
};

// Starts the section of a judge call's user message that holds the answer
// to grade. The worker's judge writes it (consumers/worker/judge.h,
// kJudgeAnswerMarker; tests/integration checks that the two agree).
inline constexpr std::string_view kJudgeCallAnswerMarker = "### Answer to grade";

// The grade a judge call gets for a recorded answer: 1 + 4 x quality, so a
// correct benchmark answer gets 5, a wrong one 1, and an AlpacaEval answer
// the judge likes as much as GPT-4 Turbo's (quality 0.5) gets 3.
double recorded_grade(double quality);

struct SimulatedUpstreamOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0 = any free port
  int chunks = 20;         // content chunks per streamed answer
  int chunk_delay_ms = 0;  // pause between chunks (simulates generation speed)
  int threads = 1;         // server I/O threads
  FaultInjectionOptions faults = {};
  std::vector<SimulatedAnswerRule> answers = {};  // none: every answer is composed
  // Known (model, prompt) pairs are answered with their recorded answer, and
  // a judge call whose answer is a recorded one gets "Score: <grade>"
  // (recorded_grade). Anything else is composed as usual; answer rules
  // still win over both.
  std::vector<RecordedAnswer> recorded = {};
};

class SimulatedUpstream {
 public:
  explicit SimulatedUpstream(SimulatedUpstreamOptions options = {});
  ~SimulatedUpstream();
  SimulatedUpstream(const SimulatedUpstream&) = delete;
  SimulatedUpstream& operator=(const SimulatedUpstream&) = delete;

  // Binds and starts serving on background threads. Fails on an invalid
  // fault plan.
  [[nodiscard]] Result<void> start();
  void stop();

  std::uint16_t port() const;
  std::string base_url() const;  // "http://127.0.0.1:<port>/v1"
  // Chat completion requests answered so far (any status).
  std::uint64_t requests_served() const;
  // Responses whose client closed the connection before they were complete
  // (noticed while stalled by a hang fault, or when a write fails): a client
  // that gave up on, or cancelled, a stream.
  std::uint64_t responses_abandoned() const;
  // How many valid chat completion requests received each fault, by
  // fault_label(); "none" counts the ones without. Faults never given are absent.
  std::map<std::string, std::uint64_t> fault_counts() const;
  // Every valid chat completion request in arrival order, when log_faults is on.
  std::vector<FaultLogEntry> fault_log() const;
  // Replaces the scripted answers (SimulatedUpstreamOptions::answers) for the
  // requests that arrive from now on.
  void set_answer_rules(std::vector<SimulatedAnswerRule> rules);
  // Valid chat completion requests so far, by the model they named.
  std::map<std::string, std::uint64_t> requests_by_model() const;
  // Replaces the recorded answers (SimulatedUpstreamOptions::recorded) for the
  // requests that arrive from now on.
  void set_recorded_answers(std::vector<RecordedAnswer> recorded);
  // Requests answered with a recorded answer, and judge calls graded from one.
  std::uint64_t recorded_answers_served() const;
  std::uint64_t recorded_grades_served() const;
  // The fault the plan gives the ordinal-th (0-based) request that consults it.
  UpstreamFault planned_fault(std::uint64_t ordinal) const;

  // The deterministic answer the simulator gives for a model and prompt text;
  // tests compare streamed content with it.
  static std::string answer_for(const std::string& model, const std::string& last_user_text,
                                int chunks);
  // answer_for split the way it is streamed: exactly max(chunks, 1) non-empty
  // content deltas (split at word boundaries) whose concatenation is answer_for.
  static std::vector<std::string> answer_pieces(const std::string& model,
                                                const std::string& last_user_text, int chunks);

  // The content deltas a client receives under `fault` (for a stream that is
  // read to its end; a hang_mid_stream client must outwait the stall): for
  // huge_chunk the answer pieces with huge_chunk_text() inserted, for cut and
  // reset the pieces before the cut, none for http_status and
  // hang_before_headers. The malformed_sse line is not a content delta.
  // max_tokens as in the request (0 = none).
  static std::vector<std::string> expected_deltas(const std::string& model,
                                                  const std::string& last_user_text, int chunks,
                                                  const UpstreamFault& fault,
                                                  std::int64_t max_tokens = 0);
  // The content of a huge_chunk delta: a fixed ASCII sentence repeated and
  // cut to exactly `bytes` bytes (nothing in it needs JSON escaping).
  static std::string huge_chunk_text(std::size_t bytes);
  // What follows "data: " on the malformed_sse line (also the whole body of
  // a non-streaming response under that fault).
  static constexpr std::string_view kMalformedSseData =
      R"({"id":"chatcmpl-malformed","choices":[{"index":0,"delta":{"content":"cut short)";

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cascade
