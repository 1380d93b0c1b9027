/* Binding of the optimizer kernels: parameters and their state are updated in place.
 * Arrays arrive from normreg.functional; these checks are what memory safety needs
 * (dtype, shape, contiguity, writability), with errors that name the argument. The
 * hyperparameters are validated by normreg.optim. */
#include "bind.h"

#define IS_F32(typenum) ((typenum) == NPY_FLOAT32)

/* A state buffer of the parameter's dtype and shape, written in place (NULL for None
 * when `optional`). */
static int
state_array(PyObject *obj, const char *fn, const char *name, int t, PyArrayObject *param,
            int optional, PyArrayObject **out)
{
    int flags = NR_WRITABLE | (optional ? NR_OPTIONAL : 0);
    if (nr_arg_array(obj, fn, name, t, PyArray_NDIM(param), flags, out) < 0) {
        return -1;
    }
    if (*out && nr_arg_same_shape(*out, fn, name, param, "param") < 0) {
        return -1;
    }
    return 0;
}

/* sgd_step(param, grad, momentum_buffer | None, lr, momentum, dampening, weight_decay,
 *          nesterov, first_step) -> None; param and momentum_buffer updated in place */
static PyObject *
sgd_step(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    const char *fn = "sgd_step";
    PyArrayObject *param, *grad, *buf;
    int t, nesterov, first_step;
    double lr, momentum, dampening, weight_decay;
    if (nr_check_nargs(nargs, 9, fn) < 0 || nr_arg_float_dtype(args[0], fn, "param", &t) < 0 ||
        nr_arg_array(args[0], fn, "param", t, -1, NR_WRITABLE, &param) < 0 ||
        nr_arg_array(args[1], fn, "grad", t, PyArray_NDIM(param), NR_REQUIRED, &grad) < 0 ||
        nr_arg_same_shape(grad, fn, "grad", param, "param") < 0 ||
        state_array(args[2], fn, "momentum_buffer", t, param, 1, &buf) < 0 ||
        nr_arg_double(args[3], fn, "lr", &lr) < 0 ||
        nr_arg_double(args[4], fn, "momentum", &momentum) < 0 ||
        nr_arg_double(args[5], fn, "dampening", &dampening) < 0 ||
        nr_arg_double(args[6], fn, "weight_decay", &weight_decay) < 0 ||
        (nesterov = PyObject_IsTrue(args[7])) < 0 || (first_step = PyObject_IsTrue(args[8])) < 0) {
        return NULL;
    }
    npy_intp n = PyArray_SIZE(param);
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_sgd_step, PyArray_DATA(param), nr_data_or_null(buf),
            PyArray_DATA(grad), n, lr, momentum, dampening, weight_decay, nesterov, first_step);
    Py_END_ALLOW_THREADS
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
    if (nr_check_nargs(nargs, 13, fn) < 0 || nr_arg_float_dtype(args[0], fn, "param", &t) < 0 ||
        nr_arg_array(args[0], fn, "param", t, -1, NR_WRITABLE, &param) < 0 ||
        nr_arg_array(args[1], fn, "grad", t, PyArray_NDIM(param), NR_REQUIRED, &grad) < 0 ||
        nr_arg_same_shape(grad, fn, "grad", param, "param") < 0 ||
        state_array(args[2], fn, "exp_avg", t, param, 0, &m) < 0 ||
        state_array(args[3], fn, "exp_avg_sq", t, param, 0, &v) < 0 ||
        state_array(args[4], fn, "max_exp_avg_sq", t, param, 1, &vmax) < 0 ||
        nr_arg_double(args[5], fn, "lr", &lr) < 0 ||
        nr_arg_double(args[6], fn, "beta1", &beta1) < 0 ||
        nr_arg_double(args[7], fn, "beta2", &beta2) < 0 ||
        nr_arg_double(args[8], fn, "eps", &eps) < 0 ||
        nr_arg_double(args[9], fn, "weight_decay", &weight_decay) < 0 ||
        (decoupled = PyObject_IsTrue(args[10])) < 0 ||
        nr_arg_double(args[11], fn, "bias_correction1", &bc1) < 0 ||
        nr_arg_double(args[12], fn, "bias_correction2", &bc2) < 0) {
        return NULL;
    }
    npy_intp n = PyArray_SIZE(param);
    Py_BEGIN_ALLOW_THREADS
    NR_CALL(IS_F32(t), nr_adam_step, PyArray_DATA(param), PyArray_DATA(m), PyArray_DATA(v),
            nr_data_or_null(vmax), PyArray_DATA(grad), n, lr, beta1, beta2, eps, weight_decay,
            decoupled, bc1, bc2);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

#define FASTCALL(name, doc) {#name, (PyCFunction)(void (*)(void))name, METH_FASTCALL, doc}

PyMethodDef nr_optim_methods[] = {
    FASTCALL(sgd_step,
             "sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, "
             "nesterov, first_step) -> None"),
    FASTCALL(adam_step,
             "adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, "
             "weight_decay, decoupled, bias_correction1, bias_correction2) -> None"),
    {NULL, NULL, 0, NULL},
};
