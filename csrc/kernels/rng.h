/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
 * counter-based generator. Output depends only on (counter, key), so any element's random
 * word can be computed independently, by any thread, in any order.
 *
 * This is the one definition of the generator: nr_philox4x32 (nr_rng.c, one counter) and
 * dropout's mask blocks (dropout.c, every tier) run these rounds; the tests check them
 * against Random123's known answers and a NumPy Philox on every tier.
 *
 * The rounds work on vectors of 64-bit lanes, one 32-bit word in the low half of each lane:
 * the 32 x 32 -> 64 products are then single pmuludq / vpmuludq (umull on NEON) instructions
 * with no widening shuffles. Only the low halves carry the words (the high halves may hold
 * garbage: every consumer, the products and nr_philox_lo, reads the low half only). The
 * vectors are NR_PHILOX_BYTES wide: the tier's register (NR_VEC_BYTES) in the kernel files,
 * 16 bytes elsewhere. */
#ifndef NR_RNG_H
#define NR_RNG_H

#include <stdint.h>

#if defined(__SSE2__)
#include <immintrin.h>
#elif defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#endif

#define NR_PHILOX_M0 0xD2511F53u
#define NR_PHILOX_M1 0xCD9E8D57u
#define NR_PHILOX_W0 0x9E3779B9u /* golden ratio */
#define NR_PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

#ifndef NR_PHILOX_BYTES
#ifdef NR_VEC_BYTES
#define NR_PHILOX_BYTES NR_VEC_BYTES
#else
#define NR_PHILOX_BYTES 16
#endif
#endif

typedef uint64_t nr_philox_v __attribute__((vector_size(NR_PHILOX_BYTES)));
#define NR_PHILOX_LANES ((int)(NR_PHILOX_BYTES / 8))
#define NR_PHILOX_INLINE static inline __attribute__((always_inline))

/* (low 32 bits of each lane of a) * m, as 64-bit products: the one instruction each ISA has
 * for it (a 64 x 64 multiply of the vector type would cost three) */
NR_PHILOX_INLINE nr_philox_v
nr_philox_mul(nr_philox_v a, uint32_t m)
{
#if defined(__SSE2__) && NR_PHILOX_BYTES == 64 && defined(__AVX512F__)
    return (nr_philox_v)_mm512_mul_epu32((__m512i)a, _mm512_set1_epi64(m));
#elif defined(__SSE2__) && NR_PHILOX_BYTES == 32 && defined(__AVX2__)
    return (nr_philox_v)_mm256_mul_epu32((__m256i)a, _mm256_set1_epi64x(m));
#elif defined(__SSE2__) && NR_PHILOX_BYTES == 16
    return (nr_philox_v)_mm_mul_epu32((__m128i)a, _mm_set1_epi64x(m));
#elif defined(__aarch64__) && defined(__ARM_NEON) && NR_PHILOX_BYTES == 16
    return (nr_philox_v)vmull_u32(vmovn_u64((uint64x2_t)a), vdup_n_u32(m));
#else
    return (a & 0xFFFFFFFFu) * (uint64_t)m;
#endif
}

/* the words themselves: each lane's low half, the high half cleared */
NR_PHILOX_INLINE nr_philox_v
nr_philox_lo(nr_philox_v a)
{
    return a & 0xFFFFFFFFu;
}

/* Rounds [r0, r1) of the ten on `CH` (a constant after inlining) independent sets of
 * counters, in place: c[h][0..3] are the counter words of set h on entry to round 0, the
 * output words after round 9 (high halves garbage). Independent sets let one round's multiply
 * latency hide behind the others'; a caller may run other work between two spans of rounds. */
NR_PHILOX_INLINE void
nr_philox4x32_v_rounds(nr_philox_v (*c)[4], const int CH, uint32_t k0, uint32_t k1, int r0,
                       int r1)
{
    k0 += (uint32_t)r0 * NR_PHILOX_W0; /* the key schedule ("bump") between rounds */
    k1 += (uint32_t)r0 * NR_PHILOX_W1;
    for (int round = r0; round < r1; round++) {
        for (int h = 0; h < CH; h++) {
            const nr_philox_v p0 = nr_philox_mul(c[h][0], NR_PHILOX_M0);
            const nr_philox_v p1 = nr_philox_mul(c[h][2], NR_PHILOX_M1);
            const nr_philox_v n0 = (p1 >> 32) ^ c[h][1] ^ (uint64_t)k0;
            const nr_philox_v n2 = (p0 >> 32) ^ c[h][3] ^ (uint64_t)k1;
            c[h][1] = p1;
            c[h][3] = p0;
            c[h][0] = n0;
            c[h][2] = n2;
        }
        k0 += NR_PHILOX_W0;
        k1 += NR_PHILOX_W1;
    }
}

/* The ten rounds (see nr_philox4x32_v_rounds) */
NR_PHILOX_INLINE void
nr_philox4x32_v(nr_philox_v (*c)[4], const int CH, uint32_t k0, uint32_t k1)
{
    nr_philox4x32_v_rounds(c, CH, k0, k1, 0, 10);
}

#endif
