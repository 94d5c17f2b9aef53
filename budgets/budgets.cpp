#include "budgets/budgets.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <mutex>

namespace cascade {

using json = nlohmann::json;

namespace {

constexpr int kRecordVersion = 1;

std::string money(double usd) {
  char buf[64];
  std::snprintf(buf, sizeof buf, usd != 0 && std::fabs(usd) < 0.01 ? "$%.6f" : "$%.2f", usd);
  return buf;
}

std::optional<json> parse_object(std::string_view text) {
  json value = json::parse(text, nullptr, false);
  if (value.is_discarded() || !value.is_object()) return std::nullopt;
  return value;
}

// Keys are JSON arrays of strings: unambiguous for any tenant name, readable in tools.
Result<std::vector<std::string>> decode_key(std::string_view key, std::size_t parts, std::string_view what) {
  json value = json::parse(key, nullptr, false);
  if (value.is_discarded() || !value.is_array() || value.size() != parts ||
      !std::all_of(value.begin(), value.end(), [](const json& e) { return e.is_string(); }))
    return fail(ErrorCode::invalid_request, std::string(what) + " key is not a JSON array of " +
                                                std::to_string(parts) + " strings");
  return value.get<std::vector<std::string>>();
}

Result<double> read_usd(const json& object, const char* key, double fallback) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < 0)
    return fail(ErrorCode::invalid_request, std::string("budget record: '") + key + "' must be a number >= 0");
  return it->get<double>();
}

}  // namespace

// ---- periods ---------------------------------------------------------------

std::string_view to_string(BudgetPeriod period) { return period == BudgetPeriod::daily ? "daily" : "monthly"; }

std::string period_id(BudgetPeriod period, std::int64_t ts_ms) {
  std::string day = utc_day(ts_ms);
  if (period == BudgetPeriod::monthly) day.resize(7);
  return day;
}

// ---- scopes ----------------------------------------------------------------

std::string model_scope(std::string_view model) { return "model:" + std::string(model); }
std::string tag_scope(std::string_view tag) { return "tag:" + std::string(tag); }

std::string describe_scope(std::string_view scope) {
  if (scope.empty()) return "tenant";
  if (scope.starts_with("model:")) return "model " + std::string(scope.substr(6));
  if (scope.starts_with("tag:")) return "tag " + std::string(scope.substr(4));
  return std::string(scope);
}

bool valid_scope(std::string_view scope) {
  return scope.empty() || (scope.starts_with("model:") && scope.size() > 6) ||
         (scope.starts_with("tag:") && scope.size() > 4);
}

// ---- budgets ---------------------------------------------------------------

std::vector<Budget> budgets_from_config(const Config& config) {
  std::vector<Budget> out;
  const auto limits_of = [](const BudgetLimitsConfig& c) {
    return BudgetLimits{c.daily_usd, c.monthly_usd, c.soft_percent};
  };
  for (const auto& [tenant, budget] : config.budgets) {
    if (budget.limits.daily_usd > 0 || budget.limits.monthly_usd > 0)
      out.push_back({tenant, "", limits_of(budget.limits)});
    for (const auto& [model, limits] : budget.models) out.push_back({tenant, model_scope(model), limits_of(limits)});
    for (const auto& [tag, limits] : budget.tags) out.push_back({tenant, tag_scope(tag), limits_of(limits)});
  }
  return out;
}

std::string budget_record_key(std::string_view tenant, std::string_view scope) {
  return json::array({tenant, scope}).dump();
}

std::string encode_budget_record(const Budget& budget, std::int64_t ts_ms) {
  return json{{"v", kRecordVersion},
              {"tenant", budget.tenant},
              {"scope", budget.scope},
              {"daily_usd", budget.limits.daily_usd},
              {"monthly_usd", budget.limits.monthly_usd},
              {"soft_percent", budget.limits.soft_percent},
              {"ts", ts_ms}}
      .dump();
}

Result<Budget> decode_budget_record(std::string_view value) {
  auto object = parse_object(value);
  if (!object) return fail(ErrorCode::invalid_request, "budget record is not a JSON object");
  Budget budget;
  const auto tenant = object->find("tenant");
  const auto scope = object->find("scope");
  if (tenant == object->end() || !tenant->is_string() || tenant->get<std::string>().empty())
    return fail(ErrorCode::invalid_request, "budget record: 'tenant' must be a non-empty string");
  budget.tenant = tenant->get<std::string>();
  if (scope != object->end() && !scope->is_null()) {
    if (!scope->is_string()) return fail(ErrorCode::invalid_request, "budget record: 'scope' must be a string");
    budget.scope = scope->get<std::string>();
  }
  if (!valid_scope(budget.scope))
    return fail(ErrorCode::invalid_request, "budget record: scope '" + budget.scope + "' is not '', model:<id> or tag:<tag>");
  auto daily = read_usd(*object, "daily_usd", 0);
  if (!daily) return std::unexpected(daily.error());
  auto monthly = read_usd(*object, "monthly_usd", 0);
  if (!monthly) return std::unexpected(monthly.error());
  auto soft = read_usd(*object, "soft_percent", 80);
  if (!soft) return std::unexpected(soft.error());
  if (!(*soft > 0 && *soft <= 100))
    return fail(ErrorCode::invalid_request, "budget record: 'soft_percent' must be in (0, 100]");
  budget.limits = {*daily, *monthly, *soft};
  return budget;
}

Result<std::pair<std::string, std::string>> decode_budget_key(std::string_view key) {
  auto parts = decode_key(key, 2, "budget");
  if (!parts) return std::unexpected(parts.error());
  return std::pair{(*parts)[0], (*parts)[1]};
}

// ---- spend state -----------------------------------------------------------

std::string spend_record_key(std::string_view tenant, std::string_view scope, BudgetPeriod period) {
  return json::array({tenant, scope, to_string(period)}).dump();
}

std::string encode_spend_record(const SpendRecord& r) {
  return json{{"v", kRecordVersion},
              {"tenant", r.tenant},
              {"scope", r.scope},
              {"period", to_string(r.period)},
              {"period_id", r.period_id},
              {"spend_usd", r.spend_usd},
              {"requests", r.requests},
              {"ts", r.updated_ms}}
      .dump();
}

Result<SpendRecord> decode_spend_record(std::string_view value) {
  auto object = parse_object(value);
  if (!object) return fail(ErrorCode::invalid_request, "spend record is not a JSON object");
  SpendRecord r;
  try {
    r.tenant = object->at("tenant").get<std::string>();
    r.scope = object->at("scope").get<std::string>();
    const std::string period = object->at("period").get<std::string>();
    if (period == "daily") r.period = BudgetPeriod::daily;
    else if (period == "monthly") r.period = BudgetPeriod::monthly;
    else return fail(ErrorCode::invalid_request, "spend record: unknown period '" + period + "'");
    r.period_id = object->at("period_id").get<std::string>();
    r.spend_usd = object->at("spend_usd").get<double>();
    r.requests = object->value("requests", std::uint64_t{0});
    r.updated_ms = object->value("ts", std::int64_t{0});
  } catch (const json::exception& e) {
    return fail(ErrorCode::invalid_request, std::string("spend record: ") + e.what());
  }
  if (r.tenant.empty() || !valid_scope(r.scope) || !std::isfinite(r.spend_usd))
    return fail(ErrorCode::invalid_request, "spend record: bad tenant, scope or amount");
  return r;
}

std::string encode_spend_heartbeat(std::int64_t ts_ms) {
  return json{{"v", kRecordVersion}, {"type", "heartbeat"}, {"ts", ts_ms}}.dump();
}

std::optional<std::int64_t> decode_spend_heartbeat(std::string_view value) {
  auto object = parse_object(value);
  if (!object) return std::nullopt;
  const auto ts = object->find("ts");
  if (ts == object->end() || !ts->is_number_integer()) return std::nullopt;
  return ts->get<std::int64_t>();
}

// ---- checking --------------------------------------------------------------

std::string_view to_string(BudgetVerdict verdict) {
  switch (verdict) {
    case BudgetVerdict::ok: return "ok";
    case BudgetVerdict::soft_exceeded: return "soft_exceeded";
    case BudgetVerdict::hard_exceeded: return "hard_exceeded";
  }
  return "ok";
}

BudgetBook::BudgetBook(std::vector<Budget> configured) {
  for (auto& b : configured) configured_[{std::move(b.tenant), std::move(b.scope)}] = b.limits;
}

Result<void> BudgetBook::apply_budget_record(std::string_view key, const std::optional<std::string_view>& value) {
  if (!value) {
    auto parts = decode_budget_key(key);
    if (!parts) return std::unexpected(parts.error());
    remove_runtime_budget(parts->first, parts->second);
    return {};
  }
  auto budget = decode_budget_record(*value);
  if (!budget) return std::unexpected(budget.error());
  set_runtime_budget(*budget);
  return {};
}

Result<void> BudgetBook::apply_spend_record(std::string_view key, const std::optional<std::string_view>& value) {
  if (key == kSpendHeartbeatKey) {
    if (!value) return {};
    auto ts = decode_spend_heartbeat(*value);
    if (!ts) return fail(ErrorCode::invalid_request, "spend heartbeat without a 'ts'");
    std::int64_t seen = ledger_seen_ms_.load();
    while (*ts > seen && !ledger_seen_ms_.compare_exchange_weak(seen, *ts)) {}
    return {};
  }
  if (!value) return {};  // a compacted-away key: nothing to forget, the next record replaces it
  auto record = decode_spend_record(*value);
  if (!record) return std::unexpected(record.error());
  set_spend(*record);
  return {};
}

void BudgetBook::set_runtime_budget(const Budget& budget) {
  std::unique_lock lock(mu_);
  runtime_[{budget.tenant, budget.scope}] = budget.limits;
}

void BudgetBook::remove_runtime_budget(std::string_view tenant, std::string_view scope) {
  std::unique_lock lock(mu_);
  runtime_.erase(Key{std::string(tenant), std::string(scope)});
}

void BudgetBook::set_spend(const SpendRecord& record) {
  {
    std::unique_lock lock(mu_);
    auto& slot = spend_[{record.tenant, record.scope, record.period}];
    // Records of one key arrive in order; a late record of an older period
    // (published before a day rolled over) never replaces a newer one.
    if (record.period_id >= slot.period_id) slot = {record.period_id, record.spend_usd};
  }
  std::int64_t seen = ledger_seen_ms_.load();
  while (record.updated_ms > seen && !ledger_seen_ms_.compare_exchange_weak(seen, record.updated_ms)) {}
}

const BudgetLimits* BudgetBook::limits_locked(const Key& key) const {
  if (auto it = runtime_.find(key); it != runtime_.end()) return &it->second;
  if (auto it = configured_.find(key); it != configured_.end()) return &it->second;
  return nullptr;
}

std::optional<BudgetLimits> BudgetBook::limits(std::string_view tenant, std::string_view scope) const {
  std::shared_lock lock(mu_);
  const BudgetLimits* l = limits_locked(Key{std::string(tenant), std::string(scope)});
  return l ? std::optional(*l) : std::nullopt;
}

std::optional<BudgetLimits> BudgetBook::configured_limits(std::string_view tenant, std::string_view scope) const {
  std::shared_lock lock(mu_);
  const auto it = configured_.find(Key{std::string(tenant), std::string(scope)});
  return it != configured_.end() ? std::optional(it->second) : std::nullopt;
}

double BudgetBook::spend(std::string_view tenant, std::string_view scope, BudgetPeriod period,
                         std::int64_t now_ms) const {
  const std::string current = period_id(period, now_ms);
  std::shared_lock lock(mu_);
  const auto it = spend_.find(std::tuple{std::string(tenant), std::string(scope), period});
  if (it == spend_.end() || it->second.period_id < current) return 0;
  return it->second.usd;
}

BudgetDecision BudgetBook::check(std::string_view tenant, std::string_view model, std::span<const std::string> tags,
                                 double estimated_cost_usd, std::int64_t now_ms,
                                 const PendingSpend* pending) const {
  BudgetDecision decision;
  const std::int64_t seen = ledger_seen_ms_.load();
  decision.state_age_ms = seen > 0 ? std::max<std::int64_t>(0, now_ms - seen) : -1;
  const double estimate = std::max(estimated_cost_usd, 0.0);

  std::vector<std::string> scopes{""};
  if (!model.empty()) scopes.push_back(model_scope(model));
  for (const auto& tag : tags) scopes.push_back(tag_scope(tag));

  const std::string day = period_id(BudgetPeriod::daily, now_ms);
  const std::string month = period_id(BudgetPeriod::monthly, now_ms);
  double binding_remaining = std::numeric_limits<double>::infinity();
  std::shared_lock lock(mu_);
  for (const auto& scope : scopes) {
    const BudgetLimits* limits = limits_locked(Key{std::string(tenant), scope});
    if (!limits) continue;
    for (BudgetPeriod period : kBudgetPeriods) {
      const double limit = limits->limit(period);
      if (limit <= 0) continue;
      double spent = 0;
      if (auto it = spend_.find(std::tuple{std::string(tenant), scope, period}); it != spend_.end()) {
        if (it->second.period_id >= (period == BudgetPeriod::daily ? day : month)) spent = it->second.usd;
      }
      const double in_flight = pending ? pending->amount(tenant, scope) : 0.0;
      const double remaining = limit - spent - in_flight;
      const double after = spent + in_flight + estimate;
      // Spend is a sum of many doubles: what reaches a limit only by rounding noise is at it, not over.
      const double slack = 1e-9 * std::max(limit, 1.0);
      BudgetVerdict verdict = BudgetVerdict::ok;
      if (after > limit + slack) verdict = BudgetVerdict::hard_exceeded;
      else if (after > limit * limits->soft_percent / 100.0 + slack) verdict = BudgetVerdict::soft_exceeded;
      // The binding limit: the worst verdict, then the least left.
      const bool binds = verdict > decision.verdict ||
                         (verdict == decision.verdict && verdict != BudgetVerdict::ok && remaining < binding_remaining);
      decision.remaining_usd = std::min(decision.remaining_usd, remaining);
      if (!binds) continue;
      binding_remaining = remaining;
      decision.verdict = verdict;
      decision.scope = scope;
      decision.period = period;
      decision.reason = std::string(verdict == BudgetVerdict::hard_exceeded ? "budget exceeded: " : "budget nearly spent: ") +
                        std::string(tenant) + " " + describe_scope(scope) + " " + std::string(to_string(period)) +
                        " limit " + money(limit) + ", spent " + money(spent) +
                        (in_flight > 0 ? " + pending " + money(in_flight) : std::string()) + " + estimated " +
                        money(estimate);
      if (verdict == BudgetVerdict::soft_exceeded) {
        char pct[32];
        std::snprintf(pct, sizeof pct, " > %g%% of the limit", limits->soft_percent);
        decision.reason += pct;
      }
    }
  }
  return decision;
}

bool BudgetBook::has_budgets(std::string_view tenant) const {
  std::shared_lock lock(mu_);
  for (const auto* table : {&configured_, &runtime_}) {
    auto it = table->lower_bound(Key{std::string(tenant), std::string()});
    if (it != table->end() && it->first.first == tenant) return true;
  }
  return false;
}

// ---- PendingSpend ------------------------------------------------------------

namespace {
std::string pending_key(std::string_view tenant, std::string_view scope) {
  std::string key;
  key.reserve(tenant.size() + 1 + scope.size());
  key.append(tenant).push_back('\0');
  key.append(scope);
  return key;
}
}  // namespace

void PendingSpend::add(const std::vector<std::string>& keys, double usd) {
  for (const auto& key : keys) {
    Sum& sum = sums_[key];
    sum.usd += usd;
    sum.entries++;
  }
}

void PendingSpend::remove(const std::vector<std::string>& keys, double usd) {
  for (const auto& key : keys) {
    auto it = sums_.find(key);
    if (it == sums_.end()) continue;
    if (--it->second.entries == 0) {
      sums_.erase(it);
    } else {
      it->second.usd -= usd;
    }
  }
}

std::uint64_t PendingSpend::reserve(std::string_view tenant, std::string_view model,
                                    std::span<const std::string> tags, double usd) {
  Reservation r;
  r.usd = std::max(usd, 0.0);
  r.keys.reserve(2 + tags.size());
  r.keys.push_back(pending_key(tenant, ""));
  if (!model.empty()) r.keys.push_back(pending_key(tenant, model_scope(model)));
  for (const auto& tag : tags) {
    std::string key = pending_key(tenant, tag_scope(tag));
    // A tag named twice is one budget, charged once.
    if (std::find(r.keys.begin(), r.keys.end(), key) == r.keys.end()) r.keys.push_back(std::move(key));
  }
  add(r.keys, r.usd);
  const std::uint64_t id = ++next_id_;
  reserved_.emplace(id, std::move(r));
  return id;
}

void PendingSpend::settle(std::uint64_t id, double actual_usd, std::int64_t now_ms) {
  auto it = reserved_.find(id);
  if (it == reserved_.end()) return;
  Reservation r = std::move(it->second);
  reserved_.erase(it);
  remove(r.keys, r.usd);
  actual_usd = std::max(actual_usd, 0.0);
  if (actual_usd <= 0) return;  // nothing was paid: nothing for the ledger to catch up with
  add(r.keys, actual_usd);
  settled_.push_back(Settled{now_ms, std::move(r.keys), actual_usd});
}

void PendingSpend::forget_included(std::int64_t ledger_seen_ms, std::int64_t now_ms, std::int64_t max_age_ms) {
  while (!settled_.empty()) {
    const Settled& front = settled_.front();
    const bool included = front.settled_ms + settle_ms_ <= ledger_seen_ms;
    const bool too_old = now_ms - front.settled_ms > max_age_ms;
    if (!included && !too_old) break;
    remove(front.keys, front.usd);
    settled_.pop_front();
  }
}

double PendingSpend::amount(std::string_view tenant, std::string_view scope) const {
  if (sums_.empty()) return 0;
  auto it = sums_.find(pending_key(tenant, scope));
  return it == sums_.end() ? 0.0 : it->second.usd;
}

SharedPendingSpend& BudgetBook::pending_spend(std::int64_t settle_ms) const {
  std::lock_guard lock(pending_mu_);
  if (!pending_) pending_ = std::make_unique<SharedPendingSpend>(settle_ms);
  return *pending_;
}

std::vector<BudgetStatus> BudgetBook::statuses(std::string_view tenant, std::int64_t now_ms) const {
  std::vector<BudgetStatus> out;
  std::map<Key, std::pair<BudgetLimits, bool>> merged;
  {
    std::shared_lock lock(mu_);
    for (const auto& [key, limits] : configured_) merged[key] = {limits, false};
    for (const auto& [key, limits] : runtime_) merged[key] = {limits, true};
  }
  for (const auto& [key, entry] : merged) {
    if (!tenant.empty() && key.first != tenant) continue;
    BudgetStatus status;
    status.budget = {key.first, key.second, entry.first};
    status.runtime = entry.second;
    status.spent_daily_usd = spend(key.first, key.second, BudgetPeriod::daily, now_ms);
    status.spent_monthly_usd = spend(key.first, key.second, BudgetPeriod::monthly, now_ms);
    out.push_back(std::move(status));
  }
  return out;
}

}  // namespace cascade
