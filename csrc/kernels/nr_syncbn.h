/* Synchronized batch norm: the per-channel partial sums of one process's share of a batch
 * (combined across processes by the caller, e.g. with an MPI all-reduce) and the backward
 * that takes the combined sums. Pure C; see syncbn.c for the formulas. */
#ifndef NR_SYNCBN_H
#define NR_SYNCBN_H

#include <stddef.h>
#include <stdint.h>

#define NR_DECLARE_SYNCBN_KERNELS(T, SFX)                                                        \
    /* per-thread partials: the workspace size for C channels of L values, nthreads threads */   \
    size_t nr_syncbn_workspace_##SFX(int64_t C, int64_t L, int nthreads);                        \
    /* x (N, C, L) -> mean (C), m2 (C) over the N L values of each channel (0 when N L = 0) */   \
    void nr_syncbn_stats_##SFX(double *mean, double *m2, const T *x, int64_t N, int64_t C,       \
                               int64_t L, void *workspace, int nthreads);                        \
    /* x (N, C, L), mean (C, double), rstd, w, b (C) (w, b may be NULL)                        \
     *   -> y = (x - mean) rstd w + b */ \
    void nr_syncbn_forward_##SFX(T *y, const T *x, const double *mean, const T *rstd,            \
                                 const T *w, const T *b, int64_t N, int64_t C, int64_t L,        \
                                 void *workspace, int nthreads);                                 \
    /* dy, x (N, C, L), mean (C, double), rstd (C) -> sum_dy (C), sum_dy_xhat (C) */             \
    void nr_syncbn_grad_sums_##SFX(double *sum_dy, double *sum_dy_xhat, const T *dy,             \
                                   const T *x, const double *mean, const T *rstd, int64_t N,     \
                                   int64_t C, int64_t L, void *workspace, int nthreads);         \
    /* dy, x (N, C, L), mean (C, double), rstd, w (C) or NULL, sum_dy, sum_dy_xhat (C) over   \
     * `count` values -> dx (N, C, L) = */  \
    void nr_syncbn_backward_##SFX(T *dx, const T *dy, const T *x, const double *mean,            \
                                  const T *rstd, const T *w, const double *sum_dy,               \
                                  const double *sum_dy_xhat, double count, int64_t N,            \
                                  int64_t C, int64_t L, void *workspace, int nthreads);

NR_DECLARE_SYNCBN_KERNELS(float, f32)
NR_DECLARE_SYNCBN_KERNELS(double, f64)

#endif
