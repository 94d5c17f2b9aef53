// LLM-as-judge: the grading prompt, and reading a 1-5 grade out of whatever a
// judge model replies.
#include <gtest/gtest.h>

#include "consumers/worker/judge.h"

namespace cascade {
namespace {

double grade(std::string_view reply) {
  auto g = parse_judge_score(reply);
  EXPECT_TRUE(g) << "'" << reply << "': " << (g ? "" : g.error().message);
  return g ? *g : -1;
}

TEST(JudgeScore, ReadsTheGradeWhateverTheWording) {
  EXPECT_EQ(grade("4"), 4);
  EXPECT_EQ(grade("Score: 4"), 4);
  EXPECT_EQ(grade("score:5."), 5);
  EXPECT_EQ(grade("**Rating:** 4/5"), 4);
  EXPECT_EQ(grade("I would rate it 3 out of 5."), 3);
  EXPECT_EQ(grade("I'd rate it a 2"), 2);
  EXPECT_EQ(grade("Grade = 4.5"), 4.5);
  EXPECT_EQ(grade("The answer is accurate and complete. 5"), 5);
  EXPECT_EQ(grade("\"Score: 1\""), 1);
  EXPECT_EQ(grade("Verdict - 3"), 3);
}

TEST(JudgeScore, AnExplicitGradeWinsOverOtherNumbers) {
  EXPECT_EQ(grade("The answer says 1945 and lists 3 causes. Score: 4"), 4);
  EXPECT_EQ(grade("1. Correct. 2. Complete. Final score: 5"), 5);
  EXPECT_EQ(grade("Score: 2 (it claims 2 + 2 = 5)"), 2);
  EXPECT_EQ(grade("Rating 3/5 - better than a 2/5 answer"), 2);  // the last N/5 counts
  EXPECT_EQ(grade("It mentions 1,200 km; overall 4/5"), 4);
}

TEST(JudgeScore, NumbersOutsideTheScaleOrInsideWordsNeverCount) {
  EXPECT_EQ(grade("The year 1969 is right; gpt4 would agree. 5"), 5);
  EXPECT_EQ(grade("It got 7 of 10 facts right and earns a 3"), 3);
  EXPECT_EQ(grade("2/3 of the steps are right: 4"), 4);
}

TEST(JudgeScore, NoGradeOrDisagreeingCandidatesAreErrors) {
  for (const char* reply : {"", "Excellent answer!", "Score: 9", "Between 3 and 4.", "7/10", "[simulated gpt-4o] ..."}) {
    auto g = parse_judge_score(reply);
    EXPECT_FALSE(g) << "'" << reply << "' read as " << (g ? *g : 0);
    if (!g) {
      EXPECT_EQ(g.error().code, ErrorCode::provider_error);
    }
  }
}

TEST(JudgeMessages, HoldTheRubricTheConversationAndTheAnswer) {
  const nlohmann::json conversation = nlohmann::json::array(
      {{{"role", "system"}, {"content", "Be brief."}},
       {{"role", "user"}, {"content", nlohmann::json::array({{{"type", "text"}, {"text", "Capital of France?"}}})}}});
  const nlohmann::json messages = judge_messages(conversation, "Paris.");
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0]["role"], "system");
  EXPECT_NE(messages[0]["content"].get<std::string>().find("1 to 5"), std::string::npos);
  EXPECT_EQ(messages[1]["role"], "user");
  const std::string user = messages[1]["content"];
  EXPECT_NE(user.find("[system]\nBe brief."), std::string::npos) << user;
  EXPECT_NE(user.find("[user]\nCapital of France?"), std::string::npos) << user;
  EXPECT_NE(user.find(std::string(kJudgeAnswerMarker) + "\nParis."), std::string::npos) << user;
  EXPECT_LT(user.find("Capital of France?"), user.find(kJudgeAnswerMarker));
}

TEST(JudgeMessages, LongTextsAreCutAtCharacterBoundaries) {
  std::string question(kJudgeConversationBytes * 2, 'q');
  question += "LAST";
  std::string answer = "FIRST";
  for (int i = 0; i < 5000; ++i) answer += "é";  // two bytes each
  const nlohmann::json messages =
      judge_messages(nlohmann::json::array({{{"role", "user"}, {"content", question}}}), answer);
  const std::string user = messages[1]["content"];  // would throw on invalid UTF-8 when dumped
  EXPECT_NO_THROW((void)messages.dump());
  EXPECT_NE(user.find("LAST"), std::string::npos);  // the end of the conversation is kept
  EXPECT_NE(user.find("FIRST"), std::string::npos);  // the start of the answer is kept
  EXPECT_NE(user.find("earlier text left out"), std::string::npos);
  EXPECT_NE(user.find("rest of the answer left out"), std::string::npos);
  EXPECT_LT(user.size(), kJudgeConversationBytes + kJudgeAnswerBytes + 1000);
}

}  // namespace
}  // namespace cascade
