/* 2-d convolution (cross-correlation, as PyTorch's Conv2d) of x (N, C, H, W) with
 * w (O, C, KH, KW), stride (SH, SW) and zero padding (PH, PW):
 *   y[n, o, i, j] = b[o] + sum over c, kh, kw of w[o, c, kh, kw] x[n, c, i SH - PH + kh, j SW - PW + kw]
 * (x is 0 outside the image). Per sample this is one product: with col = im2col(x[n]), the
 * (C KH KW, OH OW) matrix whose row (c, kh, kw) holds the input values that weight meets at
 * each output position,
 *   y[n] (O, OH OW) = w (O, C KH KW) col + b
 *   dw += dy[n] col^T,   dcol = w^T dy[n],   dx[n] = col2im(dcol) (each dcol value added back
 *   to the input position it was copied from),   db += row sums of dy[n].
 * Small maps put a chunk of samples side by side in one col (C KH KW, chunk OH OW), so that
 * each product is wide enough for the GEMM to run at speed. A 1x1 kernel with stride 1 and
 * no padding needs no im2col: col is x[n] itself.
 *
 * Threads: samples are split across the threads, each with its own buffers and
 * single-threaded GEMMs (per-sample products are too small for OpenBLAS's own threads to
 * pay off); with one sample, each product is split among the threads instead (gemm_body.h).
 */
#include "nr_blas.h"
#include "nr_common.h"
#include "nr_conv.h"

/* nr_conv_mul(a, b) = a * b and nr_conv_sum(a, b) = a + b, or SIZE_MAX when that overflows
 * (and SIZE_MAX stays SIZE_MAX): sizes computed in a chain stay SIZE_MAX once one step
 * overflowed. */
#define NR_CONV_SATURATING(name, overflows)                                                    \
    static size_t name(size_t a, size_t b)                                                     \
    {                                                                                          \
        size_t r;                                                                              \
        if (a == SIZE_MAX || b == SIZE_MAX || overflows(a, b, &r)) {                           \
            return SIZE_MAX;                                                                   \
        }                                                                                      \
        return r;                                                                              \
    }
NR_CONV_SATURATING(nr_conv_mul, __builtin_mul_overflow)
NR_CONV_SATURATING(nr_conv_sum, __builtin_add_overflow)

/* The bytes of `count` elements of `size` bytes rounded up to whole cache lines (so that
 * workspace parts start on their own lines), or SIZE_MAX when that overflows. */
static size_t
nr_conv_bytes(size_t count, size_t size)
{
    const size_t b = nr_conv_mul(count, size);
    return b > SIZE_MAX - 63 ? SIZE_MAX : (b + 63) / 64 * 64;
}

/* 1x1 kernel, stride 1, no padding: the input is its own im2col matrix. */
static int
nr_conv_is_pointwise(const nr_window2d *g)
{
    return g->KH == 1 && g->KW == 1 && g->SH == 1 && g->SW == 1 && g->PH == 0 && g->PW == 0;
}

/* Samples per product: enough for about NR_CONV_COLUMNS output positions, since OpenBLAS runs
 * a product only 49 columns wide (one sample of a 7x7 map) markedly slower than a wide one.
 * The products of a chunk go through a staging buffer (O, chunk OH OW). Pointwise
 * convolutions read x in place, one sample per product. */
#define NR_CONV_COLUMNS 384

static int64_t
nr_conv_chunk(const nr_window2d *g)
{
    const int64_t L = g->OH * g->OW;
    if (nr_conv_is_pointwise(g) || L >= NR_CONV_COLUMNS) {
        return 1;
    }
    return NR_MAX((int64_t)1, NR_MIN((NR_CONV_COLUMNS + L - 1) / L, g->N));
}

/* Threads for the per-sample split: at most one per sample, and one for small work. */
static int
nr_conv_threads(const nr_window2d *g, int64_t O, int nthreads)
{
    const double macs =
        (double)g->N * (double)O * (double)(g->C * g->KH * g->KW) * (double)(g->OH * g->OW);
    if (nthreads <= 1 || g->N < 2 || macs < 2e6) {
        return 1;
    }
    return (int)NR_MIN((int64_t)nthreads, g->N);
}

/* Threads for each product when the samples are not split (nr_conv_threads gave 1): all of
 * them from 4e6 multiply-adds a sample, else one. */
static int
nr_conv_gemm_threads(const nr_window2d *g, int64_t O, int nthreads)
{
    const double macs = (double)O * (double)(g->C * g->KH * g->KW) * (double)(g->OH * g->OW);
    return macs >= 4e6 ? nthreads : 1;
}

#define NR_F32
#include "nr_typed.h"
#include "conv_body.h"

#define NR_F64
#include "nr_typed.h"
#include "conv_body.h"
