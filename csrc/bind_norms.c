/* Binding of the extra normalization kernels (RMSNorm, GroupNorm).
 * nr_norm_forward_args and nr_norm_backward_args check the arguments and allocate the
 * outputs; each function then calls its kernel without the GIL and returns. Arrays arrive
 * C-contiguous from normreg.functional; these checks are what memory safety needs. */
#include "bind.h"
#include "nr_norms.h"

/* ---- RMSNorm -------------------------------------------------------------------------- */

/* rms_norm_forward(x (M, D), w (D) | None, eps, out | None) -> (y (M, D), rstd (M)) */
static PyObject *
rms_norm_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    nr_norm_args a;
    if (nr_norm_forward_args(args, nargs, 4, "rms_norm_forward", NR_RMS_NORM, &a) < 0) {
        return NULL;
    }
    NR_NOGIL(NR_CALL(a.t, nr_rmsnorm_forward, PyArray_DATA(a.out[0]), PyArray_DATA(a.out[1]),
                     PyArray_DATA(a.x), nr_data_or_null(a.w), nr_size(&a.s, 'M'),
                     nr_size(&a.s, 'D'), a.eps));
    return nr_tuple(2, a.out);
}

/* rms_norm_backward(dy (M, D), x (M, D), rstd (M), w (D) | None, dw (D) | None, out | None)
 *   -> dx; dw added to */
static PyObject *
rms_norm_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "rms_norm_backward";
    nr_norm_args a;
    if (nr_norm_backward_args(args, nargs, 6, fn, NR_RMS_NORM, &a) < 0) {
        return NULL;
    }
    const npy_intp M = nr_size(&a.s, 'M'), D = nr_size(&a.s, 'D');
    NR_NOGIL_WITH_WORKSPACE(
        a.out[0], NR_CALL(a.t, nr_rmsnorm_backward_workspace, D, nthreads), fn,
        NR_CALL(a.t, nr_rmsnorm_backward, PyArray_DATA(a.out[0]), nr_data_or_null(a.dw),
                PyArray_DATA(a.dy), PyArray_DATA(a.x), PyArray_DATA(a.rstd),
                nr_data_or_null(a.w), M, D, ws, nthreads));
    return (PyObject *)a.out[0];
}

/* ---- GroupNorm ------------------------------------------------------------------------ */

/* group_norm_forward(x (N, C, S), w (C) | None, b (C) | None, num_groups, eps, out | None)
 *   -> (y (N, C, S), mean (N, G), rstd (N, G)) */
static PyObject *
group_norm_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    nr_norm_args a;
    if (nr_norm_forward_args(args, nargs, 6, "group_norm_forward", NR_GROUP_NORM, &a) < 0) {
        return NULL;
    }
    NR_NOGIL(NR_CALL(a.t, nr_groupnorm_forward, PyArray_DATA(a.out[0]), PyArray_DATA(a.out[1]),
                     PyArray_DATA(a.out[2]), PyArray_DATA(a.x), nr_data_or_null(a.w),
                     nr_data_or_null(a.b), nr_size(&a.s, 'N'), nr_size(&a.s, 'C'),
                     nr_size(&a.s, 'S'), nr_size(&a.s, 'G'), a.eps));
    return nr_tuple(3, a.out);
}

/* group_norm_backward(dy, x (N, C, S), mean (N, G), rstd (N, G), w (C) | None, dw | None,
 *                     db | None, num_groups, out | None) -> dx; dw, db added to */
static PyObject *
group_norm_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "group_norm_backward";
    nr_norm_args a;
    if (nr_norm_backward_args(args, nargs, 9, fn, NR_GROUP_NORM, &a) < 0) {
        return NULL;
    }
    const npy_intp N = nr_size(&a.s, 'N'), C = nr_size(&a.s, 'C'), S = nr_size(&a.s, 'S');
    NR_NOGIL_WITH_WORKSPACE(
        a.out[0], NR_CALL(a.t, nr_groupnorm_backward_workspace, C, nthreads), fn,
        NR_CALL(a.t, nr_groupnorm_backward, PyArray_DATA(a.out[0]), nr_data_or_null(a.dw),
                nr_data_or_null(a.db), PyArray_DATA(a.dy), PyArray_DATA(a.x),
                PyArray_DATA(a.mean), PyArray_DATA(a.rstd), nr_data_or_null(a.w), N, C, S,
                nr_size(&a.s, 'G'), ws, nthreads));
    return (PyObject *)a.out[0];
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
