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
step size the networks were trained from (warm-up's), through the same compiled step
with the networks' heads zeroed (exactly HMC's leapfrog).
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


def _run_chains(step, chains, noise):
    """Draws ``(B, n_draws, dim)`` of the compiled MH ``step`` from ``chains`` with the pre-drawn ``noise``."""
    x = np.asarray(chains, dtype=floatX)
    draws = []
    for v, d, log_u, scale in noise:
        x = step(x, v, d, log_u, scale)[0]
        draws.append(x)
    return np.stack(draws, axis=1)


def compare_with_hmc(sampler, chains, hmc_step_size, rng, n_draws=50):
    """Min ESS of ``sampler`` and of HMC (zero networks, step size ``hmc_step_size``, same
    T, preconditioner and jitter) over ``n_draws`` MH steps from ``chains`` ``(B, dim)``.

    Both run through the sampler's one compiled MH step: HMC is the same step with the
    networks' heads zeroed and the step size set, both restored afterwards.
    Returns ``{"trained": ess, "hmc": ess, "draws": n_draws, "chains": B}``.
    """
    step = sampler._function("mh_step_stats", sampler._build_mh_step_stats)
    batch, dim = len(chains), sampler.dim
    noise = [(rng.standard_normal((batch, dim)).astype(floatX),
              rng.choice(np.array([-1.0, 1.0], dtype=floatX), size=batch),
              np.log(rng.uniform(size=batch)).astype(floatX),
              sampler.draw_step_scale(rng, batch)) for _ in range(n_draws)]
    result = {"trained": min_ess(_run_chains(step, chains, noise))}
    params = sampler.networks.params
    saved = [p.get_value() for p in params], sampler.log_step_size.get_value()
    try:
        sampler.networks.zero_heads()
        sampler.log_step_size.set_value(np.asarray(np.log(hmc_step_size), dtype=floatX))
        result["hmc"] = min_ess(_run_chains(step, chains, noise))
    finally:
        for p, value in zip(params, saved[0]):
            p.set_value(value)
        sampler.log_step_size.set_value(saved[1])
    result.update(draws=n_draws, chains=batch)
    return result


def describe(selection):
    """One line on which dynamics were kept and why."""
    kept = "the trained networks" if selection["kept"] == "trained" else (
        f"plain HMC (networks zeroed, step size {selection['hmc_step_size']:.3g})")
    return (f"kept {kept}: min ESS {selection['trained']:.0f} trained vs {selection['hmc']:.0f} HMC over "
            f"{selection['chains']} chains x {selection['draws']} steps")
