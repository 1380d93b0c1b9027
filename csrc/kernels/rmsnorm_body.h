/* RMSNorm kernels for one element type T (see rmsnorm.c). */

#include "wide_body.h"

/* Sum of a[j] * b[j] over n values (NR_BLOCKED_SUM: long rows lose no float32 accuracy). */
static double
FN(nr_rms_dot)(const T *a, const T *b, int64_t n)
{
    double total;
    NR_BLOCKED_SUM(total, T, n, j, a[j] * b[j]);
    return total;
}

/* x (M, D), w (D) or NULL -> y (M, D), rstd (M) = 1 / sqrt(mean(x^2) + eps) */
void
FN(nr_rmsnorm_forward)(T *y, T *rstd, const T *x, const T *w, int64_t M, int64_t D, double eps)
{
    int nt = nr_threads_for((size_t)(M * D) * 2 * sizeof(T));
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < M; i++) {
        const T *xr = x + i * D;
        T *yr = y + i * D;
        /* squares do not cancel: no shift needed, unlike the variance */
        const double ms = D > 0 ? FN(nr_rms_dot)(xr, xr, D) / (double)D : 0.0;
        struct nr_wide p;
        if (D > 0 && NR_OUT_OF_RANGE(ms + eps) && FN(nr_wide_stats)(&p, xr, D, 0, eps)) {
            /* the squares in T overflowed or underflowed: the row in double, scaled */
            rstd[i] = (T)p.rstd;
            for (int64_t j = 0; j < D; j++) {
                yr[j] = (T)(FN(nr_wide_xhat)(&p, xr[j]) * (w ? (double)w[j] : 1.0));
            }
            continue;
        }
        const T r = (T)(1.0 / sqrt(ms + eps));
        rstd[i] = r;
        if (w) {
#pragma omp simd
            for (int64_t j = 0; j < D; j++) {
                yr[j] = (xr[j] * r) * w[j];
            }
        }
        else {
#pragma omp simd
            for (int64_t j = 0; j < D; j++) {
                yr[j] = xr[j] * r;
            }
        }
    }
}

/* Per-thread partial sums of dw: D doubles and D values of T for each thread. */
size_t
FN(nr_rmsnorm_backward_workspace)(int64_t D, int nthreads)
{
    return (size_t)nthreads * (size_t)D * (sizeof(double) + sizeof(T));
}

/* Rows of dw summed in T (vectorized) before they are added into the double partials:
 * float32 accuracy over many rows without a conversion per element. */
#define NR_RMS_FLUSH_ROWS 32

/* Rows [i0, i1) of the backward (see below); pdw (D doubles) and bdw (D values of T) this
 * range's dw partials, or NULL. */
static void
FN(nr_rmsnorm_backward_rows)(T *dx, double *pdw, T *bdw, const T *dy, const T *x, const T *rstd,
                             const T *w, int64_t D, int64_t i0, int64_t i1)
{
    if (bdw) {
        memset(bdw, 0, (size_t)D * sizeof(T));
    }
    for (int64_t i = i0; i < i1; i++) {
        const T *xr = x + i * D, *dyr = dy + i * D;
        T *dxr = dx + i * D;
        const T r = rstd[i];
        double sum_gx = 0;
        if (w) {
            for (int64_t j0 = 0; j0 < D; j0 += 256) {
                const int64_t j1 = NR_MIN(D, j0 + 256);
                T s = 0;
#pragma omp simd reduction(+ : s)
                for (int64_t j = j0; j < j1; j++) {
                    s += dyr[j] * w[j] * xr[j];
                }
                sum_gx += (double)s;
            }
        }
        else {
            sum_gx = FN(nr_rms_dot)(dyr, xr, D);
        }
        /* the gradient through rstd: one coefficient per row */
        const double k_d = (double)r * r * r * sum_gx / (double)(D > 0 ? D : 1);
        struct nr_wide p;
        if (!(r >= NR_T_MIN && NR_FITS(k_d)) && FN(nr_wide_grad)(&p, xr, dyr, w, D, 1, r, 0)) {
            /* the sum or the coefficient left T's range: the row in double, scaled */
            for (int64_t j = 0; j < D; j++) {
                const double xh = FN(nr_wide_xhat)(&p, xr[j]);
                const double g = (double)dyr[j] * (w ? (double)w[j] : 1.0);
                dxr[j] = (T)(p.rstd * (g - xh * p.mgx));
                if (pdw) {
                    pdw[j] += (double)dyr[j] * xh;
                }
            }
        }
        else {
            const T k = (T)k_d;
            if (w) {
#pragma omp simd
                for (int64_t j = 0; j < D; j++) {
                    dxr[j] = r * (dyr[j] * w[j]) - xr[j] * k;
                }
            }
            else {
#pragma omp simd
                for (int64_t j = 0; j < D; j++) {
                    dxr[j] = r * dyr[j] - xr[j] * k;
                }
            }
            if (bdw) {
#pragma omp simd
                for (int64_t j = 0; j < D; j++) {
                    bdw[j] += dyr[j] * xr[j] * r;
                }
            }
        }
        if (bdw && ((i - i0) % NR_RMS_FLUSH_ROWS == NR_RMS_FLUSH_ROWS - 1 || i == i1 - 1)) {
            for (int64_t j = 0; j < D; j++) {
                pdw[j] += (double)bdw[j];
                bdw[j] = 0;
            }
        }
    }
}

/* dy (M, D), x (M, D), rstd (M), w (D) or NULL -> dx (M, D) =, dw (D) += (dw may be NULL)
 * With g = dy w and r = rstd, since dr/dx = -r^3 x / D:
 *   dx = r g - x r^3 mean(g x)
 *   dw = sum over rows of dy x r */
void
FN(nr_rmsnorm_backward)(T *dx, T *dw, const T *dy, const T *x, const T *rstd, const T *w,
                        int64_t M, int64_t D, void *workspace, int nthreads)
{
    int nt = NR_MIN(nthreads, nr_threads_for((size_t)(M * D) * 3 * sizeof(T)));
    double *partials = (double *)workspace;
    T *blocks = (T *)(partials + (size_t)nthreads * D);
    NR_PARTIAL_SUMS(nt, M, double, partials, dw ? D : 0, D,
                    FN(nr_rmsnorm_backward_rows)(dx, dw ? acc : NULL,
                                                 dw ? blocks + (size_t)tid * D : NULL, dy, x,
                                                 rstd, w, D, i0, i1));
    for (int64_t j = 0; dw && j < D; j++) {
        dw[j] += (T)partials[j];
    }
}

#undef NR_RMS_FLUSH_ROWS
