/* Dropout kernels for one element type T (see dropout.c). */

/* out[k] = bit k of w ? in[k] * scale : 0 for 32 elements, in vectors of the tier's width.
 * The selection is a bitwise AND of the product with an all-ones or all-zeros lane (lane bit
 * tested against w, no variable shifts: SSE2 has none), so every load is unconditional (a
 * masked load was slower) and a dropped element is exactly 0 even for NaN or Inf. */
static inline __attribute__((always_inline)) void
FN(nr_dropout_apply32)(T *restrict out, const T *restrict in, uint32_t w, T scale)
{
#if defined(NR_TYPED_F32)
    typedef uint32_t U;
    typedef int32_t S;
#else
    typedef uint64_t U;
    typedef int64_t S;
#endif
    typedef T tv __attribute__((vector_size(NR_VEC_BYTES)));
    typedef U uv __attribute__((vector_size(NR_VEC_BYTES)));
    typedef S sv __attribute__((vector_size(NR_VEC_BYTES)));
    enum { L = NR_VEC_BYTES / sizeof(T) };
    uv bit;
    for (int l = 0; l < L; l++) {
        bit[l] = (U)1 << l;
    }
    for (int v = 0; v < 32 / L; v++) {
        tv x;
        memcpy(&x, in + v * L, sizeof x);
        x *= scale;
        const sv keep = (((uv){0} + (U)(w >> (v * L))) & bit) != 0; /* lanes of -1 or 0 */
        const uv y = (uv)x & (uv)keep;
        memcpy(out + v * L, &y, sizeof y);
    }
}

/* A whole block's apply, piece by piece (nr_dropout_slice_fn): y, x at its first element. */
struct FN(nr_dropout_pending) {
    T *y;
    const T *x;
    const uint64_t *words;
    T scale;
};

static inline __attribute__((always_inline)) void
FN(nr_dropout_apply_pieces)(void *ctx, int q0, int q1)
{
    const struct FN(nr_dropout_pending) *b = ctx;
    for (int q = q0; b->y && q < q1; q++) { /* none pending before a range's first block */
        const uint32_t w = (uint32_t)(b->words[q / 2] >> (32 * (q % 2)));
        /* the same piece of the next block, applied during the block after this one's
         * rounds: its lines asked for now arrive while the rounds compute */
        for (int o = 0; o < (int)(32 * sizeof(T)); o += 64) {
            __builtin_prefetch((const char *)(b->x + NR_DROPOUT_BLOCK + 32 * q) + o, 0, 3);
            __builtin_prefetch((char *)(b->y + NR_DROPOUT_BLOCK + 32 * q) + o, 1, 3);
        }
        FN(nr_dropout_apply32)(b->y + 32 * q, b->x + 32 * q, w, b->scale);
    }
}

/* Elements [i0, i1) of the forward; i0 is a multiple of the block size. A whole block is
 * applied during the next block's rounds (the last one after them), from its words kept in
 * the other half of `words`. */
static void
FN(nr_dropout_forward_range)(T *restrict y, uint8_t *restrict mask, const T *restrict x,
                             int64_t n, uint64_t threshold, T scale, uint64_t seed,
                             uint64_t offset, int64_t i0, int64_t i1)
{
    uint64_t words[2][NR_DROPOUT_WORDS];
    struct FN(nr_dropout_pending) pend = {NULL, NULL, NULL, scale};
    for (int64_t blk = i0 / NR_DROPOUT_BLOCK; blk * NR_DROPOUT_BLOCK < i1; blk++) {
        uint64_t *cur = words[blk % 2];
        nr_dropout_mask_block(cur, (uint64_t)blk, threshold, seed, offset,
                              FN(nr_dropout_apply_pieces), &pend);
        nr_dropout_store_block(mask, cur, (uint64_t)blk, n);
        const int64_t first = blk * NR_DROPOUT_BLOCK;
        if (first + NR_DROPOUT_BLOCK <= n) {
            pend = (struct FN(nr_dropout_pending)){y + first, x + first, cur, scale};
        }
        else { /* the last block, partial */
            pend.y = NULL;
            for (int64_t e = 0; first + e < n; e++) {
                const T v = x[first + e] * scale;
                y[first + e] = ((cur[e / 64] >> (e % 64)) & 1u) ? v : (T)0;
            }
        }
    }
    FN(nr_dropout_apply_pieces)(&pend, 0, NR_DROPOUT_BLOCK / 32);
}

/* x (n) -> y (n) = kept ? x / (1 - p) : 0, mask (ceil(n / 8) bytes) */
void
FN(nr_dropout_forward)(T *y, uint8_t *mask, const T *x, int64_t n, double p, uint64_t seed,
                       uint64_t offset)
{
    const uint64_t threshold = nr_dropout_threshold(p);
    const T scale = p < 1 ? (T)(1.0 / (1.0 - p)) : (T)0;
    int nt = nr_threads_for((size_t)n * (2 * sizeof(T) + 4));
    NR_SPLIT(
        nt, n, NR_DROPOUT_BLOCK,
        FN(nr_dropout_forward_range)(y, mask, x, n, threshold, scale, seed, offset, i0, i1));
}

/* Elements [i0, i1) of the backward; i0 is a multiple of 32. */
static void
FN(nr_dropout_backward_range)(T *restrict dx, const T *restrict dy,
                              const uint8_t *restrict mask, int64_t n, T scale, int64_t i0,
                              int64_t i1)
{
    int64_t i = i0;
    for (; i + 32 <= i1; i += 32) {
        const uint32_t w = nr_dropout_load_word(mask, i / 32, n);
        for (int o = 0; o < (int)(32 * sizeof(T)); o += 64) { /* as the forward's apply */
            __builtin_prefetch((const char *)(dy + i + NR_DROPOUT_BLOCK) + o, 0, 3);
            __builtin_prefetch((char *)(dx + i + NR_DROPOUT_BLOCK) + o, 1, 3);
        }
        FN(nr_dropout_apply32)(dx + i, dy + i, w, scale);
    }
    if (i < i1) {
        const uint32_t w = nr_dropout_load_word(mask, i / 32, n);
        for (int k = 0; i + k < i1; k++) {
            const T v = dy[i + k] * scale;
            dx[i + k] = ((w >> k) & 1u) ? v : (T)0;
        }
    }
}

/* dy (n), mask -> dx (n) = kept ? dy / (1 - p) : 0 */
void
FN(nr_dropout_backward)(T *dx, const T *dy, const uint8_t *mask, int64_t n, double p)
{
    const T scale = p < 1 ? (T)(1.0 / (1.0 - p)) : (T)0;
    int nt = nr_threads_for((size_t)n * 2 * sizeof(T));
    NR_SPLIT(nt, n, 32, FN(nr_dropout_backward_range)(dx, dy, mask, n, scale, i0, i1));
}
