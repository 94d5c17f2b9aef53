#include "state/codec.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace cascade {

// Float vectors are stored as their in-memory bytes; entries cross machines
// through the changelog, so that is only sound on little-endian hosts.
static_assert(std::endian::native == std::endian::little, "state encodes floats little-endian");

std::string_view to_string(StateFamily family) {
  switch (family) {
    case StateFamily::completed: return "completed";
    case StateFamily::responses: return "responses";
    case StateFamily::embeddings: return "embeddings";
    case StateFamily::vectors: return "vectors";
  }
  return "unknown";
}

std::string tenant_key(std::string_view tenant, std::string_view rest) {
  std::string k;
  k.reserve(tenant.size() + 1 + rest.size());
  k.append(tenant).push_back('\0');
  k.append(rest);
  return k;
}

std::string embedding_key(std::string_view embedder_version, std::string_view content_hash) {
  return tenant_key(embedder_version, content_hash);
}

std::string encode_vector_entry(const VectorEntry& entry) {
  std::string out;
  out.reserve(8 + entry.vector.size() * sizeof(float) + entry.normalized_text.size() +
              entry.response_key.size());
  state_codec::put_le32(out, static_cast<std::uint32_t>(entry.vector.size()));
  out.append(reinterpret_cast<const char*>(entry.vector.data()), entry.vector.size() * sizeof(float));
  state_codec::put_le32(out, static_cast<std::uint32_t>(entry.normalized_text.size()));
  out += entry.normalized_text;
  out += entry.response_key;
  return out;
}

std::optional<VectorEntry> decode_vector_entry(std::string_view p) {
  if (p.size() < 4) return std::nullopt;
  const std::uint64_t dims = state_codec::get_le32(p.data());
  p.remove_prefix(4);
  if (p.size() < dims * sizeof(float) + 4) return std::nullopt;
  VectorEntry e;
  e.vector.resize(dims);
  std::memcpy(e.vector.data(), p.data(), dims * sizeof(float));
  p.remove_prefix(dims * sizeof(float));
  const std::uint64_t text = state_codec::get_le32(p.data());
  p.remove_prefix(4);
  if (p.size() < text) return std::nullopt;
  e.normalized_text.assign(p.substr(0, text));
  e.response_key.assign(p.substr(text));
  return e;
}

namespace state_codec {

namespace {
constexpr std::size_t kEntryHeader = 1 + 8 + 8 + 2;
}

std::string encode_entry(std::int64_t created_ms, std::int64_t expires_ms, std::string_view version,
                         std::string_view payload) {
  std::string out;
  out.reserve(kEntryHeader + version.size() + payload.size());
  out.push_back(static_cast<char>(kEntryFormat));
  put_le64(out, static_cast<std::uint64_t>(created_ms));
  put_le64(out, static_cast<std::uint64_t>(expires_ms));
  const auto n = static_cast<std::uint16_t>(version.size());
  out.push_back(static_cast<char>(n & 0xff));
  out.push_back(static_cast<char>(n >> 8));
  out.append(version.substr(0, n));
  out.append(payload);
  return out;
}

std::optional<EntryView> decode_entry(std::string_view b) {
  if (b.size() < kEntryHeader || static_cast<std::uint8_t>(b[0]) != kEntryFormat) return std::nullopt;
  EntryView e;
  e.created_ms = static_cast<std::int64_t>(get_le64(b.data() + 1));
  e.expires_ms = static_cast<std::int64_t>(get_le64(b.data() + 9));
  const std::size_t n = static_cast<unsigned char>(b[17]) | (static_cast<unsigned char>(b[18]) << 8);
  if (b.size() < kEntryHeader + n) return std::nullopt;
  e.version = b.substr(kEntryHeader, n);
  e.payload = b.substr(kEntryHeader + n);
  return e;
}

StoredEntry to_stored(const EntryView& e) {
  return StoredEntry{e.created_ms, e.expires_ms, std::string(e.version), std::string(e.payload)};
}

std::uint8_t index_class(StateFamily family) {
  return family == StateFamily::completed ? kClassCompleted : kClassCache;
}

std::optional<StateFamily> family_from_byte(std::uint8_t b) {
  if (b > static_cast<std::uint8_t>(StateFamily::vectors)) return std::nullopt;
  return static_cast<StateFamily>(b);
}

std::optional<StateFamily> family_from_name(std::string_view name) {
  for (auto f : kAllStateFamilies) {
    if (to_string(f) == name) return f;
  }
  return std::nullopt;
}

std::string index_key(StateFamily family, std::int64_t created_ms, std::string_view key) {
  std::string out;
  out.reserve(10 + key.size());
  out.push_back(static_cast<char>(index_class(family)));
  // Negative times cannot occur (epoch ms); clamp so a bad clock cannot wrap.
  put_be64(out, static_cast<std::uint64_t>(std::max<std::int64_t>(created_ms, 0)));
  out.push_back(static_cast<char>(family));
  out.append(key);
  return out;
}

std::string index_value(std::int64_t expires_ms, std::uint64_t bytes) {
  std::string out;
  put_le64(out, static_cast<std::uint64_t>(expires_ms));
  put_le64(out, bytes);
  return out;
}

std::optional<IndexView> decode_index(std::string_view key, std::string_view value) {
  if (key.size() < 10 || value.size() < 16) return std::nullopt;
  auto family = family_from_byte(static_cast<std::uint8_t>(key[9]));
  if (!family) return std::nullopt;
  IndexView v;
  v.cls = static_cast<std::uint8_t>(key[0]);
  v.created_ms = static_cast<std::int64_t>(get_be64(key.data() + 1));
  v.family = *family;
  v.key = key.substr(10);
  v.expires_ms = static_cast<std::int64_t>(get_le64(value.data()));
  v.bytes = get_le64(value.data() + 8);
  return v;
}

std::string changelog_key(StateFamily family, std::string_view key) {
  std::string out(to_string(family));
  out.push_back('/');
  out.append(key);
  return out;
}

std::string purge_changelog_key(std::string_view tenant) {
  std::string out(kPurgeFamilyName);
  out.push_back('/');
  out.append(tenant);
  return out;
}

std::string encode_purge(std::int64_t purged_through_ms) {
  std::string out;
  out.push_back(static_cast<char>(kPurgeFormat));
  put_le64(out, static_cast<std::uint64_t>(purged_through_ms));
  return out;
}

std::optional<std::int64_t> decode_purge(std::string_view b) {
  if (b.size() < 9 || static_cast<std::uint8_t>(b[0]) != kPurgeFormat) return std::nullopt;
  return static_cast<std::int64_t>(get_le64(b.data() + 1));
}

std::optional<std::string_view> tenant_of(std::string_view key) {
  const auto nul = key.find('\0');
  if (nul == std::string_view::npos) return std::nullopt;
  return key.substr(0, nul);
}

std::string meta_offset_prefix(std::string_view topic) {
  std::string out("offset/");
  out.append(topic).push_back('\0');
  return out;
}

std::string meta_offset_key(std::string_view topic, std::int32_t partition) {
  std::string out = meta_offset_prefix(topic);
  put_le32(out, static_cast<std::uint32_t>(partition));
  return out;
}

std::int32_t partition_of_offset_key(std::string_view key) {
  return static_cast<std::int32_t>(get_le32(key.data() + key.size() - 4));
}

std::string meta_floor_key(std::string_view tenant) {
  std::string out(kMetaFloorPrefix);
  out.append(tenant);
  return out;
}

std::string meta_outbox_key(std::uint64_t seq) {
  std::string out(kMetaOutboxPrefix);
  put_be64(out, seq);
  return out;
}

std::string encode_outbox(std::string_view changelog_key, const std::optional<std::string_view>& value) {
  std::string out;
  out.reserve(5 + changelog_key.size() + (value ? value->size() : 0));
  put_le32(out, static_cast<std::uint32_t>(changelog_key.size()));
  out.append(changelog_key);
  out.push_back(value ? 1 : 0);
  if (value) out.append(*value);
  return out;
}

std::optional<OutboxView> decode_outbox(std::string_view b) {
  if (b.size() < 5) return std::nullopt;
  const std::size_t n = get_le32(b.data());
  if (b.size() < 4 + n + 1) return std::nullopt;
  OutboxView v;
  v.changelog_key = b.substr(4, n);
  if (b[4 + n]) v.value = b.substr(5 + n);
  return v;
}

}  // namespace state_codec
}  // namespace cascade
