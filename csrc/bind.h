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

#include "nr_kernels.h"

/* Flags for nr_arg_array */
enum {
    NR_REQUIRED = 0,
    NR_OPTIONAL = 1, /* None is accepted and gives NULL */
    NR_WRITABLE = 2, /* written in place: must be writeable */
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
PyArrayObject *nr_out_array(PyObject *out_obj, const char *fname, const char *name,
                            int typenum, int ndim, const npy_intp *dims);

/* Parses a Python float (or int) argument; -1 with an exception on failure. */
int nr_arg_double(PyObject *obj, const char *fname, const char *name, double *value);

/* Raises ValueError unless `value` fits in a C int (BLAS dimensions are int). */
int nr_arg_fits_int(npy_intp value, const char *fname, const char *name);

/* Checks the number of positional arguments of a METH_FASTCALL function. */
int nr_check_nargs(Py_ssize_t nargs, Py_ssize_t expected, const char *fname);

static inline void *
nr_data_or_null(PyArrayObject *arr)
{
    return arr ? PyArray_DATA(arr) : NULL;
}

/* Calls the float or double instance of a kernel. */
#define NR_CALL(is_f32, kernel, ...) \
    ((is_f32) ? kernel##_f32(__VA_ARGS__) : kernel##_f64(__VA_ARGS__))

/* A new C-contiguous output array owned by normreg: buffers of 1 MiB and more come from a
 * pool of blocks that return to it when the array (and every view of it) is freed
 * (bind_alloc.c). NULL with an exception on failure. */
PyArrayObject *nr_new_array(int ndim, const npy_intp *dims, int typenum);
/* (a, b, c) stealing the three references; NULL (the references released) on failure. */
PyObject *nr_tuple3(PyArrayObject *a, PyArrayObject *b, PyArrayObject *c);
/* Releases every cached block. */
void nr_pool_empty(void);
int nr_alloc_init(PyObject *module);

extern PyMethodDef nr_core_methods[];
extern PyMethodDef nr_alloc_methods[];
extern PyMethodDef nr_bench_methods[];
extern PyMethodDef nr_optim_methods[];
extern PyMethodDef nr_norms_methods[];
extern PyMethodDef nr_conv_methods[];

#endif
