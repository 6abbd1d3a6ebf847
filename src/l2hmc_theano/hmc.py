"""Plain HMC's Metropolis-Hastings step, in NumPy around the compiled energy and gradient.

The L2HMC dynamics with zero auxiliary functions are HMC's leapfrog (the masks then only
split each position update in two halves that move disjoint coordinates by the same
x + eps v).  Every use of plain HMC (warm-up's iterations, its trajectories of t = 2..20
steps to choose T, the draws of a sampler that kept HMC) runs this loop, which needs no
compile of its own: it calls the batched U and dU/dx that the sampler compiles anyway
(:meth:`L2HMCSampler.energy_and_grad`'s function).  A scanned Theano step ran no faster
(Scan's outer loop is Python on this stack) and cost 1-3 s of compile per model.

For chains at y (whitened coordinates, ``(batch, dim)``) that carry U(y) ``(batch,)`` and
dU/dy ``(batch, dim)``, with momenta v, directions d = +1/-1 and step sizes eps ``(batch,)``:
w = d v runs T leapfrog steps

    w <- w - eps/2 dU(y);   y <- y + eps w;   w <- w - eps/2 dU(y)

and the proposal is (y_T, d w_T).  A chain with d = -1 thus runs the inverse map of the
d = +1 trajectory of its momentum (as the generalized leapfrog's backward direction does);
log|det J| = 0.  Each step evaluates U and dU/dy together, so a proposal costs T evaluations.
"""
from collections import namedtuple

import numpy as np

from ._theano import floatX
from .chain_guard import FAILURES, call_by_rows
from .checks import check_step_inputs
from .kernel import Step

__all__ = ["HMCStep", "hmc_step", "leapfrog", "trajectory", "energy_in_y", "hmc_kernel"]

HMCStep = namedtuple("HMCStep", "accept_prob accepted diverging energy energy_error potential grad y_proposal failed")


def trajectory(energy, y, w, grad, step_size, n_steps):
    """The leapfrog trajectory from ``y``, ``w``, ``grad`` ``(batch, dim)`` with per-chain
    ``step_size`` ``(batch,)``: yields ``(y_t, w_t, U(y_t), dU/dy at y_t, failed)`` after each of
    the ``n_steps`` steps (new arrays each step, but ``failed``, which accumulates in place).
    ``energy(y, rows) -> (U, dU/dy, failed)`` evaluates the chains ``rows`` (an index array, or
    None for all) and marks those whose evaluation raised; ``failed`` ``(batch,)`` is every chain
    whose evaluation raised so far.  A chain whose position or
    gradient is not finite is not evaluated again (its trajectory is lost: NaN)."""
    eps = np.asarray(step_size)[:, None]
    half = 0.5 * eps
    failed = np.zeros(len(y), dtype=bool)
    alive = None  # every chain, until one turns non-finite
    for _ in range(n_steps):
        w = w - half * grad
        y = y + eps * w
        if alive is None:
            potential, grad, bad = energy(y, None)
            if bad is not None:
                failed |= bad
        else:
            potential, grad = np.full(len(y), np.nan, dtype=y.dtype), np.full_like(y, np.nan)
            if len(alive):
                potential[alive], grad[alive], bad = energy(y[alive], alive)
                if bad is not None:
                    failed[alive] |= bad
        w = w - half * grad
        finite = np.isfinite(potential) & np.all(np.isfinite(grad), axis=1)
        if not finite.all():
            alive = np.flatnonzero(finite)
        yield y, w, potential, grad, failed


def leapfrog(energy, y, w, grad, step_size, n_steps):
    """``n_steps`` (>= 1) leapfrog steps (:func:`trajectory`): ``(y_T, w_T, U(y_T), dU/dy at y_T,
    failed)``, ``failed`` ``(batch,)`` bool."""
    for state in trajectory(energy, y, w, grad, step_size, n_steps):
        pass
    return state


def hmc_step(energy, y, v, direction, log_u, step_size, n_steps, potential, grad):
    """One MH step of HMC for chains carrying their U and dU/dy (see the module docstring).

    ``energy`` as for :func:`trajectory`; ``y, v, grad`` ``(batch, dim)``; ``direction, log_u,
    step_size, potential`` ``(batch,)``; ``n_steps`` an int >= 1.  A non-finite proposal or
    acceptance ratio is a rejection and a divergence, as in :func:`l2hmc_theano.kernel.propose`.
    Returns an :class:`HMCStep`: at the next state (the proposal if accepted, else ``y``) its U
    ``potential``, dU/dy ``grad`` and H (``energy``); H(proposal) - H(start) (``energy_error``, inf
    for a chain whose evaluation raised), the acceptance probability, ``accepted``,
    ``diverging``, the proposal ``y_proposal`` (whether accepted or not) and ``failed``, the
    chains whose evaluation raised (rejected and diverging).
    """
    sign = np.asarray(direction)[:, None]
    with np.errstate(invalid="ignore", over="ignore"):  # a diverging chain's overflow is its rejection
        y1, w1, potential1, grad1, failed = leapfrog(energy, y, sign * v, grad, step_size, n_steps)
        kinetic0 = 0.5 * np.sum(np.square(v), axis=1)
        kinetic1 = 0.5 * np.sum(np.square(w1), axis=1)
        energy_error = potential1 + kinetic1 - (potential + kinetic0)
        energy_error[failed] = np.inf
        ok = np.isfinite(energy_error) & np.all(np.isfinite(y1), axis=1)
        accept_prob = np.where(ok, np.exp(np.minimum(-np.where(ok, energy_error, 1.0), 0.0)), 0.0)
        accepted = ok & (log_u < -energy_error)
    return HMCStep(
        accept_prob=accept_prob,
        accepted=accepted,
        diverging=~ok,
        energy=np.where(accepted, potential1 + kinetic1, potential + kinetic0),
        energy_error=energy_error,
        potential=np.where(accepted, potential1, potential),
        grad=np.where(accepted[:, None], grad1, grad),
        y_proposal=y1,
        failed=failed,
    )


def energy_in_y(sampler):
    """``f(y, rows) -> (U (n,), dU/dy (n, dim), failed (n,) bool)`` at whitened positions ``y``
    ``(n, dim)`` of ``sampler``'s target (``rows`` unused: :func:`leapfrog`'s signature), from its
    compiled energy and gradient (:meth:`.L2HMCSampler.energy_grad_function`).  A row whose
    evaluation raises is NaN and ``failed`` (:mod:`.chain_guard`), every row if all raise: the
    chains' starts evaluated (they carry U and dU/dy), so a proposal that cannot is that chain's
    divergence."""
    fn = sampler.energy_grad_function()
    fn.trust_input = True  # x is made a floatX (n, dim) array here and in energy_and_grad
    precond = sampler.preconditioner

    def energy(y, rows):
        x = y if precond is None else precond.to_x_numpy(y)
        try:
            (potential, grad), failed = call_by_rows(fn, [np.asarray(x, dtype=floatX)], [0])
        except FAILURES:
            return np.full(len(y), np.nan, dtype=floatX), np.full_like(y, np.nan), np.ones(len(y), dtype=bool)
        if precond is not None:
            grad = precond.grad_to_y_numpy(grad)
        return potential, grad, failed

    return energy


def hmc_kernel(sampler, model_values=False):
    """Plain HMC's MH step (:func:`hmc_step`) of ``sampler``'s target for chains that carry U and
    dU/dy (as :meth:`.L2HMCSampler.mh_step_carrying`), whatever its networks: ``f(x, v, direction,
    log_u, step_scale, potential, grad, step_size=None, n_steps=None)`` -> a :class:`~.kernel.Step`
    with every field (log-det 0, the proposal in y as ``y_proposal``); without ``model_values`` the
    model's flat vector and log|det dx/du| are None (not computed).
    The step size and T default to the sampler's; the preconditioner and non-centring are read
    as they stand at each call, so it serves warm-up (which changes them), its choice of T and
    the draws, with no compile but the energy and gradient's.  A chain whose evaluation raises
    is rejected and diverging (:mod:`.chain_guard`); ``f.failed`` is then the ``(batch,)`` bool
    of such chains in the last call (else None)."""
    sampler.energy_grad_function()
    dim = sampler.dim
    to_model = getattr(sampler.energy_target, "to_model_with_jacobian", None)

    def step(x, v, direction, log_u, step_scale, potential, grad, step_size=None, n_steps=None):
        args = [np.ascontiguousarray(a, dtype=floatX) for a in (x, v, direction, log_u, step_scale, potential,
                                                                 grad)]
        x, v, direction, log_u, step_scale, potential, grad = args
        batch = check_step_inputs(args, dim, "The HMC step")
        eps = float(sampler.step_size if step_size is None else step_size)
        T = int(sampler.n_steps if n_steps is None else n_steps)
        if T < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps!r}.")
        precond = sampler.preconditioner
        y = x if precond is None else precond.to_y_numpy(x).astype(floatX)
        s = hmc_step(energy_in_y(sampler), y, v, direction, log_u, eps * step_scale, T, potential, grad)
        proposal = s.y_proposal if precond is None else precond.to_x_numpy(s.y_proposal).astype(floatX)
        x_next = np.where(s.accepted[:, None], proposal, x)
        q, log_jacobian = None, None
        if model_values:
            q, log_jacobian = to_model(x_next) if to_model is not None else (x_next, np.zeros(batch, dtype=floatX))
        step.failed = s.failed if s.failed.any() else None
        return Step(x_next, s.accept_prob, s.accepted, s.diverging, s.energy, s.energy_error,
                    np.zeros(batch, dtype=floatX), s.potential, grad=s.grad, model_x=q, log_jacobian=log_jacobian,
                    y_proposal=s.y_proposal)

    step.failed = None
    return step
