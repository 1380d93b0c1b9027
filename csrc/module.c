/* normreg._C: the extension module. Multi-phase init; NumPy's C API imported in exec. */
#define NR_MODULE_MAIN
#include "bind.h"

static PyObject *
set_num_threads(PyObject *self, PyObject *arg)
{
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (n < 1 || n > NR_MAX_THREADS) {
        PyErr_Format(PyExc_ValueError,
                     "set_num_threads: argument 'n' must be in [1, %d], got %ld",
                     NR_MAX_THREADS, n);
        return NULL;
    }
    nr_set_num_threads((int)n);
    Py_RETURN_NONE;
}

static PyObject *
get_num_threads(PyObject *self, PyObject *unused)
{
    return PyLong_FromLong(nr_get_num_threads());
}

static PyMethodDef module_methods[] = {
    {"set_num_threads", set_num_threads, METH_O,
     "set_num_threads(n): threads for kernels and BLAS"},
    {"get_num_threads", get_num_threads, METH_NOARGS, "get_num_threads() -> int"},
    {NULL, NULL, 0, NULL},
};

extern PyMethodDef nr_syncbn_methods[];

/* Every family of binding functions, added to the module in exec. */
static PyMethodDef *method_tables[] = {nr_core_methods,   nr_optim_methods, nr_norms_methods,
                                       nr_alloc_methods,  nr_bench_methods, nr_syncbn_methods,
                                       nr_config_methods, nr_conv_methods};

static int
module_exec(PyObject *module)
{
    /* the CPU tier first: no kernel runs before the dispatch table is filled */
    if (nr_config_init() < 0 || PyArray_ImportNumPyAPI() < 0 || nr_alloc_init(module) < 0) {
        return -1;
    }
    for (size_t i = 0; i < sizeof(method_tables) / sizeof(method_tables[0]); i++) {
        if (PyModule_AddFunctions(module, method_tables[i]) < 0) {
            return -1;
        }
    }
    nr_get_num_threads(); /* applies the default to OpenBLAS too */
    return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "normreg._C",
    .m_doc = "normreg's C kernels (private: use normreg.functional)",
    .m_size = 0,
    .m_methods = module_methods,
    .m_slots = module_slots,
};

PyMODINIT_FUNC
PyInit__C(void)
{
    return PyModuleDef_Init(&module_def);
}
