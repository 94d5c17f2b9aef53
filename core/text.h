#pragma once
// Small text helpers every component needs the same way.
#include <cctype>
#include <string_view>

namespace cascade {

// `s` without leading and trailing white space (space, tab, CR, LF, VT, FF).
inline std::string_view trim_space(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace cascade
