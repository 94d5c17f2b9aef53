// The prompt event key (events/request_fingerprint.h, docs/events.md "Prompt
// event key"): what every Cascade producer keys prompt events by.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "events/request_fingerprint.h"

namespace cascade {
namespace {

using nlohmann::json;

constexpr int kDefaultMaxTokens = 1024;

std::string sha256_hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr), 1);
  std::string hex;
  char buf[3];
  for (unsigned int i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", digest[i]);
    hex += buf;
  }
  return hex;
}

PromptEvent parse(std::string_view text) {
  auto event = parse_prompt_event(text, PromptLimits{}, [](std::string_view) { return true; });
  EXPECT_TRUE(event) << (event ? "" : event.error().error.message);
  return event ? *event : PromptEvent{};
}

PromptEvent base_event() {
  return parse(R"({"id":"req-1","tenant":"acme","reply_to":"acme.replies",
                   "messages":[{"role":"system","content":"Answer in one sentence."},
                               {"role":"user","content":"What is the capital of France?"}]})");
}

std::string fingerprint(const PromptEvent& e) {
  auto fp = request_fingerprint(e, e.max_tokens.value_or(kDefaultMaxTokens));
  EXPECT_TRUE(fp);
  return fp ? *fp : std::string();
}

TEST(PromptEventKey, IsTheTenantASlashAndTheStartOfTheSha256OfItsCanonicalForm) {
  const PromptEvent e = base_event();
  EXPECT_EQ(canonical_prompt_key(e),
            "cascade.prompt-key.v1\ntenant 4:acme\nmodel 4:auto\npreference 8:balanced\n"
            "temperature -\nmessages a2[o2{s7:contents23:Answer in one sentence.s4:roles6:system}"
            "o2{s7:contents30:What is the capital of France?s4:roles4:user}]\n");
  EXPECT_EQ(prompt_event_key(e), "acme/" + sha256_hex(canonical_prompt_key(e)).substr(0, 32));
}

// The cases examples/python/prompt_key.py and examples/node/prompt_key.mjs
// are held to as well (ctest ExamplePromptKey*): every producer keys alike.
TEST(PromptEventKey, GivesTheKeysOfTheVectorsEveryProducerIsCheckedAgainst) {
  std::ifstream in(CASCADE_PROMPT_KEY_VECTORS);
  ASSERT_TRUE(in) << CASCADE_PROMPT_KEY_VECTORS;
  std::stringstream text;
  text << in.rdbuf();
  const json vectors = json::parse(text.str()).at("vectors");
  ASSERT_GE(vectors.size(), 10u);
  for (const auto& v : vectors) {
    const PromptEvent e = parse(v.at("event").dump());
    EXPECT_EQ(prompt_event_key(e), v.at("key").get<std::string>()) << v.at("name") << "\n" << canonical_prompt_key(e);
  }
}

TEST(PromptEventKey, IdenticalRequestsGetOneKeyWhateverTheirMaxTokensIdOrDelivery) {
  const PromptEvent a = base_event();
  const std::string key = prompt_event_key(a);
  std::vector<PromptEvent> same;
  auto variant = [&](auto change) {
    PromptEvent e = a;
    change(e);
    same.push_back(std::move(e));
  };
  variant([](PromptEvent& e) { e.id = "another"; });
  variant([](PromptEvent& e) { e.reply_to = "other.replies"; });
  variant([](PromptEvent& e) { e.metadata = {{"tags", {"x"}}}; });
  variant([](PromptEvent& e) { e.priority = Priority::batch; });
  variant([](PromptEvent& e) { e.stream = false; });
  variant([](PromptEvent& e) { e.cache = CacheMode::off; });
  // An absent max_tokens and the workers' default written out have one
  // fingerprint, and must meet: the key leaves max_tokens out altogether.
  variant([](PromptEvent& e) { e.max_tokens = kDefaultMaxTokens; });
  variant([](PromptEvent& e) { e.max_tokens = 7; });
  for (const PromptEvent& e : same) EXPECT_EQ(prompt_event_key(e), key) << to_json(e).dump();

  // Whatever its JSON spelling: what the worker reads is what was keyed.
  EXPECT_EQ(prompt_event_key(parse(R"({"messages":[{"content":"Answer in one sentence.","role":"system"},
      {"role":"user","content":"What is the capital of Fran\u0063e?"}],"tenant":"acme","id":"x","reply_to":"r",
      "model":null,"preference":"balanced","temperature":null})")),
            key);
}

// The other direction of "identical requests meet": everything the
// fingerprint tells apart, apart from max_tokens, spreads.
TEST(PromptEventKey, EveryOtherFieldThatShapesTheAnswerChangesIt) {
  const PromptEvent a = base_event();
  std::vector<std::pair<std::string, PromptEvent>> variants;
  auto variant = [&](std::string name, auto change) {
    PromptEvent e = a;
    change(e);
    variants.emplace_back(std::move(name), std::move(e));
  };
  variant("tenant", [](PromptEvent& e) { e.tenant = "acme2"; });
  variant("model", [](PromptEvent& e) { e.model = "gpt-4o-mini"; });
  variant("preference", [](PromptEvent& e) { e.preference = Preference::quality; });
  variant("temperature", [](PromptEvent& e) { e.temperature = 0.7; });
  variant("temperature 0", [](PromptEvent& e) { e.temperature = 0.0; });
  variant("content", [](PromptEvent& e) { e.messages[1]["content"] = "What is the capital of Spain?"; });
  variant("role", [](PromptEvent& e) { e.messages[0]["role"] = "developer"; });
  variant("response_format", [](PromptEvent& e) { e.response_format = {{"type", "json_object"}}; });
  variant("cascade on", [](PromptEvent& e) { e.cascade = true; });
  variant("cascade off", [](PromptEvent& e) { e.cascade = false; });
  variant("tools", [](PromptEvent& e) { e.tools = json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}}); });
  variant("tool_choice", [](PromptEvent& e) { e.tool_choice = "required"; });
  std::set<std::string> keys = {prompt_event_key(a)};
  std::set<std::string> fingerprints = {fingerprint(a)};
  for (const auto& [name, e] : variants) {
    EXPECT_TRUE(fingerprints.insert(fingerprint(e)).second) << name << ": the fingerprint tells it apart";
    EXPECT_TRUE(keys.insert(prompt_event_key(e)).second) << name << " did not change the key";
  }
}

TEST(PromptEventKey, TenantsNeverShareAKey) {
  // The tenant comes first, in clear, up to a '/' no tenant name has: two
  // tenants' keys differ in that prefix whatever their requests, even when a
  // name is the start of another.
  ASSERT_FALSE(valid_tenant("a/b"));
  PromptEvent a = base_event();
  PromptEvent b = a;
  a.tenant = "ab";
  b.tenant = "a";
  for (const PromptEvent& e : {a, b}) {
    const std::string key = prompt_event_key(e);
    EXPECT_EQ(key.substr(0, key.find('/')), e.tenant);
    EXPECT_EQ(key.size(), e.tenant.size() + 1 + kPromptEventKeyHexDigits);
  }
  EXPECT_NE(prompt_event_key(a), prompt_event_key(b));
}

TEST(PromptEventKey, OneTenantsDistinctRequestsGetDistinctKeys) {
  PromptEvent e = base_event();
  std::set<std::string> keys;
  for (int i = 0; i < 10000; ++i) {
    e.messages[1]["content"] = "Question number " + std::to_string(i);
    keys.insert(prompt_event_key(e));
  }
  EXPECT_EQ(keys.size(), 10000u);
}

}  // namespace
}  // namespace cascade
