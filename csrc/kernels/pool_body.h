/* Pooling kernels for one element type T (see pool.c). */

/* x (N, C, H, W) -> y (N, C, OH, OW), idx (N, C, OH, OW) = h W + w of each window's max */
void
FN(nr_max_pool2d_forward)(T *y, int64_t *idx, const T *x, const nr_window2d *g)
{
    const int64_t P = g->N * g->C, H = g->H, W = g->W, OH = g->OH, OW = g->OW;
    const int nt = nr_pool_threads((size_t)(P * (H * W + 3 * OH * OW)) * sizeof(T), P);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t p = 0; p < P; p++) {
        const T *xp = x + p * H * W;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0, h1, w0, w1, unused;
            nr_pool_window(&h0, &h1, &unused, oh, g->KH, g->SH, g->PH, H);
            for (int64_t ow = 0; ow < OW; ow++) {
                nr_pool_window(&w0, &w1, &unused, ow, g->KW, g->SW, g->PW, W);
                T m = (T)-INFINITY;
                int64_t mi = h0 * W + w0;
                for (int64_t ih = h0; ih < h1; ih++) {
                    for (int64_t iw = w0; iw < w1; iw++) {
                        const T v = xp[ih * W + iw];
                        if (v > m || isnan(v)) {
                            m = v;
                            mi = ih * W + iw;
                        }
                    }
                }
                y[(p * OH + oh) * OW + ow] = m;
                idx[(p * OH + oh) * OW + ow] = mi;
            }
        }
    }
}

/* dy, idx (N, C, OH, OW), every idx in [0, H W) -> dx (N, C, H, W) =: dy added at each max */
void
FN(nr_max_pool2d_backward)(T *dx, const T *dy, const int64_t *idx, const nr_window2d *g)
{
    const int64_t P = g->N * g->C, HW = g->H * g->W, L = g->OH * g->OW;
    const int nt = nr_pool_threads((size_t)(P * (HW + 3 * L)) * sizeof(T), P);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t p = 0; p < P; p++) {
        T *dxp = dx + p * HW;
        memset(dxp, 0, (size_t)HW * sizeof(T));
        for (int64_t l = 0; l < L; l++) {
            dxp[idx[p * L + l]] += dy[p * L + l];
        }
    }
}

/* x (N, C, H, W) -> y (N, C, OH, OW) = window sum / divisor */
void
FN(nr_avg_pool2d_forward)(T *y, const T *x, const nr_window2d *g, int count_include_pad)
{
    const int64_t P = g->N * g->C, H = g->H, W = g->W, OH = g->OH, OW = g->OW;
    const int nt = nr_pool_threads((size_t)(P * (H * W + OH * OW)) * sizeof(T), P);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t p = 0; p < P; p++) {
        const T *xp = x + p * H * W;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0, h1, w0, w1, hlen, wlen;
            nr_pool_window(&h0, &h1, &hlen, oh, g->KH, g->SH, g->PH, H);
            for (int64_t ow = 0; ow < OW; ow++) {
                nr_pool_window(&w0, &w1, &wlen, ow, g->KW, g->SW, g->PW, W);
                double s = 0;
                for (int64_t ih = h0; ih < h1; ih++) {
                    for (int64_t iw = w0; iw < w1; iw++) {
                        s += (double)xp[ih * W + iw];
                    }
                }
                const int64_t div = count_include_pad ? hlen * wlen : (h1 - h0) * (w1 - w0);
                y[(p * OH + oh) * OW + ow] = (T)(s / (double)div);
            }
        }
    }
}

/* dy (N, C, OH, OW) -> dx (N, C, H, W) =: each dy / divisor added over its window */
void
FN(nr_avg_pool2d_backward)(T *dx, const T *dy, const nr_window2d *g, int count_include_pad)
{
    const int64_t P = g->N * g->C, H = g->H, W = g->W, OH = g->OH, OW = g->OW;
    const int nt = nr_pool_threads((size_t)(P * (2 * H * W + OH * OW)) * sizeof(T), P);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t p = 0; p < P; p++) {
        T *dxp = dx + p * H * W;
        memset(dxp, 0, (size_t)(H * W) * sizeof(T));
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0, h1, w0, w1, hlen, wlen;
            nr_pool_window(&h0, &h1, &hlen, oh, g->KH, g->SH, g->PH, H);
            for (int64_t ow = 0; ow < OW; ow++) {
                nr_pool_window(&w0, &w1, &wlen, ow, g->KW, g->SW, g->PW, W);
                const int64_t div = count_include_pad ? hlen * wlen : (h1 - h0) * (w1 - w0);
                const T v = (T)((double)dy[(p * OH + oh) * OW + ow] / (double)div);
                for (int64_t ih = h0; ih < h1; ih++) {
                    for (int64_t iw = w0; iw < w1; iw++) {
                        dxp[ih * W + iw] += v;
                    }
                }
            }
        }
    }
}

/* x (N, C, H, W) -> y (N, C, OH, OW) = mean of each adaptive window */
void
FN(nr_adaptive_avg_pool2d_forward)(T *y, const T *x, const nr_window2d *g)
{
    const int64_t P = g->N * g->C, H = g->H, W = g->W, OH = g->OH, OW = g->OW;
    const int nt = nr_pool_threads((size_t)(P * (H * W + OH * OW)) * sizeof(T), P);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t p = 0; p < P; p++) {
        const T *xp = x + p * H * W;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0, h1, w0, w1;
            nr_adaptive_window(&h0, &h1, oh, OH, H);
            for (int64_t ow = 0; ow < OW; ow++) {
                nr_adaptive_window(&w0, &w1, ow, OW, W);
                double s = 0;
                for (int64_t ih = h0; ih < h1; ih++) {
                    T row = 0; /* a row of the window in T (vectorized), rows added in double */
#pragma omp simd reduction(+ : row)
                    for (int64_t iw = w0; iw < w1; iw++) {
                        row += xp[ih * W + iw];
                    }
                    s += (double)row;
                }
                y[(p * OH + oh) * OW + ow] = (T)(s / (double)((h1 - h0) * (w1 - w0)));
            }
        }
    }
}

/* dy (N, C, OH, OW) -> dx (N, C, H, W) =: each dy / window size added over its window */
void
FN(nr_adaptive_avg_pool2d_backward)(T *dx, const T *dy, const nr_window2d *g)
{
    const int64_t P = g->N * g->C, H = g->H, W = g->W, OH = g->OH, OW = g->OW;
    const int nt = nr_pool_threads((size_t)(P * (2 * H * W + OH * OW)) * sizeof(T), P);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t p = 0; p < P; p++) {
        T *dxp = dx + p * H * W;
        memset(dxp, 0, (size_t)(H * W) * sizeof(T));
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0, h1, w0, w1;
            nr_adaptive_window(&h0, &h1, oh, OH, H);
            for (int64_t ow = 0; ow < OW; ow++) {
                nr_adaptive_window(&w0, &w1, ow, OW, W);
                const T v = (T)((double)dy[(p * OH + oh) * OW + ow] /
                                (double)((h1 - h0) * (w1 - w0)));
                for (int64_t ih = h0; ih < h1; ih++) {
#pragma omp simd
                    for (int64_t iw = w0; iw < w1; iw++) {
                        dxp[ih * W + iw] += v;
                    }
                }
            }
        }
    }
}
