/* Shared by the kernel files: typed-body instantiation and OpenMP helpers. */
#ifndef NR_COMMON_H
#define NR_COMMON_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <omp.h>

#include "nr_kernels.h"

#define NR_PASTE2(a, b) a##_##b
#define NR_PASTE(a, b) NR_PASTE2(a, b)
/* FN(nr_relu_forward) -> nr_relu_forward_f32 or nr_relu_forward_f64 */
#define FN(name) NR_PASTE(name, SFX)

#define NR_MIN(a, b) ((a) < (b) ? (a) : (b))
#define NR_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
