/* normreg kernels: pure C over raw pointers and sizes, no Python headers.
 *
 * Each kernel below is compiled once per CPU tier (nr_tier.h) and called through the
 * dispatch table, `nr_dispatch.nr_relu_forward_f32(...)` (nr_dispatch.h); the threads, rng
 * and dispatch functions are compiled once and called directly.
 *
 * Naming: nr_<op>_<forward|backward>_<f32|f64>.
 * Argument order: outputs, inputs, saved statistics, sizes, then options.
 * Accumulation contract: parameter gradients (dweight, dbias) are ADDED to (+=),
 * input gradients (dx) are OVERWRITTEN (=). Optional pointers may be NULL.
 * Kernels never allocate and never fail: the caller checks the arguments and
 * provides every buffer (including workspaces whose size a *_workspace function
 * gives). They release nothing and touch no global state but the thread count.
 */
#ifndef NR_KERNELS_H
#define NR_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ---- threads (nr_threads.c) --------------------------------------------- */
/* One setting governs the OpenMP regions of the kernels and OpenBLAS: 1 to NR_MAX_THREADS
 * (the default, OpenMP's, is cut to it, so that what get reports set takes back). */
#define NR_MAX_THREADS 1024
void nr_set_num_threads(int n);
int nr_get_num_threads(void);
/* Threads worth using for `bytes` of memory traffic: a thread per 256 KiB at most; always 1 in
 * a build without OpenMP. */
int nr_threads_for(size_t bytes);
/* The build's OpenMP: its version (the _OPENMP date, e.g. 201511) or 0 when built without
 * it, and the path of the runtime library it loaded (NULL when unknown or none). */
int nr_openmp_version(void);
const char *nr_openmp_library(void);
/* The path of the OpenBLAS library the build's products run on (NULL when unknown). */
const char *nr_blas_library(void);
/* The lock that keeps OpenBLAS's global thread count from changing under a running product. */
void nr_blas_lock_shared(void);
void nr_blas_lock_exclusive(void);
void nr_blas_unlock(void);

/* ---- rng (nr_rng.c, rng.h): Philox4x32-10, counter based ------------------- */
/* Fills out[0..3] with the Philox4x32-10 output for counter ctr[4] and key[2]. */
void nr_philox4x32(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]);

/* ---- copy (copy.c): the benchmarks' memory roofline --------------------------- */
/* src (n) -> dst (n) with `nthreads` threads (always that many, whatever the size). */
void nr_copy_f32(float *dst, const float *src, int64_t n, int nthreads);

#define NR_DECLARE_KERNELS(T, SFX)                                                               \
    /* linear: x (M, K), w (K, N), b (N) -> y (M, N) */                                          \
    void nr_linear_forward_##SFX(T *y, const T *x, const T *w, const T *b, int64_t M,            \
                                 int64_t K, int64_t N);                                          \
    /* dy (M, N), x (M, K), w (K, N) -> dx (M, K) =, dw (K, N) +=, db (N) += (=: !accumulate) */ \
    void nr_linear_backward_##SFX(T *dx, T *dw, T *db, const T *dy, const T *x, const T *w,      \
                                  int64_t M, int64_t K, int64_t N, int accumulate);              \
    /* relu: x (n) -> y (n); dy (n), y (n) -> dx (n) */                                          \
    void nr_relu_forward_##SFX(T *y, const T *x, int64_t n);                                     \
    void nr_relu_backward_##SFX(T *dx, const T *dy, const T *y, int64_t n);                      \
    /* layernorm: x (M, D), w (D), b (D) -> y (M, D), mean (M), rstd (M) */                      \
    void nr_layernorm_forward_##SFX(T *y, T *mean, T *rstd, const T *x, const T *w,              \
                                    const T *b, int64_t M, int64_t D, double eps);               \
    /* dy (M, D), x (M, D), mean (M), rstd (M), w (D) -> dx (M, D) =, dw (D) +=, db (D) += */    \
    size_t nr_layernorm_backward_workspace_##SFX(int64_t D, int nthreads);                       \
    void nr_layernorm_backward_##SFX(T *dx, T *dw, T *db, const T *dy, const T *x,               \
                                     const T *mean, const T *rstd, const T *w, int64_t M,        \
                                     int64_t D, void *workspace, int nthreads);                  \
    /* batchnorm: x (N, C, L) -> y (N, C, L), save_mean (C), save_rstd (C) */                    \
    size_t nr_batchnorm_workspace_##SFX(int64_t C, int64_t L, int nthreads);                     \
    void nr_batchnorm_forward_train_##SFX(T *y, T *save_mean, T *save_rstd, T *running_mean,     \
                                          T *running_var, const T *x, const T *w, const T *b,    \
                                          int64_t N, int64_t C, int64_t L, double momentum,      \
                                          double eps, void *workspace, int nthreads);            \
    void nr_batchnorm_forward_eval_##SFX(                                                        \
        T *y, T *save_mean, T *save_rstd, const T *x, const T *running_mean,                     \
        const T *running_var, const T *w, const T *b, int64_t N, int64_t C, int64_t L,           \
        double eps, void *workspace, int nthreads);                                              \
    /* dy, x (N, C, L), save_mean, save_rstd, w (C) -> dx =, dw (C) +=, db (C) += */             \
    void nr_batchnorm_backward_##SFX(T *dx, T *dw, T *db, const T *dy, const T *x,               \
                                     const T *save_mean, const T *save_rstd, const T *w,         \
                                     int64_t N, int64_t C, int64_t L, int training,              \
                                     void *workspace, int nthreads);                             \
    /* x (N, C, L), sub1 (C), mean, rstd (C, double), w, b (C) -> y = (x - mean) rstd w + b */   \
    void nr_batchnorm_apply_##SFX(T *y, const T *x, const T *sub1, const double *mean,           \
                                  const double *rstd, const T *w, const T *b, int64_t N,         \
                                  int64_t C, int64_t L, void *workspace, int nt);                \
    /* dy, x (N, C, L), mu (C), mean (C, double), rstd, w (C), mean_dy, mean_dy_xhat (C,       \
     * double, NULL in evaluation) -> dx = w rstd (dy - mean_dy - xhat mean_dy_xhat) */ \
    void nr_batchnorm_apply_grad_##SFX(                                                          \
        T *dx, const T *dy, const T *x, const T *mu, const double *mean, const T *rstd,          \
        const T *w, const double *mean_dy, const double *mean_dy_xhat, int64_t N, int64_t C,     \
        int64_t L, void *workspace, int nt);                                                     \
    /* dropout: x (n) -> y (n), mask (ceil(n/8) bytes, bit i = element i kept) */                \
    void nr_dropout_forward_##SFX(T *y, uint8_t *mask, const T *x, int64_t n, double p,          \
                                  uint64_t seed, uint64_t offset);                               \
    void nr_dropout_backward_##SFX(T *dx, const T *dy, const uint8_t *mask, int64_t n,           \
                                   double p);                                                    \
    /* softmax cross-entropy: logits (B, K), labels (B) in [0, K) -> mean loss, lse (B) */       \
    double nr_cross_entropy_forward_##SFX(T *lse, const T *logits, const int64_t *labels,        \
                                          int64_t B, int64_t K);                                 \
    /* -> dlogits (B, K) = dloss * (softmax(logits) - onehot(labels)) / B */                     \
    void nr_cross_entropy_backward_##SFX(T *dlogits, const T *logits, const int64_t *labels,     \
                                         const T *lse, int64_t B, int64_t K, double dloss);      \
    /* x (n) -> y (n) = exp(x), the softmax's exponential (vexp.h), for accuracy tests */        \
    void nr_exp_##SFX(T *y, const T *x, int64_t n);

NR_DECLARE_KERNELS(float, f32)
NR_DECLARE_KERNELS(double, f64)

/* Fills mask bits for dropout from (seed, offset): element i is kept when its
 * Philox word is >= threshold. Exposed for tests of reproducibility. */
void nr_dropout_mask(uint8_t *mask, int64_t n, double p, uint64_t seed, uint64_t offset);

/* ---- optimizer updates (optim.c): parameters and state updated in place -------------- */
#define NR_DECLARE_OPTIM_KERNELS(T, SFX)                                                       \
    /* sgd: param (n), momentum_buf (n) or NULL, grad (n) */                                   \
    void nr_sgd_step_##SFX(T *param, T *momentum_buf, const T *grad, int64_t n, double lr,     \
                           double momentum, double dampening, double weight_decay,             \
                           int nesterov, int first_step);                                      \
    /* adam/adamw: param, exp_avg, exp_avg_sq, max_exp_avg_sq or NULL (n); grad (n) */         \
    void nr_adam_step_##SFX(T *param, T *exp_avg, T *exp_avg_sq, T *max_exp_avg_sq,            \
                            const T *grad, int64_t n, double lr, double beta1, double beta2,   \
                            double eps, double weight_decay, int decoupled,                    \
                            double bias_correction1, double bias_correction2);

NR_DECLARE_OPTIM_KERNELS(float, f32)
NR_DECLARE_OPTIM_KERNELS(double, f64)

#endif
