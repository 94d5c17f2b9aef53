// Label-free facts about a model's answer to a prompt (router/answer_facts.h):
// the weak answer check, final answers, the verifier's dense features.
// Used on the request path (the cascade's agreement check and learned
// verifier) and by the offline tools that train and evaluate them.
#include "router/answer_facts.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>

#include "core/text.h"
#include "router/router.h"

namespace cascade {
namespace {

// ----------------------------------------------------- the weak answer check

// Evaluates "+ - * / ( )" over decimal numbers ("1,200", "0.5"); nullopt on
// anything else, so an annotation we cannot read is never held against the answer.
class Arithmetic {
 public:
  explicit Arithmetic(std::string_view text) : s_(text) {}
  std::optional<double> evaluate() {
    auto v = sum();
    skip();
    if (!v || i_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '$')) ++i_;
  }
  std::optional<double> sum() {
    auto v = product();
    while (v) {
      skip();
      if (i_ >= s_.size() || (s_[i_] != '+' && s_[i_] != '-')) break;
      const char op = s_[i_++];
      const auto r = product();
      if (!r) return std::nullopt;
      *v = op == '+' ? *v + *r : *v - *r;
    }
    return v;
  }
  std::optional<double> product() {
    auto v = unary();
    while (v) {
      skip();
      if (i_ >= s_.size() || (s_[i_] != '*' && s_[i_] != '/' && s_[i_] != 'x')) break;
      const char op = s_[i_++];
      const auto r = unary();
      if (!r) return std::nullopt;
      if (op == '/') {
        if (*r == 0) return std::nullopt;
        *v /= *r;
      } else {
        *v *= *r;
      }
    }
    return v;
  }
  std::optional<double> unary() {
    skip();
    if (i_ < s_.size() && s_[i_] == '-') {
      ++i_;
      auto v = unary();
      if (v) *v = -*v;
      return v;
    }
    if (i_ < s_.size() && s_[i_] == '(') {
      ++i_;
      auto v = sum();
      skip();
      if (!v || i_ >= s_.size() || s_[i_] != ')') return std::nullopt;
      ++i_;
      return v;
    }
    return number();
  }
  std::optional<double> number() {
    skip();
    std::string digits;
    while (i_ < s_.size() && ((s_[i_] >= '0' && s_[i_] <= '9') || s_[i_] == '.' || s_[i_] == ',')) {
      if (s_[i_] != ',') digits += s_[i_];
      ++i_;
    }
    if (digits.empty() || digits == ".") return std::nullopt;
    char* end = nullptr;
    const double v = std::strtod(digits.c_str(), &end);
    if (end != digits.c_str() + digits.size()) return std::nullopt;
    if (i_ < s_.size() && s_[i_] == '%') {
      ++i_;
      return v / 100;
    }
    return v;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

// The option letters of a multiple-choice prompt: lines opening with
// "A)", "A." or "(A)". Empty when the prompt has fewer than two.
std::string option_letters(std::string_view prompt) {
  std::string letters;
  for (std::size_t i = 0; i < prompt.size(); ++i) {
    if (i != 0 && prompt[i - 1] != '\n') continue;
    std::size_t j = i;
    if (j < prompt.size() && prompt[j] == '(') ++j;
    if (j + 1 < prompt.size() && prompt[j] >= 'A' && prompt[j] <= 'J' && (prompt[j + 1] == ')' || prompt[j + 1] == '.') &&
        letters.find(prompt[j]) == std::string::npos)
      letters += prompt[j];
  }
  return letters.size() >= 2 ? letters : std::string();
}

}  // namespace

bool weak_answer_fails_check(std::string_view prompt, std::string_view response) {
  const std::string_view answer = trim_space(response);
  if (answer.empty()) return true;

  // Calculator annotations "<<48/2=24>>" must compute.
  for (std::size_t at = answer.find("<<"); at != std::string_view::npos; at = answer.find("<<", at + 2)) {
    const std::size_t close = answer.find(">>", at + 2);
    if (close == std::string_view::npos) break;
    const std::string_view inner = answer.substr(at + 2, close - at - 2);
    const std::size_t eq = inner.rfind('=');
    if (eq == std::string_view::npos) continue;
    const auto lhs = Arithmetic(inner.substr(0, eq)).evaluate();
    const auto rhs = Arithmetic(inner.substr(eq + 1)).evaluate();
    if (lhs && rhs && std::abs(*lhs - *rhs) > 1e-6 * std::max(1.0, std::abs(*rhs)) + 1e-9) return true;
  }
  // An answer in the GSM8K format (worked steps with "<<...>>" or "####")
  // must end its work with "#### <number>"; without it, it was cut off.
  if (answer.find("<<") != std::string_view::npos || answer.find("####") != std::string_view::npos) {
    const std::size_t mark = answer.rfind("####");
    if (mark == std::string_view::npos) return true;
    const std::string_view final_answer = trim_space(answer.substr(mark + 4));
    if (final_answer.empty() ||
        !(std::isdigit(static_cast<unsigned char>(final_answer.front())) || final_answer.front() == '-' ||
          final_answer.front() == '$'))
      return true;
  }
  // A multiple-choice prompt wants one of its option letters.
  if (const std::string letters = option_letters(prompt); !letters.empty()) {
    std::string_view a = answer;
    for (const std::string_view lead : {"The answer is", "Answer:", "answer is"}) {
      if (const auto p = a.find(lead); p != std::string_view::npos && p < 8) a = trim_space(a.substr(p + lead.size()));
    }
    if (!a.empty() && a.front() == '(') a.remove_prefix(1);
    if (a.empty() || letters.find(a.front()) == std::string::npos) return true;
    if (a.size() > 1 && std::isalpha(static_cast<unsigned char>(a[1]))) return true;  // a word, not a letter
  }
  return false;
}

std::optional<std::string> final_answer(std::string_view prompt, std::string_view response) {
  const std::string_view answer = trim_space(response);
  if (answer.empty()) return std::nullopt;
  if (const std::string letters = option_letters(prompt); !letters.empty()) {
    std::string_view a = answer;
    for (const std::string_view lead : {"The answer is", "Answer:", "answer is"}) {
      if (const auto p = a.find(lead); p != std::string_view::npos && p < 8) a = trim_space(a.substr(p + lead.size()));
    }
    if (!a.empty() && a.front() == '(') a.remove_prefix(1);
    if (a.empty() || letters.find(a.front()) == std::string::npos) return std::nullopt;
    if (a.size() > 1 && std::isalpha(static_cast<unsigned char>(a[1]))) return std::nullopt;
    return std::string(1, a.front());
  }
  // A number: after the last "####", else the last one in the text.
  std::string_view tail = answer;
  if (const std::size_t mark = answer.rfind("####"); mark != std::string_view::npos) tail = answer.substr(mark + 4);
  std::string last, current;
  bool seen_digit = false;
  auto flush = [&] {
    if (seen_digit) last = current;
    current.clear();
    seen_digit = false;
  };
  for (std::size_t i = 0; i < tail.size(); ++i) {
    const char c = tail[i];
    if (std::isdigit(static_cast<unsigned char>(c))) {
      current += c;
      seen_digit = true;
    } else if ((c == '.' || c == ',') && seen_digit && i + 1 < tail.size() &&
               std::isdigit(static_cast<unsigned char>(tail[i + 1]))) {
      if (c == '.') current += c;  // "1,200" -> "1200"
    } else if (c == '-' && current.empty() && i + 1 < tail.size() && std::isdigit(static_cast<unsigned char>(tail[i + 1]))) {
      current += c;
    } else {
      flush();
    }
  }
  flush();
  if (last.empty()) return std::nullopt;
  // "18.00" and "18" are the same answer.
  if (last.find('.') != std::string::npos) {
    while (last.back() == '0') last.pop_back();
    if (last.back() == '.') last.pop_back();
  }
  if (tail.size() == answer.size() && answer.size() > 200) return std::nullopt;  // long free text: no final answer
  return last;
}

namespace {

// The numbers written in `text`: "1,200" is 1200, "3.5" is 3.5, a sentence's
// closing period is not a decimal point.
std::vector<double> numbers_in(std::string_view text) {
  std::vector<double> numbers;
  std::string number;
  auto flush = [&] {
    while (!number.empty() && number.back() == '.') number.pop_back();
    if (!number.empty()) numbers.push_back(std::strtod(number.c_str(), nullptr));
    number.clear();
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (std::isdigit(static_cast<unsigned char>(c)) || (c == '.' && !number.empty())) number += c;
    else if (c == ',' && !number.empty() && i + 1 < text.size() && std::isdigit(static_cast<unsigned char>(text[i + 1])))
      continue;
    else flush();
  }
  flush();
  return numbers;
}

}  // namespace

std::vector<std::pair<std::string, float>> answer_features(std::string_view prompt, std::string_view response) {
  const std::string_view answer = trim_space(response);
  const auto final = final_answer(prompt, answer);
  double value = 0;
  bool numeric = false;
  if (final && !final->empty() && (std::isdigit(static_cast<unsigned char>(final->back())))) {
    char* end = nullptr;
    value = std::strtod(final->c_str(), &end);
    numeric = end == final->c_str() + final->size();
  }
  // The numbers the prompt's own question gives (after its last blank line:
  // a few-shot prompt's examples come before).
  std::string_view question = prompt;
  if (const auto cut = prompt.rfind("\n\n"); cut != std::string_view::npos && cut + 2 < prompt.size())
    question = prompt.substr(cut + 2);
  const std::vector<double> given = numbers_in(question);
  bool copies_prompt_number = false;
  if (numeric)
    for (const double n : given) copies_prompt_number = copies_prompt_number || n == value;
  // A quantity the question gives that the answer never mentions is often
  // one the reasoning left out.
  const std::vector<double> used = numbers_in(answer);
  std::size_t unused = 0;
  for (const double n : given) unused += std::find(used.begin(), used.end(), n) == used.end();
  // The last calculator annotation's result, "<<a*b=42>>".
  std::size_t annotations = 0;
  std::optional<double> last_result;
  for (std::size_t at = answer.find("<<"); at != std::string_view::npos; at = answer.find("<<", at + 2)) {
    const std::size_t close = answer.find(">>", at + 2);
    if (close == std::string_view::npos) break;
    ++annotations;
    const std::string_view inner = answer.substr(at + 2, close - at - 2);
    if (const std::size_t eq = inner.rfind('='); eq != std::string_view::npos) {
      const std::string rhs(trim_space(inner.substr(eq + 1)));
      char* end = nullptr;
      const double v = std::strtod(rhs.c_str(), &end);
      last_result = end != rhs.c_str() ? std::optional<double>(v) : std::nullopt;
    }
  }
  double lines = 1;
  for (const char c : answer) lines += c == '\n';
  const auto flag = [](bool b) { return b ? 1.0f : 0.0f; };
  return {
      {"answer:fails_check", flag(weak_answer_fails_check(prompt, answer))},
      {"answer:no_final_mark", flag(answer.find("####") == std::string_view::npos)},
      {"answer:no_number", flag(!numeric)},
      {"answer:not_integer", flag(numeric && value != std::floor(value))},
      {"answer:negative", flag(numeric && value < 0)},
      {"answer:copies_prompt_number", flag(copies_prompt_number)},
      {"answer:differs_from_last_calculation",
       flag(numeric && last_result && std::abs(*last_result - value) > 1e-6 * std::max(1.0, std::abs(value)))},
      {"answer:unused_question_numbers",
       given.empty() ? 0.0f : static_cast<float>(static_cast<double>(unused) / static_cast<double>(given.size()))},
      {"answer:log_magnitude", numeric ? static_cast<float>(std::log10(1.0 + std::abs(value)) / 6.0) : 0.0f},
      {"answer:log_chars", static_cast<float>(std::log1p(static_cast<double>(answer.size())) / 8.0)},
      {"answer:log_lines", static_cast<float>(std::log1p(lines) / 4.0)},
      {"answer:log_calculations", static_cast<float>(std::log1p(static_cast<double>(annotations)) / 3.0)},
  };
}

bool answers_disagree(std::string_view prompt, std::string_view weak_response, std::string_view check_response) {
  if (weak_answer_fails_check(prompt, weak_response)) return true;
  const auto a = final_answer(prompt, weak_response);
  const auto b = final_answer(prompt, check_response);
  if (!a) return false;  // nothing comparable: the format check alone decides
  return !b || *a != *b;
}

}  // namespace cascade
