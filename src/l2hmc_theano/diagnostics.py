"""Effective sample size as the paper measures it (Levy et al. 2018, Sec. 5).

With the target's known mean and variance, the normalised autocorrelation

    rho(tau) = mean over chains and dimensions of  mean_t (x_t - mu)(x_{t+tau} - mu) / sigma^2

is summed until it first falls below 0.05:  ESS per MH step = 1 / (1 + 2 sum_{tau>=1} rho(tau)).
"""
import numpy as np

__all__ = ["autocorrelation", "ess_per_step"]


def autocorrelation(draws, mean, var):
    """rho(tau) for tau = 0..n-1 from ``draws`` ``(n_draws, n_chains, dim)``, known ``mean``/``var`` ``(dim,)``."""
    draws = np.asarray(draws, dtype=float)
    n = draws.shape[0]
    y = (draws - np.asarray(mean)) / np.sqrt(np.asarray(var))
    spectrum = np.fft.rfft(y, n=2 * n, axis=0)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), n=2 * n, axis=0)[:n]
    acov /= (n - np.arange(n))[:, None, None]
    return acov.mean(axis=(1, 2))


def ess_per_step(draws, mean, var, threshold=0.05):
    """The paper's ESS per MH step (a fraction: 1.0 means independent draws)."""
    rho = autocorrelation(draws, mean, var)
    below = np.nonzero(rho[1:] < threshold)[0]
    cut = below[0] + 1 if below.size else len(rho)
    return 1.0 / (1.0 + 2.0 * rho[1:cut].sum())
