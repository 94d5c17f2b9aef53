// The JSON Schema subset the tools' schemas use: what it enforces, how it
// words problems, and the keywords it refuses to pretend to enforce.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "mcp/json_schema.h"

namespace cascade {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

JsonSchema compiled(const json& schema) {
  auto s = JsonSchema::compile(schema);
  if (!s) throw std::runtime_error(s.error().message);
  return std::move(*s);
}

TEST(JsonSchema, KeywordsItDoesNotEnforceAreRefused) {
  for (const char* text : {R"({"type":"string","pattern":"^a"})", R"({"oneOf":[{"type":"string"}]})",
                           R"({"properties":{"a":{"type":"string","format":"email"}}})",
                           R"({"items":{"const":1}})", R"({"type":"text"})", R"({"required":"a"})",
                           R"({"additionalProperties":{"uniqueItems":true}})"}) {
    const auto schema = JsonSchema::compile(json::parse(text));
    EXPECT_FALSE(schema) << text;
  }
  const auto nested = JsonSchema::compile(json::parse(R"({"properties":{"a":{"pattern":"x"}}})"));
  ASSERT_FALSE(nested);
  EXPECT_THAT(nested.error().message, HasSubstr("properties.a: keyword 'pattern' is not enforced"));
  // Annotations are fine.
  EXPECT_TRUE(JsonSchema::compile(json::parse(
      R"({"title":"t","description":"d","default":1,"examples":[1],"$comment":"c","type":"integer"})")));
}

TEST(JsonSchema, TypesIncludingIntegersWrittenAsFloats) {
  const auto integer = compiled({{"type", "integer"}});
  EXPECT_THAT(integer.problems(json(5)), IsEmpty());
  EXPECT_THAT(integer.problems(json(5.0)), IsEmpty());
  EXPECT_THAT(integer.problems(json(-3)), IsEmpty());
  EXPECT_THAT(integer.problems(json(5.5)), ElementsAre("the arguments must be an integer, got 5.5"));
  EXPECT_THAT(integer.problems(json(true)), ElementsAre("the arguments must be an integer, got true"));
  const auto several = compiled({{"type", {"string", "array", "null"}}});
  EXPECT_THAT(several.problems(json(nullptr)), IsEmpty());
  EXPECT_THAT(several.problems(json::array()), IsEmpty());
  EXPECT_THAT(several.problems(json(1)), ElementsAre("the arguments must be a string, an array or null, got 1"));
  EXPECT_THAT(compiled({{"type", "number"}}).problems(json(1)), IsEmpty());
  EXPECT_THAT(compiled({{"type", "boolean"}}).problems(json("true")),
              ElementsAre("the arguments must be true or false, got the string 'true'"));
}

TEST(JsonSchema, StringLengthsCountCharactersNotBytes) {
  const auto s = compiled({{"type", "object"},
                           {"properties", {{"name", {{"type", "string"}, {"minLength", 2}, {"maxLength", 3}}}}}});
  EXPECT_THAT(s.problems({{"name", "äöü"}}), IsEmpty());  // 6 bytes, 3 characters
  EXPECT_THAT(s.problems({{"name", "äöüß"}}), ElementsAre("'name' must be at most 3 characters long, got 4"));
  EXPECT_THAT(s.problems({{"name", "a"}}), ElementsAre("'name' must be at least 2 characters long, got 1"));
}

TEST(JsonSchema, DatesMustBeRealUtcDates) {
  const auto s = compiled({{"type", "string"}, {"format", "date"}});
  EXPECT_THAT(s.problems(json("2026-02-28")), IsEmpty());
  EXPECT_FALSE(s.problems(json("2026-02-30")).empty());
  EXPECT_FALSE(s.problems(json("2026-2-28")).empty());
  EXPECT_FALSE(s.problems(json("2026-02-28T00:00:00Z")).empty());
}

TEST(JsonSchema, RangesAndArrays) {
  const auto s = compiled({{"type", "object"},
                           {"properties",
                            {{"p", {{"type", "number"}, {"exclusiveMinimum", 0}, {"maximum", 100}}},
                             {"list", {{"type", "array"}, {"minItems", 1}, {"maxItems", 2}, {"items", {{"type", "integer"}, {"minimum", 0}}}}}}}});
  EXPECT_THAT(s.problems({{"p", 0}}), ElementsAre("'p' must be greater than 0, got 0"));
  EXPECT_THAT(s.problems({{"p", 100.5}}), ElementsAre("'p' must be at most 100, got 100.5"));
  EXPECT_THAT(s.problems({{"list", {1, -1}}}), ElementsAre("'list[1]' must be at least 0, got -1"));
  EXPECT_THAT(s.problems({{"list", {1, 2, 3}}}), ElementsAre("'list' must have at most 2 items, got 3"));
  EXPECT_THAT(s.problems({{"list", json::array()}}), ElementsAre("'list' must have at least 1 item, got 0"));
}

TEST(JsonSchema, ObjectsNameTopLevelArgumentsAndDeeperFields) {
  const auto s = compiled(json::parse(R"({
    "type": "object",
    "properties": {
      "a": {"type": "object", "properties": {"b": {"type": "string"}}, "required": ["b"], "additionalProperties": false},
      "m": {"type": "object", "additionalProperties": {"type": "integer"}}
    },
    "required": ["a"],
    "additionalProperties": false
  })"));
  EXPECT_THAT(s.problems(json::object()), ElementsAre("missing required argument 'a'"));
  EXPECT_THAT(s.problems({{"a", {{"b", "x"}, {"c", 1}}}}), ElementsAre("unknown field 'a.c' (known: b)"));
  EXPECT_THAT(s.problems({{"a", json::object()}}), ElementsAre("missing required field 'a.b'"));
  EXPECT_THAT(s.problems({{"a", {{"b", "x"}}}, {"z", 1}}), ElementsAre("unknown argument 'z' (known: a, m)"));
  EXPECT_THAT(s.problems({{"a", {{"b", "x"}}}, {"m", {{"k", "v"}}}}),
              ElementsAre("'m.k' must be an integer, got the string 'v'"));
}

TEST(JsonSchema, EnumsAndEchoedValuesAreCut) {
  const auto s = compiled({{"enum", {"small", "medium"}}});
  EXPECT_THAT(s.problems(json("large")), ElementsAre("the arguments must be one of small|medium, got 'large'"));
  const std::string long_value(500, 'x');
  const auto problems = s.problems(json(long_value));
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_LT(problems[0].size(), 150u);
}

TEST(JsonSchema, ProblemsStopAtTheLimit) {
  const auto s = compiled({{"type", "array"}, {"items", {{"type", "string"}}}});
  EXPECT_EQ(s.problems(json(std::vector<int>(100, 1)), 3).size(), 3u);
}

}  // namespace
}  // namespace cascade
