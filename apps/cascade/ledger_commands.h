#pragma once
// The ledger's subcommands once their configuration is loaded: `cascade
// ledger`, `cascade report`, `cascade budget set|show` (docs/ledger.md).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "apps/cascade/commands.h"
#include "budgets/budgets.h"
#include "config/config.h"

namespace cascade::cli {

int ledger_service(const Config& config);
int savings_report(const Config& config, const ReportOptions& options);
int budget_set(const Config& config, const BudgetCommandOptions& options);
int budget_show(const Config& config, const BudgetCommandOptions& options);
int tuning_show(const Config& config, const TuningCommandOptions& options);
int tuning_reset(const Config& config, const TuningCommandOptions& options);

// The run-time budgets (kafka.topics.budgets) over the configured ones, and
// optionally the spend state (kafka.topics.spend), read to their current
// ends from config.kafka.bootstrap (`cascade budget`, `cascade mcp`'s set_budget).
[[nodiscard]] Result<std::unique_ptr<BudgetBook>> read_budget_book(const Config& config, bool with_spend);

// `--since`: "7d", "24h", "30m" (back from now_ms) or "YYYY-MM-DD" (midnight
// UTC); the start in ms since the epoch, or nullopt when it is none of these.
std::optional<std::int64_t> parse_since(std::string_view text, std::int64_t now_ms);

}  // namespace cascade::cli
