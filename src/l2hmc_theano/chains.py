"""The sampler's own ``sample()``: many independent chains in NumPy, each draw one MH step
(:meth:`.L2HMCSampler.mh_step_carrying`), the chains carrying U and dU/dy from step to step."""
import numpy as np

from ._theano import floatX
from .chain_guard import replace_non_finite_starts
from .checks import as_batch

__all__ = ["sample", "transitions"]


def sample(sampler, n_draws, n_chains=200, x0=None, seed=None, progressbar=False, networks=None):
    """Run ``n_chains`` independent L2HMC chains for ``n_draws`` MH steps.

    Each step draws v ~ N(0, I), d uniform on {-1, +1} and the step size's jitter per chain.
    ``x0``: ``(n_chains, dim)`` starts (default: draws from N(0, I) in the
    preconditioner's coordinates y).
    ``seed``: seeds starts, momenta, directions and acceptance draws
    (default: the sampler's own stream, derived from its seed).
    ``networks``: see :meth:`.L2HMCSampler.compiled_mh_step`.

    Returns ``(draws, accept_prob)`` of shapes ``(n_draws, n_chains, dim)`` and
    ``(n_draws, n_chains)``.  Starts and draws are in the target's sampling coordinates,
    those its energy takes: for a model whose Normal groups are non-centred
    (:mod:`l2hmc_theano.reparam`) ``sampler.energy_target.to_model`` maps a batch of
    them to the model's flat vectors.
    """
    n_draws, n_chains = int(n_draws), int(n_chains)
    if n_draws < 1 or n_chains < 1:
        raise ValueError(f"n_draws and n_chains must be >= 1, got {n_draws} and {n_chains}.")
    rng = sampler.sample_rng if seed is None else np.random.default_rng(seed)
    if x0 is None:
        x = rng.standard_normal((n_chains, sampler.dim)).astype(floatX)
        x = x if sampler.preconditioner is None else sampler.preconditioner.to_x_numpy(x).astype(floatX)
    else:
        x = as_batch(x0, sampler.dim, "x0")
    if x.shape[0] != n_chains:
        raise ValueError(f"x0 must have shape ({n_chains}, {sampler.dim}), got {x.shape}.")
    draws = np.empty((n_draws, n_chains, sampler.dim), dtype=floatX)
    accept_prob = np.empty((n_draws, n_chains), dtype=floatX)
    steps = range(n_draws)
    if progressbar:
        from fastprogress.fastprogress import progress_bar

        steps = progress_bar(steps)
    if networks is None:  # once for the run, not at every step
        networks = not sampler.networks_are_zero()
    moves = transitions(sampler, x, rng, networks)
    for i in steps:
        out, _, _ = next(moves)
        draws[i], accept_prob[i] = out.x, out.accept_prob
    return draws, accept_prob


def transitions(sampler, x, rng, networks):
    """MH steps of the chains ``x`` ``(n, dim)``, one per ``next()``, for ever: ``(step, direction,
    step_scale)``, ``step`` a :class:`~.kernel.Step` with U and dU/dy at its state (carried to the next
    step: T energy evaluations each), ``direction`` and ``step_scale`` ``(n,)`` the step's draws.  The
    starts' U and dU/dy are evaluated first (a start where either is not finite becomes a copy of
    another, :func:`.chain_guard.replace_non_finite_starts`); every draw comes from ``rng``, in the
    order of :meth:`.L2HMCSampler.draw_step_inputs`.  ``networks``: see
    :meth:`.L2HMCSampler.compiled_mh_step`."""
    potential, grad = sampler.start_state(x)
    x, potential, grad, _ = replace_non_finite_starts(x, potential, grad, rng)
    while True:
        v, direction, log_u, step_scale = sampler.draw_step_inputs(rng, len(x))
        step = sampler.mh_step_carrying(x, potential, grad, v, direction, log_u, step_scale, networks)
        x, potential, grad = step.x, step.potential, step.grad
        yield step, direction, step_scale
