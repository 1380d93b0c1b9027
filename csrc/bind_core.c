/* Binding of the core kernels. Each function: check arguments, allocate outputs, release
 * the GIL around the kernel (but on small inputs: NR_KERNEL), return. Arrays arrive
 * C-contiguous from normreg.functional; these checks are what memory safety needs, with errors
 * that name the argument. */
#include "bind.h"

/* ---- linear --------------------------------------------------------------------------- */

/* BLAS dimensions are int. */
static int
linear_fits_int(const char *fn, npy_intp M, npy_intp K, npy_intp N)
{
    return nr_arg_fits_int(M, fn, "rows") < 0 || nr_arg_fits_int(K, fn, "in_features") < 0 ||
                   nr_arg_fits_int(N, fn, "out_features") < 0
               ? -1
               : 0;
}

#define LINEAR_SIZES "M rows of x|K in_features of x|N out_features of weight"

/* linear_forward(x (M, K), w (K, N), b (N) | None, out | None) -> y (M, N) */
static PyObject *
linear_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "linear_forward";
    PyArrayObject *x, *w, *b, *y;
    int t;
    nr_sizes s = {.what = LINEAR_SIZES};
    const nr_array_arg arrays[] = {
        {&x, 0, "x", "MK", NR_REQUIRED},
        {&w, 1, "weight", "KN", NR_REQUIRED},
        {&b, 2, "bias", "N", NR_OPTIONAL},
    };
    if (nr_arg_parse(args, nargs, 4, fn, &t, arrays, NR_NARRAYS(arrays), &s) < 0) {
        return NULL;
    }
    npy_intp M = nr_size(&s, 'M'), K = nr_size(&s, 'K'), N = nr_size(&s, 'N');
    npy_intp dims[2] = {M, N};
    if (linear_fits_int(fn, M, K, N) < 0 ||
        !(y = nr_out_array(args[3], fn, "out", t, 2, dims))) {
        return NULL;
    }
    NR_NOGIL(NR_CALL(t, nr_linear_forward, PyArray_DATA(y), PyArray_DATA(x), PyArray_DATA(w),
                     nr_data_or_null(b), M, K, N));
    return (PyObject *)y;
}

/* The sizes M, K, N of checked linear gradients' arguments, and dx (M, K) from `dx_obj` (an
 * array or None) when `need_dx` or given: 0, or -1 with an exception. */
static int
linear_grad_outputs(const char *fn, int t, const nr_sizes *s, PyObject *dx_obj, int need_dx,
                    npy_intp mkn[3], PyArrayObject **dx)
{
    mkn[0] = nr_size(s, 'M'), mkn[1] = nr_size(s, 'K'), mkn[2] = nr_size(s, 'N');
    *dx = NULL;
    if (linear_fits_int(fn, mkn[0], mkn[1], mkn[2]) < 0) {
        return -1;
    }
    if (need_dx || dx_obj != Py_None) {
        npy_intp dims[2] = {mkn[0], mkn[1]};
        if (!(*dx = nr_out_array(dx_obj, fn, "dx", t, 2, dims))) {
            return -1;
        }
    }
    return 0;
}

/* linear_backward(dy (M, N), x (M, K), w (K, N), dx_out | None, dw (K, N) | None,
 *                 db (N) | None, need_dx) -> dx (M, K) or None; dw, db are added to */
static PyObject *
linear_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "linear_backward";
    PyArrayObject *dy, *x, *w, *dw, *db, *dx;
    int t, need_dx;
    nr_sizes s = {.what = LINEAR_SIZES};
    const nr_array_arg arrays[] = {
        {&x, 1, "x", "MK", NR_REQUIRED},
        {&w, 2, "weight", "KN", NR_REQUIRED},
        {&dy, 0, "dy", "MN", NR_REQUIRED},
        {&dw, 4, "dweight", "KN", NR_OPTIONAL | NR_WRITABLE},
        {&db, 5, "dbias", "N", NR_OPTIONAL | NR_WRITABLE},
    };
    npy_intp mkn[3];
    if (nr_arg_parse(args, nargs, 7, fn, &t, arrays, NR_NARRAYS(arrays), &s) < 0 ||
        (need_dx = PyObject_IsTrue(args[6])) < 0 ||
        linear_grad_outputs(fn, t, &s, args[3], need_dx, mkn, &dx) < 0) {
        return NULL;
    }
    NR_NOGIL(NR_CALL(t, nr_linear_backward, nr_data_or_null(dx), nr_data_or_null(dw),
                     nr_data_or_null(db), PyArray_DATA(dy), PyArray_DATA(x), PyArray_DATA(w),
                     mkn[0], mkn[1], mkn[2], 1));
    if (!dx) {
        Py_RETURN_NONE;
    }
    return (PyObject *)dx;
}

/* linear_grads(dy (M, N), x (M, K), w (K, N), has_bias, need_dx)
 *   -> (dx (M, K) or None, dw (K, N), db (N) or None), all fresh: the gradients written, not
 *   added to zeros (one pass over dw fewer than zeros and linear_backward) */
static PyObject *
linear_grads(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "linear_grads";
    PyArrayObject *dy, *x, *w, *dx, *out[3] = {NULL, NULL, NULL};
    int t, has_bias, need_dx;
    nr_sizes s = {.what = LINEAR_SIZES};
    const nr_array_arg arrays[] = {
        {&x, 1, "x", "MK", NR_REQUIRED},
        {&w, 2, "weight", "KN", NR_REQUIRED},
        {&dy, 0, "dy", "MN", NR_REQUIRED},
    };
    npy_intp mkn[3];
    if (nr_arg_parse(args, nargs, 5, fn, &t, arrays, NR_NARRAYS(arrays), &s) < 0 ||
        (has_bias = PyObject_IsTrue(args[3])) < 0 || (need_dx = PyObject_IsTrue(args[4])) < 0 ||
        linear_grad_outputs(fn, t, &s, Py_None, need_dx, mkn, &dx) < 0) {
        return NULL;
    }
    out[0] = dx;
    npy_intp dwdims[2] = {mkn[1], mkn[2]};
    if (!(out[1] = nr_new_array(2, dwdims, t)) ||
        (has_bias && !(out[2] = nr_new_array(1, &mkn[2], t)))) {
        Py_XDECREF(out[0]);
        Py_XDECREF(out[1]);
        return NULL;
    }
    NR_NOGIL(NR_CALL(t, nr_linear_backward, nr_data_or_null(dx), PyArray_DATA(out[1]),
                     nr_data_or_null(out[2]), PyArray_DATA(dy), PyArray_DATA(x),
                     PyArray_DATA(w), mkn[0], mkn[1], mkn[2], 0));
    for (int i = 0; i < 3; i++) {
        if (!out[i]) {
            Py_INCREF(Py_None);
            out[i] = (PyArrayObject *)Py_None;
        }
    }
    return nr_tuple(3, out);
}

/* ---- relu ----------------------------------------------------------------------------- */

/* An element-wise op (x, out | None) -> y = f(x), same shape and dtype: f32, f64 its kernels. */
static PyObject *
unary(PyObject *const *args, Py_ssize_t nargs, const char *fn,
      void (*f32)(float *, const float *, int64_t),
      void (*f64)(double *, const double *, int64_t))
{
    PyArrayObject *x, *y;
    int t;
    nr_sizes s = {0};
    const nr_array_arg arrays[] = {{&x, 0, "x", "*", NR_REQUIRED}};
    if (nr_arg_parse(args, nargs, 2, fn, &t, arrays, NR_NARRAYS(arrays), &s) < 0 ||
        !(y = nr_out_like(args[1], fn, t, x))) {
        return NULL;
    }
    if (t == NPY_FLOAT32) {
        NR_KERNEL(PyArray_NBYTES(x), f32(PyArray_DATA(y), PyArray_DATA(x), PyArray_SIZE(x)));
    }
    else {
        NR_KERNEL(PyArray_NBYTES(x), f64(PyArray_DATA(y), PyArray_DATA(x), PyArray_SIZE(x)));
    }
    return (PyObject *)y;
}

/* relu_forward(x, out | None) -> y */
static PyObject *
relu_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return unary(args, nargs, "relu_forward", nr_dispatch.nr_relu_forward_f32,
                 nr_dispatch.nr_relu_forward_f64);
}

/* relu_backward(dy, y, out | None) -> dx */
static PyObject *
relu_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "relu_backward";
    PyArrayObject *dy, *y, *dx;
    int t;
    nr_sizes s = {0};
    const nr_array_arg arrays[] = {
        {&dy, 0, "dy", "*", NR_REQUIRED},
        {&y, 1, "y", "*", NR_REQUIRED},
    };
    if (nr_arg_parse(args, nargs, 3, fn, &t, arrays, NR_NARRAYS(arrays), &s) < 0 ||
        nr_arg_same_shape(dy, fn, "dy", y, "y") < 0 || !(dx = nr_out_like(args[2], fn, t, y))) {
        return NULL;
    }
    NR_KERNEL(PyArray_NBYTES(y), NR_CALL(t, nr_relu_backward, PyArray_DATA(dx),
                                         PyArray_DATA(dy), PyArray_DATA(y), PyArray_SIZE(y)));
    return (PyObject *)dx;
}

/* ---- batch norm ----------------------------------------------------------------------- */

#define BATCH_NORM_SIZES "C the channels of x"

/* batch_norm_forward(x (N, C, L), w | None, b | None, running_mean | None,
 *                    running_var | None, training, momentum, eps, out | None)
 *   -> (y (N, C, L), save_mean (C), save_rstd (C)); running stats updated in training */
static PyObject *
batch_norm_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "batch_norm_forward";
    PyArrayObject *x, *w, *b, *rm, *rv, *res[3]; /* y, save_mean, save_rstd */
    int t, training;
    double momentum, eps;
    nr_sizes s = {.what = BATCH_NORM_SIZES};
    const nr_array_arg arrays[] = {
        {&x, 0, "x", "NCL", NR_REQUIRED},
        {&w, 1, "weight", "C", NR_OPTIONAL},
        {&b, 2, "bias", "C", NR_OPTIONAL},
        {&rm, 3, "running_mean", "C", NR_OPTIONAL | NR_WRITABLE},
        {&rv, 4, "running_var", "C", NR_OPTIONAL | NR_WRITABLE},
    };
    if (nr_arg_parse(args, nargs, 9, fn, &t, arrays, NR_NARRAYS(arrays), &s) < 0 ||
        (training = PyObject_IsTrue(args[5])) < 0 ||
        nr_arg_double(args[6], fn, "momentum", &momentum) < 0 ||
        nr_arg_eps(args[7], fn, &eps) < 0) {
        return NULL;
    }
    npy_intp N = PyArray_DIM(x, 0), C = PyArray_DIM(x, 1), L = PyArray_DIM(x, 2);
    if (training && N * L < 1 && C > 0) {
        PyErr_Format(PyExc_ValueError, "%s: training needs at least one value per channel", fn);
        return NULL;
    }
    if (!training && (!rm || !rv)) {
        PyErr_Format(PyExc_ValueError, "%s: evaluation needs running_mean and running_var", fn);
        return NULL;
    }
    PyObject *result =
        nr_outputs(args[8], fn, t, x, 2, 1, &C, res) < 0 ? NULL : nr_tuple(3, res);
    if (!result) {
        return NULL;
    }
    /* the tuple holds res: y, save_mean, save_rstd */
    NR_KERNEL_WITH_WORKSPACE(
        PyArray_NBYTES(x), result, NR_CALL(t, nr_batchnorm_workspace, C, L, nthreads), fn,
        training
            ? NR_CALL(t, nr_batchnorm_forward_train, PyArray_DATA(res[0]), PyArray_DATA(res[1]),
                      PyArray_DATA(res[2]), nr_data_or_null(rm), nr_data_or_null(rv),
                      PyArray_DATA(x), nr_data_or_null(w), nr_data_or_null(b), N, C, L,
                      momentum, eps, ws, nthreads)
            : NR_CALL(t, nr_batchnorm_forward_eval, PyArray_DATA(res[0]), PyArray_DATA(res[1]),
                      PyArray_DATA(res[2]), PyArray_DATA(x), PyArray_DATA(rm), PyArray_DATA(rv),
                      nr_data_or_null(w), nr_data_or_null(b), N, C, L, eps, ws, nthreads));
    return result;
}

/* batch_norm_backward(dy, x (N, C, L), save_mean (C), save_rstd (C), w | None,
 *                     dw | None, db | None, training, out | None) -> dx; dw, db added to */
static PyObject *
batch_norm_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "batch_norm_backward";
    nr_norm_args a;
    int training;
    if (nr_norm_backward_args(args, nargs, 9, fn, NR_BATCH_NORM, &a) < 0) {
        return NULL;
    }
    PyObject *dx = (PyObject *)a.out[0];
    if ((training = PyObject_IsTrue(args[7])) < 0) {
        Py_DECREF(dx);
        return NULL;
    }
    const npy_intp N = nr_size(&a.s, 'N'), C = nr_size(&a.s, 'C'), L = nr_size(&a.s, 'L');
    NR_KERNEL_WITH_WORKSPACE(
        PyArray_NBYTES(a.x), dx, NR_CALL(a.t, nr_batchnorm_workspace, C, L, nthreads), fn,
        NR_CALL(a.t, nr_batchnorm_backward, PyArray_DATA(a.out[0]), nr_data_or_null(a.dw),
                nr_data_or_null(a.db), PyArray_DATA(a.dy), PyArray_DATA(a.x),
                PyArray_DATA(a.mean), PyArray_DATA(a.rstd), nr_data_or_null(a.w), N, C, L,
                training, ws, nthreads));
    return dx;
}

/* ---- dropout -------------------------------------------------------------------------- */

static int
probability(PyObject *obj, const char *fn, double *p)
{
    if (nr_arg_double(obj, fn, "p", p) < 0) {
        return -1;
    }
    if (!(*p >= 0 && *p <= 1)) {
        return nr_arg_out_of_range(fn, "p", "in [0, 1]", *p);
    }
    return 0;
}

/* dropout_forward(x, p, seed, offset, out | None) -> (y, mask uint8 (ceil(n / 8))) */
static PyObject *
dropout_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "dropout_forward";
    PyArrayObject *x, *y = NULL, *mask = NULL;
    int t;
    double p;
    unsigned long long seed, offset;
    nr_sizes s = {0};
    const nr_array_arg arrays[] = {{&x, 0, "x", "*", NR_REQUIRED}};
    if (nr_arg_parse(args, nargs, 5, fn, &t, arrays, NR_NARRAYS(arrays), &s) < 0 ||
        probability(args[1], fn, &p) < 0) {
        return NULL;
    }
    seed = PyLong_AsUnsignedLongLong(args[2]);
    if (seed == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    offset = PyLong_AsUnsignedLongLong(args[3]);
    if (offset == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    npy_intp n = PyArray_SIZE(x), nbytes = (n + 7) / 8;
    if (!(y = nr_out_like(args[4], fn, t, x)) ||
        !(mask = nr_new_array(1, &nbytes, NPY_UINT8))) {
        Py_XDECREF(y);
        return NULL;
    }
    NR_KERNEL(PyArray_NBYTES(x),
              NR_CALL(t, nr_dropout_forward, PyArray_DATA(y), PyArray_DATA(mask),
                      PyArray_DATA(x), n, p, seed, offset));
    return Py_BuildValue("(NN)", y, mask);
}

/* dropout_backward(dy, mask, p, out | None) -> dx */
static PyObject *
dropout_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "dropout_backward";
    PyArrayObject *dy, *mask, *dx;
    int t;
    double p;
    nr_sizes s = {0};
    const nr_array_arg arrays[] = {
        {&dy, 0, "dy", "*", NR_REQUIRED},
        {&mask, 1, "mask", "B", NR_U8},
    };
    if (nr_arg_parse(args, nargs, 4, fn, &t, arrays, NR_NARRAYS(arrays), &s) < 0 ||
        probability(args[2], fn, &p) < 0) {
        return NULL;
    }
    npy_intp n = PyArray_SIZE(dy);
    if (nr_arg_dim(mask, fn, "mask", 0, (n + 7) / 8, "ceil(dy.size / 8) bytes") < 0 ||
        !(dx = nr_out_like(args[3], fn, t, dy))) {
        return NULL;
    }
    NR_KERNEL(PyArray_NBYTES(dy), NR_CALL(t, nr_dropout_backward, PyArray_DATA(dx),
                                          PyArray_DATA(dy), PyArray_DATA(mask), n, p));
    return (PyObject *)dx;
}

/* philox4x32(c0, c1, c2, c3, k0, k1) -> 4 words: the generator itself, for known-answer tests */
static PyObject *
philox4x32(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    uint32_t words[6], out[4];
    if (nr_check_nargs(nargs, 6, "philox4x32") < 0) {
        return NULL;
    }
    for (int i = 0; i < 6; i++) {
        unsigned long v = PyLong_AsUnsignedLong(args[i]);
        if (v == (unsigned long)-1 && PyErr_Occurred()) {
            return NULL;
        }
        if (v > 0xFFFFFFFFul) {
            PyErr_SetString(PyExc_OverflowError, "philox4x32: arguments are 32-bit words");
            return NULL;
        }
        words[i] = (uint32_t)v;
    }
    nr_philox4x32(out, words, words + 4);
    return Py_BuildValue("(kkkk)", (unsigned long)out[0], (unsigned long)out[1],
                         (unsigned long)out[2], (unsigned long)out[3]);
}

/* exp(x, out | None) -> y: the softmax's exponential alone, for accuracy tests */
static PyObject *
exp_(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return unary(args, nargs, "exp", nr_dispatch.nr_exp_f32, nr_dispatch.nr_exp_f64);
}

/* ---- softmax cross-entropy ------------------------------------------------------------ */

#define CROSS_ENTROPY_SIZES "B rows of logits"

/* Every label is a class: in [0, K). */
static int
labels_in_range(PyArrayObject *labels, const char *fn, npy_intp K)
{
    const int64_t *lab = PyArray_DATA(labels);
    for (npy_intp i = 0; i < PyArray_DIM(labels, 0); i++) {
        if (lab[i] < 0 || lab[i] >= K) {
            PyErr_Format(PyExc_ValueError, "%s: labels[%zd] = %lld is out of range [0, %zd)",
                         fn, (Py_ssize_t)i, (long long)lab[i], (Py_ssize_t)K);
            return -1;
        }
    }
    return 0;
}

/* cross_entropy_forward(logits (B, K), labels int64 (B)) -> (loss, lse (B)) */
static PyObject *
cross_entropy_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "cross_entropy_forward";
    PyArrayObject *logits, *labels, *lse;
    int t;
    nr_sizes s = {.what = CROSS_ENTROPY_SIZES};
    const nr_array_arg arrays[] = {
        {&logits, 0, "logits", "BK", NR_REQUIRED},
        {&labels, 1, "labels", "B", NR_I64},
    };
    if (nr_arg_parse(args, nargs, 2, fn, &t, arrays, NR_NARRAYS(arrays), &s) < 0) {
        return NULL;
    }
    npy_intp B = PyArray_DIM(logits, 0), K = PyArray_DIM(logits, 1);
    if (labels_in_range(labels, fn, K) < 0 ||
        !(lse = (PyArrayObject *)PyArray_EMPTY(1, &B, t, 0))) {
        return NULL;
    }
    double loss;
    NR_KERNEL(PyArray_NBYTES(logits),
              loss = NR_CALL(t, nr_cross_entropy_forward, PyArray_DATA(lse),
                             PyArray_DATA(logits), PyArray_DATA(labels), B, K));
    return Py_BuildValue("(dN)", loss, lse);
}

/* cross_entropy_backward(logits (B, K), labels (B), lse (B), dloss, out | None) -> dlogits */
static PyObject *
cross_entropy_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "cross_entropy_backward";
    PyArrayObject *logits, *labels, *lse, *dlogits;
    int t;
    double dloss;
    nr_sizes s = {.what = CROSS_ENTROPY_SIZES};
    const nr_array_arg arrays[] = {
        {&logits, 0, "logits", "BK", NR_REQUIRED},
        {&labels, 1, "labels", "B", NR_I64},
        {&lse, 2, "lse", "B", NR_REQUIRED},
    };
    if (nr_arg_parse(args, nargs, 5, fn, &t, arrays, NR_NARRAYS(arrays), &s) < 0) {
        return NULL;
    }
    npy_intp B = PyArray_DIM(logits, 0), K = PyArray_DIM(logits, 1);
    if (labels_in_range(labels, fn, K) < 0 || nr_arg_double(args[3], fn, "dloss", &dloss) < 0 ||
        !(dlogits = nr_out_like(args[4], fn, t, logits))) {
        return NULL;
    }
    NR_KERNEL(PyArray_NBYTES(logits),
              NR_CALL(t, nr_cross_entropy_backward, PyArray_DATA(dlogits), PyArray_DATA(logits),
                      PyArray_DATA(labels), PyArray_DATA(lse), B, K, dloss));
    return (PyObject *)dlogits;
}

PyMethodDef nr_core_methods[] = {
    NR_FASTCALL(linear_forward, "linear_forward(x, weight, bias, out) -> y"),
    NR_FASTCALL(
        linear_backward,
        "linear_backward(dy, x, weight, dx_out, dweight, dbias, need_dx) -> dx or None"),
    NR_FASTCALL(linear_grads,
                "linear_grads(dy, x, weight, has_bias, need_dx) -> (dx or None, dweight, dbias "
                "or None)"),
    NR_FASTCALL(relu_forward, "relu_forward(x, out) -> y"),
    NR_FASTCALL(relu_backward, "relu_backward(dy, y, out) -> dx"),
    NR_FASTCALL(
        batch_norm_forward,
        "batch_norm_forward(x, weight, bias, running_mean, running_var, training, momentum, "
        "eps, out) -> (y, save_mean, save_rstd)"),
    NR_FASTCALL(
        batch_norm_backward,
        "batch_norm_backward(dy, x, save_mean, save_rstd, weight, dweight, dbias, training, "
        "out) -> dx"),
    NR_FASTCALL(dropout_forward, "dropout_forward(x, p, seed, offset, out) -> (y, mask)"),
    NR_FASTCALL(dropout_backward, "dropout_backward(dy, mask, p, out) -> dx"),
    NR_FASTCALL(philox4x32, "philox4x32(c0, c1, c2, c3, k0, k1) -> (w0, w1, w2, w3)"),
    {"exp", (PyCFunction)(void (*)(void))exp_, METH_FASTCALL,
     "exp(x, out) -> y: the softmax's exponential, for accuracy tests"},
    NR_FASTCALL(cross_entropy_forward, "cross_entropy_forward(logits, labels) -> (loss, lse)"),
    NR_FASTCALL(cross_entropy_backward,
                "cross_entropy_backward(logits, labels, lse, dloss, out) -> dlogits"),
    {NULL, NULL, 0, NULL},
};
