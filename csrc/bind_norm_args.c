/* The arguments the normalizations (LayerNorm, BatchNorm's backward, RMSNorm, GroupNorm) take
 * in common, checked once for all of them from each family's layout: the binding functions
 * then only call their kernels. */
#include "bind.h"

/* How a normalization family lays out its arrays: x of dimensions `x` ("MD", "NCL"), the
 * affine parameters and their gradients of `params`, the saved statistics named `mean_name`
 * (of `stats`, also the dimensions of the new statistics a forward returns) and `rstd_name`
 * (of `rstd_dims`); no mean_name: RMSNorm, which has no mean and no bias. `sizes` says what
 * the letters are (nr_sizes.what). `groups`: the statistics' letter G is num_groups, an int
 * argument that divides x's channels C (GroupNorm). */
typedef struct {
    const char *sizes, *x, *params, *stats, *rstd_dims, *mean_name, *rstd_name;
    int groups;
} nr_norm_layout;

/* The families side by side: what their letters are (for the errors), the dimensions of x, of
 * the parameters, of the statistics and of rstd, the statistics' names, num_groups or not. */
static const nr_norm_layout layouts[] = {
    [NR_LAYER_NORM] = {"M rows of x|D normalized size of x", "MD", "D", "M", "M", "mean",
                       "rstd", 0},
    [NR_BATCH_NORM] = {"C the channels of x", "NCL", "C", "C", "C", "save_mean", "save_rstd",
                       0},
    [NR_RMS_NORM] = {"M rows of x|D normalized size of x", "MD", "D", "M", "M", NULL, "rstd",
                     0},
    [NR_GROUP_NORM] = {"C the channels of x|N samples of x|G num_groups", "NCS", "C", "NG",
                       "=mean", "mean", "rstd", 1},
};

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

/* Checks the `n` arrays of `table`, and for GroupNorm reads num_groups (args[groups_at]) once
 * x, table[0], gave the channels it divides: the arrays after the first `before_groups` have
 * the statistics' dimension G. */
static int
norm_arrays(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t expected, const char *fn,
            const nr_norm_layout *layout, nr_norm_args *a, const nr_array_arg *table, int n,
            int before_groups, Py_ssize_t groups_at)
{
    a->s = (nr_sizes){.what = layout->sizes};
    if (!layout->groups) {
        return nr_arg_parse(args, nargs, expected, fn, &a->t, table, n, &a->s);
    }
    npy_intp G;
    if (nr_arg_parse(args, nargs, expected, fn, &a->t, table, before_groups, &a->s) < 0 ||
        num_groups_arg(args[groups_at], fn, nr_size(&a->s, 'C'), &G) < 0) {
        return -1;
    }
    nr_size_set(&a->s, 'G', G);
    return nr_arg_arrays(args, fn, a->t, table + before_groups, n - before_groups, &a->s);
}

int
nr_norm_forward_args(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t expected,
                     const char *fn, nr_norm_family family, nr_norm_args *a)
{
    const nr_norm_layout *layout = &layouts[family];
    *a = (nr_norm_args){0};
    const int centered = layout->mean_name != NULL; /* RMSNorm: no bias, no mean to save */
    const nr_array_arg table[3] = {
        {&a->x, 0, "x", layout->x, NR_REQUIRED},
        {&a->w, 1, "weight", layout->params, NR_OPTIONAL},
        {&a->b, 2, "bias", layout->params, NR_OPTIONAL},
    };
    const int n = 2 + centered;
    if (norm_arrays(args, nargs, expected, fn, layout, a, table, n, n, expected - 3) < 0 ||
        nr_arg_eps(args[expected - 2], fn, &a->eps) < 0) {
        return -1;
    }
    const int sndim = (int)strlen(layout->stats);
    npy_intp sdims[2];
    for (int i = 0; i < sndim; i++) {
        sdims[i] = nr_size(&a->s, layout->stats[i]);
    }
    return nr_outputs(args[expected - 1], fn, a->t, a->x, 1 + centered, sndim, sdims, a->out);
}

int
nr_norm_backward_args(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t expected,
                      const char *fn, nr_norm_family family, nr_norm_args *a)
{
    const nr_norm_layout *layout = &layouts[family];
    *a = (nr_norm_args){0};
    const char *const p = layout->params;
    nr_array_arg table[7] = {
        {&a->x, 1, "x", layout->x, NR_REQUIRED},
        {&a->dy, 0, "dy", "=x", NR_REQUIRED},
    };
    int n = 2, at = 2;
    if (layout->mean_name) {
        table[n++] = (nr_array_arg){&a->mean, at++, layout->mean_name, layout->stats, 0};
    }
    table[n++] = (nr_array_arg){&a->rstd, at++, layout->rstd_name, layout->rstd_dims, 0};
    table[n++] = (nr_array_arg){&a->w, at++, "weight", p, NR_OPTIONAL};
    table[n++] = (nr_array_arg){&a->dw, at++, "dweight", p, NR_OPTIONAL | NR_WRITABLE};
    if (layout->mean_name) {
        table[n++] = (nr_array_arg){&a->db, at++, "dbias", p, NR_OPTIONAL | NR_WRITABLE};
    }
    if (norm_arrays(args, nargs, expected, fn, layout, a, table, n, 2, expected - 2) < 0 ||
        !(a->out[0] = nr_out_like(args[expected - 1], fn, a->t, a->x))) {
        return -1;
    }
    return 0;
}
