"""A graph vectoriser: rewrite a Theano graph of one flat vector ``x`` ``(dim,)``
as the same graph of a batch ``X`` ``(batch, dim)``, every batched variable
carrying a leading batch axis.

The graph is walked in topological order.  A node none of whose inputs depends
on ``x`` is kept as it is (shared by all rows); a node with a batched input is
re-emitted in batched form by a rule for its Op (:mod:`.vectorize_rules`: Elemwise, DimShuffle, reductions,
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
shared by the rows is :class:`l2hmc_theano.batch_products.BatchOuter`, so the scalar's
gradient is one pass of row dot products (:class:`l2hmc_theano.batch_products.BatchRowDot`).
These change the order of floating point operations (results agree with the per-row graph to ~1e-15 relative), not the values.
"""
from ._theano import theano, tt
from .vectorize_rules import BatchedVar, is_batched, lift, map_node, op_rules, padded

__all__ = ["vectorize", "BatchedVar"]


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
        return padded(values.get(v, v))

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


def vectorize(outputs, x, X, stats=None):
    """Batched versions of ``outputs`` (graphs of the vector ``x``) for the matrix ``X``.

    Returns a list of variables with a leading batch axis.  ``stats``, if a dict,
    counts the nodes handled by a rule and by the ``theano.map`` fallback, per Op type.
    """
    batch = X.shape[0]
    values = {x: BatchedVar(X)}
    rules = op_rules()
    nodes = theano.graph.basic.io_toposort([x], outputs)
    n_uses = {}
    for var in [i for node in nodes for i in node.inputs] + list(outputs):
        n_uses[var] = n_uses.get(var, 0) + 1
    for node in nodes:
        ins = [values.get(i, i) for i in node.inputs]
        if not any(is_batched(v) for v in ins):
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
            new = map_node(node, ins, batch)
            kind += " (map)"
        if stats is not None:
            stats[kind] = stats.get(kind, 0) + 1
        for old, out in zip(node.outputs, new):
            batched = out.ndim == old.ndim + 1
            values[old] = BatchedVar(out) if batched else out
    result = []
    for out in outputs:
        v = values.get(out, out)
        result.append(v.value if is_batched(v) else lift(v, batch))
    return result
