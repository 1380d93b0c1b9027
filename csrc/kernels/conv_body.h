/* Conv2d kernels for one element type T (see conv.c). GEMM is the BLAS gemm for T. */

/* x (C, H, W) of one sample -> col (C KH KW, OH OW):
 *   col[(c KH + kh) KW + kw, oh OW + ow] = x[c, oh SH - PH + kh, ow SW - PW + kw], 0 in the padding */
static void
FN(nr_im2col)(T *col, const T *x, const nr_window2d *g)
{
    const int64_t C = g->C, H = g->H, W = g->W, KH = g->KH, KW = g->KW;
    const int64_t SH = g->SH, SW = g->SW, PH = g->PH, PW = g->PW, OH = g->OH, OW = g->OW;
    for (int64_t c = 0; c < C; c++) {
        const T *xc = x + c * H * W;
        for (int64_t kh = 0; kh < KH; kh++) {
            for (int64_t kw = 0; kw < KW; kw++) {
                T *row = col + ((c * KH + kh) * KW + kw) * OH * OW;
                int64_t lo, hi;
                nr_conv_valid_range(&lo, &hi, kw, SW, PW, W, OW);
                for (int64_t oh = 0; oh < OH; oh++) {
                    const int64_t ih = oh * SH - PH + kh;
                    T *r = row + oh * OW;
                    if (ih < 0 || ih >= H || lo == hi) {
                        memset(r, 0, (size_t)OW * sizeof(T));
                        continue;
                    }
                    const T *xr = xc + ih * W + (lo * SW - PW + kw);
                    for (int64_t ow = 0; ow < lo; ow++) {
                        r[ow] = 0;
                    }
                    if (SW == 1) {
                        memcpy(r + lo, xr, (size_t)(hi - lo) * sizeof(T));
                    }
                    else {
                        for (int64_t ow = lo; ow < hi; ow++) {
                            r[ow] = xr[(ow - lo) * SW];
                        }
                    }
                    for (int64_t ow = hi; ow < OW; ow++) {
                        r[ow] = 0;
                    }
                }
            }
        }
    }
}

/* col (C KH KW, OH OW) -> dx (C, H, W) =: the transpose of im2col, each col value added to
 * the input position im2col copied it from (padding positions dropped). */
static void
FN(nr_col2im)(T *dx, const T *col, const nr_window2d *g)
{
    const int64_t C = g->C, H = g->H, W = g->W, KH = g->KH, KW = g->KW;
    const int64_t SH = g->SH, SW = g->SW, PH = g->PH, PW = g->PW, OH = g->OH, OW = g->OW;
    memset(dx, 0, (size_t)(C * H * W) * sizeof(T));
    for (int64_t c = 0; c < C; c++) {
        T *dxc = dx + c * H * W;
        for (int64_t kh = 0; kh < KH; kh++) {
            for (int64_t kw = 0; kw < KW; kw++) {
                const T *row = col + ((c * KH + kh) * KW + kw) * OH * OW;
                int64_t lo, hi;
                nr_conv_valid_range(&lo, &hi, kw, SW, PW, W, OW);
                if (lo == hi) {
                    continue;
                }
                for (int64_t oh = 0; oh < OH; oh++) {
                    const int64_t ih = oh * SH - PH + kh;
                    if (ih < 0 || ih >= H) {
                        continue;
                    }
                    const T *r = row + oh * OW + lo;
                    T *dr = dxc + ih * W + (lo * SW - PW + kw);
                    if (SW == 1) {
#pragma omp simd
                        for (int64_t j = 0; j < hi - lo; j++) {
                            dr[j] += r[j];
                        }
                    }
                    else {
                        for (int64_t j = 0; j < hi - lo; j++) {
                            dr[j * SW] += r[j];
                        }
                    }
                }
            }
        }
    }
}

/* Samples [n0, n1) of the forward; col is this thread's im2col buffer (NULL: pointwise). */
static void
FN(nr_conv2d_forward_samples)(T *y, const T *x, const T *w, const T *b, const nr_window2d *g,
                              int64_t O, int64_t n0, int64_t n1, T *col)
{
    const int64_t K = g->C * g->KH * g->KW, L = g->OH * g->OW, xsize = g->C * g->H * g->W;
    for (int64_t n = n0; n < n1; n++) {
        const T *src = x + n * xsize;
        T *yn = y + n * O * L;
        if (col) {
            FN(nr_im2col)(col, src, g);
            src = col;
        }
        if (b) { /* y starts at the bias; the product is added onto it (beta = 1) */
            for (int64_t o = 0; o < O; o++) {
                const T bo = b[o];
#pragma omp simd
                for (int64_t l = 0; l < L; l++) {
                    yn[o * L + l] = bo;
                }
            }
        }
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)O, (int)L, (int)K, 1, w, (int)K, src,
             (int)L, b ? 1 : 0, yn, (int)L);
    }
}

static void
FN(nr_conv2d_forward_team)(T *y, const T *x, const T *w, const T *b, const nr_window2d *g,
                           int64_t O, T *cols, int64_t col_stride, int nt)
{
    const int64_t N = g->N;
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), m = omp_get_num_threads();
        FN(nr_conv2d_forward_samples)(y, x, w, b, g, O, N * t / m, N * (t + 1) / m,
                                      cols ? cols + t * col_stride : NULL);
    }
}

/* The bytes of one thread's im2col buffer (C KH KW, OH OW); 0 when pointwise. */
static size_t
FN(nr_conv2d_col_bytes)(const nr_window2d *g)
{
    if (nr_conv_is_pointwise(g)) {
        return 0;
    }
    return nr_conv_bytes(nr_conv_mul(nr_conv_mul((size_t)g->C, (size_t)g->KH),
                                     nr_conv_mul((size_t)g->KW,
                                                 nr_conv_mul((size_t)g->OH, (size_t)g->OW))),
                         sizeof(T));
}

/* One im2col buffer per thread (SIZE_MAX when the size overflows). */
size_t
FN(nr_conv2d_forward_workspace)(const nr_window2d *g, int64_t O, int nthreads)
{
    return nr_conv_mul((size_t)nr_conv_threads(g, O, nthreads), FN(nr_conv2d_col_bytes)(g));
}

/* x (N, C, H, W), w (O, C, KH, KW), b (O) or NULL -> y (N, O, OH, OW) */
void
FN(nr_conv2d_forward)(T *y, const T *x, const T *w, const T *b, const nr_window2d *g, int64_t O,
                      void *workspace, int nthreads)
{
    const int64_t N = g->N, K = g->C * g->KH * g->KW, L = g->OH * g->OW;
    if (N == 0 || O == 0 || L == 0) {
        return;
    }
    if (K == 0) { /* no input channels: every output is its bias */
        for (int64_t i = 0; i < N * O; i++) {
            const T v = b ? b[i % O] : (T)0;
            for (int64_t l = 0; l < L; l++) {
                y[i * L + l] = v;
            }
        }
        return;
    }
    const size_t col_bytes = FN(nr_conv2d_col_bytes)(g);
    T *cols = col_bytes ? (T *)workspace : NULL;
    const int64_t col_stride = (int64_t)(col_bytes / sizeof(T));
    const int nt = nr_conv_threads(g, O, nthreads);
    if (nt <= 1) {
        const int blas_threads = (double)O * (double)K * (double)L >= 4e6 ? nthreads : 1;
        NR_WITH_BLAS_THREADS(blas_threads,
                             FN(nr_conv2d_forward_samples)(y, x, w, b, g, O, 0, N, cols));
    }
    else {
        NR_WITH_BLAS_THREADS(1, FN(nr_conv2d_forward_team)(y, x, w, b, g, O, cols, col_stride, nt));
    }
}

/* Samples [n0, n1) of the backward into this thread's dwt (O, K) and dbt (O) sums. */
static void
FN(nr_conv2d_backward_samples)(T *dx, T *dwt, double *dbt, const T *dy, const T *x, const T *w,
                               const nr_window2d *g, int64_t O, int64_t n0, int64_t n1, T *col)
{
    const int64_t K = g->C * g->KH * g->KW, L = g->OH * g->OW, xsize = g->C * g->H * g->W;
    for (int64_t n = n0; n < n1; n++) {
        const T *dyn = dy + n * O * L;
        if (dwt && K > 0) { /* dw += dy[n] col^T */
            const T *src = x + n * xsize;
            if (col) {
                FN(nr_im2col)(col, src, g);
                src = col;
            }
            GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)O, (int)K, (int)L, 1, dyn, (int)L,
                 src, (int)L, 1, dwt, (int)K);
        }
        if (dbt) {
            for (int64_t o = 0; o < O; o++) {
                double s;
                NR_BLOCKED_SUM(s, T, L, l, dyn[o * L + l]);
                dbt[o] += s;
            }
        }
        if (dx && K > 0) { /* dcol = w^T dy[n], then back to the image (col is reused) */
            T *dxn = dx + n * xsize;
            GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)L, (int)O, 1, w, (int)K,
                 dyn, (int)L, 0, col ? col : dxn, (int)L);
            if (col) {
                FN(nr_col2im)(dxn, col, g);
            }
        }
    }
}

/* Per thread: an im2col buffer (none when pointwise), a dw partial (O, C KH KW) (but
 * thread 0, which adds into dw itself) and a db partial (O doubles). */
static void
FN(nr_conv2d_ws_layout)(const nr_window2d *g, int64_t O, size_t *col, size_t *dwp, size_t *dbp)
{
    *col = FN(nr_conv2d_col_bytes)(g);
    *dwp = nr_conv_bytes(nr_conv_mul(nr_conv_mul((size_t)g->C, (size_t)g->KH),
                                     nr_conv_mul((size_t)g->KW, (size_t)O)),
                         sizeof(T));
    *dbp = nr_conv_bytes((size_t)O, sizeof(double));
}

/* (SIZE_MAX when the size overflows) */
size_t
FN(nr_conv2d_backward_workspace)(const nr_window2d *g, int64_t O, int nthreads)
{
    size_t col, dwp, dbp;
    FN(nr_conv2d_ws_layout)(g, O, &col, &dwp, &dbp);
    const size_t nt = (size_t)nr_conv_threads(g, O, nthreads);
    return nr_conv_sum(nr_conv_sum(nr_conv_mul(nt, col), nr_conv_mul(nt - 1, dwp)),
                       nr_conv_mul(nt, dbp));
}

static void
FN(nr_conv2d_backward_team)(T *dx, T *dw, T *db, const T *dy, const T *x, const T *w,
                            const nr_window2d *g, int64_t O, char *ws, int nt)
{
    size_t col_b, dwp_b, dbp_b;
    FN(nr_conv2d_ws_layout)(g, O, &col_b, &dwp_b, &dbp_b);
    const int64_t N = g->N, OK = O * g->C * g->KH * g->KW;
    char *dw_parts = ws + (size_t)nt * col_b, *db_parts = dw_parts + (size_t)(nt - 1) * dwp_b;
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), m = omp_get_num_threads();
        T *col = col_b ? (T *)(ws + (size_t)t * col_b) : NULL;
        T *dwt = NULL;
        if (dw) {
            dwt = t == 0 ? dw : (T *)(dw_parts + (size_t)(t - 1) * dwp_b);
            if (t > 0) {
                memset(dwt, 0, (size_t)OK * sizeof(T));
            }
        }
        double *dbt = db ? (double *)(db_parts + (size_t)t * dbp_b) : NULL;
        if (dbt) {
            memset(dbt, 0, (size_t)O * sizeof(double));
        }
        FN(nr_conv2d_backward_samples)(dx, dwt, dbt, dy, x, w, g, O, N * t / m, N * (t + 1) / m,
                                       col);
#pragma omp barrier
        if (dw && m > 1) { /* dw += the other threads' partials */
#pragma omp for schedule(static)
            for (int64_t i = 0; i < OK; i++) {
                T s = 0;
                for (int u = 1; u < m; u++) {
                    s += ((const T *)(dw_parts + (size_t)(u - 1) * dwp_b))[i];
                }
                dw[i] += s;
            }
        }
        if (db) {
#pragma omp for schedule(static)
            for (int64_t o = 0; o < O; o++) {
                double s = 0;
                for (int u = 0; u < m; u++) {
                    s += ((const double *)(db_parts + (size_t)u * dbp_b))[o];
                }
                db[o] += (T)s;
            }
        }
    }
}

/* dy (N, O, OH, OW), x (N, C, H, W), w (O, C, KH, KW)
 *   -> dx (N, C, H, W) =, dw (O, C, KH, KW) +=, db (O) += (each may be NULL) */
void
FN(nr_conv2d_backward)(T *dx, T *dw, T *db, const T *dy, const T *x, const T *w,
                       const nr_window2d *g, int64_t O, void *workspace, int nthreads)
{
    const int64_t N = g->N, K = g->C * g->KH * g->KW, L = g->OH * g->OW;
    if (N == 0) {
        return;
    }
    if (O == 0 || L == 0) { /* no output: dx = 0, nothing added */
        if (dx) {
            memset(dx, 0, (size_t)(N * g->C * g->H * g->W) * sizeof(T));
        }
        return;
    }
    size_t col_b, dwp_b, dbp_b;
    FN(nr_conv2d_ws_layout)(g, O, &col_b, &dwp_b, &dbp_b);
    const int nt = nr_conv_threads(g, O, nthreads);
    char *ws = (char *)workspace;
    T *cols = col_b ? (T *)ws : NULL;
    if (nt <= 1) { /* (no dw partial: layout col, db partial) */
        double *dbt = db ? (double *)(ws + col_b) : NULL;
        if (dbt) {
            memset(dbt, 0, (size_t)O * sizeof(double));
        }
        const int blas_threads = (double)O * (double)K * (double)L >= 4e6 ? nthreads : 1;
        NR_WITH_BLAS_THREADS(blas_threads, FN(nr_conv2d_backward_samples)(
                                               dx, dw, dbt, dy, x, w, g, O, 0, N, cols));
        for (int64_t o = 0; db && o < O; o++) {
            db[o] += (T)dbt[o];
        }
        return;
    }
    NR_WITH_BLAS_THREADS(1, FN(nr_conv2d_backward_team)(dx, dw, db, dy, x, w, g, O, ws, nt));
}
