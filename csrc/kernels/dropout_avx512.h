/* The avx512 tier's dropout mask block (included by dropout.c in that tier only): Philox
 * with AVX-512 intrinsics, 8 groups per register, a 32-bit word per 64-bit lane so each
 * 32 x 32 -> 64 product is one vpmuludq and each round's three-way XOR one vpternlogq. The
 * same bits as the portable nr_dropout_mask_block (rng.h's rounds), which the tests check
 * on every tier against a NumPy Philox. */
#include <immintrin.h>

/* The 8 bits of an 8-lane compare as a uint32_t, through a byte in memory: gcc 12 with
 * AVX512BW at -O1 (the sanitizer build) spilled such a mask as one byte and reloaded 32 bits,
 * garbage above bit 7 (wrong dropout masks); a volatile byte load zero-extends for certain. */
static inline uint32_t
nr_mask8_u32(__mmask8 m)
{
    volatile uint8_t byte = m;
    return byte;
}

/* Spreads the 8 bits of m to bits 0, 4, 8, ..., 28. */
static inline uint32_t
nr_spread4(uint32_t m)
{
    m = (m | m << 12) & 0x000F000Fu;
    m = (m | m << 6) & 0x03030303u;
    m = (m | m << 3) & 0x11111111u;
    return m;
}

/* nr_dropout_mask_block's words for block `block` */
static inline void
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
            const uint32_t b0 =
                nr_mask8_u32(_mm512_cmpge_epu64_mask(_mm512_and_si512(c0[h], lo32), thr));
            const uint32_t b1 =
                nr_mask8_u32(_mm512_cmpge_epu64_mask(_mm512_and_si512(c1[h], lo32), thr));
            const uint32_t b2 =
                nr_mask8_u32(_mm512_cmpge_epu64_mask(_mm512_and_si512(c2[h], lo32), thr));
            const uint32_t b3 =
                nr_mask8_u32(_mm512_cmpge_epu64_mask(_mm512_and_si512(c3[h], lo32), thr));
            words[q0 + h] = nr_spread4(b0) | nr_spread4(b1) << 1 | nr_spread4(b2) << 2 |
                            nr_spread4(b3) << 3;
        }
    }
}
