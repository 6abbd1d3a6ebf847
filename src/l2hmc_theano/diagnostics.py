"""Effective sample size as the paper measures it (Levy et al. 2018, Sec. 5).

With the target's known mean and variance, the normalised autocorrelation

    rho(tau) = mean over chains and dimensions of  mean_t (x_t - mu)(x_{t+tau} - mu) / sigma^2

is summed until it first falls below 0.05:  ESS per MH step = 1 / (1 + 2 sum_{tau>=1} rho(tau)).

Averaged over dimensions, rho can be driven below 0.05 at lag 1 by antithetic
moves in some coordinates while others hardly move (the ESS then reads 1);
``per_dim=True`` applies the estimator to each coordinate on its own.
"""
import numpy as np

__all__ = ["autocorrelation", "ess_per_step", "acceptance_by_region", "idata_transitions",
           "idata_acceptance_by_region"]


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
        hmc = type(sampler)(sampler.energy_target, n_steps=sampler.n_steps, step_size=sampler.step_size,
                           zero_network=True, preconditioner=sampler.preconditioner)
        chains = history["chains"]
        learned, plain = expected_squared_jump(sampler, chains), expected_squared_jump(hmc, chains)
        if learned <= plain:
            out.append(f"its ESJD ({learned:.3g}) is not above HMC's with the same step size and T "
                       f"({plain:.3g})")
    return out


def acceptance_by_region(region, accept, diverging=None, n_regions=5, edges=None):
    """Mean acceptance (and share of divergences) of transitions grouped by where they start.

    ``region`` ``(n,)``: a scalar per transition at its starting point (e.g. a funnel's
    log-scale coordinate, or the log density); ``accept`` ``(n,)`` the transitions'
    acceptance probabilities; ``diverging`` ``(n,)`` booleans or None.  The groups are
    split at ``edges`` (increasing; e.g. the exact quintiles of a known marginal, or one set
    shared by two samplers), by default at the ``n_regions`` quantiles of ``region`` (equal
    counts).  Returns a list of dicts ``{"low", "high", "n", "share", "accept",
    "diverging"}``, lowest region first (``share``: n over all finite regions).  A sampler
    that only works where the bulk is shows it here, as acceptance falling towards one end
    and, against known edges, as too small a share of the draws there: a mean over all
    draws hides both.
    """
    region = np.asarray(region, dtype=float).ravel()
    accept = np.asarray(accept, dtype=float).ravel()
    if region.shape != accept.shape:
        raise ValueError(f"region and accept must have the same length, got {region.shape} and {accept.shape}.")
    diverging = np.zeros(region.shape, bool) if diverging is None else np.asarray(diverging, bool).ravel()
    keep = np.isfinite(region)
    region, accept, diverging = region[keep], accept[keep], diverging[keep]
    if region.size == 0:
        return []
    if edges is None:
        bounds = np.quantile(region, np.linspace(0.0, 1.0, int(n_regions) + 1))
    else:
        inner = np.asarray(edges, dtype=float).ravel()
        if inner.size == 0 or np.any(np.diff(inner) <= 0):
            raise ValueError(f"edges must be increasing, got {edges!r}.")
        bounds = np.concatenate([[-np.inf], inner, [np.inf]])
    index = np.clip(np.searchsorted(bounds, region, side="right") - 1, 0, len(bounds) - 2)
    rows = []
    for k in range(len(bounds) - 1):
        inside = index == k
        if inside.any() or edges is not None:
            n = int(inside.sum())
            rows.append({"low": float(bounds[k]), "high": float(bounds[k + 1]), "n": n, "share": n / region.size,
                         "accept": float(accept[inside].mean()) if n else np.nan,
                         "diverging": float(diverging[inside].mean()) if n else np.nan})
    return rows


def idata_transitions(idata, var):
    """From a ``pm.sample`` run: for each draw after a chain's first, the scalar ``var`` at the
    draw its transition started from (the previous one), its acceptance probability (stat
    ``accept`` of the L2HMC step method, ``mean_tree_accept`` of NUTS, which ArviZ renames
    ``acceptance_rate``) and whether it diverged; three ``(chains, draws - 1)`` arrays."""
    stats = idata.sample_stats
    names = [name for name in ("accept", "acceptance_rate", "mean_tree_accept") if name in stats]
    if not names:
        raise ValueError("the InferenceData's sample_stats has no acceptance statistic: 'accept' (L2HMC) or "
                         "'acceptance_rate' / 'mean_tree_accept' (NUTS).")
    values = idata.posterior[var].values
    if values.ndim != 2:
        raise ValueError(f"{var!r} must be a scalar variable (draws per chain), got shape {values.shape[2:]} per draw.")
    accept = stats[names[0]].values[:, 1:]
    diverging = stats["diverging"].values[:, 1:] if "diverging" in stats else np.zeros(accept.shape, bool)
    return values[:, :-1], accept, diverging


def idata_acceptance_by_region(idata, var, n_regions=5, edges=None):
    """:func:`acceptance_by_region` of a ``pm.sample`` run, each transition grouped by the
    scalar variable ``var`` at the draw it started from (:func:`idata_transitions`)."""
    return acceptance_by_region(*idata_transitions(idata, var), n_regions=n_regions, edges=edges)


__all__ += ["nested_rhat", "idata_nested_rhat"]


def _superchain_groups(superchains, n_chains):
    """Chain indices ``(K, M)``: row k lists the chains of superchain k."""
    if np.ndim(superchains) == 0:
        k = int(superchains)
        if k != superchains or k < 2:
            raise ValueError(f"superchains must be an integer K >= 2 (the number of superchains), got "
                             f"{superchains!r}; run at least 2 superchains.")
        if n_chains % k:
            raise ValueError(f"superchains={k} does not divide the {n_chains} chains; pass a K that divides "
                             f"the number of chains, or a label array of length {n_chains}.")
        return np.arange(n_chains).reshape(k, n_chains // k)
    labels = np.asarray(superchains)
    if labels.ndim != 1 or len(labels) != n_chains:
        raise ValueError(f"superchains as labels must be a 1-d array with one label per chain ({n_chains}), "
                         f"got shape {labels.shape}.")
    values, counts = np.unique(labels, return_counts=True)
    if len(values) < 2:
        raise ValueError(f"superchains labels name {len(values)} superchain; nested R-hat needs at least 2 "
                         "superchains (give the chains at least 2 distinct labels).")
    if np.any(counts != counts[0]):
        raise ValueError(f"every superchain must hold the same number of chains, got sizes "
                         f"{dict(zip(values.tolist(), counts.tolist()))}; relabel the chains into equal groups.")
    return np.stack([np.flatnonzero(labels == v) for v in values])


def nested_rhat(draws, superchains):
    """Nested R-hat (Margossian, Hoffman, Sountsov, Riou-Durand, Vehtari & Gelman, arXiv 2110.13017;
    Bayesian Analysis 2024, Definition 2.2, eqs. 4-8).

    ``draws``: ``(chains, draws)`` for one scalar, or ``(chains, draws, *shape)``, each element on its
    own.  ``superchains``: an int K (chains split into K consecutive groups of equal size; chains
    must be divisible by K) or a label array of length ``chains`` (every superchain the same size).
    Returns a float, or an array of shape ``shape``.

    With K superchains of M chains of N draws f_nmk, chain means f_.mk, superchain means f_..k
    and overall mean f_... (means of the means, all groups being equal in size):

        B  = 1/(K-1) sum_k (f_..k - f_...)^2                      between superchains
        W  = 1/K sum_k (Bt_k + Wt_k)                              within superchains
        Bt_k = 1/(M-1) sum_m (f_.mk - f_..k)^2   (0 if M = 1)     between chains of superchain k
        Wt_k = 1/M sum_m 1/(N-1) sum_n (f_nmk - f_.mk)^2   (0 if N = 1)
        nR = sqrt(1 + B / W)

    These are the paper's denominators (unbiased sample variances throughout).  With M = 1 this
    is sqrt(1 + B/W), not the classic sqrt((N-1)/N + B/W) R-hat: nR is bounded below by 1 (the
    paper's footnote on the case M = 1).  The paper declares the chains converged (after warmup)
    when nR < 1 + delta and works with delta = 0.01, the R-hat < 1.01 of Vehtari et al. (2021).
    For iid draws E[B] / E[W] = (1/(MN)) / (1 + 1/N), so nR - 1 is about 1/(2MN) (1/(2 M N_eff)
    for correlated draws): 1.01 asks for some 50 effective draws per superchain.
    Constant draws give nan (0/0).
    """
    draws = np.asarray(draws, dtype=float)
    if draws.ndim < 2:
        raise ValueError(f"draws must have shape (chains, draws, *shape), got shape {draws.shape}; "
                         "add a chain axis (e.g. draws[None]) for a single chain.")
    x = draws[_superchain_groups(superchains, draws.shape[0])]  # (K, M, N, *shape)
    _, m, n = x.shape[:3]
    if m == 1 and n == 1:
        raise ValueError("with one chain per superchain and one draw per chain the within-superchain "
                         "variance is 0; run more chains per superchain or more draws per chain.")
    chain_mean = x.mean(axis=2)
    between = chain_mean.mean(axis=1).var(axis=0, ddof=1)
    between_chains = chain_mean.var(axis=1, ddof=1) if m > 1 else 0.0
    within_chains = x.var(axis=2, ddof=1).mean(axis=1) if n > 1 else 0.0
    within = np.mean(between_chains + within_chains, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.sqrt(1.0 + between / within)
    return float(out) if out.ndim == 0 else out


def idata_nested_rhat(idata, superchains, var_names=None):
    """:func:`nested_rhat` of each variable of ``idata.posterior`` (dims ``(chain, draw, ...)``):
    ``{name: float or array of the variable's shape}``; ``var_names`` a name or a list of names."""
    posterior = idata.posterior
    if var_names is None:
        var_names = list(posterior.data_vars)
    elif isinstance(var_names, str):
        var_names = [var_names]
    out = {}
    for name in var_names:
        values = posterior[name].transpose("chain", "draw", ...).values
        out[name] = nested_rhat(values, superchains)
    return out
