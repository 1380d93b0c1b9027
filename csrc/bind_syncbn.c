/* Binding of the synchronized batch norm kernels (csrc/kernels/syncbn.c): the per-channel
 * partial sums a process contributes to the global statistics, and the backward that takes
 * the global sums. Combining across processes is the caller's (normreg.distributed). */
#include "bind.h"
#include "nr_syncbn.h"

#define IS_F32(typenum) ((typenum) == NPY_FLOAT32)

static void *
workspace(int t, npy_intp C, int nthreads)
{
    size_t size = NR_CALL(IS_F32(t), nr_syncbn_workspace, C, nthreads);
    void *ws = PyMem_RawMalloc(size ? size : 1);
    if (!ws) {
        PyErr_NoMemory();
    }
    return ws;
}

/* sync_batch_norm_stats(x (N, C, L)) -> stats float64 (2, C): row 0 the channel means,
 * row 1 the sums of squared deviations M2 (zeros when N L = 0) */
static PyObject *
sync_batch_norm_stats(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "sync_batch_norm_stats";
    PyArrayObject *x, *stats;
    int t;
    if (nr_check_nargs(nargs, 1, fn) < 0 || nr_arg_float_dtype(args[0], fn, "x", &t) < 0 ||
        nr_arg_array(args[0], fn, "x", t, 3, NR_REQUIRED, &x) < 0) {
        return NULL;
    }
    npy_intp N = PyArray_DIM(x, 0), C = PyArray_DIM(x, 1), L = PyArray_DIM(x, 2);
    npy_intp dims[2] = {2, C};
    int nthreads = nr_get_num_threads();
    void *ws = workspace(t, C, nthreads);
    if (!ws) {
        return NULL;
    }
    if (!(stats = (PyArrayObject *)PyArray_EMPTY(2, dims, NPY_FLOAT64, 0))) {
        PyMem_RawFree(ws);
        return NULL;
    }
    double *s = (double *)PyArray_DATA(stats);
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_syncbn_stats, s, s + C, PyArray_DATA(x), N, C, L, ws, nthreads);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(ws);
    return (PyObject *)stats;
}

/* sync_batch_norm_forward(x (N, C, L), mean (C) float64, rstd (C), w | None, b | None,
 *                         out | None) -> y (N, C, L) = (x - mean) rstd w + b */
static PyObject *
sync_batch_norm_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "sync_batch_norm_forward";
    PyArrayObject *x, *mean, *rstd, *w, *b, *y;
    int t;
    if (nr_check_nargs(nargs, 6, fn) < 0 || nr_arg_float_dtype(args[0], fn, "x", &t) < 0 ||
        nr_arg_array(args[0], fn, "x", t, 3, NR_REQUIRED, &x) < 0) {
        return NULL;
    }
    npy_intp N = PyArray_DIM(x, 0), C = PyArray_DIM(x, 1), L = PyArray_DIM(x, 2);
    if (nr_arg_channels(args[1], fn, "mean", NPY_FLOAT64, NR_REQUIRED, C, &mean) < 0 ||
        nr_arg_channels(args[2], fn, "rstd", t, NR_REQUIRED, C, &rstd) < 0 ||
        nr_arg_channels(args[3], fn, "weight", t, NR_OPTIONAL, C, &w) < 0 ||
        nr_arg_channels(args[4], fn, "bias", t, NR_OPTIONAL, C, &b) < 0) {
        return NULL;
    }
    int nthreads = nr_get_num_threads();
    void *ws = workspace(t, C, nthreads);
    if (!ws) {
        return NULL;
    }
    if (!(y = nr_out_array(args[5], fn, "out", t, 3, PyArray_DIMS(x)))) {
        PyMem_RawFree(ws);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_syncbn_forward, PyArray_DATA(y), PyArray_DATA(x), PyArray_DATA(mean),
            PyArray_DATA(rstd), nr_data_or_null(w), nr_data_or_null(b), N, C, L, ws, nthreads);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(ws);
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
    if (nr_check_nargs(nargs, 4, fn) < 0 || nr_arg_float_dtype(args[0], fn, "dy", &t) < 0 ||
        nr_arg_array(args[0], fn, "dy", t, 3, NR_REQUIRED, &dy) < 0 ||
        nr_arg_array(args[1], fn, "x", t, 3, NR_REQUIRED, &x) < 0 ||
        nr_arg_same_shape(dy, fn, "dy", x, "x") < 0) {
        return NULL;
    }
    npy_intp N = PyArray_DIM(x, 0), C = PyArray_DIM(x, 1), L = PyArray_DIM(x, 2);
    if (nr_arg_channels(args[2], fn, "mean", NPY_FLOAT64, NR_REQUIRED, C, &mean) < 0 ||
        nr_arg_channels(args[3], fn, "rstd", t, NR_REQUIRED, C, &rstd) < 0) {
        return NULL;
    }
    npy_intp dims[2] = {2, C};
    int nthreads = nr_get_num_threads();
    void *ws = workspace(t, C, nthreads);
    if (!ws) {
        return NULL;
    }
    if (!(sums = (PyArrayObject *)PyArray_EMPTY(2, dims, NPY_FLOAT64, 0))) {
        PyMem_RawFree(ws);
        return NULL;
    }
    double *s = (double *)PyArray_DATA(sums);
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_syncbn_grad_sums, s, s + C, PyArray_DATA(dy), PyArray_DATA(x),
            PyArray_DATA(mean), PyArray_DATA(rstd), N, C, L, ws, nthreads);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(ws);
    return (PyObject *)sums;
}

/* sync_batch_norm_backward(dy, x (N, C, L), mean (C) float64, rstd (C), w (C) | None,
 *                          sums float64 (2, C), count, out | None) -> dx (N, C, L) */
static PyObject *
sync_batch_norm_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "sync_batch_norm_backward";
    PyArrayObject *dy, *x, *mean, *rstd, *w, *sums, *dx;
    int t;
    double count;
    if (nr_check_nargs(nargs, 8, fn) < 0 || nr_arg_float_dtype(args[0], fn, "dy", &t) < 0 ||
        nr_arg_array(args[0], fn, "dy", t, 3, NR_REQUIRED, &dy) < 0 ||
        nr_arg_array(args[1], fn, "x", t, 3, NR_REQUIRED, &x) < 0 ||
        nr_arg_same_shape(dy, fn, "dy", x, "x") < 0) {
        return NULL;
    }
    npy_intp N = PyArray_DIM(x, 0), C = PyArray_DIM(x, 1), L = PyArray_DIM(x, 2);
    if (nr_arg_channels(args[2], fn, "mean", NPY_FLOAT64, NR_REQUIRED, C, &mean) < 0 ||
        nr_arg_channels(args[3], fn, "rstd", t, NR_REQUIRED, C, &rstd) < 0 ||
        nr_arg_channels(args[4], fn, "weight", t, NR_OPTIONAL, C, &w) < 0 ||
        nr_arg_array(args[5], fn, "sums", NPY_FLOAT64, 2, NR_REQUIRED, &sums) < 0 ||
        nr_arg_dim(sums, fn, "sums", 0, 2, "2 (sum dy, sum dy xhat)") < 0 ||
        nr_arg_dim(sums, fn, "sums", 1, C, "channels of x") < 0 ||
        nr_arg_double(args[6], fn, "count", &count) < 0) {
        return NULL;
    }
    if (!(count >= 1)) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'count' must be >= 1, got %g", fn, count);
        return NULL;
    }
    int nthreads = nr_get_num_threads();
    void *ws = workspace(t, C, nthreads);
    if (!ws) {
        return NULL;
    }
    if (!(dx = nr_out_array(args[7], fn, "out", t, 3, PyArray_DIMS(x)))) {
        PyMem_RawFree(ws);
        return NULL;
    }
    const double *s = (const double *)PyArray_DATA(sums);
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_syncbn_backward, PyArray_DATA(dx), PyArray_DATA(dy), PyArray_DATA(x),
            PyArray_DATA(mean), PyArray_DATA(rstd), nr_data_or_null(w), s, s + C, count, N, C,
            L, ws, nthreads);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(ws);
    return (PyObject *)dx;
}

#define FASTCALL(name, doc) {#name, (PyCFunction)(void (*)(void))name, METH_FASTCALL, doc}

PyMethodDef nr_syncbn_methods[] = {
    FASTCALL(sync_batch_norm_stats, "sync_batch_norm_stats(x) -> (2, C) float64: mean, M2"),
    FASTCALL(sync_batch_norm_forward,
             "sync_batch_norm_forward(x, mean, rstd, weight, bias, out) -> y"),
    FASTCALL(sync_batch_norm_grad_sums,
             "sync_batch_norm_grad_sums(dy, x, mean, rstd) -> (2, C) float64: sum dy, sum dy xhat"),
    FASTCALL(sync_batch_norm_backward,
             "sync_batch_norm_backward(dy, x, mean, rstd, weight, sums, count, out) -> dx"),
    {NULL, NULL, 0, NULL},
};
