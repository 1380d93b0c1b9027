/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
 * counter-based generator. Output depends only on (counter, key), so any element's random
 * word can be computed independently, by any thread, in any order.
 *
 * This is the one definition of the generator: nr_philox4x32 (nr_rng.c) and dropout's mask
 * blocks (dropout.c) use it; a tier's hand-written body (dropout_avx512.h) must give the
 * same words bit for bit, which the tests check on every tier. */
#ifndef NR_RNG_H
#define NR_RNG_H

#include <stdint.h>

#define NR_PHILOX_M0 0xD2511F53u
#define NR_PHILOX_M1 0xCD9E8D57u
#define NR_PHILOX_W0 0x9E3779B9u /* golden ratio */
#define NR_PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

/* The ten rounds on `lanes` independent counters held as four arrays (structure of arrays,
 * so the compiler vectorizes the rounds across lanes), in place: the counter words are
 * replaced by the output words. Each 32-bit word sits in the low half of a 64-bit lane, so
 * the 32 x 32 -> 64 products are single pmuludq/vpmuludq (umull on NEON) instructions with
 * no widening shuffles; the high halves are always 0 on entry and on return. */
static inline __attribute__((always_inline)) void
nr_philox4x32_lanes(uint64_t *restrict c0, uint64_t *restrict c1, uint64_t *restrict c2,
                    uint64_t *restrict c3, int lanes, uint32_t k0, uint32_t k1)
{
    for (int round = 0; round < 10; round++) {
#pragma omp simd
        for (int j = 0; j < lanes; j++) {
            const uint64_t p0 = (uint64_t)NR_PHILOX_M0 * (uint32_t)c0[j];
            const uint64_t p1 = (uint64_t)NR_PHILOX_M1 * (uint32_t)c2[j];
            const uint64_t n0 = ((p1 >> 32) ^ c1[j] ^ k0) & 0xFFFFFFFFu;
            const uint64_t n2 = ((p0 >> 32) ^ c3[j] ^ k1) & 0xFFFFFFFFu;
            c1[j] = p1 & 0xFFFFFFFFu;
            c3[j] = p0 & 0xFFFFFFFFu;
            c0[j] = n0;
            c2[j] = n2;
        }
        k0 += NR_PHILOX_W0; /* the key schedule ("bump") between rounds */
        k1 += NR_PHILOX_W1;
    }
}

#endif
