"""Gather and scatter along axis 1 of a batched array, the batch axis leading.

``batch_take(x, idx)`` is ``x[:, idx]`` for ``x`` ``(batch, n, ...)`` and an integer
vector ``idx`` ``(m,)``: a C-contiguous ``(batch, m, ...)`` array.  Theano writes
``x[:, idx]`` as ``x.T[idx].T``, a transposed view, and every Elemwise downstream of it
then runs over strided memory (and its in-place outputs stay transposed).
``batch_inc(x, y, idx)`` is ``x`` with ``y`` ``(batch, m, ...)`` added at ``x[:, idx]``
(repeated indices accumulate), or set there with ``set_instead_of_inc=True``: the
gradient of the gather, one pass over ``y``.  Both are C loops over rows (as the products of
:mod:`.batch_products`).
"""
import numpy as np

from ._theano import theano, tt

__all__ = ["BatchTake", "BatchInc", "batch_take", "batch_inc"]

_INDEX_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")

# C helpers shared by both Ops: the index vector as normalised npy_intp (negative
# indices count from the end), or NULL with an IndexError set.
_SUPPORT_CODE = """
static npy_intp* l2hmc_batch_indices(PyArrayObject* idx, npy_intp n)
{
    PyArrayObject* ind = (PyArrayObject*)PyArray_FromAny(
        (PyObject*)idx, PyArray_DescrFromType(NPY_INTP), 1, 1,
        NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST, NULL);
    if (ind == NULL) return NULL;
    npy_intp m = PyArray_DIM(ind, 0);
    npy_intp* out = (npy_intp*)malloc((m > 0 ? m : 1) * sizeof(npy_intp));
    if (out == NULL) { Py_DECREF(ind); PyErr_NoMemory(); return NULL; }
    const npy_intp* src = (const npy_intp*)PyArray_DATA(ind);
    for (npy_intp j = 0; j < m; ++j) {
        npy_intp k = src[j];
        if (k < -n || k >= n) {
            PyErr_Format(PyExc_IndexError, "index %ld is out of bounds for axis 1 with size %ld",
                         (long)k, (long)n);
            free(out); Py_DECREF(ind); return NULL;
        }
        out[j] = k < 0 ? k + n : k;
    }
    Py_DECREF(ind);
    return out;
}
"""


def _check_inputs(x, idx):
    x, idx = tt.as_tensor_variable(x), tt.as_tensor_variable(idx)
    if x.ndim < 2:
        raise TypeError(f"batch gather/scatter needs x with a batch axis and axis 1, got {x.ndim}-d")
    if idx.ndim != 1 or idx.dtype not in _INDEX_DTYPES:
        raise TypeError(f"the index must be a vector of one of {_INDEX_DTYPES}, got {idx.type}")
    return x, idx


class BatchTake(theano.graph.op.COp):
    """``x[:, idx]``: ``x`` ``(batch, n, ...)``, ``idx`` ``(m,)`` -> ``(batch, m, ...)``, C-contiguous."""

    __props__ = ()

    def make_node(self, x, idx):
        x, idx = _check_inputs(x, idx)
        broadcastable = (x.broadcastable[0], idx.broadcastable[0]) + x.broadcastable[2:]
        out = tt.TensorType(x.dtype, broadcastable)()
        return theano.graph.basic.Apply(self, [x, idx], [out])

    def perform(self, node, inputs, outputs):
        x, idx = inputs
        outputs[0][0] = x[:, idx.astype("intp")]

    def infer_shape(self, fgraph, node, shapes):
        x_shape, idx_shape = shapes
        return [(x_shape[0], idx_shape[0]) + tuple(x_shape[2:])]

    def connection_pattern(self, node):
        return [[True], [False]]

    def grad(self, inputs, output_grads):
        x, idx = inputs
        (g_out,) = output_grads
        if x.dtype in tt.discrete_dtypes:
            g_x = x.zeros_like(dtype=theano.config.floatX)
        else:
            g_x = batch_inc(x.zeros_like(), g_out, idx)
        return [g_x, theano.gradient.DisconnectedType()()]

    def c_support_code(self, **kwargs):
        return _SUPPORT_CODE

    def c_code(self, node, name, inputs, outputs, sub):
        x, idx = inputs
        (out,) = outputs
        fail = sub["fail"]
        return f"""
        {{
        PyArrayObject* src = PyArray_GETCONTIGUOUS({x});
        if (src == NULL) {fail};
        const int nd = PyArray_NDIM(src);
        const npy_intp* xdims = PyArray_DIMS(src);
        const npy_intp B = xdims[0], n = xdims[1], m = PyArray_DIM({idx}, 0);
        npy_intp* cols = l2hmc_batch_indices({idx}, n);
        if (cols == NULL) {{ Py_DECREF(src); {fail}; }}
        npy_intp inner = 1;
        npy_intp odims[NPY_MAXDIMS];
        odims[0] = B; odims[1] = m;
        for (int d = 2; d < nd; ++d) {{ odims[d] = xdims[d]; inner *= xdims[d]; }}
        int reuse = {out} != NULL && PyArray_IS_C_CONTIGUOUS({out}) && PyArray_NDIM({out}) == nd;
        for (int d = 0; reuse && d < nd; ++d) reuse = PyArray_DIM({out}, d) == odims[d];
        if (!reuse) {{
            Py_XDECREF({out});
            {out} = (PyArrayObject*)PyArray_EMPTY(nd, odims, PyArray_TYPE(src), 0);
            if ({out} == NULL) {{ free(cols); Py_DECREF(src); {fail}; }}
        }}
        const dtype_{x}* xp = (const dtype_{x}*)PyArray_DATA(src);
        dtype_{out}* op = (dtype_{out}*)PyArray_DATA({out});
        if (inner == 1) {{
            for (npy_intp b = 0; b < B; ++b) {{
                const dtype_{x}* row = xp + b * n;
                dtype_{out}* orow = op + b * m;
                for (npy_intp j = 0; j < m; ++j) orow[j] = row[cols[j]];
            }}
        }} else {{
            for (npy_intp b = 0; b < B; ++b)
                for (npy_intp j = 0; j < m; ++j)
                    memcpy(op + (b * m + j) * inner, xp + (b * n + cols[j]) * inner,
                           inner * sizeof(dtype_{x}));
        }}
        free(cols);
        Py_DECREF(src);
        }}
        """

    def c_code_cache_version(self):
        return (1,)


class BatchInc(theano.graph.op.COp):
    """``x`` ``(batch, n, ...)`` with ``y`` ``(batch, m, ...)`` added (or set) at ``x[:, idx]``."""

    __props__ = ("set_instead_of_inc",)

    def __init__(self, set_instead_of_inc=False):
        self.set_instead_of_inc = bool(set_instead_of_inc)

    def make_node(self, x, y, idx):
        x, idx = _check_inputs(x, idx)
        y = tt.as_tensor_variable(y)
        if y.ndim != x.ndim:
            raise TypeError(f"y must have x's {x.ndim} dimensions, got {y.ndim}")
        if y.dtype != x.dtype:
            if theano.scalar.upcast(x.dtype, y.dtype) != x.dtype:
                raise TypeError(f"cannot add {y.dtype} values into a {x.dtype} array")
            y = tt.cast(y, x.dtype)
        return theano.graph.basic.Apply(self, [x, y, idx], [x.type()])

    def perform(self, node, inputs, outputs):
        x, y, idx = inputs
        if y.shape != (x.shape[0], len(idx)) + x.shape[2:]:
            raise ValueError(f"y has shape {y.shape}, expected {(x.shape[0], len(idx)) + x.shape[2:]}")
        out = x.copy()
        if self.set_instead_of_inc:
            out[:, idx] = y
        else:
            np.add.at(out, (slice(None), idx), y)
        outputs[0][0] = out

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def connection_pattern(self, node):
        return [[True], [True], [False]]

    def grad(self, inputs, output_grads):
        x, y, idx = inputs
        (g_out,) = output_grads
        if self.set_instead_of_inc:
            g_x = batch_inc(g_out, y.zeros_like(), idx, set_instead_of_inc=True)
        else:
            g_x = g_out
        return [g_x, batch_take(g_out, idx), theano.gradient.DisconnectedType()()]

    def c_support_code(self, **kwargs):
        return _SUPPORT_CODE

    def c_code(self, node, name, inputs, outputs, sub):
        x, y, idx = inputs
        (out,) = outputs
        fail = sub["fail"]
        update = "=" if self.set_instead_of_inc else "+="
        return f"""
        {{
        const int nd = PyArray_NDIM({x});
        const npy_intp B = PyArray_DIM({x}, 0), n = PyArray_DIM({x}, 1), m = PyArray_DIM({idx}, 0);
        int ok = PyArray_NDIM({y}) == nd && PyArray_DIM({y}, 0) == B && PyArray_DIM({y}, 1) == m;
        npy_intp inner = 1;
        for (int d = 2; d < nd; ++d) {{ ok = ok && PyArray_DIM({y}, d) == PyArray_DIM({x}, d); inner *= PyArray_DIM({x}, d); }}
        if (!ok) {{
            PyErr_SetString(PyExc_ValueError, "BatchInc: y must have shape (x.shape[0], len(idx)) + x.shape[2:]");
            {fail};
        }}
        npy_intp* cols = l2hmc_batch_indices({idx}, n);
        if (cols == NULL) {fail};
        PyArrayObject* src = PyArray_GETCONTIGUOUS({y});
        if (src == NULL) {{ free(cols); {fail}; }}
        int reuse = {out} != NULL && {out} != {x} && PyArray_IS_C_CONTIGUOUS({out}) && PyArray_NDIM({out}) == nd;
        for (int d = 0; reuse && d < nd; ++d) reuse = PyArray_DIM({out}, d) == PyArray_DIM({x}, d);
        if (!reuse) {{
            Py_XDECREF({out});
            {out} = (PyArrayObject*)PyArray_EMPTY(nd, PyArray_DIMS({x}), PyArray_TYPE({x}), 0);
            if ({out} == NULL) {{ free(cols); Py_DECREF(src); {fail}; }}
        }}
        if (PyArray_CopyInto({out}, {x}) != 0) {{ free(cols); Py_DECREF(src); {fail}; }}
        const dtype_{y}* yp = (const dtype_{y}*)PyArray_DATA(src);
        dtype_{out}* op = (dtype_{out}*)PyArray_DATA({out});
        if (inner == 1) {{
            // Four rows at a time: repeated indices make each row's updates a chain through
            // memory; interleaving independent rows keeps the CPU busy while one waits.
            npy_intp b = 0;
            for (; b + 4 <= B; b += 4) {{
                const dtype_{y}* y0 = yp + b * m;
                const dtype_{y}* y1 = y0 + m;
                const dtype_{y}* y2 = y1 + m;
                const dtype_{y}* y3 = y2 + m;
                dtype_{out}* o0 = op + b * n;
                dtype_{out}* o1 = o0 + n;
                dtype_{out}* o2 = o1 + n;
                dtype_{out}* o3 = o2 + n;
                for (npy_intp j = 0; j < m; ++j) {{
                    const npy_intp k = cols[j];
                    o0[k] {update} y0[j]; o1[k] {update} y1[j]; o2[k] {update} y2[j]; o3[k] {update} y3[j];
                }}
            }}
            for (; b < B; ++b) {{
                const dtype_{y}* yrow = yp + b * m;
                dtype_{out}* orow = op + b * n;
                for (npy_intp j = 0; j < m; ++j) orow[cols[j]] {update} yrow[j];
            }}
        }} else {{
            for (npy_intp b = 0; b < B; ++b)
                for (npy_intp j = 0; j < m; ++j) {{
                    const dtype_{y}* ys = yp + (b * m + j) * inner;
                    dtype_{out}* os = op + (b * n + cols[j]) * inner;
                    for (npy_intp k = 0; k < inner; ++k) os[k] {update} ys[k];
                }}
        }}
        free(cols);
        Py_DECREF(src);
        }}
        """

    def c_code_cache_version(self):
        return (2,)


def batch_take(x, idx):
    """``x[:, idx]`` of ``x`` ``(batch, n, ...)``: ``(batch, len(idx), ...)``."""
    return BatchTake()(x, idx)


def batch_inc(x, y, idx, set_instead_of_inc=False):
    """``x`` ``(batch, n, ...)`` with ``y`` ``(batch, len(idx), ...)`` added (or set) at ``x[:, idx]``."""
    return BatchInc(set_instead_of_inc)(x, y, idx)
