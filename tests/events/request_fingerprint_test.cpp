#include "events/request_fingerprint.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <set>
#include <string>
#include <vector>

namespace cascade {
namespace {

using nlohmann::json;

constexpr int kDefaultMaxTokens = 1024;

// One-shot SHA-256, independent of the incremental hashing under test.
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
  auto event = parse_prompt_event(text, PromptLimits{}, [](std::string_view id) { return id == "gpt-4o-mini"; });
  EXPECT_TRUE(event) << (event ? "" : event.error().error.message);
  return event ? *event : PromptEvent{};
}

PromptEvent base_event() {
  return parse(R"({"id":"req-1","tenant":"acme","reply_to":"acme.replies",
                   "messages":[{"role":"system","content":"Answer in one sentence."},
                               {"role":"user","content":"What is the capital of France?"}]})");
}

std::string fingerprint(const PromptEvent& e, int max_tokens = kDefaultMaxTokens) {
  auto fp = request_fingerprint(e, max_tokens);
  EXPECT_TRUE(fp) << (fp ? "" : fp.error().message);
  return fp ? *fp : std::string();
}

TEST(RequestFingerprint, TheSha256HelperOfTheseTestsMatchesTheStandardTestVector) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(RequestFingerprint, IsTheLowercaseHexSha256OfTheCanonicalSerialization) {
  const PromptEvent e = base_event();
  const std::string fp = fingerprint(e);
  EXPECT_EQ(fp.size(), 64u);
  EXPECT_EQ(fp.find_first_not_of("0123456789abcdef"), std::string::npos) << fp;
  EXPECT_EQ(fp, sha256_hex(canonical_request(e, kDefaultMaxTokens)));
}

TEST(RequestFingerprint, LargeAndManySmallPiecesHashLikeTheWholeSerialization) {
  // Content larger than the hashing buffer, and many pieces that cross its
  // boundary at every offset.
  PromptEvent e = base_event();
  e.messages.push_back({{"role", "user"}, {"content", std::string(10000, 'x') + "\xF0\x9F\x87\xAB"}});
  for (int i = 0; i < 700; ++i) e.messages.push_back({{"role", "assistant"}, {"content", std::string(i % 13, 'y')}});
  EXPECT_EQ(fingerprint(e, 77), sha256_hex(canonical_request(e, 77)));
}

TEST(RequestFingerprint, CanonicalSerializationIsTheDocumentedVersionedFormat) {
  PromptEvent e = parse(R"({"id":"x","tenant":"acme","reply_to":"r","model":"gpt-4o-mini","preference":"cost",
      "temperature":0.5,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"u"}},{"type":"text","text":"hé"}],
      "n":-3,"u":7,"f":1.5,"t":true,"z":false,"nul":null}]})");
  EXPECT_EQ(canonical_request(e, 200),
            "cascade.request-fingerprint.v1\n"
            "tenant 4:acme\n"
            "model 11:gpt-4o-mini\n"
            "preference 4:cost\n"
            "max_tokens 200\n"
            "temperature 0.5\n"
            "messages a1[o8{s7:contenta2[o2{s9:image_urlo1{s3:urls1:u}s4:types9:image_url}o2{s4:texts3:h\xC3\xA9s4:types4:text}]s1:fd1.5;s1:ni-3;s3:nulns4:roles4:user"
            "s1:tts1:ui7;s1:zf}]\n");
  e.temperature.reset();
  EXPECT_NE(canonical_request(e, 200).find("\ntemperature -\n"), std::string::npos);
}

// Pins the v1 serialization and hash: keys persisted by the response cache
// stay valid only while this holds. A deliberate change bumps the version.
// The hex value was computed outside Cascade (Python hashlib) from these bytes.
TEST(RequestFingerprint, IsStableForAFixedRequest) {
  EXPECT_EQ(canonical_request(base_event(), kDefaultMaxTokens),
            "cascade.request-fingerprint.v1\ntenant 4:acme\nmodel 4:auto\npreference 8:balanced\n"
            "max_tokens 1024\ntemperature -\nmessages a2[o2{s7:contents23:Answer in one sentence.s4:roles6:system}"
            "o2{s7:contents30:What is the capital of France?s4:roles4:user}]\n");
  EXPECT_EQ(fingerprint(base_event()), "c9e6639a7edccdf3fdb21f5d476b6f447094ed56da6077f059ef7039737b14d2");
}

TEST(RequestFingerprint, TheSameRequestGivesTheSameKeyWhateverItsJsonSpelling) {
  const PromptEvent a = base_event();
  const PromptEvent b = parse(R"({ "messages" : [ { "content":"Answer in one sentence.", "role":"system" },
      {"content":"What is the capital of Fran\u0063e?","role":"user"} ],
      "reply_to":"acme.replies", "tenant":"acme", "id":"req-1",
      "model":"auto", "preference":"balanced", "max_tokens":null, "temperature":null })");
  EXPECT_EQ(fingerprint(a), fingerprint(b));
  EXPECT_EQ(canonical_request(a, kDefaultMaxTokens), canonical_request(b, kDefaultMaxTokens));
  // An absent max_tokens and the default written out are the same request:
  // the caller passes the effective value.
  PromptEvent explicit_default = a;
  explicit_default.max_tokens = kDefaultMaxTokens;
  EXPECT_EQ(fingerprint(a, a.max_tokens.value_or(kDefaultMaxTokens)),
            fingerprint(explicit_default, explicit_default.max_tokens.value_or(kDefaultMaxTokens)));
  // An integer is the same number whether the parser or code stored it.
  PromptEvent parsed_int = parse(R"({"id":"i","tenant":"acme","reply_to":"r",
      "messages":[{"role":"user","content":"x","k":7}]})");
  PromptEvent built_int = parsed_int;
  built_int.messages[0]["k"] = static_cast<std::int64_t>(7);
  ASSERT_TRUE(parsed_int.messages[0]["k"].is_number_unsigned());
  ASSERT_TRUE(built_int.messages[0]["k"].is_number_integer() && !built_int.messages[0]["k"].is_number_unsigned());
  EXPECT_EQ(fingerprint(parsed_int), fingerprint(built_int));
}

TEST(RequestFingerprint, WhoAskedAndHowTheAnswerIsDeliveredDoNotChangeIt) {
  const PromptEvent a = base_event();
  const std::string fp = fingerprint(a);
  PromptEvent e = a;
  e.id = "another-id";
  EXPECT_EQ(fingerprint(e), fp);
  e = a;
  e.reply_to = "other.replies";
  EXPECT_EQ(fingerprint(e), fp);
  e = a;
  e.metadata = {{"trace_id", "t-1"}, {"user", "u-17"}};
  EXPECT_EQ(fingerprint(e), fp);
  e = a;
  e.priority = Priority::batch;
  EXPECT_EQ(fingerprint(e), fp);
  e = a;
  e.stream = false;
  EXPECT_EQ(fingerprint(e), fp);
  e = a;
  e.cache = CacheMode::semantic;
  EXPECT_EQ(fingerprint(e), fp);
}

TEST(RequestFingerprint, EveryFieldThatShapesTheAnswerChangesIt) {
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
  variant("max_tokens", [](PromptEvent& e) { e.max_tokens = 1023; });
  variant("temperature", [](PromptEvent& e) { e.temperature = 0.7; });
  variant("temperature 0", [](PromptEvent& e) { e.temperature = 0.0; });
  variant("content", [](PromptEvent& e) { e.messages[1]["content"] = "What is the capital of Spain?"; });
  variant("trailing space", [](PromptEvent& e) { e.messages[1]["content"] = "What is the capital of France? "; });
  variant("case", [](PromptEvent& e) { e.messages[1]["content"] = "what is the capital of France?"; });
  variant("role", [](PromptEvent& e) { e.messages[0]["role"] = "developer"; });
  variant("message field", [](PromptEvent& e) { e.messages[1]["name"] = "alice"; });
  variant("message order", [](PromptEvent& e) { std::swap(e.messages[0], e.messages[1]); });
  variant("extra message", [](PromptEvent& e) { e.messages.push_back({{"role", "user"}, {"content", ""}}); });
  variant("content parts", [](PromptEvent& e) {
    e.messages[1]["content"] = json::array({{{"type", "text"}, {"text", "What is the capital of France?"}}});
  });

  std::set<std::string> keys = {fingerprint(a)};
  for (const auto& [name, e] : variants) {
    const int max_tokens = e.max_tokens.value_or(kDefaultMaxTokens);
    EXPECT_TRUE(keys.insert(fingerprint(e, max_tokens)).second) << name << " did not change the fingerprint";
  }
  // The effective max_tokens the caller passes is part of it too.
  EXPECT_NE(fingerprint(a, 1024), fingerprint(a, 1025));
}

TEST(RequestFingerprint, TheTenantAlwaysSeparatesIdenticalRequests) {
  PromptEvent a = base_event();
  PromptEvent b = a;
  b.tenant = "globex";
  EXPECT_NE(fingerprint(a), fingerprint(b));
  // Not even a tenant name that is a prefix of another and shifted bytes meet.
  a.tenant = "ab";
  a.model = "auto";
  b.tenant = "a";
  b.model = "bauto";
  EXPECT_NE(fingerprint(a), fingerprint(b));
}

TEST(RequestFingerprint, DifferentValuesThatPrintAlikeStayDifferent) {
  auto with_content = [](json content) {
    PromptEvent e = base_event();
    e.messages = json::array({{{"role", "user"}, {"content", std::move(content)}}});
    return e;
  };
  auto two_messages = [](std::string first, std::string second) {
    PromptEvent e = base_event();
    e.messages = json::array({{{"role", "user"}, {"content", std::move(first)}},
                              {{"role", "user"}, {"content", std::move(second)}}});
    return e;
  };
  std::set<std::string> keys;
  for (const PromptEvent& e : {
           two_messages("ab", "c"), two_messages("a", "bc"), two_messages("", "abc"),
           with_content(json::array({"ab"})), with_content(json::array({"a", "b"})),
           with_content(5), with_content(5.0), with_content("5"), with_content(-5), with_content(nullptr),
           with_content(true), with_content("true"), with_content(json::object()), with_content(json::array()),
           with_content("s1:a"), with_content(json::array({"s1:a"})),
       }) {
    EXPECT_TRUE(keys.insert(canonical_request(e, 1)).second) << canonical_request(e, 1);
  }
}

TEST(RequestFingerprint, InvalidUtf8InABuiltEventIsHashedByteExactWithoutThrowing) {
  PromptEvent a = base_event();
  PromptEvent b = base_event();
  a.messages[1]["content"] = std::string("caf\xE9");
  b.messages[1]["content"] = std::string("caf\xE8");
  EXPECT_NE(fingerprint(a), fingerprint(b));
}

}  // namespace
}  // namespace cascade
