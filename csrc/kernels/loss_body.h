/* Softmax cross-entropy kernels for one element type T (see loss.c). */

/* logits (B, K), labels (B) in [0, K) -> lse (B); returns the mean loss (NaN for B = 0) */
double
FN(nr_cross_entropy_forward)(T *lse, const T *logits, const int64_t *labels, int64_t B,
                             int64_t K)
{
    double total = 0;
    int nt = nr_threads_for((size_t)(B * K) * sizeof(T) * 4);
#pragma omp parallel for num_threads(nt) reduction(+ : total) schedule(static)
    for (int64_t i = 0; i < B; i++) {
        const T *row = logits + i * K;
        T mx = row[0];
        for (int64_t j = 1; j < K; j++) {
            mx = row[j] > mx ? row[j] : mx;
        }
        double sum = 0;
        for (int64_t j = 0; j < K; j++) {
            sum += (double)EXP(row[j] - mx);
        }
        const double row_lse = (double)mx + log(sum);
        lse[i] = (T)row_lse;
        total += row_lse - (double)row[labels[i]];
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
    int nt = nr_threads_for((size_t)(B * K) * sizeof(T) * 4);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < B; i++) {
        const T *row = logits + i * K;
        T *drow = dlogits + i * K;
        const T l = lse[i];
        for (int64_t j = 0; j < K; j++) {
            drow[j] = EXP(row[j] - l);
        }
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
