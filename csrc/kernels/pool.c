/* 2-d pooling over the planes of x (N, C, H, W), with PyTorch's semantics (ceil_mode off):
 * output (i, j) covers rows i SH - PH .. i SH - PH + KH - 1 and the like columns.
 * - max: the largest value of the window's positions inside the image (the padding never
 *   wins); NaN wins over everything, as in PyTorch. The index h W + w of the maximum is
 *   kept for the backward, which adds dy to that input position: with ties the first
 *   position in row-major order wins (a later value must be strictly greater).
 * - average: the window's sum divided by KH KW (count_include_pad, the padding counts as
 *   zeros) or by the number of its positions inside the image; the backward spreads dy over
 *   those positions with the same divisor.
 * - adaptive average to (OH, OW): output i averages rows floor(i H / OH) .. ceil((i + 1) H / OH) - 1
 *   (and the like columns): windows of nearly equal size covering the image; OH = OW = 1 is
 *   global average pooling.
 * Threads: over the N C planes.
 */
#include <math.h>

#include "nr_common.h"
#include "nr_conv.h"

int64_t
NR_TIERED(nr_index_out_of_range)(const int64_t *idx, int64_t n, int64_t HW)
{
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= HW) {
            return i;
        }
    }
    return -1;
}

/* The window of output position i along one axis: [*lo, *hi) clipped to [0, size), and its
 * length clipped to [-pad, size + pad) instead (the count_include_pad divisor). */
static void
nr_pool_window(int64_t *lo, int64_t *hi, int64_t *padded_len, int64_t i, int64_t K, int64_t S,
               int64_t P, int64_t size)
{
    int64_t a = i * S - P, b = NR_MIN(a + K, size + P);
    *padded_len = b - a;
    *lo = NR_MAX(a, (int64_t)0);
    *hi = NR_MIN(b, size);
}

/* Adaptive pooling's window of output i of `out` along an axis of `size`. */
static void
nr_adaptive_window(int64_t *lo, int64_t *hi, int64_t i, int64_t out, int64_t size)
{
    *lo = i * size / out;
    *hi = ((i + 1) * size + out - 1) / out;
}

/* Average pooling's window of output i along the rows (`rows`) or the columns of g:
 * [*lo, *hi) and the length *len its divisor counts with count_include_pad; the kernel's
 * window (nr_pool_window), or the adaptive one (its own length) when `adaptive`. */
static void
nr_avg_window(int64_t *lo, int64_t *hi, int64_t *len, int64_t i, const nr_window2d *g, int rows,
              int adaptive)
{
    if (adaptive) {
        nr_adaptive_window(lo, hi, i, rows ? g->OH : g->OW, rows ? g->H : g->W);
        *len = *hi - *lo;
    }
    else if (rows) {
        nr_pool_window(lo, hi, len, i, g->KH, g->SH, g->PH, g->H);
    }
    else {
        nr_pool_window(lo, hi, len, i, g->KW, g->SW, g->PW, g->W);
    }
}

/* The windows of average pooling along the rows and the columns of g, worked out once a call
 * (the adaptive windows take two divisions each, which per plane cost more than the sums of a
 * small window: 2 ns an element at 4 x 4 maps): row oh's [h_lo, h_hi) of padded length h_len,
 * column ow's likewise, for OH, OW up to NR_POOL_SPANS (beyond, each plane works them out). */
#define NR_POOL_SPANS 256
typedef struct {
    int tabulated;
    int64_t h_lo[NR_POOL_SPANS], h_hi[NR_POOL_SPANS], h_len[NR_POOL_SPANS];
    int64_t w_lo[NR_POOL_SPANS], w_hi[NR_POOL_SPANS], w_len[NR_POOL_SPANS];
} nr_avg_spans;

static void
nr_avg_spans_init(nr_avg_spans *t, const nr_window2d *g, int adaptive)
{
    t->tabulated = g->OH <= NR_POOL_SPANS && g->OW <= NR_POOL_SPANS;
    for (int64_t i = 0; t->tabulated && i < g->OH; i++) {
        nr_avg_window(&t->h_lo[i], &t->h_hi[i], &t->h_len[i], i, g, 1, adaptive);
    }
    for (int64_t i = 0; t->tabulated && i < g->OW; i++) {
        nr_avg_window(&t->w_lo[i], &t->w_hi[i], &t->w_len[i], i, g, 0, adaptive);
    }
}

/* Row (rows = 1) or column i's window: from the table, or worked out */
static inline void
nr_avg_span(int64_t *lo, int64_t *hi, int64_t *len, int64_t i, const nr_avg_spans *t,
            const nr_window2d *g, int rows, int adaptive)
{
    if (t->tabulated) {
        *lo = rows ? t->h_lo[i] : t->w_lo[i];
        *hi = rows ? t->h_hi[i] : t->w_hi[i];
        *len = rows ? t->h_len[i] : t->w_len[i];
    }
    else {
        nr_avg_window(lo, hi, len, i, g, rows, adaptive);
    }
}

/* Average pooling's divisor of a window of rows x cols positions inside the image and
 * hlen x wlen inside the padded image (PyTorch's rule: a ceil_mode window past the padding
 * counts up to its edge): divisor_override when > 0, else the padded or the inside size. */
static inline int64_t
nr_avg_divisor(int64_t rows, int64_t cols, int64_t hlen, int64_t wlen, int count_include_pad,
               int64_t divisor_override)
{
    if (divisor_override > 0) {
        return divisor_override;
    }
    return count_include_pad ? hlen * wlen : rows * cols;
}

/* Outputs of a row searched together by max pooling (keys and positions on the stack), and
 * the kernel widths whose column ranges it tabulates. */
#define NR_POOL_BLOCK 64
#define NR_POOL_KMAX 16

/* Threads for a pass over `bytes` of planes, at most one per plane. */
static int
nr_pool_threads(size_t bytes, int64_t planes)
{
    return (int)NR_MIN((int64_t)nr_threads_for(bytes), NR_MAX(planes, (int64_t)1));
}

#define NR_F32
#include "nr_typed.h"
#include "pool_body.h"

#define NR_F64
#include "nr_typed.h"
#include "pool_body.h"
