/* Linear kernels for one element type T (see linear.c). GEMM (nr_typed.h) is the BLAS gemm for T. */

/* x (M, K), w (K, N), b (N) or NULL -> y (M, N) = x w + b */
void
FN(nr_linear_forward)(T *y, const T *x, const T *w, const T *b, int64_t M, int64_t K, int64_t N)
{
    if (M == 0 || N == 0) {
        return;
    }
    /* Start y at the bias (or zero) and let gemm add x w onto it (beta = 1). */
    int nt = nr_threads_for((size_t)(M * N) * sizeof(T));
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < M; i++) {
        T *yr = y + i * N;
        if (b) {
            memcpy(yr, b, (size_t)N * sizeof(T));
        }
        else {
            memset(yr, 0, (size_t)N * sizeof(T));
        }
    }
    if (K == 0) {
        return;
    }
    NR_WITH_BLAS_THREADS(nr_gemm_threads(M, N, K, nr_get_num_threads()),
                         GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K,
                              1, x, (int)K, w, (int)N, 1, y, (int)N));
}

/* dy (M, N), x (M, K), w (K, N) -> dx (M, K) = dy w^T; dw (K, N) += x^T dy; db (N) += sum_rows dy.
 * Any of dx, dw, db may be NULL (not wanted). */
void
FN(nr_linear_backward)(T *dx, T *dw, T *db, const T *dy, const T *x, const T *w, int64_t M,
                       int64_t K, int64_t N)
{
    if (dx && M > 0 && K > 0) {
        if (N == 0) {
            memset(dx, 0, (size_t)(M * K) * sizeof(T));
        }
        else {
            NR_WITH_BLAS_THREADS(nr_gemm_threads(M, K, N, nr_get_num_threads()),
                                 GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)K,
                                      (int)N, 1, dy, (int)N, w, (int)N, 0, dx, (int)K));
        }
    }
    if (dw && M > 0 && K > 0 && N > 0) {
        NR_WITH_BLAS_THREADS(nr_gemm_threads(K, N, M, nr_get_num_threads()),
                             GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)N,
                                  (int)M, 1, x, (int)K, dy, (int)N, 1, dw, (int)N));
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
                db[j0 + j] += (T)acc[j];
            }
        }
    }
}
