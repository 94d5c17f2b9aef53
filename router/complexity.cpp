// Heuristic prompt complexity: one pass over the message text, no regex, no
// allocation beyond the result. Each feature turns counted evidence ("units")
// into a bounded contribution; the score is their sum, capped at 1, so a
// decision can be explained feature by feature.
//
// Calibrated on Dolly (human-written instructions by category) and NQ-open
// (short factual questions): lookups, classification and extraction stay low;
// open-ended writing, reasoning, code, math, multi-part asks and long contexts
// push the score up. See tests/router/complexity_data_test.cpp.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string_view>

#include "router/router.h"

namespace cascade {
namespace {

// Largest contribution of each feature. They add up to more than 1 on
// purpose: a prompt that is long AND code AND math AND multi-step saturates.
constexpr double kLengthWeight = 0.35;
constexpr double kCodeWeight = 0.40;
constexpr double kMathWeight = 0.40;
constexpr double kReasoningWeight = 0.40;
constexpr double kOpenEndedWeight = 0.25;
constexpr double kMultiStepWeight = 0.30;
constexpr double kSystemWeight = 0.10;

// Prompts up to this many tokens add nothing for length; the contribution grows
// with the log of the size and saturates at kLengthFullTokens.
constexpr double kLengthFreeTokens = 32;
constexpr double kLengthFullTokens = 4096;
constexpr double kSystemFreeTokens = 16;
constexpr double kSystemFullTokens = 2048;
// Roughly four characters per token for English with BPE tokenizers.
constexpr double kCharsPerToken = 4;

enum Cue : std::uint16_t {
  kCodeKeyword = 1 << 0,   // tokens rare outside source code: nullptr, println, def
  kCodeTopic = 1 << 1,     // talking about programming: python, compile, regex
  kMathStrong = 1 << 2,    // integral, derivative, prove, theorem
  kMathWeak = 1 << 3,      // calculate, probability, percentage
  kReasonStrong = 1 << 4,  // explain, analyze, compare, justify
  kReasonWeak = 1 << 5,    // why, difference, should
  kArtifact = 1 << 6,      // essay, story, poem: a piece of writing to produce
  kCreate = 1 << 7,        // write, compose, draft, plan, design
  kSequence = 1 << 8,      // then, also, finally: chained asks
  kTaskVerb = 1 << 9,      // an ask: list, describe, summarize, translate
  kWordStep = 1 << 10,     // "step by step"
  kWordBy = 1 << 11,
  kWordTrade = 1 << 12,    // "trade-off"
  kWordOff = 1 << 13,
  kQuantity = 1 << 14,     // total, each, per, half: word problems, when numbers are present
};

struct Keyword {
  std::string_view word;
  std::uint16_t cues;
};

// Sorted by word (checked at compile time) for binary search.
constexpr auto kKeywords = std::to_array<Keyword>({
    {"additionally", kSequence},
    {"advantages", kReasonWeak},
    {"algebra", kMathStrong},
    {"algorithm", kCodeTopic},
    {"algorithms", kCodeTopic},
    {"also", kSequence},
    {"altogether", kQuantity},
    {"analyse", kReasonStrong | kTaskVerb},
    {"analysis", kReasonWeak},
    {"analyze", kReasonStrong | kTaskVerb},
    {"api", kCodeTopic},
    {"argue", kReasonStrong},
    {"argv", kCodeKeyword},
    {"arithmetic", kMathWeak},
    {"article", kArtifact},
    {"assess", kReasonStrong | kTaskVerb},
    {"async", kCodeKeyword},
    {"average", kQuantity | kMathWeak},
    {"await", kCodeKeyword},
    {"backend", kCodeTopic},
    {"bash", kCodeTopic},
    {"blog", kArtifact},
    {"bool", kCodeKeyword},
    {"brainstorm", kCreate},
    {"bug", kCodeTopic},
    {"by", kWordBy},
    {"calculate", kMathWeak | kTaskVerb},
    {"calculus", kMathStrong},
    {"classify", kTaskVerb},
    {"code", kCodeTopic},
    {"coding", kCodeTopic},
    {"compare", kReasonStrong | kTaskVerb},
    {"comparison", kReasonStrong},
    {"compile", kCodeTopic},
    {"compiler", kCodeTopic},
    {"compose", kCreate | kTaskVerb},
    {"compute", kMathWeak | kTaskVerb},
    {"const", kCodeKeyword},
    {"contrast", kReasonStrong},
    {"convert", kTaskVerb},
    {"cout", kCodeKeyword},
    {"cpp", kCodeTopic},
    {"craft", kCreate},
    {"create", kCreate | kTaskVerb},
    {"critically", kReasonStrong},
    {"critique", kReasonStrong | kTaskVerb},
    {"css", kCodeTopic},
    {"debug", kCodeTopic | kTaskVerb},
    {"debugging", kCodeTopic},
    {"def", kCodeKeyword},
    {"derivative", kMathStrong},
    {"derivatives", kMathStrong},
    {"derive", kMathStrong | kReasonStrong | kTaskVerb},
    {"describe", kTaskVerb},
    {"design", kCreate | kTaskVerb},
    {"detail", kReasonWeak},
    {"detailed", kReasonWeak},
    {"dialogue", kArtifact},
    {"dict", kCodeKeyword},
    {"difference", kReasonWeak},
    {"differences", kReasonWeak},
    {"differentiate", kMathStrong},
    {"disadvantages", kReasonWeak},
    {"discuss", kReasonWeak | kTaskVerb},
    {"divide", kMathWeak},
    {"draft", kCreate | kTaskVerb},
    {"each", kQuantity},
    {"eigenvalue", kMathStrong},
    {"eigenvalues", kMathStrong},
    {"elif", kCodeKeyword},
    {"email", kArtifact},
    {"endl", kCodeKeyword},
    {"enum", kCodeKeyword},
    {"equation", kMathStrong},
    {"equations", kMathStrong},
    {"essay", kArtifact},
    {"evaluate", kReasonStrong | kTaskVerb},
    {"exception", kCodeTopic},
    {"explain", kReasonStrong | kTaskVerb},
    {"exponent", kMathWeak},
    {"extract", kTaskVerb},
    {"factorial", kMathStrong},
    {"finally", kSequence},
    {"fn", kCodeKeyword},
    {"formula", kMathWeak},
    {"fraction", kMathWeak},
    {"function", kCodeTopic},
    {"functions", kCodeTopic},
    {"furthermore", kSequence},
    {"generate", kCreate | kTaskVerb},
    {"geometry", kMathWeak},
    {"git", kCodeTopic},
    {"golang", kCodeTopic},
    {"haiku", kArtifact},
    {"half", kQuantity},
    {"html", kCodeTopic},
    {"identify", kTaskVerb},
    {"imagine", kCreate},
    {"impl", kCodeKeyword},
    {"implement", kCodeTopic | kTaskVerb},
    {"implementation", kCodeTopic},
    {"implications", kReasonStrong},
    {"include", kTaskVerb},
    {"inequality", kMathWeak},
    {"int", kCodeKeyword},
    {"integer", kMathWeak},
    {"integral", kMathStrong},
    {"integrate", kMathStrong},
    {"invent", kCreate},
    {"itinerary", kArtifact},
    {"java", kCodeTopic},
    {"javascript", kCodeTopic},
    {"json", kCodeTopic},
    {"justify", kReasonStrong | kTaskVerb},
    {"kotlin", kCodeTopic},
    {"kwargs", kCodeKeyword},
    {"lambda", kCodeKeyword},
    {"lastly", kSequence},
    {"lemma", kMathStrong},
    {"limerick", kArtifact},
    {"list", kTaskVerb},
    {"logarithm", kMathStrong},
    {"lyrics", kArtifact},
    {"malloc", kCodeKeyword},
    {"matrix", kMathStrong},
    {"moreover", kSequence},
    {"multiply", kMathWeak},
    {"namespace", kCodeKeyword},
    {"narrative", kArtifact},
    {"novel", kArtifact},
    {"nuanced", kReasonStrong},
    {"null", kCodeKeyword},
    {"nullptr", kCodeKeyword},
    {"off", kWordOff},
    {"offs", kWordOff},
    {"outline", kTaskVerb},
    {"paragraph", kArtifact},
    {"per", kQuantity},
    {"percent", kQuantity | kMathWeak},
    {"percentage", kMathWeak},
    {"plan", kCreate},
    {"poem", kArtifact},
    {"poems", kArtifact},
    {"polynomial", kMathStrong},
    {"pretend", kCreate},
    {"printf", kCodeKeyword},
    {"println", kCodeKeyword},
    {"probability", kMathWeak},
    {"programming", kCodeTopic},
    {"proof", kMathStrong},
    {"proposal", kArtifact},
    {"pros", kReasonStrong},
    {"prove", kMathStrong | kTaskVerb},
    {"provide", kTaskVerb},
    {"python", kCodeTopic},
    {"quadratic", kMathStrong},
    {"ratio", kMathWeak},
    {"reasoning", kReasonStrong},
    {"recursion", kCodeTopic},
    {"recursive", kCodeTopic},
    {"refactor", kCodeTopic | kTaskVerb},
    {"regex", kCodeTopic},
    {"remainder", kQuantity},
    {"remaining", kQuantity},
    {"rewrite", kCreate | kTaskVerb},
    {"rigorous", kReasonStrong},
    {"script", kCodeTopic},
    {"secondly", kSequence},
    {"should", kReasonWeak},
    {"sizeof", kCodeKeyword},
    {"snippet", kCodeTopic},
    {"solve", kMathWeak | kTaskVerb},
    {"song", kArtifact},
    {"sonnet", kArtifact},
    {"speech", kArtifact},
    {"sql", kCodeTopic},
    {"sqrt", kMathStrong},
    {"statistics", kMathWeak},
    {"std", kCodeKeyword},
    {"stdin", kCodeKeyword},
    {"stdout", kCodeKeyword},
    {"step", kWordStep},
    {"stories", kArtifact},
    {"story", kArtifact},
    {"struct", kCodeKeyword},
    {"suggest", kTaskVerb},
    {"sum", kQuantity},
    {"summarise", kTaskVerb},
    {"summarize", kTaskVerb},
    {"syntax", kCodeTopic},
    {"tell", kTaskVerb},
    {"then", kSequence},
    {"theorem", kMathStrong},
    {"thirdly", kSequence},
    {"thorough", kReasonStrong},
    {"thoroughly", kReasonStrong},
    {"times", kQuantity},
    {"total", kQuantity},
    {"trade", kWordTrade},
    {"tradeoff", kReasonStrong},
    {"tradeoffs", kReasonStrong},
    {"translate", kTaskVerb},
    {"trigonometry", kMathStrong},
    {"triple", kQuantity},
    {"tuple", kCodeKeyword},
    {"tweet", kArtifact},
    {"twice", kQuantity},
    {"typedef", kCodeKeyword},
    {"typescript", kCodeTopic},
    {"variance", kMathWeak},
    {"versus", kReasonWeak},
    {"void", kCodeKeyword},
    {"vs", kReasonWeak},
    {"why", kReasonWeak},
    {"write", kCreate | kTaskVerb},
});
static_assert(std::ranges::is_sorted(kKeywords, {}, &Keyword::word), "kKeywords must stay sorted");

// LaTeX commands, so that "\frac" counts but an escaped newline ("\nWhich") does not.
constexpr auto kLatexCommands = std::to_array<std::string_view>({
    "alpha", "approx", "begin", "beta",  "binom",   "cap",  "cdot",    "cos",    "cup",   "delta",
    "end",   "epsilon", "exists", "forall", "frac", "gamma", "geq", "hat",  "in",    "infty",
    "int",   "lambda", "left", "leq",   "lim",   "ln",      "log",  "mathbb", "mathbf", "mathrm",
    "mu",    "nabla", "neq",   "omega", "partial", "phi",  "pi",     "pm",     "prod",  "right",
    "rightarrow", "sigma", "sin", "sqrt", "subset", "sum",  "tan",    "theta",  "times", "to",
    "vec",
});
static_assert(std::ranges::is_sorted(kLatexCommands), "kLatexCommands must stay sorted");

// Longer words are never keywords; they are skipped without a lookup.
constexpr std::size_t kMaxKeywordLength = 16;

std::uint16_t cues_of(std::string_view word) {
  const auto it = std::ranges::lower_bound(kKeywords, word, {}, &Keyword::word);
  return it != kKeywords.end() && it->word == word ? it->cues : 0;
}

bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_lower(unsigned char c) { return c >= 'a' && c <= 'z'; }
bool is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
bool is_alnum(unsigned char c) { return is_digit(c) || is_lower(c) || is_upper(c); }
bool is_word_char(unsigned char c) { return is_alnum(c) || c == '_'; }
bool is_blank(unsigned char c) { return c == ' ' || c == '\t' || c == '\r'; }

double saturating(double units, double half_at) { return units <= 0 ? 0 : units / (units + half_at); }

double log_scale(double value, double free_below, double full_at) {
  if (value <= free_below) return 0;
  return std::min(1.0, std::log(value / free_below) / std::log(full_at / free_below));
}

// Evidence counted over all message text.
struct Evidence {
  double chars = 0;
  double system_chars = 0;
  bool has_system = false;

  double code = 0;
  double math = 0;
  double reasoning = 0;
  double open_ended = 0;
  double sequence = 0;
  int task_verbs = 0;
  int question_marks = 0;
  int list_items = 0;
  int numbers = 0;  // numerals other than years
  // Braces, call-like "f(x)" and subscripted "a_{i}" are code unless the text is LaTeX.
  double code_unless_latex = 0;
  int latex_commands = 0;
  int operators = 0;  // "3 + 4", "x = 2"
  int quantity_words = 0;
};

class TextScanner {
 public:
  explicit TextScanner(Evidence& evidence) : ev_(evidence) {}

  void scan(std::string_view text) {
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    bool line_start = true;
    prev_cues_ = prev2_cues_ = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const unsigned char c = s[i];
      if (is_word_char(c)) {
        add_to_word(c);
        if (line_start && is_digit(c)) {
          // "1. ", "2) " opening a line: a numbered item.
          std::size_t j = i;
          while (j < n && is_digit(s[j])) ++j;
          if (j + 1 < n && (s[j] == '.' || s[j] == ')') && is_blank(s[j + 1])) {
            ++ev_.list_items;
            word_is_list_marker_ = true;
          }
        }
        line_start = false;
        continue;
      }
      end_word();
      if (c == '\n') {
        line_start = true;
        continue;
      }
      if (is_blank(c)) continue;
      if (line_start) {
        line_start = false;
        if ((c == '-' || c == '*' || c == '+') && i + 1 < n && is_blank(s[i + 1])) {
          ++ev_.list_items;
          continue;
        }
        if (c == 0xE2 && i + 2 < n && s[i + 1] == 0x80 && s[i + 2] == 0xA2) {  // "•"
          ++ev_.list_items;
          i += 2;
          continue;
        }
      }
      punctuation(s, n, i);
    }
    end_word();
  }

 private:
  void add_to_word(unsigned char c) {
    if (c == '_' && word_len_ > 0) word_has_underscore_ = true;
    if (!is_digit(c) && c != '_') word_has_letter_ = true;
    if (word_len_ < word_.size()) word_[word_len_] = static_cast<char>(is_upper(c) ? c + 32 : c);
    ++word_len_;
  }

  void end_word() {
    if (word_len_ == 0) return;
    // snake_case identifiers; camelCase is left out: brand names (iPhone,
    // YouTube, McDonald) look the same.
    if (word_has_letter_ && word_has_underscore_) ev_.code_unless_latex += 0.4;
    std::uint16_t cues = 0;
    if (is_digit(static_cast<unsigned char>(word_[0]))) {
      if (!is_year() && !word_is_list_marker_) ++ev_.numbers;
    } else if (word_has_letter_ && word_len_ <= kMaxKeywordLength) {
      cues = cues_of({word_.data(), word_len_});
    }
    apply(cues);
    prev2_cues_ = prev_cues_;
    prev_cues_ = cues;
    word_len_ = 0;
    word_has_underscore_ = word_has_letter_ = word_is_list_marker_ = false;
  }

  // Years are dates, not quantities to compute with.
  bool is_year() const {
    return word_len_ == 4 && !word_has_letter_ && (word_[0] == '1' || (word_[0] == '2' && word_[1] == '0'));
  }

  void apply(std::uint16_t cues) {
    if (cues == 0) return;
    if (cues & kCodeKeyword) ev_.code += 1.0;
    if (cues & kCodeTopic) ev_.code += 0.7;
    if (cues & kMathStrong) ev_.math += 1.0;
    if (cues & kMathWeak) ev_.math += 0.5;
    if (cues & kReasonStrong) ev_.reasoning += 1.0;
    if (cues & kReasonWeak) ev_.reasoning += 0.4;
    if (cues & kArtifact) ev_.open_ended += 1.0;
    if (cues & kCreate) ev_.open_ended += 0.5;
    if (cues & kSequence) ev_.sequence += 0.5;
    if (cues & kTaskVerb) ++ev_.task_verbs;
    if (cues & kQuantity) ++ev_.quantity_words;
    if ((cues & kWordStep) && (prev_cues_ & kWordBy) && (prev2_cues_ & kWordStep)) ev_.reasoning += 1.0;
    if ((cues & kWordOff) && (prev_cues_ & kWordTrade)) ev_.reasoning += 1.0;
  }

  // Code syntax, math notation, questions. `i` may advance past a consumed run.
  void punctuation(const unsigned char* s, std::size_t n, std::size_t& i) {
    const unsigned char c = s[i];
    const unsigned char next = i + 1 < n ? s[i + 1] : 0;
    switch (c) {
      case '?':
        ++ev_.question_marks;
        break;
      case '`': {
        std::size_t run = 1;
        while (i + run < n && s[i + run] == '`') ++run;
        ev_.code += run >= 3 ? 1.0 : 0.15;  // a fence line counts once per fence: two per block
        i += run - 1;
        break;
      }
      case '{':
      case '}':
        ev_.code_unless_latex += 0.25;
        break;
      case ';': {
        std::size_t j = i + 1;
        while (j < n && is_blank(s[j])) ++j;
        if (j == n || s[j] == '\n') ev_.code += 0.5;  // statement terminator
        break;
      }
      case '\\':
        if (is_latex_command(s, n, i + 1)) {
          ev_.math += 1.0;
          ++ev_.latex_commands;
        }
        break;
      case '(':
        // Call syntax: print(x), len(items).
        if (i > 0 && is_word_char(s[i - 1])) ev_.code_unless_latex += 0.3;
        break;
      case 0xE2:
        // U+2200..U+22FF, the Mathematical Operators block (∑ ∫ √ ≤ ≠ ...).
        if (next >= 0x88 && next <= 0x8B) ev_.math += 1.0;
        break;
      case 0xC3:
        if (next == 0x97 || next == 0xB7) ev_.math += 1.0;  // × ÷
        break;
      default:
        break;
    }
    if (is_code_digraph(c, next)) {
      ev_.code += 0.3;
      ++i;
      return;
    }
    if (is_math_operator(s, n, i)) ++ev_.operators;
  }

  static bool is_latex_command(const unsigned char* s, std::size_t n, std::size_t start) {
    std::size_t end = start;
    while (end < n && end - start <= 10 && (is_lower(s[end]) || is_upper(s[end]))) ++end;
    if (end == start) return false;
    const std::string_view name(reinterpret_cast<const char*>(s + start), end - start);
    return std::ranges::binary_search(kLatexCommands, name);
  }

  static bool is_code_digraph(unsigned char a, unsigned char b) {
    switch (a) {
      case '(': return b == ')';
      case '=': return b == '>' || b == '=';
      case '-': return b == '>';
      case ':': return b == ':';
      case '!': return b == '=';
      case '&': return b == '&';
      case '|': return b == '|';
      case '+': return b == '=' || b == '+';
      case '<': return b == '/';
      case '/': return b == '>' || b == '/';
      default: return false;
    }
  }

  // An operator between operands with a digit on at least one side
  // ("3 + 4", "2x = 6", "x^2"), so "and/or" or markdown "**" do not count.
  static bool is_math_operator(const unsigned char* s, std::size_t n, std::size_t i) {
    const unsigned char op = s[i];
    if (op != '+' && op != '*' && op != '/' && op != '^' && op != '=' && op != '<' && op != '>' &&
        op != '-')
      return false;
    std::size_t left = i;
    while (left > 0 && is_blank(s[left - 1])) --left;
    std::size_t right = i + 1;
    while (right < n && is_blank(s[right])) ++right;
    if (left == 0 || right >= n) return false;
    const unsigned char a = s[left - 1];
    const unsigned char b = s[right];
    // A hyphen is a minus only when spaced out ("7 - 2"); else "2020-21", "x-ray".
    if (op == '-' && (left == i || right == i + 1)) return false;
    const bool a_operand = is_alnum(a) || a == ')';
    const bool b_operand = is_alnum(b) || b == '(';
    if (!a_operand || !b_operand) return false;
    return op == '^' || is_digit(a) || is_digit(b);
  }

  Evidence& ev_;
  std::array<char, kMaxKeywordLength> word_{};
  std::size_t word_len_ = 0;
  bool word_has_underscore_ = false;
  bool word_has_letter_ = false;
  bool word_is_list_marker_ = false;
  std::uint16_t prev_cues_ = 0;
  std::uint16_t prev2_cues_ = 0;
};

bool is_system_role(const nlohmann::json& message) {
  const auto role = message.find("role");
  if (role == message.end() || !role->is_string()) return false;
  const auto& name = role->get_ref<const std::string&>();
  return name == "system" || name == "developer";
}

void scan_text(std::string_view text, bool system, Evidence& ev, TextScanner& scanner) {
  ev.chars += static_cast<double>(text.size());
  if (system) {
    ev.has_system = true;
    ev.system_chars += static_cast<double>(text.size());
  }
  scanner.scan(text);
}

}  // namespace

ComplexityScore score_complexity(const nlohmann::json& messages, std::int64_t input_tokens) {
  Evidence ev;
  TextScanner scanner(ev);
  if (messages.is_array()) {
    for (const auto& message : messages) {
      if (!message.is_object()) continue;
      const auto content = message.find("content");
      if (content == message.end()) continue;
      const bool system = is_system_role(message);
      if (content->is_string()) {
        scan_text(content->get_ref<const std::string&>(), system, ev, scanner);
      } else if (content->is_array()) {
        // Multimodal content: only the text parts carry words to score.
        for (const auto& part : *content) {
          if (!part.is_object()) continue;
          const auto text = part.find("text");
          if (text != part.end() && text->is_string())
            scan_text(text->get_ref<const std::string&>(), system, ev, scanner);
        }
      }
    }
  }

  const double tokens = input_tokens > 0 ? static_cast<double>(input_tokens) : ev.chars / kCharsPerToken;
  const double length = kLengthWeight * log_scale(tokens, kLengthFreeTokens, kLengthFullTokens);
  const double code_units = ev.code + (ev.latex_commands == 0 ? ev.code_unless_latex : 0.0);
  const double code = kCodeWeight * saturating(code_units, 2.0);
  // Several numbers plus quantity words ("each", "per", "total") make a word
  // problem even without any operator. In code, numbers are literals and
  // "i = 0" is an assignment: neither is math there.
  const bool looks_like_code = code_units >= 2.0;
  const double word_problem =
      ev.numbers >= 2 && !looks_like_code
          ? std::min(1.5, 0.3 * (ev.numbers - 1)) + 0.3 * std::min(ev.quantity_words, 5)
          : 0.0;
  const double operators = looks_like_code ? 0.0 : ev.operators;
  const double math = kMathWeight * saturating(ev.math + operators + word_problem, 2.0);
  const double reasoning = kReasoningWeight * saturating(ev.reasoning, 2.0);
  const double open_ended = kOpenEndedWeight * saturating(ev.open_ended, 1.5);
  // Several asks in one prompt: list items, extra questions, chaining words and
  // task verbs beyond the first.
  const double steps = (ev.list_items >= 2 ? 0.6 * ev.list_items : 0) +
                       std::max(0, ev.question_marks - 1) * 1.0 + ev.sequence +
                       std::max(0, ev.task_verbs - 1) * 0.5;
  const double multi_step = kMultiStepWeight * saturating(steps, 2.5);
  // Long system prompts carry instructions (format, persona, rules) that small
  // models follow less reliably.
  const double system =
      ev.has_system ? kSystemWeight * (0.2 + 0.8 * log_scale(ev.system_chars / kCharsPerToken,
                                                             kSystemFreeTokens, kSystemFullTokens))
                    : 0.0;

  ComplexityScore result;
  result.features = {{"length", length},       {"code", code},
                     {"math", math},           {"reasoning", reasoning},
                     {"open_ended", open_ended}, {"multi_step", multi_step},
                     {"system", system}};
  double total = 0;
  for (const auto& [name, value] : result.features) total += value;
  result.score = std::clamp(total, 0.0, 1.0);
  return result;
}

}  // namespace cascade
