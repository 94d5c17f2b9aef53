#pragma once
// Rules on the fields several events share (docs/events.md, "Prompt event"):
// a request id and a tenant are checked the same way wherever they come in.
// Internal to events/.
#include <algorithm>
#include <cstddef>
#include <string_view>

namespace cascade::event_rules {

inline constexpr std::size_t kMaxIdBytes = 256;
inline constexpr std::size_t kMaxTenantBytes = 128;

inline constexpr std::string_view kIdRule = "'id' must be a non-empty string of at most 256 bytes";
inline constexpr std::string_view kTenantRule =
    "'tenant' must be a non-empty string of at most 128 characters from [A-Za-z0-9._:-]";

inline bool is_valid_id(std::string_view id) { return !id.empty() && id.size() <= kMaxIdBytes; }

inline bool is_valid_tenant(std::string_view tenant) {
  if (tenant.empty() || tenant.size() > kMaxTenantBytes) return false;
  return std::ranges::all_of(tenant, [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == ':' || c == '-';
  });
}

}  // namespace cascade::event_rules
