/* Shared by the kernel family files (each compiled once per CPU tier, see nr_tier.h):
 * typed-body instantiation and OpenMP helpers. */
#ifndef NR_COMMON_H
#define NR_COMMON_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "nr_dispatch.h"
#include "nr_omp.h"
#include "nr_tier.h"

/* The tier's own names for the kernels: declared with the type of the kernel they implement,
 * so a definition that drifts from its contract in nr_kernels.h does not compile. */
#define NR_DECLARE_TIERED(name, unused) __typeof__(name) NR_TIERED(name);
NR_DISPATCHED_KERNELS(NR_DECLARE_TIERED, ~)
/* kernels that one family calls in another (SyncBatchNorm's forward ends in BatchNorm's
 * apply), within the same tier: declared under their tier names, not in the table */
NR_DECLARE_TIERED(nr_batchnorm_apply_f32, ~)
NR_DECLARE_TIERED(nr_batchnorm_apply_f64, ~)
#undef NR_DECLARE_TIERED

/* a b + c of T rounded once where the tier has FMA (x86's avx2 and avx512: one instruction),
 * else a b + c; for kernels whose loops are bound by their additions */
#ifdef __FMA__
#include <immintrin.h>
#define NR_FMA1(a, b, c) NR_FMA_FN((a), (b), (c))
#else
#define NR_FMA1(a, b, c) ((a) * (b) + (c))
#endif

#define NR_PASTE2(a, b) a##_##b
#define NR_PASTE(a, b) NR_PASTE2(a, b)
/* FN(nr_relu_forward) -> nr_relu_forward_f32_<tier> or nr_relu_forward_f64_<tier> */
#define FN(name) NR_TIERED(NR_PASTE(name, SFX))

/* Runs BODY on `nt` threads, or on the calling thread alone with no OpenMP region when
 * nt <= 1, so small calls pay no fork/join. BODY sees its thread's index TID, the team's size
 * TEAM and [i0, i1), its share of [0, n): contiguous ranges, in thread order, whose bounds are
 * multiples of `align` (except n); a share may be empty. */
#define NR_TEAM(nt, n, align, TID, TEAM, BODY) NR_TEAM_AT(nt, n, align, 0, TID, TEAM, BODY)

/* NR_TEAM with the bounds at multiples of `align` past -phase (0 <= phase < align): with
 * phase = nr_line_phase(p) the shares of the columns of rows that start at p begin on cache
 * lines of p, so no two threads write the same line of a row (they did in every row of an
 * array 16 bytes past a line, as NumPy's are: BatchNorm1d's forward on 128 x 1024 float32
 * into such an output took 50-54 us on 2 threads, 40-41 us with the split on its lines). */
#define NR_TEAM_AT(nt, n, align, phase, TID, TEAM, BODY)                                       \
    do {                                                                                       \
        const int64_t nr_n_ = (n), nr_al_ = (align), nr_ph_ = (phase);                         \
        const int nr_nt_ = (nt);                                                               \
        if (nr_nt_ <= 1) {                                                                     \
            const int TID = 0, TEAM = 1;                                                       \
            const int64_t i0 = 0, i1 = nr_n_;                                                  \
            (void)TID;                                                                         \
            (void)TEAM;                                                                        \
            BODY;                                                                              \
        }                                                                                      \
        else {                                                                                 \
            _Pragma("omp parallel num_threads(nr_nt_)")                                        \
            {                                                                                  \
                const int TID = omp_get_thread_num(), TEAM = omp_get_num_threads();            \
                const int64_t i0 = nr_team_bound(nr_n_, TID, TEAM, nr_al_, nr_ph_);            \
                const int64_t i1 = nr_team_bound(nr_n_, TID + 1, TEAM, nr_al_, nr_ph_);        \
                (void)TID;                                                                     \
                BODY;                                                                          \
            }                                                                                  \
        }                                                                                      \
    } while (0)

/* The start of share t of [0, n) among m (n at t == m): n t / m rounded down to a multiple of
 * `align` past -phase, at least 0 */
static inline int64_t
nr_team_bound(int64_t n, int64_t t, int64_t m, int64_t align, int64_t phase)
{
    if (t >= m) {
        return n;
    }
    const int64_t b = (n * t / m + phase) / align * align - phase;
    return b < 0 ? 0 : b;
}

/* The offset of p, in elements of `size` bytes, from the start of its 64-byte cache line:
 * the phase for NR_TEAM_AT (`align` elements a multiple of a line) */
static inline int64_t
nr_line_phase(const void *p, size_t size)
{
    return (int64_t)((uintptr_t)p % 64 / size);
}

/* Runs CALL over [0, n) split into `nt` contiguous ranges [i0, i1) whose bounds are multiples
 * of `align` (except n), as NR_TEAM; CALL runs for non-empty ranges only. */
#define NR_SPLIT(nt, n, align, CALL)                                                           \
    NR_TEAM(nt, n, align, nr_split_tid_, nr_split_team_, if (i0 < i1) { CALL; })

/* NR_SPLIT with the bounds of NR_TEAM_AT */
#define NR_SPLIT_AT(nt, n, align, phase, CALL)                                                 \
    NR_TEAM_AT(nt, n, align, phase, nr_split_tid_, nr_split_team_, if (i0 < i1) { CALL; })

/* Each argument is evaluated exactly once: `NR_MIN(nthreads, nr_threads_for(bytes))` must not
 * read the (concurrently settable) thread count twice, or a team could outgrow the workspace
 * sized for `nthreads`. */
#define NR_MIN(a, b)                                                                           \
    __extension__({                                                                            \
        __typeof__(a) nr_min_a_ = (a);                                                         \
        __typeof__(b) nr_min_b_ = (b);                                                         \
        nr_min_a_ < nr_min_b_ ? nr_min_a_ : nr_min_b_;                                         \
    })
#define NR_MAX(a, b)                                                                           \
    __extension__({                                                                            \
        __typeof__(a) nr_max_a_ = (a);                                                         \
        __typeof__(b) nr_max_b_ = (b);                                                         \
        nr_max_a_ > nr_max_b_ ? nr_max_a_ : nr_max_b_;                                         \
    })

/* total (a double) = the sum of the T expression EXPR over J = 0 .. n-1: blocks of 256 summed
 * in T (vectorized), the block sums added in double, so long sums keep float32's accuracy. */
#define NR_BLOCKED_SUM(total, T, n, J, EXPR)                                                   \
    do {                                                                                       \
        (total) = 0;                                                                           \
        for (int64_t nr_j0_ = 0; nr_j0_ < (n); nr_j0_ += 256) {                                \
            const int64_t nr_j1_ = NR_MIN((n), nr_j0_ + 256);                                  \
            T nr_s_ = 0;                                                                       \
            _Pragma("omp simd reduction(+ : nr_s_)") for (int64_t J = nr_j0_; J < nr_j1_; J++) \
            {                                                                                  \
                nr_s_ += (EXPR);                                                               \
            }                                                                                  \
            (total) += (double)nr_s_;                                                          \
        }                                                                                      \
    } while (0)

/* For the current T (nr_typed.h): NR_OUT_OF_RANGE(var + eps) when sums of squares in T
 * overflowed or may have lost digits to underflow (or are NaN): the row is redone wide;
 * NR_FITS(k) when a coefficient k (double) is 0 or a normal value of T, so products with it
 * keep T's accuracy. */
#define NR_OUT_OF_RANGE(ve) (!((ve) >= NR_T_TINY && (ve) <= NR_T_MAX))
#define NR_FITS(k) ((k) == 0 || (fabs(k) >= NR_T_MIN && fabs(k) <= NR_T_MAX))
/* NR_RSTD_OK(r) when r = 1 / sqrt(v), computed in T, came from a v that NR_OUT_OF_RANGE passes:
 * r is not 0, NaN or above 1 / sqrt(NR_T_TINY) (the short-row kernels test their rows' rstd
 * after their loops, and redo wide those that fail) */
#define NR_RSTD_OK(r) (((r) > 0) & ((r) <= (T)(1 / sqrt(NR_T_TINY))))

/* Per-thread partial sums, the one form every kernel uses: runs CALL over [0, n) split among
 * `nt` threads (as NR_SPLIT, align 1), where CALL sees `i0`, `i1`, its thread's index `tid`
 * and `acc`, that thread's `width` accumulators of type TA, zeroed, `stride` elements apart in
 * `partials`; then adds the threads' accumulators into the first thread's, in thread order:
 * partials[0 .. width) holds the totals. With nt <= 1 no OpenMP region runs.
 * Accumulators of at most NR_PARTIAL_LOCAL_BYTES are added to in the thread's own stack and
 * copied to `partials` once (the same additions): side by side in the shared workspace, a
 * kernel that adds to them every few rows took up to 2x the time on 2 threads (LayerNorm's and
 * RMSNorm's backward at 8192 x 64 on avx2 and baseline; none on 1 thread; a page apart helped
 * as much, 128 bytes apart did not: the other core's prefetchers, most likely). */
#define NR_PARTIAL_LOCAL_BYTES 16384
#define NR_PARTIAL_SUMS(nt, n, TA, partials, width, stride, CALL)                              \
    do {                                                                                       \
        TA *const nr_ps_ = (partials);                                                         \
        const int64_t nr_pw_ = (width), nr_pst_ = (stride);                                    \
        const int nr_plocal_ =                                                                 \
            nr_pw_ > 0 && nr_pw_ * (int64_t)sizeof(TA) <= NR_PARTIAL_LOCAL_BYTES;              \
        int nr_pteam_ = 1;                                                                     \
        NR_TEAM(nt, n, 1, tid, nr_pm_, {                                                       \
            TA nr_pl_[NR_PARTIAL_LOCAL_BYTES / sizeof(TA)] __attribute__((aligned(64)));       \
            TA *const nr_pown_ = nr_ps_ + (size_t)tid * (size_t)nr_pst_;                       \
            TA *const acc = nr_plocal_ ? nr_pl_ : nr_pown_;                                    \
            memset(acc, 0, (size_t)nr_pw_ * sizeof(TA));                                       \
            if (i0 < i1) {                                                                     \
                CALL;                                                                          \
            }                                                                                  \
            if (nr_plocal_) {                                                                  \
                memcpy(nr_pown_, nr_pl_, (size_t)nr_pw_ * sizeof(TA));                         \
            }                                                                                  \
            if (tid == 0) {                                                                    \
                nr_pteam_ = nr_pm_; /* read after the team's closing barrier */                \
            }                                                                                  \
        });                                                                                    \
        for (int nr_pt_ = 1; nr_pt_ < nr_pteam_; nr_pt_++) {                                   \
            const TA *nr_pq_ = nr_ps_ + (size_t)nr_pt_ * (size_t)nr_pst_;                      \
            for (int64_t nr_pj_ = 0; nr_pj_ < nr_pw_; nr_pj_++) {                              \
                nr_ps_[nr_pj_] += nr_pq_[nr_pj_];                                              \
            }                                                                                  \
        }                                                                                      \
    } while (0)

/* The value of the expression E at element offset k = KK, as type BT */
#define NR_AT(KK, BT, E)                                                                       \
    __extension__({                                                                            \
        const int64_t k = (KK);                                                                \
        (void)k;                                                                               \
        (BT)(E);                                                                               \
    })
/* the sum of E over four rows, added in BT (pairwise) */
#define NR_SUM4T(BT, E, k0, C)                                                                 \
    ((NR_AT((k0), BT, E) + NR_AT((k0) + (C), BT, E)) +                                         \
     (NR_AT((k0) + 2 * (C), BT, E) + NR_AT((k0) + 3 * (C), BT, E)))
/* the sum of E over NR_SUM_ROWS (8) rows, added in BT (pairwise), as a double: eight rows
 * rather than four halve the conversions and the double additions, the loops' largest share
 * (BatchNorm1d f+b at 8192 x 128 on a Zen 5, 2 threads: 0.77-0.87x the time on each tier) */
#define NR_SUMR(BT, E, k0, C)                                                                  \
    ((double)(NR_SUM4T(BT, E, k0, C) + NR_SUM4T(BT, E, (k0) + 4 * (C), C)))
#define NR_SUM_ROWS 8
/* (N, C) sums of short rows (at most NR_SUM_ROW_BYTES): blocks of rows of at most
 * NR_SUM_BLOCK_BYTES (in L1 while each vector's width of channels is summed down them), the
 * double sums of NR_SUM_CW channels in registers, added to the accumulators once a block
 * instead of once a sweep (BatchNorm1d f+b 8192 x 64 on a Zen 5: 0.63-0.95x the time
 * of the sweeps in four comparisons). Longer rows keep the sweeps: at 8192 x 128 the
 * blocks read 0.81-1.20x, at 8192 x 256 0.98-1.13x, and a vector's width of channels walked
 * down rows of 4 KiB took 1.5-2.3x the time. */
#define NR_SUM_CW (NR_VEC_BYTES / (int)sizeof(T))
#define NR_SUM_ROW_BYTES 256
#define NR_SUM_BLOCK_BYTES 16384
/* (N, C, L) data with L at most this: the sums run down a block of rows (NR_SUM_BLOCK_BYTES,
 * eight rows at least) a channel at a time, its L positions in lanes of double, instead of a
 * reduction over each (n, c) run of L values, which cost more than the values at small L
 * (2048 x 64 x 4 on a Zen 5: BatchNorm f+b 0.38-0.42x the time on avx512, 0.51x on avx2;
 * BatchNorm's float sums of such maps now run as columns, below: this serves SyncBatchNorm's
 * sums, BatchNorm's double ones, and maps of more columns than NR_BN_COL_MAX). At L = 16 that
 * was 0.60-0.65x on avx512 but 1.06-1.4x on avx2 and baseline, whose registers hold fewer of
 * the lanes. */
#if NR_VEC_BYTES == 64
#define NR_SUM_SMALL_L 16
#else
#define NR_SUM_SMALL_L 8
#endif

/* BatchNorm's (N, C, L) data of small feature maps, 1 < L <= NR_BN_COL_L and
 * C L <= NR_BN_COL_MAX, runs as (N, C L) data: each position a column of its own through the
 * (N, C) passes, the column sums then added up by channel and the channels' coefficients
 * spread over their columns. Along the runs of L values, each run's setup and reduction cost
 * more than its values (f+b on the bytes of 8192 x 64 on a Zen 5: 2.8-6.5x the time of L = 1
 * for L = 2 to 36; as columns 0.9-1.4x). Beyond those bounds the columns' sums and
 * coefficients outgrow the caches (C L = 16384: 1.07-1.15x the runs' time; L = 256:
 * 1.34x). The per-element passes take the columns below L = NR_BN_APPLY_COL_L only: from
 * L = 16 a run fills the vectors and costs less than streaming four coefficients an element
 * (the evaluation forward on 8192 x 64's bytes, avx512: L = 49 21 us as runs, 51 as columns). */
#define NR_BN_COL_L 64
#define NR_BN_COL_MAX 8192
#define NR_BN_APPLY_COL_L 16

/* The number of columns (N, C, L) data runs as (see above), 0 for the runs along L. */
static inline int64_t
nr_bn_columns(int64_t C, int64_t L)
{
    return L > 1 && L <= NR_BN_COL_L && C <= NR_BN_COL_MAX / L ? C * L : 0;
}

/* The columns of the per-element passes (output, input gradient): 0 from NR_BN_APPLY_COL_L. */
static inline int64_t
nr_bn_apply_columns(int64_t C, int64_t L)
{
    return L < NR_BN_APPLY_COL_L ? nr_bn_columns(C, L) : 0;
}

/* The NS (1 to 3) sums of NR_DEFINE_CHANNEL_SUMS at once: A1 += V1, and A2 += V2, A3 += V3
 * when NS asks for them (NS a constant: the others compile away). */
#define NR_SUMS_ADD(NS, A1, V1, A2, V2, A3, V3)                                                \
    do {                                                                                       \
        (A1) += (V1);                                                                          \
        if ((NS) > 1) {                                                                        \
            (A2) += (V2);                                                                      \
        }                                                                                      \
        if ((NS) > 2) {                                                                        \
            (A3) += (V3);                                                                      \
        }                                                                                      \
    } while (0)

/* Channel sums of (N, C, L) data, shared by BatchNorm and SyncBatchNorm. Defines
 *   static void NAME(double *acc, const T *u, const T *v, const RT *ref,
 *                    int64_t n0, int64_t n1, int64_t C, int64_t L, int64_t ld)
 * which adds, for each channel c, the sums over the rows [n0, n1) of the NS (1 to 3)
 * expressions E1, E2, E3 of u[k], v[k] (k = n ld + c L + l the element's offset: ld = C L
 * for a whole array, more for a block of its channels) and ref[c] (ref[C + c] ...) into the
 * double acc[c], acc[C + c] and acc[2 C + c]. (N, C) data (L == 1) is walked along
 * the rows, vectorized across the channels, eight rows per sweep (an eighth of the accumulator
 * traffic), in blocks of 2048 channels so the accumulators stay in L1/L2 while the rows stream
 * by (a strided walk down each channel defeats the prefetcher); the eight rows' values are
 * added in BT (double, or T: the vectors twice as wide, and no conversion per element) before
 * they join the double sums. */
#define NR_DEFINE_CHANNEL_SUMS(NAME, NS, RT, BT, E1, E2, E3)                                   \
    static void NAME(double *restrict acc, const T *restrict u, const T *restrict v,           \
                     const RT *restrict ref, int64_t n0, int64_t n1, int64_t C, int64_t L,     \
                     int64_t ld)                                                               \
    {                                                                                          \
        double *restrict acc1 = acc, *restrict acc2 = acc + C, *restrict acc3 = acc + 2 * C;   \
        (void)u, (void)v, (void)ref, (void)acc2, (void)acc3;                                   \
        if (L == 1) {                                                                          \
            for (int64_t c0 = 0; c0 < C; c0 += 2048) {                                         \
                const int64_t c1 = NR_MIN(C, c0 + 2048);                                       \
                const int64_t row = (c1 - c0) * (int64_t)sizeof(T);                            \
                const int64_t rb = row <= NR_SUM_ROW_BYTES                                     \
                                       ? NR_SUM_BLOCK_BYTES / row / NR_SUM_ROWS * NR_SUM_ROWS  \
                                       : NR_SUM_ROWS;                                          \
                int64_t n = n0;                                                                \
                while (n + NR_SUM_ROWS <= n1) {                                                \
                    const int64_t ne = n + NR_MIN(rb, (n1 - n) / NR_SUM_ROWS * NR_SUM_ROWS);   \
                    int64_t cb = c0; /* short rows: the blocked sums, the rest in sweeps */    \
                    for (; rb > NR_SUM_ROWS && cb + NR_SUM_CW <= c1; cb += NR_SUM_CW) {        \
                        double l1[NR_SUM_CW] = {0}, l2[NR_SUM_CW] = {0}, l3[NR_SUM_CW] = {0};  \
                        (void)l2, (void)l3;                                                    \
                        for (int64_t m = n; m < ne; m += NR_SUM_ROWS) {                        \
                            _Pragma("omp simd") for (int j = 0; j < NR_SUM_CW; j++)            \
                            {                                                                  \
                                const int64_t c = cb + j, k0 = m * ld + c;                     \
                                NR_SUMS_ADD(NS, l1[j], NR_SUMR(BT, E1, k0, ld), l2[j],         \
                                            NR_SUMR(BT, E2, k0, ld), l3[j],                    \
                                            NR_SUMR(BT, E3, k0, ld));                          \
                            }                                                                  \
                        }                                                                      \
                        _Pragma("omp simd") for (int j = 0; j < NR_SUM_CW; j++)                \
                        {                                                                      \
                            NR_SUMS_ADD(NS, acc1[cb + j], l1[j], acc2[cb + j], l2[j],          \
                                        acc3[cb + j], l3[j]);                                  \
                        }                                                                      \
                    }                                                                          \
                    for (int64_t m = n; cb < c1 && m < ne; m += NR_SUM_ROWS) {                 \
                        _Pragma("omp simd") for (int64_t c = cb; c < c1; c++)                  \
                        {                                                                      \
                            const int64_t k0 = m * ld + c;                                     \
                            NR_SUMS_ADD(NS, acc1[c], NR_SUMR(BT, E1, k0, ld), acc2[c],         \
                                        NR_SUMR(BT, E2, k0, ld), acc3[c],                      \
                                        NR_SUMR(BT, E3, k0, ld));                              \
                        }                                                                      \
                    }                                                                          \
                    n = ne;                                                                    \
                }                                                                              \
                for (; n < n1; n++) {                                                          \
                    _Pragma("omp simd") for (int64_t c = c0; c < c1; c++)                      \
                    {                                                                          \
                        const int64_t k = n * ld + c;                                          \
                        NR_SUMS_ADD(NS, acc1[c], (double)(BT)(E1), acc2[c], (double)(BT)(E2),  \
                                    acc3[c], (double)(BT)(E3));                                \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        if (L <= NR_SUM_SMALL_L) {                                                             \
            const int64_t rb =                                                                 \
                NR_MAX((int64_t)NR_SUM_ROWS, NR_SUM_BLOCK_BYTES / (ld * (int64_t)sizeof(T)));  \
            for (int64_t nb = n0; nb < n1; nb += rb) {                                         \
                const int64_t ne = NR_MIN(n1, nb + rb);                                        \
                for (int64_t c = 0; c < C; c++) {                                              \
                    double l1[NR_SUM_SMALL_L], l2[NR_SUM_SMALL_L], l3[NR_SUM_SMALL_L];         \
                    for (int64_t l = 0; l < L; l++) {                                          \
                        l1[l] = l2[l] = l3[l] = 0;                                             \
                    }                                                                          \
                    for (int64_t n = nb; n < ne; n++) {                                        \
                        _Pragma("omp simd") for (int64_t l = 0; l < L; l++)                    \
                        {                                                                      \
                            const int64_t k = n * ld + c * L + l;                              \
                            NR_SUMS_ADD(NS, l1[l], (double)(BT)(E1), l2[l], (double)(BT)(E2),  \
                                        l3[l], (double)(BT)(E3));                              \
                        }                                                                      \
                    }                                                                          \
                    for (int64_t l = 0; l < L; l++) {                                          \
                        NR_SUMS_ADD(NS, acc1[c], l1[l], acc2[c], l2[l], acc3[c], l3[l]);       \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
            return;                                                                            \
        }                                                                                      \
        for (int64_t n = n0; n < n1; n++) {                                                    \
            for (int64_t c = 0; c < C; c++) {                                                  \
                double s1 = 0, s2 = 0, s3 = 0;                                                 \
                _Pragma("omp simd reduction(+ : s1, s2, s3)") for (int64_t l = 0; l < L; l++)  \
                {                                                                              \
                    const int64_t k = n * ld + c * L + l;                                      \
                    NR_SUMS_ADD(NS, s1, (double)(BT)(E1), s2, (double)(BT)(E2), s3,            \
                                (double)(BT)(E3));                                             \
                }                                                                              \
                NR_SUMS_ADD(NS, acc1[c], s1, acc2[c], s2, acc3[c], s3);                        \
            }                                                                                  \
        }                                                                                      \
    }

#endif
