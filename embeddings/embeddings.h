#pragma once
// Text embeddings for the semantic cache: one interface (Embedder) with a
// built-in embedder that needs no model files, an OpenAI-compatible
// /v1/embeddings client, and an embedding cache keyed by content hash so a
// text is embedded once (docs/cache.md).
//
// Normalization rule shared by hashing and embedding: what is hashed is what
// is embedded, so a cached vector is always the vector of the hashed text.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/config_reader.h"
#include "core/result.h"

namespace cascade {

using Embedding = std::vector<float>;

// ------------------------------------------------------------ normalization --

// The text as embedded and hashed: ASCII letters lowercased, every run of
// whitespace (ASCII, NBSP U+00A0, ideographic space U+3000) collapsed to one
// space, leading and trailing whitespace dropped. Bytes >= 0x80 are copied
// unchanged apart from those spaces, so UTF-8 stays valid and non-ASCII
// letters keep their case (no locale tables at run time).
std::string normalize_text(std::string_view text);

// SHA-256 over the embedder's tag and the normalized text: the key of the
// embedding cache. The tag is part of the key, so vectors of another embedder
// (or another version or dimension of it) are never served.
using ContentHash = std::array<std::uint8_t, 32>;
ContentHash content_hash(std::string_view embedder_tag, std::string_view normalized_text);
std::string to_hex(const ContentHash& hash);

// Scales `vector` to unit L2 length; false (vector unchanged) if it is all
// zeros or not finite.
bool normalize_unit(std::span<float> vector);

// The stored form of a vector: little-endian float32s, nothing else. For
// stores that keep bytes (RocksDB). decode returns nullopt when the size is
// not a whole number of floats or does not match `dimension` (0 = any).
std::string encode_embedding(std::span<const float> vector);
std::optional<Embedding> decode_embedding(std::string_view bytes, std::size_t dimension = 0);

// English function words (articles, pronouns, auxiliaries, prepositions,
// conjunctions, question words), lowercase ASCII. The built-in embedder
// weights them down; the verifier leaves them out of content-word checks.
bool is_function_word(std::string_view lowercase_word);

// Light English suffix stripping (plural -s/-es/-ies, -ing, -ed) so that
// "works"/"work" and "learning"/"learn" share features. Deliberately crude:
// it only has to map inflections of one word together, not be a lemmatizer.
std::string stem_word(std::string_view lowercase_word);

// ---------------------------------------------------------------- Embedder --

class Embedder {
 public:
  virtual ~Embedder() = default;
  virtual std::size_t dimension() const = 0;
  // Names the vector space: kind, model, version and dimension. Vectors with
  // different tags are not comparable; a change of embedder changes the tag and
  // with it every cache key.
  virtual const std::string& tag() const = 0;
  // One unit-length vector per text, in order. Texts are embedded as given
  // (callers pass normalize_text() output; CachedEmbedder does it itself).
  [[nodiscard]] virtual Result<std::vector<Embedding>> embed(std::span<const std::string> texts) = 0;
};

// ------------------------------------------------------- BuiltinEmbedder ----

// Feature hashing of word unigrams, word bigrams and character n-grams of each
// word, with signed buckets (collisions cancel out on average instead of
// piling up), sublinear term frequency (1 + ln tf) and low weights for
// function words. Deterministic across runs and machines (own hash, no
// std::hash), no model files, a few microseconds per prompt. It measures
// lexical closeness, not meaning: the verifier and a high threshold carry the
// precision (docs/cache.md has the measurements behind these defaults).
struct BuiltinEmbedderOptions {
  std::size_t dimension = 256;
  float word_weight = 1.0f;
  float bigram_weight = 0.7f;
  float char_ngram_weight = 0.35f;   // per n-gram, of n in [min_char_ngram, max_char_ngram]
  float function_word_weight = 0.3f;  // "the", "what", "is", ... relative to content words
  int min_char_ngram = 3;
  int max_char_ngram = 4;
};

class BuiltinEmbedder final : public Embedder {
 public:
  explicit BuiltinEmbedder(BuiltinEmbedderOptions options = {});

  std::size_t dimension() const override { return options_.dimension; }
  const std::string& tag() const override { return tag_; }
  [[nodiscard]] Result<std::vector<Embedding>> embed(std::span<const std::string> texts) override;

  // The allocation-free core: writes the unit vector of `text` into `out`
  // (size dimension()). An empty text yields the zero vector.
  void embed_into(std::string_view text, std::span<float> out) const;

 private:
  BuiltinEmbedderOptions options_;
  std::string tag_;
};

// ------------------------------------------------------- OpenAiEmbedder -----

// The request and the response of POST {base_url}/embeddings as pure
// functions, so an event loop can run them over its own curl multi handle.
struct EmbeddingsHttpRequest {
  std::string url;                   // {base_url}/embeddings
  std::vector<std::string> headers;  // "Name: value"; holds the key: never log them
  std::string body;                  // {"model":...,"input":[...]}
};

// `api_key` empty = no Authorization header (local servers). `dimensions` > 0
// is sent as "dimensions" (OpenAI text-embedding-3 shortening); 0 = not sent,
// which every OpenAI-compatible server accepts.
EmbeddingsHttpRequest build_embeddings_request(std::string_view base_url, std::string_view model,
                                               std::span<const std::string> texts,
                                               std::string_view api_key, std::size_t dimensions = 0);

// Parses the response to a request of `expected_count` inputs: vectors placed
// by each item's "index" (servers may answer out of order), every input
// answered exactly once, all of one dimension (= `expected_dimension` unless
// 0), finite, and scaled to unit length. Statuses >= 400 become errors with
// the status and the server's error message: 408/504 timeout, others
// provider_error (429 included; http_status and retry_after_ms tell a retry
// policy what it needs). `secret` is scrubbed from any quoted server text.
[[nodiscard]] Result<std::vector<Embedding>> parse_embeddings_response(long http_status, std::string_view body,
                                                         std::size_t expected_count,
                                                         std::size_t expected_dimension = 0,
                                                         std::string_view secret = {});

struct OpenAiEmbedderOptions {
  std::string base_url;     // e.g. http://127.0.0.1:11434/v1 (Ollama), https://api.openai.com/v1
  std::string model;        // e.g. nomic-embed-text, text-embedding-3-small
  std::string api_key_env;  // environment variable holding the key; "" = no key
  std::size_t dimension = 0;  // 0 = learned from the first response (create() probes)
  bool send_dimensions = false;  // send "dimensions" (only text-embedding-3-* accept it)
  std::size_t max_batch = 128;   // inputs per request
  long connect_timeout_ms = 5000;
  long request_timeout_ms = 30000;
};

// Blocking client over curl easy, for tools (cascade cache-eval) and tests;
// the worker runs build/parse over its own curl multi loop instead.
class OpenAiEmbedder final : public Embedder {
 public:
  // Reads the key from `env` (a named but absent variable is an error) and,
  // when options.dimension is 0, embeds one probe text to learn it.
  [[nodiscard]] static Result<std::unique_ptr<OpenAiEmbedder>> create(OpenAiEmbedderOptions options,
                                                        const EnvLookup& env = process_env());
  ~OpenAiEmbedder() override;

  std::size_t dimension() const override { return options_.dimension; }
  const std::string& tag() const override { return tag_; }
  [[nodiscard]] Result<std::vector<Embedding>> embed(std::span<const std::string> texts) override;

 private:
  OpenAiEmbedder(OpenAiEmbedderOptions options, std::string api_key);
  [[nodiscard]] Result<std::vector<Embedding>> post(std::span<const std::string> texts, std::size_t expected_dimension);
  void set_tag();

  OpenAiEmbedderOptions options_;
  std::string api_key_;
  std::string tag_;
  void* curl_ = nullptr;  // CURL*, reused for connection keep-alive
};

// --------------------------------------------------- AsyncOpenAiEmbedder ----

class HttpClient;  // providers/provider.h

// The same endpoint driven by an event loop's HttpClient (curl multi): no
// thread and no blocking per call, for the worker. One instance serves every
// event loop (thread-safe); a call runs on the HttpClient of the loop that
// starts it and reports on that loop's thread. Same tag as OpenAiEmbedder, so
// both read one embedding cache.
class AsyncOpenAiEmbedder final : public Embedder {
 public:
  using Callback = std::function<void(Result<std::vector<Embedding>>)>;

  // Reads the key from `env` (a named but absent variable is an error). No
  // I/O: with options.dimension 0 the dimension is learned from the first
  // answer, and every later answer must have it.
  [[nodiscard]] static Result<std::unique_ptr<AsyncOpenAiEmbedder>> create(OpenAiEmbedderOptions options,
                                                             const EnvLookup& env = process_env());

  // 0 until known.
  std::size_t dimension() const override { return dimension_.load(std::memory_order_acquire); }
  // "openai-compatible:<model>:d<dimension>"; "" until the dimension is known.
  const std::string& tag() const override;

  // Starts one POST of all `texts` on `http` (which must outlive the call, as
  // must this embedder). `done` runs exactly once, from http.poll() on the
  // thread driving it, never inside start(): the unit vectors in order, or an
  // error: HTTP status >= 400 (provider_error; 408/504 timeout; Retry-After
  // in retry_after_ms), no connection (unavailable), connect_timeout_ms or
  // request_timeout_ms passed (timeout), a malformed answer or one of another
  // dimension (provider_error). http.cancel(returned id) ends the call
  // without calling `done`. Fails (and never calls `done`) on empty `texts`.
  [[nodiscard]] Result<std::uint64_t> start(HttpClient& http, std::vector<std::string> texts, Callback done);

  // Blocking, over an HttpClient of its own, max_batch texts per request: for
  // tools and tests. The worker calls start() instead.
  [[nodiscard]] Result<std::vector<Embedding>> embed(std::span<const std::string> texts) override;

 private:
  struct Call;  // one transfer's HttpResponseHandler
  AsyncOpenAiEmbedder(OpenAiEmbedderOptions options, std::string api_key);
  // The vectors of one finished response: parsed, checked against the
  // dimension (learning it when still 0).
  [[nodiscard]] Result<std::vector<Embedding>> finish(long http_status, std::string_view body, std::size_t count);
  // Fixes the dimension if it is still unknown; true when it is `dimension`.
  bool learn_dimension(std::size_t dimension);

  OpenAiEmbedderOptions options_;
  std::string api_key_;
  std::mutex learn_mutex_;
  std::string tag_;  // written once, before dimension_ becomes non-zero
  std::atomic<std::size_t> dimension_{0};
};

// ------------------------------------------------------- embedding cache ----

// Vectors by content hash. The production store is RocksDB (state/); the
// in-memory one serves tests and tools. Implementations must be safe to call
// from several threads when they are shared between event loops.
class EmbeddingCache {
 public:
  virtual ~EmbeddingCache() = default;
  // nullopt when absent (or unreadable: the text is then simply embedded again).
  virtual std::optional<Embedding> get(const ContentHash& key) = 0;
  [[nodiscard]] virtual Result<void> put(const ContentHash& key, std::span<const float> vector) = 0;
};

// Bounded map; when full, the oldest entry is evicted. Thread-safe (one mutex).
class InMemoryEmbeddingCache final : public EmbeddingCache {
 public:
  explicit InMemoryEmbeddingCache(std::size_t max_entries = 1'000'000);
  ~InMemoryEmbeddingCache() override;
  std::optional<Embedding> get(const ContentHash& key) override;
  [[nodiscard]] Result<void> put(const ContentHash& key, std::span<const float> vector) override;
  std::size_t size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct CachedEmbedderStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t put_failures = 0;  // the vector was served but not kept
};

// Normalizes each text, serves cached vectors by content_hash(tag, text) and
// embeds only the misses (in one call to the inner embedder), then stores
// them. A failing cache never fails an embedding. Not thread-safe (stats);
// use one per event loop over a shared cache.
class CachedEmbedder final : public Embedder {
 public:
  CachedEmbedder(Embedder& inner, EmbeddingCache& cache) : inner_(inner), cache_(cache) {}

  std::size_t dimension() const override { return inner_.dimension(); }
  const std::string& tag() const override { return inner_.tag(); }
  [[nodiscard]] Result<std::vector<Embedding>> embed(std::span<const std::string> texts) override;
  const CachedEmbedderStats& stats() const { return stats_; }

 private:
  Embedder& inner_;
  EmbeddingCache& cache_;
  CachedEmbedderStats stats_;
};

}  // namespace cascade
