"""After training: keep the trained networks only where they beat plain HMC.

Training maximises a jump distance, not the effective sample size a user judges a
sampler by, and on targets a preconditioner already whitens the networks can end
below the HMC they started from.  :func:`compare_with_hmc` measures both on the
training chains (which are in equilibrium after warm-up and training): each runs
``n_draws`` MH steps of the whole batch, from the same starts and with the same
momenta, directions, step-size jitter and acceptance draws (common random numbers,
so the comparison is sharper than either figure): both are the sampler's own
``sample`` from one seed.  The figure of each is the smallest,
over coordinates, of ArviZ's bulk and tail ESS over the ``(batch, n_draws)`` draws;
both use the same T, so the ratio is one of ESS per gradient too.  HMC runs with the
step size the networks were trained from (warm-up's), through the same compiled step
with the networks' heads zeroed (exactly HMC's leapfrog).

The networks are kept only if their figure is at least :data:`NETWORKS_MARGIN` times HMC's:
per gradient the two cost the same, but per second a step through the networks costs more
than HMC's (``benchmarks/step_cost.py`` measures it), so a smaller gain loses per second.
The margin is a fixed number, not a timing, so that the choice, like everything else, follows
from the seed.
"""
import warnings

import arviz as az
import numpy as np

from ._theano import floatX

__all__ = ["compare_with_hmc", "describe", "min_ess", "NETWORKS_MARGIN", "keep_trained"]

#: The trained networks are kept if their min ESS is at least this many times HMC's.
NETWORKS_MARGIN = 1.25


def keep_trained(selection):
    """Whether a :func:`compare_with_hmc` result keeps the trained networks: their min ESS is
    at least :data:`NETWORKS_MARGIN` times HMC's."""
    return selection["trained"] >= NETWORKS_MARGIN * selection["hmc"]


def min_ess(draws):
    """The smallest of bulk and tail ESS over coordinates of ``draws`` ``(chains, n_draws, dim)``."""


    with warnings.catch_warnings():  # many short chains are the point here, not a mistake
        warnings.filterwarnings("ignore", message="More chains")
        data = az.convert_to_dataset({"x": np.asarray(draws, dtype=float)})
    bulk = az.ess(data, method="bulk")["x"].values
    tail = az.ess(data, method="tail")["x"].values
    return float(np.nanmin(np.minimum(bulk, tail)))


def compare_with_hmc(sampler, chains, hmc_step_size, rng, n_draws=50):
    """Min ESS of ``sampler`` and of HMC (zero networks, step size ``hmc_step_size``, same
    T, preconditioner and jitter) over ``n_draws`` MH steps from ``chains`` ``(B, dim)``.

    Both are :meth:`~l2hmc_theano.L2HMCSampler.sample` from the same seed (drawn from
    ``rng``), so through the one compiled MH step with the same random numbers: HMC is that
    step with the networks' heads zeroed and the step size set, both restored afterwards.
    Returns ``{"trained": ess, "hmc": ess, "draws": n_draws, "chains": B}``.
    """
    seed = int(rng.integers(2 ** 63))

    def run():
        draws, _ = sampler.sample(n_draws, n_chains=len(chains), x0=chains, seed=seed, networks=True)
        return min_ess(np.swapaxes(draws, 0, 1))

    result = {"trained": run()}
    params = sampler.networks.params
    saved = [p.get_value() for p in params], sampler.log_step_size.get_value()
    try:
        sampler.networks.zero_heads()
        sampler.log_step_size.set_value(np.asarray(np.log(hmc_step_size), dtype=floatX))
        result["hmc"] = run()
    finally:
        for p, value in zip(params, saved[0]):
            p.set_value(value)
        sampler.log_step_size.set_value(saved[1])
    result.update(draws=n_draws, chains=len(chains))
    return result


def describe(selection):
    """One line on which dynamics were kept and why."""
    kept = "the trained networks" if selection["kept"] == "trained" else (
        f"plain HMC (networks zeroed, step size {selection['hmc_step_size']:.3g})")
    return (f"kept {kept}: min ESS {selection['trained']:.0f} trained vs {selection['hmc']:.0f} HMC over "
            f"{selection['chains']} chains x {selection['draws']} steps (the networks are kept from "
            f"{NETWORKS_MARGIN:g}x HMC's: their steps cost more)")
