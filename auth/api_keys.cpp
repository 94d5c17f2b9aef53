#include "auth/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <mutex>

#include "events/events.h"

namespace cascade {

using json = nlohmann::json;

namespace {

constexpr std::string_view kPrefix = "csk-";
constexpr std::size_t kIdHexDigits = 16;
constexpr std::size_t kSecretHexDigits = 48;

std::string hex(const unsigned char* bytes, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[bytes[i] >> 4]);
    out.push_back(kDigits[bytes[i] & 0xF]);
  }
  return out;
}

bool is_hex(std::string_view text, std::size_t digits) {
  return text.size() == digits &&
         std::ranges::all_of(text, [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr) != 1) return {};
  return hex(digest, size);
}

Result<std::string> random_hex(std::size_t digits) {
  std::vector<unsigned char> bytes(digits / 2);
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1)
    return fail(ErrorCode::internal, "no randomness for an API key (RAND_bytes failed)");
  return hex(bytes.data(), bytes.size());
}

Error unauthenticated(std::string message) { return Error{ErrorCode::invalid_request, std::move(message)}; }

}  // namespace

std::string_view to_string(KeyRole role) { return role == KeyRole::admin ? "admin" : "tenant"; }

std::string make_api_key_record(const ApiKeyRecord& r) {
  json out = {{"v", 1},
              {"key_id", r.key_id},
              {"tenant", r.tenant},
              {"name", r.name},
              {"role", to_string(r.role)},
              {"secret_sha256", r.secret_sha256},
              {"created_ms", r.created_ms}};
  if (r.revoked()) out["revoked_ms"] = r.revoked_ms;
  return out.dump();
}

Result<ApiKeyRecord> parse_api_key_record(std::string_view payload) {
  const json j = json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return fail(ErrorCode::invalid_request, "API key record is not a JSON object");
  ApiKeyRecord r;
  const auto text = [&](const char* field, std::string& out) -> bool {
    const auto it = j.find(field);
    if (it == j.end() || !it->is_string()) return false;
    out = it->get<std::string>();
    return true;
  };
  std::string role;
  if (!text("key_id", r.key_id) || !is_hex(r.key_id, kIdHexDigits))
    return fail(ErrorCode::invalid_request, "API key record: 'key_id' must be 16 hex digits");
  if (!text("secret_sha256", r.secret_sha256) || !is_hex(r.secret_sha256, 64))
    return fail(ErrorCode::invalid_request, "API key record: 'secret_sha256' must be 64 hex digits");
  if (!text("role", role) || (role != "tenant" && role != "admin"))
    return fail(ErrorCode::invalid_request, "API key record: 'role' must be tenant or admin");
  r.role = role == "admin" ? KeyRole::admin : KeyRole::tenant;
  text("tenant", r.tenant);
  text("name", r.name);
  if (r.role == KeyRole::tenant && !valid_tenant(r.tenant))
    return fail(ErrorCode::invalid_request, "API key record: a tenant key needs a valid 'tenant'");
  for (auto [field, out] : {std::pair{"created_ms", &r.created_ms}, std::pair{"revoked_ms", &r.revoked_ms}}) {
    if (const auto it = j.find(field); it != j.end() && it->is_number_integer()) *out = it->get<std::int64_t>();
  }
  return r;
}

Result<NewApiKey> generate_api_key(std::string_view tenant, std::string_view name, KeyRole role, std::int64_t now_ms) {
  if (role == KeyRole::tenant && !valid_tenant(tenant))
    return fail(ErrorCode::invalid_request,
                "a tenant must be 1-128 characters from [A-Za-z0-9._:-], got '" + std::string(tenant.substr(0, 64)) + "'");
  auto id = random_hex(kIdHexDigits);
  if (!id) return std::unexpected(id.error());
  auto secret = random_hex(kSecretHexDigits);
  if (!secret) return std::unexpected(secret.error());
  NewApiKey out;
  out.key = std::string(kPrefix) + *id + "." + *secret;
  out.record = ApiKeyRecord{.key_id = *id,
                            .tenant = role == KeyRole::tenant ? std::string(tenant) : std::string(),
                            .name = std::string(name),
                            .role = role,
                            .secret_sha256 = sha256_hex(*secret),
                            .created_ms = now_ms,
                            .revoked_ms = 0};
  return out;
}

Result<void> ApiKeyTable::apply(std::string_view key_id, std::optional<std::string_view> payload) {
  if (!payload) {
    std::unique_lock lock(mu_);
    if (const auto it = records_.find(key_id); it != records_.end()) records_.erase(it);
    return {};
  }
  auto record = parse_api_key_record(*payload);
  if (!record) return std::unexpected(record.error());
  if (record->key_id != key_id)
    return fail(ErrorCode::invalid_request, "API key record's key_id differs from its Kafka key");
  std::unique_lock lock(mu_);
  records_[record->key_id] = std::move(*record);
  return {};
}

Result<Principal> ApiKeyTable::authenticate(std::string_view key) const {
  if (key.empty()) return std::unexpected(unauthenticated("no API key: send 'Authorization: Bearer <key>'"));
  if (!key.starts_with(kPrefix) || key.size() != kPrefix.size() + kIdHexDigits + 1 + kSecretHexDigits ||
      key[kPrefix.size() + kIdHexDigits] != '.')
    return std::unexpected(unauthenticated("invalid API key"));
  const std::string_view id = key.substr(kPrefix.size(), kIdHexDigits);
  const std::string digest = sha256_hex(key.substr(kPrefix.size() + kIdHexDigits + 1));
  std::shared_lock lock(mu_);
  const auto it = records_.find(id);
  // The same message for unknown and wrong: nothing tells a guesser which ids exist.
  if (it == records_.end() || digest.size() != it->second.secret_sha256.size() ||
      CRYPTO_memcmp(digest.data(), it->second.secret_sha256.data(), digest.size()) != 0)
    return std::unexpected(unauthenticated("invalid API key"));
  if (it->second.revoked()) return std::unexpected(unauthenticated("API key " + it->second.key_id + " is revoked"));
  const ApiKeyRecord& r = it->second;
  return Principal{r.tenant, r.key_id, r.name, r.role};
}

std::vector<ApiKeyRecord> ApiKeyTable::list() const {
  std::shared_lock lock(mu_);
  std::vector<ApiKeyRecord> out;
  out.reserve(records_.size());
  for (const auto& [id, record] : records_) out.push_back(record);
  return out;
}

std::size_t ApiKeyTable::active() const {
  std::shared_lock lock(mu_);
  return static_cast<std::size_t>(
      std::ranges::count_if(records_, [](const auto& entry) { return !entry.second.revoked(); }));
}

Result<std::unique_ptr<TopicFollower>> follow_api_keys(const KafkaConfig& config, const std::string& bootstrap,
                                                       const std::string& topic, std::shared_ptr<ApiKeyTable> table,
                                                       int restore_timeout_ms) {
  auto follower = TopicFollower::open(config, bootstrap, {topic}, "api-keys", [table](const KafkaRecord& record) {
    std::optional<std::string_view> value;
    if (!record.tombstone()) value = record.payload();
    if (auto ok = table->apply(record.key(), value); !ok)
      spdlog::warn("api keys: skipping record {}/{}: {}", record.partition(), record.offset(), ok.error().message);
  });
  if (!follower) return std::unexpected(follower.error());
  if (auto ok = (*follower)->restore(restore_timeout_ms); !ok) return std::unexpected(ok.error());
  if (auto ok = (*follower)->start(); !ok) return std::unexpected(ok.error());
  return std::move(*follower);
}

std::string_view key_from_headers(std::string_view authorization, std::string_view x_api_key) {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() > kBearer.size()) {
    std::string scheme(authorization.substr(0, kBearer.size()));
    std::ranges::transform(scheme, scheme.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (scheme == "bearer ") return authorization.substr(kBearer.size());
  }
  return x_api_key;
}

}  // namespace cascade
