#pragma once
// UTC calendar days as the ledger, budgets and quality figures name them:
// "YYYY-MM-DD". Ids sort in time order.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cascade {

// "YYYY-MM-DD" of ts_ms (ms since the epoch, UTC).
std::string utc_day(std::int64_t ts_ms);
// Midnight UTC of a "YYYY-MM-DD" day, in ms since the epoch; nullopt when not a valid date.
std::optional<std::int64_t> parse_utc_day(std::string_view day);

}  // namespace cascade
