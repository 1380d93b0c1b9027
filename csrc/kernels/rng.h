/* Philox4x32-10 on `lanes` independent counters held as four arrays (structure of
 * arrays, so the compiler vectorizes the rounds across lanes). In place: the counters
 * are replaced by the generator's output words. */
#ifndef NR_RNG_H
#define NR_RNG_H

#include <stdint.h>

#define NR_PHILOX_M0 0xD2511F53u
#define NR_PHILOX_M1 0xCD9E8D57u
#define NR_PHILOX_W0 0x9E3779B9u /* golden ratio */
#define NR_PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

static inline void
nr_philox4x32_lanes(uint32_t *restrict c0, uint32_t *restrict c1, uint32_t *restrict c2,
                    uint32_t *restrict c3, int lanes, uint32_t k0, uint32_t k1)
{
    for (int round = 0; round < 10; round++) {
#pragma omp simd
        for (int j = 0; j < lanes; j++) {
            const uint64_t p0 = (uint64_t)NR_PHILOX_M0 * c0[j];
            const uint64_t p1 = (uint64_t)NR_PHILOX_M1 * c2[j];
            const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[j] ^ k0;
            const uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[j] ^ k1;
            c1[j] = (uint32_t)p1;
            c3[j] = (uint32_t)p0;
            c0[j] = n0;
            c2[j] = n2;
        }
        k0 += NR_PHILOX_W0; /* the key schedule ("bump") between rounds */
        k1 += NR_PHILOX_W1;
    }
}

#endif
