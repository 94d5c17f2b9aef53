#pragma once
// cache.* of cascade.yaml: the response cache, its semantic half and the
// embedder it uses (docs/cache.md). Verifier rule names and values are
// checked by the cache itself (set_verifier_option in cache/semantic.h) when
// a command starts and when a worker builds its cache.
#include <cstddef>
#include <map>
#include <string>

#include "core/config_reader.h"
#include "core/result.h"

namespace cascade {

// How the semantic cache embeds prompts (docs/cache.md, "Embedders").
struct EmbedderConfig {
  std::string kind = "builtin";  // builtin | openai (any OpenAI-compatible /v1/embeddings)
  std::string base_url;          // openai: e.g. http://127.0.0.1:11434/v1 (Ollama)
  std::string model;             // openai: e.g. nomic-embed-text
  std::string api_key_env;       // openai: env var holding the key; "" = no key
  // builtin: 0 = 256. openai: 0 = learned from the first answer.
  std::size_t dimension = 0;
  // openai: one embeddings call, whole and to connect. A request waits for
  // its embedding at most this long; a failed or late one is a cache miss.
  long timeout_ms = 2000;
  long connect_timeout_ms = 1000;
};

struct SemanticCacheConfig {
  double threshold = 0.90;  // minimum cosine similarity of a hit
  bool verify = true;       // run the false-hit verifier on candidates
  // Verifier rules (docs/cache.md: "Verification"), name -> value as written
  // ("persons" -> "false", "max_order_inversions" -> "1"). The built-in
  // defaults list every rule.
  std::map<std::string, std::string> verifier;
  // rules: the rules above decide. builtin: the learned verifier shipped in
  // the binary; or the path of a model file of `cascade cache-train`. A model
  // keeps only its own vetoes of the rules (docs/cache.md, "Learned verifier").
  std::string verifier_model = "rules";
  // With a model: the operating point, as the precision it was calibrated
  // for (0 = the model's default).
  double target_precision = 0;
  EmbedderConfig embedder;
};

struct CacheConfig {
  bool enabled = true;
  // Part of every entry's version tag: change it to invalidate every entry.
  std::string version = "1";
  // Requests with a higher explicit temperature are never cached.
  double max_temperature = 1.0;
  // Size of the chunks a hit is replayed in.
  int replay_chunk_bytes = 256;
  SemanticCacheConfig semantic;
};

[[nodiscard]] Result<CacheConfig> read_cache_config(ConfigReader& reader);

}  // namespace cascade
