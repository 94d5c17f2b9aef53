#include <algorithm>
#include <array>

#include "embeddings/embeddings.h"

namespace cascade {

namespace {

// Sorted for binary search. Negations (no, not, never, ...) and comparatives
// (more, most, less, least) are absent on purpose: they change what is asked.
constexpr std::array<std::string_view, 142> kFunctionWords = {
    "a", "about", "above", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as",
    "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by",
    "can", "could", "d", "did", "do", "does", "doing", "down", "during", "each", "else", "etc",
    "ever", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers",
    "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself",
    "just", "ll", "m", "may", "me", "might", "must", "my", "myself", "of", "off", "on", "once",
    "onto", "or", "other", "our", "ours", "ourselves", "out", "over", "re", "really", "s",
    "same", "shall", "she", "should", "so", "some", "such", "t", "than", "that", "the", "their",
    "theirs", "them", "themselves", "then", "there", "these", "they", "thing", "things", "this",
    "those", "through", "to", "too", "under", "until", "up", "upon", "us", "ve", "very", "via",
    "was", "way", "we", "were", "what", "whats", "when", "where", "which", "while", "who", "whom",
    "whose", "why", "will", "with", "within", "would", "you", "your", "yours", "yourself",
    "yourselves",
};

constexpr bool sorted_unique() {
  for (std::size_t i = 1; i < kFunctionWords.size(); ++i) {
    if (!(kFunctionWords[i - 1] < kFunctionWords[i])) return false;
  }
  return true;
}

bool ends_with(std::string_view word, std::string_view suffix) {
  return word.size() >= suffix.size() && word.substr(word.size() - suffix.size()) == suffix;
}

}  // namespace

bool is_function_word(std::string_view lowercase_word) {
  static_assert(sorted_unique(), "kFunctionWords must be sorted and unique");
  return std::binary_search(kFunctionWords.begin(), kFunctionWords.end(), lowercase_word);
}

std::string stem_word(std::string_view w) {
  if (w.size() > 4 && ends_with(w, "ies")) return std::string(w.substr(0, w.size() - 3)) + "y";
  if (w.size() > 4 && ends_with(w, "sses")) return std::string(w.substr(0, w.size() - 2));
  if (w.size() > 5 && ends_with(w, "ing")) return std::string(w.substr(0, w.size() - 3));
  if (w.size() > 4 && ends_with(w, "ed") && !ends_with(w, "eed")) return std::string(w.substr(0, w.size() - 2));
  if (w.size() > 3 && ends_with(w, "s") && !ends_with(w, "ss") && !ends_with(w, "us") && !ends_with(w, "is")) {
    return std::string(w.substr(0, w.size() - 1));
  }
  return std::string(w);
}

}  // namespace cascade
