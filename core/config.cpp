#include "core/config.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace cascade {
namespace {

// Overlays `over` onto `base`: maps merge key by key, everything else replaces.
YAML::Node merge(const YAML::Node& base, const YAML::Node& over) {
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

template <class T>
void read(const YAML::Node& parent, const char* key, T& out, const std::string& path,
          std::string& error) {
  if (!error.empty()) return;
  const YAML::Node n = parent[key];
  if (!n.IsDefined() || n.IsNull()) return;
  try {
    out = n.as<T>();
  } catch (const YAML::Exception&) {
    error = "config key '" + path + "." + key + "' has the wrong type";
  }
}

void read_thresholds(const YAML::Node& node, TierThresholds& t, const std::string& path,
                     std::string& error) {
  read(node, "small_max", t.small_max, path, error);
  read(node, "medium_max", t.medium_max, path, error);
  if (error.empty() && !(0 <= t.small_max && t.small_max <= t.medium_max && t.medium_max <= 1))
    error = "config '" + path + "': need 0 <= small_max <= medium_max <= 1";
}

}  // namespace

std::vector<std::pair<std::string, std::string>> KafkaConfig::extra_properties() const {
  std::vector<std::pair<std::string, std::string>> out;
  std::stringstream ss(extra);
  std::string item;
  while (std::getline(ss, item, ';')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  return out;
}

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

Result<Config> load_config(const std::string& yaml_file, const EnvLookup& env) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(default_config_yaml()));
    if (!yaml_file.empty()) {
      std::ifstream in(yaml_file);
      if (!in) return fail(ErrorCode::invalid_request, "cannot read config file " + yaml_file);
      std::stringstream buf;
      buf << in.rdbuf();
      root = merge(root, YAML::Load(buf.str()));
    }
  } catch (const YAML::Exception& e) {
    return fail(ErrorCode::invalid_request, std::string("invalid YAML: ") + e.what());
  }
  apply_env(root, "", env);

  Config c;
  std::string err;
  const auto k = root["kafka"];
  read(k, "bootstrap", c.kafka.bootstrap, "kafka", err);
  read(k, "partitions", c.kafka.partitions, "kafka", err);
  read(k, "fetch_wait_max_ms", c.kafka.fetch_wait_max_ms, "kafka", err);
  read(k, "linger_ms", c.kafka.linger_ms, "kafka", err);
  read(k, "worker_group", c.kafka.worker_group, "kafka", err);
  read(k, "ledger_group", c.kafka.ledger_group, "kafka", err);
  read(k, "extra", c.kafka.extra, "kafka", err);
  read(k["topics"], "requests", c.kafka.requests_topic, "kafka.topics", err);
  read(k["topics"], "ledger", c.kafka.ledger_topic, "kafka.topics", err);
  read(k["topics"], "dlq", c.kafka.dlq_topic, "kafka.topics", err);
  read(k["topics"], "replies", c.kafka.replies_topic, "kafka.topics", err);

  const auto w = root["worker"];
  read(w, "threads", c.worker.threads, "worker", err);
  read(w, "max_in_flight", c.worker.max_in_flight, "worker", err);
  read(w, "resume_fraction", c.worker.resume_fraction, "worker", err);
  read(w, "commit_interval_ms", c.worker.commit_interval_ms, "worker", err);

  read(root["limits"], "max_event_bytes", c.limits.max_event_bytes, "limits", err);
  read(root["limits"], "default_max_tokens", c.limits.default_max_tokens, "limits", err);
  read(root["state"], "dir", c.state.dir, "state", err);
  read(root["catalog"], "file", c.catalog.file, "catalog", err);
  read(root["catalog"], "baseline_model", c.catalog.baseline_model, "catalog", err);

  const auto r = root["router"];
  read_thresholds(r["balanced"], c.router.balanced, "router.balanced", err);
  read_thresholds(r["cost"], c.router.cost, "router.cost", err);
  read_thresholds(r["quality"], c.router.quality, "router.quality", err);
  read_thresholds(r["speed"], c.router.speed, "router.speed", err);

  if (const auto p = root["providers"]; p.IsMap()) {
    for (const auto& kv : p) {
      ProviderConfig pc;
      pc.name = kv.first.as<std::string>();
      const std::string path = "providers." + pc.name;
      read(kv.second, "kind", pc.kind, path, err);
      read(kv.second, "base_url", pc.base_url, path, err);
      read(kv.second, "api_key_env", pc.api_key_env, path, err);
      read(kv.second, "connect_timeout_ms", pc.connect_timeout_ms, path, err);
      read(kv.second, "request_timeout_ms", pc.request_timeout_ms, path, err);
      read(kv.second, "headers", pc.headers, path, err);
      c.providers[pc.name] = std::move(pc);
    }
  }
  // The official OpenAI SDKs honour OPENAI_BASE_URL; so do we, unless the
  // Cascade-specific variable is set.
  if (auto it = c.providers.find("openai"); it != c.providers.end()) {
    if (!env(env_name_for("providers.openai.base_url"))) {
      if (auto url = env("OPENAI_BASE_URL"); url && !url->empty()) it->second.base_url = *url;
    }
  }

  read(root["ledger"], "metrics_listen", c.ledger.metrics_listen, "ledger", err);
  read(root["log"], "level", c.log.level, "log", err);

  if (!err.empty()) return fail(ErrorCode::invalid_request, err);
  if (c.kafka.partitions < 1) return fail(ErrorCode::invalid_request, "kafka.partitions must be >= 1");
  if (c.worker.threads < 1) return fail(ErrorCode::invalid_request, "worker.threads must be >= 1");
  if (c.worker.max_in_flight < 1) return fail(ErrorCode::invalid_request, "worker.max_in_flight must be >= 1");
  return c;
}

}  // namespace cascade
