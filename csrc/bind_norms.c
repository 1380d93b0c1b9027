/* Binding of the extra normalization kernels (RMSNorm, GroupNorm). Each function: check
 * arguments, allocate outputs, release the GIL around the kernel, return. Arrays arrive
 * C-contiguous from normreg.functional; these checks are what memory safety needs. */
#include "bind.h"
#include "nr_norms.h"

#define IS_F32(typenum) ((typenum) == NPY_FLOAT32)

static int
check_eps(double eps, const char *fn)
{
    if (!(eps >= 0)) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'eps' must be >= 0, got %g", fn, eps);
        return -1;
    }
    return 0;
}

/* ---- RMSNorm -------------------------------------------------------------------------- */

/* rms_norm_forward(x (M, D), w (D) | None, eps, out | None) -> (y (M, D), rstd (M)) */
static PyObject *
rms_norm_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "rms_norm_forward";
    PyArrayObject *x, *w, *y = NULL, *rstd = NULL;
    int t;
    double eps;
    if (nr_check_nargs(nargs, 4, fn) < 0 || nr_arg_float_dtype(args[0], fn, "x", &t) < 0 ||
        nr_arg_array(args[0], fn, "x", t, 2, NR_REQUIRED, &x) < 0 ||
        nr_arg_array(args[1], fn, "weight", t, 1, NR_OPTIONAL, &w) < 0 ||
        nr_arg_double(args[2], fn, "eps", &eps) < 0 || check_eps(eps, fn) < 0) {
        return NULL;
    }
    npy_intp M = PyArray_DIM(x, 0), D = PyArray_DIM(x, 1);
    if (w && nr_arg_dim(w, fn, "weight", 0, D, "normalized size of x") < 0) {
        return NULL;
    }
    if (!(y = nr_out_array(args[3], fn, "out", t, 2, PyArray_DIMS(x))) ||
        !(rstd = (PyArrayObject *)PyArray_EMPTY(1, &M, t, 0))) {
        Py_XDECREF(y);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_rmsnorm_forward, PyArray_DATA(y), PyArray_DATA(rstd), PyArray_DATA(x),
            nr_data_or_null(w), M, D, eps);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("(NN)", y, rstd);
}

/* rms_norm_backward(dy (M, D), x (M, D), rstd (M), w (D) | None, dw (D) | None, out | None)
 *   -> dx; dw added to */
static PyObject *
rms_norm_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "rms_norm_backward";
    PyArrayObject *dy, *x, *rstd, *w, *dw, *dx = NULL;
    int t;
    if (nr_check_nargs(nargs, 6, fn) < 0 || nr_arg_float_dtype(args[0], fn, "dy", &t) < 0 ||
        nr_arg_array(args[0], fn, "dy", t, 2, NR_REQUIRED, &dy) < 0 ||
        nr_arg_array(args[1], fn, "x", t, 2, NR_REQUIRED, &x) < 0 ||
        nr_arg_array(args[2], fn, "rstd", t, 1, NR_REQUIRED, &rstd) < 0 ||
        nr_arg_array(args[3], fn, "weight", t, 1, NR_OPTIONAL, &w) < 0 ||
        nr_arg_array(args[4], fn, "dweight", t, 1, NR_OPTIONAL | NR_WRITABLE, &dw) < 0 ||
        nr_arg_same_shape(dy, fn, "dy", x, "x") < 0) {
        return NULL;
    }
    npy_intp M = PyArray_DIM(x, 0), D = PyArray_DIM(x, 1);
    if (nr_arg_dim(rstd, fn, "rstd", 0, M, "rows of x") < 0 ||
        (w && nr_arg_dim(w, fn, "weight", 0, D, "normalized size of x") < 0) ||
        (dw && nr_arg_dim(dw, fn, "dweight", 0, D, "normalized size of x") < 0) ||
        !(dx = nr_out_array(args[5], fn, "out", t, 2, PyArray_DIMS(x)))) {
        return NULL;
    }
    int nthreads = nr_get_num_threads();
    size_t ws_size = NR_CALL(IS_F32(t), nr_rmsnorm_backward_workspace, D, nthreads);
    void *ws = PyMem_RawMalloc(ws_size ? ws_size : 1);
    if (!ws) {
        Py_DECREF(dx);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_rmsnorm_backward, PyArray_DATA(dx), nr_data_or_null(dw),
            PyArray_DATA(dy), PyArray_DATA(x), PyArray_DATA(rstd), nr_data_or_null(w), M, D, ws,
            nthreads);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(ws);
    return (PyObject *)dx;
}

/* ---- GroupNorm ------------------------------------------------------------------------ */

/* Parses num_groups: an int >= 1 that divides C. */
static int
num_groups_arg(PyObject *obj, const char *fn, npy_intp C, npy_intp *G)
{
    Py_ssize_t g = PyLong_AsSsize_t(obj);
    if (g == -1 && PyErr_Occurred()) {
        PyErr_Format(PyExc_TypeError, "%s: argument 'num_groups' must be an int", fn);
        return -1;
    }
    if (g < 1 || C % g != 0) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'num_groups' must be >= 1 and divide the %zd channels, got %zd",
                     fn, (Py_ssize_t)C, g);
        return -1;
    }
    *G = (npy_intp)g;
    return 0;
}

/* group_norm_forward(x (N, C, S), w (C) | None, b (C) | None, num_groups, eps, out | None)
 *   -> (y (N, C, S), mean (N, G), rstd (N, G)) */
static PyObject *
group_norm_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "group_norm_forward";
    PyArrayObject *x, *w, *b, *y = NULL, *mean = NULL, *rstd = NULL;
    int t;
    double eps;
    npy_intp G;
    if (nr_check_nargs(nargs, 6, fn) < 0 || nr_arg_float_dtype(args[0], fn, "x", &t) < 0 ||
        nr_arg_array(args[0], fn, "x", t, 3, NR_REQUIRED, &x) < 0) {
        return NULL;
    }
    npy_intp N = PyArray_DIM(x, 0), C = PyArray_DIM(x, 1), S = PyArray_DIM(x, 2);
    if (nr_arg_channels(args[1], fn, "weight", t, NR_OPTIONAL, C, &w) < 0 ||
        nr_arg_channels(args[2], fn, "bias", t, NR_OPTIONAL, C, &b) < 0 ||
        num_groups_arg(args[3], fn, C, &G) < 0 ||
        nr_arg_double(args[4], fn, "eps", &eps) < 0 || check_eps(eps, fn) < 0) {
        return NULL;
    }
    npy_intp sdims[2] = {N, G};
    if (!(y = nr_out_array(args[5], fn, "out", t, 3, PyArray_DIMS(x))) ||
        !(mean = (PyArrayObject *)PyArray_EMPTY(2, sdims, t, 0)) ||
        !(rstd = (PyArrayObject *)PyArray_EMPTY(2, sdims, t, 0))) {
        Py_XDECREF(y);
        Py_XDECREF(mean);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_groupnorm_forward, PyArray_DATA(y), PyArray_DATA(mean),
            PyArray_DATA(rstd), PyArray_DATA(x), nr_data_or_null(w), nr_data_or_null(b), N, C, S,
            G, eps);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("(NNN)", y, mean, rstd);
}

/* group_norm_backward(dy, x (N, C, S), mean (N, G), rstd (N, G), w (C) | None, dw | None,
 *                     db | None, num_groups, out | None) -> dx; dw, db added to */
static PyObject *
group_norm_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "group_norm_backward";
    PyArrayObject *dy, *x, *mean, *rstd, *w, *dw, *db, *dx = NULL;
    int t;
    npy_intp G;
    if (nr_check_nargs(nargs, 9, fn) < 0 || nr_arg_float_dtype(args[0], fn, "dy", &t) < 0 ||
        nr_arg_array(args[0], fn, "dy", t, 3, NR_REQUIRED, &dy) < 0 ||
        nr_arg_array(args[1], fn, "x", t, 3, NR_REQUIRED, &x) < 0 ||
        nr_arg_same_shape(dy, fn, "dy", x, "x") < 0) {
        return NULL;
    }
    npy_intp N = PyArray_DIM(x, 0), C = PyArray_DIM(x, 1);
    if (num_groups_arg(args[7], fn, C, &G) < 0 ||
        nr_arg_array(args[2], fn, "mean", t, 2, NR_REQUIRED, &mean) < 0 ||
        nr_arg_array(args[3], fn, "rstd", t, 2, NR_REQUIRED, &rstd) < 0 ||
        nr_arg_dim(mean, fn, "mean", 0, N, "samples of x") < 0 ||
        nr_arg_dim(mean, fn, "mean", 1, G, "num_groups") < 0 ||
        nr_arg_same_shape(rstd, fn, "rstd", mean, "mean") < 0 ||
        nr_arg_channels(args[4], fn, "weight", t, NR_OPTIONAL, C, &w) < 0 ||
        nr_arg_channels(args[5], fn, "dweight", t, NR_OPTIONAL | NR_WRITABLE, C, &dw) < 0 ||
        nr_arg_channels(args[6], fn, "dbias", t, NR_OPTIONAL | NR_WRITABLE, C, &db) < 0 ||
        !(dx = nr_out_array(args[8], fn, "out", t, 3, PyArray_DIMS(x)))) {
        return NULL;
    }
    npy_intp S = PyArray_DIM(x, 2);
    int nthreads = nr_get_num_threads();
    size_t ws_size = NR_CALL(IS_F32(t), nr_groupnorm_backward_workspace, C, nthreads);
    void *ws = PyMem_RawMalloc(ws_size ? ws_size : 1);
    if (!ws) {
        Py_DECREF(dx);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_groupnorm_backward, PyArray_DATA(dx), nr_data_or_null(dw),
            nr_data_or_null(db), PyArray_DATA(dy), PyArray_DATA(x), PyArray_DATA(mean),
            PyArray_DATA(rstd), nr_data_or_null(w), N, C, S, G, ws, nthreads);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(ws);
    return (PyObject *)dx;
}

#define FASTCALL(name, doc) {#name, (PyCFunction)(void (*)(void))name, METH_FASTCALL, doc}

PyMethodDef nr_norms_methods[] = {
    FASTCALL(rms_norm_forward, "rms_norm_forward(x, weight, eps, out) -> (y, rstd)"),
    FASTCALL(rms_norm_backward, "rms_norm_backward(dy, x, rstd, weight, dweight, out) -> dx"),
    FASTCALL(group_norm_forward,
             "group_norm_forward(x, weight, bias, num_groups, eps, out) -> (y, mean, rstd)"),
    FASTCALL(group_norm_backward,
             "group_norm_backward(dy, x, mean, rstd, weight, dweight, dbias, num_groups, out) -> dx"),
    {NULL, NULL, 0, NULL},
};
