/* Argument checks shared by the binding functions. */
#include "bind.h"

#include <stdarg.h>

#include <string.h>

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
        PyErr_Format(PyExc_ValueError,
                     "%s: argument '%s' must be %d-dimensional, got %d dimensions", fname, name,
                     ndim, PyArray_NDIM(arr));
        return -1;
    }
    if (!PyArray_IS_C_CONTIGUOUS(arr) || !PyArray_ISALIGNED(arr) ||
        PyArray_ISBYTESWAPPED(arr)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: argument '%s' must be C-contiguous, aligned and in native byte order",
                     fname, name);
        return -1;
    }
    if ((flags & NR_WRITABLE) && !PyArray_ISWRITEABLE(arr)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: argument '%s' is written in place and must be writeable", fname,
                     name);
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
        PyErr_Format(PyExc_ValueError,
                     "%s: argument '%s' has size %zd in dimension %d, expected %zd (%s)", fname,
                     name, (Py_ssize_t)PyArray_DIM(arr, axis), axis, (Py_ssize_t)expected,
                     expected_what);
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
        PyErr_Format(PyExc_TypeError,
                     "%s: argument '%s' must have dtype float32 or float64, got %s", fname,
                     name, nr_dtype_name(t));
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
            PyErr_Format(PyExc_ValueError,
                         "%s: argument '%s' has the wrong shape (size %zd in dimension %d, "
                         "expected %zd)",
                         fname, name, (Py_ssize_t)PyArray_DIM(out, i), i, (Py_ssize_t)dims[i]);
            return NULL;
        }
    }
    Py_INCREF(out);
    return out;
}

PyArrayObject *
nr_out_like(PyObject *out_obj, const char *fname, int typenum, PyArrayObject *like)
{
    return nr_out_array(out_obj, fname, "out", typenum, PyArray_NDIM(like), PyArray_DIMS(like));
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
nr_arg_scalars(PyObject *const *args, const char *fname, const char *names, ...)
{
    va_list ap;
    int status = 0;
    const char *p = names;
    va_start(ap, names);
    while (status == 0 && *p) {
        const int truth = *p == '?';
        const char *name = p + truth;
        const size_t len = strcspn(name, " ");
        char buf[64]; /* the name alone, for the error */
        snprintf(buf, sizeof buf, "%.*s", (int)len, name);
        if (truth) {
            int *flag = va_arg(ap, int *);
            status = (*flag = PyObject_IsTrue(*args)) < 0 ? -1 : 0;
        }
        else {
            status = nr_arg_double(*args, fname, buf, va_arg(ap, double *));
        }
        args++;
        p = name + len + (name[len] == ' ');
    }
    va_end(ap);
    return status;
}

int
nr_arg_out_of_range(const char *fname, const char *name, const char *what, double value)
{
    PyObject *v = PyFloat_FromDouble(value);
    if (v != NULL) {
        PyErr_Format(PyExc_ValueError, "%s: argument '%s' must be %s, got %R", fname, name,
                     what, v);
        Py_DECREF(v);
    }
    return -1;
}

int
nr_arg_eps(PyObject *obj, const char *fname, double *eps)
{
    if (nr_arg_double(obj, fname, "eps", eps) < 0) {
        return -1;
    }
    if (!(*eps >= 0)) {
        return nr_arg_out_of_range(fname, "eps", ">= 0", *eps);
    }
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
nr_tuple(int n, PyArrayObject **items)
{
    PyObject *tup = PyTuple_New(n);
    for (int i = 0; i < n; i++) {
        if (tup) {
            PyTuple_SET_ITEM(tup, i, (PyObject *)items[i]);
        }
        else {
            Py_DECREF(items[i]);
        }
    }
    return tup;
}

int
nr_outputs(PyObject *out_obj, const char *fname, int t, PyArrayObject *x, int nstats, int sndim,
           const npy_intp *sdims, PyArrayObject **res)
{
    if (!(res[0] = nr_out_array(out_obj, fname, "out", t, PyArray_NDIM(x), PyArray_DIMS(x)))) {
        return -1;
    }
    for (int i = 1; i <= nstats; i++) {
        if (!(res[i] = (PyArrayObject *)PyArray_EMPTY(sndim, (npy_intp *)sdims, t, 0))) {
            while (--i >= 0) {
                Py_DECREF(res[i]);
            }
            return -1;
        }
    }
    return 0;
}

/* ---- the array arguments of a function, as a table ------------------------------------ */

void
nr_size_set(nr_sizes *sizes, char letter, npy_intp size)
{
    sizes->size[letter - 'A'] = size;
    sizes->known |= 1u << (letter - 'A');
}

npy_intp
nr_size(const nr_sizes *sizes, char letter)
{
    return sizes->size[letter - 'A'];
}

/* Copies the words for `letter` in sizes->what ("M rows of x|D ...") into buf. */
static const char *
size_what(const nr_sizes *sizes, char letter, char *buf, size_t bufsize)
{
    buf[0] = '\0';
    for (const char *p = sizes->what ? sizes->what : ""; *p; p++) {
        if (p[0] == letter && p[1] == ' ' && (p == sizes->what || p[-1] == '|')) {
            size_t len = strcspn(p + 2, "|");
            len = len < bufsize - 1 ? len : bufsize - 1;
            memcpy(buf, p + 2, len);
            buf[len] = '\0';
            break;
        }
    }
    return buf;
}

/* The table's entry `name` before entry `before`, or NULL. */
static const nr_array_arg *
earlier_entry(const nr_array_arg *table, int before, const char *name)
{
    for (int i = 0; i < before; i++) {
        if (strcmp(table[i].name, name) == 0) {
            return &table[i];
        }
    }
    return NULL;
}

/* The number of dimensions entry `i` must have (-1: any). */
static int
entry_ndim(const nr_array_arg *table, int i)
{
    const char *dims = table[i].dims;
    if (dims[0] == '=') {
        const nr_array_arg *like = earlier_entry(table, i, dims + 1);
        return like && *like->out ? PyArray_NDIM(*like->out) : -1;
    }
    return dims[0] == '*' ? -1 : (int)strlen(dims);
}

/* The sizes of entry `e`'s array against the letters (setting the new ones) or its model. */
static int
entry_sizes(const nr_array_arg *table, int i, const char *fname, nr_sizes *sizes)
{
    const nr_array_arg *e = &table[i];
    PyArrayObject *arr = *e->out;
    if (e->dims[0] == '=') {
        const nr_array_arg *like = earlier_entry(table, i, e->dims + 1);
        return like && *like->out
                   ? nr_arg_same_shape(arr, fname, e->name, *like->out, like->name)
                   : 0;
    }
    for (int axis = 0; e->dims[0] != '*' && e->dims[axis]; axis++) {
        int bit = e->dims[axis] - 'A';
        if (!(sizes->known & (1u << bit))) {
            nr_size_set(sizes, e->dims[axis], PyArray_DIM(arr, axis));
        }
        else if (PyArray_DIM(arr, axis) != sizes->size[bit]) {
            char what[96];
            return nr_arg_dim(arr, fname, e->name, axis, sizes->size[bit],
                              size_what(sizes, e->dims[axis], what, sizeof(what)));
        }
    }
    return 0;
}

int
nr_arg_arrays(PyObject *const *args, const char *fname, int t, const nr_array_arg *table, int n,
              nr_sizes *sizes)
{
    for (int i = 0; i < n; i++) {
        const nr_array_arg *e = &table[i];
        int typenum = (e->flags & NR_F64)   ? NPY_FLOAT64
                      : (e->flags & NR_I64) ? NPY_INT64
                      : (e->flags & NR_U8)  ? NPY_UINT8
                                            : t;
        if (nr_arg_array(args[e->arg], fname, e->name, typenum, entry_ndim(table, i), e->flags,
                         e->out) < 0) {
            return -1;
        }
    }
    for (int i = 0; i < n; i++) {
        if (*table[i].out && entry_sizes(table, i, fname, sizes) < 0) {
            return -1;
        }
    }
    return 0;
}

int
nr_arg_parse(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t expected, const char *fname,
             int *t, const nr_array_arg *table, int n, nr_sizes *sizes)
{
    const char *first = "?";
    for (int i = 0; i < n; i++) {
        if (table[i].arg == 0) {
            first = table[i].name;
        }
    }
    if (nr_check_nargs(nargs, expected, fname) < 0 ||
        nr_arg_float_dtype(args[0], fname, first, t) < 0) {
        return -1;
    }
    return nr_arg_arrays(args, fname, *t, table, n, sizes);
}

void *
nr_workspace(size_t size, const char *fname)
{
    if (size == SIZE_MAX) {
        PyErr_Format(PyExc_MemoryError, "%s: the workspace size overflows", fname);
        return NULL;
    }
    void *ws = PyMem_RawMalloc(size ? size : 1);
    if (!ws) {
        PyErr_NoMemory();
    }
    return ws;
}
