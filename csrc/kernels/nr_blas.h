/* CBLAS names for the OpenBLAS the build chose (see setup.py). */
#ifndef NR_BLAS_H
#define NR_BLAS_H

#include <cblas.h>

#if defined(NR_BLAS_SCIPY_OPENBLAS)
/* scipy-openblas32 prefixes every symbol with scipy_ */
#define NR_CBLAS(name) scipy_cblas_##name
#define nr_blas_set_num_threads scipy_openblas_set_num_threads
#else
#define NR_CBLAS(name) cblas_##name
#define nr_blas_set_num_threads openblas_set_num_threads
#endif

#endif
