/* CBLAS names for the OpenBLAS the build chose (see setup.py). */
#ifndef NR_BLAS_H
#define NR_BLAS_H

#include <cblas.h>
#include <stdint.h>

#include "nr_kernels.h"
#include "nr_omp.h"

#if defined(NR_BLAS_SCIPY_OPENBLAS)
/* scipy-openblas32 prefixes every symbol with scipy_ */
#define NR_CBLAS(name) scipy_cblas_##name
#define nr_blas_set_num_threads scipy_openblas_set_num_threads
#define NR_BLAS_THREADS_LOCAL scipy_openblas_set_num_threads_local
#define nr_blas_get_num_threads scipy_openblas_get_num_threads
#define nr_blas_get_config scipy_openblas_get_config
#define nr_blas_get_corename scipy_openblas_get_corename
#define nr_blas_get_parallel scipy_openblas_get_parallel
#else
#define NR_CBLAS(name) cblas_##name
#define nr_blas_set_num_threads openblas_set_num_threads
#define NR_BLAS_THREADS_LOCAL openblas_set_num_threads_local
#define nr_blas_get_num_threads openblas_get_num_threads
#define nr_blas_get_config openblas_get_config
#define nr_blas_get_corename openblas_get_corename
#define nr_blas_get_parallel openblas_get_parallel
#endif

/* OpenBLAS >= 0.3.27 sets a thread count for the calling thread's next calls only; weak, so
 * an older system OpenBLAS without it still links (the calls then keep the global count). */
int NR_BLAS_THREADS_LOCAL(int num_threads) __attribute__((weak));

/* Threads worth giving one GEMM: the output (M, N) over a K-long inner product. Skinny or
 * small products run single-threaded (on 2 threads the 512 -> 10 layer ran 2.5x slower). */
static inline int
nr_gemm_threads(int64_t M, int64_t N, int64_t K, int nthreads)
{
    if (nthreads <= 1 || M < 64 || N < 64 || (double)M * (double)N * (double)K < 4e6) {
        return 1;
    }
    return nthreads;
}

/* Runs the statement with OpenBLAS limited to `threads`, then restores normreg's count. With
 * the per-thread setting, when the library has it, nothing else is affected. Otherwise (the
 * bundled scipy-openblas32 declares the per-thread call but does not export it) the global
 * count is switched, under the exclusive BLAS lock so that no product of another thread runs
 * meanwhile; products that keep normreg's count hold the lock shared. */
#define NR_WITH_BLAS_THREADS(threads, STMT)                                                    \
    do {                                                                                       \
        const int nr_want_ = (threads);                                                        \
        if (NR_BLAS_THREADS_LOCAL) {                                                           \
            const int nr_have_ = nr_get_num_threads();                                         \
            if (nr_want_ != nr_have_) {                                                        \
                NR_BLAS_THREADS_LOCAL(nr_want_);                                               \
            }                                                                                  \
            STMT;                                                                              \
            if (nr_want_ != nr_have_) {                                                        \
                NR_BLAS_THREADS_LOCAL(nr_have_);                                               \
            }                                                                                  \
            break;                                                                             \
        }                                                                                      \
        nr_blas_lock_shared();                                                                 \
        if (nr_want_ == nr_get_num_threads()) {                                                \
            STMT;                                                                              \
            nr_blas_unlock();                                                                  \
            break;                                                                             \
        }                                                                                      \
        nr_blas_unlock();                                                                      \
        nr_blas_lock_exclusive();                                                              \
        const int nr_have_ = nr_get_num_threads();                                             \
        nr_blas_set_num_threads(nr_want_);                                                     \
        STMT;                                                                                  \
        nr_blas_set_num_threads(nr_have_);                                                     \
        nr_blas_unlock();                                                                      \
    } while (0)

/* In an OpenMP team run under NR_WITH_BLAS_THREADS(1, ...), each thread's BLAS calls take
 * one thread: with the global switch the count is 1 for every thread already; with the
 * per-thread setting, it was set for the calling thread (the team's thread 0) only, so the
 * other team threads set (enter) and restore (leave) their own. */
static inline void
nr_blas_team_enter(void)
{
    if (NR_BLAS_THREADS_LOCAL && omp_get_thread_num() != 0) {
        NR_BLAS_THREADS_LOCAL(1);
    }
}

static inline void
nr_blas_team_leave(void)
{
    if (NR_BLAS_THREADS_LOCAL && omp_get_thread_num() != 0) {
        NR_BLAS_THREADS_LOCAL(nr_get_num_threads());
    }
}
#endif
