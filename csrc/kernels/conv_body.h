/* Conv2d kernels for one element type T (see conv.c). GEMM (nr_typed.h) is the BLAS gemm for T;
 * FN(nr_gemm_split) (gemm_body.h) the same product split among normreg's threads. */

#include "gemm_body.h"

/* x (C, H, W) of one sample -> col (C KH KW, OH OW) with rows `ld` apart:
 *   col[(c KH + kh) KW + kw, oh OW + ow] = x[c, oh SH - PH + kh, ow SW - PW + kw], 0 in the padding */
static void
FN(nr_im2col)(T *col, int64_t ld, const T *x, const nr_window2d *g)
{
    const int64_t C = g->C, H = g->H, W = g->W, KH = g->KH, KW = g->KW;
    const int64_t SH = g->SH, SW = g->SW, PH = g->PH, PW = g->PW, OH = g->OH, OW = g->OW;
    for (int64_t c = 0; c < C; c++) {
        const T *xc = x + c * H * W;
        for (int64_t kh = 0; kh < KH; kh++) {
            for (int64_t kw = 0; kw < KW; kw++) {
                T *row = col + ((c * KH + kh) * KW + kw) * ld;
                int64_t lo, hi;
                nr_window_valid_range(&lo, &hi, kw, SW, PW, W, OW);
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

/* col (C KH KW, OH OW) with rows `ld` apart -> dx (C, H, W) =: the transpose of im2col, each
 * col value added to the input position im2col copied it from (padding positions dropped). */
static void
FN(nr_col2im)(T *dx, const T *col, int64_t ld, const nr_window2d *g)
{
    const int64_t C = g->C, H = g->H, W = g->W, KH = g->KH, KW = g->KW;
    const int64_t SH = g->SH, SW = g->SW, PH = g->PH, PW = g->PW, OH = g->OH, OW = g->OW;
    memset(dx, 0, (size_t)(C * H * W) * sizeof(T));
    for (int64_t c = 0; c < C; c++) {
        T *dxc = dx + c * H * W;
        for (int64_t kh = 0; kh < KH; kh++) {
            for (int64_t kw = 0; kw < KW; kw++) {
                const T *row = col + ((c * KH + kh) * KW + kw) * ld;
                int64_t lo, hi;
                nr_window_valid_range(&lo, &hi, kw, SW, PW, W, OW);
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

/* One thread's buffers: col (C KH KW, chunk OH OW) (NULL when pointwise) and the staging
 * buffer (O, chunk OH OW) of a chunk's output or output gradient (NULL for one sample). */
typedef struct {
    T *col, *stage;
} FN(nr_conv_bufs);

/* Samples [n0, n1) of the forward, each product on `gemm_nt` threads (1 inside a team). */
static void
FN(nr_conv2d_forward_samples)(T *y, const T *x, const T *w, const T *b, const nr_window2d *g,
                              int64_t O, int64_t n0, int64_t n1, FN(nr_conv_bufs) buf,
                              int gemm_nt)
{
    const int64_t K = g->C * g->KH * g->KW, L = g->OH * g->OW, xsize = g->C * g->H * g->W;
    const int64_t chunk = nr_conv_chunk(g);
    for (int64_t n = n0; n < n1; n += chunk) {
        const int64_t nc = NR_MIN(chunk, n1 - n), cols = nc * L;
        const T *src = x + n * xsize;
        if (buf.col) {
            for (int64_t i = 0; i < nc; i++) {
                FN(nr_im2col)(buf.col + i * L, cols, src + i * xsize, g);
            }
            src = buf.col;
        }
        if (nc == 1) { /* straight into y[n], which starts at the bias (beta = 1) */
            T *yn = y + n * O * L;
            for (int64_t o = 0; b && o < O; o++) {
                const T bo = b[o];
#pragma omp simd
                for (int64_t l = 0; l < L; l++) {
                    yn[o * L + l] = bo;
                }
            }
            FN(nr_gemm_split)(gemm_nt, CblasNoTrans, CblasNoTrans, O, L, K, w, K, src, L,
                              b ? 1 : 0, yn, L, NULL);
            continue;
        }
        /* (O, nc L) product, then each sample's (O, L) block to its place in y, plus bias */
        FN(nr_gemm_split)(gemm_nt, CblasNoTrans, CblasNoTrans, O, cols, K, w, K, src, cols, 0,
                          buf.stage, cols, NULL);
        for (int64_t i = 0; i < nc; i++) {
            for (int64_t o = 0; o < O; o++) {
                const T bo = b ? b[o] : (T)0;
                const T *s = buf.stage + o * cols + i * L;
                T *yo = y + ((n + i) * O + o) * L;
#pragma omp simd
                for (int64_t l = 0; l < L; l++) {
                    yo[l] = s[l] + bo;
                }
            }
        }
    }
}

/* The bytes of one thread's buffers (SIZE_MAX when that overflows): col and stage. */
static void
FN(nr_conv2d_buf_bytes)(const nr_window2d *g, int64_t O, size_t *col, size_t *stage)
{
    const size_t chunk = (size_t)nr_conv_chunk(g);
    const size_t cols = nr_conv_mul(chunk, nr_conv_mul((size_t)g->OH, (size_t)g->OW));
    *col = nr_conv_is_pointwise(g)
               ? 0
               : nr_conv_bytes(nr_conv_mul(nr_conv_mul((size_t)g->C, (size_t)g->KH),
                                           nr_conv_mul((size_t)g->KW, cols)),
                               sizeof(T));
    *stage = chunk > 1 ? nr_conv_bytes(nr_conv_mul((size_t)O, cols), sizeof(T)) : 0;
}

/* Thread t's buffers in a workspace that holds one (col, stage) pair per thread. */
static FN(nr_conv_bufs) FN(nr_conv_thread_bufs)(char *ws, int t, size_t col, size_t stage)
{
    char *base = ws + (size_t)t * (col + stage);
    FN(nr_conv_bufs) buf = {col ? (T *)base : NULL, stage ? (T *)(base + col) : NULL};
    return buf;
}

static void
FN(nr_conv2d_forward_team)(T *y, const T *x, const T *w, const T *b, const nr_window2d *g,
                           int64_t O, char *ws, int nt)
{
    size_t col, stage;
    FN(nr_conv2d_buf_bytes)(g, O, &col, &stage);
    const int64_t N = g->N;
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), m = omp_get_num_threads();
        nr_blas_team_enter();
        FN(nr_conv2d_forward_samples)(y, x, w, b, g, O, N * t / m, N * (t + 1) / m,
                                      FN(nr_conv_thread_bufs)(ws, t, col, stage), 1);
        nr_blas_team_leave();
    }
}

/* Per thread: col and stage (SIZE_MAX when the size overflows); none without work. */
size_t
FN(nr_conv2d_forward_workspace)(const nr_window2d *g, int64_t O, int nthreads)
{
    if (g->N == 0 || O == 0 || g->C == 0) {
        return 0;
    }
    size_t col, stage;
    FN(nr_conv2d_buf_bytes)(g, O, &col, &stage);
    return nr_conv_mul((size_t)nr_conv_threads(g, O, nthreads), nr_conv_sum(col, stage));
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
    const int nt = nr_conv_threads(g, O, nthreads);
    if (nt <= 1) {
        size_t col, stage;
        FN(nr_conv2d_buf_bytes)(g, O, &col, &stage);
        /* few samples: each product split among the threads instead */
        const int gemm_nt = nr_conv_gemm_threads(g, O, nthreads);
        NR_WITH_BLAS_THREADS(1, FN(nr_conv2d_forward_samples)(
                                    y, x, w, b, g, O, 0, N,
                                    FN(nr_conv_thread_bufs)((char *)workspace, 0, col, stage),
                                    gemm_nt));
    }
    else {
        NR_WITH_BLAS_THREADS(
            1, FN(nr_conv2d_forward_team)(y, x, w, b, g, O, (char *)workspace, nt));
    }
}

/* Samples [n0, n1) of the backward into this thread's dwt (O, K) and dbt (O) sums. */
static void
FN(nr_conv2d_backward_samples)(T *dx, T *dwt, double *dbt, const T *dy, const T *x, const T *w,
                               const nr_window2d *g, int64_t O, int64_t n0, int64_t n1,
                               FN(nr_conv_bufs) buf, int gemm_nt)
{
    const int64_t K = g->C * g->KH * g->KW, L = g->OH * g->OW, xsize = g->C * g->H * g->W;
    const int64_t chunk = nr_conv_chunk(g);
    for (int64_t n = n0; n < n1; n += chunk) {
        const int64_t nc = NR_MIN(chunk, n1 - n), cols = nc * L;
        const T *dyc = dy + n * O * L; /* the chunk's dy as (O, nc L) */
        if (nc > 1) {
            for (int64_t i = 0; i < nc; i++) {
                for (int64_t o = 0; o < O; o++) {
                    memcpy(buf.stage + o * cols + i * L, dy + ((n + i) * O + o) * L,
                           (size_t)L * sizeof(T));
                }
            }
            dyc = buf.stage;
        }
        if (dwt && K > 0) { /* dw += dy col^T */
            const T *src = x + n * xsize;
            if (buf.col) {
                for (int64_t i = 0; i < nc; i++) {
                    FN(nr_im2col)(buf.col + i * L, cols, src + i * xsize, g);
                }
                src = buf.col;
            }
            FN(nr_gemm_split)(gemm_nt, CblasNoTrans, CblasTrans, O, K, cols, dyc, cols, src,
                              cols, 1, dwt, K, NULL);
        }
        if (dbt) {
            for (int64_t o = 0; o < O; o++) {
                double s;
                NR_BLOCKED_SUM(s, T, cols, l, dyc[o * cols + l]);
                dbt[o] += s;
            }
        }
        if (dx && K > 0) { /* dcol = w^T dy, then back to the images (col is reused) */
            T *dxn = dx + n * xsize;
            FN(nr_gemm_split)(gemm_nt, CblasTrans, CblasNoTrans, K, cols, O, w, K, dyc, cols, 0,
                              buf.col ? buf.col : dxn, cols, NULL);
            for (int64_t i = 0; buf.col && i < nc; i++) {
                FN(nr_col2im)(dxn + i * xsize, buf.col + i * L, cols, g);
            }
        }
    }
}

/* After the per-thread buffers: a dw partial (O, C KH KW) for each thread but thread 0 (which
 * adds into dw itself) and a db partial (O doubles) for each thread. */
static void
FN(nr_conv2d_partial_bytes)(const nr_window2d *g, int64_t O, size_t *dwp, size_t *dbp)
{
    *dwp = nr_conv_bytes(nr_conv_mul(nr_conv_mul((size_t)g->C, (size_t)g->KH),
                                     nr_conv_mul((size_t)g->KW, (size_t)O)),
                         sizeof(T));
    *dbp = nr_conv_bytes((size_t)O, sizeof(double));
}

/* (SIZE_MAX when the size overflows; 0 without work) */
size_t
FN(nr_conv2d_backward_workspace)(const nr_window2d *g, int64_t O, int nthreads)
{
    if (g->N == 0 || O == 0) {
        return 0;
    }
    size_t col, stage, dwp, dbp;
    FN(nr_conv2d_buf_bytes)(g, O, &col, &stage);
    FN(nr_conv2d_partial_bytes)(g, O, &dwp, &dbp);
    const size_t nt = (size_t)nr_conv_threads(g, O, nthreads);
    return nr_conv_sum(
        nr_conv_sum(nr_conv_mul(nt, nr_conv_sum(col, stage)), nr_conv_mul(nt - 1, dwp)),
        nr_conv_mul(nt, dbp));
}

static void
FN(nr_conv2d_backward_team)(T *dx, T *dw, T *db, const T *dy, const T *x, const T *w,
                            const nr_window2d *g, int64_t O, char *ws, int nt)
{
    size_t col, stage, dwp, dbp;
    FN(nr_conv2d_buf_bytes)(g, O, &col, &stage);
    FN(nr_conv2d_partial_bytes)(g, O, &dwp, &dbp);
    const int64_t N = g->N, OK = O * g->C * g->KH * g->KW;
    char *dw_parts = ws + (size_t)nt * (col + stage);
    char *db_parts = dw_parts + (size_t)(nt - 1) * dwp;
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), m = omp_get_num_threads();
        T *dwt = NULL;
        if (dw) {
            dwt = t == 0 ? dw : (T *)(dw_parts + (size_t)(t - 1) * dwp);
            if (t > 0) {
                memset(dwt, 0, (size_t)OK * sizeof(T));
            }
        }
        double *dbt = db ? (double *)(db_parts + (size_t)t * dbp) : NULL;
        if (dbt) {
            memset(dbt, 0, (size_t)O * sizeof(double));
        }
        nr_blas_team_enter();
        FN(nr_conv2d_backward_samples)(dx, dwt, dbt, dy, x, w, g, O, N * t / m, N * (t + 1) / m,
                                       FN(nr_conv_thread_bufs)(ws, t, col, stage), 1);
        nr_blas_team_leave();
#pragma omp barrier
        if (dw && m > 1) { /* dw += the other threads' partials */
#pragma omp for schedule(static)
            for (int64_t i = 0; i < OK; i++) {
                T s = 0;
                for (int u = 1; u < m; u++) {
                    s += ((const T *)(dw_parts + (size_t)(u - 1) * dwp))[i];
                }
                dw[i] += s;
            }
        }
        if (db) {
#pragma omp for schedule(static)
            for (int64_t o = 0; o < O; o++) {
                double s = 0;
                for (int u = 0; u < m; u++) {
                    s += ((const double *)(db_parts + (size_t)u * dbp))[o];
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
    const int64_t N = g->N, L = g->OH * g->OW;
    if (N == 0) {
        return;
    }
    if (O == 0 || L == 0) { /* no output: dx = 0, nothing added */
        if (dx) {
            memset(dx, 0, (size_t)(N * g->C * g->H * g->W) * sizeof(T));
        }
        return;
    }
    const int nt = nr_conv_threads(g, O, nthreads);
    char *ws = (char *)workspace;
    if (nt <= 1) { /* layout: col, stage, (no dw partial), db partial */
        size_t col, stage;
        FN(nr_conv2d_buf_bytes)(g, O, &col, &stage);
        double *dbt = db ? (double *)(ws + col + stage) : NULL;
        if (dbt) {
            memset(dbt, 0, (size_t)O * sizeof(double));
        }
        const int gemm_nt = nr_conv_gemm_threads(g, O, nthreads);
        NR_WITH_BLAS_THREADS(1, FN(nr_conv2d_backward_samples)(
                                    dx, dw, dbt, dy, x, w, g, O, 0, N,
                                    FN(nr_conv_thread_bufs)(ws, 0, col, stage), gemm_nt));
        for (int64_t o = 0; db && o < O; o++) {
            db[o] += (T)dbt[o];
        }
        return;
    }
    NR_WITH_BLAS_THREADS(1, FN(nr_conv2d_backward_team)(dx, dw, db, dy, x, w, g, O, ws, nt));
}
