/* Softmax cross-entropy kernels for one element type T (see loss.c). */

#if NR_TYPED_F32
#define V nr_vf32
#define VI nr_vi32
#define VEXP nr_vexp_f32
#else
#define V nr_vf64
#define VI nr_vi64
#define VEXP nr_vexp_f64
#endif
#define L ((int64_t)(sizeof(V) / sizeof(T)))             /* lanes of T */
#define DL ((int64_t)(sizeof(nr_vf64) / sizeof(double))) /* lanes of double */
#ifndef NR_CE_GROUP
/* elements of short rows that go through the exponential at once: a row of 10 alone would
 * be all vector tail */
#define NR_CE_GROUP 256
#endif

/* y[j] = exp(x[j] - sub) for j < n, in T (y may be x) */
static inline void
FN(nr_exp_shifted)(T *y, const T *x, int64_t n, T sub)
{
    int64_t j = 0;
    V v;
    for (; j + L <= n; j += L) {
        memcpy(&v, x + j, sizeof v);
        v = VEXP(v - sub);
        memcpy(y + j, &v, sizeof v);
    }
    if (j < n) {
        v = NR_VSPLAT(V, (T)0);
        for (int64_t l = 0; l < n - j; l++) {
            v[l] = x[j + l];
        }
        v = VEXP(v - sub);
        for (int64_t l = 0; l < n - j; l++) {
            y[j + l] = v[l];
        }
    }
}

/* x (n) -> y (n) = exp(x): the softmax's exponential alone, for accuracy tests */
void
FN(nr_exp)(T *y, const T *x, int64_t n)
{
    int nt = nr_threads_for((size_t)n * 2 * sizeof(T));
    NR_SPLIT(nt, n, 16, FN(nr_exp_shifted)(y + i0, x + i0, i1 - i0, 0));
}

/* The largest element of row (K >= 1), or NaN or any element when the row holds a NaN (its
 * lse is NaN either way: exp(NaN - max) enters the sum). */
static inline T
FN(nr_row_max)(const T *row, int64_t K)
{
    T mx = row[0];
    if (K < L) {
        for (int64_t j = 1; j < K; j++) {
            mx = row[j] > mx ? row[j] : mx;
        }
        return mx;
    }
    V m, v;
    memcpy(&m, row, sizeof m);
    for (int64_t j = L; j < K; j += L) {
        /* the last vector ends at K, overlapping the one before: max is idempotent */
        memcpy(&v, row + (j + L <= K ? j : K - L), sizeof v);
        m = NR_VSELECT(VI, V, v > m, v, m);
    }
    mx = m[0];
    for (int64_t l = 1; l < L; l++) {
        mx = m[l] > mx ? m[l] : mx;
    }
    return mx;
}

/* The exponentials of the forward are taken in double: the loss is a double, and those of
 * float32 logits rounded to float32 would cost it 1e-8 relative. */

/* e[j] = exp(e[j]) for j < n */
static inline void
FN(nr_exp_wide)(double *e, int64_t n)
{
    int64_t j = 0;
    nr_vf64 v;
    for (; j + DL <= n; j += DL) {
        memcpy(&v, e + j, sizeof v);
        v = nr_vexp_f64(v);
        memcpy(e + j, &v, sizeof v);
    }
    if (j < n) {
        v = NR_VSPLAT(nr_vf64, 0.0);
        for (int64_t l = 0; l < n - j; l++) {
            v[l] = e[j + l];
        }
        v = nr_vexp_f64(v);
        for (int64_t l = 0; l < n - j; l++) {
            e[j + l] = v[l];
        }
    }
}

/* DL values of T from p, in double lanes. float32: one conversion from memory on avx2 and
 * avx512, where gcc's conversion of a half-width vector took four instructions (two
 * conversions of a half each, an extract and an insert): the forward 0.91-0.92x the time
 * at 1024 x 1000 on a Zen 5, avx512 and avx2). */
static inline nr_vf64
FN(nr_load_wide)(const T *p)
{
    nr_vf64 v;
#if NR_TYPED_F32 && defined(__AVX512F__) && NR_VEC_BYTES == 64
    v = (nr_vf64)_mm512_cvtps_pd(_mm256_loadu_ps(p));
#elif NR_TYPED_F32 && defined(__AVX2__) && NR_VEC_BYTES == 32
    v = (nr_vf64)_mm256_cvtps_pd(_mm_loadu_ps(p));
#elif NR_TYPED_F32
    typedef float nr_vf32h __attribute__((vector_size(sizeof(nr_vf64) / 2)));
    nr_vf32h h;
    memcpy(&h, p, sizeof h);
    v = __builtin_convertvector(h, nr_vf64);
#else
    memcpy(&v, p, sizeof v);
#endif
    return v;
}

/* sum_j exp(row[j] - mx), in double */
static inline double
FN(nr_sum_exp_shifted)(const T *row, int64_t K, T mx)
{
    nr_vf64 acc = {0}, v;
    int64_t j = 0;
    for (; j + DL <= K; j += DL) {
        v = FN(nr_load_wide)(row + j);
        acc += nr_vexp_f64(v - (double)mx);
    }
    if (j < K) {
        /* -inf: exp 0 (NaN when mx is -inf or NaN, where the sum is NaN anyway) */
        v = NR_VSPLAT(nr_vf64, -INFINITY);
        for (int64_t l = 0; l < K - j; l++) {
            v[l] = (double)row[j + l];
        }
        acc += nr_vexp_f64(v - (double)mx);
    }
    double sum = acc[0];
    for (int64_t l = 1; l < DL; l++) {
        sum += acc[l];
    }
    return sum;
}

/* logits (B, K), labels (B) in [0, K) -> lse (B); returns the mean loss (NaN for B = 0) */
double
FN(nr_cross_entropy_forward)(T *lse, const T *logits, const int64_t *labels, int64_t B,
                             int64_t K)
{
    double total = 0;
    /* threads by the work, not the bytes: a double exponential an element (about 1.5 ns on
     * one thread), so two threads from 4096 float32 logits (128 x 100: 0.6x the time) */
    NR_TEAM_SIZE int nt = nr_threads_for((size_t)(B * K) * sizeof(T) * 16);
    /* short rows G to a group, their exponentials in one flat pass */
    const int64_t G = K >= NR_CE_GROUP / 2 ? 1 : NR_CE_GROUP / NR_MAX(K, (int64_t)1);
#pragma omp parallel for num_threads(nt) reduction(+ : total) schedule(static)
    for (int64_t g = 0; g < (B + G - 1) / G; g++) {
        const int64_t i0 = g * G, i1 = NR_MIN(B, i0 + G);
        double sums[NR_CE_GROUP];
        T maxes[NR_CE_GROUP];
        if (G == 1) {
            maxes[0] = FN(nr_row_max)(logits + i0 * K, K);
            sums[0] = FN(nr_sum_exp_shifted)(logits + i0 * K, K, maxes[0]);
        }
        else {
            double e[NR_CE_GROUP] __attribute__((aligned(64)));
            for (int64_t i = i0; i < i1; i++) {
                const T *row = logits + i * K;
                const T mx = maxes[i - i0] = FN(nr_row_max)(row, K);
                double *erow = e + (i - i0) * K;
                for (int64_t j = 0; j < K; j++) {
                    erow[j] = (double)row[j] - (double)mx;
                }
            }
            FN(nr_exp_wide)(e, (i1 - i0) * K);
            for (int64_t i = i0; i < i1; i++) {
                const double *erow = e + (i - i0) * K;
                double sum = 0;
                for (int64_t j = 0; j < K; j++) {
                    sum += erow[j];
                }
                sums[i - i0] = sum;
            }
        }
        for (int64_t i = i0; i < i1; i++) {
            const double mx = (double)maxes[i - i0], log_sum = log(sums[i - i0]);
            lse[i] = (T)(mx + log_sum);
            /* (max - z[y]) + log(sum) keeps log(sum) where max + log(sum) would round it
             * away (logits of 1e17 in double, 3e38 in float32) */
            total += (mx - (double)logits[i * K + labels[i]]) + log_sum;
        }
    }
    return total / (double)B;
}

/* logits (B, K), labels (B), lse (B) -> dlogits (B, K) = dloss (softmax - onehot) / B
 * exp(z - lse) alone would carry lse's rounding to T (5e-4 relative at logits of 1e4 in
 * float32): the row is divided by its own sum instead, which cancels any error common to the
 * row, so lse only keeps the exponentials in range. */
void
FN(nr_cross_entropy_backward)(T *dlogits, const T *logits, const int64_t *labels, const T *lse,
                              int64_t B, int64_t K, double dloss)
{
    const double scale = dloss / (double)B;
    /* by the work, as the forward: an exponential in T an element, about half the forward's */
    NR_TEAM_SIZE int nt = nr_threads_for((size_t)(B * K) * sizeof(T) * 16);
    /* short rows in groups, as in the forward */
    const int64_t G = K >= NR_CE_GROUP / 2 ? 1 : NR_CE_GROUP / NR_MAX(K, (int64_t)1);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t g = 0; g < (B + G - 1) / G; g++) {
        const int64_t i0 = g * G, i1 = NR_MIN(B, i0 + G);
        for (int64_t i = i0; i < i1; i++) {
            const T l = lse[i];
#pragma omp simd
            for (int64_t j = 0; j < K; j++) {
                dlogits[i * K + j] = logits[i * K + j] - l;
            }
        }
        FN(nr_exp_shifted)(dlogits + i0 * K, dlogits + i0 * K, (i1 - i0) * K, 0);
        for (int64_t i = i0; i < i1; i++) {
            T *drow = dlogits + i * K;
            /* the label's entry apart: its gradient is -(the others' sum) k, which does not
             * cancel when p is close to 1 */
            const int64_t lab = labels[i];
            const double e_label = (double)drow[lab];
            double others = 0;
            if (K < 32) { /* one short loop: two vector loops' set-up cost more here */
#pragma omp simd reduction(+ : others)
                for (int64_t j = 0; j < K; j++) {
                    others += j == lab ? 0.0 : (double)drow[j];
                }
            }
            else {
#pragma omp simd reduction(+ : others)
                for (int64_t j = 0; j < lab; j++) {
                    others += (double)drow[j];
                }
#pragma omp simd reduction(+ : others)
                for (int64_t j = lab + 1; j < K; j++) {
                    others += (double)drow[j];
                }
            }
            const double k = scale / (others + e_label);
            const T kt = (T)k;
#pragma omp simd
            for (int64_t j = 0; j < K; j++) {
                drow[j] *= kt;
            }
            drow[lab] = (T)(-others * k);
        }
    }
}

#undef V
#undef VI
#undef VEXP
#undef L
#undef DL
