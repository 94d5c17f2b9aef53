// The cheap-first cascade's answer checks: what makes a cheap answer fail
// (empty, cut short, refusal, not the JSON asked for) and what must not.
#include <gtest/gtest.h>

#include "consumers/worker/answer_check.h"

namespace cascade {
namespace {

const nlohmann::json kNoTools = nlohmann::json::array();

AnswerCheck check(std::string_view content, std::string_view finish = "stop", AnswerFormat format = AnswerFormat::text) {
  return check_answer(content, finish, kNoTools, format);
}

TEST(AnswerCheck, AWholeAnswerPasses) {
  EXPECT_TRUE(check("The capital of France is Paris.").ok);
  EXPECT_TRUE(check("42").ok);
}

TEST(AnswerCheck, EmptyOrBlankContentFails) {
  EXPECT_EQ(check("").reason, "empty");
  const AnswerCheck blank = check(" \n\t ");
  EXPECT_FALSE(blank.ok);
  EXPECT_EQ(blank.kind, "empty");
}

TEST(AnswerCheck, AnAnswerCutShortFails) {
  const AnswerCheck cut = check("The capital of France is", "length");
  EXPECT_FALSE(cut.ok);
  EXPECT_EQ(cut.reason, "truncated (finish_reason length)");
  EXPECT_EQ(cut.kind, "truncated");
  EXPECT_EQ(check("...", "content_filter").kind, "content_filter");
}

TEST(AnswerCheck, ToolCallsPassWithoutText) {
  const auto calls = nlohmann::json::parse(R"([{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}])");
  EXPECT_TRUE(check_answer("", "tool_calls", calls, AnswerFormat::json_object).ok);
}

TEST(AnswerCheck, RefusalsAndNonAnswersFailWhateverTheirSpelling) {
  for (const char* refusal : {
           "I'm sorry, but I can't help with that.",
           "I’m sorry, but I cannot assist with that request.",  // typographic apostrophe
           "I am unable to provide that information.",
           "Sorry, I can not answer this.",
           "As an AI language model, I do not have opinions.",
           "I don't know.",
           "I do not have access to real-time data, so I cannot tell you today's weather.",
           "I apologize, but I cannot fulfill this request.",
           "Unfortunately I must decline.",
           "  I'M   NOT ABLE TO do that.",
       }) {
    const AnswerCheck c = check(refusal);
    EXPECT_FALSE(c.ok) << refusal;
    EXPECT_EQ(c.reason, "refusal") << refusal;
  }
}

TEST(AnswerCheck, AnswersThatOnlyMentionRefusalWordsPass) {
  EXPECT_TRUE(check("I can help with that: Paris is the capital of France.").ok);
  EXPECT_TRUE(check("I'm sorry for the confusion earlier: the answer is 12.").ok);
  EXPECT_TRUE(check("Yes. Unlike humans, a calculator cannot get tired.").ok);
  // A long answer is judged by its opening: a later "I don't know" is content.
  std::string long_answer = "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen. ";
  while (long_answer.size() < 600) long_answer += "Chlorophyll absorbs red and blue light. ";
  long_answer += "A child might say: I don't know how plants eat.";
  EXPECT_TRUE(check(long_answer).ok);
}

TEST(AnswerCheck, RefusalsAreFoundInTheOpeningOfALongAnswer) {
  std::string long_refusal = "I'm sorry, but I can't help with creating malware. ";
  while (long_refusal.size() < 1000) long_refusal += "Here is some general security advice instead. ";
  EXPECT_FALSE(check(long_refusal).ok);
  EXPECT_TRUE(looks_like_refusal(long_refusal));
}

TEST(AnswerCheck, JsonObjectModeWantsAnObject) {
  EXPECT_TRUE(check(R"({"city": "Paris"})", "stop", AnswerFormat::json_object).ok);
  EXPECT_TRUE(check(" {\"a\": [1, 2]}\n", "stop", AnswerFormat::json_object).ok);
  const AnswerCheck prose = check("The city is Paris.", "stop", AnswerFormat::json_object);
  EXPECT_FALSE(prose.ok);
  EXPECT_EQ(prose.reason, "not JSON");
  EXPECT_EQ(prose.kind, "not_json");
  // A markdown fence is not what a client in JSON mode can parse.
  EXPECT_EQ(check("```json\n{\"city\": \"Paris\"}\n```", "stop", AnswerFormat::json_object).reason, "not JSON");
  EXPECT_EQ(check("[1, 2]", "stop", AnswerFormat::json_object).reason, "not a JSON object");
  EXPECT_TRUE(check("[1, 2]", "stop", AnswerFormat::json).ok);
  EXPECT_TRUE(check("The city is Paris.", "stop", AnswerFormat::text).ok);
}

TEST(AnswerCheck, ResponseFormatNamesTheFormat) {
  EXPECT_EQ(answer_format_of(nullptr), AnswerFormat::text);
  EXPECT_EQ(answer_format_of({{"type", "text"}}), AnswerFormat::text);
  EXPECT_EQ(answer_format_of({{"type", "json_object"}}), AnswerFormat::json_object);
  EXPECT_EQ(answer_format_of({{"type", "json_schema"}, {"json_schema", {{"name", "x"}}}}), AnswerFormat::json);
  EXPECT_EQ(answer_format_of({{"type", 3}}), AnswerFormat::text);
}

}  // namespace
}  // namespace cascade
