/* LayerNorm kernels for one element type T (see layernorm.c). */

/* Rows [i0, i1) of the forward, in tiles of up to 16 rows that stay in cache: each pass runs
 * over every row of the tile before the next pass starts, so the rows' reductions are
 * independent work the CPU overlaps (one row at a time, the latency chain sum -> mean ->
 * sum of squares -> sqrt -> output dominated small D), and the square roots of a tile
 * vectorize. */
static NR_CLONES void
FN(nr_layernorm_forward_rows)(T *restrict y, T *restrict mean, T *restrict rstd,
                              const T *restrict x, const T *restrict w, const T *restrict b,
                              int64_t D, double eps, int64_t i0, int64_t i1)
{
    enum { TILE = 16 };
    if (D == 0) {
        for (int64_t i = i0; i < i1; i++) {
            mean[i] = 0;
            rstd[i] = (T)(1 / sqrt(eps));
        }
        return;
    }
    /* rows per tile: the tile (R D values) within about 64 KiB */
    const int64_t R = NR_MAX((int64_t)1, NR_MIN((int64_t)TILE, (int64_t)(65536 / sizeof(T)) / D));
    T shift[TILE], dmean[TILE], var[TILE], r[TILE];
    for (int64_t t0 = i0; t0 < i1; t0 += R) {
        const int64_t nr = NR_MIN(R, i1 - t0);
        /* Two passes over each row while it is in cache, both shifted by the row's first
         * element: x - shift is exact for values near the shift, so a large common offset
         * (mean 1e6 in float32) costs no accuracy, unlike E[x^2] - E[x]^2. */
        for (int64_t k = 0; k < nr; k++) {
            const T *xr = x + (t0 + k) * D;
            const T sh = xr[0];
            T sum = 0;
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < D; j++) {
                sum += xr[j] - sh;
            }
            shift[k] = sh;
            dmean[k] = sum / (T)D; /* mean - shift */
        }
        for (int64_t k = 0; k < nr; k++) {
            const T *xr = x + (t0 + k) * D;
            const T sh = shift[k], dm = dmean[k];
            T sumsq = 0;
#pragma omp simd reduction(+ : sumsq)
            for (int64_t j = 0; j < D; j++) {
                const T d = (xr[j] - sh) - dm;
                sumsq += d * d;
            }
            var[k] = sumsq / (T)D;
        }
#pragma omp simd
        for (int64_t k = 0; k < nr; k++) {
            r[k] = (T)1 / SQRT(var[k] + (T)eps);
        }
        for (int64_t k = 0; k < nr; k++) {
            mean[t0 + k] = shift[k] + dmean[k];
            rstd[t0 + k] = r[k];
            const T *xr = x + (t0 + k) * D;
            T *yr = y + (t0 + k) * D;
            const T sh = shift[k], dm = dmean[k], rk = r[k];
            if (w && b) {
#pragma omp simd
                for (int64_t j = 0; j < D; j++) {
                    yr[j] = ((xr[j] - sh) - dm) * rk * w[j] + b[j];
                }
            }
            else if (w) {
#pragma omp simd
                for (int64_t j = 0; j < D; j++) {
                    yr[j] = ((xr[j] - sh) - dm) * rk * w[j];
                }
            }
            else if (b) {
#pragma omp simd
                for (int64_t j = 0; j < D; j++) {
                    yr[j] = ((xr[j] - sh) - dm) * rk + b[j];
                }
            }
            else {
#pragma omp simd
                for (int64_t j = 0; j < D; j++) {
                    yr[j] = ((xr[j] - sh) - dm) * rk;
                }
            }
        }
    }
}

/* x (M, D), w (D) or NULL, b (D) or NULL -> y (M, D), mean (M), rstd (M) */
void
FN(nr_layernorm_forward)(T *y, T *mean, T *rstd, const T *x, const T *w, const T *b, int64_t M,
                         int64_t D, double eps)
{
    int nt = nr_threads_for((size_t)(M * D) * 2 * sizeof(T));
    NR_SPLIT(nt, M, 1, FN(nr_layernorm_forward_rows)(y, mean, rstd, x, w, b, D, eps, i0, i1));
}

/* Per-thread partial sums of dw and db: 2 D values of T for each thread. */
size_t
FN(nr_layernorm_backward_workspace)(int64_t D, int nthreads)
{
    return (size_t)nthreads * 2 * (size_t)D * sizeof(T);
}

/* Rows [i0, i1) of the backward; pdw, pdb (D) accumulate this range's dw, db (or NULL). */
static NR_CLONES void
FN(nr_layernorm_backward_rows)(T *restrict dx, T *restrict pdw, T *restrict pdb,
                               const T *restrict dy, const T *restrict x, const T *restrict mean,
                               const T *restrict rstd, const T *restrict w, int64_t D,
                               int64_t i0, int64_t i1)
{
    const int want_params = pdw != NULL;
    for (int64_t i = i0; i < i1; i++) {
        const T *xr = x + i * D, *dyr = dy + i * D;
        T *dxr = dx + i * D;
        const T mu = mean[i], r = rstd[i];
        T sum_g = 0, sum_g_xhat = 0;
        if (w) {
#pragma omp simd reduction(+ : sum_g, sum_g_xhat)
            for (int64_t j = 0; j < D; j++) {
                T g = dyr[j] * w[j];
                sum_g += g;
                sum_g_xhat += g * (xr[j] - mu) * r;
            }
        }
        else {
#pragma omp simd reduction(+ : sum_g, sum_g_xhat)
            for (int64_t j = 0; j < D; j++) {
                sum_g += dyr[j];
                sum_g_xhat += dyr[j] * (xr[j] - mu) * r;
            }
        }
        const T mean_g = sum_g / (T)D, mean_g_xhat = sum_g_xhat / (T)D;
        /* dx, and in the same pass dw += dy xhat, db += dy (summed over rows) */
        if (w && want_params) {
#pragma omp simd
            for (int64_t j = 0; j < D; j++) {
                const T g = dyr[j], xhat = (xr[j] - mu) * r;
                dxr[j] = r * (g * w[j] - mean_g - xhat * mean_g_xhat);
                pdw[j] += g * xhat;
                pdb[j] += g;
            }
        }
        else if (want_params) {
#pragma omp simd
            for (int64_t j = 0; j < D; j++) {
                const T g = dyr[j], xhat = (xr[j] - mu) * r;
                dxr[j] = r * (g - mean_g - xhat * mean_g_xhat);
                pdw[j] += g * xhat;
                pdb[j] += g;
            }
        }
        else if (w) {
#pragma omp simd
            for (int64_t j = 0; j < D; j++) {
                const T xhat = (xr[j] - mu) * r;
                dxr[j] = r * (dyr[j] * w[j] - mean_g - xhat * mean_g_xhat);
            }
        }
        else {
#pragma omp simd
            for (int64_t j = 0; j < D; j++) {
                const T xhat = (xr[j] - mu) * r;
                dxr[j] = r * (dyr[j] - mean_g - xhat * mean_g_xhat);
            }
        }
    }
}

/* dy (M, D), x (M, D), mean (M), rstd (M), w (D) or NULL
 *   -> dx (M, D) =, dw (D) +=, db (D) +=   (dw, db may be NULL)
 * With xhat = (x - mean) rstd and g = dy w:
 *   dx = rstd (g - mean(g) - xhat mean(g xhat))
 * (the two means are the gradient through E[x] and through Var[x]). */
void
FN(nr_layernorm_backward)(T *dx, T *dw, T *db, const T *dy, const T *x, const T *mean,
                          const T *rstd, const T *w, int64_t M, int64_t D, void *workspace,
                          int nthreads)
{
    const int want_params = (dw != NULL || db != NULL);
    int nt = NR_MIN(nthreads, nr_threads_for((size_t)(M * D) * 3 * sizeof(T)));
    if (nt < 1) {
        nt = 1;
    }
    T *partials = (T *)workspace;
    int team_used = 1;
    if (nt == 1) { /* no OpenMP region at all: small calls pay no fork/join */
        if (want_params) {
            memset(partials, 0, (size_t)(2 * D) * sizeof(T));
        }
        FN(nr_layernorm_backward_rows)(dx, want_params ? partials : NULL,
                                       want_params ? partials + D : NULL, dy, x, mean, rstd, w,
                                       D, 0, M);
    }
    else {
#pragma omp parallel num_threads(nt)
        {
            const int tid = omp_get_thread_num(), team = omp_get_num_threads();
            T *pdw = want_params ? partials + (size_t)tid * 2 * D : NULL;
            T *pdb = want_params ? pdw + D : NULL;
            if (want_params) {
                memset(pdw, 0, (size_t)(2 * D) * sizeof(T));
            }
            FN(nr_layernorm_backward_rows)(dx, pdw, pdb, dy, x, mean, rstd, w, D,
                                           M * tid / team, M * (tid + 1) / team);
#pragma omp single
            team_used = team;
        }
    }
    if (want_params) {
        for (int64_t j = 0; j < D; j++) {
            T sw = 0, sb = 0;
            for (int t = 0; t < team_used; t++) {
                sw += partials[(size_t)t * 2 * D + j];
                sb += partials[(size_t)t * 2 * D + D + j];
            }
            if (dw) {
                dw[j] += sw;
            }
            if (db) {
                db[j] += sb;
            }
        }
    }
}
