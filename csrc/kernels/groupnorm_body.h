/* GroupNorm kernels for one element type T (see groupnorm.c). */

#include "wide_body.h"

/* Sums of (x - shift) and of ((x - shift) - dmean)^2 over n values (NR_BLOCKED_SUM: a group
 * of 10^5 values keeps float32's accuracy). Shifting by a value of the group keeps the
 * deviations small, so a large common offset (mean 1e6 in float32) does not cancel the
 * variance away. */
static double
FN(nr_gn_sum_shifted)(const T *x, int64_t n, T shift)
{
    double total;
    NR_BLOCKED_SUM(total, T, n, j, x[j] - shift);
    return total;
}

static double
FN(nr_gn_sumsq_shifted)(const T *x, int64_t n, T shift, T dmean)
{
    double total;
    NR_BLOCKED_SUM(total, T, n, j, ((x[j] - shift) - dmean) * ((x[j] - shift) - dmean));
    return total;
}

/* x (N, C, S), w (C) or NULL, b (C) or NULL, C divisible by G
 *   -> y (N, C, S), mean (N, G), rstd (N, G) = 1 / sqrt(var + eps) */
void
FN(nr_groupnorm_forward)(T *y, T *mean, T *rstd, const T *x, const T *w, const T *b, int64_t N,
                         int64_t C, int64_t S, int64_t G, double eps)
{
    const int64_t Cg = C / G, D = Cg * S, M = N * G;
    int nt = nr_threads_for((size_t)(N * C * S) * 2 * sizeof(T));
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < M; i++) {
        /* row i = (n, g): channels g Cg .. g Cg + Cg - 1 of sample n, contiguous */
        const int64_t c0 = (i % G) * Cg;
        const T *xr = x + i * D;
        T *yr = y + i * D;
        /* two passes over the group, both shifted by its first value */
        const T shift = D > 0 ? xr[0] : (T)0;
        const double dmean_d = D > 0 ? FN(nr_gn_sum_shifted)(xr, D, shift) / (double)D : 0.0;
        const T dmean = (T)dmean_d;
        const double var =
            D > 0 ? FN(nr_gn_sumsq_shifted)(xr, D, shift, dmean) / (double)D : 0.0;
        struct nr_wide p;
        if (D > 0 && NR_OUT_OF_RANGE(var + eps) && FN(nr_wide_stats)(&p, xr, D, 1, eps)) {
            /* the sums in T overflowed or underflowed: the group in double, scaled */
            mean[i] = (T)p.mean;
            rstd[i] = (T)p.rstd;
            for (int64_t j = 0; j < D; j++) {
                const int64_t c = c0 + j / S;
                yr[j] = (T)(FN(nr_wide_xhat)(&p, xr[j]) * (w ? (double)w[c] : 1.0) +
                            (b ? (double)b[c] : 0.0));
            }
            continue;
        }
        const double r = 1.0 / sqrt(var + eps);
        mean[i] = (T)((double)shift + dmean_d);
        rstd[i] = (T)r;
        for (int64_t cc = 0; cc < Cg; cc++) {
            const int64_t c = c0 + cc;
            const T sc = (T)(w ? (double)w[c] * r : r), sh = b ? b[c] : (T)0;
            const T *xc = xr + cc * S;
            T *yc = yr + cc * S;
#pragma omp simd
            for (int64_t s = 0; s < S; s++) {
                yc[s] = ((xc[s] - shift) - dmean) * sc + sh;
            }
        }
    }
}

/* Per-thread partial sums of dw and db (2 C doubles a thread), and each thread's per-channel
 * sums of the group it works on (2 C doubles a thread). */
size_t
FN(nr_groupnorm_backward_workspace)(int64_t C, int nthreads)
{
    return (size_t)nthreads * 4 * (size_t)C * sizeof(double);
}

/* Groups i in [i0, i1) of the backward (see below); pdw, pdb (C) accumulate this range's dw, db
 * (or NULL); sums: 2 Cg doubles. */
static void
FN(nr_groupnorm_backward_groups)(T *dx, double *pdw, double *pdb, double *sums, const T *dy,
                                 const T *x, const T *mean, const T *rstd, const T *w,
                                 int64_t C, int64_t S, int64_t G, int64_t i0, int64_t i1)
{
    const int64_t Cg = C / G, D = Cg * S;
    double *s_dy = sums, *s_dyxc = sums + Cg;
    for (int64_t i = i0; i < i1; i++) {
        const int64_t c0 = (i % G) * Cg;
        const T *xr = x + i * D, *dyr = dy + i * D;
        const T mu = mean[i];
        const double r = rstd[i];
        /* per channel: sum(dy) and sum(dy (x - mean)) with the saved mean, rounded to T; and
         * over the group sum(x - mean), whose mean c puts back what the rounding lost:
         * x - mean - c keeps the forward's accuracy at any offset */
        double s_xc = 0;
        /* c matters only when |mean| rstd > 1 (see LayerNorm's NR_LN_FAR) */
        const int far = !(fabs((double)mu * r) <= 1);
        for (int64_t cc = 0; cc < Cg; cc++) {
            const T *xc = xr + cc * S, *dyc = dyr + cc * S;
            double sd = 0, sdx = 0;
            for (int64_t s0 = 0; s0 < S; s0 += 256) {
                const int64_t s1 = NR_MIN(S, s0 + 256);
                T a = 0, bsum = 0, csum = 0;
                if (far) {
#pragma omp simd reduction(+ : a, bsum, csum)
                    for (int64_t s = s0; s < s1; s++) {
                        const T d = xc[s] - mu;
                        a += dyc[s];
                        bsum += dyc[s] * d;
                        csum += d;
                    }
                }
                else {
#pragma omp simd reduction(+ : a, bsum)
                    for (int64_t s = s0; s < s1; s++) {
                        a += dyc[s];
                        bsum += dyc[s] * (xc[s] - mu);
                    }
                }
                sd += (double)a;
                sdx += (double)bsum;
                s_xc += (double)csum;
            }
            s_dy[cc] = sd;
            s_dyxc[cc] = sdx;
        }
        const double c = s_xc / (double)D;
        double sum_g = 0, sum_g_xc = 0;
        for (int64_t cc = 0; cc < Cg; cc++) {
            const double wc = w ? (double)w[c0 + cc] : 1.0;
            s_dyxc[cc] -= c * s_dy[cc]; /* sum(dy (x - mean - c)) */
            sum_g += wc * s_dy[cc];
            sum_g_xc += wc * s_dyxc[cc];
        }
        /* dx = k_dy dy + k_xc (x - mean) + k_0 */
        const double k_xc = -r * r * r * sum_g_xc / (double)D;
        const double k_0 = -r * sum_g / (double)D - k_xc * c;
        int fast = r >= NR_T_MIN && NR_FITS(k_xc) && NR_FITS(k_0) && isfinite(c);
        for (int64_t cc = 0; fast && w && cc < Cg; cc++) {
            fast = NR_FITS((double)w[c0 + cc] * r);
        }
        struct nr_wide p;
        if (!fast && FN(nr_wide_grad)(&p, xr, dyr, w ? w + c0 : NULL, D, S, r, 1)) {
            /* the sums or coefficients left T's range: the group in double, scaled */
            for (int64_t j = 0; j < D; j++) {
                const int64_t c = c0 + j / S;
                const double xh = FN(nr_wide_xhat)(&p, xr[j]), dyj = (double)dyr[j];
                const double g = dyj * (w ? (double)w[c] : 1.0);
                if (dx) {
                    dx[i * D + j] = (T)(r * ((g - p.mg) - xh * p.mgx));
                }
                if (pdw) {
                    pdw[c] += dyj * xh;
                    pdb[c] += dyj;
                }
            }
            continue;
        }
        if (pdw) {
            for (int64_t cc = 0; cc < Cg; cc++) {
                pdw[c0 + cc] += s_dyxc[cc] * r;
                pdb[c0 + cc] += s_dy[cc];
            }
        }
        if (!dx) {
            continue;
        }
        const T kx = (T)k_xc, k0 = (T)k_0;
        for (int64_t cc = 0; cc < Cg; cc++) {
            const int64_t c = c0 + cc;
            const T k_dy = (T)(w ? (double)w[c] * r : r);
            const T *xc = xr + cc * S, *dyc = dyr + cc * S;
            T *dxc = dx + i * D + cc * S;
#pragma omp simd
            for (int64_t s = 0; s < S; s++) {
                dxc[s] = k_dy * dyc[s] + kx * (xc[s] - mu) + k0;
            }
        }
    }
}

/* dy, x (N, C, S), mean, rstd (N, G), w (C) or NULL
 *   -> dx (N, C, S) =, dw (C) +=, db (C) += (dx, dw, db may each be NULL)
 * Per group, with D = (C / G) S values, xhat = (x - mean) rstd and g = dy w[c]:
 *   dx = rstd (g - mean(g) - xhat mean(g xhat))
 *      = (w[c] rstd) dy - rstd^3 (x - mean) sum(g (x - mean)) / D - rstd sum(g) / D
 * (the gradient through the group mean and through its variance), and per channel
 *   dw[c] += sum over n, s of dy xhat,   db[c] += sum over n, s of dy. */
void
FN(nr_groupnorm_backward)(T *dx, T *dw, T *db, const T *dy, const T *x, const T *mean,
                          const T *rstd, const T *w, int64_t N, int64_t C, int64_t S, int64_t G,
                          void *workspace, int nthreads)
{
    const int64_t M = N * G;
    const int want_params = (dw != NULL || db != NULL);
    int nt = NR_MIN(nthreads, nr_threads_for((size_t)(N * C * S) * 3 * sizeof(T)));
    double *partials = (double *)workspace, *sums = partials + (size_t)nthreads * 2 * C;
    NR_PARTIAL_SUMS(nt, M, double, partials, want_params ? 2 * C : 0, 2 * C,
                    FN(nr_groupnorm_backward_groups)(
                        dx, want_params ? acc : NULL, want_params ? acc + C : NULL,
                        sums + (size_t)tid * 2 * C, dy, x, mean, rstd, w, C, S, G, i0, i1));
    for (int64_t c = 0; want_params && c < C; c++) {
        if (dw) {
            dw[c] += (T)partials[c];
        }
        if (db) {
            db[c] += (T)partials[C + c];
        }
    }
}
