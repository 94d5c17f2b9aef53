#pragma once
// budgets.<tenant> of cascade.yaml: each tenant's USD limits, and optional
// limits per model and per tag (docs/ledger.md, "Budgets").
#include <map>
#include <string>

#include "core/config_reader.h"
#include "core/result.h"

namespace cascade {

// USD limits of one budget; 0 = no limit for that period. Over soft_percent
// of a limit a worker downgrades; at the limit it refuses (docs/ledger.md).
struct BudgetLimitsConfig {
  double daily_usd = 0;
  double monthly_usd = 0;
  double soft_percent = 80;
};

// budgets.<tenant>: the tenant's limits, and optional limits per model and per tag.
struct TenantBudgetConfig {
  BudgetLimitsConfig limits;
  std::map<std::string, BudgetLimitsConfig> models;
  std::map<std::string, BudgetLimitsConfig> tags;
};

// budgets.*, by tenant: invalid_request naming the key (an unknown key, a
// negative limit, soft_percent outside (0, 100]).
[[nodiscard]] Result<std::map<std::string, TenantBudgetConfig>> read_budgets_config(ConfigReader& reader);

}  // namespace cascade
