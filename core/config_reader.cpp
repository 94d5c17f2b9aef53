#include "core/config_reader.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace cascade {
namespace {

// Overlays `over` onto `base`: maps merge key by key, everything else replaces.
// `base` may be undefined (a key only the user file has, e.g. a new provider).
YAML::Node merge(const YAML::Node& base, const YAML::Node& over) {
  if (!base.IsDefined()) return YAML::Clone(over);
  if (!over.IsDefined() || over.IsNull()) return YAML::Clone(base);
  if (!base.IsMap() || !over.IsMap()) return YAML::Clone(over);
  YAML::Node out = YAML::Clone(base);
  for (const auto& kv : over) {
    const auto key = kv.first.as<std::string>();
    out[key] = merge(base[key], kv.second);
  }
  return out;
}

// Replaces every scalar leaf whose CASCADE_* variable is set.
void apply_env(YAML::Node node, const std::string& path, const EnvLookup& env) {
  if (node.IsMap()) {
    for (auto kv : node) {
      const auto key = kv.first.as<std::string>();
      apply_env(kv.second, path.empty() ? key : path + "." + key, env);
    }
    return;
  }
  if (path.empty()) return;
  if (auto value = env(env_name_for(path))) node = *value;
}

}  // namespace

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    if (const char* v = std::getenv(name.c_str())) return std::string(v);
    return std::nullopt;
  };
}

std::string env_name_for(std::string_view key_path) {
  std::string out = "CASCADE_";
  for (char c : key_path) {
    out.push_back(c == '.' || c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  return out;
}

Result<YAML::Node> merged_config_tree(std::string_view defaults_yaml, const std::string& yaml_file,
                                      const EnvLookup& env) {
  try {
    YAML::Node root = YAML::Load(std::string(defaults_yaml));
    if (!yaml_file.empty()) {
      std::error_code ec;
      // An ifstream opens a directory fine and reads nothing: say so instead
      // of silently running on defaults.
      if (std::filesystem::is_directory(yaml_file, ec))
        return fail(ErrorCode::invalid_request, "cannot read config file " + yaml_file + ": is a directory");
      std::ifstream in(yaml_file);
      if (!in) return fail(ErrorCode::invalid_request, "cannot read config file " + yaml_file);
      std::stringstream buf;
      buf << in.rdbuf();
      root = merge(root, YAML::Load(buf.str()));
      if (!root.IsMap())
        return fail(ErrorCode::invalid_request, "config file " + yaml_file + " must be a mapping of keys");
    }
    apply_env(root, "", env);
    return root;
  } catch (const YAML::Exception& e) {
    const std::string where = yaml_file.empty() ? std::string("built-in defaults") : yaml_file;
    return fail(ErrorCode::invalid_request, "invalid YAML in " + where + ": " + e.what());
  }
}

Result<void> ConfigReader::only_keys(const YAML::Node& node, std::initializer_list<std::string_view> keys,
                                     const std::string& path) const {
  if (!node.IsMap()) return fail(ErrorCode::invalid_request, "config key '" + path + "' must be a mapping");
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    if (std::find(keys.begin(), keys.end(), key) == keys.end())
      return fail(ErrorCode::invalid_request, "config '" + path + "': unknown key '" + key + "'");
  }
  return {};
}

Result<std::string> ConfigReader::scalar_text(const YAML::Node& parent, const char* key,
                                              const std::string& path) const {
  const YAML::Node n = parent[key];
  if (!n.IsDefined() || n.IsNull()) return std::string();
  if (!n.IsScalar()) return fail(ErrorCode::invalid_request, "config key '" + path + "." + key + "' must be a string");
  return n.Scalar();
}

Result<void> ConfigReader::status() const {
  if (error_.empty()) return {};
  return fail(ErrorCode::invalid_request, error_);
}

}  // namespace cascade
