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

#ifndef NR_DROPOUT_CHAINS
/* counter vectors through the rounds at once: enough independent multiplies to hide their
 * latency, few enough that the 4 words of each stay in registers (16 of them on avx2 and
 * SSE2, 32 on avx512) */
#define NR_DROPOUT_CHAINS (NR_PHILOX_BYTES == 64 ? 4 : 2)
#endif

/* Bit l: lane l's word (low half) >= threshold. The word minus the threshold, both below
 * 2^32 + 1, is negative exactly when the word is smaller, so the keep bits are the inverted
 * sign bits, which every x86 tier gathers in one instruction. */
static inline __attribute__((always_inline)) uint32_t
nr_dropout_keep_bits(nr_philox_v c, nr_philox_v threshold)
{
    const nr_philox_v d = nr_philox_lo(c) - threshold;
    const uint32_t all = (1u << NR_PHILOX_LANES) - 1;
#if defined(__AVX512DQ__) && NR_PHILOX_BYTES == 64
    /* through a byte in memory: gcc 12 with AVX512BW at -O1 (the sanitizer build) spilled a
     * mask register as one byte and reloaded 32 bits, garbage above bit 7 */
    volatile uint8_t byte = (uint8_t)_mm512_movepi64_mask((__m512i)d);
    return ~(uint32_t)byte & all;
#elif defined(__AVX2__) && NR_PHILOX_BYTES == 32
    return ~(uint32_t)_mm256_movemask_pd((__m256d)d) & all;
#elif defined(__SSE2__) && NR_PHILOX_BYTES == 16
    return ~(uint32_t)_mm_movemask_pd((__m128d)d) & all;
#else
    uint32_t bits = 0;
    for (int l = 0; l < NR_PHILOX_LANES; l++) {
        bits |= (uint32_t)(d[l] >> 63) << l;
    }
    return ~bits & all;
#endif
}

/* Bits 0..7 of m spread to bits 0, 4, 8, ..., 28, from a table (the shifts and masks that
 * compute it cost about as much as the Philox rounds on avx2) */
#define NR_SPREAD4(m)                                                                          \
    ((uint32_t)((m) & 1) | (uint32_t)((m) & 2) << 3 | (uint32_t)((m) & 4) << 6 |               \
     (uint32_t)((m) & 8) << 9 | (uint32_t)((m) & 16) << 12 | (uint32_t)((m) & 32) << 15 |      \
     (uint32_t)((m) & 64) << 18 | (uint32_t)((m) & 128) << 21)
#define NR_SPREAD4_4(m)                                                                        \
    NR_SPREAD4(m), NR_SPREAD4((m) + 1), NR_SPREAD4((m) + 2), NR_SPREAD4((m) + 3)
#define NR_SPREAD4_16(m)                                                                       \
    NR_SPREAD4_4(m), NR_SPREAD4_4((m) + 4), NR_SPREAD4_4((m) + 8), NR_SPREAD4_4((m) + 12)
#define NR_SPREAD4_64(m)                                                                       \
    NR_SPREAD4_16(m), NR_SPREAD4_16((m) + 16), NR_SPREAD4_16((m) + 32), NR_SPREAD4_16((m) + 48)
static const uint32_t nr_spread4_table[256] = {NR_SPREAD4_64(0), NR_SPREAD4_64(64),
                                               NR_SPREAD4_64(128), NR_SPREAD4_64(192)};
#define nr_spread4(m) nr_spread4_table[(m)]

/* The mask of block `block` (elements 256 block .. 256 block + 255) as 8 words of 32 bits:
 * bit e % 32 of word e / 32 for element e of the block, which is word e % 4 of Philox group
 * e / 4 (mask word q holds the nibbles of groups 8q .. 8q + 7). The groups go through the
 * rounds NR_PHILOX_LANES to a vector, NR_DROPOUT_CHAINS vectors at a time. */
static inline __attribute__((always_inline)) void
nr_dropout_mask_block(uint32_t words[NR_DROPOUT_WORDS], uint64_t block, uint64_t threshold,
                      uint64_t seed, uint64_t offset)
{
    enum { L = NR_PHILOX_LANES, CH = NR_DROPOUT_CHAINS, NV = NR_DROPOUT_BLOCK / 4 / L };
    nr_philox_v lane, thr;
    for (int l = 0; l < L; l++) {
        lane[l] = (uint64_t)l;
        thr[l] = threshold;
    }
    for (int q = 0; q < NR_DROPOUT_WORDS; q++) {
        words[q] = 0;
    }
    for (int v0 = 0; v0 < NV; v0 += CH) {
        nr_philox_v c[CH][4];
        for (int h = 0; h < CH; h++) {
            const nr_philox_v group =
                block * (NR_DROPOUT_BLOCK / 4) + (uint64_t)((v0 + h) * L) + lane;
            c[h][0] = group; /* the low half: the high half is not read */
            c[h][1] = group >> 32;
            c[h][2] = (nr_philox_v){0} + (uint64_t)(uint32_t)offset;
            c[h][3] = (nr_philox_v){0} + (offset >> 32);
        }
        nr_philox4x32_v(c, CH, (uint32_t)seed, (uint32_t)(seed >> 32));
        for (int h = 0; h < CH; h++) {
            const int g0 = (v0 + h) * L; /* the vector's first group */
            const uint32_t nib = nr_spread4(nr_dropout_keep_bits(c[h][0], thr)) |
                                 nr_spread4(nr_dropout_keep_bits(c[h][1], thr)) << 1 |
                                 nr_spread4(nr_dropout_keep_bits(c[h][2], thr)) << 2 |
                                 nr_spread4(nr_dropout_keep_bits(c[h][3], thr)) << 3;
            words[g0 / 8] |= nib << (4 * (g0 % 8));
        }
    }
}

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
        nr_dropout_mask_block(words, (uint64_t)blk, threshold, seed, offset);
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
