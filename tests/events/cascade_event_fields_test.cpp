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

TEST(QualityEventSchema, CalibrationSampleRoundTripsWithEveryGrade) {
  QualityEvent e = sample();
  QualityCalibration& c = e.calibration.emplace();
  c.key = "default/cost";
  c.route_score = 0.41;
  c.small_cut = 0.45;
  c.medium_cut = 0.85;
  c.configured_small_cut = 0.55;
  c.configured_medium_cut = 0.85;
  c.small = GradedAnswer{"gpt-4o-mini", "small", 4, true};
  c.reference = GradedAnswer{"gpt-4o", "large", 5, false};
  c.answers_cost_usd = 0.0031;
  const std::string payload = make_quality_event(e);
  const json j = json::parse(payload);
  EXPECT_EQ(j["calibration"]["cuts"]["small"], 0.45);
  EXPECT_FALSE(j["calibration"].contains("medium"));  // no medium model: no grade
  auto back = parse_quality_event(payload);
  ASSERT_TRUE(back) << back.error().message;
  ASSERT_TRUE(back->calibration);
  const QualityCalibration& b = *back->calibration;
  EXPECT_EQ(b.key, "default/cost");
  EXPECT_DOUBLE_EQ(b.route_score, 0.41);
  EXPECT_DOUBLE_EQ(b.small_cut, 0.45);
  EXPECT_DOUBLE_EQ(b.medium_cut, 0.85);
  EXPECT_DOUBLE_EQ(b.configured_small_cut, 0.55);
  EXPECT_DOUBLE_EQ(b.configured_medium_cut, 0.85);
  ASSERT_TRUE(b.small);
  EXPECT_EQ(b.small->model, "gpt-4o-mini");
  EXPECT_EQ(b.small->score, 4);
  EXPECT_TRUE(b.small->served);
  EXPECT_FALSE(b.medium);
  EXPECT_EQ(b.reference.model, "gpt-4o");
  EXPECT_EQ(b.reference.tier, "large");
  EXPECT_FALSE(b.reference.served);
  EXPECT_DOUBLE_EQ(b.answers_cost_usd, 0.0031);
  EXPECT_FALSE(parse_quality_event(make_quality_event(sample()))->calibration);
}

TEST(QualityEventSchema, RefusesACalibrationWithoutAReferenceGradeOrWithAGradeOutOfRange) {
  const std::string base = R"({"id":"r","tenant":"t","model":"m","tier":"small","judge_model":"j","score":3,"ts":1,)";
  const std::string cuts = R"("key":"default/cost","route_score":0.2,"cuts":{"small":0.3,"medium":0.6},"configured_cuts":{"small":0.3,"medium":0.6})";
  auto missing = parse_quality_event(base + R"("calibration":{)" + cuts + "}}");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("calibration.reference"), std::string::npos) << missing.error().message;
  auto out_of_range =
      parse_quality_event(base + R"("calibration":{)" + cuts + R"(,"reference":{"model":"m","score":9}}})");
  ASSERT_FALSE(out_of_range);
  EXPECT_NE(out_of_range.error().message.find("within 1..5"), std::string::npos);
  auto no_cuts = parse_quality_event(base + R"("calibration":{"key":"k","route_score":0.2,"reference":{"model":"m","score":3}}})");
  ASSERT_FALSE(no_cuts);
  EXPECT_NE(no_cuts.error().message.find("calibration.cuts"), std::string::npos);
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
