/* Binding of the spatial kernels (Conv2d, pooling). Each function: check arguments, compute
 * the output size without overflow, allocate outputs and workspace, release the GIL around
 * the kernel, return. Arrays arrive C-contiguous from normreg.functional; these checks are
 * what memory safety needs, with errors that name the argument. */
#include "bind.h"
#include "nr_conv.h"

/* An int argument >= `min` (sizes, strides, paddings). */
static int
size_arg(PyObject *obj, const char *fn, const char *name, npy_intp min, npy_intp *value)
{
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: argument '%s' must be an int, not %.100s", fn, name,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (overflow != 0 || v < (long long)min || v > (long long)NPY_MAX_INTP) {
        PyErr_Format(PyExc_ValueError, "%s: argument '%s' must be an int in [%zd, %zd], got %S",
                     fn, name, (Py_ssize_t)min, (Py_ssize_t)NPY_MAX_INTP, obj);
        return -1;
    }
    *value = (npy_intp)v;
    return 0;
}

/* The window geometry's stride and padding arguments args[0..3] = (sh, sw, ph, pw). */
static int
stride_padding_args(PyObject *const *args, const char *fn, nr_window2d *g)
{
    npy_intp v[4];
    if (size_arg(args[0], fn, "stride_h", 1, &v[0]) < 0 ||
        size_arg(args[1], fn, "stride_w", 1, &v[1]) < 0 ||
        size_arg(args[2], fn, "padding_h", 0, &v[2]) < 0 ||
        size_arg(args[3], fn, "padding_w", 0, &v[3]) < 0) {
        return -1;
    }
    g->SH = v[0];
    g->SW = v[1];
    g->PH = v[2];
    g->PW = v[3];
    return 0;
}

/* The number of window positions along one axis, (size + 2 pad - k) / stride + 1, checked
 * for overflow and for a kernel larger than the padded input. With `ceil` (pooling's
 * ceil_mode) the division rounds up (toward -inf for a kernel larger than the padded input),
 * but the last window must start inside the image or its left padding, and one window at
 * least must remain (PyTorch's rule: a kernel of 2 on 1 element is one window). */
static int
window_count(const char *fn, const char *axis, npy_intp size, npy_intp k, npy_intp stride,
             npy_intp pad, int ceil, npy_intp *out)
{
    if (pad > (NPY_MAX_INTP - size) / 2) {
        PyErr_Format(PyExc_ValueError, "%s: padding_%c = %zd is too large for the input %s %zd",
                     fn, axis[0], (Py_ssize_t)pad, axis, (Py_ssize_t)size);
        return -1;
    }
    const npy_intp padded = size + 2 * pad;
    if (ceil) {
        /* ceil((padded - k) / stride) + 1, without forming padded - k + stride - 1 (the sizes
         * may be as large as npy_intp holds) */
        *out = padded >= k ? (padded - k) / stride + ((padded - k) % stride != 0) + 1
                           : 1 - (k - padded) / stride;
        npy_intp start; /* of the last window, in the padded input */
        if (*out > 0 &&
            (__builtin_mul_overflow(*out - 1, stride, &start) || start >= size + pad)) {
            --*out;
        }
        if (*out >= 1) {
            return 0;
        }
    }
    if (k > padded) { /* also every ceil_mode case left without a window */
        PyErr_Format(
            PyExc_ValueError,
            "%s: the kernel %s %zd is larger than the padded input %s %zd (%zd + 2 * %zd)", fn,
            axis, (Py_ssize_t)k, axis, (Py_ssize_t)padded, (Py_ssize_t)size, (Py_ssize_t)pad);
        return -1;
    }
    *out = (padded - k) / stride + 1;
    return 0;
}

/* Fills g->OH, g->OW from the rest of g (`ceil`: pooling's ceil_mode). */
static int
window_geometry(const char *fn, nr_window2d *g, int ceil)
{
    return window_count(fn, "height", g->H, g->KH, g->SH, g->PH, ceil, &g->OH) < 0 ||
                   window_count(fn, "width", g->W, g->KW, g->SW, g->PW, ceil, &g->OW) < 0
               ? -1
               : 0;
}

/* Checks that a product of sizes fits in a C int (the BLAS dimensions). */
static int
fits_int_product(npy_intp a, npy_intp b, const char *fn, const char *name)
{
    npy_intp r;
    if (__builtin_mul_overflow(a, b, &r) || r > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: %s = %zd * %zd exceeds the BLAS limit of %d", fn,
                     name, (Py_ssize_t)a, (Py_ssize_t)b, INT_MAX);
        return -1;
    }
    return 0;
}

/* x (N, C, H, W) and weight (O, C, KH, KW) of dtype t -> the geometry (stride and padding
 * from args[0..3]), the output channels O; checks the BLAS int limits. */
static int
conv_geometry(PyArrayObject *x, PyArrayObject *w, PyObject *const *sp_args, const char *fn,
              nr_window2d *g, npy_intp *O)
{
    if (nr_arg_dim(w, fn, "weight", 1, PyArray_DIM(x, 1), "in_channels: the channels of x") <
        0) {
        return -1;
    }
    if (PyArray_DIM(w, 2) < 1 || PyArray_DIM(w, 3) < 1) {
        PyErr_Format(
            PyExc_ValueError,
            "%s: argument 'weight' must have a kernel of at least 1 x 1, got %zd x %zd", fn,
            (Py_ssize_t)PyArray_DIM(w, 2), (Py_ssize_t)PyArray_DIM(w, 3));
        return -1;
    }
    g->N = PyArray_DIM(x, 0);
    g->C = PyArray_DIM(x, 1);
    g->H = PyArray_DIM(x, 2);
    g->W = PyArray_DIM(x, 3);
    g->KH = PyArray_DIM(w, 2);
    g->KW = PyArray_DIM(w, 3);
    *O = PyArray_DIM(w, 0);
    npy_intp kernel;
    if (stride_padding_args(sp_args, fn, g) < 0 || window_geometry(fn, g, 0) < 0 ||
        nr_arg_fits_int(*O, fn, "out_channels") < 0 ||
        fits_int_product(g->KH, g->KW, fn, "kernel size kH * kW") < 0) {
        return -1;
    }
    kernel = g->KH * g->KW;
    if (fits_int_product(g->C, kernel, fn, "in_channels * kernel size") < 0 ||
        fits_int_product(g->OH, g->OW, fn, "output positions OH * OW") < 0) {
        return -1;
    }
    return 0;
}

/* ---- conv2d --------------------------------------------------------------------------- */

/* conv2d_forward(x (N, C, H, W), weight (O, C, KH, KW), bias (O) | None, stride_h, stride_w,
 *                padding_h, padding_w, out | None) -> y (N, O, OH, OW) */
static PyObject *
conv2d_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "conv2d_forward";
    PyArrayObject *x, *w, *b, *y = NULL;
    int t;
    nr_window2d g;
    npy_intp O;
    if (nr_check_nargs(nargs, 8, fn) < 0 || nr_arg_float_dtype(args[0], fn, "x", &t) < 0 ||
        nr_arg_array(args[0], fn, "x", t, 4, NR_REQUIRED, &x) < 0 ||
        nr_arg_array(args[1], fn, "weight", t, 4, NR_REQUIRED, &w) < 0 ||
        conv_geometry(x, w, args + 3, fn, &g, &O) < 0 ||
        nr_arg_channels(args[2], fn, "bias", t, NR_OPTIONAL, O, &b) < 0) {
        return NULL;
    }
    npy_intp dims[4] = {g.N, O, g.OH, g.OW};
    if (!(y = nr_out_array(args[7], fn, "out", t, 4, dims))) {
        return NULL;
    }
    NR_NOGIL_WITH_WORKSPACE(y, NR_CALL(t, nr_conv2d_forward_workspace, &g, O, nthreads), fn,
                            NR_CALL(t, nr_conv2d_forward, PyArray_DATA(y), PyArray_DATA(x),
                                    PyArray_DATA(w), nr_data_or_null(b), &g, O, ws, nthreads));
    return (PyObject *)y;
}

/* conv2d_backward(dy (N, O, OH, OW), x (N, C, H, W), weight (O, C, KH, KW), stride_h,
 *                 stride_w, padding_h, padding_w, dweight | None, dbias (O) | None, need_dx)
 *   -> dx (N, C, H, W) or None; dweight, dbias are added to */
static PyObject *
conv2d_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "conv2d_backward";
    PyArrayObject *dy, *x, *w, *dw, *db, *dx = NULL;
    int t, need_dx;
    nr_window2d g;
    npy_intp O;
    if (nr_check_nargs(nargs, 10, fn) < 0 || nr_arg_float_dtype(args[0], fn, "dy", &t) < 0 ||
        nr_arg_array(args[0], fn, "dy", t, 4, NR_REQUIRED, &dy) < 0 ||
        nr_arg_array(args[1], fn, "x", t, 4, NR_REQUIRED, &x) < 0 ||
        nr_arg_array(args[2], fn, "weight", t, 4, NR_REQUIRED, &w) < 0 ||
        conv_geometry(x, w, args + 3, fn, &g, &O) < 0 ||
        nr_arg_array(args[7], fn, "dweight", t, 4, NR_OPTIONAL | NR_WRITABLE, &dw) < 0 ||
        (dw && nr_arg_same_shape(dw, fn, "dweight", w, "weight") < 0) ||
        nr_arg_channels(args[8], fn, "dbias", t, NR_OPTIONAL | NR_WRITABLE, O, &db) < 0 ||
        (need_dx = PyObject_IsTrue(args[9])) < 0) {
        return NULL;
    }
    npy_intp ydims[4] = {g.N, O, g.OH, g.OW};
    for (int i = 0; i < 4; i++) {
        if (nr_arg_dim(dy, fn, "dy", i, ydims[i], "the output shape of the convolution") < 0) {
            return NULL;
        }
    }
    if (need_dx && !(dx = nr_new_array(4, PyArray_DIMS(x), t))) {
        return NULL;
    }
    PyObject *res = dx ? (PyObject *)dx : (Py_INCREF(Py_None), Py_None); /* holds dx */
    NR_NOGIL_WITH_WORKSPACE(res, NR_CALL(t, nr_conv2d_backward_workspace, &g, O, nthreads), fn,
                            NR_CALL(t, nr_conv2d_backward, nr_data_or_null(dx),
                                    nr_data_or_null(dw), nr_data_or_null(db), PyArray_DATA(dy),
                                    PyArray_DATA(x), PyArray_DATA(w), &g, O, ws, nthreads));
    return res;
}

/* ---- pooling -------------------------------------------------------------------------- */

/* x (N, C, H, W) with C, H, W >= 1 (N may be 0), as PyTorch's pooling requires. */
static int
pool_input(PyObject *obj, const char *fn, const char *name, int *t, PyArrayObject **x,
           nr_window2d *g)
{
    if (nr_arg_float_dtype(obj, fn, name, t) < 0 ||
        nr_arg_array(obj, fn, name, *t, 4, NR_REQUIRED, x) < 0) {
        return -1;
    }
    for (int i = 1; i < 4; i++) {
        if (PyArray_DIM(*x, i) < 1) {
            PyErr_Format(PyExc_ValueError,
                         "%s: argument '%s' must have non-zero channels, height and width, got "
                         "size 0 in dimension %d",
                         fn, name, i);
            return -1;
        }
    }
    g->N = PyArray_DIM(*x, 0);
    g->C = PyArray_DIM(*x, 1);
    g->H = PyArray_DIM(*x, 2);
    g->W = PyArray_DIM(*x, 3);
    return 0;
}

/* args[0..6] = (kh, kw, sh, sw, ph, pw, ceil_mode); padding at most half the kernel, as in
 * PyTorch (so that every window holds at least one input position) -> g's window and OH, OW. */
static int
pool_window(PyObject *const *args, const char *fn, nr_window2d *g)
{
    int ceil;
    if (size_arg(args[0], fn, "kernel_h", 1, &g->KH) < 0 ||
        size_arg(args[1], fn, "kernel_w", 1, &g->KW) < 0 ||
        stride_padding_args(args + 2, fn, g) < 0 || (ceil = PyObject_IsTrue(args[6])) < 0) {
        return -1;
    }
    if (g->PH > g->KH / 2 || g->PW > g->KW / 2) {
        PyErr_Format(PyExc_ValueError,
                     "%s: padding (%zd, %zd) must be at most half the kernel size (%zd, %zd)",
                     fn, (Py_ssize_t)g->PH, (Py_ssize_t)g->PW, (Py_ssize_t)g->KH,
                     (Py_ssize_t)g->KW);
        return -1;
    }
    return window_geometry(fn, g, ceil);
}

/* dy (N, C, OH, OW) against the input size (h, w) from args[0..1] -> g with N, C, H, W, OH, OW */
static int
pool_grad_input(PyObject *dy_obj, PyObject *const *hw_args, const char *fn, int *t,
                PyArrayObject **dy, nr_window2d *g)
{
    if (pool_input(dy_obj, fn, "dy", t, dy, g) < 0 ||
        size_arg(hw_args[0], fn, "input_h", 1, &g->H) < 0 ||
        size_arg(hw_args[1], fn, "input_w", 1, &g->W) < 0) {
        return -1;
    }
    g->OH = PyArray_DIM(*dy, 2);
    g->OW = PyArray_DIM(*dy, 3);
    return 0;
}

/* The pooled output (N, C, OH, OW), or `out` checked. */
static PyArrayObject *
pool_y(PyObject *out, const char *fn, int t, const nr_window2d *g)
{
    npy_intp dims[4] = {g->N, g->C, g->OH, g->OW};
    return nr_out_array(out, fn, "out", t, 4, dims);
}

/* The input gradient (N, C, H, W), or `out` checked. */
static PyArrayObject *
pool_dx(PyObject *out, const char *fn, int t, const nr_window2d *g)
{
    npy_intp dims[4] = {g->N, g->C, g->H, g->W};
    return nr_out_array(out, fn, "out", t, 4, dims);
}

/* max_pool2d_forward(x, kernel_h, kernel_w, stride_h, stride_w, padding_h, padding_w,
 *                    ceil_mode, out | None) -> (y (N, C, OH, OW), indices (N, C, OH, OW) int64) */
static PyObject *
max_pool2d_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "max_pool2d_forward";
    PyArrayObject *x, *y, *idx;
    int t;
    nr_window2d g;
    npy_intp HW;
    if (nr_check_nargs(nargs, 9, fn) < 0 || pool_input(args[0], fn, "x", &t, &x, &g) < 0 ||
        pool_window(args + 1, fn, &g) < 0) {
        return NULL;
    }
    if (__builtin_mul_overflow(g.H, g.W, &HW) || HW > INT32_MAX) { /* the kernel's positions */
        PyErr_Format(PyExc_ValueError,
                     "%s: planes of more than %d values are not supported, got %zd x %zd", fn,
                     INT32_MAX, (Py_ssize_t)g.H, (Py_ssize_t)g.W);
        return NULL;
    }
    if (!(y = pool_y(args[8], fn, t, &g))) {
        return NULL;
    }
    if (!(idx = nr_new_array(4, PyArray_DIMS(y), NPY_INT64))) {
        Py_DECREF(y);
        return NULL;
    }
    NR_NOGIL(NR_CALL(t, nr_max_pool2d_forward, PyArray_DATA(y), PyArray_DATA(idx),
                     PyArray_DATA(x), &g));
    PyObject *res = PyTuple_Pack(2, y, idx);
    Py_DECREF(y);
    Py_DECREF(idx);
    return res;
}

/* max_pool2d_backward(dy (N, C, OH, OW), indices (N, C, OH, OW) int64 in [0, H W), input_h,
 *                     input_w, out | None) -> dx (N, C, H, W) */
static PyObject *
max_pool2d_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "max_pool2d_backward";
    PyArrayObject *dy, *idx, *dx;
    int t;
    nr_window2d g;
    if (nr_check_nargs(nargs, 5, fn) < 0 ||
        pool_grad_input(args[0], args + 2, fn, &t, &dy, &g) < 0 ||
        nr_arg_array(args[1], fn, "indices", NPY_INT64, 4, NR_REQUIRED, &idx) < 0 ||
        nr_arg_same_shape(idx, fn, "indices", dy, "dy") < 0) {
        return NULL;
    }
    npy_intp HW;
    if (__builtin_mul_overflow(g.H, g.W, &HW)) {
        PyErr_Format(PyExc_ValueError, "%s: input_h * input_w overflows", fn);
        return NULL;
    }
    if (!(dx = pool_dx(args[4], fn, t, &g))) {
        return NULL;
    }
    int64_t bad;
    Py_BEGIN_ALLOW_THREADS
    bad = nr_dispatch.nr_index_out_of_range(PyArray_DATA(idx), PyArray_SIZE(idx), HW);
    if (bad < 0) {
        NR_CALL(t, nr_max_pool2d_backward, PyArray_DATA(dx), PyArray_DATA(dy),
                PyArray_DATA(idx), &g);
    }
    Py_END_ALLOW_THREADS
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s: argument 'indices' must hold positions in [0, %zd) (input_h * "
                     "input_w), got %lld at flat position %lld",
                     fn, (Py_ssize_t)HW, (long long)((int64_t *)PyArray_DATA(idx))[bad],
                     (long long)bad);
        Py_DECREF(dx);
        return NULL;
    }
    return (PyObject *)dx;
}

/* The divisor_override argument: an int >= 0, 0 for none. */
static int
divisor_arg(PyObject *obj, const char *fn, int64_t *divisor)
{
    npy_intp v;
    if (size_arg(obj, fn, "divisor_override", 0, &v) < 0) {
        return -1;
    }
    *divisor = (int64_t)v;
    return 0;
}

/* avg_pool2d_forward(x, kernel_h, kernel_w, stride_h, stride_w, padding_h, padding_w,
 *                    ceil_mode, count_include_pad, divisor_override (0: none), out | None)
 *   -> y (N, C, OH, OW) */
static PyObject *
avg_pool2d_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "avg_pool2d_forward";
    PyArrayObject *x, *y;
    int t, include_pad;
    int64_t divisor;
    nr_window2d g;
    if (nr_check_nargs(nargs, 11, fn) < 0 || pool_input(args[0], fn, "x", &t, &x, &g) < 0 ||
        pool_window(args + 1, fn, &g) < 0 || (include_pad = PyObject_IsTrue(args[8])) < 0 ||
        divisor_arg(args[9], fn, &divisor) < 0 || !(y = pool_y(args[10], fn, t, &g))) {
        return NULL;
    }
    NR_NOGIL(NR_CALL(t, nr_avg_pool2d_forward, PyArray_DATA(y), PyArray_DATA(x), &g,
                     include_pad, divisor));
    return (PyObject *)y;
}

/* avg_pool2d_backward(dy (N, C, OH, OW), input_h, input_w, kernel_h, kernel_w, stride_h,
 *                     stride_w, padding_h, padding_w, ceil_mode, count_include_pad,
 *                     divisor_override (0: none), out | None) -> dx */
static PyObject *
avg_pool2d_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "avg_pool2d_backward";
    PyArrayObject *dy, *dx;
    int t, include_pad;
    int64_t divisor;
    nr_window2d g;
    if (nr_check_nargs(nargs, 13, fn) < 0 ||
        pool_grad_input(args[0], args + 1, fn, &t, &dy, &g) < 0 ||
        pool_window(args + 3, fn, &g) < 0 || (include_pad = PyObject_IsTrue(args[10])) < 0 ||
        divisor_arg(args[11], fn, &divisor) < 0 ||
        nr_arg_dim(dy, fn, "dy", 2, g.OH, "the output height of the pooling") < 0 ||
        nr_arg_dim(dy, fn, "dy", 3, g.OW, "the output width of the pooling") < 0 ||
        !(dx = pool_dx(args[12], fn, t, &g))) {
        return NULL;
    }
    NR_NOGIL(NR_CALL(t, nr_avg_pool2d_backward, PyArray_DATA(dx), PyArray_DATA(dy), &g,
                     include_pad, divisor));
    return (PyObject *)dx;
}

/* out size + out + size does not overflow (adaptive windows end at ceil((i + 1) size / out)). */
static int
adaptive_axis_fits(npy_intp out, npy_intp size)
{
    npy_intp r;
    return !(__builtin_mul_overflow(out, size, &r) || __builtin_add_overflow(r, out, &r) ||
             __builtin_add_overflow(r, size, &r));
}

static int
adaptive_fits(const char *fn, const nr_window2d *g)
{
    if (!adaptive_axis_fits(g->OH, g->H) || !adaptive_axis_fits(g->OW, g->W)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: output size (%zd, %zd) is too large for the input (%zd, %zd)", fn,
                     (Py_ssize_t)g->OH, (Py_ssize_t)g->OW, (Py_ssize_t)g->H, (Py_ssize_t)g->W);
        return -1;
    }
    return 0;
}

/* adaptive_avg_pool2d_forward(x (N, C, H, W), output_h, output_w, out | None) -> y */
static PyObject *
adaptive_avg_pool2d_forward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "adaptive_avg_pool2d_forward";
    PyArrayObject *x, *y;
    int t;
    nr_window2d g;
    if (nr_check_nargs(nargs, 4, fn) < 0 || pool_input(args[0], fn, "x", &t, &x, &g) < 0 ||
        size_arg(args[1], fn, "output_h", 1, &g.OH) < 0 ||
        size_arg(args[2], fn, "output_w", 1, &g.OW) < 0 || adaptive_fits(fn, &g) < 0 ||
        !(y = pool_y(args[3], fn, t, &g))) {
        return NULL;
    }
    NR_NOGIL(NR_CALL(t, nr_adaptive_avg_pool2d_forward, PyArray_DATA(y), PyArray_DATA(x), &g));
    return (PyObject *)y;
}

/* adaptive_avg_pool2d_backward(dy (N, C, OH, OW), input_h, input_w, out | None) -> dx */
static PyObject *
adaptive_avg_pool2d_backward(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "adaptive_avg_pool2d_backward";
    PyArrayObject *dy, *dx;
    int t;
    nr_window2d g;
    if (nr_check_nargs(nargs, 4, fn) < 0 ||
        pool_grad_input(args[0], args + 1, fn, &t, &dy, &g) < 0 || adaptive_fits(fn, &g) < 0 ||
        !(dx = pool_dx(args[3], fn, t, &g))) {
        return NULL;
    }
    NR_NOGIL(
        NR_CALL(t, nr_adaptive_avg_pool2d_backward, PyArray_DATA(dx), PyArray_DATA(dy), &g));
    return (PyObject *)dx;
}

PyMethodDef nr_conv_methods[] = {
    NR_FASTCALL(conv2d_forward,
                "conv2d_forward(x, weight, bias, stride_h, stride_w, padding_h, "
                "padding_w, out) -> y"),
    NR_FASTCALL(conv2d_backward,
                "conv2d_backward(dy, x, weight, stride_h, stride_w, padding_h, "
                "padding_w, dweight, dbias, need_dx) -> dx or None"),
    NR_FASTCALL(max_pool2d_forward,
                "max_pool2d_forward(x, kernel_h, kernel_w, stride_h, stride_w, "
                "padding_h, padding_w, ceil_mode, out) -> (y, indices)"),
    NR_FASTCALL(max_pool2d_backward,
                "max_pool2d_backward(dy, indices, input_h, input_w, out) -> dx"),
    NR_FASTCALL(
        avg_pool2d_forward,
        "avg_pool2d_forward(x, kernel_h, kernel_w, stride_h, stride_w, "
        "padding_h, padding_w, ceil_mode, count_include_pad, divisor_override, out) -> y"),
    NR_FASTCALL(
        avg_pool2d_backward,
        "avg_pool2d_backward(dy, input_h, input_w, kernel_h, kernel_w, stride_h, stride_w, "
        "padding_h, padding_w, ceil_mode, count_include_pad, divisor_override, out) -> dx"),
    NR_FASTCALL(adaptive_avg_pool2d_forward,
                "adaptive_avg_pool2d_forward(x, output_h, output_w, out) -> y"),
    NR_FASTCALL(adaptive_avg_pool2d_backward,
                "adaptive_avg_pool2d_backward(dy, input_h, input_w, out) -> dx"),
    {NULL, NULL, 0, NULL},
};
