/* Binding of the optimizer kernels: parameters and their state are updated in place.
 * Arrays arrive from normreg.functional; these checks are what memory safety needs
 * (dtype, shape, contiguity, writability), with errors that name the argument. The
 * hyperparameters are validated by normreg.optim. */
#include "bind.h"

/* sgd_step(param, grad, momentum_buffer | None, lr, momentum, dampening, weight_decay,
 *          nesterov, first_step) -> None; param and momentum_buffer updated in place */
static PyObject *
sgd_step(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "sgd_step";
    PyArrayObject *param, *grad, *buf;
    int t, nesterov, first_step;
    double lr, momentum, dampening, weight_decay;
    nr_sizes s = {0};
    const nr_array_arg arrays[] = {
        {&param, 0, "param", "*", NR_WRITABLE},
        {&grad, 1, "grad", "=param", NR_REQUIRED},
        {&buf, 2, "momentum_buffer", "=param", NR_OPTIONAL | NR_WRITABLE},
    };
    if (nr_arg_parse(args, nargs, 9, fn, &t, arrays, NR_NARRAYS(arrays), &s) < 0 ||
        nr_arg_scalars(args + 3, fn, "lr momentum dampening weight_decay ?nesterov ?first_step",
                       &lr, &momentum, &dampening, &weight_decay, &nesterov, &first_step) < 0) {
        return NULL;
    }
    npy_intp n = PyArray_SIZE(param);
    NR_NOGIL(NR_CALL(t, nr_sgd_step, PyArray_DATA(param), nr_data_or_null(buf),
                     PyArray_DATA(grad), n, lr, momentum, dampening, weight_decay, nesterov,
                     first_step));
    Py_RETURN_NONE;
}

/* adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq | None, lr, beta1, beta2, eps,
 *           weight_decay, decoupled, bias_correction1, bias_correction2) -> None;
 * param and the state buffers updated in place */
static PyObject *
adam_step(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "adam_step";
    PyArrayObject *param, *grad, *m, *v, *vmax;
    int t, decoupled;
    double lr, beta1, beta2, eps, weight_decay, bc1, bc2;
    nr_sizes s = {0};
    const nr_array_arg arrays[] = {
        {&param, 0, "param", "*", NR_WRITABLE},
        {&grad, 1, "grad", "=param", NR_REQUIRED},
        {&m, 2, "exp_avg", "=param", NR_WRITABLE},
        {&v, 3, "exp_avg_sq", "=param", NR_WRITABLE},
        {&vmax, 4, "max_exp_avg_sq", "=param", NR_OPTIONAL | NR_WRITABLE},
    };
    if (nr_arg_parse(args, nargs, 13, fn, &t, arrays, NR_NARRAYS(arrays), &s) < 0 ||
        nr_arg_scalars(args + 5, fn,
                       "lr beta1 beta2 eps weight_decay ?decoupled bias_correction1 "
                       "bias_correction2",
                       &lr, &beta1, &beta2, &eps, &weight_decay, &decoupled, &bc1, &bc2) < 0) {
        return NULL;
    }
    npy_intp n = PyArray_SIZE(param);
    NR_NOGIL(NR_CALL(t, nr_adam_step, PyArray_DATA(param), PyArray_DATA(m), PyArray_DATA(v),
                     nr_data_or_null(vmax), PyArray_DATA(grad), n, lr, beta1, beta2, eps,
                     weight_decay, decoupled, bc1, bc2));
    Py_RETURN_NONE;
}

PyMethodDef nr_optim_methods[] = {
    NR_FASTCALL(sgd_step,
                "sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, "
                "nesterov, first_step) -> None"),
    NR_FASTCALL(
        adam_step,
        "adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, "
        "weight_decay, decoupled, bias_correction1, bias_correction2) -> None"),
    {NULL, NULL, 0, NULL},
};
