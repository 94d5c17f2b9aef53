#pragma once
// What a request's stages need from the event loop that runs them, and no
// more: the clock, the providers, publishing, timers. The worker's EventLoop
// implements it over Kafka and curl; unit tests implement it with a fake
// clock, fake providers and a recording producer (tests/support/worker_host.h).
// Modelled on Envoy's RouterFilterInterface, through which an upstream
// request talks to its router.
//
// Threading: every call is made on the loop's thread.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "consumers/worker/request.h"
#include "providers/provider.h"

namespace cascade {

// Why a request asked to be woken (RequestHost::schedule).
enum class TimerKind : std::uint8_t {
  retry,          // a failed attempt's backoff ended
  admission,      // its tenant's rate limit may let it in now
  slot_granted,   // a provider slot was handed to it
  slot_deadline,  // its wait for a provider slot ran out
};

class RequestHost {
 public:
  virtual ~RequestHost() = default;

  virtual Clock::time_point now() const = 0;
  virtual std::int64_t wall_ms() const = 0;  // for event timestamps

  // The provider of that name enabled on this loop, or null.
  virtual ChatProvider* provider(std::string_view name) = 0;
  // Stops a call started on one of them; its observer gets no further calls.
  virtual void cancel_call(std::uint64_t transfer) = 0;
  // The loop's HTTP client, for calls that are not chats (remote embeddings).
  virtual HttpClient& http() = 0;

  // A best-effort event (a reply chunk, a quality sample): not tracked.
  // False (and logged) when it could not even be queued.
  virtual bool publish(const std::string& topic, std::string_view key, std::string_view payload) = 0;
  // One of the request's tracked events (terminal reply, cost event, dead
  // letter): its offset is committed only once every one is delivered.
  virtual void publish_tracked(Request& r, const std::string& topic, std::string key, std::string payload) = 0;
  // The request's last tracked event is out: it finishes once they are all delivered.
  virtual void terminal_published(Request& r) = 0;

  // Wakes the request's owner at `due` with (serial, kind); at once (next
  // loop iteration) when `due` has passed. The request may be gone by then.
  virtual void schedule(Clock::time_point due, std::uint64_t serial, TimerKind kind) = 0;
};

}  // namespace cascade
