/* The memory roofline the benchmarks compare kernels against: a plain copy of n floats,
 * loads and stores as the kernels do them (no non-temporal stores, no memcpy), split
 * among `nthreads` threads as the kernels split their work, at the tier's vector width. */
#include "nr_common.h"

/* dst and src are not restrict, and the loop is `omp simd`: vectorized by gcc and clang
 * alike, and not turned into a memcpy call (no compiler-specific attribute needed). */
static void
nr_copy_range(float *dst, const float *src, int64_t i0, int64_t i1)
{
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
        dst[i] = src[i];
    }
}

/* src (n) -> dst (n) */
void
NR_TIERED(nr_copy_f32)(float *dst, const float *src, int64_t n, int nthreads)
{
    const int nt = nthreads; /* the name NR_SPLIT's pragma uses */
    NR_SPLIT(nt, n, 16, nr_copy_range(dst, src, i0, i1));
}
