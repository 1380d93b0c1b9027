/* The slow path of the row norms (LayerNorm, GroupNorm, RMSNorm) for one element type T,
 * included by their bodies: a row whose sums in T overflow or underflow (float32 values
 * beyond about 1e19, or a variance below about 1e-31 with a smaller eps) is redone in double,
 * scaled by a power of two (exact) so that its largest magnitude is in [1, 2), as hypot and
 * BLAS nrm2 do. Only such rows pay for it: the fast paths only look for them. */

#ifndef NR_WIDE_ROW
#define NR_WIDE_ROW
/* A row's statistics, scaled by 2^-e: xhat = (x 2^-e - ms) rr, mean = ms 2^e, rstd = rr 2^-e;
 * mg, mgx: mean(g) and mean(g xhat) of the backward */
struct nr_wide {
    int e;
    double ms, rr, mean, rstd, mg, mgx;
};
#endif

/* (x - mean) rstd, or x rstd uncentered, in double */
static inline double
FN(nr_wide_xhat)(const struct nr_wide *p, T x)
{
    return (ldexp((double)x, -p->e) - p->ms) * p->rr;
}

/* The statistics of x (n > 0 values): mean and 1 / sqrt(var + eps) (centered), or mean 0 and
 * 1 / sqrt(mean(x^2) + eps) (RMSNorm). Returns 0, filling nothing, if a value is not finite:
 * the fast path's NaN or Inf stands. */
static int
FN(nr_wide_stats)(struct nr_wide *p, const T *x, int64_t n, int centered, double eps)
{
    double amax = 0;
    for (int64_t j = 0; j < n; j++) {
        const double a = fabs((double)x[j]);
        if (!(a <= DBL_MAX)) {
            return 0;
        }
        amax = a > amax ? a : amax;
    }
    p->e = amax > 0 ? ilogb(amax) : 0;
    double s = 0;
    for (int64_t j = 0; j < n; j++) {
        s += ldexp((double)x[j], -p->e);
    }
    p->ms = centered ? s / (double)n : 0.0;
    double s2 = 0, s1 = 0;
    for (int64_t j = 0; j < n; j++) {
        const double d = ldexp((double)x[j], -p->e) - p->ms;
        s1 += d;
        s2 += d * d;
    }
    /* centered, the second term removes the rounding error of ms (corrected two-pass) */
    const double vs = NR_MAX(0.0, (s2 - (centered ? s1 * s1 / (double)n : 0.0)) / (double)n);
    const double es = ldexp(eps, -2 * p->e);
    p->mean = ldexp(p->ms, p->e);
    if (isinf(es)) { /* eps dwarfs the variance */
        p->rstd = 1 / sqrt(eps);
        p->rr = ldexp(p->rstd, p->e);
    }
    else {
        p->rr = 1 / sqrt(vs + es);
        p->rstd = ldexp(p->rr, -p->e);
    }
    return 1;
}

/* The backward's row sums for the saved rstd r: mean(g) and mean(g xhat) with g = dy w, w[j / S]
 * per run of S values (w NULL: 1), the row's mean recomputed exactly. Returns 0 if a value
 * is not finite. */
static int
FN(nr_wide_grad)(struct nr_wide *p, const T *x, const T *dy, const T *w, int64_t n, int64_t S,
                 double r, int centered)
{
    if (!FN(nr_wide_stats)(p, x, n, centered, 0.0) || !(fabs(r) <= DBL_MAX)) {
        return 0;
    }
    p->rstd = r;
    p->rr = ldexp(r, p->e);
    double sg = 0, sgx = 0;
    for (int64_t j = 0; j < n; j++) {
        const double g = (double)dy[j] * (w ? (double)w[j / S] : 1.0);
        if (!(fabs(g) <= DBL_MAX)) {
            return 0;
        }
        sg += g;
        sgx += g * FN(nr_wide_xhat)(p, x[j]);
    }
    p->mg = sg / (double)n;
    p->mgx = sgx / (double)n;
    return 1;
}

/* Whether a row of [i0, i1) got an rstd that fails NR_RSTD_OK: rows for the wide path, looked
 * for after a fast path's loops */
static inline __attribute__((always_inline)) int
FN(nr_wide_rstd_check)(const T *restrict rstd, int64_t i0, int64_t i1)
{
    int ok = 1;
#pragma omp simd reduction(& : ok)
    for (int64_t i = i0; i < i1; i++) {
        ok &= NR_RSTD_OK(rstd[i]);
    }
    return !ok;
}
