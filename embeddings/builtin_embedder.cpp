#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/hash.h"
#include "embeddings/embeddings.h"

namespace cascade {

namespace {

// Feature families hash with different seeds so that the word "abc" and the
// character n-gram "abc" land in unrelated buckets.
enum Family : std::uint64_t { kWord = 0x9E3779B97F4A7C15ull, kBigram = 0xC2B2AE3D27D4EB4Full, kChar = 0x165667B19E3779F9ull };

// FNV-1a of the family's seed, spread by splitmix64's finalizer (FNV's low
// bits alone are poorly mixed).
std::uint64_t feature_hash(std::string_view bytes, std::uint64_t seed) {
  return splitmix64_finalize(fnv1a_extend(kFnv1aOffsetBasis ^ seed, bytes));
}

bool is_word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

struct Feature {
  std::uint64_t hash;
  float weight;
};

struct Word {
  std::string text;  // lowercase
  std::string stem;
  bool function = false;
};

// Scratch reused per thread: embedding a prompt allocates nothing once warm.
struct Scratch {
  std::vector<Word> words;
  std::vector<Feature> features;
  std::string gram;
};

void split_words(std::string_view text, std::vector<Word>& words) {
  words.clear();
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && !is_word_byte(static_cast<unsigned char>(text[i]))) ++i;
    const std::size_t start = i;
    while (i < text.size() && is_word_byte(static_cast<unsigned char>(text[i]))) ++i;
    if (i == start) break;
    // U+2019 (’) is three bytes >= 0x80: split "what’s" like "what's".
    std::string_view token = text.substr(start, i - start);
    std::size_t pos;
    while ((pos = token.find("\xE2\x80\x99")) != std::string_view::npos) {
      if (pos > 0) words.push_back(Word{std::string(token.substr(0, pos)), {}, false});
      token.remove_prefix(pos + 3);
    }
    if (!token.empty()) words.push_back(Word{std::string(token), {}, false});
  }
  for (Word& w : words) {
    for (char& c : w.text) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    w.function = is_function_word(w.text);
    w.stem = stem_word(w.text);
  }
}

}  // namespace

BuiltinEmbedder::BuiltinEmbedder(BuiltinEmbedderOptions options) : options_(options) {
  if (options_.dimension == 0) options_.dimension = 1;
  if (options_.min_char_ngram < 1) options_.min_char_ngram = 1;
  // Every option that changes vectors is in the tag, so any change re-keys the embedding cache.
  char buf[160];
  std::snprintf(buf, sizeof buf, "builtin-hash-v1:d%zu:w%.3g:b%.3g:c%.3g:f%.3g:n%d-%d", options_.dimension,
                options_.word_weight, options_.bigram_weight, options_.char_ngram_weight,
                options_.function_word_weight, options_.min_char_ngram, options_.max_char_ngram);
  tag_ = buf;
}

void BuiltinEmbedder::embed_into(std::string_view text, std::span<float> out) const {
  std::fill(out.begin(), out.end(), 0.0f);
  thread_local Scratch scratch;
  split_words(text, scratch.words);
  auto& features = scratch.features;
  features.clear();
  const auto& words = scratch.words;
  const float fw = options_.function_word_weight;

  for (std::size_t i = 0; i < words.size(); ++i) {
    const Word& w = words[i];
    features.push_back({feature_hash(w.stem, kWord), options_.word_weight * (w.function ? fw : 1.0f)});
    if (i + 1 < words.size()) {
      const Word& next = words[i + 1];
      scratch.gram.assign(w.stem).append(1, ' ').append(next.stem);
      const float weight = options_.bigram_weight * (w.function && next.function ? fw : 1.0f);
      features.push_back({feature_hash(scratch.gram, kBigram), weight});
    }
    // Character n-grams make inflections and typos overlap; function words
    // would only add noise shared by every question.
    if (w.function || options_.char_ngram_weight <= 0) continue;
    scratch.gram.assign(1, '<').append(w.text).append(1, '>');
    const std::string_view padded = scratch.gram;
    for (int n = options_.min_char_ngram; n <= options_.max_char_ngram; ++n) {
      if (padded.size() < static_cast<std::size_t>(n)) break;
      for (std::size_t p = 0; p + n <= padded.size(); ++p) {
        features.push_back({feature_hash(padded.substr(p, n), kChar), options_.char_ngram_weight});
      }
    }
  }

  std::sort(features.begin(), features.end(), [](const Feature& a, const Feature& b) { return a.hash < b.hash; });
  const std::size_t dim = out.size();
  for (std::size_t i = 0; i < features.size();) {
    std::size_t j = i;
    while (j < features.size() && features[j].hash == features[i].hash) ++j;
    // Sublinear tf: a repeated word counts, but not linearly.
    const float value = features[i].weight * (1.0f + std::log(static_cast<float>(j - i)));
    const std::uint64_t h = features[i].hash;
    const float sign = (h >> 63) ? -1.0f : 1.0f;
    out[(h & 0x7FFFFFFFFFFFFFFFull) % dim] += sign * value;
    i = j;
  }
  normalize_unit(out);
}

Result<std::vector<Embedding>> BuiltinEmbedder::embed(std::span<const std::string> texts) {
  std::vector<Embedding> out(texts.size(), Embedding(options_.dimension));
  for (std::size_t i = 0; i < texts.size(); ++i) embed_into(texts[i], out[i]);
  return out;
}

}  // namespace cascade
