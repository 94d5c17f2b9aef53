#include <spdlog/spdlog.h>

#include "state/codec.h"
#include "state/state.h"

namespace cascade {
namespace {

// Payload: final event length (LE 8), the final event, then the cost event.
// Byte for byte the layout of the store's first format on little-endian hosts,
// so migrated entries decode unchanged.
std::string encode(const CompletedAnswer& a) {
  std::string out;
  out.reserve(8 + a.final_event.size() + a.cost_event.size());
  state_codec::put_le64(out, a.final_event.size());
  out += a.final_event;
  out += a.cost_event;
  return out;
}

std::optional<CompletedAnswer> decode(std::string_view v) {
  if (v.size() < 8) return std::nullopt;
  const std::uint64_t n = state_codec::get_le64(v.data());
  if (v.size() - 8 < n) return std::nullopt;
  CompletedAnswer a;
  a.final_event.assign(v.substr(8, n));
  a.cost_event.assign(v.substr(8 + n));
  return a;
}

}  // namespace

Result<std::unique_ptr<CompletedAnswerStore>> CompletedAnswerStore::open(const std::string& dir,
                                                                        std::int64_t ttl_seconds) {
  StateOptions options;
  options.dir = dir;
  options.completed_ttl_s = ttl_seconds;
  auto store = StateStore::open(std::move(options));
  if (!store) return std::unexpected(store.error());
  auto view = std::unique_ptr<CompletedAnswerStore>(new CompletedAnswerStore());
  view->owned_ = std::move(*store);
  view->store_ = view->owned_.get();
  return view;
}

std::unique_ptr<CompletedAnswerStore> CompletedAnswerStore::view(StateStore& store) {
  auto view = std::unique_ptr<CompletedAnswerStore>(new CompletedAnswerStore());
  view->store_ = &store;
  return view;
}

CompletedAnswerStore::~CompletedAnswerStore() = default;

Result<std::uint64_t> CompletedAnswerStore::put(std::string_view tenant, std::string_view id,
                                                const CompletedAnswer& answer) {
  return store_->put(StateFamily::completed, tenant_key(tenant, id), encode(answer), "");
}

std::optional<CompletedAnswer> CompletedAnswerStore::get(std::string_view tenant, std::string_view id) const {
  auto entry = store_->get(StateFamily::completed, tenant_key(tenant, id), "");
  if (!entry) return std::nullopt;
  auto answer = decode(entry->payload);
  if (!answer) spdlog::warn("state: undecodable completed answer ignored");
  return answer;
}

}  // namespace cascade
