/* What this build is and runs on: the CPU tier, the compiler, OpenMP and BLAS, for
 * normreg.cpu_capability() and normreg.show_config(). */
#include "bind.h"
#include "nr_blas.h"

#if defined(__clang__)
#define NR_CC_NAME "clang"
#define NR_CC_VERSION __clang_version__
#elif defined(__GNUC__)
#define NR_CC_NAME "gcc"
#define NR_CC_VERSION __VERSION__
#else
#define NR_CC_NAME "unknown"
#define NR_CC_VERSION ""
#endif

/* Chooses the CPU tier from NORMREG_CPU_CAPABILITY and the CPU, and warns (RuntimeWarning)
 * when the request cannot be followed; the kernels themselves never see Python. */
int
nr_config_init(void)
{
    const char *request = getenv("NORMREG_CPU_CAPABILITY");
    const nr_request_status status = nr_dispatch_init(request);
    const char *active = nr_tier_name(nr_dispatch_tier());
    if (status == NR_REQUEST_UNKNOWN) {
        return PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                                "NORMREG_CPU_CAPABILITY=%.100s is not a CPU tier of this "
                                "build (choose from %s): using %s",
                                request, nr_tier_choices(), active);
    }
    if (status == NR_REQUEST_UNSUPPORTED) {
        return PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                                "NORMREG_CPU_CAPABILITY=%.100s asks for more than this CPU "
                                "supports: using %s",
                                request, active);
    }
    return 0;
}

static PyObject *
cpu_capability(PyObject *self, PyObject *unused)
{
    return PyUnicode_FromString(nr_tier_name(nr_dispatch_tier()));
}

/* [name, ...] of the tiers that pass `keep`, best first */
static PyObject *
nr_tier_list(int (*keep)(nr_tier))
{
    PyObject *list = PyList_New(0);
    for (int t = 0; list != NULL && t < NR_TIER_COUNT; t++) {
        if (keep((nr_tier)t)) {
            PyObject *name = PyUnicode_FromString(nr_tier_name((nr_tier)t));
            if (name == NULL || PyList_Append(list, name) < 0) {
                Py_XDECREF(name);
                Py_CLEAR(list);
                break;
            }
            Py_DECREF(name);
        }
    }
    return list;
}

static PyObject *
cpu_tiers(PyObject *self, PyObject *unused)
{
    PyObject *supported = nr_tier_list(nr_tier_supported);
    PyObject *compiled = nr_tier_list(nr_tier_compiled);
    PyObject *result = NULL;
    if (supported != NULL && compiled != NULL) {
        result = Py_BuildValue("{sOsOss}", "supported", supported, "compiled", compiled,
                               "choices", nr_tier_choices());
    }
    Py_XDECREF(supported);
    Py_XDECREF(compiled);
    return result;
}

static PyObject *
build_info(PyObject *self, PyObject *unused)
{
    const char *omp_library = nr_openmp_library();
    return Py_BuildValue("{sssssisz}", "compiler", NR_CC_NAME, "compiler_version",
                         NR_CC_VERSION, "openmp_version", nr_openmp_version(), "openmp_library",
                         omp_library);
}

static PyObject *
blas_info(PyObject *self, PyObject *unused)
{
    /* get_parallel: 0 sequential, 1 its own threads (pthreads), 2 OpenMP */
    static const char *const threading[] = {"sequential", "pthreads", "openmp"};
    const int parallel = nr_blas_get_parallel();
    return Py_BuildValue("{szszsisssz}", "config", nr_blas_get_config(), "corename",
                         nr_blas_get_corename(), "threads", nr_blas_get_num_threads(),
                         "threading",
                         parallel >= 0 && parallel <= 2 ? threading[parallel] : "?", "library",
                         nr_blas_library());
}

PyMethodDef nr_config_methods[] = {
    {"cpu_capability", cpu_capability, METH_NOARGS,
     "cpu_capability() -> the active CPU tier's name"},
    {"cpu_tiers", cpu_tiers, METH_NOARGS,
     "cpu_tiers() -> {'supported': [...], 'compiled': [...], 'choices': str}, best first"},
    {"build_info", build_info, METH_NOARGS,
     "build_info() -> the compiler and OpenMP the extension was built with"},
    {"blas_info", blas_info, METH_NOARGS,
     "blas_info() -> OpenBLAS's configuration string, core, threads and threading"},
    {NULL, NULL, 0, NULL},
};
