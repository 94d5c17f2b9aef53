#include <openssl/evp.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "embeddings/embeddings.h"

namespace cascade {

namespace {

// Length of the whitespace sequence starting at text[i], 0 if none.
std::size_t whitespace_at(std::string_view text, std::size_t i) {
  const auto c = static_cast<unsigned char>(text[i]);
  if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') return 1;
  if (c == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0xA0) return 2;
  if (c == 0xE3 && i + 2 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x80 &&
      static_cast<unsigned char>(text[i + 2]) == 0x80) {
    return 3;
  }
  return 0;
}

}  // namespace

std::string normalize_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (std::size_t i = 0; i < text.size();) {
    if (const std::size_t ws = whitespace_at(text, i); ws > 0) {
      pending_space = !out.empty();
      i += ws;
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    char c = text[i++];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    out.push_back(c);
  }
  return out;
}

ContentHash content_hash(std::string_view embedder_tag, std::string_view normalized_text) {
  ContentHash hash{};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  // The NUL separates tag and text: no (tag, text) pair can collide with another by shifting bytes.
  const char separator = '\0';
  unsigned int length = 0;
  if (ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
      EVP_DigestUpdate(ctx, embedder_tag.data(), embedder_tag.size()) == 1 &&
      EVP_DigestUpdate(ctx, &separator, 1) == 1 &&
      EVP_DigestUpdate(ctx, normalized_text.data(), normalized_text.size()) == 1) {
    EVP_DigestFinal_ex(ctx, hash.data(), &length);
  }
  EVP_MD_CTX_free(ctx);
  return hash;
}

std::string to_hex(const ContentHash& hash) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(hash.size() * 2, '0');
  for (std::size_t i = 0; i < hash.size(); ++i) {
    out[2 * i] = kDigits[hash[i] >> 4];
    out[2 * i + 1] = kDigits[hash[i] & 0x0F];
  }
  return out;
}

bool normalize_unit(std::span<float> vector) {
  double sum = 0;
  for (const float x : vector) sum += static_cast<double>(x) * x;
  if (!(sum > 0) || !std::isfinite(sum)) return false;
  const auto scale = static_cast<float>(1.0 / std::sqrt(sum));
  for (float& x : vector) x *= scale;
  return true;
}

std::string encode_embedding(std::span<const float> vector) {
  static_assert(sizeof(float) == 4 && std::numeric_limits<float>::is_iec559);
  std::string out(vector.size() * 4, '\0');
  for (std::size_t i = 0; i < vector.size(); ++i) {
    auto bits = std::bit_cast<std::uint32_t>(vector[i]);
    for (int b = 0; b < 4; ++b) out[4 * i + b] = static_cast<char>((bits >> (8 * b)) & 0xFF);
  }
  return out;
}

std::optional<Embedding> decode_embedding(std::string_view bytes, std::size_t dimension) {
  if (bytes.size() % 4 != 0) return std::nullopt;
  if (dimension != 0 && bytes.size() != dimension * 4) return std::nullopt;
  Embedding out(bytes.size() / 4);
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::uint32_t bits = 0;
    for (int b = 0; b < 4; ++b) bits |= std::uint32_t{static_cast<unsigned char>(bytes[4 * i + b])} << (8 * b);
    out[i] = std::bit_cast<float>(bits);
  }
  return out;
}

}  // namespace cascade
