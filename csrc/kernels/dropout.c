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

enum {
    NR_DROPOUT_BLOCK = 256, /* elements per generated block: 64 Philox calls, 8 mask words */
    NR_DROPOUT_WORDS = NR_DROPOUT_BLOCK / 32,
};

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

#if NR_TIER_IS(avx512)
#include "dropout_avx512.h" /* nr_dropout_mask_block_avx512: the same bits with intrinsics */
#define NR_DROPOUT_MASK_BLOCK nr_dropout_mask_block_avx512
#else
/* The mask of block `block` (elements 256 block .. 256 block + 255) as 8 words of 32 bits:
 * bit e % 32 of word e / 32 for element e of the block. 64 Philox lanes side by side, so the
 * rounds vectorize across lanes at the width of the tier being compiled. */
static inline __attribute__((always_inline)) void
nr_dropout_mask_block(uint32_t words[NR_DROPOUT_WORDS], uint64_t block, uint64_t threshold,
                      uint64_t seed, uint64_t offset)
{
    enum { G = NR_DROPOUT_BLOCK / 4 };
    uint64_t c0[G], c1[G], c2[G], c3[G];
#pragma omp simd
    for (int j = 0; j < G; j++) {
        const uint64_t group = block * G + (uint64_t)j;
        c0[j] = (uint32_t)group;
        c1[j] = (uint32_t)(group >> 32);
        c2[j] = (uint32_t)offset;
        c3[j] = (uint32_t)(offset >> 32);
    }
    nr_philox4x32_lanes(c0, c1, c2, c3, G, (uint32_t)seed, (uint32_t)(seed >> 32));
    /* element e of the block is word e % 4 of group e / 4: a nibble per group, and mask word
     * q holds the nibbles of groups 8q .. 8q + 7 */
    uint64_t nib[G];
#pragma omp simd
    for (int g = 0; g < G; g++) {
        nib[g] = (uint64_t)(c0[g] >= threshold) | (uint64_t)(c1[g] >= threshold) << 1 |
                 (uint64_t)(c2[g] >= threshold) << 2 | (uint64_t)(c3[g] >= threshold) << 3;
    }
    for (int q = 0; q < NR_DROPOUT_WORDS; q++) {
        uint32_t bits = 0;
        for (int h = 0; h < 8; h++) {
            bits |= (uint32_t)nib[8 * q + h] << (4 * h);
        }
        words[q] = bits;
    }
}

#define NR_DROPOUT_MASK_BLOCK nr_dropout_mask_block
#endif

/* Writes the block's mask bytes that exist for n elements, with bits past n cleared. */
static inline void
nr_dropout_store_block(uint8_t *mask, const uint32_t words[NR_DROPOUT_WORDS], uint64_t block,
                       int64_t n)
{
    const int64_t first = (int64_t)block * NR_DROPOUT_BLOCK;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (first + NR_DROPOUT_BLOCK <= n) { /* whole block: the words are the bytes */
        memcpy(mask + first / 8, words, NR_DROPOUT_BLOCK / 8);
        return;
    }
#endif
    for (int m = 0; m < NR_DROPOUT_BLOCK / 8; m++) {
        const int64_t e = first + 8 * m; /* first element of byte m */
        if (e >= n) {
            break;
        }
        uint8_t byte = (uint8_t)(words[m / 4] >> (8 * (m % 4)));
        if (n - e < 8) {
            byte &= (uint8_t)((1u << (n - e)) - 1);
        }
        mask[e / 8] = byte;
    }
}

/* The 32-bit mask word of elements [32 k, 32 k + 32) read from the packed bytes (n elements). */
static inline uint32_t
nr_dropout_load_word(const uint8_t *mask, int64_t k, int64_t n)
{
    const int64_t nbytes = (n + 7) / 8;
    uint32_t w = 0;
    for (int m = 0; m < 4; m++) {
        const int64_t byte = 4 * k + m;
        if (byte < nbytes) {
            w |= (uint32_t)mask[byte] << (8 * m);
        }
    }
    return w;
}

static void
nr_dropout_mask_range(uint8_t *mask, int64_t n, uint64_t threshold, uint64_t seed,
                      uint64_t offset, int64_t i0, int64_t i1)
{
    for (int64_t blk = i0 / NR_DROPOUT_BLOCK; blk * NR_DROPOUT_BLOCK < i1; blk++) {
        uint32_t words[NR_DROPOUT_WORDS];
        NR_DROPOUT_MASK_BLOCK(words, (uint64_t)blk, threshold, seed, offset);
        nr_dropout_store_block(mask, words, (uint64_t)blk, n);
    }
}

void
NR_TIERED(nr_dropout_mask)(uint8_t *mask, int64_t n, double p, uint64_t seed, uint64_t offset)
{
    const uint64_t threshold = nr_dropout_threshold(p);
    int nt = nr_threads_for((size_t)n * 4);
    NR_SPLIT(nt, n, NR_DROPOUT_BLOCK,
             nr_dropout_mask_range(mask, n, threshold, seed, offset, i0, i1));
}

#define NR_F32
#include "nr_typed.h"
#include "dropout_body.h"

#define NR_F64
#include "nr_typed.h"
#include "dropout_body.h"
