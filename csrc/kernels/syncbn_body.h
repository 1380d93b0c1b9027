/* Synchronized batch norm kernels for one element type T (see syncbn.c). */

/* Per-thread partial sums (2 C doubles a thread) and 3 C doubles of per-channel values. */
size_t
FN(nr_syncbn_workspace)(int64_t C, int nthreads)
{
    return ((size_t)nthreads * 2 + 3) * (size_t)C * sizeof(double);
}

/* Adds, over the rows [n0, n1) of (N, C, L) data, sum(A) into acc1[c] and sum(B) into
 * acc2[c]; A and B are expressions of the element offset `k` and the channel `c`. */
#define NR_SYNCBN_ACCUMULATE(A_EXPR, B_EXPR)                                                \
    do {                                                                                    \
        if (L == 1) {                                                                       \
            for (int64_t n = n0; n < n1; n++) {                                             \
                _Pragma("omp simd") for (int64_t c = 0; c < C; c++)                         \
                {                                                                           \
                    const int64_t k = n * C + c;                                            \
                    acc1[c] += (A_EXPR);                                                    \
                    acc2[c] += (B_EXPR);                                                    \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        else {                                                                              \
            for (int64_t n = n0; n < n1; n++) {                                             \
                for (int64_t c = 0; c < C; c++) {                                           \
                    double s1 = 0, s2 = 0;                                                  \
                    _Pragma("omp simd reduction(+ : s1, s2)") for (int64_t l = 0; l < L; l++) \
                    {                                                                       \
                        const int64_t k = (n * C + c) * L + l;                              \
                        s1 += (A_EXPR);                                                     \
                        s2 += (B_EXPR);                                                     \
                    }                                                                       \
                    acc1[c] += s1;                                                          \
                    acc2[c] += s2;                                                          \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    } while (0)

/* Runs ACCUMULATE over the rows split among `nt` threads, then sums the threads' partials
 * into out1[c], out2[c]. */
#define NR_SYNCBN_REDUCE(out1, out2, A_EXPR, B_EXPR)                                         \
    do {                                                                                    \
        int team_used = 1;                                                                  \
        _Pragma("omp parallel num_threads(nt)")                                             \
        {                                                                                   \
            const int tid = omp_get_thread_num(), team = omp_get_num_threads();             \
            const int64_t n0 = N * tid / team, n1 = N * (tid + 1) / team;                   \
            double *acc1 = partials + (size_t)tid * 2 * C, *acc2 = acc1 + C;                \
            memset(acc1, 0, (size_t)(2 * C) * sizeof(double));                              \
            NR_SYNCBN_ACCUMULATE(A_EXPR, B_EXPR);                                           \
            _Pragma("omp single") team_used = team;                                         \
        }                                                                                   \
        for (int64_t c = 0; c < C; c++) {                                                   \
            double r1 = 0, r2 = 0;                                                          \
            for (int t = 0; t < team_used; t++) {                                           \
                r1 += partials[(size_t)t * 2 * C + c];                                      \
                r2 += partials[(size_t)t * 2 * C + C + c];                                  \
            }                                                                               \
            (out1)[c] = r1;                                                                 \
            (out2)[c] = r2;                                                                 \
        }                                                                                   \
    } while (0)

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
    double *s1 = partials + (size_t)nthreads * 2 * C, *s2 = s1 + C;
    const double count = (double)N * (double)L;
    const int nt = FN(nr_syncbn_threads)(nthreads, N, C, L, 1);
    if (C == 0 || N * L == 0) { /* C first: with C = 0, N and L may be anything */
        for (int64_t c = 0; c < C; c++) {
            mean[c] = 0;
            m2[c] = 0;
        }
        return;
    }
    NR_SYNCBN_REDUCE(s1, s2, (double)x[k], 0.0);
    for (int64_t c = 0; c < C; c++) {
        mean[c] = s1[c] / count;
    }
    NR_SYNCBN_REDUCE(s1, s2, ((double)x[k] - mean[c]) * ((double)x[k] - mean[c]),
                     (double)x[k] - mean[c]);
    for (int64_t c = 0; c < C; c++) {
        const double v = s1[c] - s2[c] * s2[c] / count;
        m2[c] = v > 0 ? v : 0;
    }
}

/* x (N, C, L), mean, rstd (C) of the global batch, w, b (C) or NULL -> y (N, C, L) =
 *   y = (x - mean) rstd w + b  computed as  (x - mean) k_scale + k_shift */
void
FN(nr_syncbn_forward)(T *y, const T *x, const T *mean, const T *rstd, const T *w, const T *b,
                      int64_t N, int64_t C, int64_t L, void *workspace, int nthreads)
{
    T *k_scale = (T *)workspace, *k_shift = k_scale + C;
    for (int64_t c = 0; c < C; c++) {
        k_scale[c] = w ? (T)((double)w[c] * (double)rstd[c]) : rstd[c];
        k_shift[c] = b ? b[c] : (T)0;
    }
    if (N == 0 || C == 0 || L == 0) { /* empty: no pass over N rows of nothing */
        return;
    }
    const int nt = FN(nr_syncbn_threads)(nthreads, N, C, L, 2);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t n = 0; n < N; n++) {
        if (L == 1) {
            const T *xr = x + n * C;
            T *yr = y + n * C;
#pragma omp simd
            for (int64_t c = 0; c < C; c++) {
                yr[c] = (xr[c] - mean[c]) * k_scale[c] + k_shift[c];
            }
        }
        else {
            for (int64_t c = 0; c < C; c++) {
                const int64_t off = (n * C + c) * L;
                const T mu = mean[c], sc = k_scale[c], sh = k_shift[c];
#pragma omp simd
                for (int64_t l = 0; l < L; l++) {
                    y[off + l] = (x[off + l] - mu) * sc + sh;
                }
            }
        }
    }
}

/* dy, x (N, C, L), mean, rstd (C) -> sum_dy (C) = sum(dy), sum_dy_xhat (C) = sum(dy xhat),
 * xhat = (x - mean) rstd, over this process's N L values of each channel (0 when empty). */
void
FN(nr_syncbn_grad_sums)(double *sum_dy, double *sum_dy_xhat, const T *dy, const T *x,
                        const T *mean, const T *rstd, int64_t N, int64_t C, int64_t L,
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
    NR_SYNCBN_REDUCE(sum_dy, sum_dy_xhat, (double)dy[k],
                     (double)dy[k] * ((double)x[k] - (double)mean[c]));
    for (int64_t c = 0; c < C; c++) {
        sum_dy_xhat[c] *= (double)rstd[c];
    }
}

/* dy, x (N, C, L), mean, rstd (C), w (C) or NULL, and the global sums sum_dy, sum_dy_xhat
 * (C) over `count` values -> dx (N, C, L) =
 *   dx = w rstd (dy - sum_dy / count - xhat sum_dy_xhat / count),  xhat = (x - mean) rstd
 * computed as dx = k_dy dy + k_xc (x - mean) + k_0 with per-channel constants. */
void
FN(nr_syncbn_backward)(T *dx, const T *dy, const T *x, const T *mean, const T *rstd,
                       const T *w, const double *sum_dy, const double *sum_dy_xhat,
                       double count, int64_t N, int64_t C, int64_t L, void *workspace,
                       int nthreads)
{
    T *k_dy = (T *)workspace, *k_xc = k_dy + C, *k_0 = k_xc + C;
    for (int64_t c = 0; c < C; c++) {
        const double r = rstd[c], wr = (w ? (double)w[c] : 1.0) * r;
        k_dy[c] = (T)wr;
        k_xc[c] = (T)(-wr * r * sum_dy_xhat[c] / count); /* through the variance */
        k_0[c] = (T)(-wr * sum_dy[c] / count);           /* through the mean */
    }
    if (N == 0 || C == 0 || L == 0) {
        return;
    }
    FN(nr_batchnorm_apply_grad)(dx, dy, x, mean, k_dy, k_xc, k_0, N, C, L,
                                FN(nr_syncbn_threads)(nthreads, N, C, L, 3));
}

#undef NR_SYNCBN_ACCUMULATE
#undef NR_SYNCBN_REDUCE
