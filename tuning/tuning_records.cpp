// Records of cascade.router-updates and the table a worker applies
// (tuning/tuning.h; schema in docs/events.md, "Router update").
#include <algorithm>

#include <nlohmann/json.hpp>

#include "tuning/tuning.h"

namespace cascade {
namespace {

nlohmann::json evidence_json(const CutEvidence& e) {
  return {{"samples", e.samples}, {"ratio", e.ratio}, {"lower", e.lower}, {"upper", e.upper}};
}

Result<double> number(const nlohmann::json& j, const char* object, const char* field) {
  const auto it = j.find(field);
  if (it == j.end() || !it->is_number())
    return fail(ErrorCode::invalid_request, std::string("router update: ") + object + field + " must be a number");
  return it->get<double>();
}

Result<TierCuts> cuts_of(const nlohmann::json& j, const char* field) {
  const auto it = j.find(field);
  if (it == j.end() || !it->is_object())
    return fail(ErrorCode::invalid_request, std::string("router update: ") + field + " must be an object");
  const std::string prefix = std::string(field) + ".";
  auto small = number(*it, prefix.c_str(), "small");
  if (!small) return std::unexpected(small.error());
  auto medium = number(*it, prefix.c_str(), "medium");
  if (!medium) return std::unexpected(medium.error());
  return TierCuts{*small, *medium};
}

CutEvidence evidence_of(const nlohmann::json& j, const char* field) {
  CutEvidence e;
  const auto it = j.find(field);
  if (it == j.end() || !it->is_object()) return e;
  e.samples = it->value("samples", std::size_t{0});
  e.ratio = it->value("ratio", 0.0);
  e.lower = it->value("lower", 0.0);
  e.upper = it->value("upper", 0.0);
  return e;
}

}  // namespace

std::string tuning_record_key(std::string_view tenant, std::string_view key) {
  std::string out(tenant);
  out += '\0';
  out += key;
  return out;
}

std::string encode_tuning_record(const TuningRecord& r) {
  const nlohmann::json j = {
      {"tenant", r.tenant},
      {"key", r.key},
      {"cuts", {{"small", r.cuts.small}, {"medium", r.cuts.medium}}},
      {"configured_cuts", {{"small", r.configured.small}, {"medium", r.configured.medium}}},
      {"version", r.version},
      {"small", evidence_json(r.small)},
      {"medium", evidence_json(r.medium)},
      {"target", r.target},
      {"ts", r.ts_ms},
      {"why", r.why},
  };
  return j.dump();
}

Result<TuningRecord> decode_tuning_record(std::string_view value) {
  const nlohmann::json j = nlohmann::json::parse(value, nullptr, false);
  if (!j.is_object()) return fail(ErrorCode::invalid_request, "router update: not a JSON object");
  TuningRecord r;
  for (const char* field : {"tenant", "key"}) {
    const auto it = j.find(field);
    if (it == j.end() || !it->is_string() || it->get_ref<const std::string&>().empty())
      return fail(ErrorCode::invalid_request, std::string("router update: ") + field + " must be a non-empty string");
  }
  r.tenant = j["tenant"].get<std::string>();
  r.key = j["key"].get<std::string>();
  auto cuts = cuts_of(j, "cuts");
  if (!cuts) return std::unexpected(cuts.error());
  r.cuts = *cuts;
  auto configured = cuts_of(j, "configured_cuts");
  if (!configured) return std::unexpected(configured.error());
  r.configured = *configured;
  if (!(r.cuts.small <= r.cuts.medium))
    return fail(ErrorCode::invalid_request, "router update: cuts.small must not exceed cuts.medium");
  const auto version = j.find("version");
  if (version == j.end() || !version->is_number_unsigned())
    return fail(ErrorCode::invalid_request, "router update: version must be a non-negative integer");
  r.version = version->get<std::uint64_t>();
  r.small = evidence_of(j, "small");
  r.medium = evidence_of(j, "medium");
  r.target = j.value("target", 0.0);
  r.ts_ms = j.value("ts", std::int64_t{0});
  r.why = j.value("why", "");
  return r;
}

std::string tuning_reset_key(std::string_view tenant, std::string_view key) {
  std::string out = "reset";
  out += '\0';
  out += tenant;
  out += '\0';
  out += key;
  return out;
}

bool is_tuning_reset_key(std::string_view record_key) {
  return record_key.starts_with(std::string_view("reset\0", 6)) &&
         std::count(record_key.begin(), record_key.end(), '\0') == 2;
}

std::string encode_tuning_reset(const TuningReset& reset) {
  return nlohmann::json{{"reset", true}, {"tenant", reset.tenant}, {"key", reset.key}, {"ts", reset.ts_ms}}.dump();
}

Result<TuningReset> decode_tuning_reset(std::string_view value) {
  const nlohmann::json j = nlohmann::json::parse(value, nullptr, false);
  if (!j.is_object() || !j.value("reset", false))
    return fail(ErrorCode::invalid_request, "router update reset: not a reset record");
  const auto tenant = j.find("tenant");
  if (tenant == j.end() || !tenant->is_string() || tenant->get_ref<const std::string&>().empty())
    return fail(ErrorCode::invalid_request, "router update reset: tenant must be a non-empty string");
  const auto ts = j.find("ts");
  if (ts == j.end() || !ts->is_number_integer())
    return fail(ErrorCode::invalid_request, "router update reset: ts must be an integer");
  TuningReset r;
  r.tenant = tenant->get<std::string>();
  r.key = j.value("key", "");
  r.ts_ms = ts->get<std::int64_t>();
  return r;
}

TunedCuts::TunedCuts() { snapshot_.store(std::make_shared<const Map>(), std::memory_order_release); }

void TunedCuts::store(std::shared_ptr<const Map> next) {
  std::size_t n = 0;
  for (const auto& [tenant, keys] : *next) n += keys.size();
  snapshot_.store(std::move(next), std::memory_order_release);
  size_.store(n, std::memory_order_release);
}

void TunedCuts::set(const TuningRecord& record) {
  std::lock_guard lock(write_mutex_);
  auto next = std::make_shared<Map>(*snapshot_.load(std::memory_order_acquire));
  (*next)[record.tenant].insert_or_assign(record.key, record);
  store(std::move(next));
}

Result<void> TunedCuts::apply(std::string_view record_key, std::optional<std::string_view> value) {
  if (is_tuning_reset_key(record_key)) return {};  // for the ledger's tuner; its tombstones follow
  if (value) {
    auto record = decode_tuning_record(*value);
    if (!record) return std::unexpected(record.error());
    if (tuning_record_key(record->tenant, record->key) != record_key)
      return fail(ErrorCode::invalid_request, "router update: the record key is not its tenant and key");
    set(*record);
    return {};
  }
  const std::size_t split = record_key.find('\0');
  if (split == std::string_view::npos)
    return fail(ErrorCode::invalid_request, "router update: the record key is not tenant\\0key");
  const std::string_view tenant = record_key.substr(0, split);
  const std::string_view key = record_key.substr(split + 1);
  std::lock_guard lock(write_mutex_);
  auto next = std::make_shared<Map>(*snapshot_.load(std::memory_order_acquire));
  if (auto it = next->find(tenant); it != next->end()) {
    if (auto k = it->second.find(key); k != it->second.end()) it->second.erase(k);
    if (it->second.empty()) next->erase(it);
  }
  store(std::move(next));
  return {};
}

TunedCuts::Found TunedCuts::find(std::string_view tenant, std::string_view key) const {
  Found found;
  found.snapshot = snapshot_.load(std::memory_order_acquire);
  const auto t = found.snapshot->find(tenant);
  if (t == found.snapshot->end()) return found;
  const auto k = t->second.find(key);
  if (k != t->second.end()) found.record = &k->second;
  return found;
}

}  // namespace cascade
