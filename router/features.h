#pragma once
// Internal to router/: the features of the learned scorer, shared by the
// scorer (router/scorers.cpp) and its training (router/training.cpp), so a
// model scores prompts exactly as it was trained on them.
//
// A prompt becomes a sparse hashed vector (word unigrams, word bigrams,
// character 4-grams of words, punctuation marks; signed feature hashing,
// unit L2 length) plus dense features: the built-in embedder's vector, the
// heuristic complexity score and its seven features, and the prompt's shape
// (length, numbers, lines, questions, multiple-choice options).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/result.h"
#include "embeddings/embeddings.h"

namespace cascade::route_features {

struct FeatureSpec {
  int hash_bits = 14;  // hashed space of 2^hash_bits
  bool word_unigrams = true;
  bool word_bigrams = true;
  bool char_ngrams = true;  // 4-grams of "^word$"
  bool embedding = false;   // BuiltinEmbedder, default options (256 dimensions)
  // The embedding reads at most the last this many bytes of the text (where
  // a few-shot prompt puts its question), so its cost is bounded; 0 = all.
  int embedding_tail_bytes = 512;
  bool heuristic = true;    // score_complexity: score and its seven features
  bool shape = true;        // lengths, numbers, lines, question marks, options
  // The system prompt's text (lowercased, whitespace folded, first 256
  // bytes) as one categorical hashed feature of weight 1, outside the unit
  // length scaling: a per-task offset of the log-odds, learned where a task's
  // system prompt recurs (an MMLU subject). Optional in model files (false).
  bool system_prompt = false;

  nlohmann::json to_json() const;
  [[nodiscard]] static Result<FeatureSpec> from_json(const nlohmann::json& j);
};

struct HashedFeature {
  std::uint32_t index;
  float value;
};

struct PromptFeatures {
  std::vector<HashedFeature> hashed;  // unit L2 length together
  std::vector<float> dense;           // FeatureExtractor::dense_names() order
  double hashed_norm = 0;             // L2 norm before scaling to unit length
  // Filled in explain mode: feature name ("w:proof", "b:find the",
  // "c:^pro", "p:$") -> (index, signed count before scaling).
  std::map<std::string, std::pair<std::uint32_t, float>> named;
};

class FeatureExtractor {
 public:
  explicit FeatureExtractor(FeatureSpec spec);

  const FeatureSpec& spec() const { return spec_; }
  std::size_t hashed_size() const { return std::size_t{1} << spec_.hash_bits; }
  std::size_t dense_size() const { return dense_names_.size(); }
  const std::vector<std::string>& dense_names() const { return dense_names_; }
  // Dense features [first, last) that explanations report as one driver
  // (the embedding's dimensions), with its name.
  struct Group {
    std::size_t first = 0;
    std::size_t last = 0;
    std::string name;
  };
  const std::vector<Group>& groups() const { return groups_; }

  // Fills `out`, reusing its capacity. Thread-safe (scratch is per thread).
  void extract(const nlohmann::json& messages, PromptFeatures& out, bool explain = false) const;

 private:
  void add_system_prompt(const nlohmann::json& messages, PromptFeatures& out, bool explain) const;

  FeatureSpec spec_;
  BuiltinEmbedder embedder_;
  std::vector<std::string> dense_names_;
  std::vector<Group> groups_;
};

// The text of OpenAI-format messages, text parts joined by newlines.
std::string message_text(const nlohmann::json& messages);

}  // namespace cascade::route_features
