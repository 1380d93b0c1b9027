/* Argument checks shared by the binding functions. */
#include "bind.h"

static const char *
nr_dtype_name(int typenum)
{
    PyArray_Descr *d = PyArray_DescrFromType(typenum);
    const char *name = d ? d->typeobj->tp_name : "?";
    Py_XDECREF(d);
    return name;
}

int
nr_arg_array(PyObject *obj, const char *fname, const char *name, int typenum, int ndim,
             int flags, PyArrayObject **out)
{
    *out = NULL;
    if (obj == Py_None && (flags & NR_OPTIONAL)) {
        return 0;
    }
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: argument '%s' must be a numpy.ndarray%s, not %.100s",
                     fname, name, (flags & NR_OPTIONAL) ? " or None" : "",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyArrayObject *arr = (PyArrayObject *)obj;
    if (PyArray_TYPE(arr) != typenum) {
        PyErr_Format(PyExc_TypeError, "%s: argument '%s' must have dtype %s, got %s", fname,
                     name, nr_dtype_name(typenum), nr_dtype_name(PyArray_TYPE(arr)));
        return -1;
    }
    if (ndim >= 0 && PyArray_NDIM(arr) != ndim) {
        PyErr_Format(PyExc_ValueError, "%s: argument '%s' must be %d-dimensional, got %d dimensions",
                     fname, name, ndim, PyArray_NDIM(arr));
        return -1;
    }
    if (!PyArray_IS_C_CONTIGUOUS(arr) || !PyArray_ISALIGNED(arr) || PyArray_ISBYTESWAPPED(arr)) {
        PyErr_Format(PyExc_ValueError, "%s: argument '%s' must be C-contiguous, aligned and in native byte order",
                     fname, name);
        return -1;
    }
    if ((flags & NR_WRITABLE) && !PyArray_ISWRITEABLE(arr)) {
        PyErr_Format(PyExc_ValueError, "%s: argument '%s' is written in place and must be writeable",
                     fname, name);
        return -1;
    }
    *out = arr;
    return 0;
}

int
nr_arg_dim(PyArrayObject *arr, const char *fname, const char *name, int axis, npy_intp expected,
           const char *expected_what)
{
    if (PyArray_DIM(arr, axis) != expected) {
        PyErr_Format(PyExc_ValueError, "%s: argument '%s' has size %zd in dimension %d, expected %zd (%s)",
                     fname, name, (Py_ssize_t)PyArray_DIM(arr, axis), axis,
                     (Py_ssize_t)expected, expected_what);
        return -1;
    }
    return 0;
}

int
nr_arg_channels(PyObject *obj, const char *fname, const char *name, int typenum, int flags,
                npy_intp C, PyArrayObject **out)
{
    if (nr_arg_array(obj, fname, name, typenum, 1, flags, out) < 0) {
        return -1;
    }
    if (*out && nr_arg_dim(*out, fname, name, 0, C, "the channels of x") < 0) {
        return -1;
    }
    return 0;
}

int
nr_arg_same_shape(PyArrayObject *arr, const char *fname, const char *name, PyArrayObject *like,
                  const char *like_name)
{
    if (!PyArray_SAMESHAPE(arr, like)) {
        PyErr_Format(PyExc_ValueError, "%s: argument '%s' must have the shape of '%s'", fname,
                     name, like_name);
        return -1;
    }
    return 0;
}

int
nr_arg_float_dtype(PyObject *obj, const char *fname, const char *name, int *typenum)
{
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: argument '%s' must be a numpy.ndarray, not %.100s",
                     fname, name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    int t = PyArray_TYPE((PyArrayObject *)obj);
    if (t != NPY_FLOAT32 && t != NPY_FLOAT64) {
        PyErr_Format(PyExc_TypeError, "%s: argument '%s' must have dtype float32 or float64, got %s",
                     fname, name, nr_dtype_name(t));
        return -1;
    }
    *typenum = t;
    return 0;
}

PyArrayObject *
nr_out_array(PyObject *out_obj, const char *fname, const char *name, int typenum, int ndim,
             const npy_intp *dims)
{
    if (out_obj == NULL || out_obj == Py_None) {
        return nr_new_array(ndim, dims, typenum);
    }
    PyArrayObject *out;
    if (nr_arg_array(out_obj, fname, name, typenum, ndim, NR_WRITABLE, &out) < 0) {
        return NULL;
    }
    for (int i = 0; i < ndim; i++) {
        if (PyArray_DIM(out, i) != dims[i]) {
            PyErr_Format(PyExc_ValueError, "%s: argument '%s' has the wrong shape (size %zd in dimension %d, expected %zd)",
                         fname, name, (Py_ssize_t)PyArray_DIM(out, i), i, (Py_ssize_t)dims[i]);
            return NULL;
        }
    }
    Py_INCREF(out);
    return out;
}

int
nr_arg_double(PyObject *obj, const char *fname, const char *name, double *value)
{
    double v = PyFloat_AsDouble(obj);
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Format(PyExc_TypeError, "%s: argument '%s' must be a real number, not %.100s",
                     fname, name, Py_TYPE(obj)->tp_name);
        return -1;
    }
    *value = v;
    return 0;
}

int
nr_arg_fits_int(npy_intp value, const char *fname, const char *name)
{
    if (value > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "%s: %s = %zd exceeds the BLAS limit of %d", fname, name,
                     (Py_ssize_t)value, INT_MAX);
        return -1;
    }
    return 0;
}

int
nr_check_nargs(Py_ssize_t nargs, Py_ssize_t expected, const char *fname)
{
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "%s() takes exactly %zd arguments (%zd given)", fname,
                     expected, nargs);
        return -1;
    }
    return 0;
}

PyObject *
nr_tuple3(PyArrayObject *a, PyArrayObject *b, PyArrayObject *c)
{
    PyObject *tup = PyTuple_New(3);
    if (!tup) {
        Py_DECREF(a);
        Py_DECREF(b);
        Py_DECREF(c);
        return NULL;
    }
    PyTuple_SET_ITEM(tup, 0, (PyObject *)a);
    PyTuple_SET_ITEM(tup, 1, (PyObject *)b);
    PyTuple_SET_ITEM(tup, 2, (PyObject *)c);
    return tup;
}
