#pragma once
// Semantic cache lookup: a prompt is embedded, its nearest stored prompts of
// the same tenant are found in an HNSW index, and the best one above the
// tenant's similarity threshold is served only if the verifier finds no sign
// that it asks something else (different numbers, negation, named entities,
// content words or word order). How it works and how it measures: docs/cache.md.
//
// The answers themselves live elsewhere (the state stores); this component
// maps a prompt to the id of a stored entry whose answer may be reused.
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/result.h"
#include "cache/cache_config.h"
#include "embeddings/embeddings.h"

namespace cascade {

// ------------------------------------------------------------ SemanticIndex --

struct SemanticIndexOptions {
  std::size_t dimension = 0;
  std::size_t M = 16;                 // graph degree (2*M on the bottom layer)
  std::size_t ef_construction = 200;  // candidate list while inserting
  std::size_t ef_search = 64;         // candidate list while searching (>= k)
  std::size_t initial_capacity = 1024;  // per graph; doubles when full
  // A namespace is scanned exactly (a plain array) up to this many entries
  // and becomes an HNSW graph past it: a graph costs ~2.6 MB before its first
  // entry, and a scan of 1,024 vectors is as fast as a graph search.
  std::size_t flat_limit = 1024;
};

struct Neighbor {
  std::uint64_t entry_id = 0;
  float similarity = 0;  // cosine: the vectors are unit length
};

// One index per tenant namespace, so a search can only ever see its own
// tenant's entries: an exact scan while the namespace is small, then an
// hnswlib HierarchicalNSW<float> (inner product on unit vectors = cosine
// similarity).
//
// Thread-safety: every method may be called from any thread. Each tenant's
// index has its own reader/writer lock (searches share it, add/remove/resize
// take it alone; a waiting writer goes before newly arriving searches, so a
// changelog applier's inserts are not starved by busy event loops); the
// tenant table has another, taken exclusively only when a tenant's first
// entry creates its index. Searches of one tenant from several event loops
// therefore run in parallel, and no lock spans tenants.
//
// Removal from a graph marks the entry deleted (hnswlib markDelete): it is
// never returned again, but its slot stays until compact() rebuilds the
// tenant's index (flat again if it has shrunk to flat_limit or fewer entries).
class SemanticIndex {
 public:
  explicit SemanticIndex(SemanticIndexOptions options);
  ~SemanticIndex();
  SemanticIndex(const SemanticIndex&) = delete;
  SemanticIndex& operator=(const SemanticIndex&) = delete;

  std::size_t dimension() const { return options_.dimension; }

  // Adds (or replaces) entry_id's vector. The vector must be unit length and
  // of the index's dimension; errors are invalid_request (bad vector) or
  // internal (out of memory).
  [[nodiscard]] Result<void> add(std::string_view tenant, std::uint64_t entry_id, std::span<const float> vector);
  // True if the entry was present.
  bool remove(std::string_view tenant, std::uint64_t entry_id);
  // Up to k live entries of `tenant`, most similar first. Empty for a tenant
  // without entries or a vector of the wrong dimension.
  std::vector<Neighbor> search(std::string_view tenant, std::span<const float> vector, std::size_t k) const;

  std::size_t size(std::string_view tenant) const;     // live entries
  std::size_t deleted(std::string_view tenant) const;  // tombstones left by remove()
  // Rebuilds the tenant's index without its tombstones. O(n log n): run it
  // off the hot path (e.g. when deleted() exceeds size()).
  [[nodiscard]] Result<void> compact(std::string_view tenant);
  // Bytes held by all tenants' indexes (vectors, graph, label map, locks).
  std::size_t memory_bytes() const;
  // Changes every tenant's search candidate list (waits for running searches).
  void set_ef_search(std::size_t ef_search);
  // The dot-product kernel this CPU runs ("avx512", "avx2+fma", "portable").
  static const char* distance_kernel();

 private:
  struct Tenant;
  struct Tenants;
  std::shared_ptr<Tenant> find(std::string_view tenant) const;
  std::shared_ptr<Tenant> find_or_create(std::string_view tenant);

  SemanticIndexOptions options_;
  std::unique_ptr<Tenants> tenants_;
};

// ------------------------------------------------------------- HitVerifier --

// ----------------------------------------------------------------- Synonyms --

// Words that WordNet puts in one synonym set among the most frequent senses
// of both ("buy"/"purchase", "big"/"large"), read from WordNet's index files
// (Debian's wordnet-base installs them in /usr/share/wordnet). Only the first
// `senses` senses of each word count: "get" has 36 verb senses, one of them
// shared with "make", and a cache must not take them for one word.
// Immutable once loaded; share it freely across threads.
class Synonyms {
 public:
  static constexpr std::string_view kSystemDir = "/usr/share/wordnet";
  // Errors: invalid_request when the directory holds none of index.{noun,verb,adj,adv}.
  [[nodiscard]] static Result<std::shared_ptr<const Synonyms>> load(const std::string& dir, std::size_t senses = 2);
  // kSystemDir, loaded on first use; null when WordNet is not installed.
  static std::shared_ptr<const Synonyms> system();

  // Lowercase words (a multiword lemma joins its words with '_').
  bool synonyms(std::string_view a, std::string_view b) const;
  std::size_t words() const { return senses_.size(); }

 private:
  Synonyms() = default;
  // word -> its first senses, each a part of speech (top 2 bits) and a synset offset
  std::unordered_map<std::string, std::vector<std::uint32_t>> senses_;
};

// Rules a candidate must pass before its answer is served for the query. Each
// rule compares surface features the embedding blurs; all are cheap (a few
// microseconds per pair) and symmetric.
struct VerifierOptions {
  // Every number (digits, "1,000", "3.5", number words two..million) occurs
  // as often in both texts.
  bool numbers = true;
  // Meaningful symbols (+ = @ # $ % & * < > ^ ~ | \ and a minus next to a
  // digit) agree: "C" vs "C++", "= and ==" vs "() and []".
  bool symbols = true;
  // Both texts are negated or neither is (not, no, never, n't, without, ...).
  bool negation = true;
  // A capitalized word that is not sentence-initial (a named entity, an
  // acronym) or a quoted word in either text occurs, in any case, in the other.
  bool entities = true;
  // Both open with the same kind of question (what/which/how, how many, why,
  // when, where, who, or a yes/no question led by the same auxiliary: "Can X
  // cause Y?" vs "How can X cause Y?"), and mention the same of why/when/
  // where/who.
  bool question_form = true;
  // The same grammatical persons are mentioned: "my name" vs "your name".
  bool persons = true;
  // The same words point at something outside the text (this, these, those,
  // following, below, above, attached): "the name of this plant" is about a
  // picture the cache never saw.
  bool deixis = true;
  // Content words (not function words, numbers, negations or pronouns):
  // at most this many of one text may be missing from the other (negative =
  // no limit, which also disables the substitution rule)...
  int max_unmatched_content_words = 0;
  // ...and never on both sides at once (a substitution: "MBA in zoology" vs
  // "MBA in aviation"), unless this is true.
  bool allow_substitution = false;
  // Words match only in the same form ("exercise" != "exercises"); false =
  // by stem (light suffix stripping).
  bool exact_word_forms = false;
  // Words of 6+ letters one edit apart match ("recieve"/"receive").
  bool typos = true;
  // Content words that WordNet calls synonyms match ("buy"/"purchase"), when
  // WordNet is installed (Synonyms::system()).
  bool synonyms = false;
  // The words both texts share (content words, numbers, entities) appear in
  // the same order: "flights from NY to Florida" vs "from Florida to NY",
  // swapped subjects and objects. Counted as pairwise inversions.
  bool word_order = true;
  int max_order_inversions = 0;
};

// Sets one verifier option by its name above ("numbers", "max_order_inversions",
// ...) from text ("true"/"false", an integer): for configuration loaders
// (cache.semantic.*.verifier.<name>) and `cascade cache-eval --verifier`.
[[nodiscard]] Result<void> set_verifier_option(VerifierOptions& options, std::string_view name, std::string_view value);

// Only the named rules, each at its strictest ("content_words" = no content
// word unmatched on either side, which includes the substitution rule): the
// vetoes a learned verifier keeps. Errors: invalid_request naming an unknown rule.
[[nodiscard]] Result<VerifierOptions> veto_options(const std::vector<std::string>& rules);

struct Verdict {
  bool accepted = true;
  std::string_view rule;  // first rule that rejected ("numbers", ...); "" when accepted
};

class HitVerifier {
 public:
  explicit HitVerifier(VerifierOptions options = {}) : options_(options) {}
  // Texts as the users wrote them (case is evidence of a named entity).
  Verdict verify(std::string_view query, std::string_view candidate) const;
  // Every rule that rejects the pair, not only the first: for diagnostics.
  std::vector<std::string_view> failed_rules(std::string_view query, std::string_view candidate) const;
  const VerifierOptions& options() const { return options_; }

 private:
  VerifierOptions options_;
};

// --------------------------------------------------------- learned verifier --

// What the learned verifier sees of a (query, stored prompt) pair: the
// signals of the rules above as counts instead of verdicts, plus the
// built-in embedder's similarity (computed here, so a model works whatever
// embedder retrieved the candidate). Names are stable: a model file names the
// features it was trained on and is read by name (docs/cache.md lists them).
inline constexpr std::size_t kPairFeatureCount = 31;
using PairFeatures = std::array<float, kPairFeatureCount>;
std::span<const std::string_view> pair_feature_names();
// Texts as the users wrote them. Pure; safe from any thread; ~10 us a pair.
PairFeatures pair_features(std::string_view query, std::string_view candidate);

// A gradient-boosted tree ensemble trained by `cascade cache-train`
// (XGBoost, binary logistic) that gives the probability that a stored
// prompt asks the same question as the query, with the operating points the
// training measured: for each target precision, the least probability a hit
// needs. Immutable once loaded; share it freely across threads. Evaluating
// it allocates nothing.
struct HitJudgement {
  Verdict verdict;         // the vetoes'
  double probability = -1;  // asked only when no veto rejected
};

struct HitOperatingPoint {
  double target_precision = 0;  // what the point was chosen for
  double min_probability = 0;   // the cutoff
  double precision = 0;         // measured on held-out pairs at that cutoff
  double recall = 0;
};

class HitModel {
 public:
  // The model file (docs/cache.md, "Model file"). Errors: invalid_request
  // naming what is wrong (a feature this build does not compute, a malformed tree).
  [[nodiscard]] static Result<std::shared_ptr<const HitModel>> parse(std::string_view json_text);
  [[nodiscard]] static Result<std::shared_ptr<const HitModel>> load(const std::string& path);
  // The model shipped in the binary (cache/models/hit_model.json).
  static std::shared_ptr<const HitModel> builtin();

  double probability(const PairFeatures& features) const;
  // The vetoes, then (if none rejects) the probability: each text analysed
  // once for both (pair_features.cpp).
  HitJudgement judge(std::string_view query, std::string_view candidate) const;
  // The cutoff of the least strict operating point whose target is at least
  // `target_precision`; error when the model has none that strict.
  [[nodiscard]] Result<double> cutoff_for(double target_precision) const;
  const std::vector<HitOperatingPoint>& operating_points() const { return points_; }
  // The rules that still reject outright before the model is asked (only
  // the rules the training found certain; every other rule is off here).
  const VerifierOptions& vetoes() const { return vetoes_; }
  double default_target_precision() const { return default_target_; }
  // Names the model ("hit-model:<trained_at>:<hash>"): shown by cache-eval.
  const std::string& tag() const { return tag_; }

  // One tree node; a leaf has feature == kLeaf and its value in `value`.
  struct Node {
    static constexpr std::uint16_t kLeaf = 0xFFFF;
    float value = 0;  // split: go left when feature < value; leaf: the margin it adds
    std::uint32_t left = 0;
    std::uint32_t right = 0;
    std::uint16_t feature = kLeaf;  // index into PairFeatures
  };

 private:
  HitModel() = default;
  std::vector<Node> nodes_;               // every tree's nodes, trees back to back
  std::vector<std::uint32_t> roots_;      // index of each tree's root in nodes_
  double base_margin_ = 0;
  std::vector<HitOperatingPoint> points_;  // by target precision, ascending
  double default_target_ = 0.9;
  VerifierOptions vetoes_;
  std::string tag_;
};

// ---------------------------------------------------------- SemanticMatcher --

// Per-tenant policy (cascade.yaml: cache.semantic.default and
// cache.semantic.tenants.<tenant>, docs/cache.md).
struct TenantSemanticOptions {
  bool enabled = true;
  double threshold = 0.90;  // minimum cosine similarity of a hit
  bool verify = true;       // run the verifier on candidates above the threshold
  // Nearest entries tried, best first, until one passes verification. 1 =
  // only the nearest: a second-nearest that passes after the nearest failed
  // was right only about half the time on QQP (docs/cache.md).
  std::size_t candidates = 1;
  VerifierOptions verifier;  // the rules, when there is no model
  // The learned verifier (null = the rules above decide): a candidate that
  // passes the model's vetoes is served when the model's probability that
  // it asks the same question reaches min_probability.
  std::shared_ptr<const HitModel> model;
  double min_probability = 0.5;
};

struct SemanticMatcherOptions {
  SemanticIndexOptions index;  // dimension 0 = the embedder's
  TenantSemanticOptions defaults;
  std::map<std::string, TenantSemanticOptions, std::less<>> tenants;

  const TenantSemanticOptions& for_tenant(std::string_view tenant) const;
};

struct Config;
// The matcher options a configuration asks for: cache.semantic.{threshold,
// verify,verifier} for every tenant, tenants.default's semantic_* keys over
// them for tenants without an entry, and a tenant entry's semantic_threshold,
// semantic_verify and semantic_verifier for that tenant. Every verifier rule
// goes through set_verifier_option; an unknown rule or a bad value is an
// invalid_request error naming the key ("tenants.acme.semantic_verifier.persons").
[[nodiscard]] Result<SemanticMatcherOptions> semantic_matcher_options(const Config& config);

// cache.semantic.embedder as each kind's options, for every process that
// embeds with it (the worker's cache, the gateway's /v1/embeddings).
OpenAiEmbedderOptions openai_embedder_options(const EmbedderConfig& embedder);
BuiltinEmbedderOptions builtin_embedder_options(const EmbedderConfig& embedder);

// A candidate the lookup considered, best first.
struct SemanticCandidate {
  std::uint64_t entry_id = 0;
  float similarity = 0;
  Verdict verdict;  // not run (accepted, rule "") when verification is off; rule "model" below the cutoff
  float probability = -1;  // the learned verifier's, when it was asked
};

struct SemanticLookup {
  std::optional<SemanticCandidate> hit;  // the entry to serve, if any
  std::vector<SemanticCandidate> candidates;  // every neighbour looked at
};

// Embedder + per-tenant index + verifier. Keeps each entry's prompt text
// (as written) for verification. Thread-safety: as SemanticIndex for the
// index; the text table has a lock per matcher; the embedder is called from
// the calling thread, so share a matcher across threads only with an
// embedder that allows it (BuiltinEmbedder does; CachedEmbedder does not).
class SemanticMatcher {
 public:
  SemanticMatcher(Embedder& embedder, SemanticMatcherOptions options);
  ~SemanticMatcher();

  // Embeds and stores the prompt under entry_id.
  [[nodiscard]] Result<void> insert(std::string_view tenant, std::uint64_t entry_id, std::string_view prompt);
  // Same with a vector embedded elsewhere (an event loop embedding over its
  // own curl multi handle); `vector` must come from this matcher's embedder
  // applied to normalize_text(prompt).
  [[nodiscard]] Result<void> insert_embedded(std::string_view tenant, std::uint64_t entry_id, std::string_view prompt,
                               std::span<const float> vector);
  bool remove(std::string_view tenant, std::uint64_t entry_id);

  [[nodiscard]] Result<SemanticLookup> lookup(std::string_view tenant, std::string_view prompt) const;
  SemanticLookup lookup_embedded(std::string_view tenant, std::string_view prompt,
                                 std::span<const float> vector) const;
  // Same, searching the index namespace `space` (entries inserted under it)
  // with the tenant's threshold and verifier: a caller that keeps one
  // namespace per tenant and conversation context still gets its tenant's
  // policy.
  SemanticLookup lookup_embedded_in(std::string_view tenant, std::string_view space, std::string_view prompt,
                                    std::span<const float> vector) const;

  // The stored prompt of an entry, if present.
  std::optional<std::string> prompt_of(std::string_view tenant, std::uint64_t entry_id) const;
  const SemanticIndex& index() const { return *index_; }
  SemanticIndex& index() { return *index_; }
  const SemanticMatcherOptions& options() const { return options_; }

 private:
  struct Texts;
  Embedder& embedder_;
  SemanticMatcherOptions options_;
  std::unique_ptr<SemanticIndex> index_;
  std::unique_ptr<Texts> texts_;
};

}  // namespace cascade
