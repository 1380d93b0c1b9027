/* Helpers for benchmarks/: the copy that defines the memory roofline. */
#include "bind.h" /* Python.h first, as the C API requires */

#include <time.h>

#include "nr_blas.h"

static double
nr_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* copy_f32(dst, src, nthreads): dst[:] = src with exactly `nthreads` OpenMP threads */
static PyObject *
copy_f32(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "copy_f32";
    PyArrayObject *dst, *src;
    long nthreads;
    if (nr_check_nargs(nargs, 3, fn) < 0 ||
        nr_arg_array(args[0], fn, "dst", NPY_FLOAT32, -1, NR_WRITABLE, &dst) < 0 ||
        nr_arg_array(args[1], fn, "src", NPY_FLOAT32, -1, NR_REQUIRED, &src) < 0 ||
        nr_arg_same_shape(dst, fn, "dst", src, "src") < 0) {
        return NULL;
    }
    nthreads = PyLong_AsLong(args[2]);
    if (nthreads == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (nthreads < 1 || nthreads > 1024) {
        PyErr_Format(PyExc_ValueError, "%s: argument 'nthreads' must be in [1, 1024]", fn);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    nr_dispatch.nr_copy_f32(PyArray_DATA(dst), PyArray_DATA(src), PyArray_SIZE(src),
                            (int)nthreads);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* The kernel timers' repetition count, an int >= 1: 0 with *reps set, or -1 with an error */
static int
nr_bench_reps(PyObject *obj, const char *fn, long *reps)
{
    *reps = PyLong_AsLong(obj);
    if (*reps < 1) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_ValueError, "%s: reps must be >= 1", fn);
        }
        return -1;
    }
    return 0;
}

/* layer_norm_kernel_time(x (M, D) f32, w, b, reps) -> seconds per call of the bare kernel,
 * called `reps` times in a C loop: what the binding adds is the rest of a call's time. */
static PyObject *
layer_norm_kernel_time(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "layer_norm_kernel_time";
    PyArrayObject *x, *w, *b;
    if (nr_check_nargs(nargs, 4, fn) < 0 ||
        nr_arg_array(args[0], fn, "x", NPY_FLOAT32, 2, NR_REQUIRED, &x) < 0 ||
        nr_arg_array(args[1], fn, "weight", NPY_FLOAT32, 1, NR_REQUIRED, &w) < 0 ||
        nr_arg_array(args[2], fn, "bias", NPY_FLOAT32, 1, NR_REQUIRED, &b) < 0 ||
        nr_arg_dim(w, fn, "weight", 0, PyArray_DIM(x, 1), "columns of x") < 0 ||
        nr_arg_dim(b, fn, "bias", 0, PyArray_DIM(x, 1), "columns of x") < 0) {
        return NULL;
    }
    long reps;
    if (nr_bench_reps(args[3], fn, &reps) < 0) {
        return NULL;
    }
    npy_intp M = PyArray_DIM(x, 0), D = PyArray_DIM(x, 1);
    float *y = PyMem_RawMalloc((size_t)(M * D + 2 * M + 1) * sizeof(float));
    if (!y) {
        return PyErr_NoMemory();
    }
    double t0, t1;
    Py_BEGIN_ALLOW_THREADS
    t0 = nr_now();
    for (long r = 0; r < reps; r++) {
        nr_dispatch.nr_layernorm_forward_f32(y, y + M * D, y + M * D + M, PyArray_DATA(x),
                                             PyArray_DATA(w), PyArray_DATA(b), M, D, 1e-5);
    }
    t1 = nr_now();
    Py_END_ALLOW_THREADS
    PyMem_RawFree(y);
    return PyFloat_FromDouble((t1 - t0) / (double)reps);
}

/* layer_norm_backward_kernel_time(dy, x (M, D) f32, w, reps) -> seconds per call of the bare
 * backward kernel (dx, and dw, db added to), called `reps` times in a C loop after one forward
 * for the mean and rstd, on normreg's current threads */
static PyObject *
layer_norm_backward_kernel_time(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "layer_norm_backward_kernel_time";
    PyArrayObject *dy, *x, *w;
    if (nr_check_nargs(nargs, 4, fn) < 0 ||
        nr_arg_array(args[0], fn, "dy", NPY_FLOAT32, 2, NR_REQUIRED, &dy) < 0 ||
        nr_arg_array(args[1], fn, "x", NPY_FLOAT32, 2, NR_REQUIRED, &x) < 0 ||
        nr_arg_same_shape(dy, fn, "dy", x, "x") < 0 ||
        nr_arg_array(args[2], fn, "weight", NPY_FLOAT32, 1, NR_REQUIRED, &w) < 0 ||
        nr_arg_dim(w, fn, "weight", 0, PyArray_DIM(x, 1), "columns of x") < 0) {
        return NULL;
    }
    long reps;
    if (nr_bench_reps(args[3], fn, &reps) < 0) {
        return NULL;
    }
    const npy_intp M = PyArray_DIM(x, 0), D = PyArray_DIM(x, 1);
    const int nthreads = nr_get_num_threads();
    const size_t ws_bytes = nr_dispatch.nr_layernorm_backward_workspace_f32(D, nthreads);
    /* dx (M D), then y's place for the forward (M D), mean and rstd (M each), dw and db (D
     * each), then the workspace */
    const size_t n = (size_t)(2 * M * D + 2 * M + 2 * D) + 16;
    float *buf = PyMem_RawCalloc(n * sizeof(float) + ws_bytes, 1);
    if (!buf) {
        return PyErr_NoMemory();
    }
    float *dx = buf, *y = dx + M * D, *mean = y + M * D, *rstd = mean + M, *dw = rstd + M;
    float *db = dw + D;
    void *ws = buf + n;
    double t0, t1;
    Py_BEGIN_ALLOW_THREADS
    nr_dispatch.nr_layernorm_forward_f32(y, mean, rstd, PyArray_DATA(x), PyArray_DATA(w), NULL,
                                         M, D, 1e-5);
    t0 = nr_now();
    for (long r = 0; r < reps; r++) {
        nr_dispatch.nr_layernorm_backward_f32(dx, dw, db, PyArray_DATA(dy), PyArray_DATA(x),
                                              mean, rstd, PyArray_DATA(w), M, D, ws, nthreads);
    }
    t1 = nr_now();
    Py_END_ALLOW_THREADS
    PyMem_RawFree(buf);
    return PyFloat_FromDouble((t1 - t0) / (double)reps);
}

/* sgemm(trans_a, trans_b, a, b, c, beta): c = op(a) op(b) + beta c, row-major, with the
 * OpenBLAS normreg links and its current thread setting: the direct call Linear is
 * compared with. */
static PyObject *
sgemm(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "sgemm";
    PyArrayObject *a, *b, *c;
    int ta, tb;
    double beta;
    if (nr_check_nargs(nargs, 6, fn) < 0 || (ta = PyObject_IsTrue(args[0])) < 0 ||
        (tb = PyObject_IsTrue(args[1])) < 0 ||
        nr_arg_array(args[2], fn, "a", NPY_FLOAT32, 2, NR_REQUIRED, &a) < 0 ||
        nr_arg_array(args[3], fn, "b", NPY_FLOAT32, 2, NR_REQUIRED, &b) < 0 ||
        nr_arg_array(args[4], fn, "c", NPY_FLOAT32, 2, NR_WRITABLE, &c) < 0 ||
        nr_arg_double(args[5], fn, "beta", &beta) < 0) {
        return NULL;
    }
    npy_intp M = PyArray_DIM(a, ta ? 1 : 0), K = PyArray_DIM(a, ta ? 0 : 1);
    npy_intp N = PyArray_DIM(b, tb ? 0 : 1);
    if (PyArray_DIM(b, tb ? 1 : 0) != K || PyArray_DIM(c, 0) != M || PyArray_DIM(c, 1) != N) {
        PyErr_SetString(PyExc_ValueError, "sgemm: shapes do not match");
        return NULL;
    }
    if (nr_arg_fits_int(M, fn, "M") < 0 || nr_arg_fits_int(N, fn, "N") < 0 ||
        nr_arg_fits_int(K, fn, "K") < 0) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    nr_blas_lock_shared(); /* as normreg's own products: the thread count cannot change */
    NR_CBLAS(sgemm)(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                    tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, 1.0f,
                    PyArray_DATA(a), (int)PyArray_DIM(a, 1), PyArray_DATA(b),
                    (int)PyArray_DIM(b, 1), (float)beta, PyArray_DATA(c), (int)N);
    nr_blas_unlock();
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

PyMethodDef nr_bench_methods[] = {
    {"copy_f32", (PyCFunction)(void (*)(void))copy_f32, METH_FASTCALL,
     "copy_f32(dst, src, nthreads): plain parallel copy, the benchmarks' roofline"},
    {"layer_norm_kernel_time", (PyCFunction)(void (*)(void))layer_norm_kernel_time,
     METH_FASTCALL, "layer_norm_kernel_time(x, weight, bias, reps) -> seconds per kernel call"},
    {"layer_norm_backward_kernel_time",
     (PyCFunction)(void (*)(void))layer_norm_backward_kernel_time, METH_FASTCALL,
     "layer_norm_backward_kernel_time(dy, x, weight, reps) -> seconds per backward kernel "
     "call"},
    {"sgemm", (PyCFunction)(void (*)(void))sgemm, METH_FASTCALL,
     "sgemm(trans_a, trans_b, a, b, c, beta): direct OpenBLAS call for benchmarks"},
    {NULL, NULL, 0, NULL},
};
