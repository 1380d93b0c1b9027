/* The CPU tier a kernel file is being compiled for.
 *
 * Every kernel family file (csrc/kernels/<family>.c) is compiled once per tier, with that
 * tier's compiler flags and -DNR_TIER=<tier> (setup.py):
 *   x86-64:  avx512    -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma
 *            avx2      -mavx2 -mfma
 *            baseline  (x86-64's SSE2)
 *   aarch64: neon      (the baseline: every AArch64 CPU has NEON)
 *   other:   baseline
 * Its external functions carry the tier's suffix (FN(nr_relu_forward) is
 * nr_relu_forward_f32_avx2 in the avx2 file), and the dispatch table (nr_dispatch.h) points
 * at one tier's set, chosen at import for the CPU. Only the table reaches a tier's code, so
 * nothing in these files may run before the CPU check: no constructors, no exported helper
 * without the suffix.
 *
 * Tier-specific code: write the body once on vector-extension types of NR_VEC_BYTES and keep
 * the ISA-specific part to the one instruction the compiler would not find, chosen by width
 * (rng.h's 32 x 32 -> 64 multiply, dropout.c's byte-compare gather), the portable expression in
 * the #else. */
#ifndef NR_TIER_H
#define NR_TIER_H

#define NR_TIER_ID_baseline 1
#define NR_TIER_ID_avx2 2
#define NR_TIER_ID_avx512 3
#define NR_TIER_ID_neon 4

#define NR_TIER_CAT2(a, b) a##b
#define NR_TIER_CAT(a, b) NR_TIER_CAT2(a, b)
#define NR_TIER_PASTE2(a, b) a##_##b
#define NR_TIER_PASTE(a, b) NR_TIER_PASTE2(a, b)

#ifndef NR_TIER
#error "kernel family files are compiled once per CPU tier with -DNR_TIER=<tier> (setup.py)"
#endif
#if !NR_TIER_CAT(NR_TIER_ID_, NR_TIER)
#error "NR_TIER must be baseline, avx2, avx512 or neon"
#endif

/* #if NR_TIER_IS(avx2): true in the avx2 tier's compilation only */
#define NR_TIER_IS(tier) (NR_TIER_CAT(NR_TIER_ID_, NR_TIER) == NR_TIER_ID_##tier)

/* name -> name_<tier>, for the external functions of a tier's file */
#define NR_TIERED(name) NR_TIER_PASTE(name, NR_TIER)

/* The tier's natural vector width in bytes: vector-extension types of this size map to one
 * register (wider ones would be split, and change the ABI of functions that pass them). */
#if NR_TIER_IS(avx512)
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512DQ__) ||               \
    !defined(__AVX512VL__) || !defined(__AVX2__) || !defined(__FMA__)
#error                                                                                         \
    "the avx512 tier is compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma"
#endif
#define NR_VEC_BYTES 64
#elif NR_TIER_IS(avx2)
#if !defined(__AVX2__) || !defined(__FMA__)
#error "the avx2 tier is compiled with -mavx2 -mfma"
#endif
#define NR_VEC_BYTES 32
#else
#define NR_VEC_BYTES 16
#endif

#endif
