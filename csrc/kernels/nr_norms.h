/* Kernels of the extra normalization layers (rmsnorm.c, groupnorm.c): same contract as
 * nr_kernels.h (outputs, inputs, saved statistics, sizes; parameter gradients +=, input
 * gradients =; never allocate, never fail). */
#ifndef NR_NORMS_H
#define NR_NORMS_H

#include <stddef.h>
#include <stdint.h>

#define NR_DECLARE_NORM_KERNELS(T, SFX)                                                         \
    /* rmsnorm: x (M, D), w (D) or NULL -> y (M, D), rstd (M) */                                \
    void nr_rmsnorm_forward_##SFX(T *y, T *rstd, const T *x, const T *w, int64_t M, int64_t D,  \
                                  double eps);                                                  \
    /* dy (M, D), x (M, D), rstd (M), w (D) or NULL -> dx (M, D) =, dw (D) += */                \
    size_t nr_rmsnorm_backward_workspace_##SFX(int64_t D, int nthreads);                        \
    void nr_rmsnorm_backward_##SFX(T *dx, T *dw, const T *dy, const T *x, const T *rstd,        \
                                   const T *w, int64_t M, int64_t D, void *workspace,           \
                                   int nthreads);                                               \
    /* groupnorm: x (N, C, S), w (C), b (C) or NULL -> y (N, C, S), mean (N, G), rstd (N, G) */ \
    void nr_groupnorm_forward_##SFX(T *y, T *mean, T *rstd, const T *x, const T *w,             \
                                    const T *b, int64_t N, int64_t C, int64_t S, int64_t G,     \
                                    double eps);                                                \
    /* dy, x (N, C, S), mean, rstd (N, G), w (C) or NULL -> dx =, dw (C) +=, db (C) += */       \
    size_t nr_groupnorm_backward_workspace_##SFX(int64_t C, int64_t S, int64_t G,               \
                                                 int nthreads);                                 \
    void nr_groupnorm_backward_##SFX(T *dx, T *dw, T *db, const T *dy, const T *x,              \
                                     const T *mean, const T *rstd, const T *w, int64_t N,       \
                                     int64_t C, int64_t S, int64_t G, void *workspace,          \
                                     int nthreads);

NR_DECLARE_NORM_KERNELS(float, f32)
NR_DECLARE_NORM_KERNELS(double, f64)

#endif
