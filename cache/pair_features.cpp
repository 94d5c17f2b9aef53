// The learned verifier's view of a pair (semantic.h, "learned verifier").
#include <algorithm>
#include <array>
#include <cmath>
#include <unordered_set>

#include "cache/semantic.h"
#include "cache/text_analysis.h"

namespace cascade {

namespace {

using namespace text_analysis;

constexpr std::array<std::string_view, kPairFeatureCount> kNames = {
    "similarity",          "numbers_differ",      "symbols_differ",         "negation_differ",
    "entities_differ",     "form_differ",         "wh_words_differ",        "persons_differ",
    "deixis_differ",       "unmatched_query",     "unmatched_candidate",    "content_query",
    "content_candidate",   "tokens_query",        "tokens_candidate",       "order_inversions",
    "shared_words",        "unmatched_fraction",  "longest_unmatched_query", "longest_unmatched_candidate",
    "function_word_difference", "same_first_word", "same_last_content_word", "entities_query",
    "entities_candidate",  "char_trigram_jaccard", "length_ratio",          "numbers_query",
    "stem_only_matches",   "unmatched_capitalized", "synonym_matches",
};

// The matching the rules use with their defaults: stems and typos count.
const VerifierOptions kMatching{};

float lexical_similarity(std::string_view query, std::string_view candidate) {
  static const BuiltinEmbedder embedder;  // thread-safe: embed_into keeps its scratch per thread
  thread_local std::vector<float> a, b;
  a.resize(embedder.dimension());
  b.resize(embedder.dimension());
  embedder.embed_into(normalize_text(query), a);
  embedder.embed_into(normalize_text(candidate), b);
  float dot = 0;
  for (std::size_t i = 0; i < a.size(); ++i) dot += a[i] * b[i];
  return dot;
}

std::size_t content_count(const Analysis& a) {
  return static_cast<std::size_t>(std::count_if(a.tokens.begin(), a.tokens.end(), is_content));
}

float longest(const Analysis& a, const std::vector<std::size_t>& indexes) {
  std::size_t most = 0;
  for (const std::size_t i : indexes) most = std::max(most, a.tokens[i].lower.size());
  return static_cast<float>(most);
}

std::size_t capitalized(const Analysis& a, const std::vector<std::size_t>& indexes) {
  return static_cast<std::size_t>(
      std::count_if(indexes.begin(), indexes.end(), [&](std::size_t i) { return a.tokens[i].capitalized; }));
}

// Size of the symmetric difference of the two texts' function-word multisets:
// "How do I" vs "How can I" differ by 2.
std::size_t function_word_difference(const Analysis& a, const Analysis& b) {
  std::vector<std::string_view> x, y;
  for (const Token& t : a.tokens) if (t.function) x.push_back(t.lower);
  for (const Token& t : b.tokens) if (t.function) y.push_back(t.lower);
  std::sort(x.begin(), x.end());
  std::sort(y.begin(), y.end());
  std::vector<std::string_view> difference;
  std::set_symmetric_difference(x.begin(), x.end(), y.begin(), y.end(), std::back_inserter(difference));
  return difference.size();
}

// Content words of `a` that are in `b` only under another form (stem or typo).
std::size_t stem_only_matches(const Analysis& a, const Analysis& b) {
  std::size_t count = 0;
  for (const Token& t : a.tokens) {
    if (!is_content(t)) continue;
    bool identical = false, similar = false;
    for (const Token& u : b.tokens) {
      if (!is_content(u)) continue;
      identical = identical || t.lower == u.lower;
      similar = similar || same_word(t, u, kMatching);
    }
    count += similar && !identical;
  }
  return count;
}

// Unmatched words of `a` that WordNet pairs with an unmatched word of `b`,
// each word of `b` used once ("buy a car" / "purchase a car").
std::size_t synonym_matches(const Analysis& a, const std::vector<std::size_t>& unmatched_a, const Analysis& b,
                            const std::vector<std::size_t>& unmatched_b) {
  std::vector<bool> used(unmatched_b.size(), false);
  std::size_t count = 0;
  for (const std::size_t i : unmatched_a) {
    for (std::size_t k = 0; k < unmatched_b.size(); ++k) {
      if (!used[k] && wordnet_synonyms(a.tokens[i], b.tokens[unmatched_b[k]])) {
        used[k] = true;
        ++count;
        break;
      }
    }
  }
  return count;
}

const Token* last_content(const Analysis& a) {
  for (auto it = a.tokens.rbegin(); it != a.tokens.rend(); ++it) {
    if (is_content(*it)) return &*it;
  }
  return nullptr;
}

float trigram_jaccard(std::string_view query, std::string_view candidate) {
  auto grams = [](const std::string& text) {
    std::unordered_set<std::string_view> out;
    for (std::size_t i = 0; i + 3 <= text.size(); ++i) out.insert(std::string_view(text).substr(i, 3));
    return out;
  };
  const std::string a = normalize_text(query);
  const std::string b = normalize_text(candidate);
  const auto x = grams(a);
  const auto y = grams(b);
  if (x.empty() && y.empty()) return 1;
  std::size_t shared = 0;
  for (const auto& g : x) shared += y.contains(g);
  return static_cast<float>(shared) / static_cast<float>(x.size() + y.size() - shared);
}

}  // namespace

std::span<const std::string_view> pair_feature_names() { return kNames; }

namespace {

PairFeatures features_of(std::string_view query, std::string_view candidate, const Analysis& q, const Analysis& c) {
  std::vector<std::size_t> unmatched_q, unmatched_c;
  const int missing_in_c = unmatched_content_words(q, c, kMatching, &unmatched_q);
  const int missing_in_q = unmatched_content_words(c, q, kMatching, &unmatched_c);
  std::size_t shared = 0;
  const int inversions = order_inversions(q, c, &shared);
  const std::size_t content_q = content_count(q);
  const std::size_t content_c = content_count(c);
  const Token* last_q = last_content(q);
  const Token* last_c = last_content(c);
  const double length_q = static_cast<double>(query.size());
  const double length_c = static_cast<double>(candidate.size());

  PairFeatures f{};
  std::size_t k = 0;
  auto put = [&](double value) { f[k++] = static_cast<float>(value); };
  put(lexical_similarity(query, candidate));
  put(q.numbers != c.numbers);
  put(q.symbols != c.symbols);
  put(q.negated != c.negated);
  put(!(entities_present(q, c) && entities_present(c, q)));
  put(q.form != c.form);
  put(q.wh_words != c.wh_words);
  put(q.persons != c.persons);
  put(q.deixis != c.deixis);
  put(missing_in_c);
  put(missing_in_q);
  put(static_cast<double>(content_q));
  put(static_cast<double>(content_c));
  put(static_cast<double>(q.tokens.size()));
  put(static_cast<double>(c.tokens.size()));
  put(inversions);
  put(static_cast<double>(shared));
  put(content_q + content_c == 0 ? 0.0 : (missing_in_c + missing_in_q) / static_cast<double>(content_q + content_c));
  put(longest(q, unmatched_q));
  put(longest(c, unmatched_c));
  put(static_cast<double>(function_word_difference(q, c)));
  put(!q.tokens.empty() && !c.tokens.empty() && q.tokens.front().lower == c.tokens.front().lower);
  put(last_q && last_c && same_word(*last_q, *last_c, kMatching));
  put(static_cast<double>(q.entities.size()));
  put(static_cast<double>(c.entities.size()));
  put(trigram_jaccard(query, candidate));
  put(std::max(length_q, length_c) == 0 ? 1.0 : std::min(length_q, length_c) / std::max(length_q, length_c));
  put(static_cast<double>(q.numbers.size()));
  put(static_cast<double>(stem_only_matches(q, c) + stem_only_matches(c, q)));
  put(static_cast<double>(capitalized(q, unmatched_q) + capitalized(c, unmatched_c)));
  put(static_cast<double>(synonym_matches(q, unmatched_q, c, unmatched_c)));
  return f;
}

}  // namespace

PairFeatures pair_features(std::string_view query, std::string_view candidate) {
  return features_of(query, candidate, analyze(query), analyze(candidate));
}

HitJudgement HitModel::judge(std::string_view query, std::string_view candidate) const {
  // One analysis of each text serves the vetoes and the features.
  const Analysis q = analyze(query);
  const Analysis c = analyze(candidate);
  HitJudgement out;
  out.verdict = verify_analyzed(vetoes_, q, c);
  if (out.verdict.accepted) out.probability = probability(features_of(query, candidate, q, c));
  return out;
}

}  // namespace cascade
