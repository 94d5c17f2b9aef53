#include "state/state.h"

#include <rocksdb/db.h>
#include <rocksdb/utilities/db_ttl.h>
#include <spdlog/spdlog.h>

#include <cstring>
#include <filesystem>

namespace cascade {
namespace {
constexpr std::string_view kCompletedFamily = "completed";

// Value layout: varint-free and simple: 8-byte length of the final event, the
// final event, then the cost event.
std::string encode(const CompletedAnswer& a) {
  std::string out;
  const std::uint64_t n = a.final_event.size();
  out.append(reinterpret_cast<const char*>(&n), sizeof n);
  out += a.final_event;
  out += a.cost_event;
  return out;
}

std::optional<CompletedAnswer> decode(std::string_view v) {
  std::uint64_t n = 0;
  if (v.size() < sizeof n) return std::nullopt;
  std::memcpy(&n, v.data(), sizeof n);
  if (v.size() - sizeof n < n) return std::nullopt;
  CompletedAnswer a;
  a.final_event.assign(v.substr(sizeof n, n));
  a.cost_event.assign(v.substr(sizeof n + n));
  return a;
}
}  // namespace

Result<std::unique_ptr<CompletedAnswerStore>> CompletedAnswerStore::open(const std::string& dir,
                                                                        std::int64_t ttl_seconds) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(ErrorCode::unavailable, "cannot create state dir " + dir + ": " + ec.message());

  rocksdb::Options options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  options.IncreaseParallelism(2);
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions(options)},
      {std::string(kCompletedFamily), rocksdb::ColumnFamilyOptions(options)}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DBWithTTL* db = nullptr;
  const auto ttl = static_cast<std::int32_t>(ttl_seconds);
  auto status = rocksdb::DBWithTTL::Open(options, dir, families, &handles, &db, {ttl, ttl});
  if (!status.ok()) {
    return fail(ErrorCode::unavailable,
                "cannot open state store " + dir + ": " + status.ToString() +
                    " (each worker process needs its own state.dir)");
  }
  auto store = std::unique_ptr<CompletedAnswerStore>(new CompletedAnswerStore());
  store->db_.reset(db);
  store->default_ = handles[0];
  store->completed_ = handles[1];
  return store;
}

CompletedAnswerStore::~CompletedAnswerStore() {
  if (!db_) return;
  // Column family handles must go before the DB.
  db_->DestroyColumnFamilyHandle(completed_);
  db_->DestroyColumnFamilyHandle(default_);
  db_->Close();
}

std::string CompletedAnswerStore::key(std::string_view tenant, std::string_view id) {
  std::string k;
  k.reserve(tenant.size() + id.size() + 1);
  k.append(tenant).push_back('\0');
  k.append(id);
  return k;
}

Result<void> CompletedAnswerStore::put(std::string_view tenant, std::string_view id,
                                       const CompletedAnswer& answer) {
  rocksdb::WriteOptions wo;
  auto status = db_->Put(wo, completed_, key(tenant, id), encode(answer));
  if (!status.ok()) return fail(ErrorCode::unavailable, "state store write: " + status.ToString());
  return {};
}

std::optional<CompletedAnswer> CompletedAnswerStore::get(std::string_view tenant,
                                                         std::string_view id) const {
  std::string value;
  auto status = db_->Get(rocksdb::ReadOptions(), completed_, key(tenant, id), &value);
  if (status.IsNotFound()) return std::nullopt;
  if (!status.ok()) {
    spdlog::warn("state: completed-answer read failed: {}", status.ToString());
    return std::nullopt;
  }
  return decode(value);
}

}  // namespace cascade
