/* BatchNorm kernels for one element type T (see batchnorm.c). */

/* Per-thread partial sums (2 C doubles a thread) and 4 C per-channel constants. */
size_t
FN(nr_batchnorm_workspace)(int64_t C, int nthreads)
{
    return ((size_t)nthreads * 2 + 4) * (size_t)C * sizeof(double);
}

/* Adds, for each channel c, sum(a) and sum(a * bv) over the rows [n0, n1) of x (N, C, L)
 * into acc1[c], acc2[c], where a = A(n, c, l) and bv = B(n, c, l) are given as macros of
 * the element offset `k` and channel `c`. Used by the statistics passes below. */
#define NR_BN_ACCUMULATE(A_EXPR, B_EXPR)                                                   \
    do {                                                                                    \
        if (L == 1) {                                                                       \
            /* (N, C): walk rows, vectorized across the channels */                         \
            for (int64_t n = n0; n < n1; n++) {                                             \
                _Pragma("omp simd") for (int64_t c = 0; c < C; c++)                         \
                {                                                                           \
                    const int64_t k = n * C + c;                                            \
                    const double a = (A_EXPR), bv = (B_EXPR);                               \
                    acc1[c] += a;                                                           \
                    acc2[c] += a * bv;                                                      \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
        else {                                                                              \
            /* (N, C, L): each (n, c) is a contiguous run of L values */                    \
            for (int64_t n = n0; n < n1; n++) {                                             \
                for (int64_t c = 0; c < C; c++) {                                           \
                    double s1 = 0, s2 = 0;                                                  \
                    _Pragma("omp simd reduction(+ : s1, s2)") for (int64_t l = 0; l < L; l++) \
                    {                                                                       \
                        const int64_t k = (n * C + c) * L + l;                              \
                        const double a = (A_EXPR), bv = (B_EXPR);                           \
                        s1 += a;                                                            \
                        s2 += a * bv;                                                       \
                    }                                                                       \
                    acc1[c] += s1;                                                          \
                    acc2[c] += s2;                                                          \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    } while (0)

/* (N, C) input, rows [n0, n1): acc1[c] += sum (x - shift[c]), acc2[c] += sum (x - shift[c])^2,
 * in double, vectorized across channels. Channels in blocks of 2048 so the accumulators
 * (32 KiB a block) stay in L1/L2 while the rows stream by; below that, rows are read whole
 * (a strided walk over column strips defeats the prefetcher). */
static void
FN(nr_bn_stats_rows)(double *restrict acc1, double *restrict acc2, const T *restrict x,
                     const T *restrict shift, int64_t n0, int64_t n1, int64_t C)
{
    enum { CB = 2048 };
    for (int64_t c0 = 0; c0 < C; c0 += CB) {
        const int64_t c1 = NR_MIN(C, c0 + CB);
        int64_t n = n0;
        /* four rows per sweep: a quarter of the accumulator loads and stores */
        for (; n + 4 <= n1; n += 4) {
            const T *r0 = x + n * C, *r1 = r0 + C, *r2 = r1 + C, *r3 = r2 + C;
#pragma omp simd
            for (int64_t c = c0; c < c1; c++) {
                const double s = (double)shift[c];
                const double d0 = (double)r0[c] - s, d1 = (double)r1[c] - s;
                const double d2 = (double)r2[c] - s, d3 = (double)r3[c] - s;
                acc1[c] += (d0 + d1) + (d2 + d3);
                acc2[c] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3);
            }
        }
        for (; n < n1; n++) {
            const T *xr = x + n * C;
#pragma omp simd
            for (int64_t c = c0; c < c1; c++) {
                const double d = (double)xr[c] - (double)shift[c];
                acc1[c] += d;
                acc2[c] += d * d;
            }
        }
    }
}

/* (N, C) input, rows [n0, n1): acc1[c] += sum dy, acc2[c] += sum dy (x - mean[c]). */
static void
FN(nr_bn_dsums_rows)(double *restrict acc1, double *restrict acc2, const T *restrict dy,
                     const T *restrict x, const T *restrict mean, int64_t n0, int64_t n1,
                     int64_t C)
{
    enum { CB = 2048 };
    for (int64_t c0 = 0; c0 < C; c0 += CB) {
        const int64_t c1 = NR_MIN(C, c0 + CB);
        int64_t n = n0;
        for (; n + 4 <= n1; n += 4) {
            const T *x0 = x + n * C, *x1 = x0 + C, *x2 = x1 + C, *x3 = x2 + C;
            const T *g0 = dy + n * C, *g1 = g0 + C, *g2 = g1 + C, *g3 = g2 + C;
#pragma omp simd
            for (int64_t c = c0; c < c1; c++) {
                const T mu = mean[c];
                const double a0 = (double)g0[c], a1 = (double)g1[c];
                const double a2 = (double)g2[c], a3 = (double)g3[c];
                acc1[c] += (a0 + a1) + (a2 + a3);
                acc2[c] += (a0 * (double)(x0[c] - mu) + a1 * (double)(x1[c] - mu)) +
                           (a2 * (double)(x2[c] - mu) + a3 * (double)(x3[c] - mu));
            }
        }
        for (; n < n1; n++) {
            const T *xr = x + n * C, *dyr = dy + n * C;
#pragma omp simd
            for (int64_t c = c0; c < c1; c++) {
                const double g = (double)dyr[c];
                acc1[c] += g;
                acc2[c] += g * (double)(xr[c] - mean[c]);
            }
        }
    }
}

/* (N, C) rows [n0, n1): y = ((x - sub1) - sub2) * scale + shift per channel. */
static void
FN(nr_bn_apply_rows)(T *restrict y, const T *restrict x, const T *restrict sub1,
                     const T *restrict sub2, const T *restrict scale, const T *restrict shift,
                     int64_t n0, int64_t n1, int64_t C)
{
    for (int64_t n = n0; n < n1; n++) {
        const T *xr = x + n * C;
        T *yr = y + n * C;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) {
            yr[c] = ((xr[c] - sub1[c]) - sub2[c]) * scale[c] + shift[c];
        }
    }
}

/* (N, C) rows [n0, n1): dx = k_dy dy + k_xc (x - mean) + k_const per channel. */
static void
FN(nr_bn_dx_rows)(T *restrict dx, const T *restrict dy, const T *restrict x,
                  const T *restrict mean, const T *restrict k_dy, const T *restrict k_xc,
                  const T *restrict k_const, int64_t n0, int64_t n1, int64_t C)
{
    for (int64_t n = n0; n < n1; n++) {
        const T *xr = x + n * C, *dyr = dy + n * C;
        T *dxr = dx + n * C;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) {
            dxr[c] = k_dy[c] * dyr[c] + k_xc[c] * (xr[c] - mean[c]) + k_const[c];
        }
    }
}

/* y[k] = (x[k] - sub1[c] - sub2[c]) * scale[c] + shift[c] for every element, all T. */
static void
FN(nr_bn_apply)(T *y, const T *x, const T *sub1, const T *sub2, const T *scale, const T *shift,
                int64_t N, int64_t C, int64_t L, int nt)
{
    if (L == 1) {
        NR_SPLIT(nt, N, 1, FN(nr_bn_apply_rows)(y, x, sub1, sub2, scale, shift, i0, i1, C));
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t n = 0; n < N; n++) {
        for (int64_t c = 0; c < C; c++) {
            const T *xr = x + (n * C + c) * L;
            T *yr = y + (n * C + c) * L;
            const T s1 = sub1[c], s2 = sub2[c], sc = scale[c], sh = shift[c];
#pragma omp simd
            for (int64_t l = 0; l < L; l++) {
                yr[l] = ((xr[l] - s1) - s2) * sc + sh;
            }
        }
    }
}

/* Splits rows [0, N) among the team: this thread's share is [n0, n1). */
#define NR_BN_ROW_RANGE()                                                                  \
    const int tid = omp_get_thread_num(), team = omp_get_num_threads();                    \
    const int64_t n0 = N * tid / team, n1 = N * (tid + 1) / team;                           \
    double *acc1 = partials + (size_t)tid * 2 * C, *acc2 = acc1 + C;                        \
    memset(acc1, 0, (size_t)(2 * C) * sizeof(double))

/* Sums the per-thread partials of `team` threads into acc (2 C doubles: sums 1 then 2). */
static void
FN(nr_bn_reduce)(double *partials, int team, int64_t C)
{
    for (int t = 1; t < team; t++) {
        for (int64_t c = 0; c < 2 * C; c++) {
            partials[c] += partials[(size_t)t * 2 * C + c];
        }
    }
}

/* Training forward. x (N, C, L) with N L >= 1 when C > 0, w, b (C) or NULL,
 * running_mean, running_var (C) or NULL (updated in place with momentum m)
 *   -> y (N, C, L), save_mean (C), save_rstd (C) (biased variance) */
void
FN(nr_batchnorm_forward_train)(T *y, T *save_mean, T *save_rstd, T *running_mean,
                               T *running_var, const T *x, const T *w, const T *b, int64_t N,
                               int64_t C, int64_t L, double momentum, double eps,
                               void *workspace, int nthreads)
{
    double *partials = (double *)workspace;
    double *consts = partials + (size_t)nthreads * 2 * C;
    /* per-channel constants as T: shift (the channel's first value), mean - shift, scale, b */
    T *c_shift = (T *)consts, *c_dmean = c_shift + C, *c_scale = c_dmean + C, *c_bias = c_scale + C;
    const double count = (double)N * (double)L;
    if (C == 0) {
        return; /* no channels: nothing to compute (N or L may still be huge) */
    }
    int nt = NR_MIN(nthreads, nr_threads_for((size_t)(N * C * L) * sizeof(T)));
    if (nt < 1) {
        nt = 1;
    }
    for (int64_t c = 0; c < C; c++) {
        c_shift[c] = x[c * L];
    }
    int team_used = 1;
    /* One pass for the statistics: sums of d and d^2 with d = x - shift in double. The shift
     * (a value of the channel) keeps d small, so the variance does not cancel away. */
    if (L == 1 && nt == 1) { /* no OpenMP region: small calls pay no fork/join */
        memset(partials, 0, (size_t)(2 * C) * sizeof(double));
        FN(nr_bn_stats_rows)(partials, partials + C, x, c_shift, 0, N, C);
    }
    else {
#pragma omp parallel num_threads(nt)
        {
            NR_BN_ROW_RANGE();
            if (L == 1) {
                FN(nr_bn_stats_rows)(acc1, acc2, x, c_shift, n0, n1, C);
            }
            else {
                NR_BN_ACCUMULATE((double)x[k] - (double)c_shift[c],
                                 (double)x[k] - (double)c_shift[c]);
            }
#pragma omp single
            team_used = team;
        }
    }
    FN(nr_bn_reduce)(partials, team_used, C);
    for (int64_t c = 0; c < C; c++) {
        const double dmean = partials[c] / count;
        double var = partials[C + c] / count - dmean * dmean;
        if (var < 0) {
            var = 0;
        }
        const double mean = (double)c_shift[c] + dmean;
        const double rstd = 1 / sqrt(var + eps);
        save_mean[c] = (T)mean;
        save_rstd[c] = (T)rstd;
        c_dmean[c] = (T)dmean;
        c_scale[c] = (T)(w ? w[c] * rstd : rstd);
        c_bias[c] = b ? b[c] : (T)0;
        if (running_mean) {
            running_mean[c] = (T)((1 - momentum) * running_mean[c] + momentum * mean);
        }
        if (running_var) {
            const double unbiased = count > 1 ? var * count / (count - 1) : var;
            running_var[c] = (T)((1 - momentum) * running_var[c] + momentum * unbiased);
        }
    }
    nt = NR_MIN(nthreads, nr_threads_for((size_t)(N * C * L) * 2 * sizeof(T)));
    FN(nr_bn_apply)(y, x, c_shift, c_dmean, c_scale, c_bias, N, C, L, nt < 1 ? 1 : nt);
}

/* Evaluation forward with the running estimates. x (N, C, L), running_mean, running_var (C)
 *   -> y (N, C, L), save_mean (C) = running_mean, save_rstd (C) = 1 / sqrt(running_var + eps) */
void
FN(nr_batchnorm_forward_eval)(T *y, T *save_mean, T *save_rstd, const T *x,
                              const T *running_mean, const T *running_var, const T *w,
                              const T *b, int64_t N, int64_t C, int64_t L, double eps)
{
    for (int64_t c = 0; c < C; c++) {
        save_mean[c] = running_mean[c];
        save_rstd[c] = (T)(1 / sqrt((double)running_var[c] + eps));
    }
    if (N == 0 || C == 0 || L == 0) {
        return; /* empty x: the loops below would still walk the other, possibly huge, dims */
    }
    int nt = nr_threads_for((size_t)(N * C * L) * 2 * sizeof(T));
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t n = 0; n < N; n++) {
        for (int64_t c = 0; c < C; c++) {
            const T *xr = x + (n * C + c) * L;
            T *yr = y + (n * C + c) * L;
            const T mu = save_mean[c];
            const T sc = w ? w[c] * save_rstd[c] : save_rstd[c];
            const T sh = b ? b[c] : (T)0;
#pragma omp simd
            for (int64_t l = 0; l < L; l++) {
                yr[l] = (xr[l] - mu) * sc + sh;
            }
        }
    }
}

/* dy, x (N, C, L), save_mean, save_rstd (C), w (C) or NULL -> dx =, dw (C) +=, db (C) +=
 * training (batch statistics), with xhat = (x - mean) rstd and n = N L:
 *   dx = w rstd (dy - sum(dy) / n - xhat sum(dy xhat) / n)
 * evaluation (fixed statistics): dx = w rstd dy.  In both: dw += sum(dy xhat), db += sum(dy).
 * dx, dw, db may each be NULL. */
void
FN(nr_batchnorm_backward)(T *dx, T *dw, T *db, const T *dy, const T *x, const T *save_mean,
                          const T *save_rstd, const T *w, int64_t N, int64_t C, int64_t L,
                          int training, void *workspace, int nthreads)
{
    double *partials = (double *)workspace;
    double *consts = partials + (size_t)nthreads * 2 * C;
    T *k_dy = (T *)consts, *k_xc = k_dy + C, *k_const = k_xc + C;
    const double count = (double)N * (double)L;
    const int need_sums = training ? (dx != NULL) : 0;
    if (N == 0 || C == 0 || L == 0) {
        return; /* empty x: dw, db gain zero sums, dx is empty */
    }
    int nt = NR_MIN(nthreads, nr_threads_for((size_t)(N * C * L) * 2 * sizeof(T)));
    if (nt < 1) {
        nt = 1;
    }
    int team_used = 1;
    if (need_sums || dw || db) {
        /* sums of dy and dy (x - mean) per channel */
        if (L == 1 && nt == 1) {
            memset(partials, 0, (size_t)(2 * C) * sizeof(double));
            FN(nr_bn_dsums_rows)(partials, partials + C, dy, x, save_mean, 0, N, C);
        }
        else {
#pragma omp parallel num_threads(nt)
            {
                NR_BN_ROW_RANGE();
                if (L == 1) {
                    FN(nr_bn_dsums_rows)(acc1, acc2, dy, x, save_mean, n0, n1, C);
                }
                else {
                    NR_BN_ACCUMULATE((double)dy[k], (double)(x[k] - save_mean[c]));
                }
#pragma omp single
                team_used = team;
            }
        }
        FN(nr_bn_reduce)(partials, team_used, C);
    }
    else {
        memset(partials, 0, (size_t)(2 * C) * sizeof(double));
    }
    for (int64_t c = 0; c < C; c++) {
        const double sum_dy = partials[c], sum_dy_xc = partials[C + c];
        const double rstd = save_rstd[c], wc = w ? w[c] : 1.0;
        if (dw) {
            dw[c] += (T)(sum_dy_xc * rstd);
        }
        if (db) {
            db[c] += (T)sum_dy;
        }
        /* dx = k_dy dy + k_xc (x - mean) + k_const */
        k_dy[c] = (T)(wc * rstd);
        if (training) {
            k_xc[c] = (T)(-wc * rstd * rstd * rstd * sum_dy_xc / count);
            k_const[c] = (T)(-wc * rstd * sum_dy / count);
        }
        else {
            k_xc[c] = 0;
            k_const[c] = 0;
        }
    }
    if (!dx) {
        return;
    }
    nt = NR_MIN(nthreads, nr_threads_for((size_t)(N * C * L) * 3 * sizeof(T)));
    FN(nr_batchnorm_apply_grad)(dx, dy, x, save_mean, k_dy, k_xc, k_const, N, C, L, nt);
}

/* dy, x (N, C, L), mean (C), per-channel k_dy, k_xc, k_const (C)
 *   -> dx = k_dy dy + k_xc (x - mean) + k_const   (with `nt` threads)
 * The input gradient of batch norm once its per-channel sums are folded into the three
 * constants; SyncBatchNorm uses it with the sums of every process. */
void
FN(nr_batchnorm_apply_grad)(T *dx, const T *dy, const T *x, const T *mean, const T *k_dy,
                            const T *k_xc, const T *k_const, int64_t N, int64_t C, int64_t L,
                            int nt)
{
    if (nt < 1) {
        nt = 1;
    }
    if (L == 1) {
        NR_SPLIT(nt, N, 1, FN(nr_bn_dx_rows)(dx, dy, x, mean, k_dy, k_xc, k_const, i0, i1, C));
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t n = 0; n < N; n++) {
        for (int64_t c = 0; c < C; c++) {
            const int64_t off = (n * C + c) * L;
            const T kd = k_dy[c], kx = k_xc[c], k0 = k_const[c], mu = mean[c];
#pragma omp simd
            for (int64_t l = 0; l < L; l++) {
                dx[off + l] = kd * dy[off + l] + kx * (x[off + l] - mu) + k0;
            }
        }
    }
}

#undef NR_BN_ACCUMULATE
#undef NR_BN_ROW_RANGE
