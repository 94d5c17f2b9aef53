#pragma once
// The environment a test pretends to run in: the process env is never
// touched (a developer's own CASCADE_* variables cannot change a test),
// except by UnsetEnv, for commands that read it themselves.
#include <cstdlib>
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

// For commands that read the process environment (the CLI's own loading):
// unsets a variable for the object's lifetime, so the developer's own
// CASCADE_* environment cannot change what the command sees.
class UnsetEnv {
 public:
  explicit UnsetEnv(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) saved_ = v;
    ::unsetenv(name);
  }
  ~UnsetEnv() {
    if (saved_) ::setenv(name_, saved_->c_str(), 1);
  }
  UnsetEnv(const UnsetEnv&) = delete;
  UnsetEnv& operator=(const UnsetEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> saved_;
};

}  // namespace cascade::testing
