"""Effective sample size as the paper measures it (Levy et al. 2018, Sec. 5).

With the target's known mean and variance, the normalised autocorrelation

    rho(tau) = mean over chains and dimensions of  mean_t (x_t - mu)(x_{t+tau} - mu) / sigma^2

is summed until it first falls below 0.05:  ESS per MH step = 1 / (1 + 2 sum_{tau>=1} rho(tau)).

Averaged over dimensions, rho can be driven below 0.05 at lag 1 by antithetic
moves in some coordinates while others hardly move (the ESS then reads 1);
``per_dim=True`` applies the estimator to each coordinate on its own.
"""
import numpy as np

__all__ = ["autocorrelation", "ess_per_step"]


def autocorrelation(draws, mean, var, per_dim=False):
    """rho(tau) for tau = 0..n-1 from ``draws`` ``(n_draws, n_chains, dim)``, known ``mean``/``var`` ``(dim,)``.

    Shape ``(n_draws,)``, averaged over chains and dimensions; ``per_dim``: ``(n_draws, dim)``.
    """
    draws = np.asarray(draws, dtype=float)
    n = draws.shape[0]
    y = (draws - np.asarray(mean)) / np.sqrt(np.asarray(var))
    spectrum = np.fft.rfft(y, n=2 * n, axis=0)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), n=2 * n, axis=0)[:n]
    acov /= (n - np.arange(n))[:, None, None]
    return acov.mean(axis=1) if per_dim else acov.mean(axis=(1, 2))


def _truncated_ess(rho, threshold):
    below = np.nonzero(rho[1:] < threshold)[0]
    cut = below[0] + 1 if below.size else len(rho)
    return 1.0 / (1.0 + 2.0 * rho[1:cut].sum())


def ess_per_step(draws, mean, var, threshold=0.05, per_dim=False):
    """The paper's ESS per MH step (a fraction: 1.0 means independent draws).

    ``per_dim``: the estimator on each coordinate's own autocorrelation, ``(dim,)``.
    """
    rho = autocorrelation(draws, mean, var, per_dim=per_dim)
    if per_dim:
        return np.array([_truncated_ess(rho[:, j], threshold) for j in range(rho.shape[1])])
    return _truncated_ess(rho, threshold)


def expected_squared_jump(sampler, chains, n_steps=5, seed=0):
    """Mean squared jump |x_next - x|^2 per MH step from ``chains`` ``(batch, dim)``.

    Its expectation is the ESJD E[A |x' - x|^2] that training maximises.
    """
    draws, _ = sampler.sample(n_steps, n_chains=len(chains), x0=chains, seed=seed)
    previous = np.concatenate([np.asarray(chains)[None], draws[:-1]])
    return float(np.mean(np.sum((draws - previous) ** 2, axis=-1)))


def training_warnings(sampler, history, baseline=True):
    """Messages about a poorly trained sampler (empty when all is well).

    Checks, over the last 10% of training: mean acceptance < 0.1, more than 1%
    diverging proposals, more than 10% of the Adam steps skipped (non-finite gradients),
    a loss that rose from the first 10%, and (``baseline``) an ESJD on the final chains
    that is not above HMC's (zero networks, same eps, T and preconditioner).
    """
    from .sampler import L2HMCSampler

    n = len(history["loss"])
    if n == 0:
        return []
    tail = slice(n - max(1, n // 10), n)
    head = slice(0, max(1, n // 10))
    out = []
    accept = float(np.mean(history["accept"][tail]))
    if accept < 0.1:
        out.append(f"mean acceptance at the end of training is {accept:.3f} (< 0.1)")
    diverging = float(np.mean(history["diverging"][tail])) / max(1, len(history["chains"]))
    if diverging > 0.01:
        out.append(f"{100 * diverging:.1f}% of proposals diverged at the end of training")
    if "applied" in history:
        skipped = float(np.mean(history["applied"][tail] == 0))
        if skipped > 0.1:
            out.append(f"{100 * skipped:.0f}% of the training steps in the last 10% of iterations were "
                       "skipped (non-finite gradients)")
    if not np.all(np.isfinite(history["loss"])):
        out.append("the training loss was not finite")
    elif n >= 20 and np.mean(history["loss"][tail]) > np.mean(history["loss"][head]):
        out.append("the training loss rose during training (it should fall)")
    if baseline and out == [] and not getattr(sampler, "zero_network", False):
        hmc = L2HMCSampler(sampler.energy_target, n_steps=sampler.n_steps, step_size=sampler.step_size,
                           zero_network=True, preconditioner=sampler.preconditioner)
        chains = history["chains"]
        learned, plain = expected_squared_jump(sampler, chains), expected_squared_jump(hmc, chains)
        if learned <= plain:
            out.append(f"its ESJD ({learned:.3g}) is not above HMC's with the same step size and T "
                       f"({plain:.3g})")
    return out
