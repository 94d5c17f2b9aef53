// Writes what tests/schemas/check_schemas.py holds schemas/ against, all of it
// made by Cascade's own code:
//   produced/<schema>/<variant>.json  events as the real writers write them,
//                                     with variants covering optional fields;
//   cases/prompt.jsonl, cases/cancel.jsonl
//                                     payloads with parse_prompt_event's and
//                                     parse_cancel_event's verdicts on them;
//   vocabulary.json                   the enumerations the schemas list.
// Usage: schema_samples <output directory>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <stdexcept>
#include <set>
#include <string>
#include <vector>

#include "budgets/budgets.h"
#include "catalog/catalog.h"
#include "consumers/ledger/ledger.h"
#include "events/cancel_event.h"
#include "events/events.h"
#include "events/quality_event.h"

namespace cascade {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr std::int64_t kTs = 1767225600123;

class SampleWriter {
 public:
  explicit SampleWriter(fs::path root) : root_(std::move(root)) {}

  void produced(const std::string& schema, const std::string& variant, const std::string& payload) {
    write(root_ / "produced" / schema / (variant + ".json"), payload);
  }

  void cases(const std::string& schema, const std::vector<json>& lines) {
    std::string text;
    for (const auto& line : lines) text += line.dump() + "\n";
    write(root_ / "cases" / (schema + ".jsonl"), text);
  }

  void vocabulary(const json& words) { write(root_ / "vocabulary.json", words.dump(2)); }

 private:
  static void write(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + path.string());
  }
  fs::path root_;
};

// Every name an enum's to_string gives: the enums are dense from 0, and an
// out-of-range value falls back to a known name, so 64 values cover any
// value added later.
template <class Enum>
json names_of() {
  std::set<std::string> names;
  for (int i = 0; i < 64; ++i) names.insert(std::string(to_string(static_cast<Enum>(i))));
  return names;
}

// ---- reply events -----------------------------------------------------------

void write_reply_events(SampleWriter& w) {
  w.produced("chunk", "plain", make_chunk_event("req-1", 3, " of France is Paris."));
  w.produced("chunk", "empty-delta", make_chunk_event("req-1", 4, ""));
  w.produced("chunk", "unicode-delta", make_chunk_event("req-1", 5, "Paris 🇫🇷 \"quoted\"\n"));
  w.produced("chunk", "invalid-utf8-delta", make_chunk_event("req-1", 6, "bad \xC3\x28 bytes"));
  const ChunkHead routed{.model = "gpt-4o-mini", .provider = "openai", .cache = CacheOutcome::miss, .tier = "small",
                         .reason = "heuristic score=0.21 pref=balanced tier=small"};
  w.produced("chunk", "first-with-head", make_chunk_event("req-1", 0, "The capital", &routed));
  const ChunkHead cached{.model = "gpt-4o-mini", .provider = "openai", .cache = CacheOutcome::semantic, .tier = {},
                         .reason = "semantic cache hit"};
  w.produced("chunk", "first-with-head-cache-hit", make_chunk_event("req-1", 0, "The capital", &cached));
  const ChunkHead model_only{.model = "gpt-4o-mini", .provider = {}, .tier = {}, .reason = {}};
  w.produced("chunk", "first-with-model-only", make_chunk_event("req-1", 0, "The", &model_only));
  const ChunkHead no_model{.model = {}, .provider = "openai", .tier = "small", .reason = {}};  // no model, no head
  w.produced("chunk", "first-with-empty-head", make_chunk_event("req-1", 0, "The", &no_model));

  FinalReply final;
  final.id = "req-1";
  final.seq = 2;
  final.content = "The capital of France is Paris. 🇫🇷";
  final.model = "gpt-4o-mini";
  final.provider = "openai";
  final.finish_reason = "stop";
  final.usage = {.input_tokens = 412, .output_tokens = 11, .cached_tokens = 256};
  final.cost_usd = 4.32e-05;
  final.route = {.tier = "small", .score = 0.21, .reason = "heuristic score=0.21 pref=balanced tier=small", .policy = {}};
  final.metadata = {{"trace_id", "t-81f2"}, {"user", "u-17"}};
  w.produced("final", "plain", make_final_event(final));

  FinalReply tools = final;
  tools.seq = 0;
  tools.content = "";
  tools.model = "o3-mini";
  tools.finish_reason = "tool_calls";
  tools.usage = {.input_tokens = 88, .output_tokens = 180, .cached_tokens = 0, .cache_write_tokens = 16,
                 .reasoning_tokens = 128};
  tools.route = {.tier = "medium", .score = 0.52, .reason = "rule tools", .policy = "exp-1:cheap"};
  tools.metadata = json::object();
  tools.tool_calls = json::parse(
      R"([{"id":"call_Wx8kQ2vLmN3pR7sT","type":"function","function":{"name":"get_weather","arguments":"{\"location\": \"Paris\"}"}}])");
  w.produced("final", "tool-calls-policy-reasoning", make_final_event(tools));

  FinalReply hit = final;
  hit.cost_usd = 0;
  hit.cache = CacheOutcome::exact;
  hit.route = {.tier = "cache", .score = 0, .reason = "exact cache hit", .policy = {}};
  w.produced("final", "cache-hit", make_final_event(hit));

  FinalReply odd_metadata = final;
  odd_metadata.metadata = json::array();  // not an object: written as {}
  w.produced("final", "metadata-not-an-object", make_final_event(odd_metadata));

  std::set<std::string> codes;  // one error event per code, as names_of<ErrorCode> finds them
  for (int i = 0; i < 64; ++i) {
    const auto code = static_cast<ErrorCode>(i);
    const std::string name(to_string(code));
    if (!codes.insert(name).second) continue;
    w.produced("error", name, make_error_event("req-2", 4, Error{code, "what went wrong: " + name}));
  }
}

// ---- ledger, cancels, quality ---------------------------------------------------

void write_cost_events(SampleWriter& w) {
  CostEvent cost;
  cost.id = "req-1";
  cost.tenant = "acme";
  cost.ts_ms = kTs;
  cost.model = "gpt-4o-mini";
  cost.provider = "openai";
  cost.usage = {.input_tokens = 412, .output_tokens = 11, .cached_tokens = 256};
  cost.cost_usd = 4.32e-05;
  cost.baseline_model = "gpt-4o";
  cost.baseline_cost_usd = 0.00106;
  cost.savings_usd = 0.00106 - 4.32e-05;
  cost.latency_ms = 640.5;
  cost.ttft_ms = 180.2;
  cost.route_reason = "heuristic score=0.21 pref=balanced tier=small";
  w.produced("cost", "plain", make_cost_event(cost));

  CostEvent full = cost;
  full.usage.cache_write_tokens = 64;
  full.usage.reasoning_tokens = 8;
  full.price_version = "litellm-2026-07";
  full.tags = {"research", "eu"};
  full.batch = true;
  full.policy = "exp-1:cheap";
  full.savings_usd = -0.0001;  // a route dearer than the baseline
  w.produced("cost", "every-optional-field", make_cost_event(full));

  CostEvent hit = cost;
  hit.cost_usd = 0;
  hit.savings_usd = hit.baseline_cost_usd;
  hit.cache = CacheOutcome::semantic;
  w.produced("cost", "cache-hit", make_cost_event(hit));
}

void write_cancel_events(SampleWriter& w) {
  w.produced("cancel", "gateway",
             make_cancel_event(CancelEvent{.id = "req-1", .tenant = "acme", .reason = "client_closed", .ts_ms = kTs}));
  w.produced("cancel", "no-reason-no-time", make_cancel_event(CancelEvent{.id = "req-1", .tenant = "acme:eu-1", .reason = {}, .ts_ms = 0}));
}

void write_quality_events(SampleWriter& w) {
  QualityEvent q;
  q.id = "req-1";
  q.tenant = "acme";
  q.model = "gpt-4o-mini";
  q.provider = "openai";
  q.tier = "small";
  q.judge_model = "gpt-4o";
  q.score = 4.5;
  q.ts_ms = kTs;
  q.route_reason = "heuristic score=0.21 pref=cost tier=small | cascade: gpt-4o-mini accepted";
  q.judge_cost_usd = 0.000412;
  q.sample_rate = 0.05;
  w.produced("quality", "sampled", make_quality_event(q));

  QualityEvent calibrated = q;
  calibrated.score = 3;
  calibrated.sample_rate = 0.02;
  QualityCalibration& c = calibrated.calibration.emplace();
  c.key = "default/cost";
  c.route_score = 0.22;
  c.small_cut = 0.5;
  c.medium_cut = 0.8;
  c.configured_small_cut = 0.55;
  c.configured_medium_cut = 0.85;
  c.small = GradedAnswer{"gpt-4o-mini", "small", 3, true};
  c.medium = GradedAnswer{"gpt-5-mini", "medium", 4, false};
  c.reference = GradedAnswer{"gpt-4o", "large", 4, false};
  c.answers_cost_usd = 0.0042;
  w.produced("quality", "calibration", make_quality_event(calibrated));

  QualityEvent reference_only = calibrated;
  reference_only.calibration->small.reset();
  reference_only.calibration->medium.reset();
  reference_only.calibration->reference.served = true;
  w.produced("quality", "calibration-reference-only", make_quality_event(reference_only));
}

// ---- budgets and alerts --------------------------------------------------------

void write_budget_records(SampleWriter& w) {
  w.produced("budget", "tenant", encode_budget_record(Budget{"acme", "", {10, 100, 80}}, kTs));
  w.produced("budget", "model", encode_budget_record(Budget{"acme", model_scope("gpt-4o"), {2, 0, 80}}, kTs));
  w.produced("budget", "tag", encode_budget_record(Budget{"acme", tag_scope("research"), {0, 30, 70}}, kTs));

  const BudgetAlert daily{"acme", "", BudgetPeriod::daily, period_id(BudgetPeriod::daily, kTs), 80, 8.5, 10, kTs};
  w.produced("alert", "daily-tenant", daily.to_json());
  const BudgetAlert monthly{"acme", model_scope("gpt-4o"), BudgetPeriod::monthly,
                            period_id(BudgetPeriod::monthly, kTs), 100, 31.25, 30, kTs};
  w.produced("alert", "monthly-model", monthly.to_json());
  const BudgetAlert tag{"acme", tag_scope("research"), BudgetPeriod::daily, period_id(BudgetPeriod::daily, kTs),
                        50, 0.004, 0.005, kTs};
  w.produced("alert", "daily-tag-small-amounts", tag.to_json());
}

// ---- dead letters -----------------------------------------------------------------

void write_dead_letters(SampleWriter& w) {
  DeadLetter letter;
  letter.reason = "'temperature' must be a number between 0 and 2, got 3";
  letter.source_topic = "cascade.requests";
  letter.source_partition = 2;
  letter.source_offset = 1047;
  letter.id = "req-2";
  letter.tenant = "acme";
  letter.payload = R"({"id":"req-2","tenant":"acme","temperature":3})";
  w.produced("dead-letter", "text", make_dead_letter(letter));

  DeadLetter bytes = letter;
  bytes.reason = "event is not valid JSON: ...";
  bytes.id.reset();
  bytes.tenant.reset();
  bytes.payload = "{\"id\":\"\xff\xfe\"}";
  w.produced("dead-letter", "bytes-no-identity", make_dead_letter(bytes));

  DeadLetter huge = letter;
  huge.reason = "event is 2000000 bytes, larger than limits.max_event_bytes (1048576)";
  huge.payload = std::string(70 * 1024, 'x');
  w.produced("dead-letter", "truncated", make_dead_letter(huge));
}

// ---- prompt events: written, and parsed ------------------------------------------

json minimal_prompt() {
  return {{"id", "req-1"},
          {"tenant", "acme"},
          {"reply_to", "acme.replies"},
          {"messages", json::array({{{"role", "user"}, {"content", "Hello"}}})}};
}

json full_prompt() {
  json event = minimal_prompt();
  event["messages"] = json::parse(R"([
    {"role": "system", "content": "Answer in one sentence."},
    {"role": "user", "content": [{"type": "text", "text": "What is in this image?"},
                                 {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
    {"role": "assistant", "content": null,
     "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "a cat"}])");
  event["model"] = "gpt-4o-mini";
  event["preference"] = "cost";
  event["max_tokens"] = 200;
  event["temperature"] = 0.2;
  event["stream"] = false;
  event["priority"] = "batch";
  event["cache"] = "semantic";
  event["metadata"] = {{"trace_id", "t-81f2"}, {"tags", {"research"}}, {"residency", "eu"}};
  event["cascade"] = true;
  event["response_format"] = {{"type", "json_object"}};
  event["tools"] = json::parse(R"([{"type": "function", "function": {"name": "look", "parameters": {}}}])");
  event["tool_choice"] = "auto";
  return event;
}

// One payload for the prompt schema to agree with parse_prompt_event on.
// `schema_cannot_say`: a rule the code enforces that JSON Schema cannot
// express (the schema accepts, the code refuses). `checked_later`: a rule the
// schema states that is enforced after parsing (the code accepts, the schema
// refuses).
struct InputCase {
  std::string name;
  std::string payload;
  std::string schema_cannot_say = {};
  std::string checked_later = {};
};

InputCase changed(std::string name, const std::function<void(json&)>& change, json base = minimal_prompt()) {
  change(base);
  return {std::move(name), base.dump()};
}

InputCase beyond(InputCase c, std::string rule) {
  c.schema_cannot_say = std::move(rule);
  return c;
}

InputCase later(InputCase c, std::string rule) {
  c.checked_later = std::move(rule);
  return c;
}

json messages_of(std::size_t count) {
  json messages = json::array();
  for (std::size_t i = 0; i < count; ++i) messages.push_back({{"role", "user"}, {"content", "x"}});
  return messages;
}

// `depth` arrays, each inside the next.
json nested(int depth) {
  json value = json::array();
  for (int i = 1; i < depth; ++i) value = json::array({value});
  return value;
}

std::vector<InputCase> prompt_cases() {
  const std::string e_acute = "\xC3\xA9";  // é: 2 bytes, 1 character
  std::vector<InputCase> cases = {
      {"minimal", minimal_prompt().dump()},
      {"every-option", full_prompt().dump()},
      changed("every-option-null",
              [](json& e) {
                for (const char* key : {"model", "preference", "max_tokens", "temperature", "stream", "priority",
                                        "cache", "metadata", "cascade", "response_format", "tools", "tool_choice"})
                  e[key] = nullptr;
              }),
      changed("unknown-fields-and-v",
              [](json& e) {
                e["v"] = 7;
                e["x_vendor"] = {{"a", 1}};
              }),
      changed("every-role",
              [](json& e) {
                e["messages"] = json::array();
                for (const char* role : {"system", "developer", "user", "assistant", "tool"})
                  e["messages"].push_back({{"role", role}, {"content", "hi"}, {"name", "n"}});
              }),
      changed("empty-content", [](json& e) { e["messages"][0]["content"] = ""; }),
      changed("empty-content-parts", [](json& e) { e["messages"][0]["content"] = json::array(); }),
      changed("assistant-tool-calls-no-content",
              [](json& e) { e["messages"].push_back({{"role", "assistant"}, {"tool_calls", {{{"id", "c"}}}}}); }),
      changed("assistant-tool-calls-not-array-with-content",
              [](json& e) { e["messages"].push_back({{"role", "assistant"}, {"content", "x"}, {"tool_calls", 5}}); }),
      {"max-tokens-exponent", R"({"id":"r","tenant":"acme","reply_to":"t","messages":[{"role":"user","content":"x"}],"max_tokens":1e3})"},
      changed("max-tokens-float-integral", [](json& e) { e["max_tokens"] = 1000.0; }),
      changed("max-tokens-bounds", [](json& e) { e["max_tokens"] = 1000000; }),
      changed("max-tokens-one", [](json& e) { e["max_tokens"] = 1; }),
      changed("temperature-zero", [](json& e) { e["temperature"] = 0; }),
      changed("temperature-two", [](json& e) { e["temperature"] = 2.0; }),
      changed("tenant-every-character", [](json& e) { e["tenant"] = "Az09._:-"; }),
      changed("tenant-128", [](json& e) { e["tenant"] = std::string(128, 't'); }),
      changed("reply-to-249", [](json& e) { e["reply_to"] = std::string(249, 'r'); }),
      changed("reply-to-three-dots", [](json& e) { e["reply_to"] = "..."; }),
      changed("id-256", [](json& e) { e["id"] = std::string(256, 'i'); }),
      changed("id-unicode-short", [=](json& e) { e["id"] = e_acute + "-1"; }),
      changed("tools-not-an-array-ignored", [](json& e) { e["tools"] = "look"; }),
      changed("tools-empty", [](json& e) { e["tools"] = json::array(); }),
      changed("tool-choice-none", [](json& e) { e["tool_choice"] = "none"; }),
      changed("tool-choice-required", [](json& e) { e["tool_choice"] = "required"; }),
      changed("tool-choice-function",
              [](json& e) { e["tool_choice"] = {{"type", "function"}, {"function", {{"name", "f"}}}}; }),
      changed("response-format-json-schema",
              [](json& e) { e["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "x"}}}}; }),
      changed("model-auto", [](json& e) { e["model"] = "auto"; }),
      changed("metadata-tags-string", [](json& e) { e["metadata"] = {{"tags", "research"}}; }),
      changed("metadata-residency-null", [](json& e) { e["metadata"] = {{"residency", nullptr}}; }),
      changed("messages-10000", [](json& e) { e["messages"] = messages_of(10000); }),
      // The event object, metadata, then 126 arrays.
      changed("nesting-128-levels", [](json& e) { e["metadata"] = {{"deep", nested(126)}}; }),

      {"not-an-object", R"([{"id":"r"}])"},
      {"a-string", R"("hello")"},
      changed("missing-id", [](json& e) { e.erase("id"); }),
      changed("missing-tenant", [](json& e) { e.erase("tenant"); }),
      changed("missing-reply-to", [](json& e) { e.erase("reply_to"); }),
      changed("missing-messages", [](json& e) { e.erase("messages"); }),
      changed("id-empty", [](json& e) { e["id"] = ""; }),
      changed("id-257", [](json& e) { e["id"] = std::string(257, 'i'); }),
      changed("id-number", [](json& e) { e["id"] = 42; }),
      changed("id-null", [](json& e) { e["id"] = nullptr; }),
      changed("tenant-empty", [](json& e) { e["tenant"] = ""; }),
      changed("tenant-space", [](json& e) { e["tenant"] = "acme corp"; }),
      changed("tenant-trailing-newline", [](json& e) { e["tenant"] = "acme\n"; }),
      changed("tenant-non-ascii", [=](json& e) { e["tenant"] = "acm" + e_acute; }),
      changed("tenant-slash", [](json& e) { e["tenant"] = "acme/eu"; }),
      changed("tenant-129", [](json& e) { e["tenant"] = std::string(129, 't'); }),
      changed("tenant-number", [](json& e) { e["tenant"] = 7; }),
      changed("reply-to-empty", [](json& e) { e["reply_to"] = ""; }),
      changed("reply-to-dot", [](json& e) { e["reply_to"] = "."; }),
      changed("reply-to-dot-dot", [](json& e) { e["reply_to"] = ".."; }),
      changed("reply-to-colon", [](json& e) { e["reply_to"] = "acme:replies"; }),
      changed("reply-to-trailing-newline", [](json& e) { e["reply_to"] = "replies\n"; }),
      changed("reply-to-250", [](json& e) { e["reply_to"] = std::string(250, 'r'); }),
      changed("reply-to-array", [](json& e) { e["reply_to"] = json::array({"a"}); }),
      changed("messages-empty", [](json& e) { e["messages"] = json::array(); }),
      changed("messages-object", [](json& e) { e["messages"] = {{"role", "user"}}; }),
      changed("messages-10001", [](json& e) { e["messages"] = messages_of(10001); }),
      changed("message-string", [](json& e) { e["messages"][0] = "hello"; }),
      changed("message-no-role", [](json& e) { e["messages"][0].erase("role"); }),
      changed("message-role-bot", [](json& e) { e["messages"][0]["role"] = "bot"; }),
      changed("message-role-number", [](json& e) { e["messages"][0]["role"] = 1; }),
      changed("message-no-content", [](json& e) { e["messages"][0].erase("content"); }),
      changed("message-content-null", [](json& e) { e["messages"][0]["content"] = nullptr; }),
      changed("assistant-content-null-no-tool-calls",
              [](json& e) { e["messages"][0] = {{"role", "assistant"}, {"content", nullptr}}; }),
      changed("assistant-content-null-empty-tool-calls",
              [](json& e) { e["messages"][0] = {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", json::array()}}; }),
      changed("user-content-null-with-tool-calls",
              [](json& e) { e["messages"][0] = {{"role", "user"}, {"content", nullptr}, {"tool_calls", {{{"id", "c"}}}}}; }),
      changed("message-content-number", [](json& e) { e["messages"][0]["content"] = 5; }),
      changed("message-content-object", [](json& e) { e["messages"][0]["content"] = {{"type", "text"}}; }),
      changed("content-part-string", [](json& e) { e["messages"][0]["content"] = {"text"}; }),
      changed("content-part-no-type", [](json& e) { e["messages"][0]["content"] = {{{"text", "x"}}}; }),
      changed("content-part-type-number", [](json& e) { e["messages"][0]["content"] = {{{"type", 1}}}; }),
      changed("model-empty", [](json& e) { e["model"] = ""; }),
      changed("model-number", [](json& e) { e["model"] = 4; }),
      changed("preference-fast", [](json& e) { e["preference"] = "fast"; }),
      changed("preference-number", [](json& e) { e["preference"] = 1; }),
      changed("max-tokens-zero", [](json& e) { e["max_tokens"] = 0; }),
      changed("max-tokens-negative", [](json& e) { e["max_tokens"] = -1; }),
      changed("max-tokens-over", [](json& e) { e["max_tokens"] = 1000001; }),
      changed("max-tokens-fraction", [](json& e) { e["max_tokens"] = 10.5; }),
      changed("max-tokens-string", [](json& e) { e["max_tokens"] = "5"; }),
      changed("max-tokens-boolean", [](json& e) { e["max_tokens"] = true; }),
      changed("max-tokens-huge", [](json& e) { e["max_tokens"] = 1e19; }),
      changed("temperature-negative", [](json& e) { e["temperature"] = -0.1; }),
      changed("temperature-over", [](json& e) { e["temperature"] = 2.1; }),
      changed("temperature-string", [](json& e) { e["temperature"] = "0.2"; }),
      changed("stream-string", [](json& e) { e["stream"] = "true"; }),
      changed("stream-number", [](json& e) { e["stream"] = 1; }),
      changed("priority-urgent", [](json& e) { e["priority"] = "urgent"; }),
      changed("cache-fuzzy", [](json& e) { e["cache"] = "fuzzy"; }),
      changed("cache-boolean", [](json& e) { e["cache"] = false; }),
      changed("metadata-string", [](json& e) { e["metadata"] = "x"; }),
      changed("metadata-array", [](json& e) { e["metadata"] = json::array(); }),
      changed("cascade-string", [](json& e) { e["cascade"] = "yes"; }),
      changed("response-format-string", [](json& e) { e["response_format"] = "json_object"; }),
      changed("response-format-no-type", [](json& e) { e["response_format"] = json::object(); }),
      changed("response-format-type-number", [](json& e) { e["response_format"] = {{"type", 5}}; }),
      changed("tool-choice-sometimes", [](json& e) { e["tool_choice"] = "sometimes"; }),
      changed("tool-choice-number", [](json& e) { e["tool_choice"] = 5; }),
      changed("tool-choice-object-no-type", [](json& e) { e["tool_choice"] = {{"function", {{"name", "f"}}}}; }),

      beyond(changed("model-not-in-catalog", [](json& e) { e["model"] = "gpt-9"; }),
             "model ids of the deployment's catalog"),
      beyond(changed("id-256-characters-512-bytes", [=](json& e) {
               std::string id;
               for (int i = 0; i < 256; ++i) id += e_acute;
               e["id"] = id;
             }),
             "id length in bytes"),
      beyond(changed("metadata-over-16-kib", [](json& e) { e["metadata"] = {{"note", std::string(17000, 'm')}}; }),
             "metadata's serialized size"),
      beyond(changed("nesting-129-levels", [](json& e) { e["metadata"] = {{"deep", nested(127)}}; }),
             "nesting depth"),
      beyond(changed("event-over-1-mib", [](json& e) { e["messages"][0]["content"] = std::string(1100000, 'p'); }),
             "event size"),
      later(changed("metadata-residency-number", [](json& e) { e["metadata"] = {{"residency", 5}}; }),
            "metadata.residency, checked by the router"),
      later(changed("metadata-residency-empty", [](json& e) { e["metadata"] = {{"residency", ""}}; }),
            "metadata.residency, checked by the router"),
  };
  return cases;
}

std::vector<InputCase> cancel_cases() {
  const json minimal = {{"id", "req-1"}, {"tenant", "acme"}};
  const auto c = [&](std::string name, const std::function<void(json&)>& change) {
    return changed(std::move(name), change, minimal);
  };
  std::string long_id;
  for (int i = 0; i < 200; ++i) long_id += "\xC3\xA9";
  return {
      {"written", make_cancel_event(CancelEvent{.id = "req-1", .tenant = "acme", .reason = "timeout", .ts_ms = kTs})},
      {"minimal", minimal.dump()},
      c("nulls",
        [](json& e) {
          for (const char* key : {"v", "type", "reason", "ts_ms"}) e[key] = nullptr;
        }),
      c("unknown-fields-later-version",
        [](json& e) {
          e["v"] = 3;
          e["x_vendor"] = true;
        }),
      c("empty-reason-zero-time",
        [](json& e) {
          e["reason"] = "";
          e["ts_ms"] = 0;
        }),
      c("largest-time", [](json& e) { e["ts_ms"] = std::numeric_limits<std::int64_t>::max(); }),

      {"not-an-object", R"(["req-1"])"},
      c("missing-id", [](json& e) { e.erase("id"); }),
      c("missing-tenant", [](json& e) { e.erase("tenant"); }),
      c("id-null", [](json& e) { e["id"] = nullptr; }),
      c("id-empty", [](json& e) { e["id"] = ""; }),
      c("id-257", [](json& e) { e["id"] = std::string(257, 'i'); }),
      c("id-number", [](json& e) { e["id"] = 1; }),
      c("tenant-space", [](json& e) { e["tenant"] = "acme corp"; }),
      c("tenant-129", [](json& e) { e["tenant"] = std::string(129, 't'); }),
      c("type-prompt", [](json& e) { e["type"] = "prompt"; }),
      c("type-number", [](json& e) { e["type"] = 1; }),
      c("reason-number", [](json& e) { e["reason"] = 5; }),
      c("ts-negative", [](json& e) { e["ts_ms"] = -1; }),
      c("ts-string", [](json& e) { e["ts_ms"] = "1"; }),
      c("ts-fraction", [](json& e) { e["ts_ms"] = 1.5; }),
      c("ts-too-large", [](json& e) { e["ts_ms"] = std::numeric_limits<std::uint64_t>::max(); }),
      c("v-zero", [](json& e) { e["v"] = 0; }),
      c("v-string", [](json& e) { e["v"] = "1"; }),

      beyond(c("ts-written-as-float", [](json& e) { e["ts_ms"] = 1767225600123.0; }), "integers written as floats"),
      beyond(c("v-written-as-float", [](json& e) { e["v"] = 1.0; }), "integers written as floats"),
      beyond(c("id-256-characters-400-bytes", [&](json& e) { e["id"] = long_id; }), "id length in bytes"),
      beyond(c("over-64-kib", [](json& e) { e["reason"] = std::string(70000, 'r'); }), "event size"),
  };
}

json verdict_line(const InputCase& c, bool accepted, const std::string& error) {
  json line = {{"name", c.name}, {"payload", c.payload}, {"accepted", accepted}, {"error", error}};
  if (!c.schema_cannot_say.empty()) line["schema_cannot_say"] = c.schema_cannot_say;
  if (!c.checked_later.empty()) line["checked_later"] = c.checked_later;
  return line;
}

void write_prompt_events(SampleWriter& w, const ModelCatalog& catalog) {
  const ModelExists model_exists = [&](std::string_view id) { return catalog.find(id) != nullptr; };
  const PromptLimits limits;

  // What to_json writes: the defaults filled in, every option when set.
  for (const auto& [variant, event] : {std::pair{"defaults", minimal_prompt()}, {"every-option", full_prompt()}}) {
    auto parsed = parse_prompt_event(event.dump(), limits, model_exists);
    if (!parsed) throw std::runtime_error("prompt " + std::string(variant) + ": " + parsed.error().error.message);
    w.produced("prompt", variant, to_json(*parsed).dump());
  }

  std::vector<json> lines;
  for (const auto& c : prompt_cases()) {
    auto parsed = parse_prompt_event(c.payload, limits, model_exists);
    lines.push_back(verdict_line(c, parsed.has_value(), parsed ? "" : parsed.error().error.message));
  }
  w.cases("prompt", lines);

  lines.clear();
  for (const auto& c : cancel_cases()) {
    auto parsed = parse_cancel_event(c.payload);
    lines.push_back(verdict_line(c, parsed.has_value(), parsed ? "" : parsed.error().message));
  }
  w.cases("cancel", lines);
}

void write_vocabulary(SampleWriter& w) {
  w.vocabulary({{"error_codes", names_of<ErrorCode>()},
                {"cache_outcomes", names_of<CacheOutcome>()},
                {"preferences", names_of<Preference>()},
                {"priorities", names_of<Priority>()},
                {"cache_modes", names_of<CacheMode>()},
                {"tiers", names_of<Tier>()},
                {"budget_periods", names_of<BudgetPeriod>()}});
}

}  // namespace
}  // namespace cascade

int main(int argc, char** argv) {
  using namespace cascade;
  if (argc != 2) {
    std::fprintf(stderr, "usage: schema_samples <output directory>\n");
    return 2;
  }
  auto catalog = ModelCatalog::load(CatalogConfig{});  // the built-in config/models.yaml
  if (!catalog) {
    std::fprintf(stderr, "schema_samples: %s\n", catalog.error().message.c_str());
    return 1;
  }
  SampleWriter w{std::filesystem::path(argv[1])};
  write_reply_events(w);
  write_cost_events(w);
  write_cancel_events(w);
  write_quality_events(w);
  write_budget_records(w);
  write_dead_letters(w);
  write_prompt_events(w, *catalog);
  write_vocabulary(w);
  return 0;
}
