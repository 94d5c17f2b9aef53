#include <charconv>
#include <string>
#include <vector>

#include "cache/semantic.h"
#include "cache/text_analysis.h"

namespace cascade {

namespace {

using namespace text_analysis;

// Runs the enabled rules in order; stops at the first failure unless `all`.
void check(const VerifierOptions& o, const Analysis& q, const Analysis& c, bool all,
           std::vector<std::string_view>& failed) {
  auto fail_rule = [&](std::string_view rule) {
    failed.push_back(rule);
    return !all;
  };
  if (o.numbers && q.numbers != c.numbers && fail_rule("numbers")) return;
  if (o.symbols && q.symbols != c.symbols && fail_rule("symbols")) return;
  if (o.negation && q.negated != c.negated && fail_rule("negation")) return;
  if (o.entities && !(entities_present(q, c) && entities_present(c, q)) && fail_rule("entities")) return;
  if (o.question_form && (q.form != c.form || q.wh_words != c.wh_words) && fail_rule("question_form")) return;
  if (o.persons && q.persons != c.persons && fail_rule("persons")) return;
  if (o.deixis && q.deixis != c.deixis && fail_rule("deixis")) return;
  if (o.max_unmatched_content_words >= 0) {
    const int missing_in_c = unmatched_content_words(q, c, o);
    const int missing_in_q = unmatched_content_words(c, q, o);
    if (!o.allow_substitution && missing_in_c > 0 && missing_in_q > 0) {
      if (fail_rule("substitution")) return;
    } else if ((missing_in_c > o.max_unmatched_content_words || missing_in_q > o.max_unmatched_content_words) &&
               fail_rule("content_words")) {
      return;
    }
  }
  if (o.word_order && order_inversions(q, c) > o.max_order_inversions && fail_rule("word_order")) return;
}

}  // namespace

namespace text_analysis {
Verdict verify_analyzed(const VerifierOptions& o, const Analysis& query, const Analysis& candidate) {
  std::vector<std::string_view> failed;
  check(o, query, candidate, false, failed);
  return failed.empty() ? Verdict{true, ""} : Verdict{false, failed.front()};
}
}  // namespace text_analysis

Result<void> set_verifier_option(VerifierOptions& o, std::string_view name, std::string_view value) {
  auto as_bool = [&](bool& field) -> Result<void> {
    if (value == "true" || value == "1" || value == "on") field = true;
    else if (value == "false" || value == "0" || value == "off") field = false;
    else return fail(ErrorCode::invalid_request, "verifier option " + std::string(name) + " wants true or false");
    return {};
  };
  auto as_int = [&](int& field) -> Result<void> {
    int parsed = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), parsed);
    if (ec != std::errc{} || end != value.data() + value.size()) {
      return fail(ErrorCode::invalid_request, "verifier option " + std::string(name) + " wants an integer");
    }
    field = parsed;
    return {};
  };
  if (name == "numbers") return as_bool(o.numbers);
  if (name == "symbols") return as_bool(o.symbols);
  if (name == "negation") return as_bool(o.negation);
  if (name == "entities") return as_bool(o.entities);
  if (name == "question_form") return as_bool(o.question_form);
  if (name == "persons") return as_bool(o.persons);
  if (name == "deixis") return as_bool(o.deixis);
  if (name == "max_unmatched_content_words") return as_int(o.max_unmatched_content_words);
  if (name == "allow_substitution") return as_bool(o.allow_substitution);
  if (name == "exact_word_forms") return as_bool(o.exact_word_forms);
  if (name == "typos") return as_bool(o.typos);
  if (name == "synonyms") return as_bool(o.synonyms);
  if (name == "word_order") return as_bool(o.word_order);
  if (name == "max_order_inversions") return as_int(o.max_order_inversions);
  return fail(ErrorCode::invalid_request, "unknown verifier option " + std::string(name));
}

Result<VerifierOptions> veto_options(const std::vector<std::string>& rules) {
  VerifierOptions o{.numbers = false, .symbols = false, .negation = false, .entities = false,
                    .question_form = false, .persons = false, .deixis = false,
                    .max_unmatched_content_words = -1, .word_order = false};
  for (const std::string& rule : rules) {
    if (rule == "content_words") {
      o.max_unmatched_content_words = 0;
    } else if (rule.starts_with("max_") || rule == "allow_substitution" || rule == "exact_word_forms" ||
               rule == "typos" || !set_verifier_option(o, rule, "true")) {
      return fail(ErrorCode::invalid_request, "veto '" + rule + "' is not a rule");
    }
  }
  return o;
}

Verdict HitVerifier::verify(std::string_view query, std::string_view candidate) const {
  std::vector<std::string_view> failed;
  check(options_, analyze(query), analyze(candidate), false, failed);
  if (failed.empty()) return {true, ""};
  return {false, failed.front()};
}

std::vector<std::string_view> HitVerifier::failed_rules(std::string_view query, std::string_view candidate) const {
  std::vector<std::string_view> failed;
  check(options_, analyze(query), analyze(candidate), true, failed);
  return failed;
}

}  // namespace cascade
