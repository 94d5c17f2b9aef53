#pragma once
// Token counting as OpenAI bills it: byte-pair encoding over tiktoken's rank
// files (cl100k_base: gpt-4, gpt-3.5; o200k_base: gpt-4o, gpt-4.1, o-series),
// read from disk, no network. Used before a call (budget pre-check, context
// window, the router's length feature) and to charge a stream the provider
// cut before it reported usage. Other providers' models are estimated with
// o200k_base (a documented estimate, marked as such). docs/tokenizer.md.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/tokenizer_config.h"
#include "core/result.h"

namespace cascade {

enum class TokenEncoding { cl100k_base, o200k_base };

std::string_view to_string(TokenEncoding encoding);
std::optional<TokenEncoding> parse_token_encoding(std::string_view name);
// "o200k_base.tiktoken"
std::string rank_file_name(TokenEncoding encoding);

// One BPE encoding. Immutable once loaded; thread-safe.
class BpeTokenizer {
 public:
  // Reads a tiktoken rank file: one "<base64 token> <rank>" per line.
  [[nodiscard]] static Result<std::unique_ptr<const BpeTokenizer>> load(TokenEncoding encoding,
                                                          const std::filesystem::path& rank_file);
  ~BpeTokenizer();

  TokenEncoding encoding() const;
  std::size_t vocabulary_size() const;
  // Tokens of `text`, with special-token strings ("<|endoftext|>") treated as
  // ordinary text, as tiktoken's encode_ordinary (and the APIs, for user
  // content) do. Any bytes are accepted; invalid UTF-8 is encoded byte-wise.
  std::vector<std::uint32_t> encode(std::string_view text) const;
  std::size_t count(std::string_view text) const;
  // Concatenated bytes of the tokens; unknown ids are skipped.
  std::string decode(std::span<const std::uint32_t> tokens) const;

  struct Impl;

 private:
  explicit BpeTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The encoding of an OpenAI model name (upstream name, e.g. "gpt-4o-mini",
// "gpt-4-turbo", "o3-mini", "gpt-3.5-turbo"); nullopt for other vendors' models.
std::optional<TokenEncoding> openai_encoding_for(std::string_view model);

// How a count was obtained.
enum class TokenCountMethod {
  exact,      // the model's own encoding
  estimated,  // another vendor's model: o200k_base count (see docs/tokenizer.md)
  bytes,      // no rank files loaded: UTF-8 bytes / 4, rounded up
};
std::string_view to_string(TokenCountMethod method);

struct TokenCount {
  std::size_t tokens = 0;
  TokenCountMethod method = TokenCountMethod::exact;
};

// The encodings a process uses, loaded once, shared by every thread.
class TokenCounter {
 public:
  // Loads both rank files from `dir`. A missing file leaves that encoding out
  // (counts fall back as documented); a corrupt one is an error.
  [[nodiscard]] static Result<std::shared_ptr<const TokenCounter>> load(const std::filesystem::path& dir);
  // The first of these holding a rank file: `configured` (when not empty),
  // ./data/tokenizers, /usr/share/cascade/tokenizers, ../shared/data/tokenizers.
  // An empty directory path when none does.
  static std::filesystem::path find_directory(const std::filesystem::path& configured);
  // No rank files: every count is the bytes estimate.
  static std::shared_ptr<const TokenCounter> bytes_only();

  // The encoding loaded for `encoding`, or null.
  const BpeTokenizer* tokenizer(TokenEncoding encoding) const;

  TokenCount count_text(std::string_view model, std::string_view text) const;
  // Input tokens of an OpenAI-format chat request as the chat completions API
  // bills them: 3 per message, the tokens of its role, its text content (string
  // or the text parts of a content array) and of its name (+1), plus 3 that
  // prime the reply. Tool calls and tool definitions are counted as their JSON
  // text (an estimate); images are not counted.
  TokenCount count_messages(std::string_view model, const nlohmann::json& messages) const;

 private:
  TokenCounter() = default;
  const BpeTokenizer* pick(std::string_view model, TokenCountMethod& method) const;
  std::unique_ptr<const BpeTokenizer> cl100k_;
  std::unique_ptr<const BpeTokenizer> o200k_;
};

// The process's counter from the configuration (tokenizer.dir): the rank
// files of the configured directory (an error when it has none), else of the
// first usual place that has them, else bytes / 4 with a warning.
[[nodiscard]] Result<std::shared_ptr<const TokenCounter>> load_token_counter(const TokenizerConfig& config);

}  // namespace cascade
