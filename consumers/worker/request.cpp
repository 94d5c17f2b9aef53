#include "consumers/worker/request.h"

#include <spdlog/spdlog.h>

#include <cassert>

namespace cascade {

std::string_view to_string(RequestState state) {
  switch (state) {
    case RequestState::received: return "received";
    case RequestState::embedding: return "embedding";
    case RequestState::following: return "following";
    case RequestState::admitting: return "admitting";
    case RequestState::waiting_for_slot: return "waiting_for_slot";
    case RequestState::backing_off: return "backing_off";
    case RequestState::calling: return "calling";
    case RequestState::checking: return "checking";
    case RequestState::delivering: return "delivering";
  }
  return "unknown";
}

bool transition_allowed(RequestState from, RequestState to) {
  using S = RequestState;
  if (from == S::delivering) return false;  // one terminal, then nothing
  if (to == S::delivering) return true;      // any request may end
  switch (from) {
    case S::received:
      // Straight to a provider call (or a slot) once admitted and routed.
      return to == S::embedding || to == S::following || to == S::admitting || to == S::calling ||
             to == S::waiting_for_slot;
    case S::embedding:
      return to == S::received;  // the vector came (or not): the lookup goes on
    case S::following:
      // It ends with its leader, or runs on its own when its leader was
      // cancelled before any of the answer reached it.
      return to == S::received;
    case S::admitting:
      return to == S::received;  // let in: goes on to routing
    case S::waiting_for_slot:
    case S::backing_off:
    case S::calling:
      // Attempts follow each other: a retry after backing off, the next model
      // of the chain, a slot to wait for, the escalation after every cheap
      // attempt failed; a cheap answer waiting for its checks.
      return to == S::calling || to == S::waiting_for_slot || to == S::backing_off ||
             (from == S::calling && to == S::checking);
    case S::checking:
      return to == S::calling || to == S::waiting_for_slot;  // escalated
    case S::delivering:
      return false;
  }
  return false;
}

void enter(Request& r, RequestState to) {
  if (r.state == to) return;
  if (!transition_allowed(r.state, to)) {
    spdlog::error("worker: request {} cannot go from {} to {}", r.event.id, to_string(r.state), to_string(to));
    assert(false && "illegal request state transition");
    return;
  }
  r.state = to;
}

Request& RequestTable::add(std::unique_ptr<Request> request) {
  Request& r = *request;
  requests_.emplace(r.serial, std::move(request));
  return r;
}

Request* RequestTable::find(std::uint64_t serial) const {
  auto it = requests_.find(serial);
  return it == requests_.end() ? nullptr : it->second.get();
}

void RequestTable::erase(std::uint64_t serial) { requests_.erase(serial); }

}  // namespace cascade
