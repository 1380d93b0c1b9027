/* Output arrays for normreg's own results, with large buffers recycled through a pool.
 *
 * glibc serves allocations of 32 MiB and more with a fresh mmap and unmaps them on free, so
 * every new large output page-faults on first touch (about 4 ms per 32 MiB here, more than
 * the kernel that fills it). Large outputs therefore come from a small pool of blocks that
 * stay mapped: the ndarray handed to the user does not own its memory but has as its base a
 * `normreg._C._Block` object, and when the last reference to that block goes away (the user
 * dropped the array and every view of it) the block returns to the pool, to be reused by a
 * later call. A block is in the pool only while nothing refers to it, so an array returned to
 * the user is never overwritten by a later call.
 *
 * The pool is touched only with the GIL held (allocation in the binding before the GIL is
 * released, deallocation of the block object by the interpreter), so it needs no lock. It
 * holds at most NR_POOL_SLOTS blocks and NR_POOL_MAX_BYTES bytes; beyond that freed blocks go
 * back to the system. `empty_cache()` releases every cached block. Process-wide malloc
 * settings are left alone. */
#include "bind.h"

#include <stdlib.h>

enum {
    NR_POOL_SLOTS = 32,
    NR_POOL_ALIGN = 64,
};
/* Buffers below this size come from NumPy's own allocator (its small-block cache and
 * glibc's heap serve them without page faults). From 128 KiB, glibc's initial mmap
 * threshold, a buffer may be a fresh mapping: the activations of a batch-128 MLP step
 * (128 x 1024 float32, 512 KiB) page-faulted about 2500 times per step with 1 MiB here. */
#define NR_POOL_MIN_BYTES ((size_t)128 << 10)
/* Cached bytes kept at most; a freed block that would exceed it is released. */
#define NR_POOL_MAX_BYTES ((size_t)1 << 30)
/* Block sizes are rounded up to this granularity so that shapes of nearly the same size
 * share blocks. */
#define NR_POOL_GRAIN ((size_t)1 << 16)

typedef struct {
    void *ptr;
    size_t size;
} nr_pool_slot;

static nr_pool_slot nr_pool[NR_POOL_SLOTS];
static int nr_pool_count = 0;
static size_t nr_pool_bytes = 0;
static unsigned long long nr_pool_hits = 0, nr_pool_misses = 0;

typedef struct {
    PyObject_HEAD
    void *ptr;
    size_t size;
} nr_block;

static void
nr_block_dealloc(PyObject *self)
{
    nr_block *blk = (nr_block *)self;
    if (blk->ptr) {
        if (nr_pool_count < NR_POOL_SLOTS && nr_pool_bytes + blk->size <= NR_POOL_MAX_BYTES) {
            nr_pool[nr_pool_count].ptr = blk->ptr;
            nr_pool[nr_pool_count].size = blk->size;
            nr_pool_count++;
            nr_pool_bytes += blk->size;
        }
        else {
            free(blk->ptr);
        }
    }
    Py_TYPE(self)->tp_free(self);
}

static PyTypeObject nr_block_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "normreg._C._Block",
    .tp_basicsize = sizeof(nr_block),
    .tp_dealloc = nr_block_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A pooled memory block owning the data of a normreg output array.",
};

/* Takes a cached block of at least `size` bytes and at most 5/4 of it (best fit), or NULL. */
static void *
nr_pool_take(size_t size, size_t *got)
{
    int best = -1;
    for (int i = 0; i < nr_pool_count; i++) {
        const size_t s = nr_pool[i].size;
        if (s >= size && s <= size + size / 4 && (best < 0 || s < nr_pool[best].size)) {
            best = i;
        }
    }
    if (best < 0) {
        return NULL;
    }
    void *ptr = nr_pool[best].ptr;
    *got = nr_pool[best].size;
    nr_pool_bytes -= *got;
    nr_pool[best] = nr_pool[--nr_pool_count];
    return ptr;
}

PyArrayObject *
nr_new_array(int ndim, const npy_intp *dims, int typenum)
{
    /* normreg's outputs: float32, float64 and uint8 masks */
    const size_t itemsize = typenum == NPY_FLOAT64 ? 8 : typenum == NPY_FLOAT32 ? 4 : 1;
    const size_t nbytes = (size_t)PyArray_MultiplyList((npy_intp *)dims, ndim) * itemsize;
    if (nbytes < NR_POOL_MIN_BYTES ||
        (typenum != NPY_FLOAT32 && typenum != NPY_FLOAT64 && typenum != NPY_UINT8)) {
        return (PyArrayObject *)PyArray_EMPTY(ndim, (npy_intp *)dims, typenum, 0);
    }
    size_t size = (nbytes + NR_POOL_GRAIN - 1) / NR_POOL_GRAIN * NR_POOL_GRAIN;
    size_t got = 0;
    void *ptr = nr_pool_take(size, &got);
    if (ptr) {
        nr_pool_hits++;
    }
    else {
        nr_pool_misses++;
        got = size;
        ptr = aligned_alloc(NR_POOL_ALIGN, size);
        if (!ptr) {
            /* the pool may hold memory another size could use: give it back and retry */
            nr_pool_empty();
            ptr = aligned_alloc(NR_POOL_ALIGN, size);
            if (!ptr) {
                PyErr_NoMemory();
                return NULL;
            }
        }
    }
    nr_block *blk = PyObject_New(nr_block, &nr_block_type);
    if (!blk) {
        free(ptr);
        return NULL;
    }
    blk->ptr = ptr;
    blk->size = got;
    PyArray_Descr *descr = PyArray_DescrFromType(typenum);
    PyObject *arr = PyArray_NewFromDescr(&PyArray_Type, descr, ndim, (npy_intp *)dims, NULL,
                                         ptr, NPY_ARRAY_CARRAY, NULL);
    if (!arr) {
        Py_DECREF(blk); /* returns the block to the pool */
        return NULL;
    }
    if (PyArray_SetBaseObject((PyArrayObject *)arr, (PyObject *)blk) < 0) { /* steals blk */
        Py_DECREF(arr);
        return NULL;
    }
    return (PyArrayObject *)arr;
}

void
nr_pool_empty(void)
{
    for (int i = 0; i < nr_pool_count; i++) {
        free(nr_pool[i].ptr);
    }
    nr_pool_count = 0;
    nr_pool_bytes = 0;
}

int
nr_alloc_init(PyObject *module)
{
    if (PyType_Ready(&nr_block_type) < 0) {
        return -1;
    }
    return 0;
}

/* empty_cache(): releases every cached block to the system */
static PyObject *
empty_cache(PyObject *self, PyObject *unused)
{
    nr_pool_empty();
    Py_RETURN_NONE;
}

/* pool_stats() -> (cached_blocks, cached_bytes, hits, misses) */
static PyObject *
pool_stats(PyObject *self, PyObject *unused)
{
    return Py_BuildValue("(inKK)", nr_pool_count, (Py_ssize_t)nr_pool_bytes, nr_pool_hits,
                         nr_pool_misses);
}

PyMethodDef nr_alloc_methods[] = {
    {"empty_cache", empty_cache, METH_NOARGS,
     "empty_cache(): return the cached blocks of large output arrays to the system"},
    {"pool_stats", pool_stats, METH_NOARGS,
     "pool_stats() -> (cached_blocks, cached_bytes, hits, misses) of the output-array pool"},
    {NULL, NULL, 0, NULL},
};
