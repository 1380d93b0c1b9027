/* Linear kernels for one element type T (see linear.c). GEMM (nr_typed.h) is the BLAS gemm for T.
 *
 * The products run on normreg's own OpenMP threads, each a one-thread BLAS call on a block of
 * the output, as the convolutions do (gemm_body.h says why). */

#include "gemm_body.h"

/* C (M, N) = op(A) op(B) + beta C (see nr_gemm_block) with the threads the product is worth
 * (nr_gemm_threads), BLAS on one thread per call. K > 0, or `bias` given (C is then the bias
 * rows). */
static void
FN(nr_linear_product)(int ta, int tb, int64_t M, int64_t N, int64_t K, const T *A, int64_t lda,
                      const T *B, int64_t ldb, T beta, T *C, int64_t ldc, const T *bias)
{
    const int nt = nr_gemm_threads(M, N, K, nr_get_num_threads());
    NR_WITH_BLAS_THREADS(
        1, FN(nr_gemm_split)(nt, ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc, bias));
}

/* x (M, K), w (K, N), b (N) or NULL -> y (M, N) = x w + b */
void
FN(nr_linear_forward)(T *y, const T *x, const T *w, const T *b, int64_t M, int64_t K, int64_t N)
{
    if (M == 0 || N == 0) {
        return;
    }
    if (!b && K == 0) {
        memset(y, 0, (size_t)(M * N) * sizeof(T));
        return;
    }
    /* with a bias, each thread's block of y starts at it and gemm adds x w onto it */
    FN(nr_linear_product)(CblasNoTrans, CblasNoTrans, M, N, K, x, K, w, N, b ? 1 : 0, y, N, b);
}

/* dy (M, N), x (M, K), w (K, N) -> dx (M, K) = dy w^T; dw (K, N) += x^T dy; db (N) += sum_rows dy,
 * or, when `accumulate` is 0, dw = x^T dy and db = sum_rows dy over whatever dw and db held (a
 * fresh gradient: gemm's beta = 0 writes it, no zeros first). Any of dx, dw, db may be NULL
 * (not wanted). */
void
FN(nr_linear_backward)(T *dx, T *dw, T *db, const T *dy, const T *x, const T *w, int64_t M,
                       int64_t K, int64_t N, int accumulate)
{
    if (dx && M > 0 && K > 0) {
        if (N == 0) {
            memset(dx, 0, (size_t)(M * K) * sizeof(T));
        }
        else {
            FN(nr_linear_product)(CblasNoTrans, CblasTrans, M, K, N, dy, N, w, N, 0, dx, K,
                                  NULL);
        }
    }
    if (!accumulate && M == 0) { /* empty sums */
        if (dw) {
            memset(dw, 0, (size_t)(K * N) * sizeof(T));
        }
        if (db) {
            memset(db, 0, (size_t)N * sizeof(T));
        }
    }
    if (dw && M > 0 && K > 0 && N > 0) {
        FN(nr_linear_product)(CblasTrans, CblasNoTrans, K, N, M, x, K, dy, N,
                              accumulate ? 1 : 0, dw, N, NULL);
    }
    if (db && M > 0 && N > 0) {
        /* Column sums in blocks of columns, each block accumulated in double on the stack. */
        enum { BLOCK = 256 };
        int64_t nblocks = (N + BLOCK - 1) / BLOCK;
        int nt = (int)NR_MIN((int64_t)nr_threads_for((size_t)(M * N) * sizeof(T)), nblocks);
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t blk = 0; blk < nblocks; blk++) {
            int64_t j0 = blk * BLOCK, width = NR_MIN((int64_t)BLOCK, N - j0);
            double acc[BLOCK];
            for (int64_t j = 0; j < width; j++) {
                acc[j] = 0;
            }
            for (int64_t i = 0; i < M; i++) {
                const T *dyr = dy + i * N + j0;
#pragma omp simd
                for (int64_t j = 0; j < width; j++) {
                    acc[j] += dyr[j];
                }
            }
            for (int64_t j = 0; j < width; j++) {
                db[j0 + j] = (T)(accumulate ? db[j0 + j] + (T)acc[j] : acc[j]);
            }
        }
    }
}
