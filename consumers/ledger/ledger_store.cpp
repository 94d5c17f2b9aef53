// The ledger's RocksDB. Layout (docs/ledger.md, "Storage"):
//
// | family       | key                                        | value |
// |--------------|--------------------------------------------|-------|
// | seen         | tenant \0 request id                       | event ts ms (LE 8) |
// | seen_by_time | event ts ms (BE 8) tenant \0 request id    | ""    |
// | usage        | tenant \0 day \0 model                     | totals (format 1, below) |
// | spend        | d:YYYY-MM-DD | m:YYYY-MM \0 tenant \0 scope | usd (f64 LE 8) requests (LE 8) |
// | meta         | alert \0 <alert id> / outbox \0 seq (BE 8) | "" / sink \0 alert JSON |
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <unordered_set>

#include "consumers/ledger/ledger.h"
#include "core/byte_order.h"

namespace cascade {

namespace {

constexpr std::string_view kSeen = "seen";
constexpr std::string_view kSeenByTime = "seen_by_time";
constexpr std::string_view kUsage = "usage";
constexpr std::string_view kSpend = "spend";
constexpr std::string_view kMeta = "meta";
constexpr std::uint8_t kTotalsFormat = 1;
constexpr std::size_t kTotalsBytes = 1 + 12 * 8;

std::int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

using bytes::get_be64;
using bytes::get_f64;
using bytes::get_le64;
using bytes::put_be64;
using bytes::put_f64;
using bytes::put_le64;

std::string encode_totals(const LedgerTotals& t) {
  std::string out;
  out.reserve(kTotalsBytes);
  out.push_back(static_cast<char>(kTotalsFormat));
  put_le64(out, t.requests);
  put_le64(out, t.cache_hits);
  put_f64(out, t.cost_usd);
  put_f64(out, t.baseline_cost_usd);
  put_f64(out, t.savings_usd);
  put_le64(out, static_cast<std::uint64_t>(t.input_tokens));
  put_le64(out, static_cast<std::uint64_t>(t.output_tokens));
  put_le64(out, static_cast<std::uint64_t>(t.cached_tokens));
  put_le64(out, static_cast<std::uint64_t>(t.cache_write_tokens));
  put_le64(out, static_cast<std::uint64_t>(t.reasoning_tokens));
  put_f64(out, t.latency_ms_sum);
  put_f64(out, t.ttft_ms_sum);
  return out;
}

std::optional<LedgerTotals> decode_totals(std::string_view bytes) {
  if (bytes.size() != kTotalsBytes || static_cast<std::uint8_t>(bytes[0]) != kTotalsFormat) return std::nullopt;
  const char* p = bytes.data() + 1;
  auto next = [&p] {
    const char* at = p;
    p += 8;
    return at;
  };
  LedgerTotals t;
  t.requests = get_le64(next());
  t.cache_hits = get_le64(next());
  t.cost_usd = get_f64(next());
  t.baseline_cost_usd = get_f64(next());
  t.savings_usd = get_f64(next());
  t.input_tokens = static_cast<std::int64_t>(get_le64(next()));
  t.output_tokens = static_cast<std::int64_t>(get_le64(next()));
  t.cached_tokens = static_cast<std::int64_t>(get_le64(next()));
  t.cache_write_tokens = static_cast<std::int64_t>(get_le64(next()));
  t.reasoning_tokens = static_cast<std::int64_t>(get_le64(next()));
  t.latency_ms_sum = get_f64(next());
  t.ttft_ms_sum = get_f64(next());
  return t;
}

struct SpendValue {
  double usd = 0;
  std::uint64_t requests = 0;
};

std::string encode_spend(const SpendValue& v) {
  std::string out;
  put_f64(out, v.usd);
  put_le64(out, v.requests);
  return out;
}

std::optional<SpendValue> decode_spend(std::string_view bytes) {
  if (bytes.size() != 16) return std::nullopt;
  return SpendValue{get_f64(bytes.data()), get_le64(bytes.data() + 8)};
}

std::string join0(std::initializer_list<std::string_view> parts) {
  std::string out;
  bool first = true;
  for (auto part : parts) {
    if (!first) out.push_back('\0');
    out.append(part);
    first = false;
  }
  return out;
}

std::string period_key(BudgetPeriod period, std::string_view id) {
  return (period == BudgetPeriod::daily ? "d:" : "m:") + std::string(id);
}

std::string spend_key(BudgetPeriod period, std::string_view id, std::string_view tenant, std::string_view scope) {
  return join0({period_key(period, id), tenant, scope});
}

std::string alert_key(const BudgetAlert& alert) { return join0({"alert", alert.id()}); }

std::string outbox_key(std::uint64_t seq) {
  std::string key = join0({"outbox", ""});
  put_be64(key, seq);
  return key;
}

Error rocks_error(std::string_view what, const rocksdb::Status& st) {
  return Error{ErrorCode::unavailable, std::string(what) + ": " + st.ToString()};
}

bool valid_name(std::string_view s) { return !s.empty() && s.find('\0') == std::string_view::npos; }

// The smallest key greater than every key starting with prefix.
std::string prefix_end(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (!prefix.empty()) prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
  return prefix;
}

}  // namespace

struct LedgerStore::Impl {
  LedgerStoreOptions options;
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::ColumnFamilyHandle* seen = nullptr;
  rocksdb::ColumnFamilyHandle* seen_by_time = nullptr;
  rocksdb::ColumnFamilyHandle* usage = nullptr;
  rocksdb::ColumnFamilyHandle* spend = nullptr;
  rocksdb::ColumnFamilyHandle* meta = nullptr;
  std::mutex write_mu;
  std::uint64_t next_outbox_seq = 1;
  bool closed = false;

  rocksdb::WriteOptions write_options() const {
    rocksdb::WriteOptions wo;
    wo.sync = options.sync_writes;
    return wo;
  }

  std::optional<std::string> get(rocksdb::ColumnFamilyHandle* cf, std::string_view key) const {
    std::string value;
    auto st = db->Get(rocksdb::ReadOptions(), cf, key, &value);
    if (!st.ok()) {
      if (!st.IsNotFound()) spdlog::warn("ledger store: read failed: {}", st.ToString());
      return std::nullopt;
    }
    return value;
  }
};

LedgerStore::LedgerStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LedgerStore::~LedgerStore() { (void)close(); }

std::int64_t LedgerStore::now_ms() const { return impl_->options.now_ms ? impl_->options.now_ms() : system_now_ms(); }
const LedgerStoreOptions& LedgerStore::options() const { return impl_->options; }

Result<std::unique_ptr<LedgerStore>> LedgerStore::open(LedgerStoreOptions options) {
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) return fail(ErrorCode::unavailable, "cannot create ledger store directory " + options.dir + ": " + ec.message());
  rocksdb::DBOptions o;
  o.create_if_missing = true;
  o.create_missing_column_families = true;
  o.keep_log_file_num = 4;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
  for (auto name : {kSeen, kSeenByTime, kUsage, kSpend, kMeta})
    descriptors.emplace_back(std::string(name), rocksdb::ColumnFamilyOptions());
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  rocksdb::DB* db = nullptr;
  auto st = rocksdb::DB::Open(o, impl->options.dir, descriptors, &impl->handles, &db);
  if (!st.ok())
    return fail(ErrorCode::unavailable, "cannot open ledger store " + impl->options.dir + ": " + st.ToString() +
                                            " (is another ledger consumer using it?)");
  impl->db.reset(db);
  impl->seen = impl->handles[1];
  impl->seen_by_time = impl->handles[2];
  impl->usage = impl->handles[3];
  impl->spend = impl->handles[4];
  impl->meta = impl->handles[5];
  // The outbox continues after its highest sequence number.
  const std::string prefix = join0({"outbox", ""});
  std::unique_ptr<rocksdb::Iterator> it(impl->db->NewIterator(rocksdb::ReadOptions(), impl->meta));
  const std::string end = prefix_end(prefix);
  it->SeekForPrev(end);
  if (it->Valid() && it->key().starts_with(prefix) && it->key().size() == prefix.size() + 8)
    impl->next_outbox_seq = get_be64(it->key().data() + prefix.size()) + 1;
  return std::unique_ptr<LedgerStore>(new LedgerStore(std::move(impl)));
}

Result<void> LedgerStore::close() {
  if (!impl_) return {};
  std::lock_guard lock(impl_->write_mu);
  if (impl_->closed) return {};
  impl_->closed = true;
  rocksdb::FlushOptions fo;
  fo.wait = true;
  auto st = impl_->db->Flush(fo, impl_->handles);
  for (auto* h : impl_->handles) impl_->db->DestroyColumnFamilyHandle(h);
  impl_->handles.clear();
  auto closed = impl_->db->Close();
  impl_->db.reset();
  if (!st.ok()) return std::unexpected(rocks_error("ledger store flush", st));
  if (!closed.ok()) return std::unexpected(rocks_error("ledger store close", closed));
  return {};
}

Result<LedgerApplyOutcome> LedgerStore::apply(std::span<const CostEvent> events) {
  Impl& s = *impl_;
  std::lock_guard lock(s.write_mu);
  if (s.closed) return fail(ErrorCode::unavailable, "ledger store is closed");
  LedgerApplyOutcome outcome;
  const std::int64_t oldest = now_ms() - s.options.dedupe_ttl_ms;
  rocksdb::WriteBatch batch;
  std::unordered_set<std::string> batch_ids;
  std::map<std::string, LedgerTotals> usage_delta;  // usage key -> added totals
  std::map<std::string, SpendValue> spend_delta;    // spend key -> added spend
  for (std::size_t i = 0; i < events.size(); ++i) {
    const CostEvent& e = events[i];
    if (!valid_name(e.tenant) || !valid_name(e.id) || e.model.find('\0') != std::string::npos) {
      ++outcome.invalid;
      continue;
    }
    if (e.ts_ms < oldest) {
      ++outcome.stale;
      continue;
    }
    std::string seen_key = join0({e.tenant, e.id});
    if (batch_ids.contains(seen_key) || s.get(s.seen, seen_key)) {
      ++outcome.duplicates;
      continue;
    }
    std::string ts;
    put_le64(ts, static_cast<std::uint64_t>(e.ts_ms));
    batch.Put(s.seen, seen_key, ts);
    std::string by_time;
    put_be64(by_time, static_cast<std::uint64_t>(e.ts_ms));
    batch.Put(s.seen_by_time, by_time + seen_key, "");
    batch_ids.insert(std::move(seen_key));

    usage_delta[join0({e.tenant, utc_day(e.ts_ms), e.model})].add(e);
    std::set<std::string> scopes{"", model_scope(e.model)};
    for (const auto& tag : e.tags)
      if (!tag.empty() && tag.find('\0') == std::string::npos) scopes.insert(tag_scope(tag));
    for (BudgetPeriod period : kBudgetPeriods) {
      const std::string id = period_id(period, e.ts_ms);
      for (const auto& scope : scopes) {
        auto& d = spend_delta[spend_key(period, id, e.tenant, scope)];
        d.usd += e.cost_usd;
        d.requests += 1;
      }
    }
    for (const auto& scope : scopes) outcome.touched.insert({e.tenant, scope});
    outcome.applied.push_back(i);
  }
  if (outcome.applied.empty()) return outcome;
  for (auto& [key, delta] : usage_delta) {
    LedgerTotals totals;
    if (auto old = s.get(s.usage, key)) {
      auto decoded = decode_totals(*old);
      if (!decoded) return fail(ErrorCode::internal, "ledger store: undecodable usage row");
      totals = *decoded;
    }
    totals.merge(delta);
    batch.Put(s.usage, key, encode_totals(totals));
  }
  for (auto& [key, delta] : spend_delta) {
    SpendValue value;
    if (auto old = s.get(s.spend, key)) {
      auto decoded = decode_spend(*old);
      if (!decoded) return fail(ErrorCode::internal, "ledger store: undecodable spend entry");
      value = *decoded;
    }
    value.usd += delta.usd;
    value.requests += delta.requests;
    batch.Put(s.spend, key, encode_spend(value));
  }
  auto st = s.db->Write(s.write_options(), &batch);
  if (!st.ok()) return std::unexpected(rocks_error("ledger store write", st));
  return outcome;
}

Result<std::vector<UsageRow>> LedgerStore::usage(const UsageQuery& query) const {
  const Impl& s = *impl_;
  std::vector<UsageRow> rows;
  std::string start, end;
  if (!query.tenant.empty()) {
    start = query.tenant + '\0' + query.from_day;
    end = query.to_day.empty() ? prefix_end(query.tenant + '\0') : prefix_end(query.tenant + '\0' + query.to_day);
  }
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper(end);
  if (!end.empty()) ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(s.db->NewIterator(ro, s.usage));
  for (start.empty() ? it->SeekToFirst() : it->Seek(start); it->Valid(); it->Next()) {
    const std::string_view key = it->key().ToStringView();
    const auto a = key.find('\0');
    const auto b = a == std::string_view::npos ? a : key.find('\0', a + 1);
    if (b == std::string_view::npos) continue;
    UsageRow row;
    row.tenant = std::string(key.substr(0, a));
    row.day = std::string(key.substr(a + 1, b - a - 1));
    row.model = std::string(key.substr(b + 1));
    if (!query.from_day.empty() && row.day < query.from_day) continue;
    if (!query.to_day.empty() && row.day > query.to_day) continue;
    auto totals = decode_totals(it->value().ToStringView());
    if (!totals) return fail(ErrorCode::internal, "ledger store: undecodable usage row");
    row.totals = *totals;
    rows.push_back(std::move(row));
  }
  if (!it->status().ok()) return std::unexpected(rocks_error("ledger store scan", it->status()));
  return rows;
}

double LedgerStore::spend(std::string_view tenant, std::string_view scope, BudgetPeriod period,
                          std::string_view period_id) const {
  auto value = impl_->get(impl_->spend, spend_key(period, period_id, tenant, scope));
  if (!value) return 0;
  auto decoded = decode_spend(*value);
  return decoded ? decoded->usd : 0;
}

std::uint64_t LedgerStore::spend_requests(std::string_view tenant, std::string_view scope, BudgetPeriod period,
                                          std::string_view period_id) const {
  auto value = impl_->get(impl_->spend, spend_key(period, period_id, tenant, scope));
  if (!value) return 0;
  auto decoded = decode_spend(*value);
  return decoded ? decoded->requests : 0;
}

Result<std::vector<std::pair<std::string, std::string>>> LedgerStore::spenders(BudgetPeriod period,
                                                                               std::string_view period_id) const {
  std::vector<std::pair<std::string, std::string>> out;
  const std::string prefix = period_key(period, period_id) + '\0';
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->spend));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    const std::string_view rest = it->key().ToStringView().substr(prefix.size());
    const auto sep = rest.find('\0');
    if (sep == std::string_view::npos) continue;
    out.emplace_back(std::string(rest.substr(0, sep)), std::string(rest.substr(sep + 1)));
  }
  if (!it->status().ok()) return std::unexpected(rocks_error("ledger store scan", it->status()));
  return out;
}

bool LedgerStore::alert_fired(const BudgetAlert& alert) const {
  return impl_->get(impl_->meta, alert_key(alert)).has_value();
}

Result<std::vector<std::uint64_t>> LedgerStore::record_alerts(
    const std::vector<BudgetAlert>& fired, const std::vector<std::pair<std::string, BudgetAlert>>& deliver) {
  Impl& s = *impl_;
  std::lock_guard lock(s.write_mu);
  if (s.closed) return fail(ErrorCode::unavailable, "ledger store is closed");
  rocksdb::WriteBatch batch;
  for (const auto& alert : fired) batch.Put(s.meta, alert_key(alert), "");
  std::vector<std::uint64_t> seqs;
  std::uint64_t seq = s.next_outbox_seq;
  for (const auto& [sink, alert] : deliver) {
    batch.Put(s.meta, outbox_key(seq), sink + '\0' + alert.to_json());
    seqs.push_back(seq++);
  }
  auto st = s.db->Write(s.write_options(), &batch);
  if (!st.ok()) return std::unexpected(rocks_error("ledger store alert write", st));
  s.next_outbox_seq = seq;
  return seqs;
}

Result<std::vector<LedgerStore::OutboxItem>> LedgerStore::outbox() const {
  std::vector<OutboxItem> items;
  const std::string prefix = join0({"outbox", ""});
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->meta));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (it->key().size() != prefix.size() + 8) continue;
    const std::string_view value = it->value().ToStringView();
    const auto sep = value.find('\0');
    if (sep == std::string_view::npos) continue;
    auto alert = BudgetAlert::from_json(value.substr(sep + 1));
    if (!alert) {
      spdlog::warn("ledger store: dropping undecodable alert outbox entry: {}", alert.error().message);
      continue;
    }
    items.push_back({get_be64(it->key().data() + prefix.size()), std::string(value.substr(0, sep)), *alert});
  }
  if (!it->status().ok()) return std::unexpected(rocks_error("ledger store scan", it->status()));
  return items;
}

Result<void> LedgerStore::remove_outbox(std::uint64_t seq) {
  std::lock_guard lock(impl_->write_mu);
  if (impl_->closed) return fail(ErrorCode::unavailable, "ledger store is closed");
  auto st = impl_->db->Delete(impl_->write_options(), impl_->meta, outbox_key(seq));
  if (!st.ok()) return std::unexpected(rocks_error("ledger store outbox delete", st));
  return {};
}

Result<std::uint64_t> LedgerStore::expire_seen() {
  Impl& s = *impl_;
  const std::int64_t cutoff = now_ms() - s.options.dedupe_ttl_ms;
  std::uint64_t removed = 0;
  for (;;) {
    std::lock_guard lock(s.write_mu);
    if (s.closed) return fail(ErrorCode::unavailable, "ledger store is closed");
    rocksdb::WriteBatch batch;
    std::size_t n = 0;
    std::unique_ptr<rocksdb::Iterator> it(s.db->NewIterator(rocksdb::ReadOptions(), s.seen_by_time));
    for (it->SeekToFirst(); it->Valid() && n < 1000; it->Next()) {
      const std::string_view key = it->key().ToStringView();
      if (key.size() < 8 || static_cast<std::int64_t>(get_be64(key.data())) >= cutoff) break;
      batch.Delete(s.seen_by_time, it->key());
      batch.Delete(s.seen, key.substr(8));
      ++n;
    }
    if (!it->status().ok()) return std::unexpected(rocks_error("ledger store scan", it->status()));
    if (n == 0) return removed;
    auto st = s.db->Write(s.write_options(), &batch);
    if (!st.ok()) return std::unexpected(rocks_error("ledger store expiry", st));
    removed += n;
  }
}

// ---- rows -------------------------------------------------------------------

LedgerTotals sum_rows(std::span<const UsageRow> rows) {
  LedgerTotals sum;
  for (const auto& r : rows) sum.merge(r.totals);
  return sum;
}

std::map<std::string, LedgerTotals> rows_by_day(std::span<const UsageRow> rows) {
  std::map<std::string, LedgerTotals> out;
  for (const auto& r : rows) out[r.day].merge(r.totals);
  return out;
}

std::map<std::string, LedgerTotals> rows_by_model(std::span<const UsageRow> rows) {
  std::map<std::string, LedgerTotals> out;
  for (const auto& r : rows) out[r.model].merge(r.totals);
  return out;
}

std::map<std::string, LedgerTotals> rows_by_tenant(std::span<const UsageRow> rows) {
  std::map<std::string, LedgerTotals> out;
  for (const auto& r : rows) out[r.tenant].merge(r.totals);
  return out;
}

// ---- alerts -----------------------------------------------------------------

std::string BudgetAlert::id() const {
  char threshold[32];
  std::snprintf(threshold, sizeof threshold, "%g", threshold_percent);
  return tenant + "|" + scope + "|" + std::string(to_string(period)) + "|" + period_id + "|" + threshold;
}

std::string BudgetAlert::text() const {
  char buf[512];
  const double percent = limit_usd > 0 ? 100.0 * spend_usd / limit_usd : 0;
  const std::string what = scope.empty() ? "" : " (" + describe_scope(scope) + ")";
  std::snprintf(buf, sizeof buf,
                "%s Cascade budget alert: tenant %s%s has spent $%.2f of its %s budget of $%.2f (%.0f%%) in %s; "
                "threshold %g%% crossed.",
                threshold_percent >= 100 ? ":rotating_light:" : ":warning:", tenant.c_str(), what.c_str(), spend_usd,
                std::string(to_string(period)).c_str(), limit_usd, percent, period_id.c_str(), threshold_percent);
  return buf;
}

std::string BudgetAlert::to_json() const {
  return nlohmann::json{{"v", 1},
                        {"type", "budget_alert"},
                        {"id", id()},
                        {"tenant", tenant},
                        {"scope", scope},
                        {"period", to_string(period)},
                        {"period_id", period_id},
                        {"threshold_percent", threshold_percent},
                        {"spend_usd", spend_usd},
                        {"limit_usd", limit_usd},
                        {"ts", ts_ms},
                        {"text", text()}}
      .dump();
}

Result<BudgetAlert> BudgetAlert::from_json(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail(ErrorCode::invalid_request, "alert is not a JSON object");
  BudgetAlert a;
  try {
    a.tenant = j.at("tenant").get<std::string>();
    a.scope = j.at("scope").get<std::string>();
    a.period = j.at("period").get<std::string>() == "monthly" ? BudgetPeriod::monthly : BudgetPeriod::daily;
    a.period_id = j.at("period_id").get<std::string>();
    a.threshold_percent = j.at("threshold_percent").get<double>();
    a.spend_usd = j.at("spend_usd").get<double>();
    a.limit_usd = j.at("limit_usd").get<double>();
    a.ts_ms = j.at("ts").get<std::int64_t>();
  } catch (const nlohmann::json::exception& e) {
    return fail(ErrorCode::invalid_request, std::string("alert: ") + e.what());
  }
  return a;
}

}  // namespace cascade
