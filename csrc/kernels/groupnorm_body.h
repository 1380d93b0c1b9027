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

#ifndef NR_GN_SHORT_D
/* Groups of at most NR_GN_SHORT_D values (C / G channels of S positions) are LayerNorm's
 * short rows (layernorm_body.h) without affine, followed by each channel's weight and bias,
 * a block of rows at a time while it is in cache: the loop of the longer groups below,
 * a group at a time with a channel's S values innermost, took 2.9-19x the time of
 * LayerNorm's forward on the same rows at D = 8 to 128 (Zen 5). */
#define NR_GN_SHORT_D 256
#define NR_GN_BLOCK 8192 /* values of x in a block of rows of the short forward */
/* C S at most: the short forward's weights and biases spread over each group's positions,
 * G rows of D values on the stack, so that its affine pass runs along whole rows */
#define NR_GN_PATTERNS 2048
#endif

/* LayerNorm's forward of the same tier and type (layernorm.c) */
void FN(nr_layernorm_forward)(T *y, T *mean, T *rstd, const T *x, const T *w, const T *b,
                              int64_t M, int64_t D, double eps);

/* rows [i0, i1) of y, (n, g) rows of D = Cg S values: y w[c] + b[c] in place, c = g Cg + the
 * value's channel in the row; w or b NULL: ones or zeros */
static void
FN(nr_gn_affine_rows)(T *restrict y, const T *restrict w, const T *restrict b, int64_t Cg,
                      int64_t S, int64_t G, int64_t i0, int64_t i1)
{
    const int64_t D = Cg * S;
    if (S == 1) {
        /* (N, C) data: the rows' values are the samples' channels in order, so the pass
         * runs along each sample's part of [i0, i1) at once (a loop of Cg values a row was
         * most of GroupNorm's forward on groups of 2-8 values) */
        const int64_t C = Cg * G;
        for (int64_t e = i0 * D, end = i1 * D, c0 = e % C; e < end; c0 = 0) {
            const int64_t len = NR_MIN(C - c0, end - e);
            T *ye = y + e;
#pragma omp simd
            for (int64_t c = 0; c < len; c++) {
                ye[c] = ye[c] * (w ? w[c0 + c] : (T)1) + (b ? b[c0 + c] : (T)0);
            }
            e += len;
        }
        return;
    }
    for (int64_t i = i0, g = i0 % G; i < i1; i++, g = g + 1 == G ? 0 : g + 1) {
        const int64_t c0 = g * Cg;
        T *yr = y + i * D;
        for (int64_t c = 0; c < Cg; c++) {
            const T wc = w ? w[c0 + c] : (T)1, bc = b ? b[c0 + c] : (T)0;
            T *yc = yr + c * S;
#pragma omp simd
            for (int64_t s = 0; s < S; s++) {
                yc[s] = yc[s] * wc + bc;
            }
        }
    }
}

/* rows [i0, i1) of y, (n, g) rows of D values: y wp[g] + bp[g] in place, wp and bp (G, D)
 * (the same operations as nr_gn_affine_rows) */
static void
FN(nr_gn_affine_patterns)(T *restrict y, const T *restrict wp, const T *restrict bp, int64_t D,
                          int64_t G, int64_t i0, int64_t i1)
{
    for (int64_t i = i0, g = i0 % G; i < i1; i++, g = g + 1 == G ? 0 : g + 1) {
        const T *wr = wp + g * D, *br = bp + g * D;
        T *yr = y + i * D;
#pragma omp simd
        for (int64_t j = 0; j < D; j++) {
            yr[j] = yr[j] * wr[j] + br[j];
        }
    }
}

/* x (N, C, S), w (C) or NULL, b (C) or NULL, C divisible by G
 *   -> y (N, C, S), mean (N, G), rstd (N, G) = 1 / sqrt(var + eps) */
void
FN(nr_groupnorm_forward)(T *y, T *mean, T *rstd, const T *x, const T *w, const T *b, int64_t N,
                         int64_t C, int64_t S, int64_t G, double eps)
{
    const int64_t Cg = C / G, D = Cg * S, M = N * G;
    int nt = nr_threads_for((size_t)(N * C * S) * 2 * sizeof(T));
    if (D > 0 && D <= NR_GN_SHORT_D) {
        /* a thread's rows in blocks of at most NR_GN_BLOCK values (LayerNorm's call on a
         * block that size runs on the calling thread) */
        const int64_t per = NR_MAX((int64_t)1, NR_GN_BLOCK / D);
        /* the affine pass along whole rows where a channel's run of S values is short (a
         * loop each, 0.80x the forward's time at 512 x 64 x 16 in 32 groups on a Zen 5); longer
         * runs (S = 64: 1.2x) keep their loops */
        const int patterns =
            (w || b) && S > 1 && S * (int64_t)sizeof(T) <= 64 && C * S <= NR_GN_PATTERNS;
        T wp[NR_GN_PATTERNS] __attribute__((aligned(64)));
        T bp[NR_GN_PATTERNS] __attribute__((aligned(64)));
        for (int64_t c = 0; patterns && c < C; c++) {
            for (int64_t s = 0; s < S; s++) {
                wp[c * S + s] = w ? w[c] : (T)1;
                bp[c * S + s] = b ? b[c] : (T)0;
            }
        }
        NR_SPLIT(
            nt, M, 1, for (int64_t r0 = i0; r0 < i1; r0 += per) {
                const int64_t r1 = NR_MIN(r0 + per, i1);
                FN(nr_layernorm_forward)(y + r0 * D, mean + r0, rstd + r0, x + r0 * D, NULL,
                                         NULL, r1 - r0, D, eps);
                if (patterns) {
                    FN(nr_gn_affine_patterns)(y, wp, bp, D, G, r0, r1);
                }
                else if (w || b) {
                    FN(nr_gn_affine_rows)(y, w, b, Cg, S, G, r0, r1);
                }
            });
        return;
    }
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

/* LayerNorm's backward over rows that cycle through P weight vectors (layernorm.c) */
void FN(nr_layernorm_backward_cyclic)(T *dx, T *pdw, T *pdb, const T *dy, const T *x,
                                      const T *mean, const T *rstd, const T *w, int64_t D,
                                      int64_t P, int64_t i0, int64_t i1);

/* elements between two threads' partials of the short backward: 2 C S rounded up to whole
 * 64-byte lines */
static int64_t
FN(nr_gn_partials_stride)(int64_t CS)
{
    const int64_t per_line = 64 / (int64_t)sizeof(T);
    return (2 * CS + per_line - 1) / per_line * per_line;
}

/* Groups of at most NR_GN_SHORT_D values (C / G S): the weights spread over the positions
 * (C S values of T) and each thread's partials of dw and db per position (2 C S, whole
 * lines), aligned to 64 bytes. Longer: per-thread partial sums of dw and db (2 C doubles a
 * thread), and each thread's per-channel sums of the group it works on (2 C doubles). */
size_t
FN(nr_groupnorm_backward_workspace)(int64_t C, int64_t S, int64_t G, int nthreads)
{
    const int64_t D = G > 0 ? C / G * S : 0;
    const size_t longer = (size_t)nthreads * 4 * (size_t)C * sizeof(double);
    if (D > 0 && D <= NR_GN_SHORT_D) { /* either path's (without dx, the longer groups') */
        const int64_t CS = C * S, lines = (CS * (int64_t)sizeof(T) + 63) / 64 * 64;
        const size_t shorter =
            (size_t)lines + (size_t)nthreads * FN(nr_gn_partials_stride)(CS) * sizeof(T) + 64;
        return shorter > longer ? shorter : longer;
    }
    return longer;
}

/* The short groups' backward (see nr_groupnorm_backward): LayerNorm's rows, each with its
 * group's weights, then the positions' partials folded into the channels */
static void
FN(nr_groupnorm_backward_short)(T *dx, T *dw, T *db, const T *dy, const T *x, const T *mean,
                                const T *rstd, const T *w, int64_t N, int64_t C, int64_t S,
                                int64_t G, void *workspace, int nthreads)
{
    const int64_t M = N * G, CS = C * S, D = C / G * S;
    const int want_params = (dw != NULL || db != NULL);
    int nt = NR_MIN(nthreads, nr_threads_for((size_t)(N * CS) * 3 * sizeof(T)));
    T *wexp = (T *)(((uintptr_t)workspace + 63) & ~(uintptr_t)63);
    T *partials = wexp + (CS * (int64_t)sizeof(T) + 63) / 64 * 64 / (int64_t)sizeof(T);
    for (int64_t c = 0; c < C; c++) {
        for (int64_t s = 0; s < S; s++) {
            wexp[c * S + s] = w ? w[c] : (T)1;
        }
    }
    NR_PARTIAL_SUMS(nt, M, T, partials, want_params ? 2 * CS : 0, FN(nr_gn_partials_stride)(CS),
                    FN(nr_layernorm_backward_cyclic)(dx, want_params ? acc : NULL,
                                                     want_params ? acc + CS : NULL, dy, x, mean,
                                                     rstd, wexp, D, G, i0, i1));
    for (int64_t c = 0; want_params && c < C; c++) {
        double sw = 0, sb = 0;
        for (int64_t s = 0; s < S; s++) {
            sw += (double)partials[c * S + s];
            sb += (double)partials[CS + c * S + s];
        }
        if (dw) {
            dw[c] += (T)sw;
        }
        if (db) {
            db[c] += (T)sb;
        }
    }
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
    const int64_t M = N * G, D = G > 0 ? C / G * S : 0;
    if (dx && D > 0 && D <= NR_GN_SHORT_D) {
        FN(nr_groupnorm_backward_short)(dx, dw, db, dy, x, mean, rstd, w, N, C, S, G, workspace,
                                        nthreads);
        return;
    }
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
