#pragma once
// state.* of cascade.yaml: the worker's RocksDB state store and its
// replication through the cache changelog (docs/state.md).
#include <cstdint>
#include <string>

#include "core/config_reader.h"
#include "core/result.h"

namespace cascade {

struct StateConfig {
  std::string dir = "./data/state";
  std::uint64_t max_bytes = std::uint64_t{1} << 30;  // cache entries beyond are evicted, oldest first
  std::int64_t completed_ttl_s = 7 * 24 * 3600;
  std::int64_t responses_ttl_s = 24 * 3600;
  std::int64_t embeddings_ttl_s = 30 * 24 * 3600;
  std::int64_t vectors_ttl_s = 24 * 3600;
  int maintenance_interval_ms = 60000;
  bool replicated = true;  // publish to and apply the cache changelog
  int restore_timeout_ms = 120000;
};

[[nodiscard]] Result<StateConfig> read_state_config(ConfigReader& reader);

}  // namespace cascade
