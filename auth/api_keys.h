#pragma once
// API keys bound to tenants (docs/gateway.md, "API keys"). A key is shown
// once, when it is created; only its SHA-256 is kept, in a record on the
// compacted topic kafka.topics.api_keys (key = the key's id), which every
// gateway and ledger follows into an ApiKeyTable. Revoking writes the record
// again with revoked_ms set, so `cascade keys list` still shows it.
//
// A key's text is "csk-<id>.<secret>": the id (16 hex digits) finds the
// record, the secret (48 hex digits, 192 random bits) is checked against its
// hash in constant time. The tenant of a request comes from its key, never
// from the request.
//
// Threading: ApiKeyTable is safe from any thread (the follower applies while
// request threads authenticate). Everything else is pure or blocking as stated.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "kafka/kafka.h"

namespace cascade {

enum class KeyRole : std::uint8_t {
  tenant,  // the requests of one tenant
  admin,   // operator APIs (the ledger's HTTP API and dashboard), every tenant
};
std::string_view to_string(KeyRole role);

// One key as stored on the topic: never the secret itself.
struct ApiKeyRecord {
  std::string key_id;       // 16 hex digits
  std::string tenant;       // "" for an admin key
  std::string name;         // the operator's label ("ci", "web app")
  KeyRole role = KeyRole::tenant;
  std::string secret_sha256;  // hex SHA-256 of the secret part
  std::int64_t created_ms = 0;
  std::int64_t revoked_ms = 0;  // 0 = in force
  bool revoked() const { return revoked_ms != 0; }
};
std::string make_api_key_record(const ApiKeyRecord& record);
[[nodiscard]] Result<ApiKeyRecord> parse_api_key_record(std::string_view payload);

// A new key: its text (shown once) and the record to publish.
struct NewApiKey {
  std::string key;  // "csk-<id>.<secret>"
  ApiKeyRecord record;
};
// Draws the id and secret from the system's CSPRNG. Errors: invalid_request
// for a tenant key without a valid tenant, internal if no randomness.
[[nodiscard]] Result<NewApiKey> generate_api_key(std::string_view tenant, std::string_view name, KeyRole role,
                                                 std::int64_t now_ms);

// Who a request is: what a valid key resolves to.
struct Principal {
  std::string tenant;  // "" for an admin key
  std::string key_id;
  std::string name;
  KeyRole role = KeyRole::tenant;
};

// The keys in force, as followed from the topic.
class ApiKeyTable {
 public:
  // Applies one record of the topic (nullopt = a tombstone: the id is gone).
  [[nodiscard]] Result<void> apply(std::string_view key_id, std::optional<std::string_view> payload);
  // The principal of a key's text; unauthenticated (as an error with code
  // invalid_request and a message safe to show) when unknown, malformed or
  // revoked. Never logs or returns the key.
  [[nodiscard]] Result<Principal> authenticate(std::string_view key) const;
  std::vector<ApiKeyRecord> list() const;  // every record, revoked ones too, by id
  std::size_t active() const;              // keys in force

 private:
  mutable std::shared_mutex mu_;
  std::map<std::string, ApiKeyRecord, std::less<>> records_;
};

// Follows the keys topic into `table`: reads it to its end first (restore),
// then on a thread of its own. Errors: unavailable (no such topic), timeout.
[[nodiscard]] Result<std::unique_ptr<TopicFollower>> follow_api_keys(const KafkaConfig& config,
                                                                     const std::string& bootstrap,
                                                                     const std::string& topic,
                                                                     std::shared_ptr<ApiKeyTable> table,
                                                                     int restore_timeout_ms = 30000);

// The key's text from an HTTP request's headers: "Authorization: Bearer
// <key>" or "x-api-key: <key>" (Anthropic's SDKs); "" when neither.
std::string_view key_from_headers(std::string_view authorization, std::string_view x_api_key);

}  // namespace cascade
