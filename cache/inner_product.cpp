#include "cache/inner_product.h"

#include <immintrin.h>

namespace cascade {

namespace {

float distance_portable(const void* pa, const void* pb, const void* pdim) {
  const auto* a = static_cast<const float*>(pa);
  const auto* b = static_cast<const float*>(pb);
  const std::size_t n = *static_cast<const std::size_t*>(pdim);
  // Four partial sums let the compiler keep several multiply-adds in flight.
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return 1.0f - ((s0 + s1) + (s2 + s3));
}

__attribute__((target("avx2,fma"))) float distance_avx2(const void* pa, const void* pb, const void* pdim) {
  const auto* a = static_cast<const float*>(pa);
  const auto* b = static_cast<const float*>(pb);
  const std::size_t n = *static_cast<const std::size_t*>(pdim);
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  const __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  sum = _mm_hadd_ps(sum, sum);
  sum = _mm_hadd_ps(sum, sum);
  float total = _mm_cvtss_f32(sum);
  for (; i < n; ++i) total += a[i] * b[i];
  return 1.0f - total;
}

__attribute__((target("avx512f"))) float distance_avx512(const void* pa, const void* pb, const void* pdim) {
  const auto* a = static_cast<const float*>(pa);
  const auto* b = static_cast<const float*>(pb);
  const std::size_t n = *static_cast<const std::size_t*>(pdim);
  __m512 acc0 = _mm512_setzero_ps();
  __m512 acc1 = _mm512_setzero_ps();
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
  }
  for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
  // A plain store and sum: GCC 12's _mm512_reduce_add_ps trips -Wuninitialized.
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, _mm512_add_ps(acc0, acc1));
  float total = 0;
  for (const float lane : lanes) total += lane;
  for (; i < n; ++i) total += a[i] * b[i];
  return 1.0f - total;
}

enum class Kernel { portable, avx2, avx512 };

Kernel detect() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return Kernel::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Kernel::avx2;
  return Kernel::portable;
}

Kernel kernel() {
  static const Kernel k = detect();
  return k;
}

}  // namespace

InnerProductKernel inner_product_distance() {
  switch (kernel()) {
    case Kernel::avx512: return distance_avx512;
    case Kernel::avx2: return distance_avx2;
    case Kernel::portable: return distance_portable;
  }
  return distance_portable;
}

const char* inner_product_kernel_name() {
  switch (kernel()) {
    case Kernel::avx512: return "avx512";
    case Kernel::avx2: return "avx2+fma";
    case Kernel::portable: return "portable";
  }
  return "portable";
}

}  // namespace cascade
