#pragma once
// Checks of a model's answer, for the cheap-first cascade (docs/routing.md,
// "Cheap-first cascade"): does the answer look usable, or should a stronger
// model be asked? Deterministic and cheap (microseconds, no model call):
//   - empty or whitespace-only content (and no tool calls);
//   - cut short: finish_reason "length" (max_tokens hit) or "content_filter";
//   - a refusal or non-answer ("I'm sorry, but I can't help with that",
//     "As an AI language model, I...", "I don't know") in the answer's
//     opening, or anywhere in a short answer;
//   - when the request asked for JSON (response_format json_object or
//     json_schema): the content must parse as JSON (json_object: an object).
// An answer made of tool calls passes: there is no text to judge.
#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace cascade {

// What the request expects of an answer's format.
enum class AnswerFormat {
  text,         // anything
  json,         // response_format json_schema: valid JSON (the schema itself is not checked)
  json_object,  // response_format json_object: a JSON object
};

// The format a prompt event's response_format asks for (null/absent/"text": text).
AnswerFormat answer_format_of(const nlohmann::json& response_format);

struct AnswerCheck {
  bool ok = true;
  // Why it failed, short and stable (goes into the route reason):
  // "empty", "truncated (finish_reason length)", "content_filter",
  // "refusal", "not JSON", "not a JSON object".
  std::string reason;
  // The same as a metric label: empty | truncated | content_filter | refusal | not_json.
  std::string kind;
};

// Checks a whole answer.
AnswerCheck check_answer(std::string_view content, std::string_view finish_reason,
                         const nlohmann::json& tool_calls, AnswerFormat format);

// Whether a text reads as a refusal or non-answer. Looks at the first
// kRefusalOpeningBytes of a long text, at all of a short one.
bool looks_like_refusal(std::string_view text);

// Answers up to this long are searched whole for refusal phrases; longer ones
// only in their opening (a long answer that mentions "I can't" in its third
// paragraph is an answer).
inline constexpr std::size_t kShortAnswerBytes = 400;
inline constexpr std::size_t kRefusalOpeningBytes = 200;

}  // namespace cascade
