#include "consumers/worker/answer_cache.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <nlohmann/json.hpp>

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

AnswerCache::AnswerCache(StateStore& store, SemanticMatcher* matcher, Embedder* embedder,
                         const ModelCatalog& catalog, CacheConfig config)
    : store_(store),
      matcher_(matcher && embedder ? matcher : nullptr),
      embedder_(embedder),
      catalog_(catalog),
      config_(std::move(config)) {}

std::string AnswerCache::response_version() const {
  return std::string(kResponseFormat) + ":" + config_.version;
}

std::string AnswerCache::vector_version() const {
  // Vectors of another embedder (or version, or dimension) are not comparable.
  return std::string(kResponseFormat) + ":" + config_.version + ":" + (embedder_ ? embedder_->tag() : "-");
}

bool AnswerCache::cacheable(const PromptEvent& event) const {
  if (!config_.enabled || event.cache == CacheMode::off) return false;
  // A sampled answer at a high temperature is one of many: serving it again
  // would pin a randomness the requester asked for.
  return !event.temperature || *event.temperature <= config_.max_temperature;
}

std::optional<AnswerCache::SemanticKey> AnswerCache::semantic_key(const PromptEvent& event) const {
  if (!event.messages.is_array() || event.messages.empty()) return std::nullopt;
  const auto& last = event.messages.back();
  if (!last.is_object() || last.value("role", "") != "user") return std::nullopt;
  auto text = user_text(last);
  if (!text || text->empty()) return std::nullopt;
  PromptEvent context = event;
  context.messages.back()["content"] = "";
  auto fingerprint = request_fingerprint(context, event.max_tokens.value_or(0));
  if (!fingerprint) return std::nullopt;
  return SemanticKey{std::move(*text), std::move(*fingerprint)};
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

std::optional<CacheHit> AnswerCache::lookup(const PromptEvent& event, const std::string& fingerprint) {
  if (!cacheable(event)) return std::nullopt;
  if (auto answer = load_answer(event.tenant, fingerprint)) {
    return CacheHit{std::move(*answer), CacheOutcome::exact, 1.0f, "cache: exact match"};
  }
  if (event.cache != CacheMode::semantic || !matcher_) return std::nullopt;
  auto key = semantic_key(event);
  if (!key) return std::nullopt;
  auto found = matcher_->lookup(index_namespace(event.tenant, key->context), key->text);
  if (!found || !found->hit) return std::nullopt;
  std::string hit_fingerprint;
  {
    std::lock_guard lock(entries_mutex_);
    auto it = fingerprint_of_.find(found->hit->entry_id);
    if (it == fingerprint_of_.end()) return std::nullopt;
    hit_fingerprint = it->second;
  }
  auto answer = load_answer(event.tenant, hit_fingerprint);
  if (!answer) return std::nullopt;
  char similarity[16];
  std::snprintf(similarity, sizeof similarity, "%.3f", found->hit->similarity);
  return CacheHit{std::move(*answer), CacheOutcome::semantic, found->hit->similarity,
                  std::string("cache: semantic match, similarity ") + similarity};
}

void AnswerCache::store(const PromptEvent& event, const std::string& fingerprint, const FinalReply& final,
                        const ModelInfo& model) {
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
  if (!matcher_ || event.cache != CacheMode::semantic) return;
  auto key = semantic_key(event);
  if (!key) return;
  const std::string ns = index_namespace(event.tenant, key->context);
  const std::uint64_t id = entry_id_of(fingerprint);
  const std::string normalized = normalize_text(key->text);
  auto embedded = embedder_->embed(std::span<const std::string>(&normalized, 1));
  if (!embedded || embedded->size() != 1) {
    spdlog::warn("cache: prompt not embedded: {}", embedded ? "no vector" : embedded.error().message);
    return;
  }
  if (auto ok = matcher_->insert_embedded(ns, id, key->text, embedded->front()); !ok) {
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
  entry.vector = std::move(embedded->front());
  entry.normalized_text = key->text;  // as written: the verifier reads case
  entry.response_key = fingerprint;
  if (auto ok = store_.put_vector(event.tenant, key->context + ":" + fingerprint, entry, vector_version()); !ok) {
    spdlog::warn("cache: vector not stored: {}", ok.error().message);
  }
}

void AnswerCache::index_entry(std::string_view key, const StoredEntry& stored) {
  if (!matcher_ || stored.version != vector_version()) return;
  // key: tenant \0 context:fingerprint
  const auto nul = key.find('\0');
  if (nul == std::string_view::npos) return;
  const std::string_view tenant = key.substr(0, nul);
  const std::string_view rest = key.substr(nul + 1);
  const auto colon = rest.find(':');
  if (colon == std::string_view::npos) return;
  auto entry = decode_vector_entry(stored.payload);
  if (!entry || entry->vector.size() != matcher_->index().dimension()) return;
  const std::string_view fingerprint = rest.substr(colon + 1);
  const std::uint64_t id = entry_id_of(fingerprint);
  if (auto ok = matcher_->insert_embedded(index_namespace(tenant, rest.substr(0, colon)), id,
                                          entry->normalized_text, entry->vector);
      !ok) {
    return;
  }
  std::lock_guard lock(entries_mutex_);
  fingerprint_of_[id] = std::string(fingerprint);
}

std::size_t AnswerCache::load_index() {
  if (!matcher_) return 0;
  std::size_t indexed = 0;
  auto ok = store_.for_each(StateFamily::vectors, "", [&](std::string_view key, const StoredEntry& entry) {
    index_entry(key, entry);
    indexed++;
    return true;
  });
  if (!ok) spdlog::warn("cache: semantic index not loaded: {}", ok.error().message);
  return indexed;
}

void AnswerCache::on_applied(StateFamily family, std::string_view key, const StoredEntry* entry) {
  if (family != StateFamily::vectors || !matcher_) return;
  if (entry) {
    index_entry(key, *entry);
    return;
  }
  const auto nul = key.find('\0');
  const auto colon = key.find(':', nul == std::string_view::npos ? 0 : nul);
  if (nul == std::string_view::npos || colon == std::string_view::npos) return;
  matcher_->remove(index_namespace(key.substr(0, nul), key.substr(nul + 1, colon - nul - 1)),
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
