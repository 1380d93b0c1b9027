/* Shared by the kernel family files (each compiled once per CPU tier, see nr_tier.h):
 * typed-body instantiation and OpenMP helpers. */
#ifndef NR_COMMON_H
#define NR_COMMON_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "nr_dispatch.h"
#include "nr_omp.h"
#include "nr_tier.h"

/* The tier's own names for the kernels: declared with the type of the kernel they implement,
 * so a definition that drifts from its contract in nr_kernels.h does not compile. */
#define NR_DECLARE_TIERED(name, unused) __typeof__(name) NR_TIERED(name);
NR_DISPATCHED_KERNELS(NR_DECLARE_TIERED, ~)
#undef NR_DECLARE_TIERED

#define NR_PASTE2(a, b) a##_##b
#define NR_PASTE(a, b) NR_PASTE2(a, b)
/* FN(nr_relu_forward) -> nr_relu_forward_f32_<tier> or nr_relu_forward_f64_<tier> */
#define FN(name) NR_TIERED(NR_PASTE(name, SFX))

/* Runs body(i0, i1) over [0, n) split into `nt` contiguous ranges whose bounds are
 * multiples of `align` (except n): on the calling thread when nt <= 1, with no OpenMP
 * region, so small calls pay no fork/join. */
#define NR_SPLIT(nt, n, align, CALL)                                                        \
    do {                                                                                    \
        const int64_t nr_n_ = (n), nr_al_ = (align);                                        \
        if ((nt) <= 1) {                                                                    \
            const int64_t i0 = 0, i1 = nr_n_;                                               \
            CALL;                                                                           \
        }                                                                                   \
        else {                                                                              \
            _Pragma("omp parallel num_threads(nt)")                                         \
            {                                                                               \
                const int nr_t_ = omp_get_thread_num(), nr_m_ = omp_get_num_threads();      \
                int64_t i0 = nr_n_ * nr_t_ / nr_m_ / nr_al_ * nr_al_;                       \
                int64_t i1 = nr_t_ + 1 == nr_m_ ? nr_n_                                     \
                                                : nr_n_ * (nr_t_ + 1) / nr_m_ / nr_al_ * nr_al_; \
                if (i0 < i1) {                                                              \
                    CALL;                                                                   \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    } while (0)

/* Each argument is evaluated exactly once: `NR_MIN(nthreads, nr_threads_for(bytes))` must not
 * read the (concurrently settable) thread count twice, or a team could outgrow the workspace
 * sized for `nthreads`. */
#define NR_MIN(a, b)                                                                        \
    __extension__({                                                                         \
        __typeof__(a) nr_min_a_ = (a);                                                      \
        __typeof__(b) nr_min_b_ = (b);                                                      \
        nr_min_a_ < nr_min_b_ ? nr_min_a_ : nr_min_b_;                                      \
    })
#define NR_MAX(a, b)                                                                        \
    __extension__({                                                                         \
        __typeof__(a) nr_max_a_ = (a);                                                      \
        __typeof__(b) nr_max_b_ = (b);                                                      \
        nr_max_a_ > nr_max_b_ ? nr_max_a_ : nr_max_b_;                                      \
    })

/* total (a double) = the sum of the T expression EXPR over J = 0 .. n-1: blocks of 256 summed
 * in T (vectorized), the block sums added in double, so long sums keep float32's accuracy. */
#define NR_BLOCKED_SUM(total, T, n, J, EXPR)                                                \
    do {                                                                                    \
        (total) = 0;                                                                        \
        for (int64_t nr_j0_ = 0; nr_j0_ < (n); nr_j0_ += 256) {                             \
            const int64_t nr_j1_ = NR_MIN((n), nr_j0_ + 256);                               \
            T nr_s_ = 0;                                                                    \
            _Pragma("omp simd reduction(+ : nr_s_)")                                        \
            for (int64_t J = nr_j0_; J < nr_j1_; J++) {                                     \
                nr_s_ += (EXPR);                                                            \
            }                                                                               \
            (total) += (double)nr_s_;                                                       \
        }                                                                                   \
    } while (0)

#endif
