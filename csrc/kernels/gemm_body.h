/* A product split among normreg's OpenMP threads, for one element type T (included by the
 * Linear and Conv2d bodies). GEMM (nr_typed.h) is the BLAS gemm for T.
 *
 * Each thread makes a one-thread BLAS call on a block of the output: OpenBLAS's own threads
 * would be a second pool on the same cores, spinning after each product while the next
 * kernel's OpenMP threads wait for a core; and they start with the affinity of the thread that
 * created them, so with OMP_PROC_BIND (the main thread bound to one core) all of them shared
 * that core: 4-13x the time of a one-sample Conv2d (benchmarks/conv_bind.py). */

#ifndef NR_GEMM_BLOCK
/* a column block of the output starts at a multiple of this (a 64-byte line of float32) */
#define NR_GEMM_BLOCK 16
#endif

/* Block [i0, i1) of C (M, N) = op(A) op(B) + beta C (row-major, op(A) (M, K), op(B) (K, N)):
 * its columns i0..i1 when `split_n`, else its rows, as one BLAS call; with `bias` (N), the
 * block first starts at the bias rows (the forward's y = b + x w, with beta == 1). */
static void
FN(nr_gemm_block)(int ta, int tb, int split_n, int64_t M, int64_t N, int64_t K, const T *A,
                  int64_t lda, const T *B, int64_t ldb, T beta, T *C, int64_t ldc,
                  const T *bias, int64_t i0, int64_t i1)
{
    const int64_t rows = split_n ? M : i1 - i0, cols = split_n ? i1 - i0 : N;
    T *c = split_n ? C + i0 : C + i0 * ldc;
    for (int64_t i = 0; bias && i < rows; i++) {
        memcpy(c + i * ldc, bias + (split_n ? i0 : 0), (size_t)cols * sizeof(T));
    }
    if (rows > 0 && K > 0) {
        /* op(A)'s rows i0.. : row i0 of A, or its column i0 when transposed */
        const T *a = split_n ? A : (ta == CblasNoTrans ? A + i0 * lda : A + i0);
        /* op(B)'s columns i0.. : column i0 of B, or its row i0 when transposed */
        const T *b = !split_n ? B : (tb == CblasNoTrans ? B + i0 : B + i0 * ldb);
        GEMM(CblasRowMajor, (enum CBLAS_TRANSPOSE)ta, (enum CBLAS_TRANSPOSE)tb, (int)rows,
             (int)cols, (int)K, 1, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
    }
}

/* C (M, N) = op(A) op(B) + beta C (see nr_gemm_block) on `nt` threads: the larger of M and N
 * split among them. To be run under NR_WITH_BLAS_THREADS(1, ...) (one-thread BLAS calls):
 * with nt <= 1 the calling thread makes the one call, on its BLAS setting (in a team, the one
 * its nr_blas_team_enter made); with nt > 1, outside any OpenMP region. K > 0, or `bias` given
 * (C is then the bias rows). */
static void
FN(nr_gemm_split)(int nt, int ta, int tb, int64_t M, int64_t N, int64_t K, const T *A,
                  int64_t lda, const T *B, int64_t ldb, T beta, T *C, int64_t ldc,
                  const T *bias)
{
    const int split_n = N >= M;
    if (nt <= 1) {
        FN(nr_gemm_block)(ta, tb, split_n, M, N, K, A, lda, B, ldb, beta, C, ldc, bias, 0,
                          split_n ? N : M);
        return;
    }
    NR_SPLIT(
        nt, split_n ? N : M, split_n ? NR_GEMM_BLOCK : 1, nr_blas_team_enter();
        FN(nr_gemm_block)(ta, tb, split_n, M, N, K, A, lda, B, ldb, beta, C, ldc, bias, i0, i1);
        nr_blas_team_leave());
}
