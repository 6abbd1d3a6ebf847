"""After training: keep the trained networks only where they beat plain HMC.

Training maximises a jump distance, not the effective sample size a user judges a
sampler by, and on targets a preconditioner already whitens the networks can end
below the HMC they started from.  :func:`compare_with_hmc` measures both on the
training chains (which are in equilibrium after warm-up and training): each runs
``n_draws`` MH steps of the whole batch, from the same starts and with the same
momenta, directions, step-size jitter and acceptance draws (common random numbers,
so the comparison is sharper than either figure).  The figure of each is the smallest,
over coordinates, of ArviZ's bulk and tail ESS over the ``(batch, n_draws)`` draws;
both use the same T, so the ratio is one of ESS per gradient too.  HMC runs with the
step size the networks were trained from (warm-up's), through warm-up's compiled step.
"""
import numpy as np

from ._theano import floatX

__all__ = ["compare_with_hmc", "describe", "min_ess"]


def min_ess(draws):
    """The smallest of bulk and tail ESS over coordinates of ``draws`` ``(chains, n_draws, dim)``."""
    import warnings

    import arviz as az

    with warnings.catch_warnings():  # many short chains are the point here, not a mistake
        warnings.filterwarnings("ignore", message="More chains")
        data = az.convert_to_dataset({"x": np.asarray(draws, dtype=float)})
    bulk = az.ess(data, method="bulk")["x"].values
    tail = az.ess(data, method="tail")["x"].values
    return float(np.nanmin(np.minimum(bulk, tail)))


def compare_with_hmc(sampler, chains, hmc_step_size, rng, n_draws=50):
    """Min ESS of ``sampler`` and of HMC (zero networks, step size ``hmc_step_size``, same
    T, preconditioner and jitter) over ``n_draws`` MH steps from ``chains`` ``(B, dim)``.

    Returns ``{"trained": ess, "hmc": ess, "draws": n_draws, "chains": B}``.
    """
    trained_step = sampler._function("mh_step_stats", sampler._build_mh_step_stats)
    hmc_step = sampler._function("warmup_step", sampler._build_warmup_step)
    batch = len(chains)
    x_trained = x_hmc = np.asarray(chains, dtype=floatX)
    out = {"trained": np.empty((n_draws, batch, sampler.dim)), "hmc": np.empty((n_draws, batch, sampler.dim))}
    eps = np.asarray(hmc_step_size, dtype=floatX)
    for i in range(n_draws):
        v = rng.standard_normal((batch, sampler.dim)).astype(floatX)
        d = rng.choice(np.array([-1.0, 1.0], dtype=floatX), size=batch)
        log_u = np.log(rng.uniform(size=batch)).astype(floatX)
        scale = sampler.draw_step_scale(rng, batch)
        x_trained = trained_step(x_trained, v, d, log_u, scale)[0]
        x_hmc = hmc_step(x_hmc, v, d, log_u, eps, scale)[0]
        out["trained"][i], out["hmc"][i] = x_trained, x_hmc
    result = {key: min_ess(np.swapaxes(draws, 0, 1)) for key, draws in out.items()}
    result.update(draws=n_draws, chains=batch)
    return result


def describe(selection):
    """One line on which dynamics were kept and why."""
    kept = "the trained networks" if selection["kept"] == "trained" else (
        f"plain HMC (networks zeroed, step size {selection['hmc_step_size']:.3g})")
    return (f"kept {kept}: min ESS {selection['trained']:.0f} trained vs {selection['hmc']:.0f} HMC over "
            f"{selection['chains']} chains x {selection['draws']} steps")
