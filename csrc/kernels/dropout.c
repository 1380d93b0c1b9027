/* Inverted dropout: each element is kept with probability 1 - p and scaled by 1 / (1 - p),
 * else set to 0 (exactly 0, also where x is NaN or Inf).
 *
 * The keep decision for element i of a call compares a 32-bit uniform number u(i) with the
 * threshold t = floor(p 2^32): kept when u(i) >= t. Its top byte is byte i % 16 (little-endian)
 * of Philox4x32-10's output for key = seed (64 bits) and counter = (i / 16 as 64 bits, offset
 * as 64 bits); that byte alone decides unless it equals t's top byte (1 element in 256), and
 * then its low 24 bits are bits 8..31 of word 0 of Philox for counter (i as 64 bits with bit 63
 * set, offset): a counter no byte group uses. A byte per element, not a word, takes a quarter
 * of the Philox rounds (the forward was bound by them), with the exact probability of a
 * 32-bit comparison. It depends on nothing else, so a seed gives the same mask for any number
 * of threads. The mask is 1 bit per element: bit i % 8 of byte i / 8; bits past n are 0. */
#include "nr_common.h"
#include "rng.h"

enum {
    NR_DROPOUT_BLOCK = 1024, /* elements per generated block: 64 Philox calls, 16 mask words */
    NR_DROPOUT_WORDS = NR_DROPOUT_BLOCK / 64,
    NR_DROPOUT_GROUPS = NR_DROPOUT_BLOCK / 16, /* 16 elements (bytes) a Philox call */
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

#ifndef NR_DROPOUT_SPAN
/* rounds between two shares of the apply interleaved with them (nr_dropout_mask_block): on
 * avx512 a step's share is 512 elements, applied after every 2 rounds instead of after all
 * 10 (0.84-0.87x the forward's time at 8192 x 1024 on a Xeon with AVX-512); on the narrower
 * tiers a step's share is 64-128 elements already, and splitting it spilled registers */
#define NR_DROPOUT_SPAN (NR_PHILOX_BYTES == 64 ? 2 : 10)
#endif
#ifndef NR_DROPOUT_CHAINS
/* counter vectors through the rounds at once: enough independent multiplies to hide their
 * latency, few enough that the 4 words of each stay in registers (16 of them on avx2 and
 * SSE2, 32 on avx512) */
#define NR_DROPOUT_CHAINS (NR_PHILOX_BYTES == 64 ? 4 : 2)
#endif

/* Two vectors whose lane l holds bytes 0..7 (a) and 8..15 (b) of the group in lane l, to the
 * groups' 16 bytes in element order: the first half of the groups (lo) and the second (hi).
 * One two-source permute on avx512, unpacks (and a lane swap on avx2) below. */
#if NR_PHILOX_BYTES == 64
#define NR_BYTES_LO 0, 8, 1, 9, 2, 10, 3, 11
#define NR_BYTES_HI 4, 12, 5, 13, 6, 14, 7, 15
#elif NR_PHILOX_BYTES == 32
#define NR_BYTES_LO 0, 4, 1, 5
#define NR_BYTES_HI 2, 6, 3, 7
#else
#define NR_BYTES_LO 0, 2
#define NR_BYTES_HI 1, 3
#endif
#if defined(__clang__)
#define NR_SHUFFLE2(a, b, ...) __builtin_shufflevector((a), (b), __VA_ARGS__)
#else
#define NR_SHUFFLE2(a, b, ...) __builtin_shuffle((a), (b), (nr_philox_v){__VA_ARGS__})
#endif

/* For the bytes of v in element order (v's k-th byte in memory is element k): bit k of *keep
 * is byte k > t8, bit k of *tie is byte k == t8. */
static inline __attribute__((always_inline)) void
nr_dropout_byte_bits(nr_philox_v v, uint8_t t8, uint64_t *keep, uint64_t *tie)
{
#if defined(__AVX512BW__) && NR_PHILOX_BYTES == 64
    const __m512i t = _mm512_set1_epi8((char)t8);
    *keep = (uint64_t)_mm512_cmpgt_epu8_mask((__m512i)v, t);
    *tie = (uint64_t)_mm512_cmpeq_epi8_mask((__m512i)v, t);
#elif (defined(__AVX2__) && NR_PHILOX_BYTES == 32) ||                                          \
    (defined(__SSE2__) && NR_PHILOX_BYTES == 16)
    typedef uint8_t bv __attribute__((vector_size(NR_PHILOX_BYTES)));
    const bv b = (bv)v, t = (bv){0} + t8;
    const bv gt = (bv)(b > t), eq = (bv)(b == t);
#if NR_PHILOX_BYTES == 32
    *keep = (uint32_t)_mm256_movemask_epi8((__m256i)gt);
    *tie = (uint32_t)_mm256_movemask_epi8((__m256i)eq);
#else
    *keep = (uint32_t)_mm_movemask_epi8((__m128i)gt);
    *tie = (uint32_t)_mm_movemask_epi8((__m128i)eq);
#endif
#elif defined(__aarch64__) && defined(__ARM_NEON) && NR_PHILOX_BYTES == 16
    /* no movemask: each byte's bit weight, summed across each half */
    const uint8x16_t b = vreinterpretq_u8_u64((uint64x2_t)v), t = vdupq_n_u8(t8);
    const uint8x16_t w = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t gt = vandq_u8(vcgtq_u8(b, t), w), eq = vandq_u8(vceqq_u8(b, t), w);
    *keep = vaddv_u8(vget_low_u8(gt)) | (uint64_t)vaddv_u8(vget_high_u8(gt)) << 8;
    *tie = vaddv_u8(vget_low_u8(eq)) | (uint64_t)vaddv_u8(vget_high_u8(eq)) << 8;
#else
    uint64_t k = 0, e = 0;
    for (int l = 0; l < NR_PHILOX_LANES; l++) {
        for (int m = 0; m < 8; m++) { /* byte m of lane l's value: element 8 l + m */
            const uint8_t byte = (uint8_t)(v[l] >> (8 * m));
            k |= (uint64_t)(byte > t8) << (8 * l + m);
            e |= (uint64_t)(byte == t8) << (8 * l + m);
        }
    }
    *keep = k;
    *tie = e;
#endif
}

/* Work interleaved with a block's rounds (see nr_dropout_mask_block): called with [q0, q1), a
 * share of the 32-element pieces [0, NR_DROPOUT_BLOCK / 32) of another block. */
typedef void (*nr_dropout_slice_fn)(void *ctx, int q0, int q1);

/* The mask of block `block` (elements 1024 block .. 1024 block + 1023) as 16 words of 64 bits:
 * bit e % 64 of word e / 64 for element e of the block. The groups go through the rounds
 * NR_PHILOX_LANES to a vector, NR_DROPOUT_CHAINS vectors at a time; the elements whose byte
 * ties with the threshold's are collected and decided at the end, NR_PHILOX_LANES at a time.
 * With `slice` (a constant after inlining), slice(ctx, ...) runs a share of the pieces after
 * every NR_DROPOUT_SPAN rounds of each step, all of them by the end: the forward applies the
 * block before this one there, so that its loads and stores overlap these rounds (run one
 * after the other, the memory idled through the rounds). */
static inline __attribute__((always_inline)) void
nr_dropout_mask_block(uint64_t words[NR_DROPOUT_WORDS], uint64_t block, uint64_t threshold,
                      uint64_t seed, uint64_t offset, nr_dropout_slice_fn slice, void *ctx)
{
    enum { L = NR_PHILOX_LANES, CH = NR_DROPOUT_CHAINS, G = NR_DROPOUT_GROUPS };
    enum { STEPS = G / (CH * L), PIECES = NR_DROPOUT_BLOCK / 32, PARTS = 10 / NR_DROPOUT_SPAN };
    _Static_assert(10 % NR_DROPOUT_SPAN == 0, "NR_DROPOUT_SPAN divides the 10 rounds");
    if (threshold == 0 || threshold >> 32) { /* keep all, keep none */
        memset(words, threshold ? 0 : 0xFF, NR_DROPOUT_WORDS * sizeof(uint64_t));
        if (slice) {
            slice(ctx, 0, PIECES);
        }
        return;
    }
    const uint8_t t8 = (uint8_t)(threshold >> 24);
    const uint64_t t24 = threshold & 0xFFFFFF;
    const uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    uint16_t ties[NR_DROPOUT_BLOCK];
    int nties = 0;
    memset(words, 0, NR_DROPOUT_WORDS * sizeof(uint64_t));
    nr_philox_v lane;
    for (int l = 0; l < L; l++) {
        lane[l] = (uint64_t)l;
    }
    for (int g0 = 0; g0 < G; g0 += CH * L) {
        nr_philox_v c[CH][4];
        for (int h = 0; h < CH; h++) {
            const nr_philox_v group = block * G + (uint64_t)(g0 + h * L) + lane;
            c[h][0] = group; /* the low half: the high half is not read */
            c[h][1] = group >> 32;
            c[h][2] = (nr_philox_v){0} + (uint64_t)(uint32_t)offset;
            c[h][3] = (nr_philox_v){0} + (offset >> 32);
        }
        if (slice) { /* the step's share of the pieces, spread over its rounds */
            for (int r = 0; r < 10; r += NR_DROPOUT_SPAN) {
                nr_philox4x32_v_rounds(c, CH, k0, k1, r, r + NR_DROPOUT_SPAN);
                const int part = g0 / (CH * L) * PARTS + r / NR_DROPOUT_SPAN;
                slice(ctx, part * PIECES / (STEPS * PARTS),
                      (part + 1) * PIECES / (STEPS * PARTS));
            }
        }
        else {
            nr_philox4x32_v(c, CH, k0, k1);
        }
        for (int h = 0; h < CH; h++) {
            const nr_philox_v a = nr_philox_lo(c[h][0]) | c[h][1] << 32; /* bytes 0..7 */
            const nr_philox_v b = nr_philox_lo(c[h][2]) | c[h][3] << 32; /* bytes 8..15 */
            const nr_philox_v half[2] = {NR_SHUFFLE2(a, b, NR_BYTES_LO),
                                         NR_SHUFFLE2(a, b, NR_BYTES_HI)};
            for (int s = 0; s < 2; s++) {
                const int e = (g0 + h * L + s * (L / 2)) * 16; /* its first element */
                uint64_t keep, tie;
                nr_dropout_byte_bits(half[s], t8, &keep, &tie);
                words[e / 64] |= keep << (e % 64);
                for (; tie; tie &= tie - 1) {
                    ties[nties++] = (uint16_t)(e + __builtin_ctzll(tie));
                }
            }
        }
    }
    for (int t0 = 0; t0 < nties; t0 += L) {
        uint64_t lo[L], hi[L];
        for (int l = 0; l < L; l++) {
            const uint64_t i = block * NR_DROPOUT_BLOCK + ties[t0 + l < nties ? t0 + l : t0];
            lo[l] = i;
            hi[l] = (i >> 32) | 0x80000000u; /* i >> 32 is below 2^31 for any n */
        }
        nr_philox_v c[1][4];
        memcpy(&c[0][0], lo, sizeof lo);
        memcpy(&c[0][1], hi, sizeof hi);
        c[0][2] = (nr_philox_v){0} + (uint64_t)(uint32_t)offset;
        c[0][3] = (nr_philox_v){0} + (offset >> 32);
        nr_philox4x32_v(c, 1, k0, k1);
        for (int l = 0; l < L && t0 + l < nties; l++) {
            const int e = ties[t0 + l];
            words[e / 64] |= (uint64_t)((uint32_t)c[0][0][l] >> 8 >= t24) << (e % 64);
        }
    }
}

/* Writes the block's mask bytes that exist for n elements, with bits past n cleared. */
static inline void
nr_dropout_store_block(uint8_t *mask, const uint64_t words[NR_DROPOUT_WORDS], uint64_t block,
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
        uint8_t byte = (uint8_t)(words[m / 8] >> (8 * (m % 8)));
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
        uint64_t words[NR_DROPOUT_WORDS];
        nr_dropout_mask_block(words, (uint64_t)blk, threshold, seed, offset, NULL, NULL);
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
