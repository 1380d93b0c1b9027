/* ReLU kernels for one element type T (see activation.c). */

static void
FN(nr_relu_forward_range)(T *restrict y, const T *restrict x, int64_t i0, int64_t i1)
{
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
        const T v = x[i];
        y[i] = v < 0 ? (T)0 : v;
    }
}

/* x (n) -> y (n) = max(x, 0); `x < 0 ? 0 : x` keeps NaN as NaN, as PyTorch does. */
void
FN(nr_relu_forward)(T *y, const T *x, int64_t n)
{
    int nt = nr_threads_for((size_t)n * 2 * sizeof(T));
    NR_SPLIT(nt, n, 16, FN(nr_relu_forward_range)(y, x, i0, i1));
}

static void
FN(nr_relu_backward_range)(T *restrict dx, const T *restrict dy, const T *restrict y,
                           int64_t i0, int64_t i1)
{
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
        /* both loads unconditional: a select, not a branch on the sign of y */
        const T g = dy[i], v = y[i];
        dx[i] = v <= 0 ? (T)0 : g; /* NaN passes dy, as PyTorch's threshold_backward */
    }
}

/* dy (n), y (n) -> dx (n) = 0 where y <= 0, else dy (the gradient at 0 is taken as 0; at
 * NaN it is dy). */
void
FN(nr_relu_backward)(T *dx, const T *dy, const T *y, int64_t n)
{
    int nt = nr_threads_for((size_t)n * 3 * sizeof(T));
    NR_SPLIT(nt, n, 16, FN(nr_relu_backward_range)(dx, dy, y, i0, i1));
}
