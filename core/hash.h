#pragma once

// The two non-cryptographic hash pieces Cascade builds its hashed features,
// seeded shuffles and experiment buckets from. Stored model files (router
// weights, embedder vectors) depend on these exact bits: never change them.
// Pure functions; safe from any thread.

#include <cstdint>
#include <string_view>

namespace cascade {

inline constexpr std::uint64_t kFnv1aOffsetBasis = 0xCBF29CE484222325ull;
inline constexpr std::uint64_t kFnv1aPrime = 0x100000001B3ull;
// 2^64 / golden ratio: splitmix64's increment.
inline constexpr std::uint64_t kGoldenGamma = 0x9E3779B97F4A7C15ull;

// FNV-1a over `bytes`, continuing from `hash` (start from kFnv1aOffsetBasis,
// or the basis xor a seed for a seeded family).
[[nodiscard]] inline constexpr std::uint64_t fnv1a_extend(std::uint64_t hash, std::string_view bytes) {
  for (const char c : bytes) {
    hash ^= static_cast<unsigned char>(c);
    hash *= kFnv1aPrime;
  }
  return hash;
}

// splitmix64's finalizer: spreads every input bit over the output (FNV's low
// bits alone are poorly mixed).
[[nodiscard]] inline constexpr std::uint64_t splitmix64_finalize(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A seeded generator whose sequence is the same with every standard library
// (std::shuffle and the distributions are not specified bit for bit).
class SplitMix64 {
 public:
  explicit constexpr SplitMix64(std::uint64_t seed) : state_(seed) {}
  constexpr std::uint64_t next() { return splitmix64_finalize(state_ += kGoldenGamma); }
  constexpr std::uint64_t below(std::uint64_t n) { return next() % n; }

 private:
  std::uint64_t state_;
};

}  // namespace cascade
