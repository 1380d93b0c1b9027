/* exp on vectors of the tier's width (NR_VEC_BYTES, nr_tier.h), for the softmax: the C
 * library's expf / exp are scalar calls, 10-20x the cost of the memory traffic around them.
 *
 * exp(x) = 2^n exp(r), n = rint(x log2 e), r = x - n ln 2 with ln 2 in two parts (Cody and
 * Waite) so that r is exact to T's precision, |r| <= ln 2 / 2; exp(r) = 1 + r + r^2 P(r):
 *   float32: Cephes expf's degree-5 P (tests: within 2 ulp of the exact value),
 *   float64: Taylor's to degree 13 (truncation below 5e-18) by Estrin's scheme (within 2 ulp).
 * 2^n is applied as two powers of 2 of half the exponent each, so results in the subnormal
 * range are rounded once and 2^128 (2^1024) before the rounding down does not overflow.
 * Arguments are clamped first to a range whose ends give inf and 0: +inf -> inf,
 * -inf -> 0, NaN -> NaN, as expf / exp. The same operations in every lane at every width.
 * float32: no FMA (-ffp-contract=off), so its results are identical on every tier (within
 * 0.99 ulp over all float32; with FMA 1.01, with Estrin's scheme 1.004). float64: the
 * reduction and the polynomial's steps are fused multiply-adds where the tier has them (avx2,
 * avx512; separate on SSE2 and NEON), within 1.02 ulp either way (against long double on 5
 * million arguments): the softmax cross-entropy forward, whose exponentials are double, took
 * 0.73x the time at 1024 x 1000 on a Zen 5 (avx512) with FMA. The exponential's chain of
 * dependent steps, not its count of operations, is what bounds these loops on a Zen 5. */
#ifndef NR_VEXP_H
#define NR_VEXP_H

#include <stdint.h>

#include "nr_tier.h"

typedef float nr_vf32 __attribute__((vector_size(NR_VEC_BYTES)));
typedef int32_t nr_vi32 __attribute__((vector_size(NR_VEC_BYTES)));
typedef double nr_vf64 __attribute__((vector_size(NR_VEC_BYTES)));
typedef int64_t nr_vi64 __attribute__((vector_size(NR_VEC_BYTES)));

#define NR_VEXP_INLINE static inline __attribute__((always_inline))

/* a b + c for the float64 exponential, fused on the tiers with FMA (an explicit intrinsic:
 * -ffp-contract=off); NR_VEXP_CLAMP32/64(x, lo, hi): x within [lo, hi], NaN kept, as
 * max(lo, x) then min(hi, .) (x86's min and max return their second operand when one is NaN).
 * One instruction each where the comparison and masked move of a select took two on the
 * exponential's chain (float32: 0.84x the time on a Zen 5, avx512). */
#if defined(__AVX512F__) && NR_VEC_BYTES == 64
#include <immintrin.h>
#define NR_VEXP_FMA64(a, b, c)                                                                 \
    (nr_vf64) _mm512_fmadd_pd((__m512d)(a), (__m512d)(b), (__m512d)(c))
#define NR_VEXP_CLAMP64(x, lo, hi)                                                             \
    (nr_vf64) _mm512_min_pd((__m512d)(hi), _mm512_max_pd((__m512d)(lo), (__m512d)(x)))
#define NR_VEXP_CLAMP32(x, lo, hi)                                                             \
    (nr_vf32) _mm512_min_ps((__m512)(hi), _mm512_max_ps((__m512)(lo), (__m512)(x)))
#elif defined(__AVX2__) && defined(__FMA__) && NR_VEC_BYTES == 32
#include <immintrin.h>
#define NR_VEXP_FMA64(a, b, c)                                                                 \
    (nr_vf64) _mm256_fmadd_pd((__m256d)(a), (__m256d)(b), (__m256d)(c))
#define NR_VEXP_CLAMP64(x, lo, hi)                                                             \
    (nr_vf64) _mm256_min_pd((__m256d)(hi), _mm256_max_pd((__m256d)(lo), (__m256d)(x)))
#define NR_VEXP_CLAMP32(x, lo, hi)                                                             \
    (nr_vf32) _mm256_min_ps((__m256)(hi), _mm256_max_ps((__m256)(lo), (__m256)(x)))
#elif defined(__SSE2__) && NR_VEC_BYTES == 16
#include <emmintrin.h>
#define NR_VEXP_FMA64(a, b, c) ((a) * (b) + (c))
#define NR_VEXP_CLAMP64(x, lo, hi)                                                             \
    (nr_vf64) _mm_min_pd((__m128d)(hi), _mm_max_pd((__m128d)(lo), (__m128d)(x)))
#define NR_VEXP_CLAMP32(x, lo, hi)                                                             \
    (nr_vf32) _mm_min_ps((__m128)(hi), _mm_max_ps((__m128)(lo), (__m128)(x)))
#else
#define NR_VEXP_FMA64(a, b, c) ((a) * (b) + (c))
#define NR_VEXP_CLAMP64(x, lo, hi) NR_VEXP_CLAMP_SELECT(nr_vi64, nr_vf64, x, lo, hi)
#define NR_VEXP_CLAMP32(x, lo, hi) NR_VEXP_CLAMP_SELECT(nr_vi32, nr_vf32, x, lo, hi)
#endif
/* NaN compares false: kept */
#define NR_VEXP_CLAMP_SELECT(VI, VF, x, lo, hi)                                                \
    NR_VSELECT(VI, VF, (x) > (hi), hi, NR_VSELECT(VI, VF, (x) < (lo), lo, x))

/* every lane c */
#define NR_VSPLAT(VF, c) ((VF){0} + (c))
/* lanes of a where the comparison mask m is set, else of b (bitwise: C has no vector ?:) */
#define NR_VSELECT(VI, VF, m, a, b) ((VF)(((m) & (VI)(a)) | (~(m) & (VI)(b))))

NR_VEXP_INLINE nr_vf32
nr_vexp_f32(nr_vf32 x)
{
    /* 1.5 2^23: adding it rounds to an integer, kept in the low bits of the sum */
    const nr_vf32 magic = NR_VSPLAT(nr_vf32, 12582912.0f);
    const nr_vf32 lo = NR_VSPLAT(nr_vf32, -110.0f), hi = NR_VSPLAT(nr_vf32, 90.0f);
    x = NR_VEXP_CLAMP32(x, lo, hi);
    const nr_vf32 n = (x * 1.44269504088896341f + magic) - magic; /* in [-159, 130] */
    nr_vf32 r = x - n * 0.693359375f; /* exact: the constant has 9 significant bits */
    r = r - n * -2.12194440e-4f;
    nr_vf32 p = 1.9875691500e-4f * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    /* 2^n as 2^n1 2^n2, n1 = rint(n / 2): both in [-80, 65], normal */
    const nr_vf32 t1 = n * 0.5f + magic;
    const nr_vi32 n1 = (nr_vi32)t1 - (nr_vi32)magic;
    const nr_vi32 n2 = ((nr_vi32)(n + magic) - (nr_vi32)magic) - n1;
    const nr_vf32 s1 = (nr_vf32)((n1 + 127) << 23), s2 = (nr_vf32)((n2 + 127) << 23);
    return p * s1 * s2;
}

NR_VEXP_INLINE nr_vf64
nr_vexp_f64(nr_vf64 x)
{
    const nr_vf64 magic = NR_VSPLAT(nr_vf64, 6755399441055744.0); /* 1.5 2^52 */
    const nr_vf64 lo = NR_VSPLAT(nr_vf64, -750.0), hi = NR_VSPLAT(nr_vf64, 712.0);
    x = NR_VEXP_CLAMP64(x, lo, hi);
    /* in [-1082, 1028] */
    const nr_vf64 n = NR_VEXP_FMA64(x, NR_VSPLAT(nr_vf64, 1.4426950408889634), magic) - magic;
    /* fdlibm's ln 2 = ln2_hi + ln2_lo: ln2_hi's low 21 bits are 0, so n ln2_hi is exact */
    nr_vf64 r = NR_VEXP_FMA64(n, NR_VSPLAT(nr_vf64, -6.93147180369123816490e-01), x);
    r = NR_VEXP_FMA64(n, NR_VSPLAT(nr_vf64, -1.90821492927058770002e-10), r);
    /* P(r) = sum_k r^(k-2) / k! for k = 2..13 by Estrin's scheme: pairs, then pairs of pairs
     * (r^2, r^4, r^8), a chain of 4 fused steps where Horner's was 12: 0.86x the time on a
     * Zen 5 (avx512), 1.01 ulp where Horner's was 0.99 (the clamps above: 0.81x more) */
#define NR_VEXP_C64(c) NR_VSPLAT(nr_vf64, (c))
    const nr_vf64 r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    const nr_vf64 a0 = NR_VEXP_FMA64(r, NR_VEXP_C64(1.0 / 6.0), NR_VEXP_C64(0.5));
    const nr_vf64 a1 = NR_VEXP_FMA64(r, NR_VEXP_C64(1.0 / 120.0), NR_VEXP_C64(1.0 / 24.0));
    const nr_vf64 a2 = NR_VEXP_FMA64(r, NR_VEXP_C64(1.0 / 5040.0), NR_VEXP_C64(1.0 / 720.0));
    const nr_vf64 a3 =
        NR_VEXP_FMA64(r, NR_VEXP_C64(1.0 / 362880.0), NR_VEXP_C64(1.0 / 40320.0));
    const nr_vf64 a4 =
        NR_VEXP_FMA64(r, NR_VEXP_C64(1.0 / 39916800.0), NR_VEXP_C64(1.0 / 3628800.0));
    const nr_vf64 a5 =
        NR_VEXP_FMA64(r, NR_VEXP_C64(1.0 / 6227020800.0), NR_VEXP_C64(1.0 / 479001600.0));
#undef NR_VEXP_C64
    const nr_vf64 b0 = NR_VEXP_FMA64(a1, r2, a0), b1 = NR_VEXP_FMA64(a3, r2, a2);
    const nr_vf64 b2 = NR_VEXP_FMA64(a5, r2, a4);
    nr_vf64 p = NR_VEXP_FMA64(b2, r8, NR_VEXP_FMA64(b1, r4, b0));
    p = NR_VEXP_FMA64(p, r2, r) + 1.0;
    const nr_vf64 t1 = n * 0.5 + magic;
    const nr_vi64 n1 = (nr_vi64)t1 - (nr_vi64)magic; /* in [-541, 514] */
    const nr_vi64 n2 = ((nr_vi64)(n + magic) - (nr_vi64)magic) - n1;
    const nr_vf64 s1 = (nr_vf64)((n1 + 1023) << 52), s2 = (nr_vf64)((n2 + 1023) << 52);
    return p * s1 * s2;
}

#endif
