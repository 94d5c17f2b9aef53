#include "router/features.h"

#include <algorithm>
#include <cmath>
#include <cctype>
#include <cstring>

#include "core/hash.h"
#include "router/router.h"

namespace cascade::route_features {
namespace {

// Each family hashes with its own seed, so the word "the" and the 4-gram
// "the" land in unrelated buckets. Fixed forever: a model's weights are
// indexed by these hashes.
constexpr std::uint64_t kUnigramSeed = 0x5A17C0DE00000001ull;
constexpr std::uint64_t kBigramSeed = 0x5A17C0DE00000002ull;
constexpr std::uint64_t kCharSeed = 0x5A17C0DE00000003ull;
constexpr std::uint64_t kPunctSeed = 0x5A17C0DE00000004ull;
constexpr std::uint64_t kSystemSeed = 0x5A17C0DE00000005ull;
constexpr std::size_t kSystemPromptBytes = 256;

// Relative weight of each family before the vector is scaled to unit length:
// a word's 4-grams are many, and partly repeat what the word says.
constexpr float kUnigramWeight = 1.0f;
constexpr float kBigramWeight = 1.0f;
constexpr float kCharWeight = 0.5f;
constexpr float kPunctWeight = 1.0f;

// The embedding is unit length over 256 dimensions (entries ~0.06); scaled
// up so a modest weight can use it.
constexpr float kEmbeddingScale = 4.0f;

// Longer words are hashed by their first kMaxWord bytes.
constexpr std::size_t kMaxWord = 48;

std::uint64_t fnv1a(const char* bytes, std::size_t n, std::uint64_t seed) {
  return splitmix64_finalize(fnv1a_extend(kFnv1aOffsetBasis ^ seed, {bytes, n}));
}

bool is_word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
}

// Per-thread accumulation buffer over the hashed space: extraction allocates
// nothing once warm.
struct Scratch {
  std::vector<float> accumulator;
  std::vector<std::uint32_t> touched;
  std::string text;
  std::string normalized;
  std::vector<float> embedding;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

class Hasher {
 public:
  Hasher(const FeatureSpec& spec, Scratch& s, PromptFeatures* named)
      : spec_(spec), s_(s), mask_((std::uint32_t{1} << spec.hash_bits) - 1), named_(named) {
    if (s_.accumulator.size() < std::size_t{1} << spec.hash_bits) s_.accumulator.assign(std::size_t{1} << spec.hash_bits, 0.0f);
    s_.touched.clear();
  }

  void add(std::uint64_t hash, float weight, const char* family, std::string_view name) {
    const auto index = static_cast<std::uint32_t>(hash & mask_);
    const float value = (hash >> 63) ? -weight : weight;
    float& slot = s_.accumulator[index];
    if (slot == 0.0f) s_.touched.push_back(index);
    slot += value;
    // An exact cancellation leaves the slot at 0 but still listed: harmless,
    // it contributes nothing and is cleared like the others.
    if (named_ != nullptr) {
      auto& entry = named_->named[std::string(family) + std::string(name)];
      entry.first = index;
      entry.second += value;
    }
  }

  void word(const char* w, std::size_t n) {
    if (spec_.word_unigrams) add(fnv1a(w, n, kUnigramSeed), kUnigramWeight, "w:", {w, n});
    if (spec_.word_bigrams && prev_len_ > 0) {
      char pair[2 * kMaxWord + 1];
      std::memcpy(pair, prev_, prev_len_);
      pair[prev_len_] = ' ';
      std::memcpy(pair + prev_len_ + 1, w, n);
      add(fnv1a(pair, prev_len_ + 1 + n, kBigramSeed), kBigramWeight, "b:", {pair, prev_len_ + 1 + n});
    }
    if (spec_.char_ngrams && n >= 2) {
      char padded[kMaxWord + 2];
      padded[0] = '^';
      std::memcpy(padded + 1, w, n);
      padded[n + 1] = '$';
      for (std::size_t i = 0; i + 4 <= n + 2; ++i)
        add(fnv1a(padded + i, 4, kCharSeed), kCharWeight, "c:", {padded + i, 4});
    }
    std::memcpy(prev_, w, n);
    prev_len_ = n;
  }

  void punctuation(char c) {
    add(fnv1a(&c, 1, kPunctSeed), kPunctWeight, "p:", {&c, 1});
  }

  // Scales to unit length, writes the features and clears the scratch.
  void finish(PromptFeatures& out) {
    double norm2 = 0;
    for (const std::uint32_t i : s_.touched) norm2 += static_cast<double>(s_.accumulator[i]) * s_.accumulator[i];
    const double norm = std::sqrt(norm2);
    out.hashed_norm = norm;
    out.hashed.clear();
    const float scale = norm > 0 ? static_cast<float>(1.0 / norm) : 0.0f;
    for (const std::uint32_t i : s_.touched) {
      if (s_.accumulator[i] != 0.0f) out.hashed.push_back({i, s_.accumulator[i] * scale});
      s_.accumulator[i] = 0.0f;
    }
    s_.touched.clear();
  }

 private:
  const FeatureSpec& spec_;
  Scratch& s_;
  std::uint32_t mask_;
  PromptFeatures* named_;
  char prev_[kMaxWord];
  std::size_t prev_len_ = 0;
};

struct Shape {
  double chars = 0;
  double words = 0;
  double numbers = 0;
  double lines = 1;
  double question_marks = 0;
  double digits = 0;
  double options = 0;  // lines opening with "A." "B)" "(C)": a multiple-choice question
};

bool is_option_line(const std::string& text, std::size_t i) {
  // At a line start: "A." "A)" "(A)" with A..J.
  if (i < text.size() && text[i] == '(') ++i;
  if (i + 1 >= text.size()) return false;
  const char letter = text[i];
  const char after = text[i + 1];
  return letter >= 'A' && letter <= 'J' && (after == '.' || after == ')');
}

}  // namespace

nlohmann::json FeatureSpec::to_json() const {
  return {{"hash_bits", hash_bits},       {"word_unigrams", word_unigrams}, {"word_bigrams", word_bigrams},
          {"char_ngrams", char_ngrams},   {"embedding", embedding},         {"heuristic", heuristic},
          {"shape", shape},               {"embedding_tail_bytes", embedding_tail_bytes},
          {"system_prompt", system_prompt}};
}

Result<FeatureSpec> FeatureSpec::from_json(const nlohmann::json& j) {
  if (!j.is_object()) return fail(ErrorCode::invalid_request, "router model: 'features' must be an object");
  FeatureSpec spec;
  try {
    spec.hash_bits = j.at("hash_bits").get<int>();
    spec.word_unigrams = j.at("word_unigrams").get<bool>();
    spec.word_bigrams = j.at("word_bigrams").get<bool>();
    spec.char_ngrams = j.at("char_ngrams").get<bool>();
    spec.embedding = j.at("embedding").get<bool>();
    spec.heuristic = j.at("heuristic").get<bool>();
    spec.shape = j.at("shape").get<bool>();
    spec.embedding_tail_bytes = j.at("embedding_tail_bytes").get<int>();
    spec.system_prompt = j.value("system_prompt", false);  // absent in files before it existed
  } catch (const nlohmann::json::exception& e) {
    return fail(ErrorCode::invalid_request, std::string("router model: bad 'features': ") + e.what());
  }
  if (spec.hash_bits < 4 || spec.hash_bits > 24)
    return fail(ErrorCode::invalid_request, "router model: features.hash_bits must be within 4..24");
  if (spec.embedding_tail_bytes < 0)
    return fail(ErrorCode::invalid_request, "router model: features.embedding_tail_bytes must be >= 0");
  return spec;
}

std::string message_text(const nlohmann::json& messages) {
  std::string text;
  if (!messages.is_array()) return text;
  auto append = [&](const std::string& part) {
    if (!text.empty()) text += '\n';
    text += part;
  };
  for (const auto& message : messages) {
    if (!message.is_object()) continue;
    const auto content = message.find("content");
    if (content == message.end()) continue;
    if (content->is_string()) {
      append(content->get_ref<const std::string&>());
    } else if (content->is_array()) {
      for (const auto& part : *content) {
        if (!part.is_object()) continue;
        const auto t = part.find("text");
        if (t != part.end() && t->is_string()) append(t->get_ref<const std::string&>());
      }
    }
  }
  return text;
}

void FeatureExtractor::add_system_prompt(const nlohmann::json& messages, PromptFeatures& out, bool explain) const {
  if (!messages.is_array()) return;
  std::string key;
  for (const auto& message : messages) {
    if (!message.is_object() || message.value("role", std::string()) != "system") continue;
    const auto content = message.find("content");
    if (content == message.end() || !content->is_string()) continue;
    for (const char c : content->get_ref<const std::string&>()) {
      if (key.size() >= kSystemPromptBytes) break;
      const auto u = static_cast<unsigned char>(c);
      if (std::isspace(u)) {
        if (!key.empty() && key.back() != ' ') key += ' ';
      } else {
        key += static_cast<char>(u >= 'A' && u <= 'Z' ? u - 'A' + 'a' : u);
      }
    }
    if (!key.empty() && key.back() != ' ') key += ' ';
  }
  while (!key.empty() && key.back() == ' ') key.pop_back();
  if (key.empty()) return;
  const std::uint64_t hash = fnv1a(key.data(), key.size(), kSystemSeed);
  const auto index = static_cast<std::uint32_t>(hash & ((std::uint64_t{1} << spec_.hash_bits) - 1));
  const float value = (hash >> 63) ? -1.0f : 1.0f;
  out.hashed.push_back({index, value});
  // Drivers are reported divided by hashed_norm; undo that for this feature.
  if (explain) out.named["s:" + key] = {index, static_cast<float>(value * (out.hashed_norm > 0 ? out.hashed_norm : 1.0))};
}

FeatureExtractor::FeatureExtractor(FeatureSpec spec) : spec_(spec) {
  if (spec_.shape) {
    for (const char* name : {"shape:log_chars", "shape:log_words", "shape:log_numbers", "shape:log_lines",
                             "shape:question_marks", "shape:digit_share", "shape:options"})
      dense_names_.emplace_back(name);
  }
  if (spec_.heuristic) {
    dense_names_.emplace_back("heuristic:score");
    for (const char* name : {"length", "code", "math", "reasoning", "open_ended", "multi_step", "system"})
      dense_names_.push_back(std::string("heuristic:") + name);
  }
  if (spec_.embedding) {
    const std::size_t first = dense_names_.size();
    for (std::size_t i = 0; i < embedder_.dimension(); ++i) dense_names_.push_back("embedding[" + std::to_string(i) + "]");
    groups_.push_back({first, dense_names_.size(), "embedding (built-in, 256 dims)"});
  }
}

void FeatureExtractor::extract(const nlohmann::json& messages, PromptFeatures& out, bool explain) const {
  Scratch& s = scratch();
  out.named.clear();
  out.dense.assign(dense_size(), 0.0f);

  // One pass over the text: words (lowercase ASCII, every digit as '0' so
  // "16" and "42" are the same feature), punctuation marks, shape counts.
  s.text = message_text(messages);
  const std::string& text = s.text;
  Hasher hasher(spec_, s, explain ? &out : nullptr);
  Shape shape;
  shape.chars = static_cast<double>(text.size());
  char word[kMaxWord];
  std::size_t word_len = 0;
  std::size_t word_bytes = 0;
  bool word_is_number = true;
  auto end_word = [&] {
    if (word_bytes == 0) return;
    shape.words += 1;
    if (word_is_number) shape.numbers += 1;
    hasher.word(word, word_len);
    word_len = word_bytes = 0;
    word_is_number = true;
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (is_word_byte(c)) {
      char lowered = static_cast<char>(c);
      if (c >= 'A' && c <= 'Z') lowered = static_cast<char>(c - 'A' + 'a');
      if (c >= '0' && c <= '9') {
        lowered = '0';
        shape.digits += 1;
      } else {
        word_is_number = false;
      }
      if (word_len < kMaxWord) word[word_len++] = lowered;
      ++word_bytes;
      continue;
    }
    end_word();
    if (c == '\n') {
      shape.lines += 1;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r') continue;
    if (c == '?') shape.question_marks += 1;
    if (c < 0x80) hasher.punctuation(static_cast<char>(c));
  }
  end_word();
  for (std::size_t i = 0; i < text.size(); ++i) {
    if ((i == 0 || text[i - 1] == '\n') && is_option_line(text, i)) shape.options += 1;
  }
  hasher.finish(out);
  if (spec_.system_prompt) add_system_prompt(messages, out, explain);

  std::size_t d = 0;
  if (spec_.shape) {
    out.dense[d++] = static_cast<float>(std::log1p(shape.chars) / 10.0);
    out.dense[d++] = static_cast<float>(std::log1p(shape.words) / 8.0);
    out.dense[d++] = static_cast<float>(std::log1p(shape.numbers) / 4.0);
    out.dense[d++] = static_cast<float>(std::log1p(shape.lines) / 5.0);
    out.dense[d++] = static_cast<float>(std::min(shape.question_marks, 5.0) / 5.0);
    out.dense[d++] = static_cast<float>(shape.chars > 0 ? std::min(1.0, 5.0 * shape.digits / shape.chars) : 0.0);
    out.dense[d++] = static_cast<float>(std::min(shape.options, 10.0) / 10.0);
  }
  if (spec_.heuristic) {
    const ComplexityScore complexity = score_complexity(messages);
    out.dense[d++] = static_cast<float>(complexity.score);
    // Each feature's contribution is at most 0.4: scaled to about 0..1.
    for (const auto& feature : complexity.features) out.dense[d++] = static_cast<float>(feature.second / 0.4);
  }
  if (spec_.embedding) {
    std::string_view tail = text;
    if (spec_.embedding_tail_bytes > 0 && tail.size() > static_cast<std::size_t>(spec_.embedding_tail_bytes)) {
      tail.remove_prefix(tail.size() - static_cast<std::size_t>(spec_.embedding_tail_bytes));
      // Start on a whole word: skip UTF-8 continuation bytes and the cut word.
      while (!tail.empty() && is_word_byte(static_cast<unsigned char>(tail.front()))) tail.remove_prefix(1);
    }
    s.normalized = normalize_text(tail);
    s.embedding.resize(embedder_.dimension());
    embedder_.embed_into(s.normalized, s.embedding);
    for (const float v : s.embedding) out.dense[d++] = v * kEmbeddingScale;
  }
}

}  // namespace cascade::route_features
