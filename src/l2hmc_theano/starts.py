"""Where chains start: the target's initial point, jittered (as ``pm.sample``'s ``jitter+adapt_diag``),
and the check that the target can start there at all."""
import numpy as np

from ._theano import floatX
from .energy import StartError

__all__ = ["initial_chains", "check_start", "START_JITTER"]

#: Warm-up's starts: the initial point + Uniform(-jitter, jitter) per coordinate (``WarmupSettings.jitter``).
START_JITTER = 1.0


def initial_chains(sampler, batch_size, rng, jitter, tries=20):
    """``(batch_size, dim)`` starts: the target's initial point (a model's test point, else 0)
    plus Uniform(-jitter, jitter) noise; a start with a non-finite energy or gradient is drawn
    again (up to ``tries`` times, then the initial point itself)."""
    start_array = getattr(sampler.energy_target, "start_array", None)
    base = np.asarray(start_array() if start_array is not None else np.zeros(sampler.dim), dtype=floatX)
    # The energy-and-gradient function warm-up compiles anyway (one compile, not two); NaN where
    # a start's evaluation raises.
    def bad_at(points):
        potential, grad = sampler.energy_and_grad(points)
        return ~(np.isfinite(potential) & np.all(np.isfinite(grad), axis=1))

    x = base + rng.uniform(-jitter, jitter, size=(batch_size, sampler.dim)).astype(floatX)
    bad = bad_at(x)
    for _ in range(tries):
        if not bad.any():
            break
        x[bad] = base + rng.uniform(-jitter, jitter, size=(int(bad.sum()), sampler.dim))
        bad[bad] = bad_at(x[bad])
    x[bad] = base
    return x


def check_start(sampler):
    """Raise :class:`~l2hmc_theano.energy.StartError` when U is not finite at the target's initial
    point (a model's test point), or dU/dx is not finite there nor at any of 20 points jittered
    around it (as warm-up's starts are), naming the variables and values that cause it, as
    PyMC3's ``pm.sample`` does; nothing for a target without an initial point."""
    describe = getattr(sampler.energy_target, "describe_bad_start", None)
    if describe is None:
        return
    x = np.asarray(sampler.energy_target.start_array(), dtype=floatX)[None, :]
    potential, grad = sampler.energy_and_grad(x)
    if np.isfinite(potential[0]) and not np.all(np.isfinite(grad)):
        # A kink at the initial point itself (|a| at a = 0; an ARMA's theta^0 at theta = 0): warm-up
        # starts from jittered points, as NUTS's jitter+adapt_diag does, so those are what must work.
        near = initial_chains(sampler, 20, np.random.default_rng(0), START_JITTER, tries=0)
        U, G = sampler.energy_and_grad(near)
        if np.any(np.isfinite(U) & np.all(np.isfinite(G), axis=1)):
            return
    if not (np.isfinite(potential[0]) and np.all(np.isfinite(grad))):
        raise StartError("L2HMC cannot start: " + describe(grad[0]))
