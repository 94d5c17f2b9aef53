#pragma once
// Private to cache/: the distance kernel of SemanticIndex. hnswlib 0.6's
// headers define non-inline functions, so they may be included by one
// translation unit only (semantic_index.cpp); this header keeps them out.
#include <cstddef>

namespace cascade {

// 1 - dot(a, b) over float vectors of *dimension (a const std::size_t*), the
// signature of hnswlib::DISTFUNC<float>. The kernel is picked once for the CPU
// it runs on (AVX-512, AVX2+FMA or portable), so one binary is fast on new
// machines and still runs on old ones.
using InnerProductKernel = float (*)(const void* a, const void* b, const void* dimension);
InnerProductKernel inner_product_distance();
const char* inner_product_kernel_name();

}  // namespace cascade
