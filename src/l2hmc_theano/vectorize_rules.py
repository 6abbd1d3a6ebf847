"""The per-Op rules of the graph vectoriser (:mod:`.vectorize`): each re-emits a node whose inputs
carry a leading batch axis in batched form, or returns None to leave it to :func:`map_node`, the
``theano.map`` over rows.  Inputs are :class:`BatchedVar` (batched) or plain variables (shared by the
rows); ``batch`` is the symbolic batch size."""
from ._theano import theano, tt
from .batch_products import batch_outer
from .batch_take import batch_take

__all__ = ["BatchedVar", "is_batched", "lift", "padded", "reduced_axes", "op_rules", "map_node"]


class BatchedVar:
    """A batched variable: ``value`` has the original ndim + 1 (axis 0 = batch)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def lift(var, batch):
    """An unbatched variable repeated along a new leading batch axis."""
    var = tt.as_tensor_variable(var)
    return tt.alloc(var, batch, *[var.shape[i] for i in range(var.ndim)])


def is_batched(v):
    return isinstance(v, BatchedVar)


def reduced_axes(axis, ndim):
    """A reduction's axes in the batched graph: ``None`` (all) means every non-batch axis."""
    if axis is None:
        return list(range(1, ndim + 1))
    return [a + 1 if a >= 0 else a + ndim + 1 for a in axis]


def padded(v):
    """A batched value, or an unbatched one with a broadcastable leading axis of 1."""
    return v.value if is_batched(v) else tt.shape_padleft(v)


def _elemwise(node, ins, batch):
    n = node.outputs[0].ndim
    if (n == 1 and len(ins) == 2 and isinstance(node.op.scalar_op, theano.scalar.basic.Mul)
            and sum(map(is_batched, ins)) == 1):
        scale, vector = ins if is_batched(ins[0]) else ins[::-1]
        if scale.value.broadcastable[1] and not vector.broadcastable[0]:
            # A per-row scalar times a shared vector: an outer product, whose gradient for the
            # scalar is one pass of row dot products (an Elemwise here would have Theano sink
            # the gradient's Switch into a (batch, n) Elemwise with the vector, computed again).
            return [tt.cast(batch_outer(scale.value[:, 0], vector), node.outputs[0].dtype)]
    args = [v.value if is_batched(v) else tt.shape_padleft(v) if v.ndim == n else v for v in ins]
    return node.op.make_node(*args).outputs


def _dimshuffle(node, ins, batch):
    (x,) = ins
    order = [0] + [o + 1 if o != "x" else "x" for o in node.op.new_order]
    return [x.value.dimshuffle(order)]


def _careduce(node, ins, batch):
    (x,) = ins
    op = node.op
    axis = reduced_axes(op.axis, node.inputs[0].ndim)
    if isinstance(op, tt.elemwise.Sum):
        return [tt.sum(x.value, axis=axis, dtype=op.dtype, acc_dtype=op.acc_dtype)]
    if isinstance(op, tt.elemwise.Prod):
        return [tt.prod(x.value, axis=axis, dtype=op.dtype, acc_dtype=op.acc_dtype,
                        no_zeros_in_input=op.no_zeros_in_input)]
    if type(op) in (tt.elemwise.CAReduce, tt.basic.Max, tt.basic.Min, tt.elemwise.All, tt.elemwise.Any):
        new_op = type(op)(axis=axis) if type(op) is not tt.elemwise.CAReduce else tt.elemwise.CAReduce(
            op.scalar_op, axis=axis)
        return [new_op(x.value)]
    return None


def _max_and_argmax(node, ins, batch):
    (x,) = ins
    return tt.basic.MaxAndArgmax(reduced_axes(node.op.axis, node.inputs[0].ndim))(x.value)


def _subtensor(node, ins, batch):
    # Index inputs that do not depend on x are the node's own variables (unbatched nodes are kept).
    x, *index_inputs = ins
    if any(is_batched(i) for i in index_inputs):
        return None
    indices = tt.subtensor.get_idx_list(node.inputs, node.op.idx_list)
    return [x.value[(slice(None),) + tuple(indices)]]


def _incsubtensor(node, ins, batch):
    x, y, *index_inputs = ins
    if any(is_batched(i) for i in index_inputs):
        return None
    xv = x.value if is_batched(x) else lift(x, batch)
    yv = y.value if is_batched(y) else y
    indices = tt.subtensor.get_idx_list(node.inputs[1:], node.op.idx_list)
    target = xv[(slice(None),) + tuple(indices)]
    if is_batched(y) and yv.ndim < target.ndim:  # y broadcasts from the right: pad after its batch axis
        yv = yv.dimshuffle([0] + ["x"] * (target.ndim - yv.ndim) + list(range(1, yv.ndim)))
    fn = tt.set_subtensor if node.op.set_instead_of_inc else tt.inc_subtensor
    return [fn(target, yv)]


def _advanced_subtensor1(node, ins, batch):
    x, idx = ins
    if is_batched(idx):
        return None
    return [batch_take(x.value, idx)]  # C-contiguous (batch, m, ...), not Theano's x.T[idx].T


def _reshape(node, ins, batch):
    x, shape = ins
    if is_batched(shape):
        return None
    return [tt.reshape(x.value, tt.concatenate([tt.stack([batch]), tt.cast(shape, "int64")]), ndim=node.op.ndim + 1)]


def _dot(node, ins, batch):
    a, b = ins
    a_nd, b_nd = node.inputs[0].ndim, node.inputs[1].ndim
    if is_batched(a) and is_batched(b):
        # Broadcast-multiply and sum over the contracted axis.  (Theano's BatchedDot
        # links BLAS's dgemm_ directly, which the empty blas__ldflags cannot provide.)
        av = a.value if a_nd == 2 else a.value.dimshuffle(0, "x", 1)   # (B, m, n)
        bv = b.value if b_nd == 2 else b.value.dimshuffle(0, 1, "x")   # (B, n, k)
        out = (av.dimshuffle(0, 1, 2, "x") * bv.dimshuffle(0, "x", 1, 2)).sum(axis=2)  # (B, m, k)
        if a_nd == 1:
            out = out[:, 0, :]
        if b_nd == 1:
            out = out[..., 0]
        return [out]
    if is_batched(a):  # (B, ..., n) . (n, ...)
        return [tt.dot(a.value, b)]
    # a unbatched, b batched
    if b_nd == 1:  # (..., n) . (B, n)
        return [tt.dot(b.value, a.T) if a_nd == 2 else tt.dot(b.value, a)]
    if a_nd == 1:  # (n,) . (B, n, k) -> (B, k)
        return [(tt.shape_padright(tt.shape_padleft(a)) * b.value).sum(axis=1)]
    out = tt.dot(a, b.value)  # (m, B, k)
    return [out.dimshuffle(1, 0, 2)]


def _join(node, ins, batch):
    axis, *tensors = ins
    if is_batched(axis):
        return None
    ndim = node.outputs[0].ndim
    axis = tt.switch(tt.lt(axis, 0), axis + ndim, axis) + 1
    return [tt.join(axis, *[t.value if is_batched(t) else lift(t, batch) for t in tensors])]


def _make_vector(node, ins, batch):
    cols = [tt.cast(v.value if is_batched(v) else tt.alloc(v, batch), node.outputs[0].dtype) for v in ins]
    return [tt.stack(cols, axis=1)]


def _alloc(node, ins, batch):
    value, *shape = ins
    if any(is_batched(s) for s in shape):
        return None
    v = value.value
    pad = len(shape) - (v.ndim - 1)
    v = v.dimshuffle([0] + ["x"] * pad + list(range(1, v.ndim)))
    return [tt.alloc(v, batch, *shape)]


def _shape(node, ins, batch):
    return [ins[0].value.shape[1:]]


def _shape_i(node, ins, batch):
    return [ins[0].value.shape[node.op.i + 1]]


def _assert(node, ins, batch):
    value, *conds = ins
    conds = [tt.all(c.value) if is_batched(c) else c for c in conds]
    v = value.value if is_batched(value) else lift(value, batch)
    return [node.op(v, *conds)]


def _rebroadcast(node, ins, batch):
    (x,) = ins
    return [tt.Rebroadcast(*[(axis + 1, flag) for axis, flag in node.op.axis.items()])(x.value)]


def _solve(node, ins, batch):
    A, b = ins
    if is_batched(A):
        return None
    rhs = b.value
    if node.inputs[1].ndim == 1:  # (B, n) -> solve(A, (n, B)) -> (B, n)
        return [node.op(A, rhs.T).T]
    out = node.op(A, rhs.dimshuffle(1, 0, 2).reshape((rhs.shape[1], -1)))  # (n, B * k)
    return [out.reshape((rhs.shape[1], batch, rhs.shape[2])).dimshuffle(1, 0, 2)]


def _view(node, ins, batch):
    return [ins[0].value]


def op_rules():
    ops = theano.compile.ops
    Assert, MakeVector, Solve = tt.opt.Assert, tt.opt.MakeVector, tt.slinalg.Solve
    Shape, Shape_i, ViewOp = ops.Shape, ops.Shape_i, ops.ViewOp
    return [
        (tt.elemwise.Elemwise, _elemwise),
        (tt.elemwise.DimShuffle, _dimshuffle),
        (tt.elemwise.CAReduce, _careduce),
        (tt.basic.MaxAndArgmax, _max_and_argmax),
        (tt.subtensor.Subtensor, _subtensor),
        (tt.subtensor.IncSubtensor, _incsubtensor),
        (tt.subtensor.AdvancedSubtensor1, _advanced_subtensor1),
        (tt.basic.Reshape, _reshape),
        (tt.basic.Dot, _dot),
        (tt.basic.Join, _join),
        (MakeVector, _make_vector),
        (tt.basic.Alloc, _alloc),
        (Shape, _shape),
        (Shape_i, _shape_i),
        (Assert, _assert),
        (tt.basic.Rebroadcast, _rebroadcast),
        (Solve, _solve),
        (ViewOp, _view),
    ]


def map_node(node, ins, batch):
    """Fallback: ``theano.map`` of this node's Op over the rows of its batched inputs."""
    batched = [i for i, v in enumerate(ins) if is_batched(v)]

    def row_fn(*rows):
        args = list(ins)
        for i, r in zip(batched, rows):
            args[i] = r
        return node.op.make_node(*args).outputs

    outs, _ = theano.map(row_fn, sequences=[ins[i].value for i in batched])
    return outs if isinstance(outs, list) else [outs]
