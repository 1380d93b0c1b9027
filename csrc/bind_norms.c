/* Binding of the per-sample normalizations: LayerNorm, RMSNorm and GroupNorm. A forward and a
 * backward of each family are alike but for the kernel: nr_norm_forward_args and
 * nr_norm_backward_args check the arguments and allocate the outputs from the family's layout,
 * then norm_forward / norm_backward call the family's kernel (NR_KERNEL: without the GIL
 * but on small inputs). Arrays arrive
 * C-contiguous from normreg.functional; these checks are what memory safety needs. */
#include "bind.h"
#include "nr_norms.h"

/* The family's forward kernel: y, the statistics (RMSNorm: rstd alone) from x, w, b. */
static void
norm_forward_kernel(nr_norm_family family, const nr_norm_args *a)
{
    void *y = PyArray_DATA(a->out[0]), *s1 = PyArray_DATA(a->out[1]);
    const void *x = PyArray_DATA(a->x), *w = nr_data_or_null(a->w), *b = nr_data_or_null(a->b);
    const nr_sizes *s = &a->s;
    switch (family) {
    case NR_LAYER_NORM:
        NR_CALL(a->t, nr_layernorm_forward, y, s1, PyArray_DATA(a->out[2]), x, w, b,
                nr_size(s, 'M'), nr_size(s, 'D'), a->eps);
        break;
    case NR_RMS_NORM:
        NR_CALL(a->t, nr_rmsnorm_forward, y, s1, x, w, nr_size(s, 'M'), nr_size(s, 'D'),
                a->eps);
        break;
    default: /* NR_GROUP_NORM */
        NR_CALL(a->t, nr_groupnorm_forward, y, s1, PyArray_DATA(a->out[2]), x, w, b,
                nr_size(s, 'N'), nr_size(s, 'C'), nr_size(s, 'S'), nr_size(s, 'G'), a->eps);
    }
}

/* forward(x, weight | None, bias | None (not RMSNorm), num_groups (GroupNorm), eps, out | None)
 *   -> (y, mean, rstd), RMSNorm (y, rstd), from the checked arguments */
static PyObject *
norm_forward(const char *fn, nr_norm_family family, nr_norm_args *a)
{
    (void)fn; /* named for norm_backward's sake: a forward allocates nothing more */
    NR_KERNEL(PyArray_NBYTES(a->x), norm_forward_kernel(family, a));
    return nr_tuple(family == NR_RMS_NORM ? 2 : 3, a->out);
}

/* The bytes of workspace the family's backward kernel takes on `nthreads` threads. */
static size_t
norm_backward_workspace(nr_norm_family family, const nr_norm_args *a, int nthreads)
{
    switch (family) {
    case NR_LAYER_NORM:
        return NR_CALL(a->t, nr_layernorm_backward_workspace, nr_size(&a->s, 'D'), nthreads);
    case NR_RMS_NORM:
        return NR_CALL(a->t, nr_rmsnorm_backward_workspace, nr_size(&a->s, 'D'), nthreads);
    default: /* NR_GROUP_NORM */
        return NR_CALL(a->t, nr_groupnorm_backward_workspace, nr_size(&a->s, 'C'),
                       nr_size(&a->s, 'S'), nr_size(&a->s, 'G'), nthreads);
    }
}

/* The family's backward kernel: dx, and dw, db added to. */
static void
norm_backward_kernel(nr_norm_family family, const nr_norm_args *a, void *ws, int nthreads)
{
    void *dx = PyArray_DATA(a->out[0]), *dw = nr_data_or_null(a->dw);
    const void *dy = PyArray_DATA(a->dy), *x = PyArray_DATA(a->x), *w = nr_data_or_null(a->w);
    const void *rstd = PyArray_DATA(a->rstd);
    const nr_sizes *s = &a->s;
    switch (family) {
    case NR_LAYER_NORM:
        NR_CALL(a->t, nr_layernorm_backward, dx, dw, nr_data_or_null(a->db), dy, x,
                PyArray_DATA(a->mean), rstd, w, nr_size(s, 'M'), nr_size(s, 'D'), ws, nthreads);
        break;
    case NR_RMS_NORM:
        NR_CALL(a->t, nr_rmsnorm_backward, dx, dw, dy, x, rstd, w, nr_size(s, 'M'),
                nr_size(s, 'D'), ws, nthreads);
        break;
    default: /* NR_GROUP_NORM */
        NR_CALL(a->t, nr_groupnorm_backward, dx, dw, nr_data_or_null(a->db), dy, x,
                PyArray_DATA(a->mean), rstd, w, nr_size(s, 'N'), nr_size(s, 'C'),
                nr_size(s, 'S'), nr_size(s, 'G'), ws, nthreads);
    }
}

/* backward(dy, x, mean (not RMSNorm), rstd, weight | None, dweight | None,
 *          dbias | None (not RMSNorm), num_groups (GroupNorm), out | None) -> dx, from the
 * checked arguments */
static PyObject *
norm_backward(const char *fn, nr_norm_family family, nr_norm_args *a)
{
    NR_KERNEL_WITH_WORKSPACE(PyArray_NBYTES(a->x), a->out[0],
                             norm_backward_workspace(family, a, nthreads), fn,
                             norm_backward_kernel(family, a, ws, nthreads));
    return (PyObject *)a->out[0];
}

/* A binding function `name` that takes `expected` arguments: DIRECTION (norm_forward or
 * norm_backward) of `family`, once nr_DIRECTION_args has checked them. */
#define NORM_BINDING(name, DIRECTION, expected, family)                                        \
    static PyObject *name(PyObject *self, PyObject *const *args, Py_ssize_t nargs)             \
    {                                                                                          \
        nr_norm_args a;                                                                        \
        if (nr_##DIRECTION##_args(args, nargs, expected, #name, family, &a) < 0) {             \
            return NULL;                                                                       \
        }                                                                                      \
        return DIRECTION(#name, family, &a);                                                   \
    }

NORM_BINDING(layer_norm_forward, norm_forward, 5, NR_LAYER_NORM)
NORM_BINDING(layer_norm_backward, norm_backward, 8, NR_LAYER_NORM)
NORM_BINDING(rms_norm_forward, norm_forward, 4, NR_RMS_NORM)
NORM_BINDING(rms_norm_backward, norm_backward, 6, NR_RMS_NORM)
NORM_BINDING(group_norm_forward, norm_forward, 6, NR_GROUP_NORM)
NORM_BINDING(group_norm_backward, norm_backward, 9, NR_GROUP_NORM)

PyMethodDef nr_norms_methods[] = {
    NR_FASTCALL(layer_norm_forward,
                "layer_norm_forward(x, weight, bias, eps, out) -> (y, mean, rstd)"),
    NR_FASTCALL(layer_norm_backward,
                "layer_norm_backward(dy, x, mean, rstd, weight, dweight, dbias, out) -> dx"),
    NR_FASTCALL(rms_norm_forward, "rms_norm_forward(x, weight, eps, out) -> (y, rstd)"),
    NR_FASTCALL(rms_norm_backward,
                "rms_norm_backward(dy, x, rstd, weight, dweight, out) -> dx"),
    NR_FASTCALL(group_norm_forward,
                "group_norm_forward(x, weight, bias, num_groups, eps, out) -> (y, mean, rstd)"),
    NR_FASTCALL(group_norm_backward, "group_norm_backward(dy, x, mean, rstd, weight, dweight, "
                                     "dbias, num_groups, out) -> dx"),
    {NULL, NULL, 0, NULL},
};
