/* BatchNorm kernels for one element type T (see batchnorm.c). */

#ifndef NR_BN_BLOCK_ROWS
/* (N, C) data of at most this many rows and at least this many channels (columns) a thread
 * runs as blocks of channels (nr_bn_channel_blocks) */
#define NR_BN_BLOCK_ROWS 192
#define NR_BN_BLOCK_MIN_C 64
#endif

#ifndef NR_BN_FOLD_COLUMNS
#define NR_BN_FOLD_COLUMNS
/* Column sums (NS sums of C L columns each, from p[0]) added up by channel into p[0 .. NS C)
 * in place (each sum's channels written below the columns still to be read). */
static inline void
nr_bn_fold_columns(double *p, int NS, int64_t C, int64_t L)
{
    for (int s = 0; s < NS; s++) {
        for (int64_t c = 0; c < C; c++) {
            const double *q = p + (s * C + c) * L;
            double t = 0;
            for (int64_t l = 0; l < L; l++) {
                t += q[l];
            }
            p[s * C + c] = t;
        }
    }
}
#endif

/* dst[c L + l] = src[c] for the C L columns of a small feature map */
static void
FN(nr_bn_spread)(T *restrict dst, const T *restrict src, int64_t C, int64_t L)
{
    for (int64_t c = 0; c < C; c++) {
        for (int64_t l = 0; l < L; l++) {
            dst[c * L + l] = src[c];
        }
    }
}

/* The bytes of the columns' coefficients (four arrays of C L values of T) that the apply
 * passes take beyond their 3 C values of T, for data that runs as columns. */
static inline size_t
FN(nr_bn_columns_bytes)(int64_t C, int64_t L)
{
    return (size_t)nr_bn_columns(C, L) * 4 * sizeof(T);
}

/* Per-thread partial sums (3 C doubles a thread, 3 C L for data that runs as columns), 8 C
 * doubles of per-channel values and the columns' coefficients. */
size_t
FN(nr_batchnorm_workspace)(int64_t C, int64_t L, int nthreads)
{
    const int64_t cols = nr_bn_columns(C, L);
    return ((size_t)nthreads * 3 * (size_t)(cols ? cols : C) + 8 * (size_t)C) * sizeof(double) +
           FN(nr_bn_columns_bytes)(C, L);
}

/* The statistics: sums of d and d^2, d = x - shift (ref, a value of T near the channel's
 * mean), in T eight rows at a time (nr_bn_stats_ok tells when that is not exact enough), and
 * the same in double throughout, what a channel it refuses takes */
NR_DEFINE_CHANNEL_SUMS(FN(nr_bn_stat_sums), 2, T, T, u[k] - ref[c],
                       (u[k] - ref[c]) * (u[k] - ref[c]), 0)
NR_DEFINE_CHANNEL_SUMS(FN(nr_bn_stat_sums_wide), 2, double, double, (double)u[k] - ref[c],
                       ((double)u[k] - ref[c]) * ((double)u[k] - ref[c]), 0)
/* The backward: sums of dy (v), of dy xhat0 and, for the mean's correction (a mean far from 0:
 * nr_bn_grad_sums3), of xhat0 = (x - mu) rstd (ref[c] = mu, ref[C + c] = rstd, the saved
 * statistics), in T eight rows at a time for (N, C) data: xhat0 is of the order of 1, so the
 * products neither underflow nor overflow unless dy does, and the correction mean(xhat0)
 * (mu's rounding: |mu| rstd 2^-24 at most in float32) comes out within a few rounding units,
 * xhat as exact as the forward's. A channel whose sums are not finite is summed again in
 * double (nr_bn_grad_sums_wide). Where the sums run along L: dy, dy d and d, d = x - mu, in
 * double (converting each value once costs less than converting two). */
NR_DEFINE_CHANNEL_SUMS(FN(nr_bn_grad_sums2), 2, T, T, v[k],
                       v[k] * ((u[k] - ref[c]) * ref[C + c]), 0)
NR_DEFINE_CHANNEL_SUMS(FN(nr_bn_grad_sums2_wide), 2, T, double, (double)v[k],
                       (double)v[k] * (double)(u[k] - ref[c]), 0)
NR_DEFINE_CHANNEL_SUMS(FN(nr_bn_grad_sums3), 3, T, T, v[k],
                       v[k] * ((u[k] - ref[c]) * ref[C + c]), (u[k] - ref[c]) * ref[C + c])
NR_DEFINE_CHANNEL_SUMS(FN(nr_bn_grad_sums3_wide), 3, T, double, (double)v[k],
                       (double)v[k] * (double)(u[k] - ref[c]), (double)(u[k] - ref[c]))

/* Whether channel sums s1 = sum(d), s2 = sum(d^2) over `count` values, added in T eight at
 * a time (nr_bn_stat_sums), give the variance within 99 u of itself (u = T's rounding unit):
 * their error is within 6 u s2 and 4 u sum(|d|) (a rounding for d, one for d^2, three levels
 * of pairwise sums), so the variance's within 14 u (1 + r) with
 * r = mean(d)^2 / var, asked here to be at most 6 (the shift near the mean makes r small;
 * values sorted along the batch can make it large). Also refused: sums that are not finite
 * (d^2 overflowed, or NaN and Inf, which the double sums give as they are), and mean(d^2)
 * below 2^-100, where squares in T may have lost digits to underflow, unless eps >= 2^-76
 * outweighs such a variance. */
static inline int
FN(nr_bn_stats_ok)(double s1, double s2, double count, double eps)
{
    const double dm = s1 / count, m2 = s2 / count;
    return isfinite(s1) && isfinite(s2) && dm * dm <= 6 * (m2 - dm * dm) &&
           (m2 >= 0x1p-100 || eps >= 0x1p-76);
}

/* Channel c's sums of dy, dy (x - mu) and x - mu in double, for a channel whose sums were not
 * finite (x - mu beyond T's range, or dy xhat summed in T beyond it). */
static void
FN(nr_bn_grad_sums_wide)(double s[3], const T *dy, const T *x, int64_t c, double mu, int64_t N,
                         int64_t L, int64_t ld)
{
    s[0] = s[1] = s[2] = 0;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t l = 0; l < L; l++) {
            const int64_t k = n * ld + c * L + l;
            const double d = (double)x[k] - mu;
            s[0] += (double)dy[k];
            s[1] += (double)dy[k] * d;
            s[2] += d;
        }
    }
}

#ifndef NR_BN_MIN_RSTD
/* below it, x - mean might overflow T: |x - mean| <= sqrt(n var) < 2^32 / rstd (n < 2^64
 * values), and the value subtracted first (sub1, mu) is as close to the mean */
#define NR_BN_MIN_RSTD (0x1p34 / NR_T_MAX)
#endif

#ifndef NR_BN_BACKWARDS
/* Whether the second pass over rows [n0, n1) (of C values a row) walks them last to first:
 * the rows the first pass read last are the likeliest still in cache. For up to 4 MiB of T
 * a thread (8192 x 64 and 128 float32: 0.91-0.97x the time); beyond, backwards was slower
 * (8192 x 4096: 1.05x) and forwards no worse. */
#define NR_BN_BACKWARDS(rows, C) ((rows) * (C) * (int64_t)sizeof(T) <= ((int64_t)4 << 20))
#endif

/* NR_BN_SMALL_L_SWITCH(L, LOOP): LOOP(L) with L a constant for the small L of feature maps
 * (2x1 to 4x4) the per-element passes meet, LOOP(L) as it is otherwise */
#ifndef NR_BN_SMALL_L_SWITCH
#define NR_BN_SMALL_L_SWITCH(L, LOOP)                                                          \
    switch (L) {                                                                               \
    case 2:                                                                                    \
        LOOP(2) break;                                                                         \
    case 4:                                                                                    \
        LOOP(4) break;                                                                         \
    case 9:                                                                                    \
        LOOP(9) break;                                                                         \
    case 16:                                                                                   \
        LOOP(16) break;                                                                        \
    default:                                                                                   \
        LOOP(L) break;                                                                         \
    }
#endif

/* Rows of at most this many bytes go four at a time through the per-channel loops below: a
 * row of 64 floats is four vectors, and the loop's setup per row (and the coefficients'
 * loads) cost more than its arithmetic. The same values either way. */
#define NR_BN_QUAD_BYTES 2048

/* The first row of step k through [n0, n1) in steps of `step` rows, from the top when `back` */
static inline int64_t
FN(nr_bn_step_row)(int64_t k, int64_t n0, int64_t n1, int64_t step, int back)
{
    return back ? n1 - step * (k + 1) : n0 + step * k;
}

/* (N, C) rows [n0, n1), ld apart: y = ((x - sub1) - sub2) * scale + shift per channel (the
 * rows in the order NR_BN_BACKWARDS says; short rows four at a time, the rest one by one). */
static void
FN(nr_bn_apply_rows)(T *restrict y, const T *restrict x, const T *restrict sub1,
                     const T *restrict sub2, const T *restrict scale, const T *restrict shift,
                     int64_t n0, int64_t n1, int64_t C, int64_t ld)
{
    const int back = NR_BN_BACKWARDS(n1 - n0, C);
    const int64_t quads = C * (int64_t)sizeof(T) <= NR_BN_QUAD_BYTES ? (n1 - n0) / 4 : 0;
    for (int64_t k = 0; k < quads; k++) {
        const int64_t n = FN(nr_bn_step_row)(k, n0, n1, 4, back);
        const T *restrict x0 = x + n * ld;
        T *restrict y0 = y + n * ld;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) {
            const T s1 = sub1[c], s2 = sub2[c], a = scale[c], h = shift[c];
            y0[c] = NR_FMA1((x0[c] - s1) - s2, a, h);
            y0[ld + c] = NR_FMA1((x0[ld + c] - s1) - s2, a, h);
            y0[2 * ld + c] = NR_FMA1((x0[2 * ld + c] - s1) - s2, a, h);
            y0[3 * ld + c] = NR_FMA1((x0[3 * ld + c] - s1) - s2, a, h);
        }
    }
    const int64_t m0 = back ? n0 : n0 + 4 * quads, m1 = back ? n1 - 4 * quads : n1;
    for (int64_t k = 0; k < m1 - m0; k++) {
        const int64_t n = FN(nr_bn_step_row)(k, m0, m1, 1, back);
        const T *xr = x + n * ld;
        T *yr = y + n * ld;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) {
            yr[c] = NR_FMA1((xr[c] - sub1[c]) - sub2[c], scale[c], shift[c]);
        }
    }
}

/* (N, C) rows [n0, n1), ld apart: dx = k_dy dy + k_xc (x - mean) + k_const per channel; x
 * NULL (fixed statistics): dx = k_dy dy (the rows in the order NR_BN_BACKWARDS says; short
 * rows four at a time, the rest one by one). */
static void
FN(nr_bn_dx_rows)(T *restrict dx, const T *restrict dy, const T *restrict x,
                  const T *restrict mean, const T *restrict k_dy, const T *restrict k_xc,
                  const T *restrict k_const, int64_t n0, int64_t n1, int64_t C, int64_t ld)
{
    const int back = NR_BN_BACKWARDS(n1 - n0, C);
    const int64_t quads = x && C * (int64_t)sizeof(T) <= NR_BN_QUAD_BYTES ? (n1 - n0) / 4 : 0;
    for (int64_t k = 0; k < quads; k++) {
        const int64_t n = FN(nr_bn_step_row)(k, n0, n1, 4, back);
        const T *restrict g = dy + n * ld, *restrict x0 = x + n * ld;
        T *restrict d = dx + n * ld;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) {
            const T a = k_dy[c], m = mean[c], kx = k_xc[c], k0 = k_const[c];
            d[c] = NR_FMA1(a, g[c], NR_FMA1(kx, x0[c] - m, k0));
            d[ld + c] = NR_FMA1(a, g[ld + c], NR_FMA1(kx, x0[ld + c] - m, k0));
            d[2 * ld + c] = NR_FMA1(a, g[2 * ld + c], NR_FMA1(kx, x0[2 * ld + c] - m, k0));
            d[3 * ld + c] = NR_FMA1(a, g[3 * ld + c], NR_FMA1(kx, x0[3 * ld + c] - m, k0));
        }
    }
    const int64_t m0 = back ? n0 : n0 + 4 * quads, m1 = back ? n1 - 4 * quads : n1;
    for (int64_t k = 0; k < m1 - m0; k++) {
        const int64_t n = FN(nr_bn_step_row)(k, m0, m1, 1, back);
        const T *dyr = dy + n * ld;
        T *dxr = dx + n * ld;
        if (!x) {
#pragma omp simd
            for (int64_t c = 0; c < C; c++) {
                dxr[c] = k_dy[c] * dyr[c];
            }
            continue;
        }
        const T *xr = x + n * ld;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) {
            dxr[c] = NR_FMA1(k_dy[c], dyr[c], NR_FMA1(k_xc[c], xr[c] - mean[c], k_const[c]));
        }
    }
}

/* y[k] = (x[k] - sub1[c] - sub2[c]) * scale[c] + shift[c] for every element, all T. */
static void
FN(nr_bn_apply)(T *y, const T *x, const T *sub1, const T *sub2, const T *scale, const T *shift,
                int64_t N, int64_t C, int64_t L, int64_t ld, int nt)
{
    if (L == 1) {
        NR_SPLIT(nt, N, 1, FN(nr_bn_apply_rows)(y, x, sub1, sub2, scale, shift, i0, i1, C, ld));
        return;
    }
    /* each (n, c) run of L values; small L a constant (NR_BN_SMALL_L_SWITCH): the run is a
     * few vector operations rather than a loop with its setup */
#define NR_BN_APPLY_L(LL)                                                                      \
    _Pragma("omp parallel for num_threads(nt) schedule(static)") for (int64_t n = 0; n < N;    \
                                                                      n++)                     \
    {                                                                                          \
        for (int64_t c = 0; c < C; c++) {                                                      \
            const T *xr = x + n * ld + c * (LL);                                               \
            T *yr = y + n * ld + c * (LL);                                                     \
            const T s1 = sub1[c], s2 = sub2[c], sc = scale[c], sh = shift[c];                  \
            _Pragma("omp simd") for (int64_t l = 0; l < (LL); l++)                             \
            {                                                                                  \
                yr[l] = NR_FMA1((xr[l] - s1) - s2, sc, sh);                                    \
            }                                                                                  \
        }                                                                                      \
    }
    NR_BN_SMALL_L_SWITCH(L, NR_BN_APPLY_L)
#undef NR_BN_APPLY_L
}

/* A channel needs the double path: x - mean may overflow T (rstd below NR_BN_MIN_RSTD, or
 * NaN) or a coefficient k of the T path is not 0 or a normal value of T. */
static inline int
FN(nr_bn_wide)(double rstd, double k)
{
    return !(rstd >= NR_BN_MIN_RSTD && NR_FITS(k));
}

/* Channel c of the forward in double, for values or coefficients beyond T's range (halving
 * keeps x - mean finite): y = (x - mean) rstd w + b. */
static void
FN(nr_bn_forward_wide)(T *y, const T *x, int64_t c, double mean, double r, const T *w,
                       const T *b, int64_t N, int64_t L, int64_t ld)
{
    const double hm = 0.5 * mean, r2 = 2 * r, wc = w ? (double)w[c] : 1.0;
    const double bc = b ? (double)b[c] : 0.0;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t l = 0; l < L; l++) {
            const int64_t k = n * ld + c * L + l;
            y[k] = (T)((0.5 * (double)x[k] - hm) * r2 * wc + bc);
        }
    }
}

/* x (N, C, L), per channel sub1 (T, a value near the mean), mean and rstd (double), w, b (C)
 * or NULL -> y = (x - mean) rstd w + b, as ((x - sub1) - (mean - sub1)) (w rstd) + b in T:
 * x - sub1 is exact near the mean, so a large offset costs no accuracy. A channel whose
 * values or coefficients leave T's range is redone in double. Workspace: 3 C values of T,
 * then nr_bn_columns_bytes(C, L). Rows (the n of x) ld elements apart. */
static void
FN(nr_bn_apply_block)(T *y, const T *x, const T *sub1, const double *mean, const double *rstd,
                      const T *w, const T *b, int64_t N, int64_t C, int64_t L, int64_t ld,
                      void *workspace, int nt)
{
    T *sub2 = (T *)workspace, *scale = sub2 + C, *shift = scale + C;
    int wide = 0;
#pragma omp simd reduction(| : wide)
    for (int64_t c = 0; c < C; c++) {
        const double k = w ? (double)w[c] * rstd[c] : rstd[c];
        /* 0 where sub1 is the mean (an infinite running mean too: x - inf, not NaN) */
        sub2[c] = mean[c] == (double)sub1[c] ? (T)0 : (T)(mean[c] - (double)sub1[c]);
        scale[c] = (T)k;
        shift[c] = b ? b[c] : (T)0;
        wide |= FN(nr_bn_wide)(rstd[c], k);
    }
    if (N == 0 || C == 0 || L == 0) {
        return; /* empty x: the loops below would still walk the other, possibly huge, dims */
    }
    const int64_t cols = nr_bn_apply_columns(C, L);
    if (cols) { /* the four coefficients spread over the columns, then as (N, C L) data */
        T *ex = shift + C;
        FN(nr_bn_spread)(ex, sub1, C, L);
        FN(nr_bn_spread)(ex + cols, sub2, C, L);
        FN(nr_bn_spread)(ex + 2 * cols, scale, C, L);
        FN(nr_bn_spread)(ex + 3 * cols, shift, C, L);
        FN(nr_bn_apply)(y, x, ex, ex + cols, ex + 2 * cols, ex + 3 * cols, N, cols, 1, ld,
                        nt < 1 ? 1 : nt);
    }
    else {
        FN(nr_bn_apply)(y, x, sub1, sub2, scale, shift, N, C, L, ld, nt < 1 ? 1 : nt);
    }
    for (int64_t c = 0; wide && c < C; c++) {
        if (FN(nr_bn_wide)(rstd[c], w ? (double)w[c] * rstd[c] : rstd[c])) {
            FN(nr_bn_forward_wide)(y, x, c, mean[c], rstd[c], w, b, N, L, ld);
        }
    }
}

/* nr_bn_apply_block of a whole x (N, C, L). Used by BatchNorm and SyncBatchNorm. */
void
FN(nr_batchnorm_apply)(T *y, const T *x, const T *sub1, const double *mean, const double *rstd,
                       const T *w, const T *b, int64_t N, int64_t C, int64_t L, void *workspace,
                       int nt)
{
    FN(nr_bn_apply_block)(y, x, sub1, mean, rstd, w, b, N, C, L, C * L, workspace, nt);
}

/* The training forward (below) of C channels whose rows (the n of x and y) are ld elements
 * apart, with up to nthreads threads; workspace as nr_batchnorm_workspace(C, nthreads). */
static void
FN(nr_bn_forward_train_block)(T *y, T *save_mean, T *save_rstd, T *running_mean, T *running_var,
                              const T *x, const T *w, const T *b, int64_t N, int64_t C,
                              int64_t L, int64_t ld, double momentum, double eps,
                              void *workspace, int nthreads)
{
    const int64_t cols = nr_bn_columns(C, L);
    double *partials = (double *)workspace;
    double *shift = partials + (size_t)nthreads * 3 * (size_t)(cols ? cols : C);
    double *mean = shift + C, *rstd = mean + C;
    T *c_shift = (T *)(rstd + C);
    void *apply_ws = rstd + 2 * C;
    const double count = (double)N * (double)L;
    if (C == 0) {
        return; /* no channels: nothing to compute (N or L may still be huge) */
    }
    int nt = NR_MIN(nthreads, nr_threads_for((size_t)(N * C * L) * sizeof(T)));
    /* The shift: the mean of up to 16 values spread over the channel, rounded to T. It keeps
     * d = x - shift small, so the variance does not cancel away. */
    const int64_t nl = N * L, K = NR_MIN(nl, (int64_t)16), step = nl / K;
    memset(shift, 0, (size_t)C * sizeof(double));
    for (int64_t j = 0; j < K; j++) { /* row by row: along the channels, vectorized */
        const int64_t t = j * step, n = t / L, l = t % L;
        const T *xr = x + n * ld + l;
#pragma omp simd
        for (int64_t c = 0; c < C; c++) {
            shift[c] += (double)xr[c * L];
        }
    }
#pragma omp simd
    for (int64_t c = 0; c < C; c++) {
        c_shift[c] = (T)(shift[c] / (double)K);
        shift[c] = (double)c_shift[c];
    }
    /* One pass for the statistics: sums of d and d^2 (in T eight rows at a time); again in
     * double if a channel needs it */
    int ok = L == 1 || cols; /* (N, C) data and columns: in T first (along L, in double) */
    if (L == 1) {
        NR_PARTIAL_SUMS(nt, N, double, partials, 2 * C, 2 * C,
                        FN(nr_bn_stat_sums)(acc, x, NULL, c_shift, i0, i1, C, L, ld));
    }
    else if (cols) { /* the shifts spread over the columns (where the apply's go later) */
        T *ref = (T *)apply_ws + 3 * C;
        FN(nr_bn_spread)(ref, c_shift, C, L);
        NR_PARTIAL_SUMS(nt, N, double, partials, 2 * cols, 2 * cols,
                        FN(nr_bn_stat_sums)(acc, x, NULL, ref, i0, i1, cols, 1, ld));
        nr_bn_fold_columns(partials, 2, C, L);
    }
    if (ok) {
#pragma omp simd reduction(& : ok)
        for (int64_t c = 0; c < C; c++) {
            ok &= FN(nr_bn_stats_ok)(partials[c], partials[C + c], count, eps);
        }
    }
    if (!ok) {
        NR_PARTIAL_SUMS(nt, N, double, partials, 2 * C, 2 * C,
                        FN(nr_bn_stat_sums_wide)(acc, x, NULL, shift, i0, i1, C, L, ld));
    }
    double *var = partials + C; /* the sums of d^2 become the variances */
#pragma omp simd
    for (int64_t c = 0; c < C; c++) {
        const double dmean = partials[c] / count, v = var[c] / count - dmean * dmean;
        var[c] = v < 0 ? 0 : v;
        mean[c] = shift[c] + dmean;
        rstd[c] = 1 / sqrt(var[c] + eps);
        save_mean[c] = (T)mean[c];
        save_rstd[c] = (T)rstd[c];
    }
    if (running_mean) {
#pragma omp simd
        for (int64_t c = 0; c < C; c++) {
            running_mean[c] = (T)((1 - momentum) * running_mean[c] + momentum * mean[c]);
        }
    }
    if (running_var) {
        const double n1 = count > 1 ? count - 1 : count; /* unbiased, as PyTorch's */
#pragma omp simd
        for (int64_t c = 0; c < C; c++) {
            running_var[c] =
                (T)((1 - momentum) * running_var[c] + momentum * (var[c] * count / n1));
        }
    }
    nt = NR_MIN(nthreads, nr_threads_for((size_t)(N * C * L) * 2 * sizeof(T)));
    FN(nr_bn_apply_block)(y, x, c_shift, mean, rstd, w, b, N, C, L, ld, apply_ws, nt);
}

/* Whether (N, C, L) data with up to nthreads threads runs as blocks of channels, a block a
 * thread, each the whole kernel on its channels, rather than rows split among threads around
 * per-channel work done by one: for (N, C) data with few rows and many channels (or columns,
 * nr_bn_columns), where that serial work, the threads' partial sums and their meeting points
 * cost as much as the passes over the data. Returns the number of blocks (threads), 1 for the
 * split of rows. */
static int
FN(nr_bn_channel_blocks)(int64_t N, int64_t C, int64_t L, int nthreads, size_t passes)
{
    const int nt = NR_MIN(nthreads, nr_threads_for((size_t)(N * C * L) * passes * sizeof(T)));
    const int64_t cols = L == 1 ? C : nr_bn_columns(C, L);
    if (!cols || nt < 2 || N > NR_BN_BLOCK_ROWS || cols < (int64_t)nt * NR_BN_BLOCK_MIN_C ||
        C < (int64_t)nt * 16) {
        return 1;
    }
    return nt;
}

#ifndef NR_BN_BY_CHANNELS
/* The channels [c0, c1) of each of `blocks` threads: multiples of 16 (a cache line of float32)
 * past -phase (nr_line_phase of the output: each thread's part of a row on lines of its own)
 * but the last. */
#define NR_BN_BY_CHANNELS(blocks, C, phase, BODY)                                              \
    NR_SPLIT_AT(blocks, C, 16, phase, {                                                        \
        const int64_t c0 = i0;                                                                 \
        const int64_t c1 = i1;                                                                 \
        BODY;                                                                                  \
    })
#endif

/* Training forward. x (N, C, L) with N L >= 1 when C > 0, w, b (C) or NULL,
 * running_mean, running_var (C) or NULL (updated in place with momentum m)
 *   -> y (N, C, L), save_mean (C), save_rstd (C) (biased variance) */
void
FN(nr_batchnorm_forward_train)(T *y, T *save_mean, T *save_rstd, T *running_mean,
                               T *running_var, const T *x, const T *w, const T *b, int64_t N,
                               int64_t C, int64_t L, double momentum, double eps,
                               void *workspace, int nthreads)
{
    const int blocks = FN(nr_bn_channel_blocks)(N, C, L, nthreads, 2);
    if (blocks < 2) {
        FN(nr_bn_forward_train_block)(y, save_mean, save_rstd, running_mean, running_var, x, w,
                                      b, N, C, L, C * L, momentum, eps, workspace, nthreads);
        return;
    }
    /* a block's workspace is that of one thread for its channels, after the blocks' before */
    NR_BN_BY_CHANNELS(blocks, C, L == 1 ? nr_line_phase(y, sizeof(T)) : 0,
                      FN(nr_bn_forward_train_block)(
                          y + c0 * L, save_mean + c0, save_rstd + c0,
                          running_mean ? running_mean + c0 : NULL,
                          running_var ? running_var + c0 : NULL, x + c0 * L, w ? w + c0 : NULL,
                          b ? b + c0 : NULL, N, c1 - c0, L, C * L, momentum, eps,
                          (char *)workspace + FN(nr_batchnorm_workspace)(c0, L, 1), 1));
}

/* Evaluation forward with the running estimates. x (N, C, L), running_mean, running_var (C)
 *   -> y (N, C, L), save_mean (C) = running_mean, save_rstd (C) = 1 / sqrt(running_var + eps)
 * y = (x - save_mean) (w save_rstd) + b through the training forward's output pass (its rows
 * vectorized across the channels or the columns, its channels beyond T's range in double);
 * workspace as nr_batchnorm_workspace(C, L, nthreads). */
void
FN(nr_batchnorm_forward_eval)(T *y, T *save_mean, T *save_rstd, const T *x,
                              const T *running_mean, const T *running_var, const T *w,
                              const T *b, int64_t N, int64_t C, int64_t L, double eps,
                              void *workspace, int nthreads)
{
    double *mean = (double *)workspace, *rstd = mean + C;
    for (int64_t c = 0; c < C; c++) {
        save_mean[c] = running_mean[c];
        save_rstd[c] = (T)(1 / sqrt((double)running_var[c] + eps));
        mean[c] = (double)save_mean[c];
        rstd[c] = (double)save_rstd[c];
    }
    const int nt = NR_MIN(nthreads, nr_threads_for((size_t)(N * C * L) * 2 * sizeof(T)));
    FN(nr_bn_apply_block)(y, x, save_mean, mean, rstd, w, b, N, C, L, C * L, rstd + C, nt);
}

static void FN(nr_bn_apply_grad_block)(T *dx, const T *dy, const T *x, const T *mu,
                                       const double *mean, const T *rstd, const T *w,
                                       const double *mean_dy, const double *mean_dy_xhat,
                                       int64_t N, int64_t C, int64_t L, int64_t ld,
                                       void *workspace, int nt);

/* dy, x (N, C, L), save_mean, save_rstd (C), w (C) or NULL -> dx =, dw (C) +=, db (C) +=
 * training (batch statistics), with xhat = (x - mean) rstd and n = N L:
 *   dx = w rstd (dy - sum(dy) / n - xhat sum(dy xhat) / n)
 * evaluation (fixed statistics): dx = w rstd dy.  In both: dw += sum(dy xhat), db += sum(dy).
 * dx, dw, db may each be NULL. In training the sums run over x - save_mean in double, and
 * their mean c = mean(x - save_mean) puts back what rounding the mean to T lost: xhat uses
 * the batch mean save_mean + c, as exact at a large offset as the forward. */
static void
FN(nr_bn_backward_block)(T *dx, T *dw, T *db, const T *dy, const T *x, const T *save_mean,
                         const T *save_rstd, const T *w, int64_t N, int64_t C, int64_t L,
                         int64_t ld, int training, void *workspace, int nthreads)
{
    const int64_t cols = nr_bn_columns(C, L);
    double *partials = (double *)workspace;
    double *mean = partials + (size_t)nthreads * 3 * (size_t)(cols ? cols : C);
    double *mean_dy = mean + C, *mean_dy_xhat = mean_dy + C;
    void *apply_ws = mean_dy_xhat + C;
    const double count = (double)N * (double)L;
    if (N == 0 || C == 0 || L == 0) {
        return; /* empty x: dw, db gain zero sums, dx is empty */
    }
    int nt = NR_MIN(nthreads, nr_threads_for((size_t)(N * C * L) * 2 * sizeof(T)));
    /* the mean's correction matters only for a channel whose |mean| rstd > 1 (as LayerNorm's) */
    int far = 0, rstd_ok = 1;
    for (int64_t c = 0; training && c < C; c++) {
        far |= !(fabs((double)save_mean[c] * (double)save_rstd[c]) <= 1);
        rstd_ok &= (save_rstd[c] > 0) & (save_rstd[c] <= NR_T_MAX);
    }
    /* (N, C) data: the sums of dy xhat0 and (with `far`) xhat0, xhat0 = (x - mu) rstd, in T
     * (nr_bn_grad_sums2, 3); the correction is then in units of the std (rstd_ok: it can be
     * taken back to x's) */
    const int scaled = (L == 1 || cols) && (!far || rstd_ok);
    memset(partials, 0, (size_t)(3 * C) * sizeof(double));
    if ((training && dx) || dw || db) {
        /* columns: the sums over (N, C L) data, mu and rstd spread over the columns (where
         * the input gradient's coefficients go later), then added up by channel */
        const int64_t CC = cols ? cols : C, LL = cols ? 1 : L;
        T *ref = (T *)apply_ws + (cols ? 3 * C : 0); /* mu, rstd (free until the dx pass) */
        const T *mu = save_mean;
        if (cols) {
            FN(nr_bn_spread)(ref, save_mean, C, L);
            FN(nr_bn_spread)(ref + cols, save_rstd, C, L);
            mu = ref;
        }
        else if (scaled) {
            memcpy(ref, save_mean, (size_t)C * sizeof(T));
            memcpy(ref + C, save_rstd, (size_t)C * sizeof(T));
        }
        if (far && scaled) {
            NR_PARTIAL_SUMS(nt, N, double, partials, 3 * CC, 3 * CC,
                            FN(nr_bn_grad_sums3)(acc, x, dy, ref, i0, i1, CC, LL, ld));
        }
        else if (far) {
            NR_PARTIAL_SUMS(nt, N, double, partials, 3 * CC, 3 * CC,
                            FN(nr_bn_grad_sums3_wide)(acc, x, dy, mu, i0, i1, CC, LL, ld));
        }
        else if (scaled) {
            NR_PARTIAL_SUMS(nt, N, double, partials, 2 * CC, 2 * CC,
                            FN(nr_bn_grad_sums2)(acc, x, dy, ref, i0, i1, CC, LL, ld));
        }
        else {
            NR_PARTIAL_SUMS(nt, N, double, partials, 2 * CC, 2 * CC,
                            FN(nr_bn_grad_sums2_wide)(acc, x, dy, mu, i0, i1, CC, LL, ld));
        }
        if (cols) {
            nr_bn_fold_columns(partials, far ? 3 : 2, C, L);
            if (!far) { /* the third sums zero, as the memset above left them */
                memset(partials + 2 * C, 0, (size_t)C * sizeof(double));
            }
        }
    }
    for (int64_t c = 0; c < C; c++) {
        if (!(isfinite(partials[c]) && isfinite(partials[C + c]) &&
              isfinite(partials[2 * C + c]))) {
            double s[3];
            const double r = scaled ? (double)save_rstd[c] : 1.0;
            FN(nr_bn_grad_sums_wide)(s, dy, x, c, (double)save_mean[c], N, L, ld);
            partials[c] = s[0];
            partials[C + c] = s[1] * r;
            partials[2 * C + c] = far ? s[2] * r : 0.0;
        }
    }
    for (int64_t c = 0; c < C; c++) {
        const double r = (double)save_rstd[c], sum_dy = partials[c];
        /* mean(x - mu), the correction, in units of 1 / rstd when scaled */
        const double cs = far ? partials[2 * C + c] / count : 0.0;
        /* the sum of dy xhat from those of dy (x - mu) and x - mu, scaled or not */
        const double sum_dy_xhat =
            scaled ? partials[C + c] - cs * sum_dy : (partials[C + c] - cs * sum_dy) * r;
        partials[C + c] = sum_dy_xhat; /* added to dw once dx is written (w may be dw) */
        mean[c] = (double)save_mean[c] + (scaled && far ? cs / r : cs);
        mean_dy[c] = sum_dy / count;
        mean_dy_xhat[c] = sum_dy_xhat / count;
    }
    if (dx) {
        nt = NR_MIN(nthreads, nr_threads_for((size_t)(N * C * L) * 3 * sizeof(T)));
        FN(nr_bn_apply_grad_block)(dx, dy, x, save_mean, mean, save_rstd, w,
                                   training ? mean_dy : NULL, training ? mean_dy_xhat : NULL, N,
                                   C, L, ld, apply_ws, nt);
    }
    for (int64_t c = 0; c < C; c++) {
        if (dw) {
            dw[c] += (T)partials[C + c];
        }
        if (db) {
            db[c] += (T)partials[c];
        }
    }
}

/* dy, x (N, C, L), save_mean, save_rstd (C), w (C) or NULL -> dx =, dw (C) +=, db (C) +=
 * (nr_bn_backward_block: by rows, or by blocks of channels) */
void
FN(nr_batchnorm_backward)(T *dx, T *dw, T *db, const T *dy, const T *x, const T *save_mean,
                          const T *save_rstd, const T *w, int64_t N, int64_t C, int64_t L,
                          int training, void *workspace, int nthreads)
{
    const int blocks = FN(nr_bn_channel_blocks)(N, C, L, nthreads, 3);
    if (blocks < 2) {
        FN(nr_bn_backward_block)(dx, dw, db, dy, x, save_mean, save_rstd, w, N, C, L, C * L,
                                 training, workspace, nthreads);
        return;
    }
    /* a block's workspace is that of one thread for its channels, after the blocks' before */
    NR_BN_BY_CHANNELS(blocks, C, L == 1 && dx ? nr_line_phase(dx, sizeof(T)) : 0,
                      FN(nr_bn_backward_block)(
                          dx ? dx + c0 * L : NULL, dw ? dw + c0 : NULL, db ? db + c0 : NULL,
                          dy + c0 * L, x + c0 * L, save_mean + c0, save_rstd + c0,
                          w ? w + c0 : NULL, N, c1 - c0, L, C * L, training,
                          (char *)workspace + FN(nr_batchnorm_workspace)(c0, L, 1), 1));
}

/* Channel c of the input gradient in double, for coefficients beyond T's range (see below). */
static void
FN(nr_bn_grad_wide)(T *dx, const T *dy, const T *x, int64_t c, double mean, double r, double wc,
                    double m, double q, int64_t N, int64_t L, int64_t ld)
{
    const double hm = 0.5 * mean, r2 = 2 * r;
    for (int64_t n = 0; n < N; n++) {
        for (int64_t l = 0; l < L; l++) {
            const int64_t k = n * ld + c * L + l;
            const double xh = q != 0 ? (0.5 * (double)x[k] - hm) * r2 : 0.0;
            dx[k] = (T)(wc * r * (((double)dy[k] - m) - xh * q));
        }
    }
}

/* Channel c's coefficients k = (k_dy, k_xc, k_0) of the input gradient (see below); returns 1
 * if the channel needs the double path. */
static int
FN(nr_bn_grad_coefs)(double k[3], int64_t c, const T *mu, const double *mean, const T *rstd,
                     const T *w, const double *mean_dy, const double *mean_dy_xhat)
{
    const double r = rstd[c], wr = (w ? (double)w[c] : 1.0) * r;
    const double q = mean_dy ? mean_dy_xhat[c] : 0.0, m = mean_dy ? mean_dy[c] : 0.0;
    k[0] = wr;
    k[1] = -wr * r * q;                                /* through the variance */
    k[2] = -wr * m - k[1] * (mean[c] - (double)mu[c]); /* through the mean; mean - mu */
    return !(NR_FITS(k[0]) && NR_FITS(k[1]) && NR_FITS(k[2])) ||
           (mean_dy && FN(nr_bn_wide)(r, k[1]));
}

/* dy, x (N, C, L), per channel mu (T, the mean as saved), mean (double, the exact mean), rstd,
 * w (or NULL), mean_dy = mean(dy) and mean_dy_xhat = mean(dy xhat) over the batch (both NULL
 * in evaluation: 0) -> dx (N, C, L) =
 *   dx = w rstd (dy - mean_dy - xhat mean_dy_xhat),  xhat = (x - mean) rstd
 * computed in T as k_dy dy + k_xc (x - mu) + k_0, with mean - mu folded into k_0 (with
 * `nt` threads). A channel whose coefficients leave T's range is redone in double.
 * Workspace: 3 C values of T, then nr_bn_columns_bytes(C, L). Rows (the n of x) ld elements
 * apart. */
static void
FN(nr_bn_apply_grad_block)(T *dx, const T *dy, const T *x, const T *mu, const double *mean,
                           const T *rstd, const T *w, const double *mean_dy,
                           const double *mean_dy_xhat, int64_t N, int64_t C, int64_t L,
                           int64_t ld, void *workspace, int nt)
{
    T *k_dy = (T *)workspace, *k_xc = k_dy + C, *k_0 = k_xc + C;
    const int training = mean_dy != NULL;
    int wide = 0;
    for (int64_t c = 0; c < C; c++) {
        double k[3];
        wide |= FN(nr_bn_grad_coefs)(k, c, mu, mean, rstd, w, mean_dy, mean_dy_xhat);
        k_dy[c] = (T)k[0];
        k_xc[c] = (T)k[1];
        k_0[c] = (T)k[2];
    }
    if (N == 0 || C == 0 || L == 0) {
        return;
    }
    if (nt < 1) {
        nt = 1;
    }
    const int64_t cols = nr_bn_apply_columns(C, L);
    if (L == 1) {
        NR_SPLIT(
            nt, N, 1,
            FN(nr_bn_dx_rows)(dx, dy, training ? x : NULL, mu, k_dy, k_xc, k_0, i0, i1, C, ld));
    }
    else if (cols) { /* as nr_bn_apply_block's columns */
        T *ex = k_0 + C;
        FN(nr_bn_spread)(ex, k_dy, C, L);
        FN(nr_bn_spread)(ex + cols, k_xc, C, L);
        FN(nr_bn_spread)(ex + 2 * cols, k_0, C, L);
        FN(nr_bn_spread)(ex + 3 * cols, mu, C, L);
        NR_SPLIT(nt, N, 1,
                 FN(nr_bn_dx_rows)(dx, dy, training ? x : NULL, ex + 3 * cols, ex, ex + cols,
                                   ex + 2 * cols, i0, i1, cols, ld));
    }
    else { /* as nr_bn_apply's runs of L values */
#define NR_BN_DX_L(LL)                                                                         \
    _Pragma("omp parallel for num_threads(nt) schedule(static)") for (int64_t n = 0; n < N;    \
                                                                      n++)                     \
    {                                                                                          \
        for (int64_t c = 0; c < C; c++) {                                                      \
            const int64_t off = n * ld + c * (LL);                                             \
            const T kd = k_dy[c], kx = k_xc[c], k0 = k_0[c], m = mu[c];                        \
            if (training) {                                                                    \
                _Pragma("omp simd") for (int64_t l = 0; l < (LL); l++)                         \
                {                                                                              \
                    dx[off + l] = NR_FMA1(kd, dy[off + l], NR_FMA1(kx, x[off + l] - m, k0));   \
                }                                                                              \
            }                                                                                  \
            else { /* fixed statistics: x plays no part */                                     \
                _Pragma("omp simd") for (int64_t l = 0; l < (LL); l++)                         \
                {                                                                              \
                    dx[off + l] = kd * dy[off + l];                                            \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }
        NR_BN_SMALL_L_SWITCH(L, NR_BN_DX_L)
#undef NR_BN_DX_L
    }
    for (int64_t c = 0; wide && c < C; c++) {
        double k[3];
        if (FN(nr_bn_grad_coefs)(k, c, mu, mean, rstd, w, mean_dy, mean_dy_xhat)) {
            FN(nr_bn_grad_wide)(dx, dy, x, c, mean[c], rstd[c], w ? (double)w[c] : 1.0,
                                mean_dy ? mean_dy[c] : 0.0, mean_dy ? mean_dy_xhat[c] : 0.0, N,
                                L, ld);
        }
    }
}

/* nr_bn_apply_grad_block of a whole x (N, C, L). Used by BatchNorm and SyncBatchNorm. */
void
FN(nr_batchnorm_apply_grad)(T *dx, const T *dy, const T *x, const T *mu, const double *mean,
                            const T *rstd, const T *w, const double *mean_dy,
                            const double *mean_dy_xhat, int64_t N, int64_t C, int64_t L,
                            void *workspace, int nt)
{
    FN(nr_bn_apply_grad_block)(dx, dy, x, mu, mean, rstd, w, mean_dy, mean_dy_xhat, N, C, L,
                               C * L, workspace, nt);
}
