/* Dropout kernels for one element type T (see dropout.c). */

/* x (n) -> y (n) = kept ? x / (1 - p) : 0, mask (ceil(n / 8) bytes) */
void
FN(nr_dropout_forward)(T *y, uint8_t *mask, const T *x, int64_t n, double p, uint64_t seed,
                       uint64_t offset)
{
    const uint64_t threshold = nr_dropout_threshold(p);
    const T scale = p < 1 ? (T)(1.0 / (1.0 - p)) : (T)0;
    const int64_t nblocks = (n + NR_DROPOUT_BLOCK - 1) / NR_DROPOUT_BLOCK;
    int nt = nr_threads_for((size_t)n * (2 * sizeof(T) + 4));
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        uint8_t bytes[8];
        nr_dropout_mask_block(bytes, (uint64_t)blk, threshold, seed, offset);
        nr_dropout_store_block(mask, bytes, (uint64_t)blk, n);
        const int64_t first = blk * NR_DROPOUT_BLOCK;
        const int64_t count = NR_MIN((int64_t)NR_DROPOUT_BLOCK, n - first);
#pragma omp simd
        for (int64_t e = 0; e < count; e++) {
            const int kept = (bytes[e >> 3] >> (e & 7)) & 1;
            y[first + e] = kept ? x[first + e] * scale : (T)0;
        }
    }
}

/* dy (n), mask -> dx (n) = kept ? dy / (1 - p) : 0 */
void
FN(nr_dropout_backward)(T *dx, const T *dy, const uint8_t *mask, int64_t n, double p)
{
    const T scale = p < 1 ? (T)(1.0 / (1.0 - p)) : (T)0;
    int nt = nr_threads_for((size_t)n * 2 * sizeof(T));
#pragma omp parallel for simd num_threads(nt) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const int kept = (mask[i >> 3] >> (i & 7)) & 1;
        dx[i] = kept ? dy[i] * scale : (T)0;
    }
}
