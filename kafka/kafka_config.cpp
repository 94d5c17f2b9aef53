#include "kafka/kafka_config.h"

#include <sstream>

namespace cascade {

Result<KafkaConfig> read_kafka_config(ConfigReader& r) {
  KafkaConfig c;
  const auto k = r.root()["kafka"];
  r.read(k, "bootstrap", c.bootstrap, "kafka");
  r.read(k, "partitions", c.partitions, "kafka");
  r.read(k, "fetch_wait_max_ms", c.fetch_wait_max_ms, "kafka");
  r.read(k, "linger_ms", c.linger_ms, "kafka");
  r.read(k, "worker_group", c.worker_group, "kafka");
  r.read(k, "ledger_group", c.ledger_group, "kafka");
  r.read(k, "extra", c.extra, "kafka");
  if (!r.failed()) {
    const auto topics = k["topics"];
    r.read(topics, "requests", c.requests_topic, "kafka.topics");
    r.read(topics, "ledger", c.ledger_topic, "kafka.topics");
    r.read(topics, "dlq", c.dlq_topic, "kafka.topics");
    r.read(topics, "replies", c.replies_topic, "kafka.topics");
    r.read(topics, "cache_changelog", c.cache_changelog_topic, "kafka.topics");
    r.read(topics, "budgets", c.budgets_topic, "kafka.topics");
    r.read(topics, "spend", c.spend_topic, "kafka.topics");
    r.read(topics, "alerts", c.alerts_topic, "kafka.topics");
    r.read(topics, "quality", c.quality_topic, "kafka.topics");
    r.read(topics, "router_updates", c.router_updates_topic, "kafka.topics");
    r.read(topics, "cancels", c.cancels_topic, "kafka.topics");
    r.read(topics, "api_keys", c.api_keys_topic, "kafka.topics");
  }
  if (auto ok = r.status(); !ok) return std::unexpected(ok.error());
  if (c.partitions < 1) return fail(ErrorCode::invalid_request, "kafka.partitions must be >= 1");
  return c;
}

std::vector<std::pair<std::string, std::string>> KafkaConfig::extra_properties() const {
  std::vector<std::pair<std::string, std::string>> out;
  std::stringstream ss(extra);
  std::string item;
  while (std::getline(ss, item, ';')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) continue;
    // "a=1; b=2" is how people write lists: spaces are not part of a property.
    const std::string key(trim_space(std::string_view(item).substr(0, eq)));
    if (key.empty()) continue;
    out.emplace_back(key, std::string(trim_space(std::string_view(item).substr(eq + 1))));
  }
  return out;
}

}  // namespace cascade
