#include "config/config.h"

namespace cascade {
namespace {

// Sets `into` from a section reader's result, or keeps its error.
template <class T>
bool take(Result<T> section, T& into, Error& error) {
  if (!section) {
    error = std::move(section.error());
    return false;
  }
  into = std::move(*section);
  return true;
}

Result<Config> read_sections(ConfigReader& r) {
  Config c;
  Error e;
  const bool ok = take(read_kafka_config(r), c.kafka, e) && take(read_worker_config(r), c.worker, e) &&
                  take(read_limits_config(r), c.limits, e) && take(read_tokenizer_config(r), c.tokenizer, e) &&
                  take(read_state_config(r), c.state, e) && take(read_cache_config(r), c.cache, e) &&
                  take(read_catalog_config(r), c.catalog, e) && take(read_router_config(r), c.router, e) &&
                  take(read_resilience_config(r), c.resilience, e) && take(read_providers_config(r), c.providers, e) &&
                  take(read_tenants_config(r, c.cache), c.tenants, e) && take(read_ledger_config(r), c.ledger, e) &&
                  take(read_budgets_config(r), c.budgets, e) && take(read_alerts_config(r), c.alerts, e) &&
                  take(read_quality_config(r), c.quality, e) && take(read_gateway_config(r), c.gateway, e) &&
                  take(read_mcp_config(r), c.mcp, e) && take(read_log_config(r), c.log, e);
  if (!ok) return std::unexpected(std::move(e));
  return c;
}

}  // namespace

const TenantLimits& Config::limits_for(const std::string& tenant) const {
  if (auto it = tenants.find(tenant); it != tenants.end()) return it->second;
  static const TenantLimits unlimited;
  auto it = tenants.find("default");
  return it != tenants.end() ? it->second : unlimited;
}

Result<Config> load_config(const std::string& yaml_file, const EnvLookup& env) {
  auto tree = merged_config_tree(default_config_yaml(), yaml_file, env);
  if (!tree) return std::unexpected(tree.error());
  ConfigReader reader(std::move(*tree), env);
  try {
    return read_sections(reader);
  } catch (const YAML::Exception& e) {
    const std::string where = yaml_file.empty() ? std::string("built-in defaults") : yaml_file;
    return fail(ErrorCode::invalid_request, "invalid YAML in " + where + ": " + e.what());
  }
}

}  // namespace cascade
