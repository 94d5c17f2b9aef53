#pragma once
// kafka.* of cascade.yaml: the brokers, the latency settings every client
// uses, and Cascade's topic and group names. Owned and checked here.
#include <string>
#include <utility>
#include <vector>

#include "core/config_reader.h"
#include "core/result.h"

namespace cascade {

struct KafkaConfig {
  std::string bootstrap;  // empty = embedded mock cluster in-process
  int partitions = 16;
  int fetch_wait_max_ms = 5;
  int linger_ms = 2;
  std::string worker_group = "cascade-workers";
  std::string ledger_group = "cascade-ledger";
  std::string extra;  // "k=v;k=v" extra librdkafka properties
  std::string requests_topic = "cascade.requests";
  std::string ledger_topic = "cascade.ledger";
  std::string dlq_topic = "cascade.dlq";
  std::string replies_topic = "cascade.replies";  // default reply_to of the CLI clients
  // Compacted changelog of the state stores (docs/state.md).
  std::string cache_changelog_topic = "cascade.cache-changelog";
  // Budgets (compacted; docs/ledger.md): definitions set at run time, the
  // spend state the ledger publishes for every worker, and budget alerts.
  std::string budgets_topic = "cascade.budgets";
  std::string spend_topic = "cascade.spend";
  std::string alerts_topic = "cascade.alerts";
  // Quality samples: LLM-as-judge grades of cheaper tiers' answers (docs/routing.md).
  std::string quality_topic = "cascade.quality";
  // The closed loop's tuned tier cuts per tenant and policy (compacted;
  // docs/routing.md, "Closed loop"): published by the ledger, applied by workers.
  std::string router_updates_topic = "cascade.router-updates";
  // Cancels of requests (docs/events.md, "Cancel event"; key = request id):
  // published by gateways and apps, followed whole by every worker.
  std::string cancels_topic = "cascade.cancels";
  std::string api_keys_topic = "cascade.api-keys";

  bool embedded() const { return bootstrap.empty(); }
  // Parsed `extra` as key/value pairs.
  std::vector<std::pair<std::string, std::string>> extra_properties() const;
};

// kafka.*: invalid_request naming the key.
[[nodiscard]] Result<KafkaConfig> read_kafka_config(ConfigReader& reader);

}  // namespace cascade
