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

/* The mask of block `block` (elements 256 block .. 256 block + 255) as 8 words of 32 bits:
 * bit e % 32 of word e / 32 for element e of the block. 64 Philox lanes side by side, so the
 * rounds vectorize across lanes (inlined into each CPU-specific clone of its caller). */
static inline __attribute__((always_inline)) void
nr_dropout_mask_block(uint32_t words[NR_DROPOUT_WORDS], uint64_t block, uint64_t threshold,
                      uint64_t seed, uint64_t offset)
{
    enum { G = NR_DROPOUT_BLOCK / 4 };
    /* Philox4x32-10 (as rng.h) with each 32-bit word held in a 64-bit lane: the 32 x 32 -> 64
     * products are then single vpmuludq instructions, with no widening shuffles. */
    uint64_t c0[G], c1[G], c2[G], c3[G];
#pragma omp simd
    for (int j = 0; j < G; j++) {
        const uint64_t group = block * G + (uint64_t)j;
        c0[j] = (uint32_t)group;
        c1[j] = (uint32_t)(group >> 32);
        c2[j] = (uint32_t)offset;
        c3[j] = (uint32_t)(offset >> 32);
    }
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
#pragma omp simd
        for (int j = 0; j < G; j++) {
            const uint64_t p0 = (uint64_t)NR_PHILOX_M0 * (uint32_t)c0[j];
            const uint64_t p1 = (uint64_t)NR_PHILOX_M1 * (uint32_t)c2[j];
            const uint64_t n0 = ((p1 >> 32) ^ c1[j] ^ k0) & 0xFFFFFFFFu;
            const uint64_t n2 = ((p0 >> 32) ^ c3[j] ^ k1) & 0xFFFFFFFFu;
            c1[j] = p1 & 0xFFFFFFFFu;
            c3[j] = p0 & 0xFFFFFFFFu;
            c0[j] = n0;
            c2[j] = n2;
        }
        k0 += NR_PHILOX_W0;
        k1 += NR_PHILOX_W1;
    }
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

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NR_DROPOUT_AVX512 1

/* Spreads the 8 bits of m to bits 0, 4, 8, ..., 28. */
static inline uint32_t
nr_spread4(uint32_t m)
{
    m = (m | m << 12) & 0x000F000Fu;
    m = (m | m << 6) & 0x03030303u;
    m = (m | m << 3) & 0x11111111u;
    return m;
}

/* nr_dropout_mask_block with AVX-512 intrinsics: 8 groups per register, a 32-bit word per
 * 64-bit lane so each 32 x 32 -> 64 product is one vpmuludq. Same output bit for bit. */
static __attribute__((target("avx512f"))) void
nr_dropout_mask_block_avx512(uint32_t words[NR_DROPOUT_WORDS], uint64_t block,
                             uint64_t threshold, uint64_t seed, uint64_t offset)
{
    const __m512i lo32 = _mm512_set1_epi64(0xFFFFFFFFll);
    const __m512i m0 = _mm512_set1_epi64(NR_PHILOX_M0), m1 = _mm512_set1_epi64(NR_PHILOX_M1);
    const __m512i thr = _mm512_set1_epi64((long long)threshold);
    const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i c2i = _mm512_set1_epi64((long long)(uint32_t)offset);
    const __m512i c3i = _mm512_set1_epi64((long long)(uint32_t)(offset >> 32));
    /* 4 independent chains at a time: a round's multiply latency hides behind the others */
    enum { CH = 4 };
    for (int q0 = 0; q0 < NR_DROPOUT_WORDS; q0 += CH) {
        __m512i c0[CH], c1[CH], c2[CH], c3[CH];
        for (int h = 0; h < CH; h++) {
            const __m512i group = _mm512_add_epi64(
                _mm512_set1_epi64((long long)(block * 64 + 8 * (uint64_t)(q0 + h))), lane);
            c0[h] = _mm512_and_si512(group, lo32);
            c1[h] = _mm512_srli_epi64(group, 32);
            c2[h] = c2i;
            c3[h] = c3i;
        }
        uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
        for (int round = 0; round < 10; round++) {
            const __m512i key0 = _mm512_set1_epi64(k0), key1 = _mm512_set1_epi64(k1);
            for (int h = 0; h < CH; h++) {
                const __m512i p0 = _mm512_mul_epu32(c0[h], m0), p1 = _mm512_mul_epu32(c2[h], m1);
                /* upper halves of the lanes carry garbage: only low 32 bits are read */
                c0[h] = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p1, 32), c1[h], key0, 0x96);
                c2[h] = _mm512_ternarylogic_epi64(_mm512_srli_epi64(p0, 32), c3[h], key1, 0x96);
                c1[h] = p1;
                c3[h] = p0;
            }
            k0 += NR_PHILOX_W0;
            k1 += NR_PHILOX_W1;
        }
        for (int h = 0; h < CH; h++) {
            const uint32_t b0 = _mm512_cmpge_epu64_mask(_mm512_and_si512(c0[h], lo32), thr);
            const uint32_t b1 = _mm512_cmpge_epu64_mask(_mm512_and_si512(c1[h], lo32), thr);
            const uint32_t b2 = _mm512_cmpge_epu64_mask(_mm512_and_si512(c2[h], lo32), thr);
            const uint32_t b3 = _mm512_cmpge_epu64_mask(_mm512_and_si512(c3[h], lo32), thr);
            words[q0 + h] = nr_spread4(b0) | nr_spread4(b1) << 1 | nr_spread4(b2) << 2 |
                            nr_spread4(b3) << 3;
        }
    }
}

static int
nr_have_avx512(void)
{
    static int have = -1;
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    return have;
}
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

static NR_CLONES void
nr_dropout_mask_range(uint8_t *mask, int64_t n, uint64_t threshold, uint64_t seed,
                      uint64_t offset, int64_t i0, int64_t i1)
{
    for (int64_t blk = i0 / NR_DROPOUT_BLOCK; blk * NR_DROPOUT_BLOCK < i1; blk++) {
        uint32_t words[NR_DROPOUT_WORDS];
#ifdef NR_DROPOUT_AVX512
        if (nr_have_avx512()) {
            nr_dropout_mask_block_avx512(words, (uint64_t)blk, threshold, seed, offset);
        }
        else
#endif
        {
            nr_dropout_mask_block(words, (uint64_t)blk, threshold, seed, offset);
        }
        nr_dropout_store_block(mask, words, (uint64_t)blk, n);
    }
}

void
nr_dropout_mask(uint8_t *mask, int64_t n, double p, uint64_t seed, uint64_t offset)
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
