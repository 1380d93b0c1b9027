/* The CPython/NumPy boundary: argument checks that name the argument, output allocation.
 * No math lives here. */
#ifndef NR_BIND_H
#define NR_BIND_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define PY_ARRAY_UNIQUE_SYMBOL normreg_ARRAY_API
#ifndef NR_MODULE_MAIN
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

#include "nr_dispatch.h"

/* Flags for nr_arg_array */
enum {
    NR_REQUIRED = 0,
    NR_OPTIONAL = 1, /* None is accepted and gives NULL */
    NR_WRITABLE = 2, /* written in place: must be writeable */
    /* nr_arg_arrays only: a dtype of its own rather than the op's float dtype */
    NR_F64 = 4, /* float64 (statistics kept in double) */
    NR_I64 = 8, /* int64 (labels, indices) */
    NR_U8 = 16, /* uint8 (bit masks) */
};

/* Checks that `obj` is an ndarray of dtype `typenum`, C-contiguous, aligned, with `ndim`
 * dimensions (ndim < 0: any), writeable when NR_WRITABLE is set. On success stores a
 * borrowed reference in *out (NULL for an accepted None) and returns 0; otherwise raises
 * TypeError/ValueError naming `fname` and `name` and returns -1. */
int nr_arg_array(PyObject *obj, const char *fname, const char *name, int typenum, int ndim,
                 int flags, PyArrayObject **out);

/* Checks dimension `axis` of `arr` (named `name`) equals `expected`; raises ValueError. */
int nr_arg_dim(PyArrayObject *arr, const char *fname, const char *name, int axis,
               npy_intp expected, const char *expected_what);

/* nr_arg_array for a per-channel 1-D array of length C (None gives NULL with NR_OPTIONAL). */
int nr_arg_channels(PyObject *obj, const char *fname, const char *name, int typenum, int flags,
                    npy_intp C, PyArrayObject **out);

/* Checks that `arr` has exactly the shape of `like`. */
int nr_arg_same_shape(PyArrayObject *arr, const char *fname, const char *name,
                      PyArrayObject *like, const char *like_name);

/* The float dtype of the op, taken from its first array argument: float32 or float64. */
int nr_arg_float_dtype(PyObject *obj, const char *fname, const char *name, int *typenum);

/* A new output array of the given shape, or `out_obj` (checked: dtype, shape, C-contiguous,
 * writeable) when it is not None. Returns a new reference or NULL with an exception. */
PyArrayObject *nr_out_array(PyObject *out_obj, const char *fname, const char *name, int typenum,
                            int ndim, const npy_intp *dims);

/* The output named 'out' of a function whose result has the shape of `like`: nr_out_array. */
PyArrayObject *nr_out_like(PyObject *out_obj, const char *fname, int typenum,
                           PyArrayObject *like);

/* Parses a Python float (or int) argument; -1 with an exception on failure. */
int nr_arg_double(PyObject *obj, const char *fname, const char *name, double *value);

/* Parses args[0], args[1], ... as the space-separated `names` say: a real number
 * (nr_arg_double) into the next `double *` of the variable arguments, or, for a name marked
 * '?' ("?nesterov"), a truth value (PyObject_IsTrue) into the next `int *`. 0, or -1 with an
 * exception naming `fname` and the argument. */
int nr_arg_scalars(PyObject *const *args, const char *fname, const char *names, ...);

/* Parses the argument 'eps': a real number >= 0 (not NaN). */
int nr_arg_eps(PyObject *obj, const char *fname, double *eps);
/* ValueError "fname: argument 'name' must be <what>, got <value>" (PyErr_Format has no %g);
 * returns -1. */
int nr_arg_out_of_range(const char *fname, const char *name, const char *what, double value);

/* Raises ValueError unless `value` fits in a C int (BLAS dimensions are int). */
int nr_arg_fits_int(npy_intp value, const char *fname, const char *name);

/* Checks the number of positional arguments of a METH_FASTCALL function. */
int nr_check_nargs(Py_ssize_t nargs, Py_ssize_t expected, const char *fname);

/* ---- the array arguments of a function, as a table ------------------------------------ */

/* One array argument: where it is, what it is called, its dtype, flags and dimensions.
 * `dims` has a letter a dimension ("MD": 2-D of sizes M and D, "NCL": 3-D); the size a letter
 * stands for is set by the first array of the table that has it (or beforehand by
 * nr_size_set), and every later array must match it. "=name": the shape of the table's
 * earlier entry `name`. "*": any shape. The dtype is the op's float dtype unless `flags` has
 * NR_F64, NR_I64 or NR_U8. */
typedef struct {
    PyArrayObject **out; /* a borrowed reference, NULL for an accepted None */
    int arg;             /* its position in args */
    const char *name;    /* the name the errors give it */
    const char *dims;
    int flags; /* NR_REQUIRED or NR_OPTIONAL, NR_WRITABLE, a dtype flag */
} nr_array_arg;

/* The sizes the letters stand for, and what each is for the errors:
 * {.what = "M rows of x|D normalized size of x"} (a letter, a space, the words; '|' between). */
typedef struct {
    npy_intp size[26];
    unsigned known; /* bit i: size[i] is set */
    const char *what;
} nr_sizes;

/* Sets the size `letter` stands for (e.g. from an int argument), before the table is read. */
void nr_size_set(nr_sizes *sizes, char letter, npy_intp size);
/* The size `letter` stands for (set by nr_size_set or by an array of a table). */
npy_intp nr_size(const nr_sizes *sizes, char letter);

/* Checks the `n` arrays of `table` in its order: first the dtype, dimensions and layout of
 * each (nr_arg_array), then their sizes (nr_arg_dim, nr_arg_same_shape); `t` is the op's
 * float dtype. 0, or -1 with an exception naming `fname` and the argument. */
int nr_arg_arrays(PyObject *const *args, const char *fname, int t, const nr_array_arg *table,
                  int n, nr_sizes *sizes);

/* The usual opening of a binding function: `nargs` is `expected`, and the op's float dtype
 * taken from args[0] (named `name`), then nr_arg_arrays. */
int nr_arg_parse(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t expected,
                 const char *fname, int *t, const nr_array_arg *table, int n, nr_sizes *sizes);

#define NR_NARRAYS(table) ((int)(sizeof(table) / sizeof((table)[0])))

/* A workspace of `size` bytes for a kernel (at least one byte: malloc(0) may give NULL),
 * released with PyMem_RawFree; NULL with MemoryError when it cannot be had or when `size` is
 * SIZE_MAX (the kernels' answer to a size that overflows). */
void *nr_workspace(size_t size, const char *fname);

static inline void *
nr_data_or_null(PyArrayObject *arr)
{
    return arr ? PyArray_DATA(arr) : NULL;
}

/* Calls the float (typenum NPY_FLOAT32) or double instance of a kernel, in the active CPU
 * tier. */
#define NR_CALL(typenum, kernel, ...)                                                          \
    ((typenum) == NPY_FLOAT32 ? nr_dispatch.kernel##_f32(__VA_ARGS__)                          \
                              : nr_dispatch.kernel##_f64(__VA_ARGS__))

/* Runs STMT, a kernel call, without the GIL (the caller holds the arrays it touches). */
#define NR_NOGIL(STMT)                                                                         \
    do {                                                                                       \
        Py_BEGIN_ALLOW_THREADS                                                                 \
        STMT;                                                                                  \
        Py_END_ALLOW_THREADS                                                                   \
    } while (0)

/* Kernels whose input is smaller than this keep the GIL, as NumPy's ufuncs do below 500
 * elements: releasing it and taking it back is about 50 ns, 7% of the binding's time of a
 * LayerNorm on 32 x 64, and such a kernel holds other Python threads up for a few
 * microseconds at most. */
#define NR_KEEP_GIL_BYTES ((size_t)32 << 10)

/* Runs STMT, a kernel call reading `nbytes` bytes of input: without the GIL (NR_NOGIL) from
 * NR_KEEP_GIL_BYTES on, with it below. */
#define NR_KERNEL(nbytes, STMT)                                                                \
    do {                                                                                       \
        if ((size_t)(nbytes) < NR_KEEP_GIL_BYTES) {                                            \
            STMT;                                                                              \
        }                                                                                      \
        else {                                                                                 \
            NR_NOGIL(STMT);                                                                    \
        }                                                                                      \
    } while (0)

/* The end of a binding function whose kernel runs on threads with a workspace: `nthreads`,
 * the thread count, is read once, then STMT, the kernel call reading `nbytes` bytes of input,
 * runs (as NR_KERNEL) with `ws` a workspace of `size` bytes (the kernel's *_workspace answer
 * for nthreads), freed after it. When the workspace cannot be had, STMT does not run and
 * `result` (the function's return value, a new reference or NULL) is released and set to
 * NULL, with MemoryError: the function returns `result` either way. */
#define NR_KERNEL_WITH_WORKSPACE(nbytes, result, size, fn, STMT)                               \
    do {                                                                                       \
        const int nthreads = nr_get_num_threads();                                             \
        void *const ws = nr_workspace((size), (fn));                                           \
        if (ws == NULL) {                                                                      \
            Py_CLEAR(result);                                                                  \
            break;                                                                             \
        }                                                                                      \
        NR_KERNEL(nbytes, STMT);                                                               \
        PyMem_RawFree(ws);                                                                     \
    } while (0)

/* NR_KERNEL_WITH_WORKSPACE without the GIL whatever the size. */
#define NR_NOGIL_WITH_WORKSPACE(result, size, fn, STMT)                                        \
    NR_KERNEL_WITH_WORKSPACE(NR_KEEP_GIL_BYTES, result, size, fn, STMT)

/* A new C-contiguous output array owned by normreg: buffers of 1 MiB and more come from a
 * pool of blocks that return to it when the array (and every view of it) is freed
 * (bind_alloc.c). NULL with an exception on failure. */
PyArrayObject *nr_new_array(int ndim, const npy_intp *dims, int typenum);
/* (items[0], ..., items[n - 1]) stealing the references (no format string to parse, unlike
 * Py_BuildValue); NULL (the references released) on failure. */
PyObject *nr_tuple(int n, PyArrayObject **items);
/* The outputs of a forward that saves statistics: res[0] the output (`out_obj` checked, or a
 * new array of x's shape) and res[1..nstats] new arrays of dtype t and shape sdims. 0, or -1
 * with an exception and no reference held. */
int nr_outputs(PyObject *out_obj, const char *fname, int t, PyArrayObject *x, int nstats,
               int sndim, const npy_intp *sdims, PyArrayObject **res);
/* Releases every cached block. */
void nr_pool_empty(void);
int nr_alloc_init(PyObject *module);

/* ---- the normalizations' arguments (bind_norm_args.c) --------------------------------- */

/* The normalization families the helpers below know. */
typedef enum { NR_LAYER_NORM, NR_BATCH_NORM, NR_RMS_NORM, NR_GROUP_NORM } nr_norm_family;

/* A normalization's checked arguments: the arrays by role (NULL for None or not taken), the
 * op's float dtype t, the sizes the letters stand for, eps; `out` the new references the
 * function returns: a forward's y and statistics, a backward's dx. */
typedef struct {
    int t;
    nr_sizes s;
    PyArrayObject *dy, *x, *mean, *rstd, *w, *b, *dw, *db;
    PyArrayObject *out[3];
    double eps;
} nr_norm_args;

/* forward(x, weight | None, bias | None (not for RMSNorm), num_groups (GroupNorm), eps,
 * out | None), `expected` arguments: checks them, and makes out[0] (`out` checked, or new of
 * x's shape) and the statistics out[1..] (new). 0, or -1 with an exception and no reference
 * held. */
int nr_norm_forward_args(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t expected,
                         const char *fn, nr_norm_family family, nr_norm_args *a);

/* backward(dy, x, mean (not for RMSNorm), rstd, weight | None, dweight | None,
 * dbias | None (not for RMSNorm), ..., num_groups (GroupNorm), out | None), `expected`
 * arguments: checks the arrays and makes out[0], dx (`out` checked, or new of x's shape); the
 * arguments in `...` are the caller's. 0, or -1 with an exception and no reference held. */
int nr_norm_backward_args(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t expected,
                          const char *fn, nr_norm_family family, nr_norm_args *a);

/* A method table entry for a METH_FASTCALL function. */
#define NR_FASTCALL(name, doc) {#name, (PyCFunction)(void (*)(void))name, METH_FASTCALL, doc}

extern PyMethodDef nr_core_methods[];
extern PyMethodDef nr_alloc_methods[];
extern PyMethodDef nr_bench_methods[];
extern PyMethodDef nr_optim_methods[];
extern PyMethodDef nr_norms_methods[];
extern PyMethodDef nr_conv_methods[];
extern PyMethodDef nr_config_methods[];

/* Chooses the CPU tier (NORMREG_CPU_CAPABILITY), warning when it cannot follow the request;
 * -1 with an exception when the warning is turned into an error. */
int nr_config_init(void);

#endif
