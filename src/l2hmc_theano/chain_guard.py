"""One chain's failure is that chain's divergence, not the end of the run.

Every compiled step moves a batch of independent chains: row i of each batched output
depends on row i of the batched inputs only.  When an evaluation raises for the batch (a
Cholesky of a matrix that is not positive definite at one chain's proposal, a scipy
routine that refuses a NaN), :func:`call_by_rows` finds the rows that raise by bisection
(about 2 log2(B) calls of part of the batch for one bad row), evaluates the other rows as
they are and the failing rows *neutralised* (step size 0: the proposal is the start, which
evaluated before), and marks those failed: rejected and diverging.  The healthy rows get
the inputs they had, so their outputs are those of the batch without the failing rows.

Where the failing rows cannot be evaluated neutralised either (a bug, a model that cannot be
evaluated at its chains' own positions), or where every row fails and nothing neutralises
them, the first error is raised as it was.
"""
import warnings

import numpy as np

__all__ = ["call_by_rows", "failing_rows", "guarded_mh_step", "mark_mh_step", "neutralise_step_scale", "FAILURES"]

#: What one chain's evaluation may raise (scipy's LinAlgError, ValueError for NaN input,
#: FloatingPointError, ...); KeyboardInterrupt and SystemExit are not Exceptions.
FAILURES = (Exception,)


def failing_rows(call, n):
    """Which of the rows ``0..n-1`` make ``call(rows)`` raise, by bisection: ``(n,)`` bool.
    ``call`` takes an index array; the caller knows the whole batch raised."""
    failed = np.zeros(n, dtype=bool)

    def visit(rows, known_bad):
        if not known_bad:
            try:
                call(rows)
                return
            except FAILURES:
                pass
        if len(rows) == 1:
            failed[rows] = True
            return
        half = len(rows) // 2
        visit(rows[:half], False)
        visit(rows[half:], False)

    visit(np.arange(n), True)
    return failed


def _as_list(outputs):
    """A function's outputs as a list (a Theano function of one output returns it bare)."""
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _take(args, batched, rows):
    return [a[rows] if i in batched else a for i, a in enumerate(args)]


def call_by_rows(fn, args, batched, neutralise=None, mark=None):
    """``fn(*args)``, with the chains whose evaluation raises made failures.

    ``args``: the inputs; ``batched``: indices of those whose axis 0 is the chain axis
    (``n`` rows).  ``neutralise(args) -> args``: the failing rows' inputs changed so that
    they evaluate (e.g. :func:`neutralise_step_scale`); without it their float outputs are
    NaN and their bool outputs False.  ``mark(outputs, failed, args) -> outputs`` then records
    the failures (e.g. :func:`mark_mh_step`).  Every output must have the chain axis first.

    Returns ``(outputs, failed)``: a list of arrays, and ``(n,)`` bool or None when nothing
    raised (the common case costs one call, as ``fn`` alone).
    """
    try:
        return _as_list(fn(*args)), None
    except FAILURES as error:
        first = error
    batched = set(batched)
    n = len(args[min(batched)])
    failed = failing_rows(lambda rows: fn(*_take(args, batched, rows)), n)
    if failed.all() and neutralise is None:
        raise first
    good = np.flatnonzero(~failed)
    bad = np.flatnonzero(failed)
    parts = []
    if len(good):
        parts.append((good, [np.asarray(o) for o in _as_list(fn(*_take(args, batched, good)))]))
    if neutralise is not None:
        try:
            parts.append((bad, [np.asarray(o) for o in _as_list(fn(*neutralise(_take(args, batched, bad))))]))
        except FAILURES:
            raise first from None
    else:
        parts.append((bad, [np.full((len(bad),) + o.shape[1:], False if o.dtype == bool else np.nan, dtype=o.dtype)
                            for o in parts[0][1]]))
    outputs = []
    for k, first_part in enumerate(parts[0][1]):
        full = np.empty((n,) + first_part.shape[1:], dtype=first_part.dtype)
        for rows, part in parts:
            full[rows] = part[k]
        outputs.append(full)
    return (outputs if mark is None else mark(outputs, failed, args)), failed


def neutralise_step_scale(index):
    """A ``neutralise`` for :func:`call_by_rows` that sets input ``index`` (the per-chain
    step-size factors) to 0: the trajectory stays at its start."""

    def neutralise(args):
        args = list(args)
        args[index] = np.zeros_like(args[index])
        return args

    return neutralise


def mark_mh_step(outputs, failed, args):
    """Mark ``failed`` chains in an MH step's outputs ``[x_next, accept_prob, accepted,
    diverging, energy, energy_error, logdet, potential, ..., grad]`` of inputs ``[x, v, d,
    log_u, step_scale, potential, grad]`` (:meth:`L2HMCSampler.mh_step_carrying`; the last two
    of each only when carried): the chain stays at ``x`` (with its carried U and dU/dy), not
    accepted, acceptance 0, diverging, energy error inf.  With step size 0 the energy and
    log-det are the start's already."""
    outputs[0][failed] = args[0][failed]
    outputs[1][failed] = 0.0
    outputs[2][failed] = False
    outputs[3][failed] = True
    outputs[5][failed] = np.inf
    if len(args) == 7:
        outputs[7][failed] = args[5][failed]
        outputs[-1][failed] = args[6][failed]
    return outputs


def guarded_mh_step(fn, args):
    """The outputs of a compiled MH step ``fn`` for ``args`` (every one batched): a chain whose
    evaluation raises stays where it is, rejected and diverging (:func:`mark_mh_step`), and the
    others go on."""
    args = [np.asarray(a) for a in args]
    return call_by_rows(fn, args, range(len(args)), neutralise_step_scale(4), mark_mh_step)[0]

def replace_non_finite_starts(x, potential, grad, rng):
    """Chains ``x`` ``(n, dim)`` whose U ``(n,)`` or dU ``(n, dim)`` is not finite (or raised) made
    copies of chains where both are, as frozen chains are (a chain that cannot evaluate its
    own start would reject every proposal), with a warning.  Returns ``(x, potential, grad, number
    replaced)``; unchanged when every start is finite, or none is (then the first step says so)."""
    finite = np.isfinite(potential) & np.all(np.isfinite(grad), axis=1)
    if finite.all() or not finite.any():
        return x, potential, grad, 0
    warnings.warn(f"{int(np.sum(~finite))} of {len(x)} starts have a non-finite energy or gradient: they start as "
                  "copies of the others.")
    bad = np.flatnonzero(~finite)
    source = rng.choice(np.flatnonzero(finite), size=len(bad))
    x, potential, grad = np.array(x, copy=True), np.array(potential, copy=True), np.array(grad, copy=True)
    x[bad], potential[bad], grad[bad] = x[source], potential[source], grad[source]
    return x, potential, grad, len(bad)
