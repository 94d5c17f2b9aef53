#pragma once
// The cancel stage (docs/events.md, "Cancel event"): which requests of one
// event loop a cancel ends, and which cancels the loop remembers for
// requests it has not read yet.
//
// Every event loop sees every cancel (CancelNotice, from the worker's cancel
// follower, cancel_follower.h). A cancel ends the loop's requests in flight
// with its id and tenant that have not ended; a request of another tenant
// with that id is left alone (counted: wrong_tenant). Whatever it matched,
// the cancel is remembered until it expires (worker.cancel_window_ms), at
// most worker.cancel_max_pending of them, oldest forgotten first (counted):
// a request
// with that (tenant, id) read later (the cancel came first, or the request
// is delivered again) ends at once with `cancelled`, without calling a
// model. A request answered before is replayed instead (the replay stage
// comes first).
//
// The stage decides; the request lifecycle stops what a cancelled request
// holds and ends it (RequestLifecycle::on_cancel).
//
// Threading: one event loop's thread.
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "consumers/worker/stage_context.h"
#include "events/cancel_event.h"

namespace cascade {

// A valid cancel within worker.cancel_window_ms, as every event loop gets it.
struct CancelNotice {
  CancelEvent cancel;
  std::int64_t expires_at_ms = 0;  // wall clock: its time + worker.cancel_window_ms
};

// Cancels remembered by (tenant, id) until they expire, at most `capacity`;
// the oldest are forgotten first.
class PendingCancels {
 public:
  explicit PendingCancels(std::size_t capacity) : capacity_(capacity) {}

  // Remembers a cancel; one remembered already keeps its place and takes the
  // later expiry and the newer reason. Returns how many older ones were
  // forgotten to make room.
  std::size_t remember(const CancelNotice& notice);
  // The reason of the cancel of (tenant, id), unless none is remembered or it
  // has expired at now_ms.
  std::optional<std::string> reason_for(std::string_view tenant, std::string_view id, std::int64_t now_ms) const;
  // Whether a cancel of `id` is remembered for another tenant than `tenant`.
  bool cancelled_for_another_tenant(std::string_view tenant, std::string_view id, std::int64_t now_ms) const;
  // Forgets the cancels expired at now_ms, from the oldest remembered up to
  // the first that has not expired (lookups check expiry themselves).
  void expire(std::int64_t now_ms);
  std::size_t size() const { return order_.size(); }

 private:
  struct Entry {
    std::string tenant;
    std::string reason;
    std::int64_t expires_at_ms = 0;
    std::uint64_t serial = 0;  // its place in order_
  };
  void forget_oldest();

  std::size_t capacity_;
  std::unordered_map<std::string, std::vector<Entry>> by_id_;  // a few tenants at most per id
  struct Remembered {
    std::uint64_t serial;
    std::string id;
  };
  std::deque<Remembered> order_;  // oldest first
  std::uint64_t last_serial_ = 0;
};

class CancelStage {
 public:
  explicit CancelStage(StageContext& context);

  // A request just read (not replayed): the error to end it with at once when
  // a cancel of it came first. A cancel of its id for another tenant is
  // counted (wrong_tenant) and changes nothing.
  std::optional<Error> cancelled_before_arrival(const Request& r);
  // A cancel: the loop's requests it ends now, the ones leading or calling
  // before the ones following another request (a leader's end decides for
  // its followers). Remembered whatever it matched.
  std::vector<Request*> on_notice(const CancelNotice& notice);
  // Counts a request ended by a cancel: where it was (queued, or its state).
  void count_cancelled(std::string_view where);
  // Periodically: expired cancels are forgotten.
  void expire(std::int64_t now_ms) { pending_.expire(now_ms); }
  std::size_t remembered() const { return pending_.size(); }

 private:
  void count_ignored(const char* reason);

  StageContext& ctx_;
  PendingCancels pending_;
};

// The error a cancelled request ends with: code cancelled, the reason in its
// message (cut to a bound).
Error cancelled_error(std::string_view reason);
// What a cancelled request's route reason notes: "cancelled while <where>
// (<reason>)", the reason cut to the same bound.
std::string cancelled_note(std::string_view where, std::string_view reason);

}  // namespace cascade
