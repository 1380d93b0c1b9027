/* Binding of the core kernels. Each function: check arguments, allocate outputs, release
 * the GIL around the kernel, return. Arrays arrive C-contiguous from normreg.functional;
 * these checks are what memory safety needs, with errors that name the argument. */
#include "bind.h"

#define IS_F32(typenum) ((typenum) == NPY_FLOAT32)

/* ---- linear --------------------------------------------------------------------------- */

/* linear_forward(x (M, K), w (K, N), b (N) | None, out | None) -> y (M, N) */
static PyObject *
linear_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "linear_forward";
    PyArrayObject *x, *w, *b, *y = NULL;
    int t;
    if (nr_check_nargs(nargs, 4, fn) < 0 || nr_arg_float_dtype(args[0], fn, "x", &t) < 0 ||
        nr_arg_array(args[0], fn, "x", t, 2, NR_REQUIRED, &x) < 0 ||
        nr_arg_array(args[1], fn, "weight", t, 2, NR_REQUIRED, &w) < 0 ||
        nr_arg_array(args[2], fn, "bias", t, 1, NR_OPTIONAL, &b) < 0 ||
        nr_arg_dim(w, fn, "weight", 0, PyArray_DIM(x, 1), "in_features of x") < 0) {
        return NULL;
    }
    npy_intp M = PyArray_DIM(x, 0), K = PyArray_DIM(x, 1), N = PyArray_DIM(w, 1);
    if ((b && nr_arg_dim(b, fn, "bias", 0, N, "out_features of weight") < 0) ||
        nr_arg_fits_int(M, fn, "rows") < 0 || nr_arg_fits_int(K, fn, "in_features") < 0 ||
        nr_arg_fits_int(N, fn, "out_features") < 0) {
        return NULL;
    }
    npy_intp dims[2] = {M, N};
    if (!(y = nr_out_array(args[3], fn, "out", t, 2, dims))) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_linear_forward, PyArray_DATA(y), PyArray_DATA(x), PyArray_DATA(w),
            nr_data_or_null(b), M, K, N);
    Py_END_ALLOW_THREADS
    return (PyObject *)y;
}

/* linear_backward(dy (M, N), x (M, K), w (K, N), dx_out | None, dw (K, N) | None,
 *                 db (N) | None, need_dx) -> dx (M, K) or None; dw, db are added to */
static PyObject *
linear_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "linear_backward";
    PyArrayObject *dy, *x, *w, *dw, *db, *dx = NULL;
    int t, need_dx;
    if (nr_check_nargs(nargs, 7, fn) < 0 || nr_arg_float_dtype(args[0], fn, "dy", &t) < 0 ||
        nr_arg_array(args[0], fn, "dy", t, 2, NR_REQUIRED, &dy) < 0 ||
        nr_arg_array(args[1], fn, "x", t, 2, NR_REQUIRED, &x) < 0 ||
        nr_arg_array(args[2], fn, "weight", t, 2, NR_REQUIRED, &w) < 0 ||
        nr_arg_array(args[4], fn, "dweight", t, 2, NR_OPTIONAL | NR_WRITABLE, &dw) < 0 ||
        nr_arg_array(args[5], fn, "dbias", t, 1, NR_OPTIONAL | NR_WRITABLE, &db) < 0 ||
        (need_dx = PyObject_IsTrue(args[6])) < 0) {
        return NULL;
    }
    npy_intp M = PyArray_DIM(x, 0), K = PyArray_DIM(x, 1), N = PyArray_DIM(w, 1);
    if (nr_arg_dim(w, fn, "weight", 0, K, "in_features of x") < 0 ||
        nr_arg_dim(dy, fn, "dy", 0, M, "rows of x") < 0 ||
        nr_arg_dim(dy, fn, "dy", 1, N, "out_features of weight") < 0 ||
        (dw && (nr_arg_dim(dw, fn, "dweight", 0, K, "in_features") < 0 ||
                nr_arg_dim(dw, fn, "dweight", 1, N, "out_features") < 0)) ||
        (db && nr_arg_dim(db, fn, "dbias", 0, N, "out_features") < 0) ||
        nr_arg_fits_int(M, fn, "rows") < 0 || nr_arg_fits_int(K, fn, "in_features") < 0 ||
        nr_arg_fits_int(N, fn, "out_features") < 0) {
        return NULL;
    }
    if (need_dx || args[3] != Py_None) {
        npy_intp dims[2] = {M, K};
        if (!(dx = nr_out_array(args[3], fn, "dx", t, 2, dims))) {
            return NULL;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_linear_backward, nr_data_or_null(dx), nr_data_or_null(dw),
            nr_data_or_null(db), PyArray_DATA(dy), PyArray_DATA(x), PyArray_DATA(w), M, K, N);
    Py_END_ALLOW_THREADS
    if (!dx) {
        Py_RETURN_NONE;
    }
    return (PyObject *)dx;
}

/* ---- relu ----------------------------------------------------------------------------- */

/* relu_forward(x, out | None) -> y */
static PyObject *
relu_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "relu_forward";
    PyArrayObject *x, *y;
    int t;
    if (nr_check_nargs(nargs, 2, fn) < 0 || nr_arg_float_dtype(args[0], fn, "x", &t) < 0 ||
        nr_arg_array(args[0], fn, "x", t, -1, NR_REQUIRED, &x) < 0 ||
        !(y = nr_out_array(args[1], fn, "out", t, PyArray_NDIM(x), PyArray_DIMS(x)))) {
        return NULL;
    }
    npy_intp n = PyArray_SIZE(x);
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_relu_forward, PyArray_DATA(y), PyArray_DATA(x), n);
    Py_END_ALLOW_THREADS
    return (PyObject *)y;
}

/* relu_backward(dy, y, out | None) -> dx */
static PyObject *
relu_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "relu_backward";
    PyArrayObject *dy, *y, *dx;
    int t;
    if (nr_check_nargs(nargs, 3, fn) < 0 || nr_arg_float_dtype(args[0], fn, "dy", &t) < 0 ||
        nr_arg_array(args[0], fn, "dy", t, -1, NR_REQUIRED, &dy) < 0 ||
        nr_arg_array(args[1], fn, "y", t, -1, NR_REQUIRED, &y) < 0 ||
        nr_arg_same_shape(dy, fn, "dy", y, "y") < 0 ||
        !(dx = nr_out_array(args[2], fn, "out", t, PyArray_NDIM(y), PyArray_DIMS(y)))) {
        return NULL;
    }
    npy_intp n = PyArray_SIZE(y);
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_relu_backward, PyArray_DATA(dx), PyArray_DATA(dy), PyArray_DATA(y), n);
    Py_END_ALLOW_THREADS
    return (PyObject *)dx;
}

/* ---- layer norm ----------------------------------------------------------------------- */

/* layer_norm_forward(x (M, D), w (D) | None, b (D) | None, eps, out | None)
 *   -> (y (M, D), mean (M), rstd (M)) */
static PyObject *
layer_norm_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "layer_norm_forward";
    PyArrayObject *x, *w, *b, *y = NULL, *mean = NULL, *rstd = NULL;
    int t;
    double eps;
    if (nr_check_nargs(nargs, 5, fn) < 0 || nr_arg_float_dtype(args[0], fn, "x", &t) < 0 ||
        nr_arg_array(args[0], fn, "x", t, 2, NR_REQUIRED, &x) < 0 ||
        nr_arg_array(args[1], fn, "weight", t, 1, NR_OPTIONAL, &w) < 0 ||
        nr_arg_array(args[2], fn, "bias", t, 1, NR_OPTIONAL, &b) < 0 ||
        nr_arg_double(args[3], fn, "eps", &eps) < 0) {
        return NULL;
    }
    npy_intp M = PyArray_DIM(x, 0), D = PyArray_DIM(x, 1);
    if ((w && nr_arg_dim(w, fn, "weight", 0, D, "normalized size of x") < 0) ||
        (b && nr_arg_dim(b, fn, "bias", 0, D, "normalized size of x") < 0)) {
        return NULL;
    }
    if (!(eps >= 0)) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'eps' must be >= 0, got %g", fn, eps);
        return NULL;
    }
    if (!(y = nr_out_array(args[4], fn, "out", t, 2, PyArray_DIMS(x))) ||
        !(mean = (PyArrayObject *)PyArray_EMPTY(1, &M, t, 0)) ||
        !(rstd = (PyArrayObject *)PyArray_EMPTY(1, &M, t, 0))) {
        goto fail;
    }
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_layernorm_forward, PyArray_DATA(y), PyArray_DATA(mean),
            PyArray_DATA(rstd), PyArray_DATA(x), nr_data_or_null(w), nr_data_or_null(b), M, D,
            eps);
    Py_END_ALLOW_THREADS
    return nr_tuple3(y, mean, rstd); /* no format string to parse, unlike Py_BuildValue */
fail:
    Py_XDECREF(y);
    Py_XDECREF(mean);
    Py_XDECREF(rstd);
    return NULL;
}

/* layer_norm_backward(dy (M, D), x (M, D), mean (M), rstd (M), w (D) | None,
 *                     dw (D) | None, db (D) | None, out | None) -> dx; dw, db added to */
static PyObject *
layer_norm_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "layer_norm_backward";
    PyArrayObject *dy, *x, *mean, *rstd, *w, *dw, *db, *dx = NULL;
    int t;
    if (nr_check_nargs(nargs, 8, fn) < 0 || nr_arg_float_dtype(args[0], fn, "dy", &t) < 0 ||
        nr_arg_array(args[0], fn, "dy", t, 2, NR_REQUIRED, &dy) < 0 ||
        nr_arg_array(args[1], fn, "x", t, 2, NR_REQUIRED, &x) < 0 ||
        nr_arg_array(args[2], fn, "mean", t, 1, NR_REQUIRED, &mean) < 0 ||
        nr_arg_array(args[3], fn, "rstd", t, 1, NR_REQUIRED, &rstd) < 0 ||
        nr_arg_array(args[4], fn, "weight", t, 1, NR_OPTIONAL, &w) < 0 ||
        nr_arg_array(args[5], fn, "dweight", t, 1, NR_OPTIONAL | NR_WRITABLE, &dw) < 0 ||
        nr_arg_array(args[6], fn, "dbias", t, 1, NR_OPTIONAL | NR_WRITABLE, &db) < 0 ||
        nr_arg_same_shape(dy, fn, "dy", x, "x") < 0) {
        return NULL;
    }
    npy_intp M = PyArray_DIM(x, 0), D = PyArray_DIM(x, 1);
    if (nr_arg_dim(mean, fn, "mean", 0, M, "rows of x") < 0 ||
        nr_arg_dim(rstd, fn, "rstd", 0, M, "rows of x") < 0 ||
        (w && nr_arg_dim(w, fn, "weight", 0, D, "normalized size of x") < 0) ||
        (dw && nr_arg_dim(dw, fn, "dweight", 0, D, "normalized size of x") < 0) ||
        (db && nr_arg_dim(db, fn, "dbias", 0, D, "normalized size of x") < 0) ||
        !(dx = nr_out_array(args[7], fn, "out", t, 2, PyArray_DIMS(x)))) {
        return NULL;
    }
    int nthreads = nr_get_num_threads();
    size_t ws_size = NR_CALL(IS_F32(t), nr_layernorm_backward_workspace, D, nthreads);
    void *ws = PyMem_RawMalloc(ws_size ? ws_size : 1);
    if (!ws) {
        Py_DECREF(dx);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_layernorm_backward, PyArray_DATA(dx), nr_data_or_null(dw),
            nr_data_or_null(db), PyArray_DATA(dy), PyArray_DATA(x), PyArray_DATA(mean),
            PyArray_DATA(rstd), nr_data_or_null(w), M, D, ws, nthreads);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(ws);
    return (PyObject *)dx;
}

/* ---- batch norm ----------------------------------------------------------------------- */

/* batch_norm_forward(x (N, C, L), w | None, b | None, running_mean | None,
 *                    running_var | None, training, momentum, eps, out | None)
 *   -> (y (N, C, L), save_mean (C), save_rstd (C)); running stats updated in training */
static PyObject *
batch_norm_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "batch_norm_forward";
    PyArrayObject *x, *w, *b, *rm, *rv, *y = NULL, *mean = NULL, *rstd = NULL;
    int t, training;
    double momentum, eps;
    void *ws = NULL;
    if (nr_check_nargs(nargs, 9, fn) < 0 || nr_arg_float_dtype(args[0], fn, "x", &t) < 0 ||
        nr_arg_array(args[0], fn, "x", t, 3, NR_REQUIRED, &x) < 0) {
        return NULL;
    }
    npy_intp N = PyArray_DIM(x, 0), C = PyArray_DIM(x, 1), L = PyArray_DIM(x, 2);
    if (nr_arg_channels(args[1], fn, "weight", t, NR_OPTIONAL, C, &w) < 0 ||
        nr_arg_channels(args[2], fn, "bias", t, NR_OPTIONAL, C, &b) < 0 ||
        nr_arg_channels(args[3], fn, "running_mean", t, NR_OPTIONAL | NR_WRITABLE, C, &rm) < 0 ||
        nr_arg_channels(args[4], fn, "running_var", t, NR_OPTIONAL | NR_WRITABLE, C, &rv) < 0 ||
        (training = PyObject_IsTrue(args[5])) < 0 ||
        nr_arg_double(args[6], fn, "momentum", &momentum) < 0 ||
        nr_arg_double(args[7], fn, "eps", &eps) < 0) {
        return NULL;
    }
    if (!(eps >= 0)) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'eps' must be >= 0, got %g", fn, eps);
        return NULL;
    }
    if (training && N * L < 1 && C > 0) {
        PyErr_Format(PyExc_ValueError, "%s: training needs at least one value per channel", fn);
        return NULL;
    }
    if (!training && (!rm || !rv)) {
        PyErr_Format(PyExc_ValueError, "%s: evaluation needs running_mean and running_var", fn);
        return NULL;
    }
    int nthreads = nr_get_num_threads();
    size_t ws_size = NR_CALL(IS_F32(t), nr_batchnorm_workspace, C, nthreads);
    if (!(y = nr_out_array(args[8], fn, "out", t, 3, PyArray_DIMS(x))) ||
        !(mean = (PyArrayObject *)PyArray_EMPTY(1, &C, t, 0)) ||
        !(rstd = (PyArrayObject *)PyArray_EMPTY(1, &C, t, 0))) {
        goto fail;
    }
    if (!(ws = PyMem_RawMalloc(ws_size ? ws_size : 1))) {
        PyErr_NoMemory();
        goto fail;
    }
    Py_BEGIN_ALLOW_THREADS
    if (training) {
        NR_CALL(IS_F32(t), nr_batchnorm_forward_train, PyArray_DATA(y), PyArray_DATA(mean),
                PyArray_DATA(rstd), nr_data_or_null(rm), nr_data_or_null(rv), PyArray_DATA(x),
                nr_data_or_null(w), nr_data_or_null(b), N, C, L, momentum, eps, ws, nthreads);
    }
    else {
        NR_CALL(IS_F32(t), nr_batchnorm_forward_eval, PyArray_DATA(y), PyArray_DATA(mean),
                PyArray_DATA(rstd), PyArray_DATA(x), PyArray_DATA(rm), PyArray_DATA(rv),
                nr_data_or_null(w), nr_data_or_null(b), N, C, L, eps);
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(ws);
    return Py_BuildValue("(NNN)", y, mean, rstd);
fail:
    PyMem_RawFree(ws);
    Py_XDECREF(y);
    Py_XDECREF(mean);
    Py_XDECREF(rstd);
    return NULL;
}

/* batch_norm_backward(dy, x (N, C, L), save_mean (C), save_rstd (C), w | None,
 *                     dw | None, db | None, training, out | None) -> dx; dw, db added to */
static PyObject *
batch_norm_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "batch_norm_backward";
    PyArrayObject *dy, *x, *mean, *rstd, *w, *dw, *db, *dx = NULL;
    int t, training;
    if (nr_check_nargs(nargs, 9, fn) < 0 || nr_arg_float_dtype(args[0], fn, "dy", &t) < 0 ||
        nr_arg_array(args[0], fn, "dy", t, 3, NR_REQUIRED, &dy) < 0 ||
        nr_arg_array(args[1], fn, "x", t, 3, NR_REQUIRED, &x) < 0 ||
        nr_arg_same_shape(dy, fn, "dy", x, "x") < 0) {
        return NULL;
    }
    npy_intp N = PyArray_DIM(x, 0), C = PyArray_DIM(x, 1), L = PyArray_DIM(x, 2);
    if (nr_arg_channels(args[2], fn, "save_mean", t, NR_REQUIRED, C, &mean) < 0 ||
        nr_arg_channels(args[3], fn, "save_rstd", t, NR_REQUIRED, C, &rstd) < 0 ||
        nr_arg_channels(args[4], fn, "weight", t, NR_OPTIONAL, C, &w) < 0 ||
        nr_arg_channels(args[5], fn, "dweight", t, NR_OPTIONAL | NR_WRITABLE, C, &dw) < 0 ||
        nr_arg_channels(args[6], fn, "dbias", t, NR_OPTIONAL | NR_WRITABLE, C, &db) < 0 ||
        (training = PyObject_IsTrue(args[7])) < 0 ||
        !(dx = nr_out_array(args[8], fn, "out", t, 3, PyArray_DIMS(x)))) {
        return NULL;
    }
    int nthreads = nr_get_num_threads();
    size_t ws_size = NR_CALL(IS_F32(t), nr_batchnorm_workspace, C, nthreads);
    void *ws = PyMem_RawMalloc(ws_size ? ws_size : 1);
    if (!ws) {
        Py_DECREF(dx);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_batchnorm_backward, PyArray_DATA(dx), nr_data_or_null(dw),
            nr_data_or_null(db), PyArray_DATA(dy), PyArray_DATA(x), PyArray_DATA(mean),
            PyArray_DATA(rstd), nr_data_or_null(w), N, C, L, training, ws, nthreads);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(ws);
    return (PyObject *)dx;
}

/* ---- dropout -------------------------------------------------------------------------- */

static int
probability(PyObject *obj, const char *fn, double *p)
{
    if (nr_arg_double(obj, fn, "p", p) < 0) {
        return -1;
    }
    if (!(*p >= 0 && *p <= 1)) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'p' must be in [0, 1], got %g", fn, *p);
        return -1;
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
    if (nr_check_nargs(nargs, 5, fn) < 0 || nr_arg_float_dtype(args[0], fn, "x", &t) < 0 ||
        nr_arg_array(args[0], fn, "x", t, -1, NR_REQUIRED, &x) < 0 ||
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
    if (!(y = nr_out_array(args[4], fn, "out", t, PyArray_NDIM(x), PyArray_DIMS(x))) ||
        !(mask = nr_new_array(1, &nbytes, NPY_UINT8))) {
        Py_XDECREF(y);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_dropout_forward, PyArray_DATA(y), PyArray_DATA(mask), PyArray_DATA(x),
            n, p, seed, offset);
    Py_END_ALLOW_THREADS
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
    if (nr_check_nargs(nargs, 4, fn) < 0 || nr_arg_float_dtype(args[0], fn, "dy", &t) < 0 ||
        nr_arg_array(args[0], fn, "dy", t, -1, NR_REQUIRED, &dy) < 0 ||
        nr_arg_array(args[1], fn, "mask", NPY_UINT8, 1, NR_REQUIRED, &mask) < 0 ||
        probability(args[2], fn, &p) < 0) {
        return NULL;
    }
    npy_intp n = PyArray_SIZE(dy);
    if (nr_arg_dim(mask, fn, "mask", 0, (n + 7) / 8, "ceil(dy.size / 8) bytes") < 0 ||
        !(dx = nr_out_array(args[3], fn, "out", t, PyArray_NDIM(dy), PyArray_DIMS(dy)))) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_dropout_backward, PyArray_DATA(dx), PyArray_DATA(dy),
            PyArray_DATA(mask), n, p);
    Py_END_ALLOW_THREADS
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

/* ---- softmax cross-entropy ------------------------------------------------------------ */

static int
labels_array(PyObject *obj, const char *fn, npy_intp B, npy_intp K, PyArrayObject **labels)
{
    if (nr_arg_array(obj, fn, "labels", NPY_INT64, 1, NR_REQUIRED, labels) < 0 ||
        nr_arg_dim(*labels, fn, "labels", 0, B, "rows of logits") < 0) {
        return -1;
    }
    const int64_t *lab = PyArray_DATA(*labels);
    for (npy_intp i = 0; i < B; i++) {
        if (lab[i] < 0 || lab[i] >= K) {
            PyErr_Format(PyExc_ValueError, "%s: labels[%zd] = %lld is out of range [0, %zd)", fn,
                         (Py_ssize_t)i, (long long)lab[i], (Py_ssize_t)K);
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
    if (nr_check_nargs(nargs, 2, fn) < 0 || nr_arg_float_dtype(args[0], fn, "logits", &t) < 0 ||
        nr_arg_array(args[0], fn, "logits", t, 2, NR_REQUIRED, &logits) < 0) {
        return NULL;
    }
    npy_intp B = PyArray_DIM(logits, 0), K = PyArray_DIM(logits, 1);
    if (labels_array(args[1], fn, B, K, &labels) < 0 ||
        !(lse = (PyArrayObject *)PyArray_EMPTY(1, &B, t, 0))) {
        return NULL;
    }
    double loss;
    Py_BEGIN_ALLOW_THREADS
    loss = NR_CALL(IS_F32(t), nr_cross_entropy_forward, PyArray_DATA(lse), PyArray_DATA(logits),
                   PyArray_DATA(labels), B, K);
    Py_END_ALLOW_THREADS
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
    if (nr_check_nargs(nargs, 5, fn) < 0 || nr_arg_float_dtype(args[0], fn, "logits", &t) < 0 ||
        nr_arg_array(args[0], fn, "logits", t, 2, NR_REQUIRED, &logits) < 0) {
        return NULL;
    }
    npy_intp B = PyArray_DIM(logits, 0), K = PyArray_DIM(logits, 1);
    if (labels_array(args[1], fn, B, K, &labels) < 0 ||
        nr_arg_array(args[2], fn, "lse", t, 1, NR_REQUIRED, &lse) < 0 ||
        nr_arg_dim(lse, fn, "lse", 0, B, "rows of logits") < 0 ||
        nr_arg_double(args[3], fn, "dloss", &dloss) < 0 ||
        !(dlogits = nr_out_array(args[4], fn, "out", t, 2, PyArray_DIMS(logits)))) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_cross_entropy_backward, PyArray_DATA(dlogits), PyArray_DATA(logits),
            PyArray_DATA(labels), PyArray_DATA(lse), B, K, dloss);
    Py_END_ALLOW_THREADS
    return (PyObject *)dlogits;
}

#define FASTCALL(name, doc) {#name, (PyCFunction)(void (*)(void))name, METH_FASTCALL, doc}

PyMethodDef nr_core_methods[] = {
    FASTCALL(linear_forward, "linear_forward(x, weight, bias, out) -> y"),
    FASTCALL(linear_backward,
             "linear_backward(dy, x, weight, dx_out, dweight, dbias, need_dx) -> dx or None"),
    FASTCALL(relu_forward, "relu_forward(x, out) -> y"),
    FASTCALL(relu_backward, "relu_backward(dy, y, out) -> dx"),
    FASTCALL(layer_norm_forward, "layer_norm_forward(x, weight, bias, eps, out) -> (y, mean, rstd)"),
    FASTCALL(layer_norm_backward,
             "layer_norm_backward(dy, x, mean, rstd, weight, dweight, dbias, out) -> dx"),
    FASTCALL(batch_norm_forward,
             "batch_norm_forward(x, weight, bias, running_mean, running_var, training, momentum, "
             "eps, out) -> (y, save_mean, save_rstd)"),
    FASTCALL(batch_norm_backward,
             "batch_norm_backward(dy, x, save_mean, save_rstd, weight, dweight, dbias, training, "
             "out) -> dx"),
    FASTCALL(dropout_forward, "dropout_forward(x, p, seed, offset, out) -> (y, mask)"),
    FASTCALL(dropout_backward, "dropout_backward(dy, mask, p, out) -> dx"),
    FASTCALL(philox4x32, "philox4x32(c0, c1, c2, c3, k0, k1) -> (w0, w1, w2, w3)"),
    FASTCALL(cross_entropy_forward, "cross_entropy_forward(logits, labels) -> (loss, lse)"),
    FASTCALL(cross_entropy_backward,
             "cross_entropy_backward(logits, labels, lse, dloss, out) -> dlogits"),
    {NULL, NULL, 0, NULL},
};
