// mcp.* of the configuration: the documented defaults, overrides by file
// and env, and values that cannot work.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.h"
#include "support/config_file.h"
#include "support/env.h"

namespace cascade {
namespace {

using ::testing::HasSubstr;
using testing::env_of;
using testing::load_config_text;

TEST(McpConfig, DefaultsAreTheDocumentedOnes) {
  auto c = load_config("", env_of({}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->mcp.tenant, "");
  EXPECT_EQ(c->mcp.ledger_url, "");
  EXPECT_EQ(c->mcp.ledger_key_env, "");
  EXPECT_EQ(c->mcp.timeout_ms, 120000);
}

TEST(McpConfig, FileAndEnvSetEveryKey) {
  auto c = load_config_text("mcp:\n  tenant: acme\n  timeout_ms: 5000\n",
                            env_of({{"CASCADE_MCP_LEDGER_URL", "http://ledger.internal:9464"},
                                    {"CASCADE_MCP_LEDGER_KEY_ENV", "CASCADE_LEDGER_ADMIN_KEY"},
                                    {"CASCADE_MCP_TIMEOUT_MS", "30000"}}));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->mcp.tenant, "acme");
  EXPECT_EQ(c->mcp.ledger_url, "http://ledger.internal:9464");
  EXPECT_EQ(c->mcp.ledger_key_env, "CASCADE_LEDGER_ADMIN_KEY");
  EXPECT_EQ(c->mcp.timeout_ms, 30000);
  c = load_config("", env_of({{"CASCADE_MCP_TENANT", "globex"}}));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->mcp.tenant, "globex");
}

TEST(McpConfig, ValuesThatCannotWorkAreRefused) {
  auto c = load_config("", env_of({{"CASCADE_MCP_TENANT", "acme corp"}}));
  ASSERT_FALSE(c);
  EXPECT_THAT(c.error().message, HasSubstr("mcp.tenant"));
  c = load_config("", env_of({{"CASCADE_MCP_LEDGER_URL", "127.0.0.1:9464"}}));
  ASSERT_FALSE(c);
  EXPECT_THAT(c.error().message, HasSubstr("mcp.ledger_url"));
  c = load_config("", env_of({{"CASCADE_MCP_TIMEOUT_MS", "0"}}));
  ASSERT_FALSE(c);
  EXPECT_THAT(c.error().message, HasSubstr("mcp.timeout_ms"));
  c = load_config("", env_of({{"CASCADE_MCP_TIMEOUT_MS", "soon"}}));
  ASSERT_FALSE(c);
  EXPECT_THAT(c.error().message, HasSubstr("mcp.timeout_ms"));
}

}  // namespace
}  // namespace cascade
