/* exp on vectors of the tier's width (NR_VEC_BYTES, nr_tier.h), for the softmax: the C
 * library's expf / exp are scalar calls, 10-20x the cost of the memory traffic around them.
 *
 * exp(x) = 2^n exp(r), n = rint(x log2 e), r = x - n ln 2 with ln 2 in two parts (Cody and
 * Waite) so that r is exact to T's precision, |r| <= ln 2 / 2; exp(r) = 1 + r + r^2 P(r):
 *   float32: Cephes expf's degree-5 P (tests: within 2 ulp of the exact value),
 *   float64: Taylor's to degree 13 (truncation below 5e-18; within 2 ulp).
 * 2^n is applied as two powers of 2 of half the exponent each, so results in the subnormal
 * range are rounded once and 2^128 (2^1024) before the rounding down does not overflow.
 * Arguments are clamped first to a range whose ends give inf and 0: +inf -> inf,
 * -inf -> 0, NaN -> NaN, as expf / exp. The same operations in every lane at every width.
 * float32: no FMA (-ffp-contract=off), so its results are identical on every tier (within
 * 0.98 ulp over all float32; with FMA 1.01). float64: the reduction and the polynomial's steps
 * are fused multiply-adds where the tier has them (avx2, avx512; separate on SSE2 and NEON),
 * within 1 ulp either way: the softmax cross-entropy forward, whose exponentials are double,
 * took 0.73x the time at 1024 x 1000 on a Zen 5 (avx512). */
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
 * -ffp-contract=off) */
#if defined(__FMA__) && NR_VEC_BYTES == 64
#include <immintrin.h>
#define NR_VEXP_FMA64(a, b, c)                                                                 \
    (nr_vf64) _mm512_fmadd_pd((__m512d)(a), (__m512d)(b), (__m512d)(c))
#elif defined(__FMA__) && NR_VEC_BYTES == 32
#include <immintrin.h>
#define NR_VEXP_FMA64(a, b, c)                                                                 \
    (nr_vf64) _mm256_fmadd_pd((__m256d)(a), (__m256d)(b), (__m256d)(c))
#else
#define NR_VEXP_FMA64(a, b, c) ((a) * (b) + (c))
#endif

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
    x = NR_VSELECT(nr_vi32, nr_vf32, x < lo, lo, x); /* NaN compares false: kept */
    x = NR_VSELECT(nr_vi32, nr_vf32, x > hi, hi, x);
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
    x = NR_VSELECT(nr_vi64, nr_vf64, x < lo, lo, x);
    x = NR_VSELECT(nr_vi64, nr_vf64, x > hi, hi, x);
    /* in [-1082, 1028] */
    const nr_vf64 n = NR_VEXP_FMA64(x, NR_VSPLAT(nr_vf64, 1.4426950408889634), magic) - magic;
    /* fdlibm's ln 2 = ln2_hi + ln2_lo: ln2_hi's low 21 bits are 0, so n ln2_hi is exact */
    nr_vf64 r = NR_VEXP_FMA64(n, NR_VSPLAT(nr_vf64, -6.93147180369123816490e-01), x);
    r = NR_VEXP_FMA64(n, NR_VSPLAT(nr_vf64, -1.90821492927058770002e-10), r);
#define NR_VEXP_STEP64(c) p = NR_VEXP_FMA64(p, r, NR_VSPLAT(nr_vf64, (c)))
    nr_vf64 p = NR_VSPLAT(nr_vf64, 1.0 / 6227020800.0); /* 1/13! */
    NR_VEXP_STEP64(1.0 / 479001600.0);
    NR_VEXP_STEP64(1.0 / 39916800.0);
    NR_VEXP_STEP64(1.0 / 3628800.0);
    NR_VEXP_STEP64(1.0 / 362880.0);
    NR_VEXP_STEP64(1.0 / 40320.0);
    NR_VEXP_STEP64(1.0 / 5040.0);
    NR_VEXP_STEP64(1.0 / 720.0);
    NR_VEXP_STEP64(1.0 / 120.0);
    NR_VEXP_STEP64(1.0 / 24.0);
    NR_VEXP_STEP64(1.0 / 6.0);
    NR_VEXP_STEP64(0.5);
#undef NR_VEXP_STEP64
    p = NR_VEXP_FMA64(p, r * r, r) + 1.0;
    const nr_vf64 t1 = n * 0.5 + magic;
    const nr_vi64 n1 = (nr_vi64)t1 - (nr_vi64)magic; /* in [-541, 514] */
    const nr_vi64 n2 = ((nr_vi64)(n + magic) - (nr_vi64)magic) - n1;
    const nr_vf64 s1 = (nr_vf64)((n1 + 1023) << 52), s2 = (nr_vf64)((n2 + 1023) << 52);
    return p * s1 * s2;
}

#endif
