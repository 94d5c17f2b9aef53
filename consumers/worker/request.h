#pragma once
// One prompt event's life inside a worker event loop (docs/architecture.md):
// the state it is in, and what each stage keeps of it. A Request is owned by
// its loop's RequestTable from the moment its record is consumed until its
// terminal events are delivered (and its completed answer replicated); every
// stage reaches it by reference while it runs, and by serial across waits
// (timers, side calls, single-flight followers), since it may be gone by then.
//
// Threading: a request lives on one event loop's thread; nothing here locks.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "catalog/catalog.h"
#include "consumers/worker/answer_cache.h"
#include "core/result.h"
#include "events/events.h"
#include "providers/provider.h"
#include "resilience/resilience.h"
#include "router/router.h"

namespace cascade {

using Clock = std::chrono::steady_clock;

// Where a request is. Transitions are checked against one table
// (transition_allowed); enter() is the only way to change the state.
//
//   received ──► embedding ──► received          (semantic cache, remote embedder)
//   received ──► following ──► delivering        (single flight: the leader's answer)
//                following ──► received          (its leader was cancelled: it runs on its own)
//   received ──► admitting ──► received          (rate limit: waits, then goes on)
//   received ──► calling ◄──► backing_off        (retries)
//            └─► waiting_for_slot ──► calling    (provider slots)
//   calling ──► checking ──► calling             (cascade: escalated)
//   any but delivering ──► delivering            (exactly one terminal, then done)
enum class RequestState : std::uint8_t {
  received,          // consumed; going through replay, cache, flight, admission, routing
  embedding,         // waits for its semantic-cache embedding (a remote embedder's call)
  following,         // follows an identical request in flight (single flight)
  admitting,         // waits for its tenant's rate limit
  waiting_for_slot,  // waits for a provider slot (providers.<name>.max_concurrency)
  backing_off,       // waits to retry a failed attempt
  calling,           // a provider attempt is streaming
  checking,          // cascade: a cheap answer waits for its agreement or judge call
  delivering,        // its terminal events are out; it finishes when they are delivered
};
std::string_view to_string(RequestState state);

// The transition table: whether a request may go from one state to another.
bool transition_allowed(RequestState from, RequestState to);

struct Request;

// Receives a request's provider stream (the attempt runner). Narrow on
// purpose: a Request forwards its ChatStreamObserver calls here.
class AttemptSink {
 public:
  virtual ~AttemptSink() = default;
  virtual void on_attempt_delta(Request& r, std::string_view text) = 0;
  virtual void on_attempt_complete(Request& r, Result<ChatCompletion> outcome) = 0;
};

// One tracked event of a request (reply terminal, cost event, dead letter)
// until its delivery report: kept whole so a failed delivery can be retried.
struct OutgoingEvent {
  std::string topic;
  std::string key;
  std::string payload;
  int attempts = 0;
};

struct Request final : ChatStreamObserver {
  // ------------------------------------------------------------ origin ----
  std::uint64_t serial = 0;  // unique within its loop
  std::int32_t partition = -1;
  std::int64_t offset = -1;
  PromptEvent event;
  std::vector<std::string> tags;  // metadata.tags, for budgets and the cost event
  RequestState state = RequestState::received;
  Clock::time_point started;
  std::optional<Clock::time_point> first_token;  // the requester's first content
  std::int64_t input_tokens = -1;                // estimated once needed (o200k_base); -1 = not yet

  // -------------------------------------------------- the reply stream ----
  struct Reply {
    std::int64_t next_seq = 0;         // seq of the next reply event
    // Deltas of a model's answer given to the requester (published, or
    // pending in the coalescer): no retry can hide them.
    std::int64_t published_chunks = 0;
    std::string content;               // the current attempt's (or held cheap) answer so far
    // content[0, published_bytes) is out in chunk events; the rest, when
    // flush_queued, waits in the ChunkCoalescer (chunk_coalescer.h).
    std::size_t published_bytes = 0;
    bool flush_queued = false;
  } reply;

  // ------------------------------------------------------------ routing ----
  RouteDecision route;

  // ---------------------------------------------------- attempt runner ----
  struct Attempts {
    std::vector<const ModelInfo*> chain;  // the routed model, then its fallbacks
    std::size_t index = 0;                // chain[index] is the model being tried
    int on_model = 0;                     // attempts made on chain[index]
    std::uint64_t transfer = 0;           // the streaming call (HttpClient id)
    Clock::time_point started;            // of the current attempt
    Clock::time_point last_activity;
    bool got_token = false;               // the current attempt has streamed content
    BreakerTicket breaker_ticket;         // how its breaker let the current attempt in
    bool breaker_told_success = false;    // the current attempt counted as a success already
    bool holds_slot = false;              // of chain[index]'s provider
    Clock::time_point slot_deadline;      // while waiting_for_slot
    std::string notes;                    // "; gpt-4o-mini: HTTP 429 -> retry" ...
    std::optional<Error> last_error;
  } attempts;

  // -------------------------------------------- what the request costs ----
  struct Charges {
    double wasted_usd = 0;    // failed or rejected attempts, judges, agreement calls: paid too
    TokenUsage wasted_usage;
    double charged_usd = 0;   // its cost event's cost_usd, once published
    double tokens_reserved = 0;  // of the tenant's token rate, settled on completion
    std::optional<Clock::time_point> admission_deadline;
    std::uint64_t budget_reservation = 0;  // its estimate in the loop's pending spend
  } charges;

  // ------------------------------------------- cache and single flight ----
  std::string fingerprint;  // request_fingerprint; "" = neither cached nor shared
  std::optional<AnswerCache::SemanticQuery> semantic;
  struct Flight {
    std::string leading;                  // the fingerprint of the flight it leads, while open
    std::vector<std::uint64_t> followers;  // serials of the requests following it
    bool duplicate_of_leader = false;     // follows a leader with its own id: a second delivery
  } flight;

  // ----------------------------------------------- cheap-first cascade ----
  struct Cascade {
    bool holding = false;  // the cheap answer is held back until checked
    std::vector<const ModelInfo*> escalation;  // where a rejected answer goes
    std::optional<ChatCompletion> held;        // a checked cheap answer waiting for a side call
    std::uint64_t judge = 0;                   // its judge call (0 = none)
    std::uint64_t agreement = 0;               // the agreement model's call (0 = none running)
    std::optional<Result<std::string>> agreement_answer;
    std::string check_note;  // what the checks so far said, for the accept reason
    std::string check_kind;  // and its metrics label
  } cascade;

  // ---------------------------------------------------------- delivery ----
  struct Delivery {
    std::vector<OutgoingEvent> outgoing;
    int pending = 0;                // tracked events without a delivery report
    std::uint64_t completed_seq = 0;  // outbox seq of its completed answer (0 = none)
    bool ended = false;               // its terminal event is published (the loop counts it out of max_in_flight)
  } delivery;

  AttemptSink* sink = nullptr;

  // ChatStreamObserver: the current attempt's stream, passed to the runner.
  void on_delta(std::string_view text) override { sink->on_attempt_delta(*this, text); }
  void on_complete(Result<ChatCompletion> outcome) override { sink->on_attempt_complete(*this, std::move(outcome)); }

  bool terminal() const { return state == RequestState::delivering; }
};

// Moves a request to `to`. An illegal transition is a programmer error: it
// is logged and, in debug builds, aborts.
void enter(Request& r, RequestState to);

// The requests in flight on one loop, by serial.
class RequestTable {
 public:
  Request& add(std::unique_ptr<Request> request);
  Request* find(std::uint64_t serial) const;
  void erase(std::uint64_t serial);
  std::size_t size() const { return requests_.size(); }
  bool empty() const { return requests_.empty(); }
  void clear() { requests_.clear(); }
  std::uint64_t next_serial() { return ++last_serial_; }
  template <class Fn>
  void for_each(Fn&& fn) {
    for (auto& [serial, request] : requests_) fn(*request);
  }

 private:
  std::unordered_map<std::uint64_t, std::unique_ptr<Request>> requests_;
  std::uint64_t last_serial_ = 0;
};

}  // namespace cascade
