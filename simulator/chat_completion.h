#pragma once
// The simulator's protocol logic, free of any networking: validating an OpenAI
// chat completion request, composing the deterministic answer, and formatting
// the exact bytes OpenAI sends. Kept apart from the Asio/Beast server so the
// heavy headers compile in one translation unit only.
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

namespace cascade::simulator {

// An HTTP error response in OpenAI's shape: {"error":{message,type,param,code}}.
struct ApiError {
  int status = 400;
  std::string body;
};

ApiError invalid_request(int status, std::string_view message, std::string_view param = {},
                         std::string_view code = {});

// What the simulator needs from a chat completion request. max_tokens == 0 means
// "no limit"; the request's own max_completion_tokens wins over max_tokens.
struct ChatCompletionRequest {
  std::string model;
  std::string last_user_text;
  bool stream = false;
  bool include_usage = false;
  std::int64_t max_tokens = 0;
  std::int64_t prompt_tokens = 0;
};

std::expected<ChatCompletionRequest, ApiError> parse_chat_completion_request(std::string_view body);

// The answer text and where each streamed piece ends in it; piece i is
// text[piece_ends[i-1], piece_ends[i]). Reused between requests of one
// connection, so composing an answer does not allocate once warmed up.
struct ComposedAnswer {
  std::string text;
  std::vector<std::uint32_t> piece_ends;

  std::string_view piece(std::size_t index) const {
    std::uint32_t begin = index == 0 ? 0 : piece_ends[index - 1];
    return std::string_view(text).substr(begin, piece_ends[index] - begin);
  }
};

void compose_answer(std::string_view model, std::string_view last_user_text, int chunks,
                    ComposedAnswer& answer);

// A given text split at word boundaries into at most `chunks` pieces (fewer
// when it has fewer words; never padded), concatenating to exactly `text`.
void compose_fixed_answer(std::string_view text, int chunks, ComposedAnswer& answer);

struct TokenUsage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
};

// A function call the answer makes instead of text (OpenAI `tool_calls`,
// one call). Its arguments, JSON text, are what ComposedAnswer holds.
struct SimulatedToolCall {
  std::string id;    // "call_..."
  std::string name;  // the function's name
};

// Appends the data of one SSE event at a time; the caller frames each as its
// own HTTP chunk. The per-request prefix is built once so each content event
// costs one escape of the piece and a few appends.
class StreamEventFormatter {
 public:
  void begin(std::uint64_t completion_number, std::int64_t created, std::string_view model,
             bool include_usage);
  void append_role_event(std::string& out) const;
  void append_content_event(std::string& out, std::string_view piece) const;
  // A tool call's first event, as OpenAI sends it: the role, content null,
  // and the call's id, type and name with empty arguments.
  void append_tool_call_role_event(std::string& out, const SimulatedToolCall& call) const;
  // A piece of the call's arguments.
  void append_tool_arguments_event(std::string& out, std::string_view piece) const;
  // finish_reason: "stop", "length" or "tool_calls".
  void append_finish_event(std::string& out, std::string_view finish_reason) const;
  void append_usage_event(std::string& out, TokenUsage usage) const;
  static void append_done_event(std::string& out);

 private:
  void append_choice_event(std::string& out, std::string_view delta_json,
                           std::string_view finish_reason_json) const;

  std::string prefix_;  // {"id":...,"system_fingerprint":"fp_simulated","choices":
  bool include_usage_ = false;
};

// A complete non-streaming `chat.completion` object. With a tool call,
// `content` is the call's arguments and the message's content is null.
void append_completion_json(std::string& out, std::uint64_t completion_number, std::int64_t created,
                            std::string_view model, std::string_view content,
                            std::string_view finish_reason, TokenUsage usage,
                            const SimulatedToolCall* tool_call = nullptr);

std::string models_list_json(std::int64_t created);

void append_json_escaped(std::string& out, std::string_view text);

}  // namespace cascade::simulator
