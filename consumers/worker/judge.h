#pragma once
// LLM-as-judge: the prompt that asks a model to grade an answer from 1 to 5,
// and a robust reader of the grade it replies with. Used by the cheap-first
// cascade's optional judge check and by quality sampling (docs/routing.md).
#include <nlohmann/json.hpp>

#include <cstddef>
#include <string_view>

#include "core/result.h"

namespace cascade {

// Starts the section of the judge's user message that holds the answer.
// Stable: tests and simulators recognise a judge call by it.
inline constexpr std::string_view kJudgeAnswerMarker = "### Answer to grade";

// Bytes of the conversation (its end) and of the answer (its start) put in
// front of the judge; longer texts are cut at a UTF-8 character boundary.
inline constexpr std::size_t kJudgeConversationBytes = 8000;
inline constexpr std::size_t kJudgeAnswerBytes = 8000;

// Output tokens a judge call may use (a grade is a few tokens; reasoning
// models spend some of these on hidden reasoning).
inline constexpr int kJudgeMaxTokens = 256;

// The judge's messages (OpenAI format): a system message with the rubric
// (5 = correct, complete and helpful ... 1 = wrong, a refusal or no answer)
// and a user message with the conversation, as role-labelled text, and the
// answer. The judge is asked to reply "Score: N".
nlohmann::json judge_messages(const nlohmann::json& conversation, std::string_view answer);

// Reads a 1-5 grade out of a judge's reply, whatever the wording:
//   "4", "Score: 4", "**Rating:** 4/5", "I would rate it 3 out of 5.",
//   "Grade = 4.5", "The answer is accurate. 5".
// In order: a number written as N/5 or "N out of 5" (the last one); a number
// after score/rating/grade/rate(d)/verdict (the last one); otherwise the
// numbers in 1..5 that stand alone, which must all agree. Numbers outside
// 1..5 never count ("Score: 4. The capital has 2 million people" -> 4).
// provider_error when there is no grade or the candidates disagree.
[[nodiscard]] Result<double> parse_judge_score(std::string_view reply);

}  // namespace cascade
