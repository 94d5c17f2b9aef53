#include "events/cancel_event.h"

#include <nlohmann/json.hpp>

#include <limits>
#include <optional>

#include "events/field_rules.h"

namespace cascade {
namespace {

using nlohmann::json;

// A cancel is a few hundred bytes; anything much larger is not one, and is
// not worth parsing on every worker.
constexpr std::size_t kMaxCancelEventBytes = 64 * 1024;

Error bad(std::string_view message) {
  return Error{ErrorCode::invalid_request, "cancel event: " + std::string(message)};
}

// The field's string, or why it is not one; absent or null is `missing`.
std::optional<std::string> string_field(const json& event, const char* key, bool& missing, std::string& problem) {
  missing = false;
  const auto it = event.find(key);
  if (it == event.end() || it->is_null()) {
    missing = true;
    return std::nullopt;
  }
  if (!it->is_string()) {
    problem = std::string("'") + key + "' must be a string";
    return std::nullopt;
  }
  return it->get<std::string>();
}

bool non_negative_int64(const json& value) {
  if (value.is_number_unsigned())
    return value.get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  return value.is_number_integer() && value.get<std::int64_t>() >= 0;
}

}  // namespace

std::string make_cancel_event(const CancelEvent& cancel) {
  const json out = {
      {"v", 1},
      {"type", "cancel"},
      {"id", cancel.id},
      {"tenant", cancel.tenant},
      {"reason", cancel.reason},
      {"ts_ms", cancel.ts_ms},
  };
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<CancelEvent> parse_cancel_event(std::string_view payload) {
  if (payload.size() > kMaxCancelEventBytes)
    return std::unexpected(bad("larger than " + std::to_string(kMaxCancelEventBytes) + " bytes"));
  // The parser neither throws nor recurses (nlohmann's SAX parser keeps its
  // own stack), so no depth bound is needed for an event this small.
  const json event = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (event.is_discarded()) return std::unexpected(bad("not valid JSON"));
  if (!event.is_object()) return std::unexpected(bad("must be a JSON object"));
  // Any later version stays readable (extend, never break); only nonsense is refused.
  if (const auto v = event.find("v"); v != event.end() && !v->is_null()) {
    if (!non_negative_int64(*v) || v->get<std::int64_t>() < 1)
      return std::unexpected(bad("'v' must be a positive integer"));
  }
  bool missing = false;
  std::string problem;
  if (auto type = string_field(event, "type", missing, problem); !problem.empty()) {
    return std::unexpected(bad(problem));
  } else if (!missing && *type != "cancel") {
    return std::unexpected(bad("'type' must be \"cancel\""));
  }

  CancelEvent cancel;
  auto id = string_field(event, "id", missing, problem);
  if (missing) return std::unexpected(bad("missing required field 'id'"));
  if (!problem.empty() || !event_rules::is_valid_id(*id)) return std::unexpected(bad(event_rules::kIdRule));
  cancel.id = std::move(*id);

  auto tenant = string_field(event, "tenant", missing, problem);
  if (missing) return std::unexpected(bad("missing required field 'tenant'"));
  if (!problem.empty() || !event_rules::is_valid_tenant(*tenant))
    return std::unexpected(bad(event_rules::kTenantRule));
  cancel.tenant = std::move(*tenant);

  auto reason = string_field(event, "reason", missing, problem);
  if (!problem.empty()) return std::unexpected(bad(problem));
  if (reason) cancel.reason = std::move(*reason);

  if (const auto ts = event.find("ts_ms"); ts != event.end() && !ts->is_null()) {
    if (!non_negative_int64(*ts)) return std::unexpected(bad("'ts_ms' must be a non-negative integer"));
    cancel.ts_ms = ts->get<std::int64_t>();
  }
  return cancel;
}

}  // namespace cascade
