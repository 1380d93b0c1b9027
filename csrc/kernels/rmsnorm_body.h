/* RMSNorm kernels for one element type T (see rmsnorm.c). */

#include "rowvec_body.h"
#include "wide_body.h"

#ifndef NR_RMS_SHORT_D
/* Short rows (D <= NR_RMS_SHORT_D) go as LayerNorm's do (layernorm_body.h): sums kept in
 * vectors of the tier, several rows at once, each row's reduced as a tree, where a row at a
 * time in an omp simd reduction ended in a chain of scalar additions (at 8192 x 64 on a Zen 5
 * the row-at-a-time kernels took 1.7x LayerNorm's forward time and 1.9x its backward's). */
#define NR_RMS_SHORT_D 256
#define NR_RMS_GROUP 4 /* rows at once */
/* The short backward's k = rstd^3 mean(g x) is computed in T for rows whose rstd^3 is a
 * normal float32; other rows take the row-at-a-time path, which checks each coefficient. */
#define NR_RMS_SAFE(r) (((r) >= (T)0x1p-40) & ((r) <= (T)0x1p40))
/* Rows of dw summed in T (vectorized) before they are added into the double partials:
 * float32 accuracy over many rows without a conversion per element. */
#define NR_RMS_FLUSH_ROWS 32
/* on the loops over a group's vectors: whole when D is a constant */
#define NR_RMS_UNROLL _Pragma("GCC unroll 8")
#define NR_RMS_KEEP 4 /* vectors of dw's rows kept in registers at most */
#endif

/* Sum of a[j] * b[j] over n values (NR_BLOCKED_SUM: long rows lose no float32 accuracy). */
static double
FN(nr_rms_dot)(const T *a, const T *b, int64_t n)
{
    double total;
    NR_BLOCKED_SUM(total, T, n, j, a[j] * b[j]);
    return total;
}

/* Row i of the forward, any D: its squares summed as NR_BLOCKED_SUM does, the row redone in
 * double, scaled, if they overflowed or underflowed */
static void
FN(nr_rms_forward_row)(T *y, T *rstd, const T *x, const T *w, int64_t D, double eps, int64_t i)
{
    const T *xr = x + i * D;
    T *yr = y + i * D;
    /* squares do not cancel: no shift needed, unlike the variance */
    const double ms = D > 0 ? FN(nr_rms_dot)(xr, xr, D) / (double)D : 0.0;
    struct nr_wide p;
    if (D > 0 && NR_OUT_OF_RANGE(ms + eps) && FN(nr_wide_stats)(&p, xr, D, 0, eps)) {
        rstd[i] = (T)p.rstd;
        for (int64_t j = 0; j < D; j++) {
            yr[j] = (T)(FN(nr_wide_xhat)(&p, xr[j]) * (w ? (double)w[j] : 1.0));
        }
        return;
    }
    const T r = (T)(1.0 / sqrt(ms + eps));
    rstd[i] = r;
    if (w) {
#pragma omp simd
        for (int64_t j = 0; j < D; j++) {
            yr[j] = (xr[j] * r) * w[j];
        }
    }
    else {
#pragma omp simd
        for (int64_t j = 0; j < D; j++) {
            yr[j] = xr[j] * r;
        }
    }
}

/* Row i of the backward, any D (see nr_rmsnorm_backward): dx, and dy x rstd added to bdw (D
 * values of T), or to pdw (D doubles) when the row is redone wide; both NULL without dw */
static void
FN(nr_rms_backward_row)(T *dx, double *pdw, T *bdw, const T *dy, const T *x, const T *rstd,
                        const T *w, int64_t D, int64_t i)
{
    const T *xr = x + i * D, *dyr = dy + i * D;
    T *dxr = dx + i * D;
    const T r = rstd[i];
    double sum_gx = 0;
    if (w) {
        for (int64_t j0 = 0; j0 < D; j0 += 256) {
            const int64_t j1 = NR_MIN(D, j0 + 256);
            T s = 0;
#pragma omp simd reduction(+ : s)
            for (int64_t j = j0; j < j1; j++) {
                s += dyr[j] * w[j] * xr[j];
            }
            sum_gx += (double)s;
        }
    }
    else {
        sum_gx = FN(nr_rms_dot)(dyr, xr, D);
    }
    /* the gradient through rstd: one coefficient per row */
    const double k_d = (double)r * r * r * sum_gx / (double)(D > 0 ? D : 1);
    struct nr_wide p;
    if (!(r >= NR_T_MIN && NR_FITS(k_d)) && FN(nr_wide_grad)(&p, xr, dyr, w, D, 1, r, 0)) {
        /* the sum or the coefficient left T's range: the row in double, scaled */
        for (int64_t j = 0; j < D; j++) {
            const double xh = FN(nr_wide_xhat)(&p, xr[j]);
            const double g = (double)dyr[j] * (w ? (double)w[j] : 1.0);
            dxr[j] = (T)(p.rstd * (g - xh * p.mgx));
            if (pdw) {
                pdw[j] += (double)dyr[j] * xh;
            }
        }
        return;
    }
    const T k = (T)k_d;
    if (w) {
#pragma omp simd
        for (int64_t j = 0; j < D; j++) {
            dxr[j] = r * (dyr[j] * w[j]) - xr[j] * k;
        }
    }
    else {
#pragma omp simd
        for (int64_t j = 0; j < D; j++) {
            dxr[j] = r * dyr[j] - xr[j] * k;
        }
    }
    if (bdw) {
#pragma omp simd
        for (int64_t j = 0; j < D; j++) {
            bdw[j] += dyr[j] * xr[j] * r;
        }
    }
}

/* bdw's rows added into the double partials pdw, bdw zeroed */
static void
FN(nr_rms_flush)(double *pdw, T *bdw, int64_t D)
{
    for (int64_t j = 0; j < D; j++) {
        pdw[j] += (double)bdw[j];
        bdw[j] = 0;
    }
}

#ifdef NR_ROW_VEC
/* G rows (a constant after inlining) of the forward from row i, 0 < D <= NR_RMS_SHORT_D
 * (D = NV W when NV > 0): rstd in T, y = (x rstd) w; wv is w or ones */
NR_VEC_INLINE void
FN(nr_rms_forward_group)(T *restrict y, T *restrict rstd, const T *restrict x,
                         const T *restrict wv, int64_t D, T eps, int64_t i, const int G,
                         const int NV)
{
    const int64_t nfull = NV > 0 ? (int64_t)NV * W : D / W * W;
    /* the tail: one partial vector (NR_VEC_PART; its lanes past D load as 0), else scalar
     * loops to dsc */
    const int tl = (int)(D - nfull), vt = NR_VEC_PART && tl > 0;
    const int64_t dsc = vt ? nfull : D;
    const T inv_d = (T)1 / (T)D;
    const T *xr[NR_RMS_GROUP];
    V a[NR_RMS_GROUP];
    T t[NR_RMS_GROUP], s[NR_RMS_GROUP], rs[NR_RMS_GROUP];
    for (int r = 0; r < G; r++) {
        xr[r] = x + (i + r) * D;
        a[r] = (V){0};
        t[r] = 0;
    }
    NR_RMS_UNROLL
    for (int64_t j = 0; j < nfull; j += W) {
        for (int r = 0; r < G; r++) {
            const V v = FN(nr_vec_load)(xr[r] + j);
            a[r] = FN(nr_vec_fma)(v, v, a[r]);
        }
    }
    for (int r = 0; vt && r < G; r++) {
        const FN(nr_veci_t) kt = FN(nr_vec_part_keep)(tl);
        const V v = FN(nr_vec_load_part)(xr[r] + nfull, tl, kt);
        a[r] = FN(nr_vec_fma)(v, v, a[r]);
    }
    for (int r = 0; r < G; r++) {
        for (int64_t j = nfull; j < dsc; j++) {
            t[r] = NR_FMA1(xr[r][j], xr[r][j], t[r]);
        }
    }
    FN(nr_vec_rowsums)(s, a, G, 1);
    for (int r = 0; r < G; r++) {
        s[r] += t[r]; /* the tails */
    }
    for (int r = 0; r < G; r++) {
        rs[r] = (T)1 / SQRT(s[r] * inv_d + eps);
        rstd[i + r] = rs[r];
    }
    /* the outputs, from the caches: the next group's lines asked for as they go */
    NR_RMS_UNROLL
    for (int64_t j = 0; j < nfull; j += W) {
        const V wj = FN(nr_vec_load)(wv + j);
        if ((j * (int64_t)sizeof(T)) % 64 == 0) {
            for (int r = 0; r < G; r++) {
                __builtin_prefetch(x + (i + G + r) * D + j, 0, 3);
                __builtin_prefetch(y + (i + G + r) * D + j, 1, 3);
            }
        }
        for (int r = 0; r < G; r++) {
            FN(nr_vec_store)(y + (i + r) * D + j, (FN(nr_vec_load)(xr[r] + j) * rs[r]) * wj);
        }
    }
    if (vt) {
        const FN(nr_veci_t) kt = FN(nr_vec_part_keep)(tl);
        const V wj = FN(nr_vec_load_part)(wv + nfull, tl, kt);
        for (int r = 0; r < G; r++) {
            const V v = FN(nr_vec_load_part)(xr[r] + nfull, tl, kt);
            FN(nr_vec_store_part)(y + (i + r) * D + nfull, (v * rs[r]) * wj, tl, kt);
        }
    }
    for (int r = 0; r < G; r++) {
        for (int64_t j = nfull; j < dsc; j++) {
            y[(i + r) * D + j] = (xr[r][j] * rs[r]) * wv[j];
        }
    }
}

/* Rows [i, i1) of D values in segments of P lanes (nr_seg_lanes; P a constant after
 * inlining, and D where it is P), W / P rows to a vector (as LayerNorm's
 * nr_ln_forward_segments): the group's operations on each row's segment of lanes; the last
 * rows in a vector padded with zeros. wt: the weights repeated over the segments (0 past D). */
NR_VEC_INLINE void
FN(nr_rms_forward_segment_at)(T *restrict y, T *restrict rstd, const T *restrict x, V wt, T eps,
                              int64_t i, const int n, int64_t D, const FN(nr_rows_t) * rw,
                              const int P)
{
    const V xv = FN(nr_vec_get_rows)(x + i * D, n, D, rw, P);
    const V rs = FN(nr_vec_seg_rsqrt)(FN(nr_vec_segsum)(xv * xv, P) * ((T)1 / (T)D) + eps, P);
    FN(nr_vec_put_rows)(y + i * D, (xv * rs) * wt, n, D, rw, P);
    for (int r = 0; r < n; r++) {
        rstd[i + r] = rs[r * P];
    }
}

NR_VEC_INLINE void
FN(nr_rms_forward_segments)(T *restrict y, T *restrict rstd, const T *restrict x, V wt, T eps,
                            int64_t i, int64_t i1, int64_t D, const int P)
{
    const int R = W / P;
    FN(nr_rows_t) full, tail;
    if (D != P) {
        full = FN(nr_rows_make)(R, D, P);
    }
    for (; i + R <= i1; i += R) {
        FN(nr_rms_forward_segment_at)(y, rstd, x, wt, eps, i, R, D, &full, P);
    }
    if (i < i1) {
        const int n = (int)(i1 - i);
        if (D != P) {
            tail = FN(nr_rows_make)(n, D, P);
        }
        FN(nr_rms_forward_segment_at)(y, rstd, x, wt, eps, i, n, D, &tail, P);
    }
}

/* nr_rmsnorm_forward_short's rows in segments of P lanes (nr_seg_lanes), wv its weights;
 * apart (not inlined), as LayerNorm's nr_ln_forward_segment_rows */
static __attribute__((noinline)) void
FN(nr_rms_forward_segment_rows)(T *restrict y, T *restrict rstd, const T *restrict x,
                                const T *restrict wv, int64_t D, T e, int64_t i0, int64_t i1,
                                const int P)
{
    V wt;
    for (int l = 0; l < W; l++) {
        wt[l] = l % P < D ? wv[l % P] : (T)0;
    }
#define NR_RMS_SEG_FWD(DD, PP) FN(nr_rms_forward_segments)(y, rstd, x, wt, e, i0, i1, DD, PP)
    NR_SEG_DISPATCH(D, P, NR_RMS_SEG_FWD);
#undef NR_RMS_SEG_FWD
}

/* Rows [i0, i1) of the forward for 0 < D <= NR_RMS_SHORT_D; rows whose squares in T overflowed
 * or underflowed (found after the loops) redone by nr_rms_forward_row */
static void
FN(nr_rmsnorm_forward_short)(T *restrict y, T *restrict rstd, const T *restrict x, const T *w,
                             int64_t D, double eps, int64_t i0, int64_t i1)
{
    T wv[NR_RMS_SHORT_D];
    for (int64_t j = 0; j < D; j++) {
        wv[j] = w ? w[j] : (T)1;
    }
    const T e = (T)eps;
    int64_t i = i0;
    const int P = FN(nr_seg_lanes)(D);
    if (P > 0) {
        FN(nr_rms_forward_segment_rows)(y, rstd, x, wv, D, e, i0, i1, P);
        i = i1;
    }
    /* rows of NV whole vectors get loops without tails, D a constant */
#define NR_RMS_FWD(NV)                                                                         \
    for (; i + NR_RMS_GROUP <= i1; i += NR_RMS_GROUP) {                                        \
        FN(nr_rms_forward_group)(y, rstd, x, wv, (NV) ? (NV) * W : D, e, i, NR_RMS_GROUP, NV); \
    }                                                                                          \
    for (; i < i1; i++) {                                                                      \
        FN(nr_rms_forward_group)(y, rstd, x, wv, (NV) ? (NV) * W : D, e, i, 1, NV);            \
    }
    switch (D % W == 0 ? D / W : 0) {
    case 1:
        NR_RMS_FWD(1) break;
    case 2:
        NR_RMS_FWD(2) break;
    case 4:
        NR_RMS_FWD(4) break;
    case 8:
        NR_RMS_FWD(8) break;
    default:
        NR_RMS_FWD(0) break;
    }
#undef NR_RMS_FWD
    if (FN(nr_wide_rstd_check)(rstd, i0, i1)) {
        for (i = i0; i < i1; i++) {
            if (!NR_RSTD_OK(rstd[i])) {
                FN(nr_rms_forward_row)(y, rstd, x, w, D, eps, i);
            }
        }
    }
}

/* G rows of the backward from row i, 0 < D <= NR_RMS_SHORT_D (D = NV W when NV > 0), each
 * NR_RMS_SAFE: dx, and the rows' dy x rstd added to acc (NV vectors in registers) if not
 * NULL, else to bdw (or NULL). Returns 0, having written nothing, when a row's k is not a
 * normal value of T (or 0 from a sum of 0): those rows are the row-at-a-time path's. */
NR_VEC_INLINE int
FN(nr_rms_backward_group)(T *restrict dx, T *restrict bdw, const T *restrict dy,
                          const T *restrict x, const T *restrict rstd, const T *restrict wv,
                          int64_t D, int64_t i, const int G, const int NV, V *restrict acc)
{
    const int64_t nfull = NV > 0 ? (int64_t)NV * W : D / W * W;
    const T inv_d = (T)1 / (T)D;
    const T *xr[NR_RMS_GROUP], *gr[NR_RMS_GROUP];
    V a[NR_RMS_GROUP];
    T t[NR_RMS_GROUP], s[NR_RMS_GROUP], rs[NR_RMS_GROUP], k[NR_RMS_GROUP];
    for (int r = 0; r < G; r++) {
        xr[r] = x + (i + r) * D;
        gr[r] = dy + (i + r) * D;
        rs[r] = rstd[i + r];
        a[r] = (V){0};
        t[r] = 0;
    }
    /* the row sums of g x, g = dy w */
    NR_RMS_UNROLL
    for (int64_t j = 0; j < nfull; j += W) {
        const V wj = FN(nr_vec_load)(wv + j);
        for (int r = 0; r < G; r++) {
            a[r] = FN(nr_vec_fma)(FN(nr_vec_load)(gr[r] + j) * wj, FN(nr_vec_load)(xr[r] + j),
                                  a[r]);
        }
    }
    for (int r = 0; r < G; r++) {
        for (int64_t j = nfull; j < D; j++) {
            t[r] = NR_FMA1(gr[r][j] * wv[j], xr[r][j], t[r]);
        }
    }
    FN(nr_vec_rowsums)(s, a, G, 1);
    for (int r = 0; r < G; r++) {
        s[r] += t[r]; /* the tails */
    }
    int ok = 1;
    for (int r = 0; r < G; r++) {
        const T m = s[r] * inv_d;
        k[r] = ((rs[r] * rs[r]) * rs[r]) * m;
        /* m and k normal (NaN fails), or m exactly 0 */
        ok &= (m == 0) | (((m >= NR_T_MIN) | (m <= -NR_T_MIN)) &
                          ((k[r] >= NR_T_MIN) | (k[r] <= -NR_T_MIN)) &
                          ((k[r] <= NR_T_MAX) & (k[r] >= -NR_T_MAX)));
    }
    if (!ok) {
        return 0;
    }
    /* dx = rstd g - x k, and dw's rows; from the caches, asking for the next group's lines */
    NR_RMS_UNROLL
    for (int64_t j = 0; j < nfull; j += W) {
        const V wj = FN(nr_vec_load)(wv + j);
        V sdw = (V){0};
        if ((j * (int64_t)sizeof(T)) % 64 == 0) {
            for (int r = 0; r < G; r++) {
                const int64_t q = (i + G + r) * D + j;
                __builtin_prefetch(x + q, 0, 3);
                __builtin_prefetch(dy + q, 0, 3);
                __builtin_prefetch(dx + q, 1, 3);
            }
        }
        for (int r = 0; r < G; r++) {
            const V g = FN(nr_vec_load)(gr[r] + j), xv = FN(nr_vec_load)(xr[r] + j);
            FN(nr_vec_store)(dx + (i + r) * D + j,
                             FN(nr_vec_fmas)(xv, -k[r], (g * wj) * rs[r]));
            sdw = FN(nr_vec_fma)(g, xv * rs[r], sdw);
        }
        if (NV > 0 && NV <= NR_RMS_KEEP && acc) {
            acc[j / W] += sdw;
        }
        else if (bdw) {
            FN(nr_vec_store)(bdw + j, FN(nr_vec_load)(bdw + j) + sdw);
        }
    }
    for (int64_t j = nfull; j < D; j++) {
        T sdw = 0;
        for (int r = 0; r < G; r++) {
            const T g = gr[r][j];
            dx[(i + r) * D + j] = NR_FMA1(xr[r][j], -k[r], (g * wv[j]) * rs[r]);
            sdw = NR_FMA1(g, xr[r][j] * rs[r], sdw);
        }
        if (bdw) {
            bdw[j] += sdw;
        }
    }
    return 1;
}

/* acc's n vectors added to bdw, then bdw flushed into pdw; acc zeroed */
NR_VEC_INLINE void
FN(nr_rms_flush_acc)(double *pdw, T *bdw, V acc[NR_RMS_KEEP], const int n, int64_t D)
{
    for (int k = 0; k < n; k++) {
        FN(nr_vec_store)(bdw + k * W, FN(nr_vec_load)(bdw + k * W) + acc[k]);
        acc[k] = (V){0};
    }
    FN(nr_rms_flush)(pdw, bdw, D);
}

/* The backward of rows [i, i + n) of D values (n <= W / P) in one vector, segments of P lanes
 * (rw: how the rows are moved, where D < P), as nr_rms_backward_group's, each row's sum over
 * its segment: returns 0, having written nothing, when a row is not NR_RMS_SAFE or its k is
 * not a normal value of T (or 0 from a sum of 0); else dx, and the lanes of the rows' dy x
 * rstd added to acc. Rows and lanes past the rows' values are zeros. */
NR_VEC_INLINE int
FN(nr_rms_backward_segment_vec)(T *restrict dx, const T *restrict dy, const T *restrict x,
                                const T *restrict rstd, V wt, int64_t i, const int n,
                                V *restrict acc, int64_t D, const FN(nr_rows_t) * rw,
                                const int P)
{
    const T inv_d = (T)1 / (T)D;
    const V xv = FN(nr_vec_get_rows)(x + i * D, n, D, rw, P);
    const V gv = FN(nr_vec_get_rows)(dy + i * D, n, D, rw, P);
    const V rs = FN(nr_vec_load_spread)(rstd + i, n, P);
    const V g = gv * wt;
    const V m = FN(nr_vec_segsum)(g * xv, P) * inv_d;
    const V k = ((rs * rs) * rs) * m;
    int ok = 1;
    if (n == W / P) { /* every lane a row's: the test on whole vectors */
        typedef __typeof__(rs < rs) VI;
        const VI good = NR_RMS_SAFE(rs) & ((m == 0) | (((m >= NR_T_MIN) | (m <= -NR_T_MIN)) &
                                                       ((k >= NR_T_MIN) | (k <= -NR_T_MIN)) &
                                                       ((k <= NR_T_MAX) & (k >= -NR_T_MAX))));
        VI all = good; /* the lanes' AND, as a butterfly */
#if NR_VEC_BYTES / NR_TYPED_SIZE >= 16
        all &= __builtin_shufflevector(all, all, NR_VEC_LANES(NR_VEC_XOR8));
#endif
#if NR_VEC_BYTES / NR_TYPED_SIZE >= 8
        all &= __builtin_shufflevector(all, all, NR_VEC_LANES(NR_VEC_XOR4));
#endif
        all &= __builtin_shufflevector(all, all, NR_VEC_LANES(NR_VEC_XOR2));
        all &= __builtin_shufflevector(all, all, NR_VEC_LANES(NR_VEC_XOR1));
        ok = all[0] != 0;
    }
    else {
        for (int r = 0; r < n; r++) {
            const T mr = m[r * P], kr = k[r * P];
            ok &=
                NR_RMS_SAFE(rs[r * P]) & ((mr == 0) | (((mr >= NR_T_MIN) | (mr <= -NR_T_MIN)) &
                                                       ((kr >= NR_T_MIN) | (kr <= -NR_T_MIN)) &
                                                       ((kr <= NR_T_MAX) & (kr >= -NR_T_MAX))));
        }
    }
    if (!ok) {
        return 0;
    }
    FN(nr_vec_put_rows)(dx + i * D, FN(nr_vec_fma)(xv, -k, g * rs), n, D, rw, P);
    *acc = FN(nr_vec_fma)(gv, xv * rs, *acc);
    return 1;
}

/* Rows [i0, i1) of D values in segments of P lanes (nr_seg_lanes; P a constant after
 * inlining, and D where it is P) of the backward, W / P rows to a vector (see
 * nr_ln_backward_segments); a vector with a row the segments cannot take goes a row at a
 * time (its other rows through the segments alone: the same bits). dw's lanes summed in acc
 * (a row a vector in each lane), added to bdw and flushed into pdw every NR_RMS_FLUSH_ROWS
 * vectors: sums of as many values in T as the rows'. */
NR_VEC_INLINE void
FN(nr_rms_backward_segments)(T *restrict dx, double *restrict pdw, T *restrict bdw,
                             const T *restrict dy, const T *restrict x, const T *restrict rstd,
                             const T *w, const T *restrict wv, int64_t i0, int64_t i1,
                             int64_t D, const int P)
{
    const int R = W / P;
    V wt, acc = (V){0};
    for (int l = 0; l < W; l++) {
        wt[l] = l % P < D ? wv[l % P] : (T)0;
    }
    FN(nr_rows_t) full, part, rw1;
    if (D != P) {
        full = FN(nr_rows_make)(R, D, P);
        rw1 = FN(nr_rows_make)(1, D, P);
    }
    int64_t pending = 0;
    for (int64_t i = i0; i < i1; i += R) {
        const int n = i + R <= i1 ? R : (int)(i1 - i);
        if (D != P && n < R) {
            part = FN(nr_rows_make)(n, D, P);
        }
        const int done =
            n == R
                ? FN(nr_rms_backward_segment_vec)(dx, dy, x, rstd, wt, i, R, &acc, D, &full, P)
                : FN(nr_rms_backward_segment_vec)(dx, dy, x, rstd, wt, i, n, &acc, D, &part, P);
        for (int r = 0; !done && r < n; r++) {
            if (!FN(nr_rms_backward_segment_vec)(dx, dy, x, rstd, wt, i + r, 1, &acc, D, &rw1,
                                                 P)) {
                FN(nr_rms_backward_row)(dx, pdw, bdw, dy, x, rstd, w, D, i + r);
            }
        }
        pending++;
        if (bdw && (pending >= NR_RMS_FLUSH_ROWS || i + n >= i1)) {
            for (int l = 0; l < W; l++) {
                if (l % P < D) {
                    bdw[l % P] += acc[l];
                }
            }
            acc = (V){0};
            FN(nr_rms_flush)(pdw, bdw, D);
            pending = 0;
        }
    }
}

/* nr_rmsnorm_backward_short's rows in segments of P lanes (nr_seg_lanes); apart, as the
 * forward's */
static __attribute__((noinline)) void
FN(nr_rms_backward_segment_rows)(T *restrict dx, double *restrict pdw, T *restrict bdw,
                                 const T *restrict dy, const T *restrict x,
                                 const T *restrict rstd, const T *w, const T *restrict wv,
                                 int64_t D, int64_t i0, int64_t i1, const int P)
{
#define NR_RMS_SEG_BWD(DD, PP)                                                                 \
    FN(nr_rms_backward_segments)(dx, pdw, bdw, dy, x, rstd, w, wv, i0, i1, DD, PP)
    NR_SEG_DISPATCH(D, P, NR_RMS_SEG_BWD);
#undef NR_RMS_SEG_BWD
}

/* Rows [i0, i1) of the backward for 0 < D <= NR_RMS_SHORT_D (see nr_rmsnorm_backward_rows) */
static void
FN(nr_rmsnorm_backward_short)(T *restrict dx, double *restrict pdw, T *restrict bdw,
                              const T *restrict dy, const T *restrict x, const T *restrict rstd,
                              const T *w, int64_t D, int64_t i0, int64_t i1)
{
    T wv[NR_RMS_SHORT_D];
    for (int64_t j = 0; j < D; j++) {
        wv[j] = w ? w[j] : (T)1;
    }
    const int P = FN(nr_seg_lanes)(D); /* the segments test each vector's rows themselves */
    if (P > 0) {
        FN(nr_rms_backward_segment_rows)(dx, pdw, bdw, dy, x, rstd, w, wv, D, i0, i1, P);
        return;
    }
    /* one look at rstd picks the loop: every row NR_RMS_SAFE, or a row at a time */
    int safe = 1;
#pragma omp simd reduction(& : safe)
    for (int64_t i = i0; i < i1; i++) {
        safe &= NR_RMS_SAFE(rstd[i]);
    }
    int64_t i = i0, pending = 0; /* rows in bdw and acc since the last flush */
    /* rows of 1, 2 or 4 whole vectors (the switch below): their dw rows summed in
     * registers, not in bdw (whose store, loaded again by the next group, made a chain
     * through memory) */
    V acc[NR_RMS_KEEP] = {{0}};
    const int64_t nv = D % W == 0 ? D / W : 0;
    const int nacc = bdw && nv <= NR_RMS_KEEP && (nv & (nv - 1)) == 0 ? (int)nv : 0;
#define NR_RMS_ROWS(G, NV)                                                                     \
    do {                                                                                       \
        if (!FN(nr_rms_backward_group)(dx, bdw, dy, x, rstd, wv, (NV) ? (NV) * W : D, i, G,    \
                                       NV, nacc ? acc : NULL)) {                               \
            /* each row alone: the rows that pass get the bits they get in any group */        \
            for (int r = 0; r < (G); r++) {                                                    \
                if (!FN(nr_rms_backward_group)(dx, bdw, dy, x, rstd, wv, (NV) ? (NV) * W : D,  \
                                               i + r, 1, NV, nacc ? acc : NULL)) {             \
                    FN(nr_rms_backward_row)(dx, pdw, bdw, dy, x, rstd, w, D, i + r);           \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        i += (G);                                                                              \
        pending += (G);                                                                        \
        if (bdw && pending >= NR_RMS_FLUSH_ROWS) {                                             \
            FN(nr_rms_flush_acc)(pdw, bdw, acc, nacc, D);                                      \
            pending = 0;                                                                       \
        }                                                                                      \
    } while (0)
#define NR_RMS_BWD(NV)                                                                         \
    while (safe && i + NR_RMS_GROUP <= i1) {                                                   \
        NR_RMS_ROWS(NR_RMS_GROUP, NV);                                                         \
    }                                                                                          \
    while (i < i1) {                                                                           \
        if (NR_RMS_SAFE(rstd[i])) {                                                            \
            NR_RMS_ROWS(1, NV);                                                                \
        }                                                                                      \
        else {                                                                                 \
            FN(nr_rms_backward_row)(dx, pdw, bdw, dy, x, rstd, w, D, i);                       \
            i++;                                                                               \
            pending++;                                                                         \
        }                                                                                      \
    }
    switch (nv) {
    case 1:
        NR_RMS_BWD(1) break;
    case 2:
        NR_RMS_BWD(2) break;
    case 4:
        NR_RMS_BWD(4) break;
    case 8:
        NR_RMS_BWD(8) break;
    default:
        NR_RMS_BWD(0) break;
    }
#undef NR_RMS_BWD
#undef NR_RMS_ROWS
    if (bdw && pending > 0) {
        FN(nr_rms_flush_acc)(pdw, bdw, acc, nacc, D);
    }
}
#endif /* NR_ROW_VEC */

/* x (M, D), w (D) or NULL -> y (M, D), rstd (M) = 1 / sqrt(mean(x^2) + eps) */
void
FN(nr_rmsnorm_forward)(T *y, T *rstd, const T *x, const T *w, int64_t M, int64_t D, double eps)
{
    int nt = nr_threads_for((size_t)(M * D) * 2 * sizeof(T));
#ifdef NR_ROW_VEC
    if (D > 0 && D <= NR_RMS_SHORT_D) {
        NR_SPLIT(nt, M, NR_RMS_GROUP,
                 FN(nr_rmsnorm_forward_short)(y, rstd, x, w, D, eps, i0, i1));
        return;
    }
#endif
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < M; i++) {
        FN(nr_rms_forward_row)(y, rstd, x, w, D, eps, i);
    }
}

/* Per-thread partial sums of dw: D doubles and D values of T for each thread. */
size_t
FN(nr_rmsnorm_backward_workspace)(int64_t D, int nthreads)
{
    return (size_t)nthreads * (size_t)D * (sizeof(double) + sizeof(T));
}

/* Rows [i0, i1) of the backward (see below); pdw (D doubles) and bdw (D values of T) this
 * range's dw partials, or NULL. */
static void
FN(nr_rmsnorm_backward_rows)(T *dx, double *pdw, T *bdw, const T *dy, const T *x, const T *rstd,
                             const T *w, int64_t D, int64_t i0, int64_t i1)
{
#ifdef NR_ROW_VEC
    if (D > 0 && D <= NR_RMS_SHORT_D) {
        /* the float blocks in this thread's stack (as its double partials, NR_PARTIAL_SUMS):
         * rows of more vectors than the registers keep add to them every group of rows, in the
         * shared workspace 1.1-2x the time on 2 threads */
        T lbw[NR_RMS_SHORT_D] __attribute__((aligned(64)));
        if (bdw) {
            memset(lbw, 0, (size_t)D * sizeof(T));
        }
        FN(nr_rmsnorm_backward_short)(dx, pdw, bdw ? lbw : NULL, dy, x, rstd, w, D, i0, i1);
        return;
    }
#endif
    if (bdw) {
        memset(bdw, 0, (size_t)D * sizeof(T));
    }
    for (int64_t i = i0; i < i1; i++) {
        FN(nr_rms_backward_row)(dx, pdw, bdw, dy, x, rstd, w, D, i);
        if (bdw && ((i - i0) % NR_RMS_FLUSH_ROWS == NR_RMS_FLUSH_ROWS - 1 || i == i1 - 1)) {
            FN(nr_rms_flush)(pdw, bdw, D);
        }
    }
}

/* dy (M, D), x (M, D), rstd (M), w (D) or NULL -> dx (M, D) =, dw (D) += (dw may be NULL)
 * With g = dy w and r = rstd, since dr/dx = -r^3 x / D:
 *   dx = r g - x r^3 mean(g x)
 *   dw = sum over rows of dy x r */
void
FN(nr_rmsnorm_backward)(T *dx, T *dw, const T *dy, const T *x, const T *rstd, const T *w,
                        int64_t M, int64_t D, void *workspace, int nthreads)
{
    int nt = NR_MIN(nthreads, nr_threads_for((size_t)(M * D) * 3 * sizeof(T)));
    double *partials = (double *)workspace;
    T *blocks = (T *)(partials + (size_t)nthreads * D);
    NR_PARTIAL_SUMS(nt, M, double, partials, dw ? D : 0, D,
                    FN(nr_rmsnorm_backward_rows)(dx, dw ? acc : NULL,
                                                 dw ? blocks + (size_t)tid * D : NULL, dy, x,
                                                 rstd, w, D, i0, i1));
    for (int64_t j = 0; dw && j < D; j++) {
        dw[j] += (T)partials[j];
    }
}

#undef V
#undef W
