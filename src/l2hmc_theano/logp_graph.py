"""Two rewrites of a model's log density graph before the energy is compiled: a Cholesky that
cannot factor returns NaN (that chain's divergence) instead of raising, and the gradient with
respect to the batch ``X`` ``(batch, dim)`` is one ``Join`` of its column blocks' gradients."""
import numpy as np

from ._theano import theano, tt

__all__ = ["cholesky_nan_on_error", "grad_by_column_blocks"]


def cholesky_nan_on_error(output):
    """``output`` with every Cholesky that raises on a matrix that is not positive definite
    replaced by one that returns NaN there (Theano's ``on_error="nan"``).  A kernel matrix can
    lose definiteness at one chain's proposal; its energy is then NaN, a divergence of that
    chain (rejected), at no more cost than any other (:mod:`.chain_guard` bisects the batch
    for what still raises)."""
    Cholesky = tt.slinalg.Cholesky
    while True:
        node = next((n for n in theano.graph.basic.io_toposort(theano.graph.basic.graph_inputs([output]), [output])
                     if isinstance(n.op, Cholesky) and n.op.on_error == "raise"), None)
        if node is None:
            return output
        safe = Cholesky(lower=node.op.lower, on_error="nan")(node.inputs[0])
        output = theano.clone(output, {node.outputs[0]: safe}, strict=False)


def grad_by_column_blocks(cost, X, dim):
    """d cost / dX ``(batch, dim)`` as one ``Join`` of the gradients of the column blocks
    ``X[:, a:b]`` the graph reads ``X`` through, or ``None`` when it reads ``X`` otherwise
    or the blocks do not tile its ``dim`` columns.

    ``tt.grad(cost, X)`` writes each block's gradient into a zero matrix: an ``Alloc`` and an
    ``IncSubtensor`` per block (a model's flat vector is such blocks, one per variable), at
    every energy evaluation of a trajectory; a ``Join`` of the same numbers is one node.
    Blocks read more than once have their gradients summed; ``X``'s shape carries none.
    """
    Subtensor = tt.subtensor.Subtensor
    blocks = {}
    for node in theano.graph.basic.io_toposort([X], [cost]):
        if X not in node.inputs:
            continue
        if isinstance(node.op, (theano.compile.ops.Shape, theano.compile.ops.Shape_i)):
            continue
        if not isinstance(node.op, Subtensor) or node.inputs.index(X) != 0 or node.inputs.count(X) != 1:
            return None
        try:
            rows, cols = node.op.get_constant_idx(node.inputs)
        except (ValueError, theano.tensor.NotScalarConstantError):
            return None
        if rows != slice(None) or not isinstance(cols, slice) or cols.step is not None \
                or not isinstance(cols.start, (int, np.integer)) or not isinstance(cols.stop, (int, np.integer)):
            return None
        blocks.setdefault((int(cols.start), int(cols.stop)), []).append(node.outputs[0])
    ranges = sorted(blocks)
    tiled = [0] + [stop for _, stop in ranges] == [start for start, _ in ranges] + [dim]
    if not ranges or not tiled:
        return None
    outputs = [out for r in ranges for out in blocks[r]]
    grads = iter(tt.grad(cost, outputs, disconnected_inputs="ignore"))
    return tt.concatenate([sum(next(grads) for _ in blocks[r]) for r in ranges], axis=1)
