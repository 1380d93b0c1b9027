/* LayerNorm kernels for one element type T (see layernorm.c). */

/* x (M, D), w (D) or NULL, b (D) or NULL -> y (M, D), mean (M), rstd (M) */
void
FN(nr_layernorm_forward)(T *y, T *mean, T *rstd, const T *x, const T *w, const T *b, int64_t M,
                         int64_t D, double eps)
{
    int nt = nr_threads_for((size_t)(M * D) * 2 * sizeof(T));
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < M; i++) {
        const T *xr = x + i * D;
        T *yr = y + i * D;
        if (D == 0) {
            mean[i] = 0;
            rstd[i] = (T)(1 / sqrt(eps));
            continue;
        }
        /* Two passes over the row while it is in cache, both shifted by the row's first
         * element: x - shift is exact for values near the shift, so a large common offset
         * (mean 1e6 in float32) costs no accuracy, unlike E[x^2] - E[x]^2. */
        const T shift = xr[0];
        T sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < D; j++) {
            sum += xr[j] - shift;
        }
        const T dmean = sum / (T)D; /* mean - shift */
        T sumsq = 0;
#pragma omp simd reduction(+ : sumsq)
        for (int64_t j = 0; j < D; j++) {
            T d = (xr[j] - shift) - dmean;
            sumsq += d * d;
        }
        const T r = (T)1 / SQRT(sumsq / (T)D + (T)eps);
        mean[i] = shift + dmean;
        rstd[i] = r;
        if (w && b) {
#pragma omp simd
            for (int64_t j = 0; j < D; j++) {
                yr[j] = ((xr[j] - shift) - dmean) * r * w[j] + b[j];
            }
        }
        else if (w) {
#pragma omp simd
            for (int64_t j = 0; j < D; j++) {
                yr[j] = ((xr[j] - shift) - dmean) * r * w[j];
            }
        }
        else if (b) {
#pragma omp simd
            for (int64_t j = 0; j < D; j++) {
                yr[j] = ((xr[j] - shift) - dmean) * r + b[j];
            }
        }
        else {
#pragma omp simd
            for (int64_t j = 0; j < D; j++) {
                yr[j] = ((xr[j] - shift) - dmean) * r;
            }
        }
    }
}

/* Per-thread partial sums of dw and db: 2 D values of T for each thread. */
size_t
FN(nr_layernorm_backward_workspace)(int64_t D, int nthreads)
{
    return (size_t)nthreads * 2 * (size_t)D * sizeof(T);
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
#pragma omp parallel num_threads(nt)
    {
        const int tid = omp_get_thread_num(), team = omp_get_num_threads();
        T *pdw = want_params ? partials + (size_t)tid * 2 * D : NULL;
        T *pdb = want_params ? pdw + D : NULL;
        if (want_params) {
            memset(pdw, 0, (size_t)(2 * D) * sizeof(T));
        }
#pragma omp for schedule(static)
        for (int64_t i = 0; i < M; i++) {
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
            if (w) {
#pragma omp simd
                for (int64_t j = 0; j < D; j++) {
                    T xhat = (xr[j] - mu) * r;
                    dxr[j] = r * (dyr[j] * w[j] - mean_g - xhat * mean_g_xhat);
                }
            }
            else {
#pragma omp simd
                for (int64_t j = 0; j < D; j++) {
                    T xhat = (xr[j] - mu) * r;
                    dxr[j] = r * (dyr[j] - mean_g - xhat * mean_g_xhat);
                }
            }
            if (want_params) {
                /* dw = sum over rows of dy xhat, db = sum over rows of dy */
#pragma omp simd
                for (int64_t j = 0; j < D; j++) {
                    pdw[j] += dyr[j] * (xr[j] - mu) * r;
                    pdb[j] += dyr[j];
                }
            }
        }
        if (want_params) {
            /* implicit barrier above: every thread's partials are complete */
#pragma omp for schedule(static)
            for (int64_t j = 0; j < D; j++) {
                T sw = 0, sb = 0;
                for (int t = 0; t < team; t++) {
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
}
