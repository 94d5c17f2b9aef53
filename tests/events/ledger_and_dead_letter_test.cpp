#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "events/events.h"

namespace cascade {
namespace {

using nlohmann::json;

std::set<std::string> keys_of(const json& object) {
  std::set<std::string> keys;
  for (const auto& [key, value] : object.items()) keys.insert(key);
  return keys;
}

std::int64_t system_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string decode_base64(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    if (c == '=') break;
    const int v = value(c);
    if (v < 0) ADD_FAILURE() << "not base64: " << c;
    buffer = (buffer << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  return out;
}

CostEvent sample_cost() {
  CostEvent cost;
  cost.id = "req-7";
  cost.tenant = "acme";
  cost.ts_ms = 1'767'225'600'123;
  cost.model = "gpt-4o-mini";
  cost.provider = "openai";
  cost.usage =
      TokenUsage{.input_tokens = 900, .output_tokens = 120, .cached_tokens = 512, .cache_write_tokens = 64};
  cost.cost_usd = 0.0002061;
  cost.baseline_model = "gpt-4o";
  cost.baseline_cost_usd = 0.003450000000000001;
  cost.savings_usd = 0.0032439;
  cost.cache = CacheOutcome::exact;
  cost.latency_ms = 812.5;
  cost.ttft_ms = 143.25;
  cost.route_reason = "tier small: complexity 0.21 \xE2\x89\xA4 0.35";
  return cost;
}

// ---- cost ----------------------------------------------------------------------

TEST(CostEvent, HasExactlyTheSchemaFields) {
  const json cost = json::parse(make_cost_event(sample_cost()));
  EXPECT_EQ(keys_of(cost),
            (std::set<std::string>{"v", "id", "tenant", "ts", "model", "provider", "input_tokens",
                                   "output_tokens", "cached_tokens", "cache_write_tokens",
                                   "cost_usd", "baseline_model", "baseline_cost_usd",
                                   "savings_usd", "cache", "latency_ms", "ttft_ms",
                                   "route_reason"}));
  EXPECT_EQ(cost["cache_write_tokens"], 64);
  EXPECT_EQ(cost["v"], 1);
  EXPECT_EQ(cost["ts"], 1'767'225'600'123);
  EXPECT_EQ(cost["cache"], "exact");
}

TEST(CostEvent, RoundTripsEveryField) {
  for (auto outcome : {CacheOutcome::miss, CacheOutcome::exact, CacheOutcome::semantic}) {
    CostEvent original = sample_cost();
    original.cache = outcome;
    auto parsed = parse_cost_event(make_cost_event(original));
    ASSERT_TRUE(parsed) << parsed.error().message;
    EXPECT_EQ(parsed->id, original.id);
    EXPECT_EQ(parsed->tenant, original.tenant);
    EXPECT_EQ(parsed->ts_ms, original.ts_ms);
    EXPECT_EQ(parsed->model, original.model);
    EXPECT_EQ(parsed->provider, original.provider);
    EXPECT_EQ(parsed->usage.input_tokens, original.usage.input_tokens);
    EXPECT_EQ(parsed->usage.output_tokens, original.usage.output_tokens);
    EXPECT_EQ(parsed->usage.cached_tokens, original.usage.cached_tokens);
    EXPECT_EQ(parsed->usage.cache_write_tokens, original.usage.cache_write_tokens);
    EXPECT_EQ(parsed->cost_usd, original.cost_usd);
    EXPECT_EQ(parsed->baseline_model, original.baseline_model);
    EXPECT_EQ(parsed->baseline_cost_usd, original.baseline_cost_usd);
    EXPECT_EQ(parsed->savings_usd, original.savings_usd);
    EXPECT_EQ(parsed->cache, original.cache);
    EXPECT_EQ(parsed->latency_ms, original.latency_ms);
    EXPECT_EQ(parsed->ttft_ms, original.ttft_ms);
    EXPECT_EQ(parsed->route_reason, original.route_reason);
  }
}

TEST(CostEvent, EventsWrittenBeforeCacheWriteTokensStillParse) {
  json cost = json::parse(make_cost_event(sample_cost()));
  cost.erase("cache_write_tokens");
  auto parsed = parse_cost_event(cost.dump());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->usage.cache_write_tokens, 0);
  EXPECT_EQ(parsed->usage.input_tokens, 900);
  EXPECT_EQ(parsed->usage.cached_tokens, 512);
}

TEST(CostEvent, PriceVersionTagsAndBatchRoundTripAndAreOptional) {
  CostEvent original = sample_cost();
  original.price_version = "litellm-2026-07";
  original.tags = {"research", "nightly"};
  original.batch = true;
  original.usage.reasoning_tokens = 40;
  const json written = json::parse(make_cost_event(original));
  EXPECT_EQ(written["price_version"], "litellm-2026-07");
  EXPECT_EQ(written["tags"], json::array({"research", "nightly"}));
  EXPECT_EQ(written["batch"], true);
  auto parsed = parse_cost_event(written.dump());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->price_version, "litellm-2026-07");
  EXPECT_EQ(parsed->tags, original.tags);
  EXPECT_TRUE(parsed->batch);
  EXPECT_EQ(parsed->usage.reasoning_tokens, 40);
  // Events written before these fields existed read as unversioned, untagged, standard billing.
  auto old = parse_cost_event(make_cost_event(sample_cost()));
  ASSERT_TRUE(old);
  EXPECT_TRUE(old->price_version.empty());
  EXPECT_TRUE(old->tags.empty());
  EXPECT_FALSE(old->batch);
}

TEST(CostEvent, PolicyRoundTripsAndIsAbsentWhenEmpty) {
  CostEvent original = sample_cost();
  original.policy = "thrift:frugal";
  const json written = json::parse(make_cost_event(original));
  EXPECT_EQ(written["policy"], "thrift:frugal");
  auto parsed = parse_cost_event(written.dump());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->policy, "thrift:frugal");

  EXPECT_FALSE(json::parse(make_cost_event(sample_cost())).contains("policy"));
  auto old = parse_cost_event(make_cost_event(sample_cost()));
  ASSERT_TRUE(old);
  EXPECT_EQ(old->policy, "");

  json mistyped = written;
  mistyped["policy"] = 3;
  auto bad = parse_cost_event(mistyped.dump());
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("policy"), std::string::npos) << bad.error().message;
}

TEST(CostEvent, MistypedTagsOrBatchAreRejected) {
  json cost = json::parse(make_cost_event(sample_cost()));
  cost["tags"] = json::array({"ok", 3});
  auto bad_tags = parse_cost_event(cost.dump());
  ASSERT_FALSE(bad_tags);
  EXPECT_NE(bad_tags.error().message.find("tags"), std::string::npos) << bad_tags.error().message;
  cost.erase("tags");
  cost["batch"] = "yes";
  EXPECT_FALSE(parse_cost_event(cost.dump()));
}

TEST(CostEvent, NegativeSavingsRoundTrip) {
  CostEvent original = sample_cost();
  original.savings_usd = -0.0015;  // a quality-first route can cost more than the baseline
  auto parsed = parse_cost_event(make_cost_event(original));
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->savings_usd, -0.0015);
}

TEST(CostEvent, IntegerValuedCostsAreReadAsNumbers) {
  json cost = json::parse(make_cost_event(sample_cost()));
  cost["cost_usd"] = 0;
  cost["latency_ms"] = 12;
  auto parsed = parse_cost_event(cost.dump());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->cost_usd, 0.0);
  EXPECT_EQ(parsed->latency_ms, 12.0);
}

struct GarbageCase {
  std::string name;
  std::string payload;
  std::string message_contains;
};

void PrintTo(const GarbageCase& c, std::ostream* os) { *os << c.name; }

std::string cost_with(const std::string& key, const json& value) {
  json cost = json::parse(make_cost_event(sample_cost()));
  cost[key] = value;
  return cost.dump();
}

std::string cost_without(const std::string& key) {
  json cost = json::parse(make_cost_event(sample_cost()));
  cost.erase(key);
  return cost.dump();
}

std::vector<GarbageCase> cost_garbage() {
  std::vector<GarbageCase> cases = {
      {"empty", "", "not valid JSON"},
      {"text", "cost: 5", "not valid JSON"},
      {"array", "[1]", "must be a JSON object"},
      {"ts_negative", cost_with("ts", -1), "'ts'"},
      {"ts_string", cost_with("ts", "2026-01-01"), "'ts'"},
      {"tokens_negative", cost_with("output_tokens", -2), "'output_tokens'"},
      {"tokens_float", cost_with("input_tokens", 1.5), "'input_tokens'"},
      {"cache_write_negative", cost_with("cache_write_tokens", -5), "'cache_write_tokens'"},
      {"cache_write_float", cost_with("cache_write_tokens", 2.5), "'cache_write_tokens'"},
      {"cost_string", cost_with("cost_usd", "cheap"), "'cost_usd'"},
      {"cache_unknown", cost_with("cache", "hit"), "'cache'"},
      {"tenant_number", cost_with("tenant", 1), "'tenant'"},
  };
  for (const char* key : {"id", "tenant", "ts", "model", "provider", "input_tokens",
                          "output_tokens", "cached_tokens", "cost_usd", "baseline_model",
                          "baseline_cost_usd", "savings_usd", "cache", "latency_ms", "ttft_ms",
                          "route_reason"}) {
    cases.push_back({std::string("missing_") + key, cost_without(key), std::string("'") + key + "'"});
  }
  return cases;
}

class CostGarbage : public ::testing::TestWithParam<GarbageCase> {};

TEST_P(CostGarbage, IsInvalidRequestNamingTheProblem) {
  const GarbageCase& c = GetParam();
  Result<CostEvent> parsed;
  ASSERT_NO_THROW(parsed = parse_cost_event(c.payload));
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().code, ErrorCode::invalid_request);
  EXPECT_NE(parsed.error().message.find(c.message_contains), std::string::npos)
      << parsed.error().message;
}

INSTANTIATE_TEST_SUITE_P(Payloads, CostGarbage, ::testing::ValuesIn(cost_garbage()),
                         [](const auto& info) { return info.param.name; });

// ---- dead letter -----------------------------------------------------------------

DeadLetter sample_letter(std::string payload) {
  DeadLetter letter;
  letter.reason = "'temperature' must be a number between 0 and 2, got 3";
  letter.source_topic = "cascade.requests";
  letter.source_partition = 3;
  letter.source_offset = 1'234'567;
  letter.id = "req-1";
  letter.tenant = "acme";
  letter.payload = std::move(payload);
  return letter;
}

TEST(DeadLetter, CarriesReasonSourceIdentityAndPayload) {
  const std::int64_t before = system_clock_ms();
  const json letter = json::parse(make_dead_letter(sample_letter(R"({"id":"req-1"})")));
  const std::int64_t after = system_clock_ms();
  EXPECT_EQ(keys_of(letter),
            (std::set<std::string>{"v", "reason", "source", "id", "tenant", "payload", "ts"}));
  EXPECT_EQ(letter["v"], 1);
  EXPECT_EQ(letter["reason"], "'temperature' must be a number between 0 and 2, got 3");
  EXPECT_EQ(letter["source"], (json{{"topic", "cascade.requests"}, {"partition", 3},
                                    {"offset", 1'234'567}}));
  EXPECT_EQ(letter["id"], "req-1");
  EXPECT_EQ(letter["tenant"], "acme");
  EXPECT_EQ(letter["payload"], R"({"id":"req-1"})");
  EXPECT_GE(letter["ts"].get<std::int64_t>(), before);
  EXPECT_LE(letter["ts"].get<std::int64_t>(), after);
}

TEST(DeadLetter, OmitsUnknownIdentity) {
  DeadLetter input = sample_letter("garbage");
  input.id.reset();
  input.tenant.reset();
  const json letter = json::parse(make_dead_letter(input));
  EXPECT_FALSE(letter.contains("id"));
  EXPECT_FALSE(letter.contains("tenant"));
  EXPECT_FALSE(letter.contains("payload_truncated"));
  EXPECT_EQ(letter["payload"], "garbage");
}

TEST(DeadLetter, PayloadOfExactly64KiBIsKeptWhole) {
  const std::string payload(64 * 1024, 'p');
  const json letter = json::parse(make_dead_letter(sample_letter(payload)));
  EXPECT_EQ(letter["payload"], payload);
  EXPECT_FALSE(letter.contains("payload_truncated"));
}

TEST(DeadLetter, LongerPayloadIsTruncatedTo64KiBAndFlagged) {
  const std::string payload(64 * 1024 + 1, 'p');
  const json letter = json::parse(make_dead_letter(sample_letter(payload)));
  EXPECT_EQ(letter["payload"].get<std::string>().size(), 64u * 1024);
  EXPECT_EQ(letter["payload_truncated"], true);
}

TEST(DeadLetter, TruncationDoesNotSplitAMultiByteCharacter) {
  // A 4-byte emoji straddles the 64 KiB boundary.
  std::string payload(64 * 1024 - 2, 'a');
  payload += "\xF0\x9F\x98\x80";
  payload += "tail";
  const json letter = json::parse(make_dead_letter(sample_letter(payload)));
  ASSERT_TRUE(letter.contains("payload")) << "valid UTF-8 should stay text";
  EXPECT_EQ(letter["payload"], std::string(64 * 1024 - 2, 'a'));
  EXPECT_EQ(letter["payload_truncated"], true);
}

TEST(DeadLetter, UnicodePayloadStaysText) {
  const std::string payload = "{\"content\":\"\xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80\"}";
  const json letter = json::parse(make_dead_letter(sample_letter(payload)));
  EXPECT_EQ(letter["payload"], payload);
  EXPECT_FALSE(letter.contains("payload_base64"));
}

TEST(DeadLetter, InvalidUtf8PayloadIsStoredAsBase64) {
  for (const std::string& payload :
       {std::string("\xFF"), std::string("\xFF\xFE"), std::string("\xFF\xFE\xFD"),
        std::string("{\"id\":\"a\xC3\"}"), std::string("\xED\xA0\x80"),  // UTF-16 surrogate
        std::string("\xC0\xAF"),                                          // overlong '/'
        std::string("\xF4\x90\x80\x80"),                                  // above U+10FFFF
        std::string("ok\0\x80", 4)}) {
    std::string text;
    ASSERT_NO_THROW(text = make_dead_letter(sample_letter(payload)));
    const json letter = json::parse(text);
    EXPECT_FALSE(letter.contains("payload")) << text;
    ASSERT_TRUE(letter.contains("payload_base64")) << text;
    EXPECT_EQ(decode_base64(letter["payload_base64"].get<std::string>()), payload);
  }
}

TEST(DeadLetter, Base64UsesStandardAlphabetWithPadding) {
  EXPECT_EQ(json::parse(make_dead_letter(sample_letter("\xFF")))["payload_base64"], "/w==");
  EXPECT_EQ(json::parse(make_dead_letter(sample_letter("\xFF\xFE")))["payload_base64"], "//4=");
  EXPECT_EQ(json::parse(make_dead_letter(sample_letter("\xFF\xFE\xFD")))["payload_base64"],
            "//79");
  EXPECT_EQ(json::parse(make_dead_letter(sample_letter("\x80Man")))["payload_base64"], "gE1hbg==");
}

TEST(DeadLetter, LongInvalidUtf8PayloadIsTruncatedBase64) {
  std::string payload(100 * 1024, 'x');
  payload[10] = '\xFF';
  const json letter = json::parse(make_dead_letter(sample_letter(payload)));
  ASSERT_TRUE(letter.contains("payload_base64"));
  EXPECT_EQ(decode_base64(letter["payload_base64"].get<std::string>()), payload.substr(0, 64 * 1024));
  EXPECT_EQ(letter["payload_truncated"], true);
}

TEST(DeadLetter, InvalidUtf8PastTheCutStillLeavesTextPayload) {
  std::string payload(64 * 1024, 'x');
  payload += "\xFF";
  const json letter = json::parse(make_dead_letter(sample_letter(payload)));
  EXPECT_EQ(letter["payload"], std::string(64 * 1024, 'x'));
  EXPECT_EQ(letter["payload_truncated"], true);
}

TEST(DeadLetter, InvalidUtf8InReasonOrIdentityStaysValidJson) {
  DeadLetter input = sample_letter("x");
  input.reason = "bad \xFF reason";
  input.id = "id\xC3";
  input.source_topic = "topic\xFE";
  std::string text;
  ASSERT_NO_THROW(text = make_dead_letter(input));
  EXPECT_TRUE(json::accept(text));
}

TEST(DeadLetter, RecordsRejectionOfAPromptEndToEnd) {
  const std::string payload =
      R"({"id":"req-5","tenant":"acme","reply_to":"acme.replies","messages":[],"x":1})";
  auto rejected = parse_prompt_event(payload, PromptLimits{}, ModelExists{});
  ASSERT_FALSE(rejected);
  DeadLetter input{.reason = rejected.error().error.message,
                   .source_topic = "cascade.requests",
                   .source_partition = 0,
                   .source_offset = 9,
                   .id = rejected.error().id,
                   .tenant = rejected.error().tenant,
                   .payload = payload};
  const json letter = json::parse(make_dead_letter(input));
  EXPECT_EQ(letter["id"], "req-5");
  EXPECT_EQ(letter["tenant"], "acme");
  EXPECT_NE(letter["reason"].get<std::string>().find("'messages'"), std::string::npos);
  EXPECT_EQ(json::parse(letter["payload"].get<std::string>()), json::parse(payload));
}

// ---- clock -----------------------------------------------------------------------

TEST(Clock, NowMsIsSystemClockEpochMilliseconds) {
  const std::int64_t before = system_clock_ms();
  const std::int64_t now = now_ms();
  const std::int64_t after = system_clock_ms();
  EXPECT_GE(now, before);
  EXPECT_LE(now, after);
  EXPECT_GT(now, 1'600'000'000'000);  // after 2020: epoch milliseconds, not seconds or ticks
}

// ---- cost: reasoning tokens (added after v1 shipped) ---------------------------

TEST(CostEvent, ReasoningTokensRoundTripAndAreWrittenAtTopLevel) {
  CostEvent original = sample_cost();
  original.usage.reasoning_tokens = 96;
  const std::string event = make_cost_event(original);
  EXPECT_EQ(json::parse(event)["reasoning_tokens"], 96);
  auto parsed = parse_cost_event(event);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->usage.reasoning_tokens, 96);
  EXPECT_EQ(parsed->usage.output_tokens, original.usage.output_tokens);
}

TEST(CostEvent, ZeroReasoningTokensAreNotWritten) {
  EXPECT_FALSE(json::parse(make_cost_event(sample_cost())).contains("reasoning_tokens"));
}

TEST(CostEvent, EventsWrittenBeforeReasoningTokensStillParse) {
  json cost = json::parse(make_cost_event(sample_cost()));
  cost.erase("reasoning_tokens");
  auto parsed = parse_cost_event(cost.dump());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->usage.reasoning_tokens, 0);

  cost["reasoning_tokens"] = nullptr;
  parsed = parse_cost_event(cost.dump());
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->usage.reasoning_tokens, 0);
}

INSTANTIATE_TEST_SUITE_P(
    ReasoningTokens, CostGarbage,
    ::testing::Values(GarbageCase{"negative", cost_with("reasoning_tokens", -1), "'reasoning_tokens'"},
                      GarbageCase{"float", cost_with("reasoning_tokens", 0.5), "'reasoning_tokens'"},
                      GarbageCase{"string", cost_with("reasoning_tokens", "9"), "'reasoning_tokens'"}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace cascade
