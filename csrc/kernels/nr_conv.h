/* Kernels of the spatial layers (conv.c, pool.c): same contract as nr_kernels.h (outputs,
 * inputs, saved values, sizes, options; parameter gradients +=, input gradients =; never
 * allocate, never fail). Every array is NCHW and C-contiguous. */
#ifndef NR_CONV_H
#define NR_CONV_H

#include <stddef.h>
#include <stdint.h>

/* A 2-d window sliding over x (N, C, H, W): kernel (KH, KW), stride (SH, SW), zero padding
 * (PH, PW) on each side; (OH, OW) window positions, OH = (H + 2 PH - KH) / SH + 1 (floor),
 * and likewise OW; pooling's ceil_mode may add one window that reaches past the padding but
 * starts inside the image (the kernels clip every window to the image). The caller computes OH, OW (and checks every size is >= 1 but N, C, H, W
 * which may be 0). Adaptive pooling reads only N, C, H, W, OH, OW. */
typedef struct {
    int64_t N, C, H, W;
    int64_t KH, KW, SH, SW, PH, PW;
    int64_t OH, OW;
} nr_window2d;

/* The window positions o in [*lo, *hi) (of `out`) whose input index o S - P + k lies in
 * [0, size), for kernel offset k, stride S >= 1 and padding P >= 0 (conv.c, pool.c). The
 * first, ceil((P - k) / S), is taken as (P - k - 1) / S + 1: P - k + S - 1 overflows for a
 * stride near INT64_MAX. */
static inline void
nr_window_valid_range(int64_t *lo, int64_t *hi, int64_t k, int64_t S, int64_t P, int64_t size,
                      int64_t out)
{
    const int64_t a = k >= P ? 0 : (P - k - 1) / S + 1;
    const int64_t last = size - 1 + P - k; /* the largest o S with a valid index, if >= 0 */
    int64_t b = last < 0 ? 0 : last / S + 1;
    b = b < out ? b : out;
    *lo = a < b ? a : b;
    *hi = b;
}

#define NR_DECLARE_CONV_KERNELS(T, SFX)                                                              \
    /* conv2d: x (N, C, H, W), w (O, C, KH, KW), b (O) or NULL -> y (N, O, OH, OW) */                \
    size_t nr_conv2d_forward_workspace_##SFX(const nr_window2d *g, int64_t O, int nthreads);         \
    void nr_conv2d_forward_##SFX(T *y, const T *x, const T *w, const T *b,                           \
                                 const nr_window2d *g, int64_t O, void *workspace,                   \
                                 int nthreads);                                                      \
    /* dy (N, O, OH, OW), x, w -> dx (N, C, H, W) =, dw (O, C, KH, KW) +=, db (O) += */              \
    size_t nr_conv2d_backward_workspace_##SFX(const nr_window2d *g, int64_t O, int nthreads);        \
    void nr_conv2d_backward_##SFX(T *dx, T *dw, T *db, const T *dy, const T *x, const T *w,          \
                                  const nr_window2d *g, int64_t O, void *workspace,                  \
                                  int nthreads);                                                     \
    /* max_pool2d: x (N, C, H, W), H W <= INT32_MAX -> y, idx (N, C, OH, OW) = h W + w of the max */ \
    void nr_max_pool2d_forward_##SFX(T *y, int64_t *idx, const T *x, const nr_window2d *g);          \
    /* dy, idx (N, C, OH, OW) -> dx (N, C, H, W) = */                                                \
    void nr_max_pool2d_backward_##SFX(T *dx, const T *dy, const int64_t *idx,                        \
                                      const nr_window2d *g);                                         \
    /* avg_pool2d: x (N, C, H, W) -> y (N, C, OH, OW); dy -> dx (N, C, H, W) =; each window    \
     * divided by divisor_override when > 0 */     \
    void nr_avg_pool2d_forward_##SFX(T *y, const T *x, const nr_window2d *g,                         \
                                     int count_include_pad, int64_t divisor_override);               \
    void nr_avg_pool2d_backward_##SFX(T *dx, const T *dy, const nr_window2d *g,                      \
                                      int count_include_pad, int64_t divisor_override);              \
    /* adaptive_avg_pool2d: x (N, C, H, W) -> y (N, C, OH, OW); dy -> dx (N, C, H, W) = */           \
    void nr_adaptive_avg_pool2d_forward_##SFX(T *y, const T *x, const nr_window2d *g);               \
    void nr_adaptive_avg_pool2d_backward_##SFX(T *dx, const T *dy, const nr_window2d *g);

NR_DECLARE_CONV_KERNELS(float, f32)
NR_DECLARE_CONV_KERNELS(double, f64)

/* The first i in [0, n) with idx[i] outside [0, HW), or -1: max_pool2d_backward scatters
 * through the indices, so the binding checks them first. */
int64_t nr_index_out_of_range(const int64_t *idx, int64_t n, int64_t HW);

#endif
