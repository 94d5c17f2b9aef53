#pragma once
// The two HTTP APIs the gateway speaks, as pure translation: a request body
// (OpenAI's chat completions, Anthropic's Messages) into a prompt event, and
// a request's reply events into that API's response, whole or as SSE bytes.
// No I/O here: the HTTP session (http_session.cpp) owns sockets and timing.
// Internal to the gateway; tested as specification in tests/gateway/.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "catalog/catalog.h"
#include "events/events.h"
#include "gateway/api_error.h"

namespace cascade::gateway {

enum class ApiKind : std::uint8_t { openai, anthropic };

// What translation needs besides the body.
struct RequestContext {
  std::string id;        // the prompt event's id (the gateway draws it)
  std::string tenant;    // from the API key, never from the body
  std::string reply_to;  // the gateway's reply topic
  const ModelCatalog* catalog = nullptr;
  // A request header by lower-case name; "" when absent.
  std::function<std::string_view(std::string_view name)> header;
};

struct TranslatedRequest {
  PromptEvent event;
  bool include_usage = false;   // OpenAI: stream_options.include_usage
  std::string requested_model;  // as the client wrote it ("auto", a catalog id)
};

using Translation = std::expected<TranslatedRequest, ApiError>;

// POST /v1/chat/completions. Unknown and unsupported parameters are a 400
// naming the parameter; an unknown model is a 404.
Translation translate_openai_chat(const nlohmann::json& body, const RequestContext& context);
// POST /v1/messages.
Translation translate_anthropic_messages(const nlohmann::json& body, const RequestContext& context);

// What the first reply event says of where the answer comes from.
struct StreamHead {
  std::string model;  // catalog id (the requested one until a chunk names it)
};

// Renders one request's answer in its API's shape. One per request; keeps
// what the stream needs between calls (whether a block is open, ...).
class ResponseRenderer {
 public:
  virtual ~ResponseRenderer() = default;
  // SSE bytes: the stream's opening, one content delta, the end (tool calls,
  // finish reason, usage, the terminator), an error after the opening.
  virtual std::string stream_open(const StreamHead& head) = 0;
  virtual std::string stream_delta(std::string_view text) = 0;
  virtual std::string stream_close(const FinalReply& final) = 0;
  virtual std::string stream_error(const ApiError& error) = 0;
  // The non-streamed JSON body of an answer.
  virtual std::string whole(const FinalReply& final) = 0;
};

std::unique_ptr<ResponseRenderer> make_renderer(ApiKind api, const TranslatedRequest& request,
                                                std::int64_t created_unix_s);

// An error's JSON body in the API's shape.
std::string error_body(ApiKind api, const ApiError& error);

// The catalog as OpenAI's model list (GET /v1/models), "auto" first.
std::string models_list(const ModelCatalog& catalog, std::int64_t created_unix_s);
// One model (GET /v1/models/{id}); nullopt when unknown.
std::optional<std::string> model_object(const ModelCatalog& catalog, std::string_view id, std::int64_t created_unix_s);

// ---- shared by both APIs' translations ----

// A value quoted in an error message, cut to 64 bytes.
std::string describe_value(const nlohmann::json& value);

// The start of a translation: a request with the context's id, tenant and
// reply topic, and Cascade's options read (and removed) from `body`.
std::expected<TranslatedRequest, ApiError> begin_translation(nlohmann::json& body, const RequestContext& context);

// The end: `event`, the prompt event the worker will read, checked by the
// prompt event's own rules (a 400 naming the field) and the catalog (a 404
// in `api`'s words), then parsed into out.event with the options kept.
Translation finish_translation(ApiKind api, nlohmann::json event, TranslatedRequest out, const RequestContext& context);

// Cascade's own options, shared by both APIs: `preference`, `cascade`,
// `cache`, `priority` and `tags` as body fields (which win) or as
// x-cascade-* headers. Removes the body fields it read from `body`.
std::optional<ApiError> read_cascade_options(nlohmann::json& body, const RequestContext& context, PromptEvent& event);

}  // namespace cascade::gateway
