#pragma once
// Event schema v1 (docs/events.md): prompt events in, reply and cost events out.
// Extend, never break: new fields are optional, old fields keep their meaning.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace cascade {

enum class Preference { cost, balanced, quality, speed };
enum class Priority { interactive, batch };
enum class CacheMode { off, exact, semantic };
enum class CacheOutcome { miss, exact, semantic };

std::string_view to_string(Preference p);
std::string_view to_string(Priority p);
std::string_view to_string(CacheMode m);
std::string_view to_string(CacheOutcome c);

// A prompt event from cascade.requests (key = prompt_event_key, events/request_fingerprint.h).
struct PromptEvent {
  std::string id;        // unique; the idempotency key
  std::string tenant;
  std::string reply_to;  // topic for chunk/final/error events
  nlohmann::json messages = nlohmann::json::array();  // OpenAI chat format, passed through
  std::string model = "auto";  // "auto" or a catalog id (pinned)
  Preference preference = Preference::balanced;
  std::optional<int> max_tokens;
  std::optional<double> temperature;
  bool stream = true;
  Priority priority = Priority::interactive;
  CacheMode cache = CacheMode::exact;
  nlohmann::json metadata = nlohmann::json::object();  // echoed back in the final event
  // The cheap-first cascade (docs/routing.md): true/false overrides
  // router.cascade.preferences for this request; absent = the config decides.
  std::optional<bool> cascade;
  // OpenAI's response_format ({"type":"json_object"}, {"type":"json_schema",...}),
  // passed through to OpenAI-compatible providers; null = absent. The
  // cascade checks that a cheap answer is the JSON it asks for.
  nlohmann::json response_format = nullptr;
  // OpenAI's `tools` (function definitions) when the request sends a
  // non-empty array; null otherwise. The router sends such a request only to
  // a model that can call tools. Not part of the request fingerprint.
  nlohmann::json tools = nullptr;
  // OpenAI's `tool_choice` ("auto", "none", "required" or a named function),
  // forwarded with `tools`; null = absent (the provider's default).
  nlohmann::json tool_choice = nullptr;

  bool pinned() const { return model != "auto"; }
};

// Why a prompt event was rejected, with whatever could still be read from it so
// the rejection can be sent to the requester.
struct RejectedPrompt {
  Error error;  // always ErrorCode::invalid_request
  std::optional<std::string> id;
  std::optional<std::string> tenant;
  std::optional<std::string> reply_to;
};

struct PromptLimits {
  std::size_t max_event_bytes = 1 << 20;
};

// Answers whether a pinned model id exists in the catalog.
using ModelExists = std::function<bool(std::string_view model_id)>;

// Parses and validates a prompt event (JSON text). Never throws.
std::expected<PromptEvent, RejectedPrompt> parse_prompt_event(std::string_view payload,
                                                               const PromptLimits& limits,
                                                               const ModelExists& model_exists);

nlohmann::json to_json(const PromptEvent& event);

struct TokenUsage {
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens = 0;
  std::int64_t cached_tokens = 0;  // part of input_tokens billed at the cached price
  // Part of input_tokens written to the provider's prompt cache, billed at the
  // cache-write price (Anthropic charges 1.25x input for it).
  std::int64_t cache_write_tokens = 0;
  // Part of output_tokens spent on hidden reasoning (OpenAI o-series and the
  // like); already billed as output, so it changes no price.
  std::int64_t reasoning_tokens = 0;
};

struct RouteInfo {
  std::string tier;
  double score = 0;
  std::string reason;
  // The routing policy that decided (RouteDecision::policy): a rule's policy
  // name or an experiment arm "<experiment>:<policy>". "" = none, and then
  // absent from the event.
  std::string policy;
};

// Reply events on reply_to (key = request id); seq counts 0,1,2,... per request.
//
// What the first chunk of an answer says of where the answer comes from, so
// that a front door can name the model in its response headers and chunks
// before the final event (docs/events.md, "Chunk event"). Views.
struct ChunkHead {
  std::string_view model;     // catalog id answering
  std::string_view provider;  // "" = unknown, then absent
  CacheOutcome cache = CacheOutcome::miss;
  std::string_view tier;      // "" = absent
  std::string_view reason;    // the route reason; "" = absent
};
// `head` is written on the request's first chunk only (seq 0), and may be null.
std::string make_chunk_event(std::string_view id, std::int64_t seq, std::string_view delta,
                             const ChunkHead* head = nullptr);

struct FinalReply {
  std::string id;
  std::int64_t seq = 0;
  std::string content;
  std::string model;
  std::string provider;
  std::string finish_reason;
  TokenUsage usage;
  double cost_usd = 0;
  CacheOutcome cache = CacheOutcome::miss;
  RouteInfo route;
  nlohmann::json metadata = nlohmann::json::object();
  // The model's tool calls in OpenAI's non-streamed form
  // ([{"id","type","function":{"name","arguments"}}]); written only when non-empty.
  nlohmann::json tool_calls = nlohmann::json::array();
};
nlohmann::json to_json(const FinalReply& final);
std::string make_final_event(const FinalReply& final);
[[nodiscard]] Result<FinalReply> parse_final_event(std::string_view payload);
struct ReplyEvent;
// The same from a reply event already parsed (parse_reply_event): no second parse.
[[nodiscard]] Result<FinalReply> parse_final_event(const ReplyEvent& event);

std::string make_error_event(std::string_view id, std::int64_t seq, const Error& error);

// Cost event on cascade.ledger (key = tenant).
struct CostEvent {
  std::string id;
  std::string tenant;
  std::int64_t ts_ms = 0;  // unix epoch milliseconds
  std::string model;
  std::string provider;
  TokenUsage usage;
  double cost_usd = 0;
  std::string baseline_model;
  double baseline_cost_usd = 0;
  double savings_usd = 0;
  CacheOutcome cache = CacheOutcome::miss;
  double latency_ms = 0;
  double ttft_ms = 0;
  std::string route_reason;
  // The catalog price table cost_usd was computed with (ModelCatalog::price_version);
  // "" in events written before it was added.
  std::string price_version;
  // The request's tags (metadata.tags), for per-tag budgets and reports.
  std::vector<std::string> tags;
  // Billed at the provider's batch prices (ModelPrice::batch_*).
  bool batch = false;
  // The routing policy or experiment arm (RouteInfo::policy), for comparing
  // policies in the ledger; "" = none (absent from the event).
  std::string policy;
};
std::string make_cost_event(const CostEvent& cost);
[[nodiscard]] Result<CostEvent> parse_cost_event(std::string_view payload);

// Dead-letter record on cascade.dlq: the reason and the original event.
struct DeadLetter {
  std::string reason;
  std::string source_topic;
  std::int32_t source_partition = -1;
  std::int64_t source_offset = -1;
  std::optional<std::string> id;
  std::optional<std::string> tenant;
  std::string payload;  // the original bytes (truncated to a bound for huge events)
};
std::string make_dead_letter(const DeadLetter& letter);

// Reply event as read back by a client (cascade send, tests).
struct ReplyEvent {
  std::string id;
  std::string type;  // chunk | final | error
  std::int64_t seq = 0;
  nlohmann::json body;
};
[[nodiscard]] Result<ReplyEvent> parse_reply_event(std::string_view payload);

std::int64_t now_ms();

// A prompt event's rules for a tenant name: 1-128 characters from [A-Za-z0-9._:-].
bool valid_tenant(std::string_view tenant);

}  // namespace cascade
