// Event fields of the cheap-first cascade and quality sampling: a prompt's
// "cascade" and "response_format", their place in the request fingerprint,
// and the quality event.
#include <gtest/gtest.h>

#include "events/events.h"
#include "events/quality_event.h"
#include "events/request_fingerprint.h"

namespace cascade {
namespace {

using nlohmann::json;

json minimal_event() {
  return {{"id", "req-1"},
          {"tenant", "acme"},
          {"reply_to", "acme.replies"},
          {"messages", json::array({{{"role", "user"}, {"content", "hello"}}})}};
}

std::expected<PromptEvent, RejectedPrompt> parse(const json& event) {
  return parse_prompt_event(event.dump(), PromptLimits{}, nullptr);
}

TEST(PromptCascadeFields, AbsentOrNullMeanTheConfigDecidesAndNoFormat) {
  auto event = parse(minimal_event());
  ASSERT_TRUE(event);
  EXPECT_FALSE(event->cascade.has_value());
  EXPECT_TRUE(event->response_format.is_null());
  json with_nulls = minimal_event();
  with_nulls["cascade"] = nullptr;
  with_nulls["response_format"] = nullptr;
  event = parse(with_nulls);
  ASSERT_TRUE(event);
  EXPECT_FALSE(event->cascade.has_value());
  EXPECT_TRUE(event->response_format.is_null());
}

TEST(PromptCascadeFields, AreReadAndWrittenBack) {
  json j = minimal_event();
  j["cascade"] = false;
  j["response_format"] = {{"type", "json_object"}};
  auto event = parse(j);
  ASSERT_TRUE(event) << event.error().error.message;
  ASSERT_TRUE(event->cascade.has_value());
  EXPECT_FALSE(*event->cascade);
  EXPECT_EQ(event->response_format, json({{"type", "json_object"}}));
  const json out = to_json(*event);
  EXPECT_EQ(out["cascade"], false);
  EXPECT_EQ(out["response_format"], j["response_format"]);
  auto again = parse(out);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->cascade, event->cascade);
  EXPECT_EQ(again->response_format, event->response_format);
  EXPECT_FALSE(to_json(*parse(minimal_event())).contains("cascade"));
  EXPECT_FALSE(to_json(*parse(minimal_event())).contains("response_format"));
}

TEST(PromptCascadeFields, WrongTypesAreRejectedByName) {
  json j = minimal_event();
  j["cascade"] = "yes";
  auto event = parse(j);
  ASSERT_FALSE(event);
  EXPECT_EQ(event.error().error.message, "'cascade' must be true or false, got 'yes'");
  for (const json& bad : {json("json_object"), json::object(), json({{"type", 1}})}) {
    j = minimal_event();
    j["response_format"] = bad;
    event = parse(j);
    ASSERT_FALSE(event) << bad.dump();
    EXPECT_EQ(event.error().error.message.rfind("'response_format' must be an object with a string 'type'", 0), 0u)
        << event.error().error.message;
  }
}

TEST(RequestFingerprintCascadeFields, RequestsWithoutThemKeepTheirFingerprint) {
  auto event = parse(minimal_event());
  ASSERT_TRUE(event);
  const std::string canonical = canonical_request(*event, 1024);
  EXPECT_EQ(canonical.find("response_format"), std::string::npos);
  EXPECT_EQ(canonical.find("cascade "), std::string::npos);
  EXPECT_EQ(canonical.substr(canonical.size() - 1), "\n");
}

TEST(RequestFingerprintCascadeFields, EachChangesTheFingerprint) {
  PromptEvent plain = *parse(minimal_event());
  PromptEvent json_mode = plain;
  json_mode.response_format = {{"type", "json_object"}};
  PromptEvent cascaded = plain;
  cascaded.cascade = true;
  PromptEvent not_cascaded = plain;
  not_cascaded.cascade = false;
  const std::vector<std::string> keys = {*request_fingerprint(plain, 1024), *request_fingerprint(json_mode, 1024),
                                         *request_fingerprint(cascaded, 1024),
                                         *request_fingerprint(not_cascaded, 1024)};
  for (std::size_t i = 0; i < keys.size(); ++i)
    for (std::size_t j = i + 1; j < keys.size(); ++j) EXPECT_NE(keys[i], keys[j]) << i << " " << j;
  EXPECT_NE(canonical_request(json_mode, 1024).find("response_format o1{s4:types11:json_object}\n"), std::string::npos)
      << canonical_request(json_mode, 1024);
  EXPECT_NE(canonical_request(cascaded, 1024).find("\ncascade t\n"), std::string::npos);
}

QualityEvent sample() {
  QualityEvent e;
  e.id = "req-1";
  e.tenant = "acme";
  e.model = "gpt-4o-mini";
  e.provider = "openai";
  e.tier = "small";
  e.judge_model = "gpt-4o";
  e.score = 4;
  e.ts_ms = 1767225600123;
  e.route_reason = "heuristic score=0.10 pref=cost tier=small | cascade: gpt-4o-mini accepted";
  e.judge_cost_usd = 0.00042;
  e.sample_rate = 0.05;
  return e;
}

TEST(QualityEventSchema, RoundTripsEveryField) {
  const QualityEvent e = sample();
  const std::string payload = make_quality_event(e);
  const json j = json::parse(payload);
  EXPECT_EQ(j["v"], 1);
  EXPECT_EQ(j["ts"], 1767225600123);
  auto back = parse_quality_event(payload);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->id, e.id);
  EXPECT_EQ(back->tenant, e.tenant);
  EXPECT_EQ(back->model, e.model);
  EXPECT_EQ(back->provider, e.provider);
  EXPECT_EQ(back->tier, e.tier);
  EXPECT_EQ(back->judge_model, e.judge_model);
  EXPECT_EQ(back->score, e.score);
  EXPECT_EQ(back->ts_ms, e.ts_ms);
  EXPECT_EQ(back->route_reason, e.route_reason);
  EXPECT_DOUBLE_EQ(back->judge_cost_usd, e.judge_cost_usd);
  EXPECT_DOUBLE_EQ(back->sample_rate, e.sample_rate);
}

TEST(QualityEventSchema, OptionalFieldsMayBeAbsentAndUnknownOnesAreIgnored) {
  auto e = parse_quality_event(
      R"({"v":2,"id":"r","tenant":"t","model":"m","tier":"small","judge_model":"j","score":2.5,"ts":5,"new":true})");
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_EQ(e->score, 2.5);
  EXPECT_EQ(e->provider, "");
  EXPECT_EQ(e->judge_cost_usd, 0);
}

TEST(QualityEventSchema, RefusesWhatIsNotAQualityEventNamingTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {"[]", "must be a JSON object"},
      {"{", "not valid JSON"},
      {R"({"tenant":"t","model":"m","tier":"small","judge_model":"j","score":3,"ts":1})", "'id'"},
      {R"({"id":"r","tenant":"t","model":"m","tier":"small","judge_model":"j","score":"3","ts":1})", "'score'"},
      {R"({"id":"r","tenant":"t","model":"m","tier":"small","judge_model":"j","score":0,"ts":1})", "within 1..5"},
      {R"({"id":"r","tenant":"t","model":"m","tier":"small","judge_model":"j","score":3,"ts":-1})", "'ts'"},
      {R"({"id":"r","tenant":"t","model":"m","tier":"small","judge_model":7,"score":3,"ts":1})", "'judge_model'"},
  };
  for (const auto& [payload, mentions] : cases) {
    auto e = parse_quality_event(payload);
    ASSERT_FALSE(e) << payload;
    EXPECT_EQ(e.error().code, ErrorCode::invalid_request);
    EXPECT_NE(e.error().message.find(mentions), std::string::npos) << payload << ": " << e.error().message;
  }
}

}  // namespace
}  // namespace cascade
