#pragma once
// Byte layouts of the state component, shared by the store and the changelog.
// Everything that crosses machines (entries, changelog records) is encoded
// little-endian explicitly; index keys are big-endian so they sort by time.
// Layouts are documented in docs/state.md.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/byte_order.h"
#include "state/state.h"

namespace cascade::state_codec {

inline constexpr std::uint8_t kEntryFormat = 1;
inline constexpr std::uint8_t kPurgeFormat = 1;
// Index classes: cache entries are evictable, completed answers are not.
inline constexpr std::uint8_t kClassCache = 0;
inline constexpr std::uint8_t kClassCompleted = 1;
// Changelog key prefix of a tenant purge record ("purge/<tenant>").
inline constexpr std::string_view kPurgeFamilyName = "purge";

using bytes::get_be64;
using bytes::get_le32;
using bytes::get_le64;
using bytes::put_be64;
using bytes::put_le32;
using bytes::put_le64;

// Entry value: format(1) created_ms(8) expires_ms(8) version_len(2) version payload.
std::string encode_entry(std::int64_t created_ms, std::int64_t expires_ms, std::string_view version,
                         std::string_view payload);

struct EntryView {
  std::int64_t created_ms = 0;
  std::int64_t expires_ms = 0;  // 0 = never
  std::string_view version;
  std::string_view payload;
};
std::optional<EntryView> decode_entry(std::string_view bytes);
inline bool expired(const EntryView& e, std::int64_t now_ms) {
  return e.expires_ms != 0 && e.expires_ms <= now_ms;
}
StoredEntry to_stored(const EntryView& e);

std::uint8_t index_class(StateFamily family);
std::optional<StateFamily> family_from_byte(std::uint8_t b);
std::optional<StateFamily> family_from_name(std::string_view name);

// by_time index key: class(1) created_ms(BE 8) family(1) store key. Value:
// expires_ms(LE 8) bytes(LE 8).
std::string index_key(StateFamily family, std::int64_t created_ms, std::string_view key);
std::string index_value(std::int64_t expires_ms, std::uint64_t bytes);
struct IndexView {
  std::uint8_t cls = 0;
  std::int64_t created_ms = 0;
  StateFamily family = StateFamily::responses;
  std::string_view key;
  std::int64_t expires_ms = 0;
  std::uint64_t bytes = 0;
};
std::optional<IndexView> decode_index(std::string_view key, std::string_view value);

// Changelog record key: family name '/' store key, or "purge/" tenant.
std::string changelog_key(StateFamily family, std::string_view key);
std::string purge_changelog_key(std::string_view tenant);
// Purge record value: format(1) purged_through_ms(LE 8).
std::string encode_purge(std::int64_t purged_through_ms);
std::optional<std::int64_t> decode_purge(std::string_view bytes);

// The tenant of a tenant-owned key (text before the first '\0'); nullopt when
// the key has no '\0'.
std::optional<std::string_view> tenant_of(std::string_view key);

// Meta family keys.
inline constexpr std::string_view kMetaFormat = "format";
inline constexpr std::string_view kStoreFormat = "1";
std::string meta_offset_key(std::string_view topic, std::int32_t partition);
std::string meta_offset_prefix(std::string_view topic);
std::int32_t partition_of_offset_key(std::string_view key);  // key from meta_offset_key
std::string meta_floor_key(std::string_view tenant);
inline constexpr std::string_view kMetaFloorPrefix = "floor/";
std::string meta_outbox_key(std::uint64_t seq);
inline constexpr std::string_view kMetaOutboxPrefix = "outbox/";

// Outbox value: key_len(LE 4) changelog key, has_value(1), value.
std::string encode_outbox(std::string_view changelog_key, const std::optional<std::string_view>& value);
struct OutboxView {
  std::string_view changelog_key;
  std::optional<std::string_view> value;
};
std::optional<OutboxView> decode_outbox(std::string_view bytes);

}  // namespace cascade::state_codec
