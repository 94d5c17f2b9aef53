#include "consumers/worker/cache_stage.h"

#include <spdlog/spdlog.h>

#include "events/request_fingerprint.h"

namespace cascade {

CacheStage::CacheStage(StageContext& context, AnswerCache* cache, Resume resume)
    : ctx_(context), cache_(cache), resume_(std::move(resume)) {}

void CacheStage::fingerprint(Request& r) {
  if (r.event.cache == CacheMode::off) return;
  if (auto fingerprint = request_fingerprint(r.event, ctx_.effective_max_tokens(r.event))) {
    r.fingerprint = std::move(*fingerprint);
  } else {
    spdlog::warn("worker: request {} is neither cached nor shared: {}", r.event.id, fingerprint.error().message);
  }
}

CacheStage::Lookup CacheStage::look_up(Request& r) {
  if (!cache_ || r.fingerprint.empty()) return {};
  if (auto hit = cache_->lookup_exact(r.event, r.fingerprint)) return {Outcome::hit, std::move(hit)};

  auto query = cache_->semantic_query(r.event);
  if (!query) return {};
  r.semantic = std::move(*query);
  if (r.semantic->vector) {
    if (auto hit = semantic_hit(r)) return {Outcome::hit, std::move(hit)};
    return {};
  }
  AsyncOpenAiEmbedder* embedder = cache_->remote_embedder();
  if (!embedder) return {};
  auto [flight, first] = embedding_flights_.try_emplace(r.semantic->normalized);
  flight->second.push_back(r.serial);
  enter(r, RequestState::embedding);
  if (!first) return {Outcome::waiting, std::nullopt};  // the same text is being embedded for another request
  auto call = embedder->start(ctx_.host.http(), {r.semantic->normalized},
                              [this, text = r.semantic->normalized](Result<std::vector<Embedding>> vectors) {
                                on_embedded(text, std::move(vectors));
                              });
  if (!call) {
    embedding_flights_.erase(flight);
    enter(r, RequestState::received);
    embedding_failed(r, call.error());
    return {};
  }
  return {Outcome::waiting, std::nullopt};
}

std::optional<CacheHit> CacheStage::semantic_hit(Request& r) { return cache_->lookup_semantic(r.event, *r.semantic); }

// An embeddings call ended (on this loop, from its HttpClient's poll): every
// request waiting for that text searches with the vector, or goes on uncached.
void CacheStage::on_embedded(const std::string& text, Result<std::vector<Embedding>> vectors) {
  auto flight = embedding_flights_.extract(text);
  if (flight.empty()) return;
  std::optional<Error> error;
  if (!vectors) {
    error = std::move(vectors.error());
  } else if (vectors->size() != 1 || !cache_->embedded(text, vectors->front())) {
    // The index has another dimension (or the answer is not one vector).
    error = Error{ErrorCode::provider_error,
                  "embedding of dimension " + std::to_string(vectors->empty() ? 0 : vectors->front().size()) +
                      " does not fit the semantic index (dimension " + std::to_string(cache_->embedding_dimension()) +
                      ")"};
  }
  for (const auto serial : flight.mapped()) {
    Request* r = ctx_.requests.find(serial);
    if (!r || r->state != RequestState::embedding) continue;  // gone meanwhile (e.g. its partition was revoked)
    enter(*r, RequestState::received);
    std::optional<CacheHit> hit;
    if (!error) {
      r->semantic->vector = vectors->front();
      hit = semantic_hit(*r);
    } else {
      embedding_failed(*r, *error);
    }
    resume_(*r, std::move(hit));
  }
}

void CacheStage::embedding_failed(const Request& r, const Error& error) {
  if (ctx_.metrics) ctx_.metrics->semantic_embedding_failure(std::string(to_string(error.code)));
  spdlog::debug("worker: request {} tenant {}: no embedding for the semantic cache, a miss ({}: {})", r.event.id,
                r.event.tenant, to_string(error.code), error.message);
}

void CacheStage::count_hit(const Request& r, const CacheHit& hit) {
  (hit.kind == CacheOutcome::semantic ? ctx_.stats.cache_hits_semantic : ctx_.stats.cache_hits_exact)++;
  if (ctx_.metrics) ctx_.metrics->cache_hit(std::string(to_string(hit.kind)));
  spdlog::debug("worker: request {} tenant {} answered from the cache ({})", r.event.id, r.event.tenant, hit.reason);
}

void CacheStage::store(const Request& r, const FinalReply& final, const ModelInfo& model) {
  if (!cache_ || r.fingerprint.empty()) return;
  cache_->store(r.event, r.fingerprint, final, model, r.semantic ? &*r.semantic : nullptr);
}

}  // namespace cascade
