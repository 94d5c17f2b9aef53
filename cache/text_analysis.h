#pragma once
// Private to cache/: the lexical analysis of one prompt that both the rule
// verifier (hit_verifier.cpp) and the learned verifier's pair features
// (pair_features.cpp) compare. Pure functions; safe from any thread.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/semantic.h"

namespace cascade::text_analysis {

// What kind of question a text opens with. what/which/how are one class:
// "How can I..." and "What is the best way to..." ask the same thing.
enum class Form { statement, open, quantity, why, when, where, who, be, do_, can, should, will, have, may, must };

struct Token {
  std::string lower;  // apostrophe suffixes removed ("what's" -> "what")
  std::string stem;
  bool capitalized = false;
  bool all_caps = false;
  bool sentence_initial = false;
  bool negation = false;
  bool number = false;
  bool function = false;
  bool quoted = false;
};

struct Analysis {
  std::vector<Token> tokens;
  std::vector<std::string> numbers;  // sorted multiset
  std::string symbols;               // sorted multiset of meaningful symbols
  bool negated = false;
  std::vector<std::string> entities;  // lowercase
  std::vector<std::string> quoted;    // lowercase tokens inside quotes
  std::vector<std::string> deixis;    // sorted set of this/these/following/...
  Form form = Form::statement;
  std::vector<Form> wh_words;  // why/when/where/who anywhere, sorted set
  unsigned persons = 0;
};

// The text as the user wrote it (case is evidence of a named entity).
Analysis analyze(std::string_view text);

// A content word: not a function word, number, negation or pronoun.
bool is_content(const Token& t);

// Two spellings of one word: the same form, the same stem unless exact
// forms are required ("engineer"/"engineering"), or one typo apart.
bool same_word(const Token& t, const Token& u, const VerifierOptions& o);

// WordNet (Synonyms::system()) puts the two words in one synonym set among
// their first senses; false without WordNet.
bool wordnet_synonyms(const Token& t, const Token& u);

// The rule verifier's verdict on two analysed texts (hit_verifier.cpp).
Verdict verify_analyzed(const VerifierOptions& o, const Analysis& query, const Analysis& candidate);

// Content words of `a` with no counterpart in `b`, each word of `b` used
// once: "Robert Hubert warns Robert" has a Robert too many for "Hubert warns
// Robert". When `unmatched` is given, it receives the indexes (into
// a.tokens) of those words.
int unmatched_content_words(const Analysis& a, const Analysis& b, const VerifierOptions& o,
                            std::vector<std::size_t>* unmatched = nullptr);

// Each entity or quoted word of `a` occurs in `b` at least as often.
bool entities_present(const Analysis& a, const Analysis& b);

// Pairwise order inversions among the words both texts share (content
// words, numbers, entities); `shared` receives how many such words there are.
int order_inversions(const Analysis& a, const Analysis& b, std::size_t* shared = nullptr);

}  // namespace cascade::text_analysis
