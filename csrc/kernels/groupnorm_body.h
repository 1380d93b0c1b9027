/* GroupNorm kernels for one element type T (see groupnorm.c). */

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
        const double var = D > 0 ? FN(nr_gn_sumsq_shifted)(xr, D, shift, dmean) / (double)D : 0.0;
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

/* Per-thread partial sums of dw and db: 2 C doubles for each thread. */
size_t
FN(nr_groupnorm_backward_workspace)(int64_t C, int nthreads)
{
    return (size_t)nthreads * 2 * (size_t)C * sizeof(double);
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
    const int64_t Cg = C / G, D = Cg * S, M = N * G;
    const int want_params = (dw != NULL || db != NULL);
    int nt = NR_MIN(nthreads, nr_threads_for((size_t)(N * C * S) * 3 * sizeof(T)));
    if (nt < 1) {
        nt = 1;
    }
    double *partials = (double *)workspace;
#pragma omp parallel num_threads(nt)
    {
        const int tid = omp_get_thread_num(), team = omp_get_num_threads();
        double *pdw = want_params ? partials + (size_t)tid * 2 * C : NULL;
        double *pdb = want_params ? pdw + C : NULL;
        if (want_params) {
            memset(pdw, 0, (size_t)(2 * C) * sizeof(double));
        }
#pragma omp for schedule(static)
        for (int64_t i = 0; i < M; i++) {
            const int64_t c0 = (i % G) * Cg;
            const T *xr = x + i * D, *dyr = dy + i * D;
            const T mu = mean[i];
            const double r = rstd[i];
            /* per channel: sum(dy) and sum(dy (x - mean)); weighted by w for the group */
            double sum_g = 0, sum_g_xc = 0;
            for (int64_t cc = 0; cc < Cg; cc++) {
                const int64_t c = c0 + cc;
                const T *xc = xr + cc * S, *dyc = dyr + cc * S;
                double s_dy = 0, s_dyxc = 0;
                for (int64_t s0 = 0; s0 < S; s0 += 256) {
                    const int64_t s1 = NR_MIN(S, s0 + 256);
                    T a = 0, bsum = 0;
#pragma omp simd reduction(+ : a, bsum)
                    for (int64_t s = s0; s < s1; s++) {
                        a += dyc[s];
                        bsum += dyc[s] * (xc[s] - mu);
                    }
                    s_dy += (double)a;
                    s_dyxc += (double)bsum;
                }
                const double wc = w ? (double)w[c] : 1.0;
                sum_g += wc * s_dy;
                sum_g_xc += wc * s_dyxc;
                if (want_params) {
                    pdw[c] += s_dyxc * r;
                    pdb[c] += s_dy;
                }
            }
            if (!dx) {
                continue;
            }
            const T k_xc = (T)(-r * r * r * sum_g_xc / (double)D);
            const T k_0 = (T)(-r * sum_g / (double)D);
            for (int64_t cc = 0; cc < Cg; cc++) {
                const int64_t c = c0 + cc;
                const T k_dy = (T)(w ? (double)w[c] * r : r);
                const T *xc = xr + cc * S, *dyc = dyr + cc * S;
                T *dxc = dx + i * D + cc * S;
#pragma omp simd
                for (int64_t s = 0; s < S; s++) {
                    dxc[s] = k_dy * dyc[s] + k_xc * (xc[s] - mu) + k_0;
                }
            }
        }
        if (want_params) {
            /* implicit barrier above: every thread's partials are complete */
#pragma omp for schedule(static)
            for (int64_t c = 0; c < C; c++) {
                double sw = 0, sb = 0;
                for (int t = 0; t < team; t++) {
                    sw += partials[(size_t)t * 2 * C + c];
                    sb += partials[(size_t)t * 2 * C + C + c];
                }
                if (dw) {
                    dw[c] += (T)sw;
                }
                if (db) {
                    db[c] += (T)sb;
                }
            }
        }
    }
}
