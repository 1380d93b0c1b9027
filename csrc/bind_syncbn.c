/* Binding of the synchronized batch norm kernels (csrc/kernels/syncbn.c): the per-channel
 * partial sums a process contributes to the global statistics, and the backward that takes
 * the global sums. Combining across processes is the caller's (normreg.distributed). */
#include "bind.h"
#include "nr_syncbn.h"

/* The sizes of the arrays: x (N, C, L), the per-channel statistics (C), the sums (2, C). */
#define SYNCBN_SIZES "C the channels of x|S 2 (sum dy, sum dy xhat)"

/* The opening of every call: nr_arg_parse of `table` (whose x (N, C, L) sets the sizes), N,
 * C and L into ncl, and with `sums`, a new float64 (2, C) array for the two rows of
 * per-channel sums the kernel writes. 0, or -1 with an exception set. */
static int
syncbn_parse(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t expected, const char *fn,
             int *t, const nr_array_arg *table, int n, npy_intp ncl[3], PyArrayObject **sums)
{
    nr_sizes s = {.what = SYNCBN_SIZES};
    nr_size_set(&s, 'S', 2);
    if (nr_arg_parse(args, nargs, expected, fn, t, table, n, &s) < 0) {
        return -1;
    }
    for (int k = 0; k < 3; k++) {
        ncl[k] = nr_size(&s, "NCL"[k]);
    }
    npy_intp dims[2] = {2, ncl[1]};
    return sums && !(*sums = (PyArrayObject *)PyArray_EMPTY(2, dims, NPY_FLOAT64, 0)) ? -1 : 0;
}

/* sync_batch_norm_stats(x (N, C, L)) -> stats float64 (2, C): row 0 the channel means,
 * row 1 the sums of squared deviations M2 (zeros when N L = 0) */
static PyObject *
sync_batch_norm_stats(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "sync_batch_norm_stats";
    PyArrayObject *x, *stats;
    int t;
    npy_intp d[3];
    const nr_array_arg arrays[] = {{&x, 0, "x", "NCL", NR_REQUIRED}};
    if (syncbn_parse(args, nargs, 1, fn, &t, arrays, NR_NARRAYS(arrays), d, &stats) < 0) {
        return NULL;
    }
    const npy_intp N = d[0], C = d[1], L = d[2];
    double *st = (double *)PyArray_DATA(stats);
    NR_NOGIL_WITH_WORKSPACE(
        stats, NR_CALL(t, nr_syncbn_workspace, C, L, nthreads), fn,
        NR_CALL(t, nr_syncbn_stats, st, st + C, PyArray_DATA(x), N, C, L, ws, nthreads));
    return (PyObject *)stats;
}

/* sync_batch_norm_forward(x (N, C, L), mean (C) float64, rstd (C), w | None, b | None,
 *                         out | None) -> y (N, C, L) = (x - mean) rstd w + b */
static PyObject *
sync_batch_norm_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "sync_batch_norm_forward";
    PyArrayObject *x, *mean, *rstd, *w, *b, *y = NULL;
    int t;
    npy_intp d[3];
    const nr_array_arg arrays[] = {
        {&x, 0, "x", "NCL", NR_REQUIRED},     {&mean, 1, "mean", "C", NR_F64},
        {&rstd, 2, "rstd", "C", NR_REQUIRED}, {&w, 3, "weight", "C", NR_OPTIONAL},
        {&b, 4, "bias", "C", NR_OPTIONAL},
    };
    if (syncbn_parse(args, nargs, 6, fn, &t, arrays, NR_NARRAYS(arrays), d, NULL) < 0 ||
        !(y = nr_out_like(args[5], fn, t, x))) {
        return NULL;
    }
    const npy_intp N = d[0], C = d[1], L = d[2];
    NR_NOGIL_WITH_WORKSPACE(y, NR_CALL(t, nr_syncbn_workspace, C, L, nthreads), fn,
                            NR_CALL(t, nr_syncbn_forward, PyArray_DATA(y), PyArray_DATA(x),
                                    PyArray_DATA(mean), PyArray_DATA(rstd), nr_data_or_null(w),
                                    nr_data_or_null(b), N, C, L, ws, nthreads));
    return (PyObject *)y;
}

/* sync_batch_norm_grad_sums(dy, x (N, C, L), mean (C) float64, rstd (C)) -> sums float64 (2, C):
 * row 0 sum(dy), row 1 sum(dy xhat) per channel over this process's values */
static PyObject *
sync_batch_norm_grad_sums(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "sync_batch_norm_grad_sums";
    PyArrayObject *dy, *x, *mean, *rstd, *sums;
    int t;
    npy_intp d[3];
    const nr_array_arg arrays[] = {
        {&x, 1, "x", "NCL", NR_REQUIRED},
        {&dy, 0, "dy", "=x", NR_REQUIRED},
        {&mean, 2, "mean", "C", NR_F64},
        {&rstd, 3, "rstd", "C", NR_REQUIRED},
    };
    if (syncbn_parse(args, nargs, 4, fn, &t, arrays, NR_NARRAYS(arrays), d, &sums) < 0) {
        return NULL;
    }
    const npy_intp N = d[0], C = d[1], L = d[2];
    double *sm = (double *)PyArray_DATA(sums);
    NR_NOGIL_WITH_WORKSPACE(sums, NR_CALL(t, nr_syncbn_workspace, C, L, nthreads), fn,
                            NR_CALL(t, nr_syncbn_grad_sums, sm, sm + C, PyArray_DATA(dy),
                                    PyArray_DATA(x), PyArray_DATA(mean), PyArray_DATA(rstd), N,
                                    C, L, ws, nthreads));
    return (PyObject *)sums;
}

/* sync_batch_norm_backward(dy, x (N, C, L), mean (C) float64, rstd (C), w (C) | None,
 *                          sums float64 (2, C), count, out | None) -> dx (N, C, L) */
static PyObject *
sync_batch_norm_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "sync_batch_norm_backward";
    PyArrayObject *dy, *x, *mean, *rstd, *w, *sums, *dx = NULL;
    int t;
    double count;
    npy_intp d[3];
    const nr_array_arg arrays[] = {
        {&x, 1, "x", "NCL", NR_REQUIRED},    {&dy, 0, "dy", "=x", NR_REQUIRED},
        {&mean, 2, "mean", "C", NR_F64},     {&rstd, 3, "rstd", "C", NR_REQUIRED},
        {&w, 4, "weight", "C", NR_OPTIONAL}, {&sums, 5, "sums", "SC", NR_F64},
    };
    if (syncbn_parse(args, nargs, 8, fn, &t, arrays, NR_NARRAYS(arrays), d, NULL) < 0 ||
        nr_arg_double(args[6], fn, "count", &count) < 0) {
        return NULL;
    }
    if (!(count >= 1)) {
        nr_arg_out_of_range(fn, "count", ">= 1", count);
        return NULL;
    }
    const npy_intp N = d[0], C = d[1], L = d[2];
    if (!(dx = nr_out_like(args[7], fn, t, x))) {
        return NULL;
    }
    const double *sm = (const double *)PyArray_DATA(sums);
    NR_NOGIL_WITH_WORKSPACE(dx, NR_CALL(t, nr_syncbn_workspace, C, L, nthreads), fn,
                            NR_CALL(t, nr_syncbn_backward, PyArray_DATA(dx), PyArray_DATA(dy),
                                    PyArray_DATA(x), PyArray_DATA(mean), PyArray_DATA(rstd),
                                    nr_data_or_null(w), sm, sm + C, count, N, C, L, ws,
                                    nthreads));
    return (PyObject *)dx;
}

PyMethodDef nr_syncbn_methods[] = {
    NR_FASTCALL(sync_batch_norm_stats, "sync_batch_norm_stats(x) -> (2, C) float64: mean, M2"),
    NR_FASTCALL(sync_batch_norm_forward,
                "sync_batch_norm_forward(x, mean, rstd, weight, bias, out) -> y"),
    NR_FASTCALL(
        sync_batch_norm_grad_sums,
        "sync_batch_norm_grad_sums(dy, x, mean, rstd) -> (2, C) float64: sum dy, sum dy xhat"),
    NR_FASTCALL(sync_batch_norm_backward,
                "sync_batch_norm_backward(dy, x, mean, rstd, weight, sums, count, out) -> dx"),
    {NULL, NULL, 0, NULL},
};
