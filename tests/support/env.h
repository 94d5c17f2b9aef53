#pragma once
// The environment a test pretends to run in: the process env is never
// touched (a developer's own CASCADE_* variables cannot change a test).
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "core/config_reader.h"

namespace cascade::testing {

// Exactly `vars`, nothing else.
inline EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    if (auto it = vars.find(name); it != vars.end()) return it->second;
    return std::nullopt;
  };
}

// Nothing set.
inline EnvLookup no_env() { return env_of({}); }

}  // namespace cascade::testing
