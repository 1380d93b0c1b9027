/* Binding of the optimizer kernels: parameters and their state are updated in place.
 * Arrays arrive from normreg.functional; these checks are what memory safety needs
 * (dtype, shape, contiguity, writability), with errors that name the argument. The
 * hyperparameters are validated by normreg.optim. */
#include "bind.h"

/* The arrays of one parameter's step: param, grad and its state arrays (NULL for None), with
 * the param's float dtype `t` and, per parameter, a real number (first_step, or the bias
 * corrections of Adam). */
typedef struct {
    PyArrayObject *a[5];
    int t;
    double k[2];
} nr_step_arrays;

/* The arrays of one step, args[0..n) (param, grad, state...), checked with the table of the
 * optimizer's single-parameter binding: sgd (n = 3) or adam (n = 5). */
static int
nr_step_parse(PyObject *const *args, const char *fn, int n, nr_step_arrays *out)
{
    nr_sizes s = {0};
    const nr_array_arg sgd[] = {
        {&out->a[0], 0, "param", "*", NR_WRITABLE},
        {&out->a[1], 1, "grad", "=param", NR_REQUIRED},
        {&out->a[2], 2, "momentum_buffer", "=param", NR_OPTIONAL | NR_WRITABLE},
    };
    const nr_array_arg adam[] = {
        {&out->a[0], 0, "param", "*", NR_WRITABLE},
        {&out->a[1], 1, "grad", "=param", NR_REQUIRED},
        {&out->a[2], 2, "exp_avg", "=param", NR_WRITABLE},
        {&out->a[3], 3, "exp_avg_sq", "=param", NR_WRITABLE},
        {&out->a[4], 4, "max_exp_avg_sq", "=param", NR_OPTIONAL | NR_WRITABLE},
    };
    return n == 3 ? nr_arg_parse(args, n, n, fn, &out->t, sgd, NR_NARRAYS(sgd), &s)
                  : nr_arg_parse(args, n, n, fn, &out->t, adam, NR_NARRAYS(adam), &s);
}

/* The steps of several parameters in one call (as PyTorch's multi-tensor optimizers): `lists`
 * holds `narrays` tuples of equal length (params, grads, state arrays or None) and then
 * `nk` tuples of a real number per parameter; every parameter's arrays are checked before
 * any is written. Returns the parsed steps (PyMem_Free them) and their count in *count, or
 * NULL with an exception. */
static nr_step_arrays *
nr_steps_parse(PyObject *const *lists, int narrays, int nk, const char *fn, Py_ssize_t *count)
{
    const Py_ssize_t n = PyTuple_Check(lists[0]) ? PyTuple_GET_SIZE(lists[0]) : -1;
    for (int j = 0; j < narrays + nk; j++) {
        if (!PyTuple_Check(lists[j]) || PyTuple_GET_SIZE(lists[j]) != n) {
            PyErr_Format(PyExc_TypeError,
                         "%s: argument %d must be a tuple of one entry per parameter", fn,
                         j + 1);
            return NULL;
        }
    }
    nr_step_arrays *steps = PyMem_Malloc((size_t)(n > 0 ? n : 1) * sizeof *steps);
    if (!steps) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *args[5];
        for (int j = 0; j < narrays; j++) {
            args[j] = PyTuple_GET_ITEM(lists[j], i);
        }
        int bad = nr_step_parse(args, fn, narrays, &steps[i]) < 0;
        for (int j = 0; !bad && j < nk; j++) {
            bad = nr_arg_double(PyTuple_GET_ITEM(lists[narrays + j], i), fn,
                                "per-parameter value", &steps[i].k[j]) < 0;
        }
        if (bad) {
            PyMem_Free(steps);
            return NULL;
        }
    }
    *count = n;
    return steps;
}

/* sgd_step(param, grad, momentum_buffer | None, lr, momentum, dampening, weight_decay,
 *          nesterov, first_step) -> None; param and momentum_buffer updated in place */
static PyObject *
sgd_step(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "sgd_step";
    nr_step_arrays a;
    int nesterov, first_step;
    double lr, momentum, dampening, weight_decay;
    if (nr_check_nargs(nargs, 9, fn) < 0 || nr_step_parse(args, fn, 3, &a) < 0 ||
        nr_arg_scalars(args + 3, fn, "lr momentum dampening weight_decay ?nesterov ?first_step",
                       &lr, &momentum, &dampening, &weight_decay, &nesterov, &first_step) < 0) {
        return NULL;
    }
    NR_NOGIL(NR_CALL(a.t, nr_sgd_step, PyArray_DATA(a.a[0]), nr_data_or_null(a.a[2]),
                     PyArray_DATA(a.a[1]), PyArray_SIZE(a.a[0]), lr, momentum, dampening,
                     weight_decay, nesterov, first_step));
    Py_RETURN_NONE;
}

/* adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq | None, lr, beta1, beta2, eps,
 *           weight_decay, decoupled, bias_correction1, bias_correction2) -> None;
 * param and the state buffers updated in place */
static PyObject *
adam_step(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "adam_step";
    nr_step_arrays a;
    int decoupled;
    double lr, beta1, beta2, eps, weight_decay, bc1, bc2;
    if (nr_check_nargs(nargs, 13, fn) < 0 || nr_step_parse(args, fn, 5, &a) < 0 ||
        nr_arg_scalars(args + 5, fn,
                       "lr beta1 beta2 eps weight_decay ?decoupled bias_correction1 "
                       "bias_correction2",
                       &lr, &beta1, &beta2, &eps, &weight_decay, &decoupled, &bc1, &bc2) < 0) {
        return NULL;
    }
    NR_NOGIL(NR_CALL(a.t, nr_adam_step, PyArray_DATA(a.a[0]), PyArray_DATA(a.a[2]),
                     PyArray_DATA(a.a[3]), nr_data_or_null(a.a[4]), PyArray_DATA(a.a[1]),
                     PyArray_SIZE(a.a[0]), lr, beta1, beta2, eps, weight_decay, decoupled, bc1,
                     bc2));
    Py_RETURN_NONE;
}

/* sgd_steps(params, grads, momentum_buffers, first_steps, lr, momentum, dampening,
 *           weight_decay, nesterov) -> None
 * adam_steps(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, bias_corrections1,
 *            bias_corrections2, lr, beta1, beta2, eps, weight_decay, decoupled) -> None
 * sgd_step or adam_step of each parameter: the first arguments are tuples of one entry per
 * parameter (a momentum_buffer or max_exp_avg_sq may be None), the others hold for all;
 * nothing is written unless every array passes. */
static PyObject *
optim_steps(const char *fn, int adam, PyObject *const *args, Py_ssize_t nargs)
{
    const int narrays = adam ? 5 : 3, nk = adam ? 2 : 1;
    double h[5];
    int flag;
    Py_ssize_t n = 0;
    if (nr_check_nargs(nargs, narrays + nk + (adam ? 6 : 5), fn) < 0 ||
        (adam ? nr_arg_scalars(args + 7, fn, "lr beta1 beta2 eps weight_decay ?decoupled",
                               &h[0], &h[1], &h[2], &h[3], &h[4], &flag)
              : nr_arg_scalars(args + 4, fn, "lr momentum dampening weight_decay ?nesterov",
                               &h[0], &h[1], &h[2], &h[3], &flag)) < 0) {
        return NULL;
    }
    nr_step_arrays *st = nr_steps_parse(args, narrays, nk, fn, &n);
    if (!st) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        PyArrayObject **a = st[i].a;
        if (adam) {
            NR_CALL(st[i].t, nr_adam_step, PyArray_DATA(a[0]), PyArray_DATA(a[2]),
                    PyArray_DATA(a[3]), nr_data_or_null(a[4]), PyArray_DATA(a[1]),
                    PyArray_SIZE(a[0]), h[0], h[1], h[2], h[3], h[4], flag, st[i].k[0],
                    st[i].k[1]);
        }
        else {
            NR_CALL(st[i].t, nr_sgd_step, PyArray_DATA(a[0]), nr_data_or_null(a[2]),
                    PyArray_DATA(a[1]), PyArray_SIZE(a[0]), h[0], h[1], h[2], h[3], flag,
                    st[i].k[0] != 0);
        }
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(st);
    Py_RETURN_NONE;
}

static PyObject *
sgd_steps(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return optim_steps("sgd_steps", 0, args, nargs);
}

static PyObject *
adam_steps(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return optim_steps("adam_steps", 1, args, nargs);
}

PyMethodDef nr_optim_methods[] = {
    NR_FASTCALL(sgd_step,
                "sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, "
                "nesterov, first_step) -> None"),
    NR_FASTCALL(
        adam_step,
        "adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, "
        "weight_decay, decoupled, bias_correction1, bias_correction2) -> None"),
    NR_FASTCALL(sgd_steps,
                "sgd_steps(params, grads, momentum_buffers, first_steps, lr, momentum, "
                "dampening, weight_decay, nesterov) -> None"),
    NR_FASTCALL(adam_steps,
                "adam_steps(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, "
                "bias_corrections1, bias_corrections2, lr, beta1, beta2, eps, weight_decay, "
                "decoupled) -> None"),
    {NULL, NULL, 0, NULL},
};
