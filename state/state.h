#pragma once
// RocksDB-backed state of a worker. Today: the completed-answer store, so a
// request redelivered after a crash is answered again without a second
// provider call or a second charge.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
}  // namespace rocksdb

namespace cascade {

// The terminal events a request produced, kept by (tenant, request id).
struct CompletedAnswer {
  std::string final_event;  // reply event JSON (type final)
  std::string cost_event;   // ledger event JSON
};

class CompletedAnswerStore {
 public:
  // Opens (or creates) the store under `dir`. Entries expire after ttl_seconds.
  static Result<std::unique_ptr<CompletedAnswerStore>> open(const std::string& dir,
                                                           std::int64_t ttl_seconds = 7 * 24 * 3600);
  ~CompletedAnswerStore();

  Result<void> put(std::string_view tenant, std::string_view id, const CompletedAnswer& answer);
  // nullopt when the request has no completed answer (or the read failed: the
  // request is then simply processed again).
  std::optional<CompletedAnswer> get(std::string_view tenant, std::string_view id) const;

 private:
  CompletedAnswerStore() = default;
  static std::string key(std::string_view tenant, std::string_view id);
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* default_ = nullptr;
  rocksdb::ColumnFamilyHandle* completed_ = nullptr;
};

}  // namespace cascade
