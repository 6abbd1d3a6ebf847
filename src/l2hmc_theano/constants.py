"""Compile a graph with some of its shared variables as constants, folded before Theano sees them.

pm.sample's step reads the sampler's parameters (network weights, step size, preconditioner)
and never changes them while it draws.  As shared variables each costs the compiled call a
little, and so does every node computed from them alone (a bias broadcast to ``(1, hidden)``,
``exp`` of a log scale, ...), on every call.  :func:`fold_shared` gives the graph with those
variables, and every node computed from them (and constants) alone, replaced by constants of
their present values.

Theano's optimiser would fold the same nodes if given the shared variables as constants, but
it builds (or looks up) a C module for each node it folds, a large share of the one-chain
step's compile; here they are evaluated together by Python's ``perform`` in one call.
"""
import numpy as np

from ._theano import theano

__all__ = ["fold_shared"]


def _fixed_variables(inputs, order, frozen):
    """The variables of ``order`` (a topological order of Apply nodes) computed from ``frozen``
    and constants alone, reading at least one of ``frozen`` (themselves included)."""
    constant = {v for v in inputs if isinstance(v, theano.graph.basic.Constant)}
    fixed = {v for v in inputs if v in frozen}
    for node in order:
        if not all(i in fixed or i in constant for i in node.inputs) or not _foldable(node):
            continue
        if any(i in fixed for i in node.inputs):
            fixed.update(node.outputs)
        elif node.inputs:
            constant.update(node.outputs)  # constants alone: Theano's optimiser folds these
    return fixed


def _foldable(node):
    """Whether Theano may fold ``node`` when its inputs are constant (random and view-only ops
    say no through ``do_constant_folding``; it takes the graph, here None)."""
    try:
        return bool(node.op.do_constant_folding(None, node))
    except (AttributeError, TypeError):
        return False


def fold_shared(outputs, frozen):
    """``outputs`` with each shared variable of ``frozen`` and each variable computed from those
    and constants alone replaced by a constant of its present value (same type).

    Only the frontier is evaluated: the fixed variables that a node depending on something else
    reads, and fixed outputs.  Returns a list like ``outputs``."""
    frozen = set(frozen)
    outputs = list(outputs)
    inputs = list(theano.graph.basic.graph_inputs(outputs))
    order = theano.graph.basic.io_toposort(inputs, outputs)
    fixed = _fixed_variables(inputs, order, frozen)
    frontier = []
    for node in order:
        if not all(i in fixed for i in node.outputs):
            frontier.extend(i for i in node.inputs if i in fixed and i not in frontier)
    frontier.extend(o for o in outputs if o in fixed and o not in frontier)
    if not frontier:
        return outputs
    evaluate = theano.function([], frontier, mode=theano.compile.mode.Mode(linker="py", optimizer=None),
                               on_unused_input="ignore")
    values = evaluate()
    replace = {v: v.type.Constant(v.type, np.asarray(value, dtype=v.dtype), name=v.name)
               for v, value in zip(frontier, values)}
    return theano.clone(outputs, replace=replace)
