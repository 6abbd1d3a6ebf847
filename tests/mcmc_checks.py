"""Moment checks of MCMC output with tolerances from the effective sample size."""
import arviz as az
import numpy as np


def moment_z_scores(draws, mean, cov):
    """z-scores of the sample mean and covariance entries of ``draws`` against the truth.

    ``draws``: ``(n_draws, n_chains, dim)``.  For each statistic f (x_i, and
    (x_i - mu_i)(x_j - mu_j) for i <= j) the Monte Carlo standard error is
    sd(f) / sqrt(ESS(f)), with ArviZ's ESS over all chains.
    Returns a dict name -> z.
    """
    chains = np.moveaxis(np.asarray(draws), 0, 1)  # (chain, draw, dim)
    mean, cov = np.asarray(mean), np.asarray(cov)
    centred = chains - mean
    stats = {f"mean[{i}]": (chains[..., i], mean[i]) for i in range(len(mean))}
    for i in range(len(mean)):
        for j in range(i, len(mean)):
            stats[f"cov[{i},{j}]"] = (centred[..., i] * centred[..., j], cov[i, j])
    z = {}
    for name, (f, truth) in stats.items():
        ess = float(az.ess(f, method="mean"))
        z[name] = (f.mean() - truth) / (f.std() / np.sqrt(ess))
    return z
