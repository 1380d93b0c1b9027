/* LayerNorm kernels for one element type T (see layernorm.c). */

#include "rowvec_body.h"
#include "wide_body.h"

/* Short rows (D <= NR_LN_SHORT_D): gcc ends an `omp simd reduction` with a chain of dependent
 * scalar additions, which dominated rows of 64; this path keeps sums in vectors of the tier's
 * width reduced as a tree, several rows at once, and where rows are whole vectors the next
 * group's first pass runs amid the group before it (nr_ln_forward_pipe). A row's arithmetic
 * does not depend on its group or on the path it takes. */
#ifndef NR_LN_SHORT_D
#define NR_LN_SHORT_D 256
#define NR_LN_GROUP 4   /* rows at once in the forward */
#define NR_LN_KEEP 8    /* vectors of a row kept in registers at most */
#define NR_LN_GROUP_B 2 /* in the backward (more would spill registers) */
#define NR_LN_KEEP_B 4  /* vectors of dw, db partials kept in registers by the backward */
/* The backward's correction c (nr_ln_backward_group) matters only for a mean far from 0 in
 * units of the std: without it xhat errs by |mean| rstd 2^-24 at most in float32. */
#define NR_LN_FAR(mu, rs) (!(((mu) * (rs) <= 1) & ((mu) * (rs) >= -1)))
/* A short row whose backward sums might overflow T: with rstd >= 2^-20, |x - mean| <= 2^24
 * (D <= 256), so in float32 only |dy w| beyond 2^104 / D (8e28 at D = 256) could overflow
 * them. Such rows (and NaN) take the checked path, one at a time. */
#define NR_LN_RISKY(rs) (!((rs) >= (T)0x1p-20))
#endif

/* Row i of the forward redone in double, scaled (wide_body.h), when its sums in T overflowed
 * or underflowed; wv, bv: the weight and bias, or ones and zeros. */
static void
FN(nr_ln_forward_wide)(T *restrict y, T *restrict mean, T *restrict rstd, const T *restrict x,
                       const T *wv, const T *bv, int64_t D, double eps, int64_t i)
{
    struct nr_wide p;
    if (!FN(nr_wide_stats)(&p, x + i * D, D, 1, eps)) {
        return; /* NaN or Inf in the row: the fast path's result stands */
    }
    mean[i] = (T)p.mean;
    rstd[i] = (T)p.rstd;
    for (int64_t j = 0; j < D; j++) {
        const double xh = FN(nr_wide_xhat)(&p, x[i * D + j]);
        y[i * D + j] = (T)(xh * (wv ? (double)wv[j] : 1.0) + (bv ? (double)bv[j] : 0.0));
    }
}

/* A row whose var + eps in T left [NR_T_TINY, NR_T_MAX] (its sums overflowed, or may have lost
 * digits to underflow) got an rstd that fails NR_RSTD_OK (nr_common.h): found after the
 * kernels' loops (nr_wide_rstd_check: a test inside them slowed them measurably), redone wide. */
static void
FN(nr_ln_forward_redo)(T *restrict y, T *restrict mean, T *restrict rstd, const T *restrict x,
                       const T *w, const T *b, int64_t D, double eps, int64_t i0, int64_t i1)
{
    for (int64_t i = i0; D > 0 && i < i1; i++) {
        if (!NR_RSTD_OK(rstd[i])) {
            FN(nr_ln_forward_wide)(y, mean, rstd, x, w, b, D, eps, i);
        }
    }
}

/* Row i of the backward redone in double, scaled, when its sums in T overflowed; w may be
 * NULL. Returns 0, writing nothing, if the row holds a NaN or Inf. */
static int
FN(nr_ln_backward_wide)(T *restrict dx, T *restrict pdw, T *restrict pdb, const T *restrict dy,
                        const T *restrict x, const T *restrict rstd, const T *w, int64_t D,
                        int64_t i)
{
    struct nr_wide p;
    const T *xr = x + i * D, *gr = dy + i * D;
    if (!FN(nr_wide_grad)(&p, xr, gr, w, D, 1, (double)rstd[i], 1)) {
        return 0;
    }
    for (int64_t j = 0; j < D; j++) {
        const double xh = FN(nr_wide_xhat)(&p, xr[j]),
                     g = (double)gr[j] * (w ? (double)w[j] : 1.0);
        dx[i * D + j] = (T)(p.rstd * ((g - p.mg) - xh * p.mgx));
        if (pdw) {
            pdw[j] += (T)((double)gr[j] * xh);
            pdb[j] += gr[j];
        }
    }
    return 1;
}

#ifdef NR_ROW_VEC
/* The backward's pairs of rows of exactly NV vectors that the pipeline leaves (with the
 * mean's correction, 3-4 vectors) get their own copy of the group loops on avx512, with D a
 * constant: no tail loops, nothing of them kept on the stack (0.88-0.92x at D = 64 on a Zen 5;
 * on avx2 no faster) */
#define NR_LN_EXACT (NR_VEC_BYTES == 64)

/* G rows (G a constant after inlining) of the forward starting at row i. NV > 0 (a constant,
 * with D / W == NV and G NV <= 16): the rows' full vectors are loaded once and kept in
 * registers for the three passes; NV == 0: every pass loads them again. */
NR_VEC_INLINE void
FN(nr_ln_forward_group)(T *restrict y, T *restrict mean, T *restrict rstd, const T *restrict x,
                        const T *restrict wv, const T *restrict bv, int64_t D, T eps, int64_t i,
                        const int G, const int NV)
{
    const int64_t nfull = NV > 0 ? (int64_t)NV * W : D / W * W;
    /* the tail past the full vectors: one partial vector (NR_VEC_PART), else scalar loops to
     * dsc; kt, its lanes */
    const int tl = (int)(D - nfull), vt = NR_VEC_PART && tl > 0;
    const int64_t dsc = vt ? nfull : D;
    V xv[NR_LN_GROUP][NR_LN_KEEP];
    const T inv_d = (T)1 / (T)D;
    const T *xr[NR_LN_GROUP];
    T sh[NR_LN_GROUP], dm[NR_LN_GROUP], rs[NR_LN_GROUP];
    /* H chains of sums a row: two for rows of 8 vectors (D / W == 8) on avx512, whose pairs
     * then fill nr_vec_hsum4's four vectors, single rows alike (the same sums whatever the
     * row's group); row r's sums end in lane L r of the packed reduction */
    const int H = NR_VEC_HSUM4 && G <= 2 && (NV > 0 ? NV : D / W) == 8 ? 2 : 1, L = 4 * H;
    (void)L;
    V a[NR_LN_GROUP];
    for (int r = 0; r < G; r++) {
        xr[r] = x + (i + r) * D;
        sh[r] = xr[r][0];
    }
    for (int k = 0; k < G * H; k++) {
        a[k] = (V){0};
    }
    /* pass 1: sum of x - shift (exact near the shift: a large offset costs no accuracy) */
    for (int64_t j = 0; j < nfull; j += W) {
        for (int r = 0; r < G; r++) {
            const V d = FN(nr_vec_load)(xr[r] + j) - sh[r];
            if (NV > 0) {
                xv[r][j / W] = d; /* x - shift, kept for the next two passes */
            }
            a[r * H + (int)(j / W) % H] += d;
        }
    }
    for (int r = 0; vt && r < G; r++) {
        const FN(nr_veci_t) kt = FN(nr_vec_part_keep)(tl);
        const V d = FN(nr_vec_load_part)(xr[r] + nfull, tl, kt) - sh[r];
        a[r * H + (int)(nfull / W) % H] += (V)((FN(nr_veci_t))d & kt);
    }
    if (NR_VEC_HSUM4 && G * H == 4 && NV > 0) {
#if NR_VEC_HSUM4
        V tail = (V){0}; /* the sums of the elements past the full vectors, as below */
        for (int r = 0; D > nfull && r < G; r++) {
            T t = 0;
            for (int64_t j = nfull; j < dsc; j++) {
                t += xr[r][j] - sh[r];
            }
            tail[L * r] = t;
        }
        const V m = FN(nr_vec_hsum4_rows)(a, H, tail) * inv_d;
        for (int r = 0; r < G; r++) {
            dm[r] = m[L * r];
        }
        for (int k = 0; k < 4; k++) {
            a[k] = (V){0};
        }
#endif
    }
    else {
        NR_VEC_UNROLL
        for (int r = 0; r < G; r++) {
            T s = 0;
            for (int64_t j = nfull; j < dsc; j++) {
                s += xr[r][j] - sh[r];
            }
            dm[r] = (FN(nr_vec_hsum_row)(a, r, H) + s) * inv_d; /* mean - shift */
            for (int k = 0; k < H; k++) {
                a[r * H + k] = (V){0};
            }
        }
    }
    /* pass 2: sum of squared deviations */
    for (int64_t j = 0; j < nfull; j += W) {
        for (int r = 0; r < G; r++) {
            const V d = (NV > 0 ? xv[r][j / W] : FN(nr_vec_load)(xr[r] + j) - sh[r]) - dm[r];
            if (NV > 0) {
                xv[r][j / W] = d;
            }
            a[r * H + (int)(j / W) % H] = FN(nr_vec_fma)(d, d, a[r * H + (int)(j / W) % H]);
        }
    }
    for (int r = 0; vt && r < G; r++) {
        const FN(nr_veci_t) kt = FN(nr_vec_part_keep)(tl);
        V d = (FN(nr_vec_load_part)(xr[r] + nfull, tl, kt) - sh[r]) - dm[r];
        d = (V)((FN(nr_veci_t))d & kt);
        a[r * H + (int)(nfull / W) % H] = FN(nr_vec_fma)(d, d, a[r * H + (int)(nfull / W) % H]);
    }
    if (NR_VEC_HSUM4 && G * H == 4 && NV > 0) {
#if NR_VEC_HSUM4
        V tail = (V){0};
        for (int r = 0; D > nfull && r < G; r++) {
            T t = 0;
            for (int64_t j = nfull; j < dsc; j++) {
                const T d = (xr[r][j] - sh[r]) - dm[r];
                t = NR_FMA1(d, d, t);
            }
            tail[L * r] = t;
        }
        const V var = FN(nr_vec_hsum4_rows)(a, H, tail) * inv_d + eps;
        const V q = FN(nr_vec_rsqrt4)(var, H);
        for (int r = 0; r < G; r++) {
            rs[r] = q[r];
            mean[i + r] = sh[r] + dm[r];
            rstd[i + r] = rs[r];
        }
#endif
    }
    else {
        NR_VEC_UNROLL
        for (int r = 0; r < G; r++) {
            T s = 0;
            for (int64_t j = nfull; j < dsc; j++) {
                const T d = (xr[r][j] - sh[r]) - dm[r];
                s = NR_FMA1(d, d, s);
            }
            rs[r] = (T)1 / SQRT((FN(nr_vec_hsum_row)(a, r, H) + s) * inv_d + eps);
            mean[i + r] = sh[r] + dm[r];
            rstd[i + r] = rs[r];
        }
    }
    /* pass 3: the outputs, w and b loaded once per group; it asks for the next group's
     * lines (x, and y's for writing) as it goes (as nr_ln_backward_row) */
    for (int64_t j = 0; j < nfull; j += W) {
        const V wj = FN(nr_vec_load)(wv + j), bj = FN(nr_vec_load)(bv + j);
        if ((j * (int64_t)sizeof(T)) % 64 == 0) {
            for (int r = 0; r < G; r++) {
                __builtin_prefetch(x + (i + G + r) * D + j, 0, 3);
                __builtin_prefetch(y + (i + G + r) * D + j, 1, 3);
            }
        }
        for (int r = 0; r < G; r++) {
            const V d = NV > 0 ? xv[r][j / W] : (FN(nr_vec_load)(xr[r] + j) - sh[r]) - dm[r];
            FN(nr_vec_store)(y + (i + r) * D + j, FN(nr_vec_fma)(d * rs[r], wj, bj));
        }
    }
    if (vt) {
        const FN(nr_veci_t) kt = FN(nr_vec_part_keep)(tl);
        const V wj = FN(nr_vec_load_part)(wv + nfull, tl, kt);
        const V bj = FN(nr_vec_load_part)(bv + nfull, tl, kt);
        for (int r = 0; r < G; r++) {
            const V d = (FN(nr_vec_load_part)(xr[r] + nfull, tl, kt) - sh[r]) - dm[r];
            FN(nr_vec_store_part)(y + (i + r) * D + nfull, FN(nr_vec_fma)(d * rs[r], wj, bj),
                                  tl, kt);
        }
    }
    for (int r = 0; r < G; r++) {
        for (int64_t j = nfull; j < dsc; j++) {
            y[(i + r) * D + j] = NR_FMA1(((xr[r][j] - sh[r]) - dm[r]) * rs[r], wv[j], bv[j]);
        }
    }
}

/* The first pass of G rows of NV full vectors (D = NV W) from row i: shifts and means */
NR_VEC_INLINE void
FN(nr_ln_pipe_mean)(T sh[4], T dm[4], const T *restrict x, int64_t i, const int G, const int H,
                    const int NV)
{
    const int64_t D = (int64_t)NV * W;
    V a[4];
    for (int r = 0; r < G; r++) {
        sh[r] = x[(i + r) * D];
    }
    for (int k = 0; k < 4; k++) {
        a[k] = (V){0};
    }
    for (int k = 0; k < NV; k++) {
        for (int r = 0; r < G; r++) {
            a[r * H + k % H] += FN(nr_vec_load)(x + (i + r) * D + k * W) - sh[r];
        }
    }
    T s[4];
    FN(nr_vec_rowsums)(s, a, G, H);
    for (int r = 0; r < G; r++) {
        dm[r] = s[r] * ((T)1 / (T)D);
    }
}

/* Rows [i, i1) in groups of G rows of NV full vectors (D = NV W), each group's first pass
 * placed amid the group before it, whose square root waits on two reductions in a row: the
 * CPU then has the next group's independent work at hand. The values of nr_ln_forward_group
 * (H: its chains a row); KEEP: x - shift - mean kept in registers for the output pass.
 * Returns the first row not done. */
NR_VEC_INLINE int64_t
FN(nr_ln_forward_pipe)(T *restrict y, T *restrict mean, T *restrict rstd, const T *restrict x,
                       const T *restrict wv, const T *restrict bv, T eps, int64_t i, int64_t i1,
                       const int G, const int NV, const int KEEP)
{
    const int64_t D = (int64_t)NV * W;
    const int H = NR_VEC_HSUM4 && G == 2 ? 2 : 1;
    if (i + G > i1) {
        return i;
    }
    T sh[4], dm[4];
    FN(nr_ln_pipe_mean)(sh, dm, x, i, G, H, NV);
    for (; i + G <= i1; i += G) {
        V xv[4][8], a[4];
        for (int k = 0; k < 4; k++) {
            a[k] = (V){0};
        }
        for (int k = 0; k < NV; k++) {
            for (int r = 0; r < G; r++) {
                const V d = (FN(nr_vec_load)(x + (i + r) * D + k * W) - sh[r]) - dm[r];
                if (KEEP) {
                    xv[r][k] = d;
                }
                a[r * H + k % H] = FN(nr_vec_fma)(d, d, a[r * H + k % H]);
            }
        }
        T sh2[4] = {0}, dm2[4] = {0};
        if (i + 2 * G <= i1) {
            FN(nr_ln_pipe_mean)(sh2, dm2, x, i + G, G, H, NV);
        }
        T rs[4];
#if NR_VEC_HSUM4
        if (G * H == 4) {
            const V var = FN(nr_vec_hsum4_rows)(a, H, (V){0}) * ((T)1 / (T)D) + eps;
            const V q = FN(nr_vec_rsqrt4)(var, H);
            for (int r = 0; r < G; r++) {
                rs[r] = q[r];
            }
        }
        else
#endif
        {
            T ss[4];
            FN(nr_vec_rowsums)(ss, a, G, H);
            for (int r = 0; r < G; r++) {
                rs[r] = (T)1 / SQRT(ss[r] * ((T)1 / (T)D) + eps);
            }
        }
        for (int r = 0; r < G; r++) {
            mean[i + r] = sh[r] + dm[r];
            rstd[i + r] = rs[r];
        }
        for (int k = 0; k < NV; k++) {
            const V wj = FN(nr_vec_load)(wv + k * W), bj = FN(nr_vec_load)(bv + k * W);
            for (int r = 0; r < G; r++) {
                const V d = KEEP ? xv[r][k]
                                 : (FN(nr_vec_load)(x + (i + r) * D + k * W) - sh[r]) - dm[r];
                FN(nr_vec_store)(y + (i + r) * D + k * W, FN(nr_vec_fma)(d * rs[r], wj, bj));
            }
        }
        for (int r = 0; r < G; r++) {
            sh[r] = sh2[r];
            dm[r] = dm2[r];
        }
    }
    return i;
}

/* Rows [i, i1) of D values below W in segments of P lanes (the power of two from D, a
 * constant after inlining; nr_vec_load_rows): W / P rows to a vector, nr_ln_forward_group's
 * operations on each row's segment (its shift the segment's first value, its sums by
 * nr_vec_segsum, the lanes past D kept at 0). Such rows took the group's scalar loops: 6-12x
 * the time an element of rows of W values (Zen 5, avx512). wt, bt: the weights and biases
 * repeated over the segments (0 past D). The last rows, fewer than a vector's, go through
 * the same operations in a vector padded with zeros, so that a row's bits do not depend on
 * its place in the batch. */
NR_VEC_INLINE V
FN(nr_ln_segment_vec)(V *mv, V *rsv, V xv, V wt, V bt, T eps, int64_t D, FN(nr_veci_t) keep,
                      const int P)
{
    const T inv_d = (T)1 / (T)D;
    const V sh = FN(nr_vec_seg_first)(xv, P);
    V d0 = xv - sh;
    if (D != P) {
        d0 = (V)((FN(nr_veci_t))d0 & keep);
    }
    const V dm = FN(nr_vec_segsum)(d0, P) * inv_d; /* mean - shift */
    V d = d0 - dm;
    if (D != P) {
        d = (V)((FN(nr_veci_t))d & keep);
    }
    const V rs = FN(nr_vec_seg_rsqrt)(FN(nr_vec_segsum)(d * d, P) * inv_d + eps, P);
    *mv = sh + dm;
    *rsv = rs;
    return FN(nr_vec_fma)(d * rs, wt, bt);
}

/* The forward of the rows [i, i + n) of one vector (nr_ln_segment_vec), rw: how the rows
 * are moved where D < P */
NR_VEC_INLINE void
FN(nr_ln_forward_segment_at)(T *restrict y, T *restrict mean, T *restrict rstd,
                             const T *restrict x, V wt, V bt, T eps, int64_t i, const int n,
                             int64_t D, const FN(nr_rows_t) * rw, const int P)
{
    V mv, rsv;
    const V xv = FN(nr_vec_get_rows)(x + i * D, n, D, rw, P);
    const V keep = D == P ? (V){0} : (V)rw->keep;
    const V yv = FN(nr_ln_segment_vec)(&mv, &rsv, xv, wt, bt, eps, D, (FN(nr_veci_t))keep, P);
    FN(nr_vec_put_rows)(y + i * D, yv, n, D, rw, P);
    for (int r = 0; r < n; r++) {
        mean[i + r] = mv[r * P];
        rstd[i + r] = rsv[r * P];
    }
}

NR_VEC_INLINE void
FN(nr_ln_forward_segments)(T *restrict y, T *restrict mean, T *restrict rstd,
                           const T *restrict x, V wt, V bt, T eps, int64_t i, int64_t i1,
                           int64_t D, const int P)
{
    const int R = W / P;
    FN(nr_rows_t) full, tail;
    if (D != P) {
        full = FN(nr_rows_make)(R, D, P);
    }
    for (; i + R <= i1; i += R) {
        FN(nr_ln_forward_segment_at)(y, mean, rstd, x, wt, bt, eps, i, R, D, &full, P);
    }
    if (i < i1) {
        const int n = (int)(i1 - i);
        if (D != P) {
            tail = FN(nr_rows_make)(n, D, P);
        }
        FN(nr_ln_forward_segment_at)(y, mean, rstd, x, wt, bt, eps, i, n, D, &tail, P);
    }
}

/* Rows [i0, i1) of the forward in segments of P lanes (nr_seg_lanes: short rows of 2-8
 * values); returns whether a row needs nr_ln_forward_redo. Called in place of
 * nr_layernorm_forward_short, not from it: there, the short rows' own loops compiled
 * differently (LayerNorm's forward on rows of 64 took 1.04-1.10x the time). */
static __attribute__((noinline)) int
FN(nr_ln_forward_segment_rows)(T *restrict y, T *restrict mean, T *restrict rstd,
                               const T *restrict x, const T *restrict w, const T *restrict b,
                               int64_t D, double eps, int64_t i0, int64_t i1, const int P)
{
    const T e = (T)eps;
    V wt, bt;
    for (int l = 0; l < W; l++) {
        wt[l] = l % P < D ? (w ? w[l % P] : (T)1) : (T)0;
        bt[l] = l % P < D ? (b ? b[l % P] : (T)0) : (T)0;
    }
#define NR_LN_SEG_FWD(DD, PP)                                                                  \
    FN(nr_ln_forward_segments)(y, mean, rstd, x, wt, bt, e, i0, i1, DD, PP)
    NR_SEG_DISPATCH(D, P, NR_LN_SEG_FWD);
#undef NR_LN_SEG_FWD
    return FN(nr_wide_rstd_check)(rstd, i0, i1);
}

/* Rows [i0, i1) of the forward for 0 < D <= NR_LN_SHORT_D; returns whether a row needs
 * nr_ln_forward_redo. */
static int
FN(nr_layernorm_forward_short)(T *restrict y, T *restrict mean, T *restrict rstd,
                               const T *restrict x, const T *restrict w, const T *restrict b,
                               int64_t D, double eps, int64_t i0, int64_t i1)
{
    /* weight and bias, or 1 and 0: one loop for the four cases */
    T wv[NR_LN_SHORT_D], bv[NR_LN_SHORT_D];
    for (int64_t j = 0; j < D; j++) {
        wv[j] = w ? w[j] : (T)1;
        bv[j] = b ? b[j] : (T)0;
    }
    int64_t i = i0;
    const T e = (T)eps;
    /* rows of 1-4 full vectors kept in registers; of 8 too on avx512, in pairs of rows (its
     * 32 registers hold them: 0.86-0.93x the time at D = 128 on a Zen 5; avx2's 16 spill) */
#define NR_LN_FWD(G, NV)                                                                       \
    for (; i + (G) <= i1; i += (G)) {                                                          \
        FN(nr_ln_forward_group)(y, mean, rstd, x, wv, bv, D, e, i, (G), (NV));                 \
    }
#if NR_VEC_HSUM4
#define NR_LN_PIPE(NV)                                                                         \
    if (D == (NV) * W) {                                                                       \
        i = FN(nr_ln_forward_pipe)(y, mean, rstd, x, wv, bv, e, i, i1, (NV) == 8 ? 2 : 4,      \
                                   (NV), 1);                                                   \
    }
#else
#define NR_LN_PIPE(NV)                                                                         \
    if (D == (NV) * W) {                                                                       \
        i = FN(nr_ln_forward_pipe)(y, mean, rstd, x, wv, bv, e, i, i1, 4, (NV), (NV) <= 2);    \
    }
#endif
    switch (D / W) {
    case 1:
        NR_LN_PIPE(1);
        NR_LN_FWD(NR_LN_GROUP, 1) break;
    case 2:
        NR_LN_PIPE(2);
        NR_LN_FWD(NR_LN_GROUP, 2) break;
    case 3:
        NR_LN_PIPE(3);
        NR_LN_FWD(NR_LN_GROUP, 3) break;
    case 4:
        NR_LN_PIPE(4);
        NR_LN_FWD(NR_LN_GROUP, 4) break;
#if NR_VEC_BYTES == 64
    case 8:
        NR_LN_PIPE(8);
        NR_LN_FWD(2, 8) break;
#endif
    default:
        if (!NR_VEC_HSUM4 && D % W == 0) {
            i = FN(nr_ln_forward_pipe)(y, mean, rstd, x, wv, bv, e, i, i1, 4, (int)(D / W), 0);
        }
        NR_LN_FWD(NR_LN_GROUP, 0) break;
    }
#undef NR_LN_FWD
#undef NR_LN_PIPE
    for (; i < i1; i++) {
        FN(nr_ln_forward_group)(y, mean, rstd, x, wv, bv, D, e, i, 1, 0);
    }
    return FN(nr_wide_rstd_check)(rstd, i0, i1);
}

/* The lanes' sums of G rows' sums ag and agx of the backward, in hg and hgx: a pair's four in
 * one packed reduction on avx512, the same values as nr_vec_hsum's */
NR_VEC_INLINE void
FN(nr_ln_grad_hsums)(T *hg, T *hgx, const V *ag, const V *agx, const int G)
{
#if NR_VEC_HSUM4
    if (G == 2) {
        const V v[4] = {ag[0], agx[0], ag[1], agx[1]};
        const V h = FN(nr_vec_hsum4)(v);
        hg[0] = h[0];
        hgx[0] = h[4];
        hg[1] = h[8];
        hgx[1] = h[12];
        return;
    }
#endif
    NR_VEC_UNROLL
    for (int r = 0; r < G; r++) {
        hg[r] = FN(nr_vec_hsum)(ag[r]);
        hgx[r] = FN(nr_vec_hsum)(agx[r]);
    }
}

/* G rows of the backward starting at row i; pdw, pdb NULL or this range's partials. The sums
 * run over x - mean with the saved mean, rounded to T; with `corr`, c = mean(x - mean) puts
 * back what the rounding lost, so xhat = ((x - mean) - c) rstd keeps the forward's accuracy
 * at any offset (NR_LN_FAR says when it matters). With `check`, returns NaN, having written
 * nothing, if a row's sums are not finite (else 0). */
NR_VEC_INLINE T
FN(nr_ln_backward_group)(T *restrict dx, T *restrict pdw, T *restrict pdb, const T *restrict dy,
                         const T *restrict x, const T *restrict mean, const T *restrict rstd,
                         const T *restrict wv, int64_t D, int64_t i, const int G,
                         const int check, const int corr, const int NV, V *restrict accw,
                         V *restrict accb)
{
    const int64_t nfull = NV > 0 ? (int64_t)NV * W : D / W * W;
    const T inv_d = (T)1 / (T)D;
    const T *xr[NR_LN_GROUP_B], *gr[NR_LN_GROUP_B];
    T mu[NR_LN_GROUP_B], rs[NR_LN_GROUP_B], mg[NR_LN_GROUP_B], mgx[NR_LN_GROUP_B];
    T cr[NR_LN_GROUP_B];
    V ag[NR_LN_GROUP_B], agx[NR_LN_GROUP_B], ac[NR_LN_GROUP_B];
    for (int r = 0; r < G; r++) {
        xr[r] = x + (i + r) * D;
        gr[r] = dy + (i + r) * D;
        mu[r] = mean[i + r];
        rs[r] = rstd[i + r];
        ag[r] = (V){0};
        agx[r] = (V){0};
        ac[r] = (V){0};
    }
    /* the row sums of g = dy w, of g (x - mean) and of x - mean */
    for (int64_t j = 0; j < nfull; j += W) {
        const V wj = FN(nr_vec_load)(wv + j);
        for (int r = 0; r < G; r++) {
            const V g = FN(nr_vec_load)(gr[r] + j) * wj;
            const V xc = FN(nr_vec_load)(xr[r] + j) - mu[r];
            ag[r] += g;
            agx[r] = FN(nr_vec_fma)(g, xc, agx[r]);
            if (corr) {
                ac[r] += xc;
            }
        }
    }
    T hg[NR_LN_GROUP_B], hgx[NR_LN_GROUP_B];
    FN(nr_ln_grad_hsums)(hg, hgx, ag, agx, G);
    T nonfinite = 0; /* v - v is 0, or NaN when v is Inf or NaN */
    NR_VEC_UNROLL
    for (int r = 0; r < G; r++) {
        T s = 0, sx = 0, sc = 0;
        for (int64_t j = nfull; j < D; j++) {
            const T g = gr[r][j] * wv[j], xc = xr[r][j] - mu[r];
            s += g;
            sx = NR_FMA1(g, xc, sx);
            sc += xc;
        }
        const T sg = hg[r] + s;
        cr[r] = corr ? (FN(nr_vec_hsum)(ac[r]) + sc) * inv_d : (T)0;
        mg[r] = sg * inv_d;
        mgx[r] = ((hgx[r] + sx) - cr[r] * sg) * rs[r] * inv_d; /* mean(g xhat) */
        if (check) {
            nonfinite += (cr[r] - cr[r]) + (mg[r] - mg[r]) + (mgx[r] - mgx[r]);
        }
    }
    if (check && nonfinite != 0) {
        return nonfinite;
    }
    /* dx, and the group's dw += dy xhat, db += dy added to the partials once; from the
     * caches, so it asks for the next group's lines as it goes (as nr_ln_backward_row) */
    for (int64_t j = 0; j < nfull; j += W) {
        const V wj = FN(nr_vec_load)(wv + j);
        V sdw = (V){0}, sdb = (V){0};
        if ((j * (int64_t)sizeof(T)) % 64 == 0) {
            for (int r = 0; r < G; r++) {
                const int64_t k = (i + G + r) * D + j;
                __builtin_prefetch(x + k, 0, 3);
                __builtin_prefetch(dy + k, 0, 3);
                __builtin_prefetch(dx + k, 1, 3);
            }
        }
        for (int r = 0; r < G; r++) {
            const V g = FN(nr_vec_load)(gr[r] + j);
            V xc = FN(nr_vec_load)(xr[r] + j) - mu[r];
            if (corr) {
                xc -= cr[r];
            }
            const V xh = xc * rs[r];
            const V gc = g * wj - mg[r];
            FN(nr_vec_store)(dx + (i + r) * D + j, rs[r] * FN(nr_vec_fmas)(xh, -mgx[r], gc));
            sdw = FN(nr_vec_fma)(g, xh, sdw);
            sdb += g;
        }
        if (accw) {
            accw[j / W] += sdw;
            accb[j / W] += sdb;
        }
        else if (pdw) {
            FN(nr_vec_store)(pdw + j, FN(nr_vec_load)(pdw + j) + sdw);
            FN(nr_vec_store)(pdb + j, FN(nr_vec_load)(pdb + j) + sdb);
        }
    }
    for (int64_t j = nfull; j < D; j++) {
        T sdw = 0, sdb = 0;
        for (int r = 0; r < G; r++) {
            const T g = gr[r][j], xh = ((xr[r][j] - mu[r]) - cr[r]) * rs[r];
            dx[(i + r) * D + j] = rs[r] * NR_FMA1(-xh, mgx[r], g * wv[j] - mg[r]);
            sdw = NR_FMA1(g, xh, sdw);
            sdb += g;
        }
        if (pdw) {
            pdw[j] += sdw;
            pdb[j] += sdb;
        }
    }
    return nonfinite;
}

/* The sums of g = dy w, of g (x - mean) and (with corr) of x - mean of the pair of rows from
 * i (D = NV W), reduced as nr_ln_backward_group reduces them */
NR_VEC_INLINE void
FN(nr_ln_pipe_gsums)(T hg[2], T hgx[2], T hc[2], const T *restrict dy, const T *restrict x,
                     const T *restrict mean, const T *restrict wv, int64_t i, const int NV,
                     const int corr)
{
    const int64_t D = (int64_t)NV * W;
    V ag[2] = {(V){0}, (V){0}}, agx[2] = {(V){0}, (V){0}}, ac[2] = {(V){0}, (V){0}};
    for (int k = 0; k < NV; k++) {
        const V wj = FN(nr_vec_load)(wv + k * W);
        for (int r = 0; r < 2; r++) {
            const V g = FN(nr_vec_load)(dy + (i + r) * D + k * W) * wj;
            const V xc = FN(nr_vec_load)(x + (i + r) * D + k * W) - mean[i + r];
            ag[r] += g;
            agx[r] = FN(nr_vec_fma)(g, xc, agx[r]);
            if (corr) {
                ac[r] += xc;
            }
        }
    }
    for (int r = 0; corr && r < 2; r++) {
        hc[r] = FN(nr_vec_hsum)(ac[r]);
    }
    FN(nr_ln_grad_hsums)(hg, hgx, ag, agx, 2);
}

/* Rows [i, i1) of the backward, with the correction c (corr) or not, in pairs of rows of NV
 * full vectors, each pair's sums placed amid the pair before it (as nr_ln_forward_pipe), the
 * values of nr_ln_backward_group; dw and db into accw and accb, or (NULL) pdw and pdb if
 * not NULL. Returns the first row not done. */
NR_VEC_INLINE int64_t
FN(nr_ln_backward_pipe)(T *restrict dx, T *restrict pdw, T *restrict pdb, const T *restrict dy,
                        const T *restrict x, const T *restrict mean, const T *restrict rstd,
                        const T *restrict wv, int64_t i, int64_t i1, const int NV,
                        const int corr, V *restrict accw, V *restrict accb)
{
    const int64_t D = (int64_t)NV * W;
    const T inv_d = (T)1 / (T)D;
    if (i + 2 > i1) {
        return i;
    }
    T hg[2], hgx[2], hc[2] = {0, 0};
    FN(nr_ln_pipe_gsums)(hg, hgx, hc, dy, x, mean, wv, i, NV, corr);
    for (; i + 2 <= i1; i += 2) {
        T mu[2], rs[2], mg[2], mgx[2], cr[2];
        for (int r = 0; r < 2; r++) { /* as the group's (its tail sums are 0) */
            mu[r] = mean[i + r];
            rs[r] = rstd[i + r];
            const T sg = hg[r] + (T)0;
            cr[r] = corr ? (hc[r] + (T)0) * inv_d : (T)0;
            mg[r] = sg * inv_d;
            mgx[r] = ((hgx[r] + (T)0) - cr[r] * sg) * rs[r] * inv_d;
        }
        if (i + 4 <= i1) {
            FN(nr_ln_pipe_gsums)(hg, hgx, hc, dy, x, mean, wv, i + 2, NV, corr);
        }
        for (int k = 0; k < NV; k++) {
            const V wj = FN(nr_vec_load)(wv + k * W);
            V sdw = (V){0}, sdb = (V){0};
            for (int r = 0; r < 2; r++) {
                const int64_t o = (i + r) * D + k * W;
                const V g = FN(nr_vec_load)(dy + o);
                V xc = FN(nr_vec_load)(x + o) - mu[r];
                if (corr) {
                    xc -= cr[r];
                }
                const V xh = xc * rs[r];
                const V gc = g * wj - mg[r];
                FN(nr_vec_store)(dx + o, rs[r] * FN(nr_vec_fmas)(xh, -mgx[r], gc));
                sdw = FN(nr_vec_fma)(g, xh, sdw);
                sdb += g;
            }
            if (accw) {
                accw[k] += sdw;
                accb[k] += sdb;
            }
            else if (pdw) {
                FN(nr_vec_store)(pdw + k * W, FN(nr_vec_load)(pdw + k * W) + sdw);
                FN(nr_vec_store)(pdb + k * W, FN(nr_vec_load)(pdb + k * W) + sdb);
            }
        }
    }
    return i;
}

/* Row i of the short backward with the weights wv (D values, not NULL) and the partials pdw,
 * pdb (or NULL) given for it, redone wide if its sums in T overflowed (and in T after all if
 * it holds a NaN or Inf, which then propagates as documented). */
static void
FN(nr_ln_backward_short_row_w)(T *restrict dx, T *restrict pdw, T *restrict pdb,
                               const T *restrict dy, const T *restrict x,
                               const T *restrict mean, const T *restrict rstd,
                               const T *restrict wv, int64_t D, int64_t i)
{
    if (FN(nr_ln_backward_group)(dx, pdw, pdb, dy, x, mean, rstd, wv, D, i, 1, 1, 1, 0, NULL,
                                 NULL) != 0 &&
        !FN(nr_ln_backward_wide)(dx, pdw, pdb, dy, x, rstd, wv, D, i)) {
        FN(nr_ln_backward_group)(dx, pdw, pdb, dy, x, mean, rstd, wv, D, i, 1, 0, 1, 0, NULL,
                                 NULL);
    }
}

/* One row of the short backward (w may be NULL: ones) */
static void
FN(nr_ln_backward_short_row)(T *restrict dx, T *restrict pdw, T *restrict pdb,
                             const T *restrict dy, const T *restrict x, const T *restrict mean,
                             const T *restrict rstd, const T *restrict w, int64_t D, int64_t i)
{
    T wv[NR_LN_SHORT_D];
    for (int64_t j = 0; j < D; j++) {
        wv[j] = w ? w[j] : (T)1;
    }
    FN(nr_ln_backward_short_row_w)(dx, pdw, pdb, dy, x, mean, rstd, wv, D, i);
}

/* The backward of the rows [i, i + n) of D values (n <= W / P) in one vector, segments of P
 * lanes (rw: how the rows are moved, where D < P), as nr_ln_backward_group's, each row's
 * sums over its segment; the lanes of dw and db (the positions repeated over the segments)
 * added to accw, accb. Rows and lanes past the rows' values are zeros: not stored, adding 0
 * to accw, accb. With check, returns 0, having written nothing, when a row's sums are not
 * finite; else 1. */
NR_VEC_INLINE int
FN(nr_ln_backward_segment_vec)(T *restrict dx, const T *restrict dy, const T *restrict x,
                               const T *restrict mean, const T *restrict rstd, V wt, int64_t i,
                               const int n, const int corr, const int check, V *restrict accw,
                               V *restrict accb, int64_t D, const FN(nr_rows_t) * rw,
                               const int P)
{
    const T inv_d = (T)1 / (T)D;
    const V xv = FN(nr_vec_get_rows)(x + i * D, n, D, rw, P);
    const V gv = FN(nr_vec_get_rows)(dy + i * D, n, D, rw, P);
    const V mu = FN(nr_vec_load_spread)(mean + i, n, P);
    const V rs = FN(nr_vec_load_spread)(rstd + i, n, P);
    const V g = gv * wt;
    V xc = xv - mu;
    if (D != P) {
        xc = (V)((FN(nr_veci_t))xc & rw->keep);
    }
    const V sg = FN(nr_vec_segsum)(g, P);
    const V sgx = FN(nr_vec_segsum)(g * xc, P);
    const V cr = corr ? FN(nr_vec_segsum)(xc, P) * inv_d : (V){0};
    const V mg = sg * inv_d;
    const V mgx = ((sgx - cr * sg) * rs) * inv_d; /* mean(g xhat) */
    /* v - v is 0, or NaN when v is Inf or NaN (the padding's lanes are 0) */
    if (check && FN(nr_vec_hsum)((cr - cr) + (mg - mg) + (mgx - mgx)) != 0) {
        return 0;
    }
    if (corr) {
        xc -= cr;
    }
    const V xh = xc * rs;
    const V gc = gv * wt - mg;
    FN(nr_vec_put_rows)(dx + i * D, rs * FN(nr_vec_fma)(xh, -mgx, gc), n, D, rw, P);
    *accw = FN(nr_vec_fma)(gv, xh, *accw);
    *accb += gv;
    return 1;
}

/* Rows [i0, i1) of D values in segments of P lanes (nr_seg_lanes; P a constant after
 * inlining, and D where it is P) of the backward (see nr_layernorm_backward_short), W / P
 * rows to a vector: such rows took the group's scalar loops, 5-7x the time an element of
 * rows of W values (Zen 5, avx512). pdw, pdb: as there, or NULL. */
NR_VEC_INLINE void
FN(nr_ln_backward_segments)(T *restrict dx, T *restrict pdw, T *restrict pdb,
                            const T *restrict dy, const T *restrict x, const T *restrict mean,
                            const T *restrict rstd, const T *restrict wv, int64_t i0,
                            int64_t i1, const int corr, int64_t D, const int P)
{
    const int R = W / P;
    V wt, accw = (V){0}, accb = (V){0};
    for (int l = 0; l < W; l++) {
        wt[l] = l % P < D ? wv[l % P] : (T)0;
    }
    FN(nr_rows_t) full, tail;
    if (D != P) {
        full = FN(nr_rows_make)(R, D, P);
    }
    int64_t i = i0;
    for (; i + R <= i1; i += R) {
        FN(nr_ln_backward_segment_vec)(dx, dy, x, mean, rstd, wt, i, R, corr, 0, &accw, &accb,
                                       D, &full, P);
    }
    if (i < i1) {
        const int n = (int)(i1 - i);
        if (D != P) {
            tail = FN(nr_rows_make)(n, D, P);
        }
        FN(nr_ln_backward_segment_vec)(dx, dy, x, mean, rstd, wt, i, n, corr, 0, &accw, &accb,
                                       D, &tail, P);
    }
    for (int64_t j = 0; pdw && j < D; j++) {
        T sw = 0, sb = 0;
        for (int64_t l = j; l < W; l += P) {
            sw += accw[l];
            sb += accb[l];
        }
        pdw[j] += sw;
        pdb[j] += sb;
    }
}

/* nr_layernorm_backward_short's rows in segments of P lanes (nr_seg_lanes); apart, as
 * nr_ln_forward_segment_rows */
static __attribute__((noinline)) void
FN(nr_ln_backward_segment_rows)(T *restrict dx, T *restrict pdw, T *restrict pdb,
                                const T *restrict dy, const T *restrict x,
                                const T *restrict mean, const T *restrict rstd,
                                const T *restrict wv, int64_t D, int64_t i0, int64_t i1,
                                int corr, const int P)
{
#define NR_LN_SEG_BWD(DD, PP)                                                                  \
    FN(nr_ln_backward_segments)(dx, pdw, pdb, dy, x, mean, rstd, wv, i0, i1, corr, DD, PP)
    NR_SEG_DISPATCH(D, P, NR_LN_SEG_BWD);
#undef NR_LN_SEG_BWD
}

/* Rows [i0, i1) of the backward for 0 < D <= NR_LN_SHORT_D, none of them NR_LN_RISKY, with
 * the correction c for all (corr) or none: no test in the loop, where any (of the sums, or a
 * per-group choice) slowed it measurably. */
static void
FN(nr_layernorm_backward_short)(T *restrict dx, T *restrict pdw, T *restrict pdb,
                                const T *restrict dy, const T *restrict x,
                                const T *restrict mean, const T *restrict rstd,
                                const T *restrict w, int64_t D, int64_t i0, int64_t i1,
                                int corr)
{
    T wv[NR_LN_SHORT_D];
    for (int64_t j = 0; j < D; j++) {
        wv[j] = w ? w[j] : (T)1;
    }
    const int P = FN(nr_seg_lanes)(D);
    if (P > 0) {
        FN(nr_ln_backward_segment_rows)(dx, pdw, pdb, dy, x, mean, rstd, wv, D, i0, i1, corr,
                                        P);
        return;
    }
    int64_t i = i0;
    /* rows of 1-4 full vectors: the range's dw, db partials of those vectors in registers
     * (the same additions in the same order as in memory), stored once at the end */
    V accw[NR_LN_KEEP_B], accb[NR_LN_KEEP_B];
    const int nv = pdw && D / W <= NR_LN_KEEP_B ? (int)(D / W) : 0;
    for (int k = 0; k < nv; k++) {
        accw[k] = FN(nr_vec_load)(pdw + k * W);
        accb[k] = FN(nr_vec_load)(pdb + k * W);
    }
/* Pairs of rows in the pipeline (nr_ln_backward_pipe): of 1-4 full vectors (with the
 * correction, 1-2: slower at 4 on a Zen 5); of more on avx2 only (0.75-0.90x the time at
 * D = 64 and 256 there; at D = 128 on avx512 1.02-1.05x, at 128-256 on baseline 1.0-1.1x). */
#define NR_LN_PIPE_B0 (NR_VEC_BYTES == 32)
#define NR_LN_BWD(CORR, NV)                                                                    \
    if ((NV) > 0 ? (!(CORR) || (NV) <= 2) && D == (NV) * W : NR_LN_PIPE_B0 && D % W == 0) {    \
        i = FN(nr_ln_backward_pipe)(dx, pdw, pdb, dy, x, mean, rstd, wv, i, i1,                \
                                    (NV) ? (NV) : (int)(D / W), (CORR), (NV) ? accw : NULL,    \
                                    (NV) ? accb : NULL);                                       \
    }                                                                                          \
    if (NR_LN_EXACT && (NV) > 0 && D == (NV) * W) {                                            \
        for (; i + NR_LN_GROUP_B <= i1; i += NR_LN_GROUP_B) {                                  \
            FN(nr_ln_backward_group)(dx, pdw, pdb, dy, x, mean, rstd, wv, (NV) * W, i,         \
                                     NR_LN_GROUP_B, 0, (CORR), (NV), accw, accb);              \
        }                                                                                      \
    }                                                                                          \
    for (; i + NR_LN_GROUP_B <= i1; i += NR_LN_GROUP_B) {                                      \
        FN(nr_ln_backward_group)(dx, pdw, pdb, dy, x, mean, rstd, wv, D, i, NR_LN_GROUP_B, 0,  \
                                 (CORR), (NV), (NV) ? accw : NULL, (NV) ? accb : NULL);        \
    }                                                                                          \
    for (; i < i1; i++) {                                                                      \
        FN(nr_ln_backward_group)(dx, pdw, pdb, dy, x, mean, rstd, wv, D, i, 1, 0, (CORR),      \
                                 (NV), (NV) ? accw : NULL, (NV) ? accb : NULL);                \
    }
#define NR_LN_BWD_NV(CORR)                                                                     \
    switch (nv) {                                                                              \
    case 1:                                                                                    \
        NR_LN_BWD(CORR, 1) break;                                                              \
    case 2:                                                                                    \
        NR_LN_BWD(CORR, 2) break;                                                              \
    case 3:                                                                                    \
        NR_LN_BWD(CORR, 3) break;                                                              \
    case 4:                                                                                    \
        NR_LN_BWD(CORR, 4) break;                                                              \
    default:                                                                                   \
        NR_LN_BWD(CORR, 0) break;                                                              \
    }
    if (corr) {
        NR_LN_BWD_NV(1)
    }
    else {
        NR_LN_BWD_NV(0)
    }
#undef NR_LN_BWD_NV
#undef NR_LN_BWD
#undef NR_LN_PIPE_B0
    for (int k = 0; k < nv; k++) {
        FN(nr_vec_store)(pdw + k * W, accw[k]);
        FN(nr_vec_store)(pdb + k * W, accb[k]);
    }
}

/* Sums over a long row (D > NR_LN_SHORT_D) for nr_layernorm_forward_rows: of x - sh, and of
 * (x - sh - dm)^2. Four vectors of partial sums are four independent chains: one (as an omp
 * simd reduction compiles) waits an addition's latency per vector. With `yr` (a row of y
 * beyond the caches), the first sum also asks for y's lines: fetched alongside x's, as a
 * copy's are, instead of all at once when the last pass writes them. */
NR_VEC_INLINE T
FN(nr_ln_row_sum)(const T *restrict xr, int64_t D, T sh, T *yr)
{
    const V s = (V){0} + sh;
    V a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    int64_t j = 0;
    for (; j + 4 * W <= D; j += 4 * W) {
        for (int q = 0; yr && q < (int)(4 * W * sizeof(T)); q += 64) {
            __builtin_prefetch((char *)(yr + j) + q, 1, 3);
        }
        a0 += FN(nr_vec_load)(xr + j) - s;
        a1 += FN(nr_vec_load)(xr + j + W) - s;
        a2 += FN(nr_vec_load)(xr + j + 2 * W) - s;
        a3 += FN(nr_vec_load)(xr + j + 3 * W) - s;
    }
    for (; j + W <= D; j += W) {
        a0 += FN(nr_vec_load)(xr + j) - s;
    }
    T sum = FN(nr_vec_hsum)((a0 + a1) + (a2 + a3));
    for (; j < D; j++) {
        sum += xr[j] - sh;
    }
    return sum;
}

NR_VEC_INLINE T
FN(nr_ln_row_sumsq)(const T *restrict xr, int64_t D, T sh, T dm)
{
    const V s = (V){0} + sh, m = (V){0} + dm;
    V a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    int64_t j = 0;
    for (; j + 4 * W <= D; j += 4 * W) {
        const V d0 = (FN(nr_vec_load)(xr + j) - s) - m,
                d1 = (FN(nr_vec_load)(xr + j + W) - s) - m;
        const V d2 = (FN(nr_vec_load)(xr + j + 2 * W) - s) - m;
        const V d3 = (FN(nr_vec_load)(xr + j + 3 * W) - s) - m;
        a0 = FN(nr_vec_fma)(d0, d0, a0);
        a1 = FN(nr_vec_fma)(d1, d1, a1);
        a2 = FN(nr_vec_fma)(d2, d2, a2);
        a3 = FN(nr_vec_fma)(d3, d3, a3);
    }
    for (; j + W <= D; j += W) {
        const V d = (FN(nr_vec_load)(xr + j) - s) - m;
        a0 = FN(nr_vec_fma)(d, d, a0);
    }
    T sum = FN(nr_vec_hsum)((a0 + a1) + (a2 + a3));
    for (; j < D; j++) {
        const T d = (xr[j] - sh) - dm;
        sum += d * d;
    }
    return sum;
}

/* nr_layernorm_backward_cyclic's rows of D values in segments of P lanes (as
 * nr_ln_backward_segments; those rows went one at a time, 5-20x the time an element of rows
 * of 32 values); a vector whose sums are not finite goes a row at a time (each alone in the
 * segments, the same bits, or checked as before). NG: the groups the rows cycle through. */
NR_VEC_INLINE void
FN(nr_ln_backward_cyclic_segments)(T *dx, T *pdw, T *pdb, const T *dy, const T *x,
                                   const T *mean, const T *rstd, const T *w, int64_t NG,
                                   int64_t i0, int64_t i1, int64_t D, const int P)
{
    const int R = W / P;
    FN(nr_rows_t) full, rw1, part;
    if (D != P) {
        full = FN(nr_rows_make)(R, D, P);
        rw1 = FN(nr_rows_make)(1, D, P);
    }
    for (int64_t i = i0; i < i1; i += R) {
        const int n = i + R <= i1 ? R : (int)(i1 - i);
        const int64_t g = i % NG;
        const int flat = g + n <= NG; /* the rows' weights and partials side by side */
        if (D != P && n < R) {
            part = FN(nr_rows_make)(n, D, P);
        }
        const FN(nr_rows_t) *rw = n == R ? &full : &part;
        V wt = (V){0}, aw = (V){0}, ab = (V){0};
        if (flat && n == R && D == P) {
            wt = FN(nr_vec_load)(w + g * D);
        }
        else if (flat && D != P) {
            wt = FN(nr_vec_load_rows)(w + g * D, rw, P);
        }
        else {
            for (int l = 0; l < W; l++) {
                wt[l] = l / P < n && l % P < D ? w[((g + l / P) % NG) * D + l % P] : (T)0;
            }
        }
        /* a whole vector's copies of a constant size (as loads, not through memory) */
        const int ok = n == R ? FN(nr_ln_backward_segment_vec)(dx, dy, x, mean, rstd, wt, i, R,
                                                               1, 1, &aw, &ab, D, &full, P)
                              : FN(nr_ln_backward_segment_vec)(dx, dy, x, mean, rstd, wt, i, n,
                                                               1, 1, &aw, &ab, D, &part, P);
        if (ok) {
            if (pdw && flat && n == R && D == P) {
                FN(nr_vec_store)(pdw + g * D, FN(nr_vec_load)(pdw + g * D) + aw);
                FN(nr_vec_store)(pdb + g * D, FN(nr_vec_load)(pdb + g * D) + ab);
            }
            else if (pdw && flat && D != P) {
                FN(nr_vec_store_rows)(pdw + g * D,
                                      FN(nr_vec_load_rows)(pdw + g * D, rw, P) + aw, rw, P);
                FN(nr_vec_store_rows)(pdb + g * D,
                                      FN(nr_vec_load_rows)(pdb + g * D, rw, P) + ab, rw, P);
            }
            else if (pdw) {
                for (int l = 0; l < W; l++) {
                    if (l / P < n && l % P < D) {
                        const int64_t q = ((g + l / P) % NG) * D + l % P;
                        pdw[q] += aw[l];
                        pdb[q] += ab[l];
                    }
                }
            }
            continue;
        }
        for (int r = 0; r < n; r++) {
            const int64_t o = ((i + r) % NG) * D;
            V wr = (V){0}, aw1 = (V){0}, ab1 = (V){0};
            for (int64_t l = 0; l < D; l++) {
                wr[l] = w[o + l];
            }
            if (FN(nr_ln_backward_segment_vec)(dx, dy, x, mean, rstd, wr, i + r, 1, 1, 1, &aw1,
                                               &ab1, D, &rw1, P)) {
                for (int64_t l = 0; pdw && l < D; l++) {
                    pdw[o + l] += aw1[l];
                    pdb[o + l] += ab1[l];
                }
            }
            else {
                FN(nr_ln_backward_short_row_w)(dx, pdw ? pdw + o : NULL, pdb ? pdb + o : NULL,
                                               dy, x, mean, rstd, w + o, D, i + r);
            }
        }
    }
}

/* nr_layernorm_backward_cyclic's rows [i0, i1) through the segments when D has them
 * (nr_seg_lanes); returns whether it took them */
static int
FN(nr_ln_backward_cyclic_short)(T *dx, T *pdw, T *pdb, const T *dy, const T *x, const T *mean,
                                const T *rstd, const T *w, int64_t D, int64_t NG, int64_t i0,
                                int64_t i1)
{
    const int P = FN(nr_seg_lanes)(D);
    if (P == 0) {
        return 0;
    }
#define NR_LN_SEG_CYCLIC(DD, PP)                                                               \
    FN(nr_ln_backward_cyclic_segments)(dx, pdw, pdb, dy, x, mean, rstd, w, NG, i0, i1, DD, PP)
    NR_SEG_DISPATCH(D, P, NR_LN_SEG_CYCLIC);
#undef NR_LN_SEG_CYCLIC
    return 1;
}

#undef V
#undef W
#endif /* NR_ROW_VEC */

/* Rows [i0, i1) of the forward, in tiles of up to 16 rows that stay in cache: each pass runs
 * over every row of the tile before the next pass starts, so the rows' reductions are
 * independent work the CPU overlaps (one row at a time, the latency chain sum -> mean ->
 * sum of squares -> sqrt -> output dominated small D), and the square roots of a tile
 * vectorize. Returns whether a row needs nr_ln_forward_redo. */
static int
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
        return 0;
    }
    /* y beyond the caches (x and y past 2 MiB a thread, an L2 here): see nr_ln_row_sum */
    const int uncached = (i1 - i0) * D * (int64_t)sizeof(T) > ((int64_t)1 << 20);
    /* rows per tile: the tile (R D values) within about 64 KiB */
    const int64_t R =
        NR_MAX((int64_t)1, NR_MIN((int64_t)TILE, (int64_t)(65536 / sizeof(T)) / D));
    T shift[TILE], dmean[TILE], var[TILE], r[TILE];
    for (int64_t t0 = i0; t0 < i1; t0 += R) {
        const int64_t nr = NR_MIN(R, i1 - t0);
        /* Two passes over each row while it is in cache, both shifted by the row's first
         * element: x - shift is exact for values near the shift, so a large common offset
         * (mean 1e6 in float32) costs no accuracy, unlike E[x^2] - E[x]^2. */
        for (int64_t k = 0; k < nr; k++) {
            const T *xr = x + (t0 + k) * D;
            const T sh = xr[0];
#ifdef NR_ROW_VEC
            const T sum = FN(nr_ln_row_sum)(xr, D, sh, uncached ? y + (t0 + k) * D : NULL);
#else
            T sum = 0;
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < D; j++) {
                sum += xr[j] - sh;
            }
#endif
            shift[k] = sh;
            dmean[k] = sum / (T)D; /* mean - shift */
        }
        for (int64_t k = 0; k < nr; k++) {
            const T *xr = x + (t0 + k) * D;
            const T sh = shift[k], dm = dmean[k];
#ifdef NR_ROW_VEC
            const T sumsq = FN(nr_ln_row_sumsq)(xr, D, sh, dm);
#else
            T sumsq = 0;
#pragma omp simd reduction(+ : sumsq)
            for (int64_t j = 0; j < D; j++) {
                const T d = (xr[j] - sh) - dm;
                sumsq += d * d;
            }
#endif
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
                    yr[j] = NR_FMA1(((xr[j] - sh) - dm) * rk, w[j], b[j]);
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
                    yr[j] = NR_FMA1((xr[j] - sh) - dm, rk, b[j]);
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
    return FN(nr_wide_rstd_check)(rstd, i0, i1);
}

/* x (M, D), w (D) or NULL, b (D) or NULL -> y (M, D), mean (M), rstd (M) */
void
FN(nr_layernorm_forward)(T *y, T *mean, T *rstd, const T *x, const T *w, const T *b, int64_t M,
                         int64_t D, double eps)
{
    int nt = nr_threads_for((size_t)(M * D) * 2 * sizeof(T));
#ifdef NR_ROW_VEC
    if (D > 0 && D <= NR_LN_SHORT_D) {
        const int P = FN(nr_seg_lanes)(D); /* rows below a vector's width: several a vector */
        NR_SPLIT(
            nt, M, NR_LN_GROUP,
            if (P > 0
                    ? FN(nr_ln_forward_segment_rows)(y, mean, rstd, x, w, b, D, eps, i0, i1, P)
                    : FN(nr_layernorm_forward_short)(y, mean, rstd, x, w, b, D, eps, i0, i1)) {
                FN(nr_ln_forward_redo)(y, mean, rstd, x, w, b, D, eps, i0, i1);
            });
        return;
    }
#endif
    NR_SPLIT(
        nt, M, 1, if (FN(nr_layernorm_forward_rows)(y, mean, rstd, x, w, b, D, eps, i0, i1)) {
            FN(nr_ln_forward_redo)(y, mean, rstd, x, w, b, D, eps, i0, i1);
        });
}

/* elements between two threads' partials: 2 D rounded up to whole 64-byte lines */
static int64_t
FN(nr_ln_partials_stride)(int64_t D)
{
    const int64_t per_line = 64 / (int64_t)sizeof(T);
    return (2 * D + per_line - 1) / per_line * per_line;
}

/* Per-thread partial sums of dw and db: 2 D values of T for each thread. */
size_t
FN(nr_layernorm_backward_workspace)(int64_t D, int nthreads)
{
    /* each thread's 2 D values padded to whole 64-byte lines, plus room to align the start:
     * threads never write to the same cache line */
    return (size_t)nthreads * FN(nr_ln_partials_stride)(D) * sizeof(T) + 64;
}

#ifndef NR_LN_PF
#define NR_LN_PF 64 /* elements of the backward's second pass between prefetches */
#endif

/* Row i of the backward for any D (see nr_ln_backward_group for c and `corr`); pdw, pdb (D)
 * accumulate this range's dw, db (or NULL). */
static inline __attribute__((always_inline)) void
FN(nr_ln_backward_row)(T *restrict dx, T *restrict pdw, T *restrict pdb, const T *restrict dy,
                       const T *restrict x, const T *restrict mean, const T *restrict rstd,
                       const T *restrict w, int64_t D, int64_t i, const int corr)
{
    const T *xr = x + i * D, *dyr = dy + i * D;
    T *dxr = dx + i * D;
    const T r = rstd[i];
    T mu = mean[i], sum_g = 0, sum_g_xc = 0, sum_xc = 0;
    if (w) {
#pragma omp simd reduction(+ : sum_g, sum_g_xc, sum_xc)
        for (int64_t j = 0; j < D; j++) {
            const T g = dyr[j] * w[j], xc = xr[j] - mu;
            sum_g += g;
            sum_g_xc += g * xc;
            if (corr) {
                sum_xc += xc;
            }
        }
    }
    else {
#pragma omp simd reduction(+ : sum_g, sum_g_xc, sum_xc)
        for (int64_t j = 0; j < D; j++) {
            const T xc = xr[j] - mu;
            sum_g += dyr[j];
            sum_g_xc += dyr[j] * xc;
            if (corr) {
                sum_xc += xc;
            }
        }
    }
    const T c = sum_xc / (T)D, mean_g = sum_g / (T)D;
    const T mean_g_xhat = (corr ? sum_g_xc - c * sum_g : sum_g_xc) * r / (T)D;
    if (!(isfinite(c) && isfinite(mean_g) && isfinite(mean_g_xhat)) &&
        FN(nr_ln_backward_wide)(dx, pdw, pdb, dy, x, rstd, w, D, i)) {
        return;
    }
    /* xhat = ((x - mean) - c) r, written (x - mean) r - c r: one operation more than the
     * plain xhat only with `corr` */
    const T cr = corr ? c * r : (T)0, nq = -mean_g_xhat;
#define NR_LN_XHAT(j) (corr ? (xr[j] - mu) * r - cr : (xr[j] - mu) * r)
    /* dx, and in the same pass dw += dy xhat, db += dy (summed over rows). This pass runs
     * from the caches, so it asks for the next row's lines (x, dy, and dx's for writing) a
     * piece at a time as it goes: memory keeps streaming while it computes. */
#define NR_LN_PASS2(BODY)                                                                      \
    for (int64_t j0 = 0; j0 < D; j0 += NR_LN_PF) {                                             \
        const int64_t j1 = NR_MIN(D, j0 + NR_LN_PF);                                           \
        for (int64_t q = 0; q < NR_LN_PF * (int64_t)sizeof(T); q += 64) {                      \
            __builtin_prefetch((const char *)(xr + D + j0) + q, 0, 3);                         \
            __builtin_prefetch((const char *)(dyr + D + j0) + q, 0, 3);                        \
            __builtin_prefetch((char *)(dxr + D + j0) + q, 1, 3);                              \
        }                                                                                      \
        _Pragma("omp simd") for (int64_t j = j0; j < j1; j++)                                  \
        {                                                                                      \
            BODY;                                                                              \
        }                                                                                      \
    }
    if (w && pdw) {
        NR_LN_PASS2(const T g = dyr[j]; const T xhat = NR_LN_XHAT(j);
                    dxr[j] = r * NR_FMA1(xhat, nq, g * w[j] - mean_g);
                    pdw[j] = NR_FMA1(g, xhat, pdw[j]); pdb[j] += g);
    }
    else if (pdw) {
        NR_LN_PASS2(const T g = dyr[j]; const T xhat = NR_LN_XHAT(j);
                    dxr[j] = r * NR_FMA1(xhat, nq, g - mean_g);
                    pdw[j] = NR_FMA1(g, xhat, pdw[j]); pdb[j] += g);
    }
    else if (w) {
        NR_LN_PASS2(const T xhat = NR_LN_XHAT(j);
                    dxr[j] = r * NR_FMA1(xhat, nq, dyr[j] * w[j] - mean_g));
    }
    else {
        NR_LN_PASS2(const T xhat = NR_LN_XHAT(j);
                    dxr[j] = r * NR_FMA1(xhat, nq, dyr[j] - mean_g));
    }
#undef NR_LN_PASS2
#undef NR_LN_XHAT
}

/* Rows [i0, i1) of the backward; pdw, pdb (D) accumulate this range's dw, db (or NULL). */
static void
FN(nr_layernorm_backward_rows)(T *restrict dx, T *restrict pdw, T *restrict pdb,
                               const T *restrict dy, const T *restrict x,
                               const T *restrict mean, const T *restrict rstd,
                               const T *restrict w, int64_t D, int64_t i0, int64_t i1)
{
#ifdef NR_ROW_VEC
    if (D > 0 && D <= NR_LN_SHORT_D) {
        /* one look at the saved statistics picks the loop: rows far from 0 (the correction),
         * rows that may overflow (one at a time, checked) */
        int far = 0, risky = 0;
#pragma omp simd reduction(| : far, risky)
        for (int64_t i = i0; i < i1; i++) {
            far |= NR_LN_FAR(mean[i], rstd[i]);
            risky |= NR_LN_RISKY(rstd[i]);
        }
        if (!risky) {
            FN(nr_layernorm_backward_short)(dx, pdw, pdb, dy, x, mean, rstd, w, D, i0, i1, far);
            return;
        }
        for (int64_t i = i0; i < i1; i++) {
            if (NR_LN_RISKY(rstd[i])) {
                FN(nr_ln_backward_short_row)(dx, pdw, pdb, dy, x, mean, rstd, w, D, i);
            }
            else {
                FN(nr_layernorm_backward_short)(dx, pdw, pdb, dy, x, mean, rstd, w, D, i, i + 1,
                                                NR_LN_FAR(mean[i], rstd[i]));
            }
        }
        return;
    }
#endif
    for (int64_t i = i0; i < i1; i++) {
        if (NR_LN_FAR(mean[i], rstd[i])) {
            FN(nr_ln_backward_row)(dx, pdw, pdb, dy, x, mean, rstd, w, D, i, 1);
        }
        else {
            FN(nr_ln_backward_row)(dx, pdw, pdb, dy, x, mean, rstd, w, D, i, 0);
        }
    }
}

/* Rows [i0, i1) of a backward whose row i takes the D weights w + (i % P) D (not NULL) and
 * adds dy xhat, dy to pdw, pdb + (i % P) D (or NULL): GroupNorm's (n, g) rows of at most
 * NR_LN_SHORT_D values, P = G, w each channel's weight spread over its positions. Each row
 * as the short path's checked single rows (as the long rows' path without the vectors). */
void
FN(nr_layernorm_backward_cyclic)(T *dx, T *pdw, T *pdb, const T *dy, const T *x, const T *mean,
                                 const T *rstd, const T *w, int64_t D, int64_t P, int64_t i0,
                                 int64_t i1)
{
#ifdef NR_ROW_VEC
    if (FN(nr_ln_backward_cyclic_short)(dx, pdw, pdb, dy, x, mean, rstd, w, D, P, i0, i1)) {
        return;
    }
#endif
    for (int64_t i = i0; i < i1; i++) {
        const int64_t o = (i % P) * D;
        T *dwr = pdw ? pdw + o : NULL, *dbr = pdb ? pdb + o : NULL;
#ifdef NR_ROW_VEC
        if (D > 0 && D <= NR_LN_SHORT_D) {
            FN(nr_ln_backward_short_row_w)(dx, dwr, dbr, dy, x, mean, rstd, w + o, D, i);
            continue;
        }
#endif
        FN(nr_ln_backward_row)(dx, dwr, dbr, dy, x, mean, rstd, w + o, D, i,
                               NR_LN_FAR(mean[i], rstd[i]));
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
    T *partials = (T *)(((uintptr_t)workspace + 63) & ~(uintptr_t)63);
    const int64_t width = want_params ? 2 * D : 0;
    NR_PARTIAL_SUMS(nt, M, T, partials, width, FN(nr_ln_partials_stride)(D),
                    FN(nr_layernorm_backward_rows)(dx, want_params ? acc : NULL,
                                                   want_params ? acc + D : NULL, dy, x, mean,
                                                   rstd, w, D, i0, i1));
    for (int64_t j = 0; want_params && j < D; j++) {
        if (dw) {
            dw[j] += partials[j];
        }
        if (db) {
            db[j] += partials[D + j];
        }
    }
}
