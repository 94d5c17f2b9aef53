// WordNet synonym sets for the verifier (semantic.h, "Synonyms").
#include <fstream>
#include <sstream>

#include "cache/semantic.h"

namespace cascade {

namespace {

// index.<pos> lines: lemma pos synset_cnt p_cnt [ptr_symbol x p_cnt] sense_cnt
// tagsense_cnt synset_offset x synset_cnt, the offsets most frequent sense
// first (WordNet's wndb(5)). License lines start with spaces.
bool read_index(const std::string& path, std::uint32_t pos, std::size_t senses,
                std::unordered_map<std::string, std::vector<std::uint32_t>>& out) {
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line.front() == ' ') continue;
    std::istringstream fields(line);
    std::string lemma, part;
    std::size_t synset_count = 0, pointer_count = 0;
    if (!(fields >> lemma >> part >> synset_count >> pointer_count)) continue;
    std::string skip;
    for (std::size_t i = 0; i < pointer_count; ++i) fields >> skip;
    fields >> skip >> skip;  // sense_cnt, tagsense_cnt
    auto& list = out[lemma];
    for (std::size_t i = 0; i < synset_count && i < senses; ++i) {
      std::uint32_t offset = 0;
      if (!(fields >> offset)) break;
      list.push_back(pos << 30 | (offset & 0x3FFFFFFFu));
    }
  }
  return true;
}

}  // namespace

Result<std::shared_ptr<const Synonyms>> Synonyms::load(const std::string& dir, std::size_t senses) {
  std::shared_ptr<Synonyms> table(new Synonyms());
  std::size_t files = 0;
  std::uint32_t pos = 0;
  for (const char* name : {"index.noun", "index.verb", "index.adj", "index.adv"}) {
    files += read_index(dir + "/" + name, pos++, senses, table->senses_);
  }
  if (files == 0) return fail(ErrorCode::invalid_request, "no WordNet index files in " + dir);
  return std::shared_ptr<const Synonyms>(std::move(table));
}

std::shared_ptr<const Synonyms> Synonyms::system() {
  static const std::shared_ptr<const Synonyms> table = [] {
    auto loaded = load(std::string(kSystemDir));
    return loaded ? *loaded : std::shared_ptr<const Synonyms>();
  }();
  return table;
}

bool Synonyms::synonyms(std::string_view a, std::string_view b) const {
  if (a == b) return true;
  const auto x = senses_.find(std::string(a));
  if (x == senses_.end()) return false;
  const auto y = senses_.find(std::string(b));
  if (y == senses_.end()) return false;
  for (const std::uint32_t s : x->second) {
    for (const std::uint32_t t : y->second) {
      if (s == t) return true;
    }
  }
  return false;
}

}  // namespace cascade
