#include "consumers/worker/answer_check.h"

#include <cctype>

namespace cascade {
namespace {

bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

// Lowercase ASCII, typographic apostrophes as ', whitespace runs as one space,
// and the usual spellings of a phrase made one ("cannot", "can not" -> "can't";
// "i am" -> "i'm"; "do not" -> "don't"; "will not" -> "won't").
std::string normalize(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (is_space(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) {
      out.push_back(' ');
      pending_space = false;
    }
    // U+2018 / U+2019 (E2 80 98 / E2 80 99) and U+02BC read as an apostrophe.
    if (c == 0xE2 && i + 2 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x80 &&
        (static_cast<unsigned char>(text[i + 2]) == 0x98 || static_cast<unsigned char>(text[i + 2]) == 0x99)) {
      out.push_back('\'');
      i += 2;
      continue;
    }
    if (c == 0xCA && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0xBC) {
      out.push_back('\'');
      i += 1;
      continue;
    }
    out.push_back(c < 0x80 ? static_cast<char>(std::tolower(c)) : static_cast<char>(c));
  }
  replace_all(out, "cannot", "can't");
  replace_all(out, "can not", "can't");
  replace_all(out, "i am ", "i'm ");
  replace_all(out, "do not ", "don't ");
  replace_all(out, "will not ", "won't ");
  return out;
}

// In normalized spelling (see normalize). Each says "I will not / cannot
// answer this" or "I have no answer"; none is a plausible opening of a real
// answer.
constexpr std::string_view kRefusalPhrases[] = {
    "i'm sorry, but i can't",
    "i'm sorry, i can't",
    "sorry, but i can't",
    "sorry, i can't",
    "i apologize, but i can't",
    "i can't help with",
    "i can't help you with",
    "i can't assist with",
    "i can't assist you with",
    "i can't provide",
    "i can't answer",
    "i can't comply",
    "i can't fulfill",
    "i can't do that",
    "i'm unable to",
    "i'm not able to",
    "i won't be able to",
    "i must decline",
    "i have to decline",
    "as an ai language model",
    "as a language model",
    "as an ai, i",
    "i don't know",
    "i don't have enough information",
    "i don't have access to",
    "unable to answer",
};

}  // namespace

AnswerFormat answer_format_of(const nlohmann::json& response_format) {
  if (!response_format.is_object()) return AnswerFormat::text;
  const auto type = response_format.find("type");
  if (type == response_format.end() || !type->is_string()) return AnswerFormat::text;
  const auto& name = type->get_ref<const std::string&>();
  if (name == "json_object") return AnswerFormat::json_object;
  if (name == "json_schema") return AnswerFormat::json;
  return AnswerFormat::text;
}

bool looks_like_refusal(std::string_view text) {
  const std::string_view searched = text.size() <= kShortAnswerBytes ? text : text.substr(0, kRefusalOpeningBytes);
  const std::string normalized = normalize(searched);
  for (const std::string_view phrase : kRefusalPhrases) {
    if (normalized.find(phrase) != std::string::npos) return true;
  }
  return false;
}

AnswerCheck check_answer(std::string_view content, std::string_view finish_reason,
                         const nlohmann::json& tool_calls, AnswerFormat format) {
  if (tool_calls.is_array() && !tool_calls.empty()) return {};  // a tool call is the answer
  if (finish_reason == "length") return {false, "truncated (finish_reason length)", "truncated"};
  if (finish_reason == "content_filter") return {false, "content_filter", "content_filter"};
  bool blank = true;
  for (const char c : content) {
    if (!is_space(static_cast<unsigned char>(c))) {
      blank = false;
      break;
    }
  }
  if (blank) return {false, "empty", "empty"};
  if (looks_like_refusal(content)) return {false, "refusal", "refusal"};
  if (format != AnswerFormat::text) {
    const auto parsed = nlohmann::json::parse(content, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) return {false, "not JSON", "not_json"};
    if (format == AnswerFormat::json_object && !parsed.is_object()) return {false, "not a JSON object", "not_json"};
  }
  return {};
}

}  // namespace cascade
