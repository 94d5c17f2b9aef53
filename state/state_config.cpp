#include "state/state_config.h"

namespace cascade {

Result<StateConfig> read_state_config(ConfigReader& r) {
  StateConfig c;
  const auto state = r.root()["state"];
  r.read(state, "dir", c.dir, "state");
  r.read(state, "max_bytes", c.max_bytes, "state");
  r.read(state, "completed_ttl_s", c.completed_ttl_s, "state");
  r.read(state, "responses_ttl_s", c.responses_ttl_s, "state");
  r.read(state, "embeddings_ttl_s", c.embeddings_ttl_s, "state");
  r.read(state, "vectors_ttl_s", c.vectors_ttl_s, "state");
  r.read(state, "maintenance_interval_ms", c.maintenance_interval_ms, "state");
  r.read(state, "replicated", c.replicated, "state");
  r.read(state, "restore_timeout_ms", c.restore_timeout_ms, "state");
  if (auto ok = r.status(); !ok) return std::unexpected(ok.error());
  return c;
}

}  // namespace cascade
