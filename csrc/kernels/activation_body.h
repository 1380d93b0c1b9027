/* ReLU kernels for one element type T (see activation.c). */

/* x (n) -> y (n) = max(x, 0); `x < 0 ? 0 : x` keeps NaN as NaN, as PyTorch does. */
void
FN(nr_relu_forward)(T *y, const T *x, int64_t n)
{
    int nt = nr_threads_for((size_t)n * 2 * sizeof(T));
#pragma omp parallel for simd num_threads(nt) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        y[i] = x[i] < 0 ? (T)0 : x[i];
    }
}

/* dy (n), y (n) -> dx (n) = dy where y > 0, else 0 (the gradient at 0 is taken as 0). */
void
FN(nr_relu_backward)(T *dx, const T *dy, const T *y, int64_t n)
{
    int nt = nr_threads_for((size_t)n * 3 * sizeof(T));
#pragma omp parallel for simd num_threads(nt) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        dx[i] = y[i] > 0 ? dy[i] : (T)0;
    }
}
