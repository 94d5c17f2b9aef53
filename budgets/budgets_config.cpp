#include "budgets/budgets_config.h"

namespace cascade {
namespace {

// budgets.<tenant>: {daily_usd, monthly_usd, soft_percent, models: {<id>: limits}, tags: {<tag>: limits}}.
Result<void> read_budget_limits(const YAML::Node& node, ConfigReader& r, BudgetLimitsConfig& out,
                                const std::string& path) {
  r.read(node, "daily_usd", out.daily_usd, path);
  r.read(node, "monthly_usd", out.monthly_usd, path);
  r.read(node, "soft_percent", out.soft_percent, path);
  if (auto ok = r.status(); !ok) return ok;
  if (!(out.daily_usd >= 0 && out.monthly_usd >= 0))
    return fail(ErrorCode::invalid_request, "config '" + path + "': limits must be >= 0");
  if (!(out.soft_percent > 0 && out.soft_percent <= 100))
    return fail(ErrorCode::invalid_request, "config '" + path + "': soft_percent must be in (0, 100]");
  return {};
}

Result<void> read_budgets(const YAML::Node& node, ConfigReader& r, std::map<std::string, TenantBudgetConfig>& out) {
  if (!node.IsDefined() || node.IsNull()) return {};
  if (!node.IsMap()) return fail(ErrorCode::invalid_request, "config key 'budgets' must be a mapping");
  for (const auto& kv : node) {
    const std::string tenant = kv.first.as<std::string>();
    const std::string path = "budgets." + tenant;
    if (!kv.second.IsMap()) return fail(ErrorCode::invalid_request, "config key '" + path + "' must be a mapping");
    for (const auto& field : kv.second) {
      const std::string key = field.first.as<std::string>();
      if (key != "daily_usd" && key != "monthly_usd" && key != "soft_percent" && key != "models" && key != "tags")
        return fail(ErrorCode::invalid_request, "config '" + path + "': unknown key '" + key + "'");
    }
    TenantBudgetConfig budget;
    if (auto ok = read_budget_limits(kv.second, r, budget.limits, path); !ok) return ok;
    for (const char* group : {"models", "tags"}) {
      const YAML::Node scoped = kv.second[group];
      if (!scoped.IsDefined() || scoped.IsNull()) continue;
      if (!scoped.IsMap())
        return fail(ErrorCode::invalid_request, "config key '" + path + "." + group + "' must be a mapping");
      auto& into = std::string_view(group) == "models" ? budget.models : budget.tags;
      for (const auto& item : scoped) {
        const std::string name = item.first.as<std::string>();
        BudgetLimitsConfig limits;
        // A scoped budget's soft share defaults to its tenant's.
        limits.soft_percent = budget.limits.soft_percent;
        if (auto ok = read_budget_limits(item.second, r, limits, path + "." + group + "." + name); !ok) return ok;
        into[name] = limits;
      }
    }
    out[tenant] = std::move(budget);
  }
  return {};
}

}  // namespace

Result<std::map<std::string, TenantBudgetConfig>> read_budgets_config(ConfigReader& r) {
  std::map<std::string, TenantBudgetConfig> budgets;
  if (auto ok = read_budgets(r.root()["budgets"], r, budgets); !ok) return std::unexpected(ok.error());
  if (auto ok = r.status(); !ok) return std::unexpected(ok.error());
  return budgets;
}

}  // namespace cascade
