/* OpenMP or its absence: the only file that includes omp.h.
 *
 * Built without OpenMP (a compiler that rejects -fopenmp, such as Apple's clang), the
 * `omp parallel` pragmas are ignored and every region runs once on the calling thread, as a
 * team of one: these stand-ins give that thread's number and the team size, so the kernels
 * compute the same results on one thread. */
#ifndef NR_OMP_H
#define NR_OMP_H

/* a team size that only an omp pragma reads (unused without OpenMP) */
#define NR_TEAM_SIZE __attribute__((unused))

#ifdef _OPENMP
#include <omp.h>
#else
static inline int
omp_get_thread_num(void)
{
    return 0;
}

static inline int
omp_get_num_threads(void)
{
    return 1;
}

static inline int
omp_get_max_threads(void)
{
    return 1;
}
#endif

#endif
