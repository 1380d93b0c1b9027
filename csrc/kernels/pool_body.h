/* Pooling kernels for one element type T (see pool.c). */

/* Max pooling compares the values as ordered integer keys of their bits: integer selects
 * vectorize and never branch on the data, where float compares and NaN tests compiled to
 * branches that random data mispredicts (2.6x slower). KEY_T is the integer type of T's
 * width, KEY_INF the bits of T's +inf (the larger magnitudes are NaN). */
#if defined(NR_TYPED_F32)
#define KEY_T int32_t
#define KEY_U uint32_t
#define KEY_MIN INT32_MIN
#define KEY_MAX INT32_MAX
#define KEY_INF 0x7F800000
#else
#define KEY_T int64_t
#define KEY_U uint64_t
#define KEY_MIN INT64_MIN
#define KEY_MAX INT64_MAX
#define KEY_INF 0x7FF0000000000000
#endif

/* The key of v: the bits of v as an integer in the order of the values. Non-negative values
 * keep their bits, negative ones are mirrored below zero (-0.0 gets +0.0's key 0: they
 * compare equal); NaN gets the largest key and *nan all ones (NaN wins over a NaN too),
 * others *nan = 0. */
static inline KEY_T
FN(nr_pool_key)(T v, KEY_T *nan)
{
    KEY_T b;
    memcpy(&b, &v, sizeof b);
    const KEY_T neg = -(KEY_T)((KEY_U)b >> (8 * sizeof b - 1));
    const KEY_T k = (b ^ (neg & KEY_MAX)) - neg;
    *nan = -(KEY_T)((b & KEY_MAX) > KEY_INF);
    return (k & ~*nan) | (KEY_MAX & *nan);
}
#define KEY_OF FN(nr_pool_key)

/* One plane, a block of up to NR_POOL_BLOCK outputs of a row at a time: each kernel position
 * updates the block's keys and positions with selects, so every window sees its positions in
 * row-major order; a later value wins when strictly larger, or NaN (as PyTorch's CPU kernel);
 * the padding is never visited. The first position visited is the window's first, where the
 * search starts, so PyTorch's -inf start needs no key of its own. Positions are KEY_T: planes
 * of at most INT32_MAX values (checked by the caller). */
static void
FN(nr_max_pool2d_plane)(T *y, int64_t *idx, const T *xp, const nr_window2d *g)
{
    const int64_t W = g->W, OW = g->OW, KW = g->KW, SW = g->SW, PW = g->PW;
    /* the outputs each kernel column reaches inside the image, the same on every row (a
     * table for the usual kernels: the two divisions per column and row cost 1/3 of the time) */
    int64_t lo_k[NR_POOL_KMAX], hi_k[NR_POOL_KMAX];
    for (int64_t kw = 0; kw < KW && kw < NR_POOL_KMAX; kw++) {
        nr_window_valid_range(&lo_k[kw], &hi_k[kw], kw, SW, PW, W, OW);
    }
    for (int64_t oh = 0; oh < g->OH; oh++) {
        int64_t h0, h1, unused;
        nr_pool_window(&h0, &h1, &unused, oh, g->KH, g->SH, g->PH, g->H);
        for (int64_t ow0 = 0; ow0 < OW; ow0 += NR_POOL_BLOCK) {
            const int64_t nb = NR_MIN((int64_t)NR_POOL_BLOCK, OW - ow0);
            KEY_T key[NR_POOL_BLOCK], pos[NR_POOL_BLOCK];
            for (int64_t j = 0; j < nb; j++) {
                key[j] = KEY_MIN;
                pos[j] = (KEY_T)(h0 * W + NR_MAX((ow0 + j) * SW - PW, (int64_t)0));
            }
            /* the kernel columns that reach the image from some output of the block (the
             * others reach none: a kernel far wider than the image costs no loop over them) */
            const int64_t kw0 = NR_MAX((int64_t)0, PW - (ow0 + nb - 1) * SW);
            const int64_t kw1 = NR_MIN(KW, W + PW - ow0 * SW);
            for (int64_t ih = h0; ih < h1; ih++) {
                for (int64_t kw = kw0; kw < kw1; kw++) {
                    int64_t lo, hi;
                    if (kw < NR_POOL_KMAX) {
                        lo = lo_k[kw];
                        hi = hi_k[kw];
                    }
                    else {
                        nr_window_valid_range(&lo, &hi, kw, SW, PW, W, OW);
                    }
                    lo = NR_MAX(lo, ow0) - ow0;
                    hi = NR_MIN(hi, ow0 + nb) - ow0;
                    /* column of block output j: (ow0 + j) SW - PW + kw */
                    const KEY_T base = (KEY_T)(ih * W + ow0 * SW - PW + kw);
#pragma omp simd
                    for (int64_t j = lo; j < hi; j++) {
                        const KEY_T at = base + (KEY_T)j * (KEY_T)SW;
                        KEY_T nan;
                        const KEY_T k = KEY_OF(xp[at], &nan);
                        const KEY_T take = -(KEY_T)(k > key[j]) | nan; /* all ones: take */
                        key[j] = (key[j] & ~take) | (k & take);
                        pos[j] = (pos[j] & ~take) | (at & take);
                    }
                }
            }
            for (int64_t j = 0; j < nb; j++) {
                y[oh * OW + ow0 + j] = xp[pos[j]];
                idx[oh * OW + ow0 + j] = (int64_t)pos[j];
            }
        }
    }
}

/* The usual 2x2 window with stride 2 and no padding: each window's four positions compared
 * in row-major order, a row of outputs at a time (the general path's tables and blocks cost
 * more than the comparisons on the short rows of small maps). */
static void
FN(nr_max_pool2d_plane_2x2)(T *y, int64_t *idx, const T *xp, const nr_window2d *g)
{
    const int64_t W = g->W, OW = g->OW;
    for (int64_t oh = 0; oh < g->OH; oh++) {
        const T *r0 = xp + 2 * oh * W, *r1 = r0 + W;
        for (int64_t ow0 = 0; ow0 < OW; ow0 += NR_POOL_BLOCK) {
            const int64_t nb = NR_MIN((int64_t)NR_POOL_BLOCK, OW - ow0);
            const KEY_T base = (KEY_T)(2 * oh * W + 2 * ow0); /* the block's first window */
            KEY_T pos[NR_POOL_BLOCK]; /* positions in KEY_T's width: the selects vectorize */
#pragma omp simd
            for (int64_t j = 0; j < nb; j++) {
                const int64_t c = 2 * (ow0 + j);
                const KEY_T at = base + 2 * (KEY_T)j;
                KEY_T nan1, nan2, nan3, take;
                KEY_T key = KEY_OF(r0[c], &take), p = at; /* the first position starts it */
                const KEY_T k1 = KEY_OF(r0[c + 1], &nan1);
                const KEY_T k2 = KEY_OF(r1[c], &nan2), k3 = KEY_OF(r1[c + 1], &nan3);
                take = -(KEY_T)(k1 > key) | nan1;
                key = (key & ~take) | (k1 & take);
                p = (p & ~take) | ((at + 1) & take);
                take = -(KEY_T)(k2 > key) | nan2;
                key = (key & ~take) | (k2 & take);
                p = (p & ~take) | ((at + (KEY_T)W) & take);
                take = -(KEY_T)(k3 > key) | nan3;
                pos[j] = (p & ~take) | ((at + (KEY_T)W + 1) & take);
            }
            for (int64_t j = 0; j < nb; j++) {
                y[oh * OW + ow0 + j] = xp[pos[j]];
                idx[oh * OW + ow0 + j] = (int64_t)pos[j];
            }
        }
    }
}

/* x (N, C, H, W) with H W <= INT32_MAX -> y (N, C, OH, OW), idx (N, C, OH, OW) = h W + w of
 * each window's max */
void
FN(nr_max_pool2d_forward)(T *y, int64_t *idx, const T *x, const nr_window2d *g)
{
    const int64_t P = g->N * g->C, HW = g->H * g->W, L = g->OH * g->OW;
    const int two_by_two =
        g->KH == 2 && g->KW == 2 && g->SH == 2 && g->SW == 2 && g->PH == 0 && g->PW == 0 &&
        2 * g->OH <= g->H &&
        2 * g->OW <= g->W; /* ceil_mode's partial last window: general path */
    NR_TEAM_SIZE const int nt = nr_pool_threads((size_t)(P * (HW + 3 * L)) * sizeof(T), P);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t p = 0; p < P; p++) {
        if (two_by_two) {
            FN(nr_max_pool2d_plane_2x2)(y + p * L, idx + p * L, x + p * HW, g);
        }
        else {
            FN(nr_max_pool2d_plane)(y + p * L, idx + p * L, x + p * HW, g);
        }
    }
}

#undef KEY_T
#undef KEY_U
#undef KEY_MIN
#undef KEY_MAX
#undef KEY_INF
#undef KEY_OF

/* dy, idx (N, C, OH, OW), every idx in [0, H W) -> dx (N, C, H, W) =: dy added at each max */
void
FN(nr_max_pool2d_backward)(T *dx, const T *dy, const int64_t *idx, const nr_window2d *g)
{
    const int64_t P = g->N * g->C, HW = g->H * g->W, L = g->OH * g->OW;
    NR_TEAM_SIZE const int nt = nr_pool_threads((size_t)(P * (HW + 3 * L)) * sizeof(T), P);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t p = 0; p < P; p++) {
        T *dxp = dx + p * HW;
        memset(dxp, 0, (size_t)HW * sizeof(T));
        for (int64_t l = 0; l < L; l++) {
            dxp[idx[p * L + l]] += dy[p * L + l];
        }
    }
}

/* The sum of a window of x's plane xp: rows [h0, h1) of W values, columns [w0, w1), in
 * double (a large adaptive window keeps float32's accuracy); rows of up to 4 values without
 * a vector reduction, whose setup cost more than their values (a 2 x 2 window: 4.6x the
 * time of these sums) */
static inline __attribute__((always_inline)) double
FN(nr_avg_window_sum)(const T *xp, int64_t W, int64_t h0, int64_t h1, int64_t w0, int64_t w1)
{
    double s = 0;
    /* whole rows of a small map (global pooling): one run of values; a long run stays in
     * rows, whose sums run side by side where one run's would wait on each other */
    if (w0 == 0 && w1 == W && W > 4 && (h1 - h0) * W <= 1024) {
        xp += h0 * W;
        w1 = (h1 - h0) * W;
        h0 = 0;
        h1 = 1;
    }
    for (int64_t ih = h0; ih < h1; ih++) {
        const T *r = xp + ih * W + w0;
        switch (w1 - w0) {
        case 1:
            s += (double)r[0];
            break;
        case 2:
            s += (double)r[0] + (double)r[1];
            break;
        case 3:
            s += ((double)r[0] + (double)r[1]) + (double)r[2];
            break;
        case 4:
            s += ((double)r[0] + (double)r[1]) + ((double)r[2] + (double)r[3]);
            break;
        default: {
            double t = 0;
#pragma omp simd reduction(+ : t)
            for (int64_t iw = 0; iw < w1 - w0; iw++) {
                t += (double)r[iw];
            }
            s += t;
        }
        }
    }
    return s;
}

/* x (N, C, H, W) -> y (N, C, OH, OW) = each window's sum / divisor, the windows of
 * avg_pool2d or, when `adaptive`, of adaptive_avg_pool2d (divided by their size) */
static void
FN(nr_avg_pool2d_forward_windows)(T *y, const T *x, const nr_window2d *g, int adaptive,
                                  int count_include_pad, int64_t divisor_override)
{
    const int64_t P = g->N * g->C, H = g->H, W = g->W, OH = g->OH, OW = g->OW;
    NR_TEAM_SIZE const int nt = nr_pool_threads((size_t)(P * (H * W + OH * OW)) * sizeof(T), P);
    nr_avg_spans t;
    nr_avg_spans_init(&t, g, adaptive);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t p = 0; p < P; p++) {
        const T *xp = x + p * H * W;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0, h1, w0, w1, hlen, wlen;
            nr_avg_span(&h0, &h1, &hlen, oh, &t, g, 1, adaptive);
            for (int64_t ow = 0; ow < OW; ow++) {
                nr_avg_span(&w0, &w1, &wlen, ow, &t, g, 0, adaptive);
                const double s = FN(nr_avg_window_sum)(xp, W, h0, h1, w0, w1);
                const int64_t div = nr_avg_divisor(h1 - h0, w1 - w0, hlen, wlen,
                                                   count_include_pad, divisor_override);
                y[(p * OH + oh) * OW + ow] = (T)(s / (double)div);
            }
        }
    }
}

void
FN(nr_avg_pool2d_forward)(T *y, const T *x, const nr_window2d *g, int count_include_pad,
                          int64_t divisor_override)
{
    FN(nr_avg_pool2d_forward_windows)(y, x, g, 0, count_include_pad, divisor_override);
}

/* r[0 .. n) += v: a short row (n <= 4) without a vector loop, as nr_avg_window_sum's */
static inline __attribute__((always_inline)) void
FN(nr_avg_window_add)(T *r, int64_t n, T v)
{
    switch (n) {
    case 4:
        r[3] += v;
        /* fall through */
    case 3:
        r[2] += v;
        /* fall through */
    case 2:
        r[1] += v;
        /* fall through */
    case 1:
        r[0] += v;
        break;
    default:
#pragma omp simd
        for (int64_t iw = 0; iw < n; iw++) {
            r[iw] += v;
        }
    }
}

/* dy (N, C, OH, OW) -> dx (N, C, H, W) =: each dy / divisor added over its window, the windows
 * of avg_pool2d or, when `adaptive`, of adaptive_avg_pool2d (divided by their size) */
static void
FN(nr_avg_pool2d_backward_windows)(T *dx, const T *dy, const nr_window2d *g, int adaptive,
                                   int count_include_pad, int64_t divisor_override)
{
    const int64_t P = g->N * g->C, H = g->H, W = g->W, OH = g->OH, OW = g->OW;
    NR_TEAM_SIZE const int nt =
        nr_pool_threads((size_t)(P * (2 * H * W + OH * OW)) * sizeof(T), P);
    nr_avg_spans t;
    nr_avg_spans_init(&t, g, adaptive);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t p = 0; p < P; p++) {
        T *dxp = dx + p * H * W;
        memset(dxp, 0, (size_t)(H * W) * sizeof(T));
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0, h1, w0, w1, hlen, wlen;
            nr_avg_span(&h0, &h1, &hlen, oh, &t, g, 1, adaptive);
            for (int64_t ow = 0; ow < OW; ow++) {
                nr_avg_span(&w0, &w1, &wlen, ow, &t, g, 0, adaptive);
                const int64_t div = nr_avg_divisor(h1 - h0, w1 - w0, hlen, wlen,
                                                   count_include_pad, divisor_override);
                const T v = (T)((double)dy[(p * OH + oh) * OW + ow] / (double)div);
                for (int64_t ih = h0; ih < h1; ih++) {
                    FN(nr_avg_window_add)(dxp + ih * W + w0, w1 - w0, v);
                }
            }
        }
    }
}

void
FN(nr_avg_pool2d_backward)(T *dx, const T *dy, const nr_window2d *g, int count_include_pad,
                           int64_t divisor_override)
{
    FN(nr_avg_pool2d_backward_windows)(dx, dy, g, 0, count_include_pad, divisor_override);
}

/* x (N, C, H, W) -> y (N, C, OH, OW) = mean of each adaptive window */
void
FN(nr_adaptive_avg_pool2d_forward)(T *y, const T *x, const nr_window2d *g)
{
    FN(nr_avg_pool2d_forward_windows)(y, x, g, 1, 0, 0);
}

/* dy (N, C, OH, OW) -> dx (N, C, H, W) =: each dy / window size added over its window */
void
FN(nr_adaptive_avg_pool2d_backward)(T *dx, const T *dy, const nr_window2d *g)
{
    FN(nr_avg_pool2d_backward_windows)(dx, dy, g, 1, 0, 0);
}
