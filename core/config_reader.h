#pragma once
// How Cascade reads its configuration: the mechanism every component's own
// config reader uses (kafka/kafka_config.h, router/router_config.h, ...;
// config/config.h puts them together). A key's value comes from, in order:
// the CASCADE_* environment variable named after its path
// (kafka.bootstrap -> CASCADE_KAFKA_BOOTSTRAP), the user's YAML file, the
// built-in defaults (config/cascade.yaml). Errors are values that name the
// key path; the first one is kept.
//
// Threading: a reader is used by one thread while the configuration loads.
#include <yaml-cpp/yaml.h>

#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/result.h"
#include "core/text.h"

namespace cascade {

// Reads an environment variable; injectable so tests need not touch the process env.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup process_env();

// The environment variable that overrides a key path ("state.dir" -> "CASCADE_STATE_DIR").
std::string env_name_for(std::string_view key_path);

// The built-in defaults overlaid by `yaml_file` (when not empty; maps merge
// key by key, everything else replaces), with every scalar leaf whose
// CASCADE_* variable is set replaced. invalid_request on an unreadable file
// or bad YAML.
[[nodiscard]] Result<YAML::Node> merged_config_tree(std::string_view defaults_yaml, const std::string& yaml_file,
                                                    const EnvLookup& env);

class ConfigReader {
 public:
  ConfigReader(YAML::Node root, EnvLookup env) : root_(std::move(root)), env_(std::move(env)) {}

  const YAML::Node& root() const { return root_; }
  const EnvLookup& env() const { return env_; }

  // Reads `key` of `parent` (the mapping at `path`) into `out` when it is
  // set: by its CASCADE_* variable even when the file leaves the key out (so
  // keys of e.g. a new provider stay overridable), else by the file. Lists
  // from the environment are comma-separated. A wrong type is an error.
  template <class T>
  void read(const YAML::Node& parent, const char* key, T& out, const std::string& path);

  // Every key of `node` is one of `keys` (a mapping, or absent).
  [[nodiscard]] Result<void> only_keys(const YAML::Node& node, std::initializer_list<std::string_view> keys,
                                       const std::string& path) const;
  // A scalar as text ("" when absent or null), or an error naming the key.
  [[nodiscard]] Result<std::string> scalar_text(const YAML::Node& parent, const char* key,
                                                const std::string& path) const;

  // The first error of the reads so far (invalid_request naming the key).
  [[nodiscard]] Result<void> status() const;
  bool failed() const { return !error_.empty(); }

 private:
  YAML::Node root_;
  EnvLookup env_;
  std::string error_;
};

template <class T>
void ConfigReader::read(const YAML::Node& parent, const char* key, T& out, const std::string& path) {
  if (!error_.empty()) return;
  const std::string key_path = path + "." + key;
  if (parent.IsDefined() && !parent.IsNull() && !parent.IsMap()) {
    error_ = "config key '" + path + "' must be a mapping";
    return;
  }
  const YAML::Node from_file = parent[key];
  std::optional<YAML::Node> from_env;
  if constexpr (std::is_arithmetic_v<T> || std::is_same_v<T, std::string>) {
    if (auto value = env_(env_name_for(key_path))) from_env = YAML::Node(*value);
  } else if constexpr (std::is_same_v<T, std::vector<std::string>> || std::is_same_v<T, std::vector<double>>) {
    if (auto value = env_(env_name_for(key_path))) {
      YAML::Node list(YAML::NodeType::Sequence);
      std::stringstream ss(*value);
      for (std::string item; std::getline(ss, item, ',');) {
        if (const auto t = trim_space(item); !t.empty()) list.push_back(std::string(t));
      }
      from_env = list;
    }
  }
  const YAML::Node& n = from_env ? *from_env : from_file;
  if (!n.IsDefined() || n.IsNull()) return;
  try {
    out = n.as<T>();
  } catch (const YAML::Exception&) {
    error_ = "config key '" + key_path + "' has the wrong type";
    if (from_env) error_ += " (from " + env_name_for(key_path) + ")";
  }
}

}  // namespace cascade
