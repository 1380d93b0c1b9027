/* Synchronized batch norm kernels for one element type T (see syncbn.c). */

/* Per-thread partial sums (2 C doubles a thread), 6 C doubles of per-channel values and the
 * coefficients of BatchNorm's apply passes for data that runs as columns (nr_bn_columns). */
size_t
FN(nr_syncbn_workspace)(int64_t C, int64_t L, int nthreads)
{
    return ((size_t)nthreads * 2 + 6) * (size_t)C * sizeof(double) +
           (size_t)nr_bn_columns(C, L) * 4 * sizeof(T);
}

/* The channel sums (NR_DEFINE_CHANNEL_SUMS, shared with BatchNorm): of x; of d^2 and d with
 * d = x - mean (ref); of dy (v) and dy d. */
NR_DEFINE_CHANNEL_SUMS(FN(nr_sbn_sum), 1, double, double, (double)u[k], 0, 0)
NR_DEFINE_CHANNEL_SUMS(FN(nr_sbn_m2_sums), 2, double, double,
                       ((double)u[k] - ref[c]) * ((double)u[k] - ref[c]), (double)u[k] - ref[c],
                       0)
NR_DEFINE_CHANNEL_SUMS(FN(nr_sbn_grad_sums), 2, double, double, (double)v[k],
                       (double)v[k] * ((double)u[k] - ref[c]), 0)

static int
FN(nr_syncbn_threads)(int nthreads, int64_t N, int64_t C, int64_t L, int arrays)
{
    int nt = NR_MIN(nthreads, nr_threads_for((size_t)(N * C * L) * (size_t)arrays * sizeof(T)));
    return nt < 1 ? 1 : nt;
}

/* x (N, C, L) -> mean (C), m2 (C) = sum (x - mean)^2 over the N L values of each channel.
 * Corrected two-pass algorithm in double: the mean, then m2 = sum d^2 - (sum d)^2 / n with
 * d = x - mean (the second term removes the rounding error of the mean). N L = 0 gives 0. */
void
FN(nr_syncbn_stats)(double *mean, double *m2, const T *x, int64_t N, int64_t C, int64_t L,
                    void *workspace, int nthreads)
{
    double *partials = (double *)workspace;
    const double count = (double)N * (double)L;
    const int nt = FN(nr_syncbn_threads)(nthreads, N, C, L, 1);
    if (C == 0 || N * L == 0) { /* C first: with C = 0, N and L may be anything */
        for (int64_t c = 0; c < C; c++) {
            mean[c] = 0;
            m2[c] = 0;
        }
        return;
    }
    NR_PARTIAL_SUMS(nt, N, double, partials, C, 2 * C,
                    FN(nr_sbn_sum)(acc, x, NULL, NULL, i0, i1, C, L, C * L));
    for (int64_t c = 0; c < C; c++) {
        mean[c] = partials[c] / count;
    }
    NR_PARTIAL_SUMS(nt, N, double, partials, 2 * C, 2 * C,
                    FN(nr_sbn_m2_sums)(acc, x, NULL, mean, i0, i1, C, L, C * L));
    for (int64_t c = 0; c < C; c++) {
        const double v = partials[c] - partials[C + c] * partials[C + c] / count;
        m2[c] = v > 0 ? v : 0;
    }
}

/* x (N, C, L), mean (C, double) and rstd (C) of the global batch, w, b (C) or NULL
 *   -> y (N, C, L) = (x - mean) rstd w + b
 * with the mean split into T and the remainder (nr_batchnorm_apply): a large mean costs no
 * accuracy. */
void
FN(nr_syncbn_forward)(T *y, const T *x, const double *mean, const T *rstd, const T *w,
                      const T *b, int64_t N, int64_t C, int64_t L, void *workspace,
                      int nthreads)
{
    double *r = (double *)workspace;
    T *hi = (T *)(r + C);
    for (int64_t c = 0; c < C; c++) {
        r[c] = (double)rstd[c];
        hi[c] = (T)mean[c];
    }
    FN(nr_batchnorm_apply)(y, x, hi, mean, r, w, b, N, C, L, r + 2 * C,
                           FN(nr_syncbn_threads)(nthreads, N, C, L, 2));
}

/* dy, x (N, C, L), mean (C, double), rstd (C) -> sum_dy (C) = sum(dy),
 * sum_dy_xhat (C) = sum(dy xhat), xhat = (x - mean) rstd, over this process's N L values of
 * each channel (0 when empty); x - mean in double is exact for float32 x. */
void
FN(nr_syncbn_grad_sums)(double *sum_dy, double *sum_dy_xhat, const T *dy, const T *x,
                        const double *mean, const T *rstd, int64_t N, int64_t C, int64_t L,
                        void *workspace, int nthreads)
{
    double *partials = (double *)workspace;
    const int nt = FN(nr_syncbn_threads)(nthreads, N, C, L, 2);
    if (C == 0 || N * L == 0) {
        for (int64_t c = 0; c < C; c++) {
            sum_dy[c] = 0;
            sum_dy_xhat[c] = 0;
        }
        return;
    }
    NR_PARTIAL_SUMS(nt, N, double, partials, 2 * C, 2 * C,
                    FN(nr_sbn_grad_sums)(acc, x, dy, mean, i0, i1, C, L, C * L));
    for (int64_t c = 0; c < C; c++) {
        sum_dy[c] = partials[c];
        sum_dy_xhat[c] = partials[C + c] * (double)rstd[c];
    }
}

/* dy, x (N, C, L), mean (C, double), rstd (C), w (C) or NULL, and the global sums sum_dy,
 * sum_dy_xhat (C) over `count` values -> dx (N, C, L) =
 *   dx = w rstd (dy - sum_dy / count - xhat sum_dy_xhat / count),  xhat = (x - mean) rstd
 * (nr_batchnorm_apply_grad, with the mean split into T and the remainder). */
void
FN(nr_syncbn_backward)(T *dx, const T *dy, const T *x, const double *mean, const T *rstd,
                       const T *w, const double *sum_dy, const double *sum_dy_xhat,
                       double count, int64_t N, int64_t C, int64_t L, void *workspace,
                       int nthreads)
{
    double *mean_dy = (double *)workspace, *mean_dy_xhat = mean_dy + C;
    T *hi = (T *)(mean_dy_xhat + C);
    for (int64_t c = 0; c < C; c++) {
        mean_dy[c] = sum_dy[c] / count;
        mean_dy_xhat[c] = sum_dy_xhat[c] / count;
        hi[c] = (T)mean[c];
    }
    FN(nr_batchnorm_apply_grad)(dx, dy, x, hi, mean, rstd, w, mean_dy, mean_dy_xhat, N, C, L,
                                mean_dy_xhat + 2 * C,
                                FN(nr_syncbn_threads)(nthreads, N, C, L, 3));
}
