#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <queue>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "tokenizer/tokenizer.h"

namespace cascade {
namespace {

constexpr std::uint32_t kNoRank = std::numeric_limits<std::uint32_t>::max();

// tiktoken's pre-tokenization patterns (tiktoken_ext/openai_public.py).
// PCRE2 with UTF + UCP gives them the Unicode meaning of \p, \s and (?i) that
// tiktoken's regex engine gives them.
constexpr std::string_view kCl100kPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kO200kPattern =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Base64 (standard alphabet, '=' padding) as used by the rank files.
std::optional<std::string> decode_base64(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  std::string out;
  out.reserve(in.size() * 3 / 4);
  std::uint32_t buffer = 0;
  int bits = 0;
  for (char c : in) {
    const int v = value(c);
    if (v < 0) return std::nullopt;
    buffer = (buffer << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  return out;
}

struct TransparentHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

}  // namespace

struct BpeTokenizer::Impl {
  TokenEncoding encoding = TokenEncoding::o200k_base;
  std::unordered_map<std::string, std::uint32_t, TransparentHash, std::equal_to<>> ranks;
  std::vector<std::string> tokens_by_rank;
  pcre2_code* pattern = nullptr;

  ~Impl() {
    if (pattern != nullptr) pcre2_code_free(pattern);
  }

  std::uint32_t rank_of(std::string_view bytes) const {
    const auto it = ranks.find(bytes);
    return it == ranks.end() ? kNoRank : it->second;
  }

  // tiktoken's byte_pair_merge: repeatedly merge the adjacent pair whose
  // joined bytes have the lowest rank (leftmost on ties) until no joined pair
  // is a token. A min-heap with lazy invalidation keeps it O(n log n), so a
  // long piece without spaces (base64 data, a run of one character) costs no
  // more than its length, where the straightforward version is quadratic.
  void merge(std::string_view piece, std::vector<std::uint32_t>& out) const {
    const std::size_t n = piece.size();
    if (n == 1) {
      out.push_back(rank_of(piece));
      return;
    }
    // Parts as a linked list of start offsets; part i spans [start[i], start[next[i]]).
    std::vector<std::size_t> start(n + 1), next(n + 1), prev(n + 1);
    std::vector<std::uint32_t> version(n + 1, 0);
    for (std::size_t i = 0; i <= n; ++i) {
      start[i] = i;
      next[i] = i + 1;
      prev[i] = i == 0 ? n + 1 : i - 1;
    }
    struct Candidate {
      std::uint32_t rank;
      std::size_t left;  // index of the left part (its start offset orders ties)
      std::uint32_t version;
      bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
    auto pair_rank = [&](std::size_t left) -> std::uint32_t {
      const std::size_t right = next[left];
      if (right >= n) return kNoRank;
      return rank_of(piece.substr(start[left], start[next[right]] - start[left]));
    };
    for (std::size_t i = 0; i + 1 < n; ++i) {
      const std::uint32_t r = pair_rank(i);
      if (r != kNoRank) heap.push({r, i, 0});
    }
    while (!heap.empty()) {
      const Candidate c = heap.top();
      heap.pop();
      if (c.version != version[c.left]) continue;  // stale: a neighbour changed, or the part is gone
      // Merge c.left with its right neighbour.
      const std::size_t right = next[c.left];
      next[c.left] = next[right];
      if (next[right] <= n) prev[next[right]] = c.left;
      ++version[c.left];
      version[right] = std::numeric_limits<std::uint32_t>::max();  // gone
      if (const std::uint32_t r = pair_rank(c.left); r != kNoRank) heap.push({r, c.left, version[c.left]});
      if (c.left != 0) {
        const std::size_t left = prev[c.left];
        ++version[left];
        if (const std::uint32_t r = pair_rank(left); r != kNoRank) heap.push({r, left, version[left]});
      }
    }
    for (std::size_t i = 0; i < n; i = next[i]) {
      out.push_back(rank_of(piece.substr(start[i], start[next[i]] - start[i])));
    }
  }

  void encode_piece(std::string_view piece, std::vector<std::uint32_t>& out) const {
    if (piece.empty()) return;
    if (const std::uint32_t r = rank_of(piece); r != kNoRank) {
      out.push_back(r);
      return;
    }
    merge(piece, out);
  }

  void encode(std::string_view text, std::vector<std::uint32_t>& out) const {
    pcre2_match_data* match = pcre2_match_data_create(1, nullptr);
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    std::size_t offset = 0;
    while (offset < text.size()) {
      const int rc = pcre2_jit_match(pattern, subject, text.size(), offset, 0, match, nullptr);
      if (rc < 0) {
        // No further match (only possible over invalid UTF-8): the rest is
        // encoded byte-wise, as BPE over raw bytes always can.
        encode_piece(text.substr(offset), out);
        break;
      }
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
      const std::size_t begin = ovector[0], end = ovector[1];
      if (begin > offset) encode_piece(text.substr(offset, begin - offset), out);  // skipped invalid bytes
      if (end == begin) {
        // An empty match cannot happen with these patterns; never loop on one.
        encode_piece(text.substr(begin, 1), out);
        offset = begin + 1;
        continue;
      }
      encode_piece(text.substr(begin, end - begin), out);
      offset = end;
    }
    pcre2_match_data_free(match);
  }
};

std::string_view to_string(TokenEncoding encoding) {
  return encoding == TokenEncoding::cl100k_base ? "cl100k_base" : "o200k_base";
}

std::optional<TokenEncoding> parse_token_encoding(std::string_view name) {
  if (name == "cl100k_base") return TokenEncoding::cl100k_base;
  if (name == "o200k_base") return TokenEncoding::o200k_base;
  return std::nullopt;
}

std::string rank_file_name(TokenEncoding encoding) { return std::string(to_string(encoding)) + ".tiktoken"; }

Result<std::unique_ptr<const BpeTokenizer>> BpeTokenizer::load(TokenEncoding encoding,
                                                               const std::filesystem::path& rank_file) {
  std::ifstream in(rank_file, std::ios::binary);
  if (!in) return fail(ErrorCode::invalid_request, "tokenizer rank file not readable: " + rank_file.string());
  auto impl = std::make_unique<Impl>();
  impl->encoding = encoding;
  impl->ranks.reserve(encoding == TokenEncoding::o200k_base ? 200'000 : 100'000);
  std::string line;
  std::size_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const auto space = line.find(' ');
    auto bad = [&] {
      return fail(ErrorCode::invalid_request,
                  rank_file.string() + ":" + std::to_string(line_number) + ": not \"<base64 token> <rank>\"");
    };
    if (space == std::string::npos) return bad();
    auto token = decode_base64(std::string_view(line).substr(0, space));
    if (!token || token->empty()) return bad();
    std::uint64_t rank = 0;
    const std::string_view digits = std::string_view(line).substr(space + 1);
    if (digits.empty() || digits.size() > 9) return bad();
    for (char c : digits) {
      if (c < '0' || c > '9') return bad();
      rank = rank * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (impl->tokens_by_rank.size() <= rank) impl->tokens_by_rank.resize(rank + 1);
    impl->tokens_by_rank[rank] = *token;
    if (!impl->ranks.emplace(std::move(*token), static_cast<std::uint32_t>(rank)).second) {
      return fail(ErrorCode::invalid_request,
                  rank_file.string() + ":" + std::to_string(line_number) + ": token listed twice");
    }
  }
  // Byte-level BPE needs every single byte as a token, or some input could
  // not be encoded.
  for (int b = 0; b < 256; ++b) {
    if (!impl->ranks.contains(std::string(1, static_cast<char>(b)))) {
      return fail(ErrorCode::invalid_request, rank_file.string() + ": byte " + std::to_string(b) + " has no rank");
    }
  }
  const std::string_view pattern =
      encoding == TokenEncoding::cl100k_base ? kCl100kPattern : kO200kPattern;
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  impl->pattern = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &error_offset, nullptr);
  if (impl->pattern == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    throw std::logic_error(std::string("tokenizer pattern does not compile: ") + reinterpret_cast<char*>(message));
  }
  if (pcre2_jit_compile(impl->pattern, PCRE2_JIT_COMPLETE) != 0) {
    throw std::logic_error("tokenizer pattern: PCRE2 JIT unavailable");
  }
  return std::unique_ptr<const BpeTokenizer>(new BpeTokenizer(std::move(impl)));
}

BpeTokenizer::BpeTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpeTokenizer::~BpeTokenizer() = default;

TokenEncoding BpeTokenizer::encoding() const { return impl_->encoding; }
std::size_t BpeTokenizer::vocabulary_size() const { return impl_->ranks.size(); }

std::vector<std::uint32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<std::uint32_t> out;
  out.reserve(text.size() / 3 + 1);
  impl_->encode(text, out);
  return out;
}

std::size_t BpeTokenizer::count(std::string_view text) const { return encode(text).size(); }

std::string BpeTokenizer::decode(std::span<const std::uint32_t> tokens) const {
  std::string out;
  for (auto t : tokens) {
    if (t < impl_->tokens_by_rank.size()) out += impl_->tokens_by_rank[t];
  }
  return out;
}

}  // namespace cascade
