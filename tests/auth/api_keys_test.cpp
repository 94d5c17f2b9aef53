// API keys as specification: what is stored (never the key), what
// authenticates, and what does not.
#include <gtest/gtest.h>

#include "auth/api_keys.h"

namespace cascade {
namespace {

TEST(ApiKeysTest, ANewKeyIsShownOnceAndOnlyItsHashIsStored) {
  auto key = generate_api_key("acme", "web app", KeyRole::tenant, 1700000000000);
  ASSERT_TRUE(key) << key.error().message;
  EXPECT_TRUE(key->key.starts_with("csk-" + key->record.key_id + "."));
  EXPECT_EQ(key->key.size(), 4u + 16 + 1 + 48);
  const std::string stored = make_api_key_record(key->record);
  const std::string secret = key->key.substr(4 + 16 + 1);
  EXPECT_EQ(stored.find(secret), std::string::npos);
  EXPECT_EQ(key->record.secret_sha256.size(), 64u);
  auto parsed = parse_api_key_record(stored);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->tenant, "acme");
  EXPECT_EQ(parsed->name, "web app");
  EXPECT_EQ(parsed->created_ms, 1700000000000);
  EXPECT_FALSE(parsed->revoked());
  auto other = generate_api_key("acme", "", KeyRole::tenant, 0);
  ASSERT_TRUE(other);
  EXPECT_NE(other->key, key->key);
}

TEST(ApiKeysTest, AKeyAuthenticatesAsItsTenantUntilRevoked) {
  ApiKeyTable table;
  auto key = generate_api_key("acme", "ci", KeyRole::tenant, 1);
  ASSERT_TRUE(key);
  ASSERT_TRUE(table.apply(key->record.key_id, make_api_key_record(key->record)));
  auto principal = table.authenticate(key->key);
  ASSERT_TRUE(principal) << principal.error().message;
  EXPECT_EQ(principal->tenant, "acme");
  EXPECT_EQ(principal->role, KeyRole::tenant);
  EXPECT_EQ(table.active(), 1u);

  ApiKeyRecord revoked = key->record;
  revoked.revoked_ms = 2;
  ASSERT_TRUE(table.apply(revoked.key_id, make_api_key_record(revoked)));
  auto refused = table.authenticate(key->key);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("revoked"), std::string::npos);
  EXPECT_EQ(table.active(), 0u);
  EXPECT_EQ(table.list().size(), 1u);  // still listed
  ASSERT_TRUE(table.apply(revoked.key_id, std::nullopt));  // a tombstone forgets it
  EXPECT_TRUE(table.list().empty());
}

TEST(ApiKeysTest, AWrongSecretAnUnknownIdAndAMalformedKeyAreRefusedAlike) {
  ApiKeyTable table;
  auto key = generate_api_key("acme", "", KeyRole::tenant, 1);
  ASSERT_TRUE(key);
  ASSERT_TRUE(table.apply(key->record.key_id, make_api_key_record(key->record)));
  std::string wrong = key->key;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  auto unknown = generate_api_key("acme", "", KeyRole::tenant, 1);
  for (const std::string& bad : {wrong, unknown->key, std::string("sk-not-ours"), std::string("")}) {
    auto result = table.authenticate(bad);
    ASSERT_FALSE(result) << bad;
    EXPECT_EQ(result.error().message.find(key->key.substr(21)), std::string::npos) << "never echoes a secret";
  }
  EXPECT_EQ(table.authenticate(wrong).error().message, table.authenticate(unknown->key).error().message);
}

TEST(ApiKeysTest, AdminKeysHaveNoTenantAndTenantKeysNeedAValidOne) {
  auto admin = generate_api_key("", "ops", KeyRole::admin, 1);
  ASSERT_TRUE(admin);
  EXPECT_TRUE(admin->record.tenant.empty());
  ApiKeyTable table;
  ASSERT_TRUE(table.apply(admin->record.key_id, make_api_key_record(admin->record)));
  EXPECT_EQ(table.authenticate(admin->key)->role, KeyRole::admin);
  EXPECT_FALSE(generate_api_key("acme corp", "", KeyRole::tenant, 1));
  EXPECT_FALSE(generate_api_key("", "", KeyRole::tenant, 1));
  EXPECT_FALSE(table.apply("0123456789abcdef", R"({"key_id":"0123456789abcdef"})"));
  EXPECT_FALSE(table.apply("ffffffffffffffff", make_api_key_record(admin->record)));  // key differs from its record
}

TEST(ApiKeysTest, TheKeyComesFromABearerTokenOrAnthropicsXApiKey) {
  EXPECT_EQ(key_from_headers("Bearer csk-1", ""), "csk-1");
  EXPECT_EQ(key_from_headers("bearer csk-1", "csk-2"), "csk-1");
  EXPECT_EQ(key_from_headers("", "csk-2"), "csk-2");
  EXPECT_EQ(key_from_headers("Basic abc", ""), "");
}

}  // namespace
}  // namespace cascade
