/* Inverted dropout: each element is kept with probability 1 - p and scaled by 1 / (1 - p),
 * else set to 0 (exactly 0, also where x is NaN or Inf).
 *
 * The keep decision for element i of a call comes from Philox4x32-10 with
 *   key = seed (64 bits), counter = (i / 4 as 64 bits, offset as 64 bits), word i % 4:
 * element i is kept when its word >= p * 2^32. It depends on nothing else, so a seed gives
 * the same mask for any number of threads. The mask is 1 bit per element: bit i % 8 of
 * byte i / 8; bits past n are 0. */
#include "nr_common.h"
#include "rng.h"

enum { NR_DROPOUT_BLOCK = 64 }; /* elements per generated block: 16 Philox calls, 8 mask bytes */

static inline uint64_t
nr_dropout_threshold(double p)
{
    if (!(p > 0)) {
        return 0; /* keep all */
    }
    if (p >= 1) {
        return (uint64_t)1 << 32; /* keep none */
    }
    return (uint64_t)(p * 4294967296.0);
}

/* The 8 mask bytes of block `block` (elements 64 block .. 64 block + 63). */
static inline void
nr_dropout_mask_block(uint8_t bytes[8], uint64_t block, uint64_t threshold, uint64_t seed,
                      uint64_t offset)
{
    uint32_t c0[16], c1[16], c2[16], c3[16];
    for (int j = 0; j < 16; j++) {
        const uint64_t group = block * 16 + (uint64_t)j;
        c0[j] = (uint32_t)group;
        c1[j] = (uint32_t)(group >> 32);
        c2[j] = (uint32_t)offset;
        c3[j] = (uint32_t)(offset >> 32);
    }
    nr_philox4x32_lanes(c0, c1, c2, c3, 16, (uint32_t)seed, (uint32_t)(seed >> 32));
    /* element e of the block is word e % 4 of group e / 4; byte m holds groups 2m, 2m+1 */
    for (int m = 0; m < 8; m++) {
        unsigned bits = 0;
        for (int half = 0; half < 2; half++) {
            const int g = 2 * m + half;
            bits |= (unsigned)((uint64_t)c0[g] >= threshold) << (4 * half + 0);
            bits |= (unsigned)((uint64_t)c1[g] >= threshold) << (4 * half + 1);
            bits |= (unsigned)((uint64_t)c2[g] >= threshold) << (4 * half + 2);
            bits |= (unsigned)((uint64_t)c3[g] >= threshold) << (4 * half + 3);
        }
        bytes[m] = (uint8_t)bits;
    }
}

/* Writes the block's mask bytes that exist for n elements, with bits past n cleared. */
static inline void
nr_dropout_store_block(uint8_t *mask, const uint8_t bytes[8], uint64_t block, int64_t n)
{
    const int64_t first = (int64_t)block * NR_DROPOUT_BLOCK;
    for (int m = 0; m < 8; m++) {
        const int64_t e = first + 8 * m; /* first element of byte m */
        if (e >= n) {
            break;
        }
        uint8_t byte = bytes[m];
        if (n - e < 8) {
            byte &= (uint8_t)((1u << (n - e)) - 1);
        }
        mask[e / 8] = byte;
    }
}

void
nr_dropout_mask(uint8_t *mask, int64_t n, double p, uint64_t seed, uint64_t offset)
{
    const uint64_t threshold = nr_dropout_threshold(p);
    const int64_t nblocks = (n + NR_DROPOUT_BLOCK - 1) / NR_DROPOUT_BLOCK;
    int nt = nr_threads_for((size_t)n * 4);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        uint8_t bytes[8];
        nr_dropout_mask_block(bytes, (uint64_t)blk, threshold, seed, offset);
        nr_dropout_store_block(mask, bytes, (uint64_t)blk, n);
    }
}

#define NR_F32
#include "nr_typed.h"
#include "dropout_body.h"

#define NR_F64
#include "nr_typed.h"
#include "dropout_body.h"
