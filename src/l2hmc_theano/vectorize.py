"""A graph vectoriser: rewrite a Theano graph of one flat vector ``x`` ``(dim,)``
as the same graph of a batch ``X`` ``(batch, dim)``, every batched variable
carrying a leading batch axis.

The graph is walked in topological order.  A node none of whose inputs depends
on ``x`` is kept as it is (shared by all rows); a node with a batched input is
re-emitted in batched form by a rule for its Op (Elemwise, DimShuffle, reductions,
MaxAndArgmax, Subtensor, IncSubtensor, AdvancedSubtensor1, Reshape, Dot, Join,
MakeVector, Alloc, Shape, Shape_i, Assert, Rebroadcast, Solve with an unbatched
matrix), or, for any other Op, by ``theano.map`` over the rows of that node only.
A node that depends on ``x`` only through a shape is rebuilt unbatched.  Rows stay
independent: a ``bound`` (a Switch on a reduced condition) yields -inf for the
invalid rows only.

Three rules choose a faster batched form than the Op's own: a gather ``v[idx]`` is
:class:`l2hmc_theano.batch_take.BatchTake` (C-contiguous, batch axis leading); a Sum
takes out of the summed terms what is constant along the summed axes (``Sum(switch(c,
v, k))`` -> ``switch(c, Sum(v), k * count)`` for a ``bound`` on per-row scalars,
``Sum(c * v)`` -> ``c * Sum(v)``, and ``/``, ``+``, ``-`` alike), so neither the value
nor the gradient spends a full-size pass on them; a per-row scalar times a vector
shared by the rows is :class:`l2hmc_theano.batch_take.BatchOuter`, so the scalar's
gradient is one pass of row dot products (:class:`l2hmc_theano.batch_take.BatchRowDot`).
These change the order of floating point operations (results agree with the per-row graph to ~1e-15 relative), not the values.
"""
from ._theano import theano, tt
from .batch_products import batch_outer
from .batch_take import batch_take

__all__ = ["vectorize", "BatchedVar"]


class BatchedVar:
    """A batched variable: ``value`` has the original ndim + 1 (axis 0 = batch)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def _lift(var, batch):
    """An unbatched variable repeated along a new leading batch axis."""
    var = tt.as_tensor_variable(var)
    return tt.alloc(var, batch, *[var.shape[i] for i in range(var.ndim)])


def _b(v):
    return isinstance(v, BatchedVar)


def _reduced_axes(axis, ndim):
    """A reduction's axes in the batched graph: ``None`` (all) means every non-batch axis."""
    if axis is None:
        return list(range(1, ndim + 1))
    return [a + 1 if a >= 0 else a + ndim + 1 for a in axis]


def _padded(v):
    """A batched value, or an unbatched one with a broadcastable leading axis of 1."""
    return v.value if _b(v) else tt.shape_padleft(v)


def _times_count(value, count):
    """``value * count``, the sum of ``count`` copies of ``value``: 0 when ``count`` is 0."""
    return tt.switch(tt.gt(count, 0), value * count, tt.zeros_like(value))


def _row_sum(var, axes, values, n_uses, op):
    """The batched ``Sum(var)`` over the per-row ``axes``, with what is constant along
    ``axes`` taken out of the sum: ``Sum(switch(c, v, k))`` -> ``switch(c, Sum(v), k * count)``
    (a ``bound`` then selects row sums instead of masking every term, and so does its
    gradient), ``Sum(c * v)`` -> ``c * Sum(v)``, ``Sum(v / c)``, ``Sum(v + c)``, ``Sum(v - c)``,
    ``Sum(-v)`` alike, recursively.  ``op`` is the Sum Op (its dtypes are kept)."""
    batched_axes = [a + 1 for a in axes]

    def batched(v):
        return _padded(values.get(v, v))

    def plain(*factors):  # the sum of the product of these per-row variables, batched
        product = batched(factors[0]) if len(factors) == 1 else tt.mul(*map(batched, factors))
        return tt.sum(product, axis=batched_axes, dtype=op.dtype, acc_dtype=op.acc_dtype)

    def inner(v):
        return _row_sum(v, axes, values, n_uses, op)

    node = var.owner
    if (not axes or node is None or n_uses.get(var, 0) != 1 or not isinstance(node.op, tt.elemwise.Elemwise)
            or var.dtype not in tt.float_dtypes):
        return plain(var)
    kept = [0] + [a + 1 for a in range(var.ndim) if a not in axes]
    reduced = {}  # input -> its batched value without the summed axes, for inputs constant along them
    for i in node.inputs:
        v = batched(i)
        if all(i.broadcastable[a] for a in axes) and all(v.broadcastable[a] for a in batched_axes):
            reduced[i] = v.dimshuffle(kept)
    full = [i for i in node.inputs if i not in reduced]
    if not full or any(i.broadcastable != var.broadcastable for i in full):
        return plain(var)
    count = tt.prod(tt.stack([batched(full[0]).shape[a] for a in batched_axes]))
    scalar_op, ins = node.op.scalar_op, node.inputs
    S = theano.scalar.basic
    if isinstance(scalar_op, S.Switch):
        if ins[0] in reduced and ins[2] in reduced and full == [ins[1]]:
            return tt.switch(reduced[ins[0]], inner(ins[1]), _times_count(reduced[ins[2]], count))
    elif isinstance(scalar_op, S.Neg):
        return -inner(ins[0])
    elif isinstance(scalar_op, S.Mul) and reduced:
        rest = inner(full[0]) if len(full) == 1 else plain(*full)
        return tt.mul(*[reduced[i] for i in ins if i in reduced], rest)
    elif isinstance(scalar_op, S.TrueDiv) and full == [ins[0]]:
        return inner(ins[0]) / reduced[ins[1]]
    elif isinstance(scalar_op, S.Add) and reduced:
        rest = inner(full[0]) if len(full) == 1 else tt.sum(
            tt.add(*map(batched, full)), axis=batched_axes, dtype=op.dtype, acc_dtype=op.acc_dtype)
        return tt.add(rest, *[_times_count(reduced[i], count) for i in ins if i in reduced])
    elif isinstance(scalar_op, S.Sub) and len(full) == 1:
        if full == [ins[0]]:
            return inner(ins[0]) - _times_count(reduced[ins[1]], count)
        return _times_count(reduced[ins[0]], count) - inner(ins[1])
    return plain(var)


def _sum(node, values, n_uses):
    """Rule for Sum: :func:`_row_sum` of its input."""
    if type(node.op) is not tt.elemwise.Sum:
        return None
    (summed,) = node.inputs
    axes = list(range(summed.ndim)) if node.op.axis is None else [a % summed.ndim for a in node.op.axis]
    return [tt.cast(_row_sum(summed, axes, values, n_uses, node.op), node.outputs[0].dtype)]


def _elemwise(node, ins, batch):
    n = node.outputs[0].ndim
    if (n == 1 and len(ins) == 2 and isinstance(node.op.scalar_op, theano.scalar.basic.Mul)
            and sum(map(_b, ins)) == 1):
        scale, vector = ins if _b(ins[0]) else ins[::-1]
        if scale.value.broadcastable[1] and not vector.broadcastable[0]:
            # A per-row scalar times a shared vector: an outer product, whose gradient for the
            # scalar is one pass of row dot products (an Elemwise here would have Theano sink
            # the gradient's Switch into a (batch, n) Elemwise with the vector, computed again).
            return [tt.cast(batch_outer(scale.value[:, 0], vector), node.outputs[0].dtype)]
    args = [v.value if _b(v) else tt.shape_padleft(v) if v.ndim == n else v for v in ins]
    return node.op.make_node(*args).outputs


def _dimshuffle(node, ins, batch):
    (x,) = ins
    order = [0] + [o + 1 if o != "x" else "x" for o in node.op.new_order]
    return [x.value.dimshuffle(order)]


def _careduce(node, ins, batch):
    (x,) = ins
    op = node.op
    axis = _reduced_axes(op.axis, node.inputs[0].ndim)
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
    return tt.basic.MaxAndArgmax(_reduced_axes(node.op.axis, node.inputs[0].ndim))(x.value)


def _subtensor(node, ins, batch):
    # Index inputs that do not depend on x are the node's own variables (unbatched nodes are kept).
    x, *index_inputs = ins
    if any(_b(i) for i in index_inputs):
        return None
    indices = tt.subtensor.get_idx_list(node.inputs, node.op.idx_list)
    return [x.value[(slice(None),) + tuple(indices)]]


def _incsubtensor(node, ins, batch):
    x, y, *index_inputs = ins
    if any(_b(i) for i in index_inputs):
        return None
    xv = x.value if _b(x) else _lift(x, batch)
    yv = y.value if _b(y) else y
    indices = tt.subtensor.get_idx_list(node.inputs[1:], node.op.idx_list)
    target = xv[(slice(None),) + tuple(indices)]
    if _b(y) and yv.ndim < target.ndim:  # y broadcasts from the right: pad after its batch axis
        yv = yv.dimshuffle([0] + ["x"] * (target.ndim - yv.ndim) + list(range(1, yv.ndim)))
    fn = tt.set_subtensor if node.op.set_instead_of_inc else tt.inc_subtensor
    return [fn(target, yv)]


def _advanced_subtensor1(node, ins, batch):
    x, idx = ins
    if _b(idx):
        return None
    return [batch_take(x.value, idx)]  # C-contiguous (batch, m, ...), not Theano's x.T[idx].T


def _reshape(node, ins, batch):
    x, shape = ins
    if _b(shape):
        return None
    return [tt.reshape(x.value, tt.concatenate([tt.stack([batch]), tt.cast(shape, "int64")]), ndim=node.op.ndim + 1)]


def _dot(node, ins, batch):
    a, b = ins
    a_nd, b_nd = node.inputs[0].ndim, node.inputs[1].ndim
    if _b(a) and _b(b):
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
    if _b(a):  # (B, ..., n) . (n, ...)
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
    if _b(axis):
        return None
    ndim = node.outputs[0].ndim
    axis = tt.switch(tt.lt(axis, 0), axis + ndim, axis) + 1
    return [tt.join(axis, *[t.value if _b(t) else _lift(t, batch) for t in tensors])]


def _make_vector(node, ins, batch):
    cols = [tt.cast(v.value if _b(v) else tt.alloc(v, batch), node.outputs[0].dtype) for v in ins]
    return [tt.stack(cols, axis=1)]


def _alloc(node, ins, batch):
    value, *shape = ins
    if any(_b(s) for s in shape):
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
    conds = [tt.all(c.value) if _b(c) else c for c in conds]
    v = value.value if _b(value) else _lift(value, batch)
    return [node.op(v, *conds)]


def _rebroadcast(node, ins, batch):
    (x,) = ins
    return [tt.Rebroadcast(*[(axis + 1, flag) for axis, flag in node.op.axis.items()])(x.value)]


def _solve(node, ins, batch):
    A, b = ins
    if _b(A):
        return None
    rhs = b.value
    if node.inputs[1].ndim == 1:  # (B, n) -> solve(A, (n, B)) -> (B, n)
        return [node.op(A, rhs.T).T]
    out = node.op(A, rhs.dimshuffle(1, 0, 2).reshape((rhs.shape[1], -1)))  # (n, B * k)
    return [out.reshape((rhs.shape[1], batch, rhs.shape[2])).dimshuffle(1, 0, 2)]


def _view(node, ins, batch):
    return [ins[0].value]


def _rules():
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


def _map_node(node, ins, batch):
    """Fallback: ``theano.map`` of this node's Op over the rows of its batched inputs."""
    batched = [i for i, v in enumerate(ins) if _b(v)]

    def row_fn(*rows):
        args = list(ins)
        for i, r in zip(batched, rows):
            args[i] = r
        return node.op.make_node(*args).outputs

    outs, _ = theano.map(row_fn, sequences=[ins[i].value for i in batched])
    return outs if isinstance(outs, list) else [outs]


def vectorize(outputs, x, X, stats=None):
    """Batched versions of ``outputs`` (graphs of the vector ``x``) for the matrix ``X``.

    Returns a list of variables with a leading batch axis.  ``stats``, if a dict,
    counts the nodes handled by a rule and by the ``theano.map`` fallback, per Op type.
    """
    batch = X.shape[0]
    values = {x: BatchedVar(X)}
    rules = _rules()
    nodes = theano.graph.basic.io_toposort([x], outputs)
    n_uses = {}
    for var in [i for node in nodes for i in node.inputs] + list(outputs):
        n_uses[var] = n_uses.get(var, 0) + 1
    for node in nodes:
        ins = [values.get(i, i) for i in node.inputs]
        if not any(_b(v) for v in ins):
            if any(new is not old for new, old in zip(ins, node.inputs)):
                # Depends on x only through a shape: same for every row, rebuilt on the new inputs.
                for old, out in zip(node.outputs, node.op.make_node(*ins).outputs):
                    values[old] = out
            continue
        new = _sum(node, values, n_uses)
        for op_type, rule in rules if new is None else ():
            if isinstance(node.op, op_type):
                new = rule(node, ins, batch)
                break
        kind = type(node.op).__name__
        if new is None:
            new = _map_node(node, ins, batch)
            kind += " (map)"
        if stats is not None:
            stats[kind] = stats.get(kind, 0) + 1
        for old, out in zip(node.outputs, new):
            batched = out.ndim == old.ndim + 1
            values[old] = BatchedVar(out) if batched else out
    result = []
    for out in outputs:
        v = values.get(out, out)
        result.append(v.value if _b(v) else _lift(v, batch))
    return result
