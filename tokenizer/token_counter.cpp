#include <array>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <system_error>

#include "tokenizer/tokenizer.h"

namespace cascade {
namespace {

// OpenAI's accounting for chat input (the cookbook's "How to count tokens
// with tiktoken", for gpt-3.5-turbo-0613 and every later chat model).
constexpr std::size_t kTokensPerMessage = 3;
constexpr std::size_t kTokensPerName = 1;
constexpr std::size_t kReplyPriming = 3;

bool starts_with_any(std::string_view s, std::initializer_list<std::string_view> prefixes) {
  for (auto p : prefixes) {
    if (s.starts_with(p)) return true;
  }
  return false;
}

}  // namespace

std::optional<TokenEncoding> openai_encoding_for(std::string_view model) {
  // "openai/gpt-4o" (OpenRouter-style names) and "ft:gpt-4o-mini:org::id".
  if (const auto slash = model.rfind('/'); slash != std::string_view::npos) model.remove_prefix(slash + 1);
  if (model.starts_with("ft:")) model.remove_prefix(3);
  if (starts_with_any(model, {"gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "gpt-oss"})) {
    return TokenEncoding::o200k_base;
  }
  if (starts_with_any(model, {"gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada-002"})) {
    return TokenEncoding::cl100k_base;
  }
  return std::nullopt;
}

std::string_view to_string(TokenCountMethod method) {
  switch (method) {
    case TokenCountMethod::exact: return "exact";
    case TokenCountMethod::estimated: return "estimated";
    case TokenCountMethod::bytes: return "bytes";
  }
  return "bytes";
}

Result<std::shared_ptr<const TokenCounter>> TokenCounter::load(const std::filesystem::path& dir) {
  auto counter = std::shared_ptr<TokenCounter>(new TokenCounter());
  for (TokenEncoding encoding : {TokenEncoding::cl100k_base, TokenEncoding::o200k_base}) {
    const auto file = dir / rank_file_name(encoding);
    std::error_code ec;
    if (dir.empty() || !std::filesystem::exists(file, ec)) continue;
    auto tokenizer = BpeTokenizer::load(encoding, file);
    if (!tokenizer) return std::unexpected(tokenizer.error());
    (encoding == TokenEncoding::cl100k_base ? counter->cl100k_ : counter->o200k_) = std::move(*tokenizer);
  }
  if (!counter->cl100k_ && !counter->o200k_) {
    spdlog::warn("tokenizer: no rank files in '{}' (cl100k_base.tiktoken, o200k_base.tiktoken); token counts "
                 "are estimated as UTF-8 bytes / 4 (docs/tokenizer.md tells where to get the files)",
                 dir.string());
  }
  return std::shared_ptr<const TokenCounter>(std::move(counter));
}

std::filesystem::path TokenCounter::find_directory(const std::filesystem::path& configured) {
  std::vector<std::filesystem::path> candidates;
  if (!configured.empty()) candidates.push_back(configured);
  candidates.insert(candidates.end(),
                    {"data/tokenizers", "/usr/share/cascade/tokenizers", "../shared/data/tokenizers"});
  for (const auto& dir : candidates) {
    std::error_code ec;
    for (TokenEncoding e : {TokenEncoding::o200k_base, TokenEncoding::cl100k_base}) {
      if (std::filesystem::exists(dir / rank_file_name(e), ec)) return dir;
    }
  }
  return {};
}

std::shared_ptr<const TokenCounter> TokenCounter::bytes_only() {
  return std::shared_ptr<const TokenCounter>(new TokenCounter());
}

const BpeTokenizer* TokenCounter::tokenizer(TokenEncoding encoding) const {
  return encoding == TokenEncoding::cl100k_base ? cl100k_.get() : o200k_.get();
}

const BpeTokenizer* TokenCounter::pick(std::string_view model, TokenCountMethod& method) const {
  if (auto encoding = openai_encoding_for(model)) {
    if (const BpeTokenizer* own = tokenizer(*encoding)) {
      method = TokenCountMethod::exact;
      return own;
    }
  }
  // Other vendors' tokenizers are not public as rank files (or not BPE at
  // all): o200k_base is the estimate, the closest of the two to today's
  // large-vocabulary tokenizers.
  method = TokenCountMethod::estimated;
  if (o200k_) return o200k_.get();
  if (cl100k_) return cl100k_.get();
  method = TokenCountMethod::bytes;
  return nullptr;
}

TokenCount TokenCounter::count_text(std::string_view model, std::string_view text) const {
  TokenCount out;
  if (const BpeTokenizer* t = pick(model, out.method)) {
    out.tokens = t->count(text);
  } else {
    out.tokens = (text.size() + 3) / 4;
  }
  return out;
}

TokenCount TokenCounter::count_messages(std::string_view model, const nlohmann::json& messages) const {
  TokenCount out;
  const BpeTokenizer* t = pick(model, out.method);
  auto count = [&](std::string_view text) -> std::size_t { return t ? t->count(text) : (text.size() + 3) / 4; };
  if (!messages.is_array()) return out;
  for (const auto& message : messages) {
    if (!message.is_object()) continue;
    out.tokens += kTokensPerMessage;
    for (const auto& [key, value] : message.items()) {
      if (value.is_string()) {
        out.tokens += count(value.get_ref<const std::string&>());
        if (key == "name") out.tokens += kTokensPerName;
      } else if (key == "content" && value.is_array()) {
        for (const auto& part : value) {
          if (part.is_object() && part.value("type", "") == "text" && part.contains("text") &&
              part["text"].is_string()) {
            out.tokens += count(part["text"].get_ref<const std::string&>());
          }
        }
      } else if (!value.is_null()) {
        out.tokens += count(value.dump());  // tool_calls and the like: their JSON text
      }
    }
  }
  out.tokens += kReplyPriming;
  return out;
}

Result<std::shared_ptr<const TokenCounter>> load_token_counter(const TokenizerConfig& config) {
  const std::filesystem::path dir = TokenCounter::find_directory(config.dir);
  if (!config.dir.empty() && dir != std::filesystem::path(config.dir)) {
    return fail(ErrorCode::invalid_request, "config 'tokenizer.dir': " + config.dir +
                                                " holds neither o200k_base.tiktoken nor cl100k_base.tiktoken");
  }
  if (dir.empty()) {
    spdlog::warn("tokenizer: no tiktoken rank files found (tokenizer.dir, ./data/tokenizers, "
                 "/usr/share/cascade/tokenizers, ../shared/data/tokenizers): tokens are estimated as bytes / 4");
    return TokenCounter::bytes_only();
  }
  auto counter = TokenCounter::load(dir);
  if (!counter) return std::unexpected(counter.error());
  spdlog::info("tokenizer: rank files from {}", dir.string());
  return counter;
}

}  // namespace cascade
