#pragma once
// The request fingerprint: the key under which identical requests share one
// answer (single flight and the exact-match response cache in the worker),
// and the prompt event key derived from it, which every producer of prompt
// events uses as the Kafka record key. Two prompt events get the same fingerprint exactly when everything
// that shapes the answer is the same: tenant, messages, model, preference,
// effective max_tokens and temperature (and response_format and cascade, when
// a request sets them: they change which answer is acceptable). What only says who asked or how the
// answer is delivered (id, reply_to, metadata, priority, stream, cache) is left
// out. The tenant is always part of it: no answer crosses tenants.
//
// What is normalized (docs/events.md, "Request fingerprint"):
//   - JSON syntax of `messages`: whitespace, key order, string escapes. The
//     fingerprint hashes the parsed value, which is what the provider receives.
//   - defaults: an absent max_tokens counts as limits.default_max_tokens (the
//     caller passes the effective value); absent model and preference are
//     already "auto" and "balanced" after parsing.
// Nothing else: message content is byte-exact (no trimming, no case or Unicode
// folding), 5 and 5.0 differ, and so do an absent and an explicit temperature.
#include <cstddef>
#include <string>
#include <string_view>

#include "core/result.h"
#include "events/events.h"

namespace cascade {

// First line of the canonical serialization. Bump it whenever what is hashed
// changes, so keys stored under an old serialization can never match.
inline constexpr std::string_view kRequestFingerprintVersion = "cascade.request-fingerprint.v1";

// The canonical, versioned serialization that request_fingerprint hashes
// (exposed for tests and debugging). Every field and every JSON string is
// length-prefixed and every JSON value type-tagged, so two different requests
// never serialize the same:
//
//   cascade.request-fingerprint.v1\n
//   tenant <len>:<bytes>\n
//   model <len>:<bytes>\n
//   preference <len>:<bytes>\n
//   max_tokens <decimal>\n
//   temperature -\n                    (absent), or: temperature <%.17g>\n
//   messages <value>\n
//   response_format <value>\n          (only when the request has one)
//   cascade t\n | cascade f\n           (only when the request says)
//
// <value>: null `n`, true `t`, false `f`, integer `i<decimal>;` (signed and
// unsigned alike), floating point `d<%.17g>;`, string `s<len>:<bytes>`, array
// `a<count>[<value>...]`, object `o<count>{<key as string><value>...}` with
// keys in byte order, binary `b<subtype or ->:<len>:<bytes>`.
std::string canonical_request(const PromptEvent& event, int effective_max_tokens);

// Lowercase hex SHA-256 (64 characters) of canonical_request(event,
// effective_max_tokens), computed without building that string. Fails only if
// the crypto library does (out of memory): callers then treat the request as
// unique.
[[nodiscard]] Result<std::string> request_fingerprint(const PromptEvent& event, int effective_max_tokens);

// ---- the prompt event key (docs/events.md, "Prompt event key") -------------

inline constexpr std::string_view kPromptEventKeyVersion = "cascade.prompt-key.v1";
inline constexpr std::size_t kPromptEventKeyHexDigits = 32;

// The Kafka key of a prompt event on the requests topic:
//
//   <tenant>/<first 32 hex digits of SHA-256(canonical_prompt_key(event))>
//
// Keyed by tenant, all of a tenant's requests would share one partition and
// hence one worker event loop; keyed by this, a tenant's distinct requests
// spread evenly over the partitions (and the worker loops' rate-limit shares
// add up to the tenant's limit, consumers/worker/partition_share.h).
// Identical requests (the same fingerprint) always get the same key, hence
// the same partition and loop, where single flight meets them: the key
// hashes what the fingerprint hashes except max_tokens, whose default is the
// workers' configuration (limits.default_max_tokens) that a producer cannot
// know. The tenant, in clear before '/' (a character no tenant name has),
// keeps tenants from ever sharing a key. Never fails: without a digest (out
// of memory) the key is the tenant alone.
//
// examples/python/prompt_key.py and examples/node/prompt_key.mjs compute the
// same key; tests/events/prompt_event_key_vectors.json holds the cases all
// three are checked against.
std::string prompt_event_key(const PromptEvent& event);

// What prompt_event_key hashes (tests, debugging, ports to other languages):
// canonical_request's format with the version line kPromptEventKeyVersion
// and without the max_tokens line.
std::string canonical_prompt_key(const PromptEvent& event);

}  // namespace cascade
