#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "cache/rw_lock.h"
#include "cache/semantic.h"

namespace cascade {

struct SemanticMatcher::Texts {
  mutable WriterPreferringLock mutex;
  std::map<std::string, std::unordered_map<std::uint64_t, std::string>, std::less<>> by_tenant;
};

const TenantSemanticOptions& SemanticMatcherOptions::for_tenant(std::string_view tenant) const {
  const auto it = tenants.find(tenant);
  return it == tenants.end() ? defaults : it->second;
}

SemanticMatcher::SemanticMatcher(Embedder& embedder, SemanticMatcherOptions options)
    : embedder_(embedder), options_(std::move(options)), texts_(std::make_unique<Texts>()) {
  if (options_.index.dimension == 0) options_.index.dimension = embedder_.dimension();
  index_ = std::make_unique<SemanticIndex>(options_.index);
  // WordNet is read here (~0.1 s), not on the first lookup of an event loop.
  auto uses_wordnet = [](const TenantSemanticOptions& t) { return t.model || t.verifier.synonyms; };
  bool wordnet = uses_wordnet(options_.defaults);
  for (const auto& [name, tenant] : options_.tenants) wordnet = wordnet || uses_wordnet(tenant);
  if (wordnet) (void)Synonyms::system();
}

SemanticMatcher::~SemanticMatcher() = default;

Result<void> SemanticMatcher::insert(std::string_view tenant, std::uint64_t entry_id, std::string_view prompt) {
  const std::string normalized[] = {normalize_text(prompt)};
  auto vectors = embedder_.embed(normalized);
  if (!vectors) return std::unexpected(vectors.error());
  return insert_embedded(tenant, entry_id, prompt, vectors->front());
}

Result<void> SemanticMatcher::insert_embedded(std::string_view tenant, std::uint64_t entry_id, std::string_view prompt,
                                              std::span<const float> vector) {
  // The text goes in first: a concurrent lookup that finds the vector must find its text.
  {
    std::unique_lock lock(texts_->mutex);
    auto it = texts_->by_tenant.find(tenant);
    if (it == texts_->by_tenant.end()) it = texts_->by_tenant.emplace(std::string(tenant), decltype(it->second){}).first;
    it->second[entry_id] = std::string(prompt);
  }
  auto added = index_->add(tenant, entry_id, vector);
  if (!added) {
    std::unique_lock lock(texts_->mutex);
    if (auto it = texts_->by_tenant.find(tenant); it != texts_->by_tenant.end()) it->second.erase(entry_id);
  }
  return added;
}

bool SemanticMatcher::remove(std::string_view tenant, std::uint64_t entry_id) {
  const bool removed = index_->remove(tenant, entry_id);
  std::unique_lock lock(texts_->mutex);
  if (auto it = texts_->by_tenant.find(tenant); it != texts_->by_tenant.end()) it->second.erase(entry_id);
  return removed;
}

std::optional<std::string> SemanticMatcher::prompt_of(std::string_view tenant, std::uint64_t entry_id) const {
  std::shared_lock lock(texts_->mutex);
  const auto it = texts_->by_tenant.find(tenant);
  if (it == texts_->by_tenant.end()) return std::nullopt;
  const auto text = it->second.find(entry_id);
  if (text == it->second.end()) return std::nullopt;
  return text->second;
}

Result<SemanticLookup> SemanticMatcher::lookup(std::string_view tenant, std::string_view prompt) const {
  if (!options_.for_tenant(tenant).enabled) return SemanticLookup{};
  const std::string normalized[] = {normalize_text(prompt)};
  auto vectors = embedder_.embed(normalized);
  if (!vectors) return std::unexpected(vectors.error());
  return lookup_embedded(tenant, prompt, vectors->front());
}

SemanticLookup SemanticMatcher::lookup_embedded(std::string_view tenant, std::string_view prompt,
                                                std::span<const float> vector) const {
  return lookup_embedded_in(tenant, tenant, prompt, vector);
}

SemanticLookup SemanticMatcher::lookup_embedded_in(std::string_view tenant, std::string_view space,
                                                   std::string_view prompt, std::span<const float> vector) const {
  SemanticLookup out;
  const TenantSemanticOptions& policy = options_.for_tenant(tenant);
  if (!policy.enabled) return out;
  const HitVerifier verifier(policy.verifier);
  for (const Neighbor& n : index_->search(space, vector, policy.candidates)) {
    if (n.similarity < policy.threshold) break;  // best first: the rest are lower still
    SemanticCandidate candidate{n.entry_id, n.similarity, {}};
    if (policy.verify) {
      // Verified under the shared lock instead of copying the stored prompt out.
      std::shared_lock lock(texts_->mutex);
      const auto t = texts_->by_tenant.find(space);
      const std::string* text = nullptr;
      if (t != texts_->by_tenant.end()) {
        if (const auto it = t->second.find(n.entry_id); it != t->second.end()) text = &it->second;
      }
      // Removed between search and now: nothing to verify against, so never served.
      if (!text) {
        candidate.verdict = {false, "removed"};
      } else if (!policy.model) {
        candidate.verdict = verifier.verify(prompt, *text);
      } else {
        const HitJudgement judged = policy.model->judge(prompt, *text);
        candidate.verdict = judged.verdict;
        candidate.probability = static_cast<float>(judged.probability);
        // Compared as stored (float): the operating points' cutoffs are such values.
        if (judged.verdict.accepted && candidate.probability < policy.min_probability) candidate.verdict = {false, "model"};
      }
    }
    out.candidates.push_back(candidate);
    if (candidate.verdict.accepted) {
      out.hit = candidate;
      break;
    }
  }
  return out;
}

}  // namespace cascade
