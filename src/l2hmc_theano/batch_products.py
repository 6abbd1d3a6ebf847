"""Products of a per-row scalar and a vector shared by the rows, the batch axis leading, as C loops
over rows: ``batch_outer(s, w)`` is ``s[:, None] * w[None, :]`` for ``s`` ``(batch,)`` and ``w``
``(n,)``, and ``batch_row_dot(g, w)`` its gradient for ``s``, ``(g * w).sum(axis=1)``.
"""
import numpy as np

from ._theano import theano, tt

__all__ = ["BatchOuter", "BatchRowDot", "batch_outer", "batch_row_dot"]


class BatchOuter(theano.graph.op.COp):
    """``s[:, None] * w[None, :]``: one scalar per row ``s`` ``(batch,)`` times a vector shared by
    the rows ``w`` ``(n,)`` -> ``(batch, n)``, C-contiguous.  The gradient for ``s`` is
    :class:`BatchRowDot`, one pass over the output gradient (not a BLAS gemv, whose threads
    stall when the cores are busy, nor an Elemwise Theano fuses with the gradient's Switch)."""

    __props__ = ()

    def make_node(self, s, w):
        s, w = tt.as_tensor_variable(s), tt.as_tensor_variable(w)
        if s.ndim != 1 or w.ndim != 1:
            raise TypeError(f"BatchOuter takes two vectors, got {s.ndim}-d and {w.ndim}-d")
        dtype = theano.scalar.upcast(s.dtype, w.dtype)
        s, w = tt.cast(s, dtype), tt.cast(w, dtype)
        out = tt.TensorType(dtype, (s.broadcastable[0], w.broadcastable[0]))()
        return theano.graph.basic.Apply(self, [s, w], [out])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = np.multiply.outer(*inputs)

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][0], shapes[1][0])]

    def grad(self, inputs, output_grads):
        s, w = inputs
        (g_out,) = output_grads
        return [batch_row_dot(g_out, w), (g_out * s.dimshuffle(0, "x")).sum(axis=0)]

    def c_code(self, node, name, inputs, outputs, sub):
        s, w = inputs
        (out,) = outputs
        fail = sub["fail"]
        return f"""
        {{
        PyArrayObject* sc = PyArray_GETCONTIGUOUS({s});
        if (sc == NULL) {fail};
        PyArrayObject* wc = PyArray_GETCONTIGUOUS({w});
        if (wc == NULL) {{ Py_DECREF(sc); {fail}; }}
        npy_intp dims[2] = {{PyArray_DIM(sc, 0), PyArray_DIM(wc, 0)}};
        if ({out} == NULL || !PyArray_IS_C_CONTIGUOUS({out}) || PyArray_DIM({out}, 0) != dims[0]
                || PyArray_DIM({out}, 1) != dims[1]) {{
            Py_XDECREF({out});
            {out} = (PyArrayObject*)PyArray_EMPTY(2, dims, PyArray_TYPE(sc), 0);
            if ({out} == NULL) {{ Py_DECREF(sc); Py_DECREF(wc); {fail}; }}
        }}
        const dtype_{s}* sp = (const dtype_{s}*)PyArray_DATA(sc);
        const dtype_{w}* wp = (const dtype_{w}*)PyArray_DATA(wc);
        dtype_{out}* op = (dtype_{out}*)PyArray_DATA({out});
        for (npy_intp b = 0; b < dims[0]; ++b) {{
            const dtype_{s} scale = sp[b];
            dtype_{out}* row = op + b * dims[1];
            for (npy_intp j = 0; j < dims[1]; ++j) row[j] = scale * wp[j];
        }}
        Py_DECREF(sc);
        Py_DECREF(wc);
        }}
        """

    def c_code_cache_version(self):
        return (1,)


def batch_outer(s, w):
    """``s[:, None] * w[None, :]`` of ``s`` ``(batch,)`` and ``w`` ``(n,)``: ``(batch, n)``."""
    return BatchOuter()(s, w)


class BatchRowDot(theano.graph.op.COp):
    """``(g * w).sum(axis=1)``: each row of ``g`` ``(batch, n)`` dotted with ``w`` ``(n,)`` -> ``(batch,)``."""

    __props__ = ()

    def make_node(self, g, w):
        g, w = tt.as_tensor_variable(g), tt.as_tensor_variable(w)
        if g.ndim != 2 or w.ndim != 1:
            raise TypeError(f"BatchRowDot takes a matrix and a vector, got {g.ndim}-d and {w.ndim}-d")
        dtype = theano.scalar.upcast(g.dtype, w.dtype)
        g, w = tt.cast(g, dtype), tt.cast(w, dtype)
        return theano.graph.basic.Apply(self, [g, w], [tt.TensorType(dtype, (g.broadcastable[0],))()])

    def perform(self, node, inputs, outputs):
        g, w = inputs
        outputs[0][0] = (g * w).sum(axis=1)

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][0],)]

    def grad(self, inputs, output_grads):
        g, w = inputs
        (g_out,) = output_grads
        return [batch_outer(g_out, w), (g * g_out.dimshuffle(0, "x")).sum(axis=0)]

    def c_code(self, node, name, inputs, outputs, sub):
        g, w = inputs
        (out,) = outputs
        fail = sub["fail"]
        return f"""
        {{
        PyArrayObject* gc = PyArray_GETCONTIGUOUS({g});
        if (gc == NULL) {fail};
        PyArrayObject* wc = PyArray_GETCONTIGUOUS({w});
        if (wc == NULL) {{ Py_DECREF(gc); {fail}; }}
        const npy_intp B = PyArray_DIM(gc, 0), n = PyArray_DIM(gc, 1);
        if (PyArray_DIM(wc, 0) != n) {{
            PyErr_SetString(PyExc_ValueError, "BatchRowDot: g.shape[1] != len(w)");
            Py_DECREF(gc); Py_DECREF(wc); {fail};
        }}
        if ({out} == NULL || PyArray_DIM({out}, 0) != B || !PyArray_IS_C_CONTIGUOUS({out})) {{
            Py_XDECREF({out});
            npy_intp dims[1] = {{B}};
            {out} = (PyArrayObject*)PyArray_EMPTY(1, dims, PyArray_TYPE(gc), 0);
            if ({out} == NULL) {{ Py_DECREF(gc); Py_DECREF(wc); {fail}; }}
        }}
        const dtype_{g}* gp = (const dtype_{g}*)PyArray_DATA(gc);
        const dtype_{w}* wp = (const dtype_{w}*)PyArray_DATA(wc);
        dtype_{out}* op = (dtype_{out}*)PyArray_DATA({out});
        for (npy_intp b = 0; b < B; ++b) {{
            const dtype_{g}* row = gp + b * n;
            dtype_{out} acc[4] = {{0, 0, 0, 0}};  // four partial sums: independent add chains
            npy_intp j = 0;
            for (; j + 4 <= n; j += 4) {{
                acc[0] += row[j] * wp[j];
                acc[1] += row[j + 1] * wp[j + 1];
                acc[2] += row[j + 2] * wp[j + 2];
                acc[3] += row[j + 3] * wp[j + 3];
            }}
            for (; j < n; ++j) acc[0] += row[j] * wp[j];
            op[b] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        }}
        Py_DECREF(gc);
        Py_DECREF(wc);
        }}
        """

    def c_code_cache_version(self):
        return (1,)


def batch_row_dot(g, w):
    """``(g * w).sum(axis=1)`` of ``g`` ``(batch, n)`` and ``w`` ``(n,)``: ``(batch,)``."""
    return BatchRowDot()(g, w)
