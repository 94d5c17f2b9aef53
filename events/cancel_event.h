#pragma once
// Cancel event on kafka.topics.cancels (default cascade.cancels, key = the
// request id; docs/events.md, "Cancel event"): the requester of a prompt
// event no longer wants its answer (an HTTP gateway's client disconnected or
// timed out, a Kafka app gave up). Every worker follows the whole topic and
// ends the request with the error code `cancelled` if it has not ended yet.
// Extend, never break, as every event.
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace cascade {

// A request's cancellation (docs/events.md "Cancel event"), on kafka.topics.cancels, key = request id.
struct CancelEvent {
  std::string id;      // the prompt event's id
  std::string tenant;  // must be the prompt's tenant: a cancel never crosses tenants
  std::string reason;  // free text: "client_closed", "timeout", "shutdown", ...; may be ""
  std::int64_t ts_ms = 0;  // when it was cancelled, unix epoch milliseconds ("ts_ms"); 0 = not said
};

// {"v":1,"type":"cancel","id":...,"tenant":...,"reason":...,"ts_ms":...}
std::string make_cancel_event(const CancelEvent& cancel);
// invalid_request naming the field on bad input (id and tenant follow the
// prompt event's rules; reason, absent or null, reads as ""; ts_ms, absent
// or null, reads as 0; a "type" other than "cancel" is refused). Unknown
// fields are ignored. Never throws.
[[nodiscard]] Result<CancelEvent> parse_cancel_event(std::string_view payload);

}  // namespace cascade
