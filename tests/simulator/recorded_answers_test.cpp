// `cascade upstream --outcomes FILE`: known prompts get their recorded
// answers, a judge call grading a recorded answer gets its recorded grade,
// and everything else is the plain simulated answer.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "simulator/simulated_upstream.h"

namespace cascade {
namespace {

using nlohmann::json;

// One non-streaming chat completion; its message content.
std::string complete(const SimulatedUpstream& upstream, const std::string& model, const json& messages) {
  CURL* curl = curl_easy_init();
  const std::string url = upstream.base_url() + "/chat/completions";
  const std::string body = json{{"model", model}, {"messages", messages}}.dump();
  std::string response;
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
  });
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  const CURLcode code = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  EXPECT_EQ(code, CURLE_OK);
  const json parsed = json::parse(response, nullptr, false);
  if (!parsed.is_object() || !parsed.contains("choices")) {
    ADD_FAILURE() << response;
    return {};
  }
  return parsed["choices"][0]["message"]["content"].get<std::string>();
}

json user(const std::string& text) { return json::array({{{"role", "user"}, {"content", text}}}); }

// What the worker's judge sends (consumers/worker/judge.cpp, judge_messages).
json judge_call(const std::string& question, const std::string& answer) {
  return json::array({{{"role", "system"}, {"content", "You are an impartial judge..."}},
                      {{"role", "user"},
                       {"content", "### Conversation\n[user]\n" + question + "\n\n\n" +
                                       std::string(kJudgeCallAnswerMarker) + "\n" + answer +
                                       "\n\nGrade the answer from 1 to 5. Reply \"Score: N\"."}}});
}

SimulatedUpstreamOptions recorded_options() {
  SimulatedUpstreamOptions options;
  options.recorded = {
      {"small-a", "What is 6 x 7?", "6 x 7 = 42.\n#### 42", 1.0},
      {"small-a", "Name a prime above 10.", "12 is prime.", 0.0},
      {"large-a", "Name a prime above 10.", "11 is the first prime above 10.", 0.5},
  };
  return options;
}

TEST(RecordedAnswers, AKnownPromptGetsTheRecordedAnswerOfTheModelAsked) {
  SimulatedUpstream upstream(recorded_options());
  ASSERT_TRUE(upstream.start());
  EXPECT_EQ(complete(upstream, "small-a", user("What is 6 x 7?")), "6 x 7 = 42.\n#### 42");
  EXPECT_EQ(complete(upstream, "small-a", user("Name a prime above 10.")), "12 is prime.");
  EXPECT_EQ(complete(upstream, "large-a", user("Name a prime above 10.")), "11 is the first prime above 10.");
  EXPECT_EQ(upstream.recorded_answers_served(), 3u);
}

TEST(RecordedAnswers, AnythingUnknownIsThePlainSimulatedAnswer) {
  SimulatedUpstream upstream(recorded_options());
  ASSERT_TRUE(upstream.start());
  // A model without a recording for this prompt, and a prompt never recorded.
  EXPECT_EQ(complete(upstream, "large-a", user("What is 6 x 7?")),
            SimulatedUpstream::answer_for("large-a", "What is 6 x 7?", 20));
  EXPECT_EQ(complete(upstream, "small-a", user("What is 6 x 8?")),
            SimulatedUpstream::answer_for("small-a", "What is 6 x 8?", 20));
  EXPECT_EQ(upstream.recorded_answers_served(), 0u);
}

TEST(RecordedAnswers, AJudgeCallGetsTheRecordedGradeOfTheAnswerItGrades) {
  SimulatedUpstream upstream(recorded_options());
  ASSERT_TRUE(upstream.start());
  EXPECT_EQ(complete(upstream, "judge", judge_call("What is 6 x 7?", "6 x 7 = 42.\n#### 42")), "Score: 5.0");
  EXPECT_EQ(complete(upstream, "judge", judge_call("Name a prime above 10.", "12 is prime.")), "Score: 1.0");
  EXPECT_EQ(complete(upstream, "judge", judge_call("Name a prime above 10.", "11 is the first prime above 10.")),
            "Score: 3.0");
  EXPECT_EQ(upstream.recorded_grades_served(), 3u);
  // An answer that was never recorded: the judge model answers as any model does.
  const json unknown = judge_call("Name a prime above 10.", "13.");
  EXPECT_EQ(complete(upstream, "judge", unknown),
            SimulatedUpstream::answer_for("judge", unknown[1]["content"].get<std::string>(), 20));
}

TEST(RecordedAnswers, GradesRunFromOneForNoQualityToFiveForFull) {
  EXPECT_DOUBLE_EQ(recorded_grade(0.0), 1.0);
  EXPECT_DOUBLE_EQ(recorded_grade(0.5), 3.0);
  EXPECT_DOUBLE_EQ(recorded_grade(1.0), 5.0);
  EXPECT_DOUBLE_EQ(recorded_grade(1.7), 5.0);
  EXPECT_DOUBLE_EQ(recorded_grade(-0.2), 1.0);
}

TEST(RecordedAnswers, AScriptedRuleStillWins) {
  SimulatedUpstreamOptions options = recorded_options();
  options.answers = {{"small-a", "6 x 7", "forty-two"}};
  SimulatedUpstream upstream(options);
  ASSERT_TRUE(upstream.start());
  EXPECT_EQ(complete(upstream, "small-a", user("What is 6 x 7?")), "forty-two");
}

}  // namespace
}  // namespace cascade
