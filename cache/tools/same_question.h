#pragma once
// Private to cache/tools: which texts of a paraphrase file are the same
// question (cache-eval's and cache-train's labels).
#include <cstddef>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cache/tools/cache_eval.h"

namespace cascade {

// Union-find over normalized texts joined by label-1 pairs: the file's own
// clusters of "the same question" (Quora's duplicates are such clusters, so a
// question stored by another pair can be the right answer too).
class SameQuestion {
 public:
  explicit SameQuestion(const std::vector<ParaphrasePair>& pairs) {
    for (const auto& p : pairs) {
      const std::size_t a = id(normalize_text(p.text_a));
      const std::size_t b = id(normalize_text(p.text_b));
      if (p.label == 1) parent_[root(a)] = root(b);
    }
    for (const auto& p : pairs) {
      if (p.label != 0) continue;
      const std::size_t a = cluster(normalize_text(p.text_a));
      const std::size_t b = cluster(normalize_text(p.text_b));
      different_.insert({std::min(a, b), std::max(a, b)});
    }
  }
  // A label-0 pair joins the two texts' clusters: known to be different questions.
  bool known_different(const std::string& normalized_a, const std::string& normalized_b) {
    const auto a = ids_.find(normalized_a);
    const auto b = ids_.find(normalized_b);
    if (a == ids_.end() || b == ids_.end()) return false;
    const std::size_t x = root(a->second);
    const std::size_t y = root(b->second);
    return different_.contains({std::min(x, y), std::max(x, y)});
  }
  // Text ids of texts never seen are distinct, so they match nothing.
  bool same(const std::string& normalized_a, const std::string& normalized_b) {
    const auto a = ids_.find(normalized_a);
    const auto b = ids_.find(normalized_b);
    if (a == ids_.end() || b == ids_.end()) return normalized_a == normalized_b;
    return root(a->second) == root(b->second);
  }
  std::size_t cluster(const std::string& normalized) { return root(ids_.at(normalized)); }

 private:
  std::size_t id(std::string text) {
    const auto [it, inserted] = ids_.emplace(std::move(text), parent_.size());
    if (inserted) parent_.push_back(parent_.size());
    return it->second;
  }
  std::size_t root(std::size_t x) {
    while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
    return x;
  }
  std::unordered_map<std::string, std::size_t> ids_;
  std::vector<std::size_t> parent_;
  std::set<std::pair<std::size_t, std::size_t>> different_;
};

}  // namespace cascade
