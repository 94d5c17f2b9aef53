#include "cache/text_analysis.h"

#include <algorithm>
#include <array>

namespace cascade::text_analysis {

namespace {


bool is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_letter(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
bool is_word_byte(unsigned char c) { return is_digit(c) || is_letter(c) || c >= 0x80; }
constexpr std::string_view kRightQuote = "\xE2\x80\x99";  // ’

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (is_upper(static_cast<unsigned char>(c))) c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

template <std::size_t N>
bool contains(const std::array<std::string_view, N>& words, std::string_view w) {
  return std::find(words.begin(), words.end(), w) != words.end();
}

constexpr std::array<std::string_view, 11> kNegations = {
    "not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor", "without", "cannot"};
// Contractions as typed without the apostrophe ("dont"), common in user prompts.
constexpr std::array<std::string_view, 19> kBareNegatedContractions = {
    "dont", "cant", "wont", "isnt", "arent", "doesnt", "didnt", "wasnt", "werent", "shouldnt",
    "couldnt", "wouldnt", "hasnt", "havent", "hadnt", "aint", "mustnt", "neednt", "shant"};
// "one" is left out: far more often a pronoun ("which one") than a count.
constexpr std::array<std::pair<std::string_view, std::string_view>, 29> kNumberWords = {{
    {"two", "2"},         {"three", "3"},       {"four", "4"},        {"five", "5"},
    {"six", "6"},         {"seven", "7"},       {"eight", "8"},       {"nine", "9"},
    {"ten", "10"},        {"eleven", "11"},     {"twelve", "12"},     {"thirteen", "13"},
    {"fourteen", "14"},   {"fifteen", "15"},    {"sixteen", "16"},    {"seventeen", "17"},
    {"eighteen", "18"},   {"nineteen", "19"},   {"twenty", "20"},     {"thirty", "30"},
    {"forty", "40"},      {"fifty", "50"},      {"sixty", "60"},      {"seventy", "70"},
    {"eighty", "80"},     {"ninety", "90"},     {"hundred", "100"},   {"thousand", "1000"},
    {"million", "1000000"},
}};

std::optional<Form> form_of_word(std::string_view w) {
  if (w == "what" || w == "which" || w == "how") return Form::open;
  if (w == "why") return Form::why;
  if (w == "when") return Form::when;
  if (w == "where") return Form::where;
  if (w == "who" || w == "whom" || w == "whose") return Form::who;
  if (w == "is" || w == "are" || w == "was" || w == "were" || w == "am") return Form::be;
  if (w == "do" || w == "does" || w == "did") return Form::do_;
  if (w == "can" || w == "could") return Form::can;
  if (w == "should" || w == "shall") return Form::should;
  if (w == "will" || w == "would") return Form::will;
  if (w == "has" || w == "have" || w == "had") return Form::have;
  if (w == "may" || w == "might") return Form::may;
  if (w == "must") return Form::must;
  return std::nullopt;
}

constexpr std::array<std::string_view, 7> kQuantityAfterHow = {"many", "much", "long", "often", "old", "far", "big"};

// Grammatical persons mentioned: "my name" and "your name" are different questions.
enum Person : unsigned { kFirstSingular = 1, kFirstPlural = 2, kSecond = 4, kThird = 8 };

unsigned person_of(std::string_view w) {
  static constexpr std::array<std::string_view, 5> first_singular = {"i", "me", "my", "mine", "myself"};
  static constexpr std::array<std::string_view, 5> first_plural = {"we", "us", "our", "ours", "ourselves"};
  static constexpr std::array<std::string_view, 7> second = {"you", "your", "yours", "yourself", "yourselves", "u", "ur"};
  static constexpr std::array<std::string_view, 13> third = {"he", "him", "his", "himself", "she", "her", "hers",
                                                             "herself", "they", "them", "their", "theirs", "themselves"};
  if (contains(first_singular, w)) return kFirstSingular;
  if (contains(first_plural, w)) return kFirstPlural;
  if (contains(second, w)) return kSecond;
  if (contains(third, w)) return kThird;
  return 0;
}

std::string number_value(std::string_view token) {
  std::string out;
  for (const char c : token) {
    if (c != ',') out.push_back(c);
  }
  // "2nd", "21st": the ordinal suffix does not change the number.
  for (std::string_view suffix : {"st", "nd", "rd", "th"}) {
    if (out.size() > 2 && ends_with(out, suffix) && is_digit(static_cast<unsigned char>(out[out.size() - 3]))) {
      out.resize(out.size() - 2);
      break;
    }
  }
  return out;
}

// Symbols that carry meaning in a question ("C" vs "C++", "=" vs "==",
// "1-i" vs "1"); brackets, quotes and ordinary punctuation are left out as
// formatting.
void collect_symbols(std::string_view text, std::string& out) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    switch (c) {
      case '+': case '=': case '@': case '#': case '$': case '%': case '&': case '*': case '<': case '>':
      case '^': case '~': case '|': case '\\':
        out.push_back(c);
        break;
      case '-': {
        // A minus next to a digit, not a hyphen between words.
        const bool digit_before = i > 0 && is_digit(static_cast<unsigned char>(text[i - 1]));
        const bool digit_after = i + 1 < text.size() && is_digit(static_cast<unsigned char>(text[i + 1]));
        if (digit_before || digit_after) out.push_back(c);
        break;
      }
      default:
        break;
    }
  }
  std::sort(out.begin(), out.end());
}

// Words pointing at something the text does not contain ("this plant",
// "the following program"): the answer depends on that unseen thing.
constexpr std::array<std::string_view, 7> kDeixis = {"this", "these", "those", "following", "below", "above", "attached"};

// Opening and closing quotes: ", “, ” and '' (doubled, as some sites escape ").
bool quote_at(std::string_view text, std::size_t i, std::size_t& width) {
  if (text[i] == '"') {
    width = 1;
    return true;
  }
  if (text.substr(i, 3) == "\xE2\x80\x9C" || text.substr(i, 3) == "\xE2\x80\x9D") {
    width = 3;
    return true;
  }
  return false;
}

// One typo between words of 6+ letters: a substitution, an adjacent
// transposition, or a letter inserted or dropped inside the word
// ("recieve"/"receive", "aroumd"/"around"). A letter added at the end is not
// a typo but an inflection ("exercise"/"exercises"), left to the stem rule.
bool one_edit_apart(std::string_view a, std::string_view b) {
  if (a.size() < 6 || b.size() < 6) return false;
  if (a.size() == b.size()) {
    std::size_t diffs = 0, first = 0;
    for (std::size_t k = 0; k < a.size(); ++k) {
      if (a[k] != b[k] && diffs++ == 0) first = k;
    }
    if (diffs == 1) return true;
    return diffs == 2 && first + 1 < a.size() && a[first] == b[first + 1] && a[first + 1] == b[first] &&
           a.substr(first + 2) == b.substr(first + 2);
  }
  if (a.size() + 1 == b.size() || b.size() + 1 == a.size()) {
    const std::string_view longer = a.size() > b.size() ? a : b;
    const std::string_view shorter = a.size() > b.size() ? b : a;
    std::size_t k = 0;
    while (k < shorter.size() && shorter[k] == longer[k]) ++k;
    return k < shorter.size() && shorter.substr(k) == longer.substr(k + 1);
  }
  return false;
}

std::size_t occurrences(const Analysis& a, std::string_view word) {
  return static_cast<std::size_t>(
      std::count_if(a.tokens.begin(), a.tokens.end(), [&](const Token& t) { return t.lower == word; }));
}

}  // namespace

Analysis analyze(std::string_view text) {
  Analysis a;
  collect_symbols(text, a.symbols);
  bool at_sentence_start = true;
  bool in_quotes = false;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (text.substr(i, 3) == kRightQuote) {  // outside a word: punctuation
      i += 3;
      continue;
    }
    if (std::size_t width = 0; quote_at(text, i, width)) {
      in_quotes = !in_quotes;
      // A run of quote marks is one quote: ""word"" quotes word.
      for (i += width; i < text.size() && quote_at(text, i, width);) i += width;
      continue;
    }
    if (!is_word_byte(c)) {
      if (c == '.' || c == '?' || c == '!' || c == '\n') at_sentence_start = true;
      ++i;
      continue;
    }
    // A token: word bytes, joined across an apostrophe before a letter and
    // across "." or "," between digits.
    std::string raw;
    while (i < text.size()) {
      const auto b = static_cast<unsigned char>(text[i]);
      const bool right_quote = text.substr(i, 3) == kRightQuote;
      if (is_word_byte(b) && !right_quote) {
        raw.push_back(text[i++]);
        continue;
      }
      const std::size_t width = right_quote ? 3 : 1;
      if ((b == '\'' || right_quote) && i + width < text.size() &&
          is_letter(static_cast<unsigned char>(text[i + width]))) {
        raw.push_back('\'');
        i += width;
        continue;
      }
      if ((b == '.' || b == ',') && is_digit(static_cast<unsigned char>(raw.back())) && i + 1 < text.size() &&
          is_digit(static_cast<unsigned char>(text[i + 1]))) {
        raw.push_back(text[i++]);
        continue;
      }
      break;
    }
    Token t;
    t.capitalized = is_upper(static_cast<unsigned char>(raw[0]));
    t.all_caps = raw.size() >= 2 && std::all_of(raw.begin(), raw.end(), [](char ch) {
                   return !is_letter(static_cast<unsigned char>(ch)) || is_upper(static_cast<unsigned char>(ch));
                 }) && std::any_of(raw.begin(), raw.end(), [](char ch) { return is_letter(static_cast<unsigned char>(ch)); });
    t.sentence_initial = at_sentence_start;
    at_sentence_start = false;
    std::string lower = lower_ascii(raw);
    if (ends_with(lower, "n't")) {
      t.negation = true;
      lower.resize(lower.size() - 3);
      if (lower == "ca") lower = "can";
      if (lower == "wo") lower = "will";
    } else if (const auto apostrophe = lower.find('\''); apostrophe != std::string::npos) {
      lower.resize(apostrophe);  // "what's", "John's", "I've"
    }
    if (contains(kNegations, lower) || contains(kBareNegatedContractions, lower)) t.negation = true;
    t.number = std::any_of(lower.begin(), lower.end(), [](char ch) { return is_digit(static_cast<unsigned char>(ch)); });
    if (t.number) {
      lower = number_value(lower);
    } else {
      for (const auto& [word, value] : kNumberWords) {
        if (lower == word || (ends_with(lower, "s") && lower.substr(0, lower.size() - 1) == word)) {
          lower = value;  // "hundreds" counts as "hundred"
          t.number = true;
          break;
        }
      }
    }
    t.function = !t.number && is_function_word(lower);
    t.quoted = in_quotes;
    t.stem = t.number ? lower : stem_word(lower);
    t.lower = std::move(lower);
    a.tokens.push_back(std::move(t));
  }

  std::size_t capitalized = 0;
  for (const Token& t : a.tokens) capitalized += t.capitalized;
  // Title Case and ALL CAPS texts capitalize everything: no evidence of names.
  const bool case_is_evidence = a.tokens.size() < 4 || capitalized * 2 <= a.tokens.size();
  bool form_found = false;
  for (std::size_t k = 0; k < a.tokens.size(); ++k) {
    const Token& t = a.tokens[k];
    if (t.number) a.numbers.push_back(t.lower);
    if (t.negation) a.negated = true;
    // Acronyms count even when spelled like a function word ("US", "IT").
    if (case_is_evidence && t.capitalized && !t.sentence_initial && !t.number && !t.negation && t.lower != "i" &&
        (!t.function || t.all_caps)) {
      a.entities.push_back(t.lower);
    }
    if (!t.all_caps) a.persons |= person_of(t.lower);
    // A quoted word is the subject of the question ("meaning of ""of""").
    if (t.quoted) a.quoted.push_back(t.lower);
    if (contains(kDeixis, t.lower)) a.deixis.push_back(t.lower);
    const auto form = form_of_word(t.lower);
    if (form && !form_found) {
      form_found = true;
      a.form = *form;
      if (t.lower == "how" && k + 1 < a.tokens.size() && contains(kQuantityAfterHow, a.tokens[k + 1].lower)) {
        a.form = Form::quantity;
      }
    }
    if (form && (*form == Form::why || *form == Form::when || *form == Form::where || *form == Form::who)) {
      a.wh_words.push_back(*form);
    }
  }
  std::sort(a.numbers.begin(), a.numbers.end());
  std::sort(a.deixis.begin(), a.deixis.end());
  a.deixis.erase(std::unique(a.deixis.begin(), a.deixis.end()), a.deixis.end());
  std::sort(a.wh_words.begin(), a.wh_words.end());
  a.wh_words.erase(std::unique(a.wh_words.begin(), a.wh_words.end()), a.wh_words.end());
  return a;
}

bool is_content(const Token& t) { return !t.function && !t.number && !t.negation && person_of(t.lower) == 0; }

// Two spellings of one word: the same form, the same stem unless exact
// forms are required ("engineer"/"engineering"), or one typo apart.
bool same_word(const Token& t, const Token& u, const VerifierOptions& o) {
  if (t.lower == u.lower) return true;
  if (!o.exact_word_forms && t.stem == u.stem) return true;
  if (o.typos && one_edit_apart(t.lower, u.lower)) return true;
  return o.synonyms && wordnet_synonyms(t, u);
}

bool wordnet_synonyms(const Token& t, const Token& u) {
  static const std::shared_ptr<const Synonyms> table = Synonyms::system();
  if (!table || t.lower.size() < 3 || u.lower.size() < 3) return false;
  // The stem is tried too: WordNet lists base forms ("purchases" is under "purchase").
  for (const std::string* a : {&t.lower, &t.stem}) {
    for (const std::string* b : {&u.lower, &u.stem}) {
      if (table->synonyms(*a, *b)) return true;
    }
  }
  return false;
}

// Content words of `a` with no counterpart in `b`, each word of `b` used
// once: "Robert Hubert warns Robert" has a Robert too many for "Hubert warns
// Robert".
int unmatched_content_words(const Analysis& a, const Analysis& b, const VerifierOptions& o,
                            std::vector<std::size_t>* unmatched) {
  std::vector<bool> used(b.tokens.size(), false);
  int count = 0;
  for (std::size_t i = 0; i < a.tokens.size(); ++i) {
    const Token& t = a.tokens[i];
    if (!is_content(t)) continue;
    bool matched = false;
    // Identical forms first, so a looser match does not take a word an exact one needs.
    for (int pass = 0; pass < 2 && !matched; ++pass) {
      for (std::size_t j = 0; j < b.tokens.size() && !matched; ++j) {
        const Token& u = b.tokens[j];
        if (used[j] || !is_content(u)) continue;
        if (pass == 0 ? t.lower == u.lower : same_word(t, u, o)) matched = used[j] = true;
      }
    }
    if (matched) continue;
    ++count;
    if (unmatched) unmatched->push_back(i);
  }
  return count;
}

// Each entity or quoted word of `a` occurs in `b` at least as often: "of" in
// "the meaning of ""of""" needs a second "of" in the other text.
bool entities_present(const Analysis& a, const Analysis& b) {
  auto present = [&](const std::string& e) { return occurrences(b, e) >= occurrences(a, e); };
  return std::all_of(a.entities.begin(), a.entities.end(), present) &&
         std::all_of(a.quoted.begin(), a.quoted.end(), present);
}

// Pairwise order inversions among the words both texts share (content
// words, numbers, entities). The k-th occurrence of a word in one text pairs
// with its k-th occurrence in the other, so repeated words still count:
// "more horrific than musical" vs "more musical than horrific" in a sentence
// that says "musical" twice.
int order_inversions(const Analysis& a, const Analysis& b, std::size_t* shared) {
  auto anchors = [](const Analysis& x) {
    std::vector<std::pair<const std::string*, int>> out;  // stem, occurrence
    for (const Token& t : x.tokens) {
      if (t.function || t.negation) continue;
      int occurrence = 0;
      for (const auto& [stem, k] : out) occurrence += *stem == t.stem;
      out.emplace_back(&t.stem, occurrence);
    }
    return out;
  };
  const auto sa = anchors(a);
  const auto sb = anchors(b);
  std::vector<std::size_t> positions_in_b;
  for (const auto& [stem, k] : sa) {
    for (std::size_t j = 0; j < sb.size(); ++j) {
      if (sb[j].second == k && *sb[j].first == *stem) {
        positions_in_b.push_back(j);
        break;
      }
    }
  }
  if (shared) *shared = positions_in_b.size();
  int inversions = 0;
  for (std::size_t i = 0; i < positions_in_b.size(); ++i) {
    for (std::size_t j = i + 1; j < positions_in_b.size(); ++j) inversions += positions_in_b[i] > positions_in_b[j];
  }
  return inversions;
}


}  // namespace cascade::text_analysis
