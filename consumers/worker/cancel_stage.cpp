#include "consumers/worker/cancel_stage.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace cascade {
namespace {

// The reason is free text from outside: an error message carries this much of it.
constexpr std::size_t kMaxReasonBytes = 256;

std::string_view cut_utf8(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t end = max_bytes;
  // Back to the start of a character: continuation bytes are 10xxxxxx.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

}  // namespace

Error cancelled_error(std::string_view reason) {
  std::string message = "cancelled by its requester";
  if (!reason.empty()) {
    message += ": ";
    message += cut_utf8(reason, kMaxReasonBytes);
  }
  return Error{ErrorCode::cancelled, std::move(message)};
}

std::string cancelled_note(std::string_view where, std::string_view reason) {
  std::string note = "cancelled while ";
  note += where;
  if (!reason.empty()) {
    note += " (";
    note += cut_utf8(reason, kMaxReasonBytes);
    note += ")";
  }
  return note;
}

// --------------------------------------------------------- PendingCancels ----

std::size_t PendingCancels::remember(const CancelNotice& notice) {
  const CancelEvent& c = notice.cancel;
  auto& entries = by_id_[c.id];
  for (Entry& e : entries) {
    if (e.tenant != c.tenant) continue;
    e.expires_at_ms = std::max(e.expires_at_ms, notice.expires_at_ms);
    e.reason = c.reason;
    return 0;
  }
  std::size_t forgotten = 0;
  while (order_.size() >= capacity_ && !order_.empty()) {
    forget_oldest();
    ++forgotten;
  }
  // forget_oldest may have emptied (and erased) this id's list.
  by_id_[c.id].push_back(Entry{c.tenant, c.reason, notice.expires_at_ms, ++last_serial_});
  order_.push_back(Remembered{last_serial_, c.id});
  return forgotten;
}

void PendingCancels::forget_oldest() {
  const Remembered oldest = std::move(order_.front());
  order_.pop_front();
  auto it = by_id_.find(oldest.id);
  if (it == by_id_.end()) return;
  std::erase_if(it->second, [&](const Entry& e) { return e.serial == oldest.serial; });
  if (it->second.empty()) by_id_.erase(it);
}

std::optional<std::string> PendingCancels::reason_for(std::string_view tenant, std::string_view id,
                                                      std::int64_t now_ms) const {
  const auto it = by_id_.find(std::string(id));
  if (it == by_id_.end()) return std::nullopt;
  for (const Entry& e : it->second) {
    if (e.tenant == tenant && e.expires_at_ms > now_ms) return e.reason;
  }
  return std::nullopt;
}

bool PendingCancels::cancelled_for_another_tenant(std::string_view tenant, std::string_view id,
                                                  std::int64_t now_ms) const {
  const auto it = by_id_.find(std::string(id));
  if (it == by_id_.end()) return false;
  return std::ranges::any_of(it->second,
                             [&](const Entry& e) { return e.tenant != tenant && e.expires_at_ms > now_ms; });
}

void PendingCancels::expire(std::int64_t now_ms) {
  while (!order_.empty()) {
    const auto it = by_id_.find(order_.front().id);
    const bool expired =
        it == by_id_.end() || std::ranges::none_of(it->second, [&](const Entry& e) {
          return e.serial == order_.front().serial && e.expires_at_ms > now_ms;
        });
    if (!expired) return;
    forget_oldest();
  }
}

// ------------------------------------------------------------ CancelStage ----

CancelStage::CancelStage(StageContext& context)
    : ctx_(context), pending_(context.config.worker.cancel_max_pending) {}

void CancelStage::count_ignored(const char* reason) {
  ctx_.stats.cancels_ignored++;
  if (ctx_.metrics) ctx_.metrics->cancel_ignored(reason);
}

void CancelStage::count_cancelled(std::string_view where) {
  ctx_.stats.cancelled++;
  if (ctx_.metrics) ctx_.metrics->cancelled(std::string(where));
}

std::optional<Error> CancelStage::cancelled_before_arrival(const Request& r) {
  if (pending_.size() == 0) return std::nullopt;
  const std::int64_t now = ctx_.host.wall_ms();
  if (auto reason = pending_.reason_for(r.event.tenant, r.event.id, now)) return cancelled_error(*reason);
  if (pending_.cancelled_for_another_tenant(r.event.tenant, r.event.id, now)) {
    spdlog::warn("worker: request {} of tenant {} was cancelled by another tenant's cancel event: ignored",
                 r.event.id, r.event.tenant);
    count_ignored("wrong_tenant");
  }
  return std::nullopt;
}

std::vector<Request*> CancelStage::on_notice(const CancelNotice& notice) {
  const CancelEvent& c = notice.cancel;
  std::vector<Request*> leading;
  std::vector<Request*> following;
  ctx_.requests.for_each([&](Request& r) {
    if (r.event.id != c.id) return;
    if (r.event.tenant != c.tenant) {
      spdlog::warn("worker: cancel event of tenant {} for request {} of tenant {}: ignored", c.tenant, c.id,
                   r.event.tenant);
      count_ignored("wrong_tenant");
      return;
    }
    if (r.terminal()) {
      count_ignored("finished");
      return;
    }
    (r.state == RequestState::following ? following : leading).push_back(&r);
  });
  if (const std::size_t forgotten = pending_.remember(notice); forgotten > 0) {
    ctx_.stats.cancels_forgotten += forgotten;
    if (ctx_.metrics) ctx_.metrics->cancels_forgotten(forgotten);
  }
  // Serial order: the same inputs end the same way.
  auto by_serial = [](const Request* a, const Request* b) { return a->serial < b->serial; };
  std::ranges::sort(leading, by_serial);
  std::ranges::sort(following, by_serial);
  leading.insert(leading.end(), following.begin(), following.end());
  return leading;
}

}  // namespace cascade
