/* The memory roofline the benchmarks compare kernels against: a plain copy of n floats,
 * loads and stores as the kernels do them (no non-temporal stores, no memcpy), split
 * among `nthreads` threads as the kernels split their work. */
#include "nr_common.h"

/* src (n) -> dst (n) */
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void
nr_copy_f32(float *dst, const float *src, int64_t n, int nthreads)
{
#pragma omp parallel for simd num_threads(nthreads) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        dst[i] = src[i];
    }
}
