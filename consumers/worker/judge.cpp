#include "consumers/worker/judge.h"

#include <cctype>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

namespace cascade {
namespace {

constexpr std::string_view kRubric =
    "You are an impartial judge of answers written by an AI assistant. Grade how well the answer "
    "serves the user's last request, on a scale from 1 to 5:\n"
    "5 = correct, complete and helpful;\n"
    "4 = correct, with minor gaps;\n"
    "3 = partly correct or incomplete;\n"
    "2 = mostly wrong or unhelpful;\n"
    "1 = wrong, a refusal, or no answer.\n"
    "Judge only the answer. Reply with the grade alone, as \"Score: N\".";

// Cuts at a UTF-8 character boundary at or before `at`.
std::size_t utf8_boundary_before(std::string_view text, std::size_t at) {
  if (at >= text.size()) return text.size();
  while (at > 0 && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) --at;
  return at;
}

std::string_view head(std::string_view text, std::size_t bytes) {
  return text.substr(0, utf8_boundary_before(text, bytes));
}

std::string_view tail(std::string_view text, std::size_t bytes) {
  if (text.size() <= bytes) return text;
  std::size_t from = text.size() - bytes;
  while (from < text.size() && (static_cast<unsigned char>(text[from]) & 0xC0) == 0x80) ++from;
  return text.substr(from);
}

// A message's text: a string, or its text parts joined by newlines.
std::string message_text(const nlohmann::json& message) {
  const auto content = message.find("content");
  if (content == message.end()) return {};
  if (content->is_string()) return content->get<std::string>();
  std::string out;
  if (content->is_array()) {
    for (const auto& part : *content) {
      if (!part.is_object()) continue;
      const auto text = part.find("text");
      if (text == part.end() || !text->is_string()) continue;
      if (!out.empty()) out += '\n';
      out += text->get_ref<const std::string&>();
    }
  }
  return out;
}

std::string render_conversation(const nlohmann::json& conversation) {
  std::string out;
  if (!conversation.is_array()) return out;
  for (const auto& message : conversation) {
    if (!message.is_object()) continue;
    const auto role = message.find("role");
    std::string text = message_text(message);
    if (text.empty()) continue;
    out += '[';
    out += role != message.end() && role->is_string() ? role->get<std::string>() : std::string("user");
    out += "]\n";
    out += text;
    out += "\n\n";
  }
  return out;
}

// ---------------------------------------------------------- score parser ----

struct Number {
  double value = 0;
  std::size_t begin = 0;
  std::size_t end = 0;
};

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }

std::vector<Number> numbers_in(std::string_view text) {
  std::vector<Number> out;
  std::size_t i = 0;
  while (i < text.size()) {
    if (!is_digit(text[i])) {
      ++i;
      continue;
    }
    const std::size_t begin = i;
    while (i < text.size() && is_digit(text[i])) ++i;
    if (i + 1 < text.size() && text[i] == '.' && is_digit(text[i + 1])) {
      ++i;
      while (i < text.size() && is_digit(text[i])) ++i;
    }
    // Part of a word or identifier ("gpt4", "v2") is not a grade.
    const bool glued = (begin > 0 && is_alpha(text[begin - 1])) || (i < text.size() && is_alpha(text[i]));
    if (!glued && i - begin <= 12) {
      out.push_back({std::stod(std::string(text.substr(begin, i - begin))), begin, i});
    }
  }
  return out;
}

bool in_range(double v) { return v >= 1.0 && v <= 5.0; }

std::string lower_word_before(std::string_view text, std::size_t& at) {
  // Skip punctuation and markdown between the word and the number.
  std::size_t skipped = 0;
  while (at > 0 && skipped < 12) {
    const char c = text[at - 1];
    if (c == ' ' || c == '\t' || c == '\n' || c == ':' || c == '*' || c == '=' || c == '#' || c == '-' ||
        c == '_' || c == '"' || c == '\'' || c == '(' || c == '[' || c == '>') {
      --at;
      ++skipped;
      continue;
    }
    break;
  }
  std::size_t end = at;
  while (at > 0 && is_alpha(text[at - 1])) --at;
  std::string word(text.substr(at, end - at));
  for (auto& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return word;
}

bool after_grade_keyword(std::string_view text, const Number& n) {
  std::size_t at = n.begin;
  for (int words = 0; words < 3; ++words) {
    const std::string word = lower_word_before(text, at);
    if (word.empty()) return false;
    if (word == "score" || word == "scores" || word == "rating" || word == "rate" || word == "rated" ||
        word == "grade" || word == "graded" || word == "verdict" || word == "mark")
      return true;
    // "a score of 4", "I'd rate it a 4", "grade is 3"
    if (word != "of" && word != "is" && word != "it" && word != "a" && word != "as" && word != "be" &&
        word != "final" && word != "would" && word != "give")
      return false;
  }
  return false;
}

// "4/5", "4 / 5", "4 out of 5"
bool written_out_of_five(std::string_view text, const Number& n) {
  std::size_t i = n.end;
  while (i < text.size() && text[i] == ' ') ++i;
  std::string_view rest = text.substr(i);
  auto five_follows = [](std::string_view after) {
    std::size_t j = 0;
    while (j < after.size() && after[j] == ' ') ++j;
    return j < after.size() && after[j] == '5' && (j + 1 >= after.size() || !is_digit(after[j + 1]));
  };
  if (!rest.empty() && rest.front() == '/') return five_follows(rest.substr(1));
  if (rest.size() >= 6) {
    std::string out_of(rest.substr(0, 6));
    for (auto& c : out_of) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (out_of == "out of") return five_follows(rest.substr(6));
  }
  return false;
}

// "4/10", "2/3": the numerator of another fraction, or any denominator.
bool part_of_other_fraction(std::string_view text, const Number& n) {
  std::size_t i = n.end;
  while (i < text.size() && text[i] == ' ') ++i;
  if (i < text.size() && text[i] == '/' && !written_out_of_five(text, n)) return true;
  std::size_t j = n.begin;
  while (j > 0 && text[j - 1] == ' ') --j;
  return j > 0 && text[j - 1] == '/';
}

Error no_score(std::string message) { return Error{ErrorCode::provider_error, std::move(message)}; }

}  // namespace

nlohmann::json judge_messages(const nlohmann::json& conversation, std::string_view answer) {
  const std::string rendered = render_conversation(conversation);
  std::string user = "### Conversation\n";
  const std::string_view kept = tail(rendered, kJudgeConversationBytes);
  if (kept.size() < rendered.size()) user += "[... earlier text left out ...]\n";
  user += kept;
  user += '\n';
  user += kJudgeAnswerMarker;
  user += '\n';
  const std::string_view shown = head(answer, kJudgeAnswerBytes);
  user += shown;
  if (shown.size() < answer.size()) user += "\n[... rest of the answer left out ...]";
  user += "\n\nGrade the answer from 1 to 5. Reply \"Score: N\".";
  return nlohmann::json::array({{{"role", "system"}, {"content", kRubric}}, {{"role", "user"}, {"content", user}}});
}

Result<double> parse_judge_score(std::string_view reply) {
  const std::vector<Number> numbers = numbers_in(reply);
  if (numbers.empty()) return std::unexpected(no_score("judge reply has no score"));
  std::optional<double> out_of_five;
  std::optional<double> keyword;
  for (const Number& n : numbers) {
    if (!in_range(n.value)) continue;
    if (written_out_of_five(reply, n)) out_of_five = n.value;
    if (after_grade_keyword(reply, n)) keyword = n.value;
  }
  if (out_of_five) return *out_of_five;
  if (keyword) return *keyword;
  std::optional<double> alone;
  for (const Number& n : numbers) {
    if (!in_range(n.value) || part_of_other_fraction(reply, n)) continue;
    // A list position ("1. ...") still counts here; a disagreement below
    // rejects such replies rather than guessing.
    if (alone && *alone != n.value) {
      return std::unexpected(no_score("judge reply is ambiguous: more than one number between 1 and 5"));
    }
    alone = n.value;
  }
  if (!alone) return std::unexpected(no_score("judge reply has no number between 1 and 5"));
  return *alone;
}

}  // namespace cascade
