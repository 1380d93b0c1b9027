/* The thread count shared by the OpenMP regions of every kernel and by OpenBLAS, and what
 * the build's OpenMP is. */
#define _GNU_SOURCE /* dladdr (glibc) */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>

#include "nr_blas.h"
#include "nr_omp.h"

/* 0 until first read: then OpenMP's default (OMP_NUM_THREADS or the core count), at most
 * NR_MAX_THREADS. */
static atomic_int nr_num_threads = 0;

/* OpenBLAS's thread count is one global setting, and changing it while another thread runs
 * a product is not safe. GEMMs hold this lock shared; whoever changes the count holds it
 * exclusively (see NR_WITH_BLAS_THREADS in nr_blas.h). */
static pthread_rwlock_t nr_blas_lock = PTHREAD_RWLOCK_INITIALIZER;

void
nr_blas_lock_shared(void)
{
    pthread_rwlock_rdlock(&nr_blas_lock);
}

void
nr_blas_lock_exclusive(void)
{
    pthread_rwlock_wrlock(&nr_blas_lock);
}

void
nr_blas_unlock(void)
{
    pthread_rwlock_unlock(&nr_blas_lock);
}

static void
nr_store_num_threads(int n)
{
    atomic_store_explicit(&nr_num_threads, n, memory_order_relaxed);
    nr_blas_set_num_threads(n);
}

void
nr_set_num_threads(int n)
{
    if (n < 1) {
        n = 1;
    }
    nr_blas_lock_exclusive();
    nr_store_num_threads(n);
    nr_blas_unlock();
}

int
nr_get_num_threads(void)
{
    int n = atomic_load_explicit(&nr_num_threads, memory_order_relaxed);
    if (n < 1) {
        /* first use, from module init (no product can be running yet): no lock, so this is
         * safe to reach from inside a locked region too */
        n = omp_get_max_threads();
        n = n < NR_MAX_THREADS ? n : NR_MAX_THREADS;
        nr_store_num_threads(n);
    }
    return n;
}

/* A second thread pays for its fork/join (a few microseconds with threads that spin briefly
 * before sleeping, see normreg/_openmp.py) from about 256 KiB of traffic per thread: ReLU on
 * 2 threads was slower than on one below 512 KiB. Without OpenMP the kernels have one thread
 * (the setting still applies to OpenBLAS). */
int
nr_threads_for(size_t bytes)
{
#ifdef _OPENMP
    const size_t min_bytes_per_thread = 256 * 1024;
    int n = nr_get_num_threads();
    size_t useful = bytes / min_bytes_per_thread;
    if (useful < 1) {
        return 1;
    }
    return useful < (size_t)n ? (int)useful : n;
#else
    (void)bytes;
    return 1;
#endif
}

int
nr_openmp_version(void)
{
#ifdef _OPENMP
    return _OPENMP;
#else
    return 0;
#endif
}

/* The path of the shared library that defines `symbol` (NULL when unknown). */
static const char *
nr_library_of(void *symbol)
{
    Dl_info info;
    if (dladdr(symbol, &info) != 0 && info.dli_fname != NULL) {
        return info.dli_fname;
    }
    return NULL;
}

const char *
nr_openmp_library(void)
{
#ifdef _OPENMP
    return nr_library_of((void *)&omp_get_max_threads);
#else
    return NULL;
#endif
}

const char *
nr_blas_library(void)
{
    return nr_library_of((void *)&nr_blas_get_config);
}
