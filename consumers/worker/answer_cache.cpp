#include "consumers/worker/answer_cache.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <nlohmann/json.hpp>

#include "consumers/worker/state_embedding_cache.h"
#include "events/request_fingerprint.h"

namespace cascade {
namespace {

constexpr std::string_view kResponseFormat = "answer.v1";

// The index entry id of a fingerprint: its first 64 bits (hex).
std::uint64_t entry_id_of(std::string_view fingerprint) {
  std::uint64_t id = 0;
  const auto prefix = fingerprint.substr(0, 16);
  std::from_chars(prefix.data(), prefix.data() + prefix.size(), id, 16);
  return id;
}

std::string index_namespace(std::string_view tenant, std::string_view context) {
  std::string ns;
  ns.reserve(tenant.size() + 1 + context.size());
  ns.append(tenant).push_back('\0');
  ns.append(context);
  return ns;
}

// The text of a user message: a string, or the text parts of a content array.
std::optional<std::string> user_text(const nlohmann::json& message) {
  const auto content = message.find("content");
  if (content == message.end()) return std::nullopt;
  if (content->is_string()) return content->get<std::string>();
  if (!content->is_array()) return std::nullopt;
  std::string text;
  for (const auto& part : *content) {
    if (!part.is_object() || part.value("type", "") != "text") return std::nullopt;  // images: no semantic match
    const auto t = part.find("text");
    if (t == part.end() || !t->is_string()) return std::nullopt;
    if (!text.empty()) text.push_back('\n');
    text += t->get<std::string>();
  }
  return text;
}

}  // namespace

struct AnswerCache::Space {
  std::string tag;
  std::size_t dimension = 0;
  std::string vector_version;
  std::unique_ptr<SemanticMatcher> matcher;
  std::unique_ptr<StateEmbeddingCache> embeddings;  // remote embedders only
};

AnswerCache::AnswerCache(StateStore& store, const ModelCatalog& catalog, CacheConfig config,
                         SemanticMatcherOptions matcher_options, SemanticEmbedding embedding)
    : store_(store),
      catalog_(catalog),
      config_(std::move(config)),
      matcher_options_(std::move(matcher_options)),
      embedding_(embedding) {
  if (embedding_.local) embedding_.remote = nullptr;  // one embedder: the local one is what was asked for
  make_space(/*index_stored=*/false);  // WorkerState calls load_index() after the changelog restore
}

AnswerCache::~AnswerCache() = default;

AnswerCache::Space* AnswerCache::space() {
  if (Space* s = space_.load(std::memory_order_acquire)) return s;
  return make_space(/*index_stored=*/true);
}

AnswerCache::Space* AnswerCache::make_space(bool index_stored) {
  Embedder* embedder = embedding_.local ? embedding_.local : static_cast<Embedder*>(embedding_.remote);
  if (!embedder || embedder->dimension() == 0) return nullptr;  // a remote one learns it from its first answer
  Space* made = nullptr;
  {
    std::lock_guard lock(space_mutex_);
    if (Space* s = space_.load(std::memory_order_acquire)) return s;
    auto s = std::make_unique<Space>();
    s->tag = embedder->tag();
    s->dimension = embedder->dimension();
    // Vectors of another embedder (or version, or dimension) are not comparable.
    s->vector_version = std::string(kResponseFormat) + ":" + config_.version + ":" + s->tag;
    SemanticMatcherOptions options = matcher_options_;
    options.index.dimension = s->dimension;
    s->matcher = std::make_unique<SemanticMatcher>(*embedder, std::move(options));
    // The built-in embedder costs microseconds: caching its vectors would
    // cost more (a RocksDB write and a changelog record per prompt).
    if (embedding_.remote) s->embeddings = std::make_unique<StateEmbeddingCache>(store_, s->tag, s->dimension);
    space_owned_ = std::move(s);
    made = space_owned_.get();
    space_.store(made, std::memory_order_release);
  }
  if (index_stored && made != nullptr) {
    // Learned just now: vectors restored or applied while the dimension was
    // unknown are in the store, not yet in the index. (Published first, so
    // entries applied from now on are indexed by on_applied.)
    const std::size_t indexed = load_index(*made);
    spdlog::info("cache: embedder {}: semantic index of dimension {}, {} stored vector(s) indexed", made->tag,
                 made->dimension, indexed);
  }
  return made;
}

std::string AnswerCache::response_version() const {
  return std::string(kResponseFormat) + ":" + config_.version;
}

std::string AnswerCache::vector_version() const {
  const Space* s = space();
  return s ? s->vector_version : std::string();
}

std::size_t AnswerCache::embedding_dimension() const {
  const Space* s = space();
  return s ? s->dimension : 0;
}

bool AnswerCache::cacheable(const PromptEvent& event) const {
  if (!config_.enabled || event.cache == CacheMode::off) return false;
  // A sampled answer at a high temperature is one of many: serving it again
  // would pin a randomness the requester asked for.
  return !event.temperature || *event.temperature <= config_.max_temperature;
}

std::optional<CachedAnswer> AnswerCache::load_answer(std::string_view tenant, std::string_view fingerprint) {
  auto entry = store_.get_response(tenant, fingerprint, response_version());
  if (!entry) return std::nullopt;
  auto json = nlohmann::json::parse(entry->payload, nullptr, false);
  if (json.is_discarded() || !json.is_object()) return std::nullopt;
  auto final = parse_final_event(json.value("final", ""));
  if (!final) return std::nullopt;
  CachedAnswer answer;
  answer.content = std::move(final->content);
  answer.model = std::move(final->model);
  answer.provider = std::move(final->provider);
  answer.finish_reason = std::move(final->finish_reason);
  answer.usage = final->usage;
  answer.upstream_model = json.value("upstream_model", "");
  answer.created_ms = entry->created_ms;
  // A model that changed (gone from the catalog, or now another upstream
  // model under the same id) no longer vouches for its old answers.
  const ModelInfo* model = catalog_.find(answer.model);
  if (!model || model->upstream_model != answer.upstream_model) return std::nullopt;
  return answer;
}

std::optional<CacheHit> AnswerCache::lookup_exact(const PromptEvent& event, const std::string& fingerprint) {
  if (!cacheable(event)) return std::nullopt;
  if (auto answer = load_answer(event.tenant, fingerprint)) {
    return CacheHit{std::move(*answer), CacheOutcome::exact, 1.0f, "cache: exact match"};
  }
  return std::nullopt;
}

std::optional<Embedding> AnswerCache::local_vector(Space& space, const std::string& normalized) {
  if (embedding_.local) {
    auto embedded = embedding_.local->embed(std::span<const std::string>(&normalized, 1));
    if (!embedded || embedded->size() != 1) {
      spdlog::warn("cache: prompt not embedded: {}", embedded ? "no vector" : embedded.error().message);
      return std::nullopt;
    }
    return std::move(embedded->front());
  }
  if (space.embeddings) return space.embeddings->get(content_hash(space.tag, normalized));
  return std::nullopt;
}

std::optional<AnswerCache::SemanticQuery> AnswerCache::semantic_query(const PromptEvent& event) {
  if (event.cache != CacheMode::semantic || !cacheable(event)) return std::nullopt;
  if (!embedding_.local && !embedding_.remote) return std::nullopt;
  if (!event.messages.is_array() || event.messages.empty()) return std::nullopt;
  const auto& last = event.messages.back();
  if (!last.is_object() || last.value("role", "") != "user") return std::nullopt;
  auto text = user_text(last);
  if (!text || text->empty()) return std::nullopt;
  PromptEvent context = event;
  context.messages.back()["content"] = "";
  auto fingerprint = request_fingerprint(context, event.max_tokens.value_or(0));
  if (!fingerprint) return std::nullopt;
  SemanticQuery query;
  query.normalized = normalize_text(*text);
  if (query.normalized.empty()) return std::nullopt;  // only whitespace: nothing to compare
  query.text = std::move(*text);
  query.context = std::move(*fingerprint);
  if (Space* s = space()) query.vector = local_vector(*s, query.normalized);
  return query;
}

bool AnswerCache::embedded(std::string_view normalized, std::span<const float> vector) {
  Space* s = space();  // a remote embedder's first answer makes it
  if (!s || vector.size() != s->dimension) return false;
  if (s->embeddings) {
    if (auto ok = s->embeddings->put(content_hash(s->tag, normalized), vector); !ok) {
      // The vector still serves this lookup; the text is embedded again next time.
      spdlog::warn("cache: embedding not kept: {}", ok.error().message);
    }
  }
  return true;
}

std::optional<CacheHit> AnswerCache::lookup_semantic(const PromptEvent& event, const SemanticQuery& query) {
  const Space* s = space();
  if (!s || !query.vector || query.vector->size() != s->dimension) return std::nullopt;
  const auto found =
      s->matcher->lookup_embedded_in(event.tenant, index_namespace(event.tenant, query.context), query.text,
                                     *query.vector);
  if (!found.hit) return std::nullopt;
  std::string hit_fingerprint;
  {
    std::lock_guard lock(entries_mutex_);
    auto it = fingerprint_of_.find(found.hit->entry_id);
    if (it == fingerprint_of_.end()) return std::nullopt;
    hit_fingerprint = it->second;
  }
  auto answer = load_answer(event.tenant, hit_fingerprint);
  if (!answer) return std::nullopt;
  char similarity[16];
  std::snprintf(similarity, sizeof similarity, "%.3f", found.hit->similarity);
  return CacheHit{std::move(*answer), CacheOutcome::semantic, found.hit->similarity,
                  std::string("cache: semantic match, similarity ") + similarity};
}

std::optional<CacheHit> AnswerCache::lookup(const PromptEvent& event, const std::string& fingerprint) {
  if (auto hit = lookup_exact(event, fingerprint)) return hit;
  auto query = semantic_query(event);
  if (!query || !query->vector) return std::nullopt;
  return lookup_semantic(event, *query);
}

void AnswerCache::store(const PromptEvent& event, const std::string& fingerprint, const FinalReply& final,
                        const ModelInfo& model, const SemanticQuery* query) {
  if (!cacheable(event)) return;
  // Only whole, plain answers: a truncated (length), filtered or tool-calling
  // answer is not what another asker of the same question should get.
  if (final.finish_reason != "stop" || final.content.empty() || !final.tool_calls.empty()) return;
  FinalReply kept;
  kept.content = final.content;
  kept.model = final.model;
  kept.provider = final.provider;
  kept.finish_reason = final.finish_reason;
  kept.usage = final.usage;
  const nlohmann::json payload = {{"final", make_final_event(kept)}, {"upstream_model", model.upstream_model}};
  if (auto ok = store_.put_response(event.tenant, fingerprint, payload.dump(), response_version()); !ok) {
    spdlog::warn("cache: answer not stored: {}", ok.error().message);
    return;
  }
  if (event.cache != CacheMode::semantic) return;
  Space* s = space();
  if (!s) return;
  std::optional<SemanticQuery> own;
  if (!query) {
    own = semantic_query(event);
    if (!own) return;
    query = &*own;
  }
  // The lookup's vector as it is: a text is never embedded twice.
  std::optional<Embedding> fetched;
  const Embedding* vector = query->vector ? &*query->vector : nullptr;
  if (!vector && (fetched = local_vector(*s, query->normalized))) vector = &*fetched;
  if (!vector || vector->size() != s->dimension) {
    // A remote embedding failed or timed out at lookup: exact entry only.
    spdlog::debug("cache: prompt of request {} not indexed: no embedding", event.id);
    return;
  }
  const std::string ns = index_namespace(event.tenant, query->context);
  const std::uint64_t id = entry_id_of(fingerprint);
  if (auto ok = s->matcher->insert_embedded(ns, id, query->text, *vector); !ok) {
    spdlog::warn("cache: prompt not indexed: {}", ok.error().message);
    return;
  }
  {
    std::lock_guard lock(entries_mutex_);
    fingerprint_of_[id] = fingerprint;
  }
  // The vector goes to the store (and the changelog) so other workers and a
  // restarted one index it without embedding again.
  VectorEntry entry;
  entry.vector = *vector;
  entry.normalized_text = query->text;  // as written: the verifier reads case
  entry.response_key = fingerprint;
  if (auto ok = store_.put_vector(event.tenant, query->context + ":" + fingerprint, entry, s->vector_version);
      !ok) {
    spdlog::warn("cache: vector not stored: {}", ok.error().message);
  }
}

void AnswerCache::index_entry(Space& space, std::string_view key, const StoredEntry& stored) {
  if (stored.version != space.vector_version) return;
  // key: tenant \0 context:fingerprint
  const auto nul = key.find('\0');
  if (nul == std::string_view::npos) return;
  const std::string_view tenant = key.substr(0, nul);
  const std::string_view rest = key.substr(nul + 1);
  const auto colon = rest.find(':');
  if (colon == std::string_view::npos) return;
  auto entry = decode_vector_entry(stored.payload);
  if (!entry || entry->vector.size() != space.dimension) return;
  const std::string_view fingerprint = rest.substr(colon + 1);
  const std::uint64_t id = entry_id_of(fingerprint);
  if (auto ok = space.matcher->insert_embedded(index_namespace(tenant, rest.substr(0, colon)), id,
                                               entry->normalized_text, entry->vector);
      !ok) {
    return;
  }
  std::lock_guard lock(entries_mutex_);
  fingerprint_of_[id] = std::string(fingerprint);
}

std::size_t AnswerCache::load_index() {
  Space* s = space();
  return s ? load_index(*s) : 0;
}

std::size_t AnswerCache::load_index(Space& space) {
  std::size_t indexed = 0;
  auto ok = store_.for_each(StateFamily::vectors, "", [&](std::string_view key, const StoredEntry& entry) {
    index_entry(space, key, entry);
    indexed++;
    return true;
  });
  if (!ok) spdlog::warn("cache: semantic index not loaded: {}", ok.error().message);
  return indexed;
}

void AnswerCache::on_applied(StateFamily family, std::string_view key, const StoredEntry* entry) {
  if (family != StateFamily::vectors) return;
  // Without a space yet (a remote embedder's dimension still unknown) the
  // entry waits in the store: making the space indexes it.
  Space* s = space();
  if (!s) return;
  if (entry) {
    index_entry(*s, key, *entry);
    return;
  }
  const auto nul = key.find('\0');
  const auto colon = key.find(':', nul == std::string_view::npos ? 0 : nul);
  if (nul == std::string_view::npos || colon == std::string_view::npos) return;
  s->matcher->remove(index_namespace(key.substr(0, nul), key.substr(nul + 1, colon - nul - 1)),
                     entry_id_of(key.substr(colon + 1)));
}

void AnswerCache::on_tenant_purged(std::string_view tenant, std::int64_t) {
  // The purge removed the tenant's responses: a stale index entry can no
  // longer be served (load_answer misses), and is dropped with the next
  // restart. Nothing else to do here.
  (void)tenant;
}

std::vector<std::string_view> replay_pieces(std::string_view content, std::size_t bytes) {
  std::vector<std::string_view> pieces;
  bytes = std::max<std::size_t>(bytes, 4);
  while (!content.empty()) {
    std::size_t n = std::min(bytes, content.size());
    // Never split a UTF-8 sequence: back up to a lead byte.
    while (n < content.size() && n > 0 && (static_cast<unsigned char>(content[n]) & 0xC0) == 0x80) n--;
    if (n == 0) n = std::min(bytes, content.size());
    pieces.push_back(content.substr(0, n));
    content.remove_prefix(n);
  }
  return pieces;
}

}  // namespace cascade
