/* The thread count shared by the OpenMP regions of every kernel and by OpenBLAS. */
#include <stdatomic.h>

#include "nr_blas.h"
#include "nr_common.h"

/* 0 until first read: then OpenMP's default (OMP_NUM_THREADS or the core count). */
static atomic_int nr_num_threads = 0;

void
nr_set_num_threads(int n)
{
    if (n < 1) {
        n = 1;
    }
    atomic_store_explicit(&nr_num_threads, n, memory_order_relaxed);
    nr_blas_set_num_threads(n);
}

int
nr_get_num_threads(void)
{
    int n = atomic_load_explicit(&nr_num_threads, memory_order_relaxed);
    if (n < 1) {
        n = omp_get_max_threads();
        nr_set_num_threads(n);
    }
    return n;
}

/* Fork/join costs microseconds: below ~64 KiB of traffic one thread is faster. */
int
nr_threads_for(size_t bytes)
{
    const size_t min_bytes_per_thread = 64 * 1024;
    int n = nr_get_num_threads();
    size_t useful = bytes / min_bytes_per_thread;
    if (useful < 1) {
        return 1;
    }
    return useful < (size_t)n ? (int)useful : n;
}
