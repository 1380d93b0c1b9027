/* The tier's vectors for the short-row norms (LayerNorm, RMSNorm) in one element type T,
 * included by their bodies: V, one register of W lanes; loads and stores; a b + c; and the
 * sums of a vector's lanes as a tree (of four vectors at once on avx512). A body undefines V
 * and W at its end, as the next element type defines them again. */

#ifndef NR_ROW_VEC_CHECKED
#define NR_ROW_VEC_CHECKED
#ifdef __SSE2__
#include <immintrin.h> /* x86: the loads and permutations of nr_vec_load_spread */
#endif
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define NR_ROW_VEC 1
#endif
#endif
#endif

#ifdef NR_ROW_VEC
/* one register of the tier (NR_VEC_BYTES): 64 bytes on avx512, 32 on avx2, 16 otherwise */
typedef T FN(nr_vec_t) __attribute__((vector_size(NR_VEC_BYTES)));
#define V FN(nr_vec_t)
#define W ((int)(NR_VEC_BYTES / sizeof(T)))
#define NR_VEC_INLINE static inline __attribute__((always_inline))
/* on the loops over a group's rows that end its reductions: gcc left them rolled (they hold
 * the tail loops), keeping the group's sums in an array on the stack, one row after another */
#define NR_VEC_UNROLL _Pragma("GCC unroll 8")

NR_VEC_INLINE V
FN(nr_vec_load)(const T *p)
{
    V v;
    memcpy(&v, p, sizeof v);
    return v;
}

NR_VEC_INLINE void
FN(nr_vec_store)(T *p, V v)
{
    memcpy(p, &v, sizeof v);
}

/* a b + c, rounded once where the tier has FMA (avx2, avx512): one instruction instead of
 * two, in the loops whose additions bound them (the add ports are the busier ones).
 * NR_VEC_FMA(a, b, c) is the tier's intrinsic on V, its b a vector or (NR_VEC_SPLAT) a scalar
 * broadcast; without FMA a b + c, where a scalar b broadcasts by itself. */
#if defined(__FMA__) && NR_VEC_BYTES == 64 && defined(NR_TYPED_F32)
#define NR_VEC_FMA(a, b, c) (V) _mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c))
#define NR_VEC_SPLAT(b) _mm512_set1_ps(b)
#elif defined(__FMA__) && NR_VEC_BYTES == 64
#define NR_VEC_FMA(a, b, c) (V) _mm512_fmadd_pd((__m512d)(a), (__m512d)(b), (__m512d)(c))
#define NR_VEC_SPLAT(b) _mm512_set1_pd(b)
#elif defined(__FMA__) && NR_VEC_BYTES == 32 && defined(NR_TYPED_F32)
#define NR_VEC_FMA(a, b, c) (V) _mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c))
#define NR_VEC_SPLAT(b) _mm256_set1_ps(b)
#elif defined(__FMA__) && NR_VEC_BYTES == 32
#define NR_VEC_FMA(a, b, c) (V) _mm256_fmadd_pd((__m256d)(a), (__m256d)(b), (__m256d)(c))
#define NR_VEC_SPLAT(b) _mm256_set1_pd(b)
#else
#define NR_VEC_FMA(a, b, c) ((a) * (b) + (c))
#define NR_VEC_SPLAT(b) (b)
#endif

NR_VEC_INLINE V
FN(nr_vec_fma)(V a, V b, V c)
{
    return NR_VEC_FMA(a, b, c);
}

/* a b + c for a scalar b (as nr_vec_fma) */
NR_VEC_INLINE V
FN(nr_vec_fmas)(V a, T b, V c)
{
    return NR_VEC_FMA(a, NR_VEC_SPLAT(b), c);
}

#undef NR_VEC_FMA
#undef NR_VEC_SPLAT

/* the sum of the W lanes of v, as a tree: halves added down to 16 bytes, then pairs */
NR_VEC_INLINE T
FN(nr_vec_hsum)(V v)
{
    typedef T h16 __attribute__((vector_size(16)));
#if NR_VEC_BYTES >= 32
    typedef T h32 __attribute__((vector_size(32)));
#endif
#if NR_VEC_BYTES == 64 && defined(NR_TYPED_F32)
    const h32 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                  __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
#elif NR_VEC_BYTES == 64
    const h32 a =
        __builtin_shufflevector(v, v, 0, 1, 2, 3) + __builtin_shufflevector(v, v, 4, 5, 6, 7);
#elif NR_VEC_BYTES == 32
    const h32 a = v;
#endif
#if NR_VEC_BYTES >= 32 && defined(NR_TYPED_F32)
    const h16 c =
        __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
#elif NR_VEC_BYTES >= 32
    const h16 c = __builtin_shufflevector(a, a, 0, 1) + __builtin_shufflevector(a, a, 2, 3);
#else
    const h16 c = v;
#endif
#ifdef NR_TYPED_F32
    return (c[0] + c[2]) + (c[1] + c[3]);
#else
    return c[0] + c[1];
#endif
}

/* the sum of row r's H chains of sums a (two: added as nr_vec_hsum4_rows adds them) */
NR_VEC_INLINE T
FN(nr_vec_hsum_row)(const V *a, int r, int H)
{
    return H == 2 ? FN(nr_vec_hsum)(a[2 * r]) + FN(nr_vec_hsum)(a[2 * r + 1])
                  : FN(nr_vec_hsum)(a[r]);
}

#undef NR_VEC_HSUM4
#if NR_VEC_BYTES == 64 && defined(NR_TYPED_F32)
#define NR_VEC_HSUM4 1
/* The sums of four vectors' lanes at once, each added in nr_vec_hsum's order (so the same
 * values): lane 4 r holds v[r]'s. The four rows share each shuffle and addition, 13
 * instructions instead of 36; the short forward's per-row reductions bounded it on a Zen 5. */
NR_VEC_INLINE V
FN(nr_vec_hsum4)(const V v[4])
{
    /* lanes 8 r' + i of u (r' = 0, 1 of the pair): v[i] + v[i + 8], nr_vec_hsum's halves */
    const V u01 = __builtin_shufflevector(v[0], v[1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19,
                                          20, 21, 22, 23) +
                  __builtin_shufflevector(v[0], v[1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26,
                                          27, 28, 29, 30, 31);
    const V u23 = __builtin_shufflevector(v[2], v[3], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19,
                                          20, 21, 22, 23) +
                  __builtin_shufflevector(v[2], v[3], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26,
                                          27, 28, 29, 30, 31);
    /* lanes 4 r + i: c[i] = u[i] + u[i + 4] of row r */
    const V c = __builtin_shufflevector(u01, u23, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24,
                                        25, 26, 27) +
                __builtin_shufflevector(u01, u23, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23,
                                        28, 29, 30, 31);
    /* lanes 4 r and 4 r + 1: c0 + c2 and c1 + c3; then lane 4 r: (c0 + c2) + (c1 + c3) */
    const V p =
        c + __builtin_shufflevector(c, c, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    return p +
           __builtin_shufflevector(p, p, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
}

/* nr_vec_hsum4 of a group's sums plus its tails: with H = 2 (a pair of rows, two chains
 * each), a row's two chains added, lane 8 r holding row r's sum */
NR_VEC_INLINE V
FN(nr_vec_hsum4_rows)(const V a[4], const int H, V tail)
{
    V s = FN(nr_vec_hsum4)(a);
    if (H == 2) {
        s +=
            __builtin_shufflevector(s, s, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    }
    return s + tail;
}

/* 1 / sqrt of the rows' lanes of nr_vec_hsum4_rows's v (lanes 4 H r), correctly rounded as
 * the scalar 1 / SQRT, in lanes r: one vector square root and division for the group
 * (written out: clang built a loop over the lanes of v from the scalar form) */
NR_VEC_INLINE V
FN(nr_vec_rsqrt4)(V v, const int H)
{
    const __m512i lanes =
        H == 2 ? _mm512_setr_epi32(0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
               : _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m128 r = _mm512_castps512_ps128(_mm512_permutexvar_ps(lanes, (__m512)v));
    return (V)_mm512_zextps128_ps512(_mm_div_ps(_mm_set1_ps(1), _mm_sqrt_ps(r)));
}
#else
#define NR_VEC_HSUM4 0
#endif
/* The row sums of G rows' sums a (H chains a row, as nr_vec_hsum_row adds them), plus 0 (a
 * row's tail when it has none), in out[r]: on avx512 four chains in one packed reduction */
NR_VEC_INLINE void
FN(nr_vec_rowsums)(T out[4], const V a[4], const int G, const int H)
{
#if NR_VEC_HSUM4
    if (G * H == 4) {
        const V s = FN(nr_vec_hsum4_rows)(a, H, (V){0});
        for (int r = 0; r < G; r++) {
            out[r] = s[4 * H * r];
        }
        return;
    }
#endif
    for (int r = 0; r < G; r++) {
        out[r] = FN(nr_vec_hsum_row)(a, r, H) + (T)0;
    }
}

/* Rows shorter than a vector: segments of D lanes (D a power of two below W; a row of at most
 * D values in each), W / D rows to a vector. NR_VEC_LANES(F): F(0), ..., F(W - 1), for lane
 * indices of __builtin_shufflevector (constants); nr_vec_segsum: every lane of a segment
 * holds the sum of its segment (a butterfly: lanes l and l ^ s added for s = 1, 2, .. D / 2,
 * so the segment's lanes hold the same bits); nr_vec_sqrt: lane by lane. */
#undef NR_VEC_LANES
#if NR_VEC_BYTES / NR_TYPED_SIZE == 16
#define NR_VEC_LANES(F)                                                                        \
    F(0), F(1), F(2), F(3), F(4), F(5), F(6), F(7), F(8), F(9), F(10), F(11), F(12), F(13),    \
        F(14), F(15)
#elif NR_VEC_BYTES / NR_TYPED_SIZE == 8
#define NR_VEC_LANES(F) F(0), F(1), F(2), F(3), F(4), F(5), F(6), F(7)
#elif NR_VEC_BYTES / NR_TYPED_SIZE == 4
#define NR_VEC_LANES(F) F(0), F(1), F(2), F(3)
#else
#define NR_VEC_LANES(F) F(0), F(1)
#endif
#define NR_VEC_XOR1(l) ((l) ^ 1)
#define NR_VEC_XOR2(l) ((l) ^ 2)
#define NR_VEC_XOR4(l) ((l) ^ 4)
#define NR_VEC_XOR8(l) ((l) ^ 8)
/* the first lane of l's segment of D lanes; the segment's number */
#define NR_VEC_SEG2(l) ((l) & ~1)
#define NR_VEC_SEG4(l) ((l) & ~3)
#define NR_VEC_SEG8(l) ((l) & ~7)
#define NR_VEC_SEG16(l) ((l) & ~15)
#define NR_VEC_DIV2(l) ((l) >> 1)
#define NR_VEC_DIV4(l) ((l) >> 2)
#define NR_VEC_DIV8(l) ((l) >> 3)
#define NR_VEC_DIV16(l) ((l) >> 4)

/* n <= W / D values from p, each spread over a segment of D lanes (lane l: p[l / D], 0 past
 * n); D a constant after inlining (2, 4, 8 or 16, at most W). On avx2 and avx512 the values are
 * loaded into the low lanes of a 16- or 32-byte register and spread by one permutation (a
 * narrower vector copied into a zeroed V and read back whole waited for its store, and gcc
 * took that way for a shuffle into more lanes than its operand's: perf). */
NR_VEC_INLINE V
FN(nr_vec_load_spread)(const T *p, int n, const int D)
{
#if NR_VEC_BYTES >= 32 && defined(__AVX2__)
    typedef T h16 __attribute__((vector_size(16)));
    typedef T h32 __attribute__((vector_size(32)));
    typedef int32_t i32v __attribute__((vector_size(NR_VEC_BYTES)));
    const i32v idx32 = D == 2   ? (i32v){NR_VEC_LANES(NR_VEC_DIV2)}
                       : D == 4 ? (i32v){NR_VEC_LANES(NR_VEC_DIV4)}
                       : D == 8 ? (i32v){NR_VEC_LANES(NR_VEC_DIV8)}
                                : (i32v){NR_VEC_LANES(NR_VEC_DIV16)};
    (void)idx32;
    h16 lo = (h16){0};
    h32 lo32 = (h32){0};
    if ((size_t)(NR_VEC_BYTES / D) > 16) {
        memcpy(&lo32, p, (size_t)n * sizeof(T));
    }
#ifdef NR_TYPED_F32
    else if (NR_VEC_BYTES / D ==
             8) { /* two floats: one 8-byte load, any alignment (a copy went by memory) */
        lo = n == 2 ? (h16)_mm_castsi128_ps(_mm_loadl_epi64((const __m128i_u *)p))
                    : (h16)_mm_set_ss(p[0]);
    }
#endif
    else {
        memcpy(&lo, p, (size_t)n * sizeof(T));
    }
#if NR_VEC_BYTES == 64 && defined(NR_TYPED_F32)
    const __m512 wide = (size_t)(NR_VEC_BYTES / D) > 16 ? _mm512_castps256_ps512((__m256)lo32)
                                                        : _mm512_castps128_ps512((__m128)lo);
    return (V)_mm512_permutexvar_ps((__m512i)idx32, wide);
#elif NR_VEC_BYTES == 64
    typedef int64_t i64v __attribute__((vector_size(64)));
    const i64v idx64 = D == 2   ? (i64v){NR_VEC_LANES(NR_VEC_DIV2)}
                       : D == 4 ? (i64v){NR_VEC_LANES(NR_VEC_DIV4)}
                                : (i64v){NR_VEC_LANES(NR_VEC_DIV8)};
    const __m512d wide = (size_t)(NR_VEC_BYTES / D) > 16 ? _mm512_castpd256_pd512((__m256d)lo32)
                                                         : _mm512_castpd128_pd512((__m128d)lo);
    return (V)_mm512_permutexvar_pd((__m512i)idx64, wide);
#elif defined(NR_TYPED_F32)
    return (V)_mm256_permutevar8x32_ps(_mm256_castps128_ps256((__m128)lo), (__m256i)idx32);
#else
    /* D = 2: lanes 0 0 1 1; D = 4 (one row a vector): lane 0 in all */
    return D == 2 ? (V)_mm256_permute4x64_pd(_mm256_castpd128_pd256((__m128d)lo), 0x50)
                  : (V)_mm256_broadcastsd_pd((__m128d)lo);
#endif
#elif defined(__SSE2__) && NR_VEC_BYTES == 16 && defined(NR_TYPED_F32)
    /* D = 2: two floats, as above; D = 4 (one row a vector): one */
    if (D == 4) {
        return (V)_mm_set1_ps(p[0]);
    }
    const V lo = n == 2 ? (V)_mm_castsi128_ps(_mm_loadl_epi64((const __m128i_u *)p))
                        : (V)_mm_set_ss(p[0]);
    return __builtin_shufflevector(lo, lo, 0, 0, 1, 1);
#else
    V v = (V){0};
    memcpy(&v, p, (size_t)n * sizeof(T));
    return D == 2   ? __builtin_shufflevector(v, v, NR_VEC_LANES(NR_VEC_DIV2))
           : D == 4 ? __builtin_shufflevector(v, v, NR_VEC_LANES(NR_VEC_DIV4))
           : D == 8 ? __builtin_shufflevector(v, v, NR_VEC_LANES(NR_VEC_DIV8))
                    : __builtin_shufflevector(v, v, NR_VEC_LANES(NR_VEC_DIV16));
#endif
}

/* Rows of D values in segments of P lanes, D < P (P a power of two, a constant after
 * inlining): row r of a vector in lanes [r P, r P + D), the other lanes 0. nr_rows_make
 * works out, for n rows of a vector, the lanes kept (keep) and, in float lanes (a double is
 * two), where each lane comes from in memory order and goes back to (idx_in, idx_out);
 * nr_vec_load_rows / nr_vec_store_rows move n rows between memory (side by side) and their
 * segments: a masked load or store and a permutation on avx2 and avx512 (avx512's
 * expanding load and compress were 1.5-3x slower on a Zen 5), lane by lane elsewhere. */
#ifdef NR_TYPED_F32
typedef int32_t FN(nr_veci_t) __attribute__((vector_size(NR_VEC_BYTES)));
#else
typedef int64_t FN(nr_veci_t) __attribute__((vector_size(NR_VEC_BYTES)));
#endif
typedef int32_t FN(nr_idx_t) __attribute__((vector_size(NR_VEC_BYTES)));
typedef struct {
    FN(nr_veci_t) keep;
    FN(nr_idx_t) idx_in, idx_out, first; /* first: lanes below n D (as -1), for masked moves */
    unsigned first_bits;                 /* first as bits (avx512) */
    int n, cnt;                          /* rows, and their values: n D */
    int64_t D;
} FN(nr_rows_t);

NR_VEC_INLINE
FN(nr_rows_t) FN(nr_rows_make)(int n, int64_t D, const int P)
{
    FN(nr_rows_t) rw;
    memset(&rw, 0, sizeof rw);
    rw.n = n;
    rw.D = D;
    rw.cnt = (int)(n * D);
    for (int l = 0; l < W; l++) {
        rw.keep[l] = l % P < D && l / P < n ? -1 : 0;
    }
    const int F = (int)(sizeof(FN(nr_idx_t)) / sizeof(int32_t)); /* float lanes */
    const int per = (int)(sizeof(T) / sizeof(float));            /* floats a value */
    for (int f = 0; f < F; f++) {
        const int l = f / per, h = f % per;                         /* value lane, its half */
        const int src = l % P < D ? (int)((l / P) * D + l % P) : 0; /* memory order */
        const int dst = l < rw.cnt ? (int)((l / D) * P + l % D) : 0;
        rw.idx_in[f] = src * per + h;
        rw.idx_out[f] = dst * per + h;
        rw.first[f] = l < rw.cnt ? -1 : 0;
        rw.first_bits |= l < rw.cnt ? 1u << f : 0u;
    }
    return rw;
}

/* A row's last, partial vector: lanes [0, n) from p (0 < n < W), the others 0, by a masked
 * load or store on avx2 and avx512 (nothing read or written past the row), where the groups
 * took such tails in scalar loops, one dependent addition an element (NR_VEC_PART); keep:
 * nr_vec_part_keep(n), the lanes below n as -1. */
#if NR_VEC_BYTES >= 32 && defined(__AVX2__)
#define NR_VEC_PART 1
#else
#define NR_VEC_PART 0
#endif
#define NR_VEC_ID(l) (l)

NR_VEC_INLINE
FN(nr_veci_t) FN(nr_vec_part_keep)(int n)
{
    const FN(nr_veci_t) lane = {NR_VEC_LANES(NR_VEC_ID)};
    return lane < n;
}

NR_VEC_INLINE V
FN(nr_vec_load_part)(const T *p, int n, FN(nr_veci_t) keep)
{
#if NR_VEC_BYTES == 64 && defined(NR_TYPED_F32)
    (void)keep;
    return (V)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p);
#elif NR_VEC_BYTES == 64
    (void)keep;
    return (V)_mm512_maskz_loadu_pd((__mmask8)((1u << n) - 1), p);
#elif NR_VEC_BYTES == 32 && defined(__AVX2__) && defined(NR_TYPED_F32)
    (void)n;
    return (V)_mm256_maskload_ps(p, (__m256i)keep);
#elif NR_VEC_BYTES == 32 && defined(__AVX2__)
    (void)n;
    return (V)_mm256_maskload_pd(p, (__m256i)keep);
#else
    (void)keep;
    V v = (V){0};
    memcpy(&v, p, (size_t)n * sizeof(T));
    return v;
#endif
}

NR_VEC_INLINE void
FN(nr_vec_store_part)(T *p, V v, int n, FN(nr_veci_t) keep)
{
#if NR_VEC_BYTES == 64 && defined(NR_TYPED_F32)
    (void)keep;
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), (__m512)v);
#elif NR_VEC_BYTES == 64
    (void)keep;
    _mm512_mask_storeu_pd(p, (__mmask8)((1u << n) - 1), (__m512d)v);
#elif NR_VEC_BYTES == 32 && defined(__AVX2__) && defined(NR_TYPED_F32)
    (void)n;
    _mm256_maskstore_ps(p, (__m256i)keep, (__m256)v);
#elif NR_VEC_BYTES == 32 && defined(__AVX2__)
    (void)n;
    _mm256_maskstore_pd(p, (__m256i)keep, (__m256d)v);
#else
    (void)keep;
    memcpy(p, &v, (size_t)n * sizeof(T));
#endif
}

NR_VEC_INLINE V
FN(nr_vec_load_rows)(const T *p, const FN(nr_rows_t) * rw, const int P)
{
#if NR_VEC_BYTES == 64
    (void)P;
    const __m512 m = _mm512_maskz_loadu_ps((__mmask16)rw->first_bits, (const float *)p);
    const __m512 v = _mm512_permutexvar_ps((__m512i)rw->idx_in, m);
    return (V)((FN(nr_veci_t))v & rw->keep);
#elif NR_VEC_BYTES == 32 && defined(__AVX2__)
    (void)P;
    const __m256 m = _mm256_maskload_ps((const float *)p, (__m256i)rw->first);
    const __m256 v = _mm256_permutevar8x32_ps(m, (__m256i)rw->idx_in);
    return (V)((FN(nr_veci_t))v & rw->keep);
#else
    V v = (V){0};
    for (int r = 0; r < rw->n; r++) {
        for (int64_t j = 0; j < rw->D; j++) {
            v[r * P + j] = p[r * rw->D + j];
        }
    }
    return v;
#endif
}

NR_VEC_INLINE void
FN(nr_vec_store_rows)(T *p, V v, const FN(nr_rows_t) * rw, const int P)
{
#if NR_VEC_BYTES == 64
    (void)P;
    _mm512_mask_storeu_ps((float *)p, (__mmask16)rw->first_bits,
                          _mm512_permutexvar_ps((__m512i)rw->idx_out, (__m512)v));
#elif NR_VEC_BYTES == 32 && defined(__AVX2__)
    (void)P;
    _mm256_maskstore_ps((float *)p, (__m256i)rw->first,
                        _mm256_permutevar8x32_ps((__m256)v, (__m256i)rw->idx_out));
#else
    for (int r = 0; r < rw->n; r++) {
        for (int64_t j = 0; j < rw->D; j++) {
            p[r * rw->D + j] = v[r * P + j];
        }
    }
#endif
}

/* The segment of P lanes (a power of two) that holds a short row of D values (D >= 2): at
 * least two segments to a vector, or, on avx2 and avx512 (masked loads and stores), one row a
 * vector for W / 2 < D < W, which took the groups' scalar loops (LayerNorm's backward at D =
 * 9-15, float32 avx512, 0.22-0.40x the time so; on baseline the rows' lane-by-lane moves made
 * it 1.5-5x slower); 0 when there is none. */
#ifndef NR_SEG_ONE
#if NR_VEC_BYTES >= 32 && defined(__AVX2__)
#define NR_SEG_ONE 1
#else
#define NR_SEG_ONE 0
#endif
#endif
NR_VEC_INLINE int
FN(nr_seg_lanes)(int64_t D)
{
    const int64_t P = D <= 2 ? 2 : D <= 4 ? 4 : D <= 8 ? 8 : 16;
    return D >= 2 && (2 * P <= W || (NR_SEG_ONE && P == W && D < W)) ? (int)P : 0;
}

/* n rows of D values at p into their segments of P lanes, and back: side by side as they are
 * where D is P (a copy of n P values; of a whole vector, a constant size, when n is W / P),
 * else through rw (nr_vec_load_rows, nr_vec_store_rows) */
NR_VEC_INLINE V
FN(nr_vec_get_rows)(const T *p, int n, int64_t D, const FN(nr_rows_t) * rw, const int P)
{
    V v = (V){0};
    if (D == P) {
        memcpy(&v, p, (size_t)(n * P) * sizeof(T));
        return v;
    }
    return FN(nr_vec_load_rows)(p, rw, P);
}

NR_VEC_INLINE void
FN(nr_vec_put_rows)(T *p, V v, int n, int64_t D, const FN(nr_rows_t) * rw, const int P)
{
    if (D == P) {
        memcpy(p, &v, (size_t)(n * P) * sizeof(T));
    }
    else {
        FN(nr_vec_store_rows)(p, v, rw, P);
    }
}

/* CALL(DD, PP) for a short row of D values in segments of P lanes (nr_seg_lanes, P > 0):
 * the segment width a constant in each call, and the row's length too where it is P */
#ifndef NR_SEG_DISPATCH
#define NR_SEG_DISPATCH(D, P, CALL)                                                            \
    do {                                                                                       \
        if ((D) == 2) {                                                                        \
            CALL(2, 2);                                                                        \
        }                                                                                      \
        else if ((D) == 4) {                                                                   \
            CALL(4, 4);                                                                        \
        }                                                                                      \
        else if ((D) == 8) {                                                                   \
            CALL(8, 8);                                                                        \
        }                                                                                      \
        else if ((P) == 4) {                                                                   \
            CALL((D), 4);                                                                      \
        }                                                                                      \
        else if ((P) == 8 || W < 16) {                                                         \
            CALL((D), 8);                                                                      \
        }                                                                                      \
        else {                                                                                 \
            CALL((D), 16);                                                                     \
        }                                                                                      \
    } while (0)
#endif

/* every lane of a segment of D: the segment's first lane of v */
NR_VEC_INLINE V
FN(nr_vec_seg_first)(V v, const int D)
{
    return D == 2   ? __builtin_shufflevector(v, v, NR_VEC_LANES(NR_VEC_SEG2))
           : D == 4 ? __builtin_shufflevector(v, v, NR_VEC_LANES(NR_VEC_SEG4))
           : D == 8 ? __builtin_shufflevector(v, v, NR_VEC_LANES(NR_VEC_SEG8))
                    : __builtin_shufflevector(v, v, NR_VEC_LANES(NR_VEC_SEG16));
}

NR_VEC_INLINE V
FN(nr_vec_segsum)(V v, const int D)
{
    if (D >= 2) {
        v += __builtin_shufflevector(v, v, NR_VEC_LANES(NR_VEC_XOR1));
    }
#if NR_VEC_BYTES / NR_TYPED_SIZE >= 4
    if (D >= 4) {
        v += __builtin_shufflevector(v, v, NR_VEC_LANES(NR_VEC_XOR2));
    }
#endif
#if NR_VEC_BYTES / NR_TYPED_SIZE >= 8
    if (D >= 8) {
        v += __builtin_shufflevector(v, v, NR_VEC_LANES(NR_VEC_XOR4));
    }
#endif
#if NR_VEC_BYTES / NR_TYPED_SIZE >= 16
    if (D >= 16) {
        v += __builtin_shufflevector(v, v, NR_VEC_LANES(NR_VEC_XOR8));
    }
#endif
    return v;
}

NR_VEC_INLINE V
FN(nr_vec_sqrt)(V v)
{
#if NR_VEC_BYTES == 64 && defined(NR_TYPED_F32)
    return (V)_mm512_sqrt_ps((__m512)v);
#elif NR_VEC_BYTES == 64
    return (V)_mm512_sqrt_pd((__m512d)v);
#elif NR_VEC_BYTES == 32 && defined(NR_TYPED_F32)
    return (V)_mm256_sqrt_ps((__m256)v);
#elif NR_VEC_BYTES == 32
    return (V)_mm256_sqrt_pd((__m256d)v);
#else
    for (int l = 0; l < W; l++) {
        v[l] = SQRT(v[l]);
    }
    return v;
#endif
}

/* 1 / sqrt(v) in each segment of P lanes (all of a segment's lanes equal); one row a vector
 * (P = W) takes one scalar square root and division, the same bits, where a vector's took
 * the float64 forward on avx512 to 1.3x the time of the groups' scalar loops */
NR_VEC_INLINE V
FN(nr_vec_seg_rsqrt)(V v, const int P)
{
    if (P == W) {
        const V zero = {0};
        return zero + (T)1 / SQRT(v[0]);
    }
    return (T)1 / FN(nr_vec_sqrt)(v);
}

#endif /* NR_ROW_VEC */
