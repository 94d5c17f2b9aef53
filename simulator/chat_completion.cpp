#include "simulator/chat_completion.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>

namespace cascade::simulator {
namespace {

using nlohmann::json;

// Long prompts are echoed only in part: the answer must stay short and its
// piece count must not depend on the prompt length more than necessary.
constexpr std::size_t kQuestionEchoBytes = 80;
constexpr int kMaxChunks = 1'000'000;

// Padding words; they keep saying that no real model answered.
constexpr std::string_view kFillerWords[] = {"No",      "real",  "model",     "was",  "called;",
                                             "this",    "text",  "comes",     "from", "the",
                                             "Cascade", "local", "simulator."};

void append_number(std::string& out, std::int64_t value) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, end);
}

std::string_view json_type_name(const json& value) {
  switch (value.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::string:
      return "a string";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return "a decimal";
    default:
      return "an unsupported value";
  }
}

ApiError invalid_type(std::string_view param, std::string_view expected, const json& got) {
  std::string message = "Invalid type for '";
  message.append(param).append("': expected ").append(expected).append(", but got ");
  message.append(json_type_name(got)).append(" instead.");
  return invalid_request(400, message, param, "invalid_type");
}

// Text of a message's content: a string, or the text parts of a content array.
std::expected<std::string_view, ApiError> content_text(const json& content, std::size_t index,
                                                       std::string& joined) {
  if (content.is_null()) return std::string_view{};
  if (content.is_string()) return std::string_view(content.get_ref<const std::string&>());
  std::string param = "messages[" + std::to_string(index) + "].content";
  if (!content.is_array())
    return std::unexpected(invalid_type(param, "a string or array", content));
  joined.clear();
  for (std::size_t part_index = 0; part_index < content.size(); ++part_index) {
    const json& part = content[part_index];
    std::string part_param = param + "[" + std::to_string(part_index) + "]";
    if (!part.is_object()) return std::unexpected(invalid_type(part_param, "an object", part));
    auto type = part.find("type");
    if (type == part.end() || !type->is_string()) {
      return std::unexpected(
          invalid_request(400, "Missing required parameter: '" + part_param + ".type'.",
                          part_param + ".type", "missing_required_parameter"));
    }
    if (type->get_ref<const std::string&>() != "text") continue;
    auto text = part.find("text");
    if (text == part.end() || !text->is_string()) {
      return std::unexpected(
          invalid_request(400, "Missing required parameter: '" + part_param + ".text'.",
                          part_param + ".text", "missing_required_parameter"));
    }
    if (!joined.empty()) joined.push_back('\n');
    joined += text->get_ref<const std::string&>();
  }
  return std::string_view(joined);
}

std::expected<std::int64_t, ApiError> optional_positive_integer(const json& request,
                                                                std::string_view name) {
  auto found = request.find(name);
  if (found == request.end() || found->is_null()) return 0;
  if (!found->is_number_integer()) return std::unexpected(invalid_type(name, "an integer", *found));
  // nlohmann stores every non-negative integer as unsigned.
  std::int64_t value =
      found->is_number_unsigned()
          ? static_cast<std::int64_t>(std::min<std::uint64_t>(
                found->get<std::uint64_t>(), std::numeric_limits<std::int64_t>::max()))
          : found->get<std::int64_t>();
  if (value < 1) {
    std::string message = "Invalid '";
    message.append(name).append("': integer below minimum value. Expected a value >= 1, but got ");
    message.append(std::to_string(value)).append(" instead.");
    return std::unexpected(invalid_request(400, message, name, "integer_below_min_value"));
  }
  return value;
}

bool is_ascii_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Appends the question with whitespace runs collapsed, cut after about
// kQuestionEchoBytes at a UTF-8 character boundary.
void append_question_echo(std::string& out, std::string_view question) {
  std::size_t echoed = 0;
  bool pending_space = false;
  for (unsigned char c : question) {
    if (is_ascii_space(c)) {
      pending_space = echoed > 0;
      continue;
    }
    bool continues_character = (c & 0xC0) == 0x80;
    if (!continues_character && echoed + (pending_space ? 1 : 0) >= kQuestionEchoBytes) {
      out.append("...");
      return;
    }
    if (pending_space) {
      out.push_back(' ');
      ++echoed;
      pending_space = false;
    }
    out.push_back(static_cast<char>(c));
    ++echoed;
  }
}

void append_usage_json(std::string& out, TokenUsage usage) {
  out.append(R"({"prompt_tokens":)");
  append_number(out, usage.prompt_tokens);
  out.append(R"(,"completion_tokens":)");
  append_number(out, usage.completion_tokens);
  out.append(R"(,"total_tokens":)");
  append_number(out, usage.prompt_tokens + usage.completion_tokens);
  out.append(R"(,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},)"
             R"("completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,)"
             R"("accepted_prediction_tokens":0,"rejected_prediction_tokens":0}})");
}

}  // namespace

void append_json_escaped(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::size_t plain_start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.data() + plain_start, i - plain_start);
    plain_start = i + 1;
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      case '\b':
        out.append("\\b");
        break;
      case '\f':
        out.append("\\f");
        break;
      default:
        out.append("\\u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xF]);
    }
  }
  out.append(text.data() + plain_start, text.size() - plain_start);
}

ApiError invalid_request(int status, std::string_view message, std::string_view param,
                         std::string_view code) {
  // Ordered to read like OpenAI's own error bodies.
  nlohmann::ordered_json error = {
      {"message", message},
      {"type", "invalid_request_error"},
      {"param", param.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(param)},
      {"code", code.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(code)}};
  return ApiError{status, nlohmann::ordered_json{{"error", std::move(error)}}.dump()};
}

std::expected<ChatCompletionRequest, ApiError> parse_chat_completion_request(
    std::string_view body) {
  json request = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded()) {
    return std::unexpected(invalid_request(
        400,
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
        "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
        "sent was not valid JSON.)"));
  }
  if (!request.is_object()) {
    return std::unexpected(invalid_request(400, "The request body must be a JSON object."));
  }

  ChatCompletionRequest parsed;
  auto model = request.find("model");
  if (model == request.end() || !model->is_string() ||
      model->get_ref<const std::string&>().empty()) {
    return std::unexpected(invalid_request(400, "you must provide a model parameter"));
  }
  parsed.model = model->get<std::string>();

  auto messages = request.find("messages");
  if (messages == request.end() || messages->is_null()) {
    return std::unexpected(invalid_request(400, "Missing required parameter: 'messages'.",
                                           "messages", "missing_required_parameter"));
  }
  if (!messages->is_array()) {
    return std::unexpected(invalid_type("messages", "an array of objects", *messages));
  }
  if (messages->empty()) {
    return std::unexpected(invalid_request(
        400,
        "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an "
        "empty array instead.",
        "messages", "empty_array"));
  }
  std::string joined_parts;
  for (std::size_t index = 0; index < messages->size(); ++index) {
    const json& message = (*messages)[index];
    std::string param = "messages[" + std::to_string(index) + "]";
    if (!message.is_object()) return std::unexpected(invalid_type(param, "an object", message));
    auto role = message.find("role");
    if (role == message.end() || !role->is_string()) {
      return std::unexpected(invalid_request(400,
                                             "Missing required parameter: '" + param + ".role'.",
                                             param + ".role", "missing_required_parameter"));
    }
    std::string_view text;
    if (auto content = message.find("content"); content != message.end()) {
      auto extracted = content_text(*content, index, joined_parts);
      if (!extracted) return std::unexpected(std::move(extracted.error()));
      text = *extracted;
    }
    // A rough, deterministic stand-in for a tokenizer: ~4 bytes per token
    // plus the per-message framing OpenAI also charges for.
    parsed.prompt_tokens += static_cast<std::int64_t>((text.size() + 3) / 4) + 4;
    if (role->get_ref<const std::string&>() == "user") parsed.last_user_text.assign(text);
  }

  if (auto stream = request.find("stream"); stream != request.end() && !stream->is_null()) {
    if (!stream->is_boolean()) return std::unexpected(invalid_type("stream", "a boolean", *stream));
    parsed.stream = stream->get<bool>();
  }
  if (auto options = request.find("stream_options");
      options != request.end() && !options->is_null()) {
    if (!parsed.stream) {
      return std::unexpected(invalid_request(
          400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
          "stream_options"));
    }
    if (!options->is_object()) {
      return std::unexpected(invalid_type("stream_options", "an object", *options));
    }
    if (auto include = options->find("include_usage");
        include != options->end() && !include->is_null()) {
      if (!include->is_boolean()) {
        return std::unexpected(invalid_type("stream_options.include_usage", "a boolean", *include));
      }
      parsed.include_usage = include->get<bool>();
    }
  }

  auto max_tokens = optional_positive_integer(request, "max_tokens");
  if (!max_tokens) return std::unexpected(std::move(max_tokens.error()));
  auto max_completion_tokens = optional_positive_integer(request, "max_completion_tokens");
  if (!max_completion_tokens) return std::unexpected(std::move(max_completion_tokens.error()));
  parsed.max_tokens = *max_completion_tokens != 0 ? *max_completion_tokens : *max_tokens;

  if (auto temperature = request.find("temperature");
      temperature != request.end() && !temperature->is_null()) {
    if (!temperature->is_number()) {
      return std::unexpected(invalid_type("temperature", "a decimal", *temperature));
    }
    double value = temperature->get<double>();
    if (value < 0.0 || value > 2.0) {
      return std::unexpected(invalid_request(
          400, "Invalid 'temperature': decimal out of range. Expected a value between 0 and 2.",
          "temperature", "decimal_out_of_range"));
    }
  }
  return parsed;
}

// The answer is split at word boundaries (a piece keeps its trailing space):
// too few words are padded with filler words, too many are grouped evenly, so
// the pieces always number exactly `chunks` and concatenate to the answer.
void compose_answer(std::string_view model, std::string_view last_user_text, int chunks,
                    ComposedAnswer& answer) {
  const std::size_t piece_count = static_cast<std::size_t>(std::clamp(chunks, 1, kMaxChunks));
  std::string& text = answer.text;
  text.clear();
  text.append("[simulated ").append(model).append("] ");
  bool has_question = std::any_of(last_user_text.begin(), last_user_text.end(),
                                  [](unsigned char c) { return !is_ascii_space(c); });
  if (has_question) {
    text.append("This is a simulated answer to: \"");
    append_question_echo(text, last_user_text);
    text.append("\".");
  } else {
    text.append("This is a simulated answer to an empty question.");
  }

  std::vector<std::uint32_t>& word_ends = answer.piece_ends;
  word_ends.clear();
  for (std::size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] == ' ') word_ends.push_back(static_cast<std::uint32_t>(i + 1));
  }
  word_ends.push_back(static_cast<std::uint32_t>(text.size()));

  for (std::size_t filler = 0; word_ends.size() < piece_count; ++filler) {
    text.push_back(' ');
    word_ends.back() = static_cast<std::uint32_t>(text.size());
    text.append(kFillerWords[filler % std::size(kFillerWords)]);
    word_ends.push_back(static_cast<std::uint32_t>(text.size()));
  }

  const std::size_t word_count = word_ends.size();
  if (word_count > piece_count) {
    // In place: the word a piece ends with never lies before the piece's index.
    for (std::size_t piece = 0; piece < piece_count; ++piece) {
      word_ends[piece] = word_ends[(piece + 1) * word_count / piece_count - 1];
    }
    word_ends.resize(piece_count);
  }
}

void compose_fixed_answer(std::string_view text, int chunks, ComposedAnswer& answer) {
  const std::size_t piece_count = static_cast<std::size_t>(std::clamp(chunks, 1, kMaxChunks));
  answer.text.assign(text);
  std::vector<std::uint32_t>& ends = answer.piece_ends;
  ends.clear();
  for (std::size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] == ' ') ends.push_back(static_cast<std::uint32_t>(i + 1));
  }
  ends.push_back(static_cast<std::uint32_t>(text.size()));
  const std::size_t word_count = ends.size();
  if (word_count > piece_count) {
    for (std::size_t piece = 0; piece < piece_count; ++piece) {
      ends[piece] = ends[(piece + 1) * word_count / piece_count - 1];
    }
    ends.resize(piece_count);
  }
}

void StreamEventFormatter::begin(std::uint64_t completion_number, std::int64_t created,
                                 std::string_view model, bool include_usage) {
  include_usage_ = include_usage;
  prefix_.clear();
  prefix_.append(R"({"id":"chatcmpl-)");
  append_number(prefix_, static_cast<std::int64_t>(completion_number));
  prefix_.append(R"(","object":"chat.completion.chunk","created":)");
  append_number(prefix_, created);
  prefix_.append(R"(,"model":")");
  append_json_escaped(prefix_, model);
  prefix_.append(R"(","system_fingerprint":"fp_simulated","choices":)");
}

void StreamEventFormatter::append_choice_event(std::string& out, std::string_view delta_json,
                                               std::string_view finish_reason_json) const {
  out.append("data: ").append(prefix_).append(R"([{"index":0,"delta":)").append(delta_json);
  out.append(R"(,"logprobs":null,"finish_reason":)").append(finish_reason_json).append("}]");
  // OpenAI: with include_usage, every chunk but the last carries "usage":null.
  if (include_usage_) out.append(R"(,"usage":null)");
  out.append("}\n\n");
}

void StreamEventFormatter::append_role_event(std::string& out) const {
  append_choice_event(out, R"({"role":"assistant","content":"","refusal":null})", "null");
}

void StreamEventFormatter::append_content_event(std::string& out, std::string_view piece) const {
  out.append("data: ").append(prefix_).append(R"([{"index":0,"delta":{"content":")");
  append_json_escaped(out, piece);
  out.append(R"("},"logprobs":null,"finish_reason":null}])");
  if (include_usage_) out.append(R"(,"usage":null)");
  out.append("}\n\n");
}

void StreamEventFormatter::append_tool_call_role_event(std::string& out, const SimulatedToolCall& call) const {
  std::string delta = R"({"role":"assistant","content":null,"tool_calls":[{"index":0,"id":")";
  append_json_escaped(delta, call.id);
  delta.append(R"(","type":"function","function":{"name":")");
  append_json_escaped(delta, call.name);
  delta.append(R"(","arguments":""}}],"refusal":null})");
  append_choice_event(out, delta, "null");
}

void StreamEventFormatter::append_tool_arguments_event(std::string& out, std::string_view piece) const {
  out.append("data: ").append(prefix_).append(R"([{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":")");
  append_json_escaped(out, piece);
  out.append(R"("}}]},"logprobs":null,"finish_reason":null}])");
  if (include_usage_) out.append(R"(,"usage":null)");
  out.append("}\n\n");
}

void StreamEventFormatter::append_finish_event(std::string& out,
                                               std::string_view finish_reason) const {
  std::string_view quoted = finish_reason == "length"       ? R"("length")"
                            : finish_reason == "tool_calls" ? R"("tool_calls")"
                                                            : R"("stop")";
  append_choice_event(out, "{}", quoted);
}

void StreamEventFormatter::append_usage_event(std::string& out, TokenUsage usage) const {
  out.append("data: ").append(prefix_).append(R"([],"usage":)");
  append_usage_json(out, usage);
  out.append("}\n\n");
}

void StreamEventFormatter::append_done_event(std::string& out) { out.append("data: [DONE]\n\n"); }

void append_completion_json(std::string& out, std::uint64_t completion_number, std::int64_t created,
                            std::string_view model, std::string_view content,
                            std::string_view finish_reason, TokenUsage usage,
                            const SimulatedToolCall* tool_call) {
  out.append(R"({"id":"chatcmpl-)");
  append_number(out, static_cast<std::int64_t>(completion_number));
  out.append(R"(","object":"chat.completion","created":)");
  append_number(out, created);
  out.append(R"(,"model":")");
  append_json_escaped(out, model);
  if (tool_call) {
    out.append(R"(","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":")");
    append_json_escaped(out, tool_call->id);
    out.append(R"(","type":"function","function":{"name":")");
    append_json_escaped(out, tool_call->name);
    out.append(R"(","arguments":")");
    append_json_escaped(out, content);
    out.append(R"("}}],"refusal":null},"logprobs":null,"finish_reason":")");
  } else {
    out.append(R"(","choices":[{"index":0,"message":{"role":"assistant","content":")");
    append_json_escaped(out, content);
    out.append(R"(","refusal":null},"logprobs":null,"finish_reason":")");
  }
  append_json_escaped(out, finish_reason);
  out.append(R"("}],"usage":)");
  append_usage_json(out, usage);
  out.append(R"(,"system_fingerprint":"fp_simulated"})");
}

std::string models_list_json(std::int64_t created) {
  static constexpr std::string_view kModelIds[] = {"gpt-4o-mini", "gpt-4.1-mini", "gpt-4o",
                                                   "simulated-small", "simulated-large"};
  json data = json::array();
  for (std::string_view id : kModelIds) {
    data.push_back(
        {{"id", id}, {"object", "model"}, {"created", created}, {"owned_by", "cascade-simulator"}});
  }
  return json{{"object", "list"}, {"data", std::move(data)}}.dump();
}

}  // namespace cascade::simulator
