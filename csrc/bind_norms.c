/* Binding of the extra normalization kernels (RMSNorm, GroupNorm). Each function: check
 * arguments, allocate outputs, release the GIL around the kernel, return. Arrays arrive
 * C-contiguous from normreg.functional; these checks are what memory safety needs. */
#include "bind.h"
#include "nr_norms.h"

/* ---- RMSNorm -------------------------------------------------------------------------- */

#define RMS_NORM_SIZES "M rows of x|D normalized size of x"

/* rms_norm_forward(x (M, D), w (D) | None, eps, out | None) -> (y (M, D), rstd (M)) */
static PyObject *
rms_norm_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "rms_norm_forward";
    PyArrayObject *x, *w, *res[2]; /* y, rstd */
    int t;
    double eps;
    nr_sizes s = {.what = RMS_NORM_SIZES};
    const nr_array_arg arrays[] = {
        {&x, 0, "x", "MD", NR_REQUIRED},
        {&w, 1, "weight", "D", NR_OPTIONAL},
    };
    if (nr_arg_parse(args, nargs, 4, fn, &t, arrays, NR_NARRAYS(arrays), &s) < 0 ||
        nr_arg_eps(args[2], fn, &eps) < 0) {
        return NULL;
    }
    npy_intp M = PyArray_DIM(x, 0), D = PyArray_DIM(x, 1);
    if (nr_outputs(args[3], fn, t, x, 1, 1, &M, res) < 0) {
        return NULL;
    }
    NR_NOGIL(NR_CALL(t, nr_rmsnorm_forward, PyArray_DATA(res[0]), PyArray_DATA(res[1]),
                     PyArray_DATA(x), nr_data_or_null(w), M, D, eps));
    return nr_tuple(2, res);
}

/* rms_norm_backward(dy (M, D), x (M, D), rstd (M), w (D) | None, dw (D) | None, out | None)
 *   -> dx; dw added to */
static PyObject *
rms_norm_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "rms_norm_backward";
    PyArrayObject *dy, *x, *rstd, *w, *dw, *dx;
    int t;
    nr_sizes s = {.what = RMS_NORM_SIZES};
    const nr_array_arg arrays[] = {
        {&x, 1, "x", "MD", NR_REQUIRED},
        {&dy, 0, "dy", "=x", NR_REQUIRED},
        {&rstd, 2, "rstd", "M", NR_REQUIRED},
        {&w, 3, "weight", "D", NR_OPTIONAL},
        {&dw, 4, "dweight", "D", NR_OPTIONAL | NR_WRITABLE},
    };
    if (nr_arg_parse(args, nargs, 6, fn, &t, arrays, NR_NARRAYS(arrays), &s) < 0) {
        return NULL;
    }
    npy_intp M = PyArray_DIM(x, 0), D = PyArray_DIM(x, 1);
    if (!(dx = nr_out_array(args[5], fn, "out", t, 2, PyArray_DIMS(x)))) {
        return NULL;
    }
    const int nthreads = nr_get_num_threads();
    NR_NOGIL_WITH_WORKSPACE(
        dx, NR_CALL(t, nr_rmsnorm_backward_workspace, D, nthreads), fn,
        NR_CALL(t, nr_rmsnorm_backward, PyArray_DATA(dx), nr_data_or_null(dw), PyArray_DATA(dy),
                PyArray_DATA(x), PyArray_DATA(rstd), nr_data_or_null(w), M, D, ws, nthreads));
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
        PyErr_Format(
            PyExc_ValueError,
            "%s: argument 'num_groups' must be >= 1 and divide the %zd channels, got %zd", fn,
            (Py_ssize_t)C, g);
        return -1;
    }
    *G = (npy_intp)g;
    return 0;
}

#define GROUP_NORM_SIZES "C the channels of x|N samples of x|G num_groups"

/* group_norm_forward(x (N, C, S), w (C) | None, b (C) | None, num_groups, eps, out | None)
 *   -> (y (N, C, S), mean (N, G), rstd (N, G)) */
static PyObject *
group_norm_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "group_norm_forward";
    PyArrayObject *x, *w, *b, *res[3]; /* y, mean, rstd */
    int t;
    double eps;
    npy_intp G;
    nr_sizes s = {.what = GROUP_NORM_SIZES};
    const nr_array_arg arrays[] = {
        {&x, 0, "x", "NCS", NR_REQUIRED},
        {&w, 1, "weight", "C", NR_OPTIONAL},
        {&b, 2, "bias", "C", NR_OPTIONAL},
    };
    if (nr_arg_parse(args, nargs, 6, fn, &t, arrays, NR_NARRAYS(arrays), &s) < 0 ||
        num_groups_arg(args[3], fn, PyArray_DIM(x, 1), &G) < 0 ||
        nr_arg_eps(args[4], fn, &eps) < 0) {
        return NULL;
    }
    npy_intp N = PyArray_DIM(x, 0), C = PyArray_DIM(x, 1), S = PyArray_DIM(x, 2);
    npy_intp sdims[2] = {N, G};
    if (nr_outputs(args[5], fn, t, x, 2, 2, sdims, res) < 0) {
        return NULL;
    }
    NR_NOGIL(NR_CALL(t, nr_groupnorm_forward, PyArray_DATA(res[0]), PyArray_DATA(res[1]),
                     PyArray_DATA(res[2]), PyArray_DATA(x), nr_data_or_null(w),
                     nr_data_or_null(b), N, C, S, G, eps));
    return nr_tuple(3, res);
}

/* group_norm_backward(dy, x (N, C, S), mean (N, G), rstd (N, G), w (C) | None, dw | None,
 *                     db | None, num_groups, out | None) -> dx; dw, db added to */
static PyObject *
group_norm_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "group_norm_backward";
    PyArrayObject *dy, *x, *mean, *rstd, *w, *dw, *db, *dx;
    int t;
    npy_intp G;
    nr_sizes s = {.what = GROUP_NORM_SIZES};
    const nr_array_arg data[] = {
        {&x, 1, "x", "NCS", NR_REQUIRED},
        {&dy, 0, "dy", "=x", NR_REQUIRED},
    };
    /* the statistics have num_groups columns: read once x gave the channels to divide */
    const nr_array_arg stats[] = {
        {&mean, 2, "mean", "NG", NR_REQUIRED},
        {&rstd, 3, "rstd", "=mean", NR_REQUIRED},
        {&w, 4, "weight", "C", NR_OPTIONAL},
        {&dw, 5, "dweight", "C", NR_OPTIONAL | NR_WRITABLE},
        {&db, 6, "dbias", "C", NR_OPTIONAL | NR_WRITABLE},
    };
    if (nr_arg_parse(args, nargs, 9, fn, &t, data, NR_NARRAYS(data), &s) < 0 ||
        num_groups_arg(args[7], fn, PyArray_DIM(x, 1), &G) < 0) {
        return NULL;
    }
    nr_size_set(&s, 'G', G);
    if (nr_arg_arrays(args, fn, t, stats, NR_NARRAYS(stats), &s) < 0) {
        return NULL;
    }
    npy_intp N = PyArray_DIM(x, 0), C = PyArray_DIM(x, 1), S = PyArray_DIM(x, 2);
    if (!(dx = nr_out_array(args[8], fn, "out", t, 3, PyArray_DIMS(x)))) {
        return NULL;
    }
    const int nthreads = nr_get_num_threads();
    NR_NOGIL_WITH_WORKSPACE(dx, NR_CALL(t, nr_groupnorm_backward_workspace, C, nthreads), fn,
                            NR_CALL(t, nr_groupnorm_backward, PyArray_DATA(dx),
                                    nr_data_or_null(dw), nr_data_or_null(db), PyArray_DATA(dy),
                                    PyArray_DATA(x), PyArray_DATA(mean), PyArray_DATA(rstd),
                                    nr_data_or_null(w), N, C, S, G, ws, nthreads));
    return (PyObject *)dx;
}

PyMethodDef nr_norms_methods[] = {
    NR_FASTCALL(rms_norm_forward, "rms_norm_forward(x, weight, eps, out) -> (y, rstd)"),
    NR_FASTCALL(rms_norm_backward,
                "rms_norm_backward(dy, x, rstd, weight, dweight, out) -> dx"),
    NR_FASTCALL(group_norm_forward,
                "group_norm_forward(x, weight, bias, num_groups, eps, out) -> (y, mean, rstd)"),
    NR_FASTCALL(group_norm_backward, "group_norm_backward(dy, x, mean, rstd, weight, dweight, "
                                     "dbias, num_groups, out) -> dx"),
    {NULL, NULL, 0, NULL},
};
