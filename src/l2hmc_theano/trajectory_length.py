"""The choice of T, the number of leapfrog steps per transition: HMC's ESS per gradient predicted
from trajectories of every length started at warm-up's chains, and measured on its final window.

For each coordinate z of the whitened, standardised chains, one MH step's expected squared jump
gives its lag-1 autocorrelation rho = 1 - E[A (z_t - z_0)^2] / (2 E[z_0^2]); as an AR(1)
sequence its bulk ESS per draw is (1 - rho) / (1 + rho), its tail ESS per draw that of the
indicator of a 5 % tail, and the same jump of z^2 - 1 gives the spread's.  T maximises the
predicted ESS per second over the draw's measured cost (:func:`.budget.choose_n_steps`).
"""
import numpy as np

from ._theano import floatX
from .budget import MAX_THIN, choose_n_steps, draw_cost
from .hmc import trajectory
from .step_size import step_size_cap

__all__ = ["ess_per_gradient_profile", "chain_ess_per_draw", "measured_ess", "trajectory_lengths",
           "gradient_count", "choose_trajectory_length", "SPREAD_PERCENTILE", "WATCHED_LENGTHS", "CAP_ROUNDS"]


def _ess_per_draw(rho):
    """Bulk ESS per draw of an AR(1) sequence with lag-1 autocorrelation ``rho``: (1 - rho) / (1 + rho)."""
    rho = np.clip(rho, -0.99, 0.999)
    return (1.0 - rho) / (1.0 + rho)


#: The quantile ArviZ's tail ESS takes (its indicators of the 5 % and 95 % quantiles).
TAIL_PROBABILITY = 0.05
_TAIL_TABLE = None


def _tail_ess_per_draw(rho):
    """Tail ESS per draw of a Gaussian AR(1) sequence with lag-1 autocorrelation ``rho`` (any
    shape): the ESS of the indicator of z above its 95 % quantile (or, the same, below its 5 %),
    1 / (1 + 2 sum_k g(rho^k)), where g(r) is the indicator's correlation between two points whose
    correlation is r (the bivariate normal orthant probability, by Owen's T function).  An
    antithetic sequence (rho < 0) has negative odd lags but positive even ones (rho^2k): where
    rho is near -1 its tail ESS is low although its bulk ESS is high.  Interpolated from a table."""
    global _TAIL_TABLE
    if _TAIL_TABLE is None:
        from scipy.special import ndtr, ndtri, owens_t

        h, p = -ndtri(TAIL_PROBABILITY), TAIL_PROBABILITY
        slope = np.exp(-h * h) / (2.0 * np.pi) / (p * (1.0 - p))  # g(r) ~ slope r for small r

        def g(r):
            return (ndtr(-h) - 2.0 * owens_t(h, np.sqrt((1.0 - r) / (1.0 + r))) - p * p) / (p * (1.0 - p))

        grid = np.concatenate([np.linspace(-0.99, 0.9, 400), 1.0 - np.logspace(-1, -3, 100)[1:]])
        ess = np.empty_like(grid)
        for i, r1 in enumerate(grid):  # r1: a lag-1 autocorrelation
            lags = np.arange(1, int(np.log(1e-3) / np.log(abs(r1))) + 2) if r1 != 0 else np.arange(1, 2)
            tail = slope * r1 ** (lags[-1] + 1) / (1.0 - r1)  # the lags beyond, where g is linear
            ess[i] = 1.0 / (1.0 + 2.0 * (np.sum(g(r1 ** lags)) + tail))
        _TAIL_TABLE = grid, ess
    grid, ess = _TAIL_TABLE
    return np.interp(np.clip(rho, grid[0], grid[-1]), grid, ess)


#: The percentile over coordinates of the spread's ESS per draw that caps the profile
#: (:func:`ess_per_gradient_profile`).
SPREAD_PERCENTILE = 25


def ess_per_gradient_profile(sampler, x, step_size, rng, max_steps, repeats, min_steps=1):
    """Predicted ESS per gradient of HMC with t = 1..``max_steps`` leapfrog steps, ``(max_steps,)``.

    From HMC proposals (:func:`.hmc.trajectory`, jittered step sizes) of t steps, for t on
    :func:`trajectory_lengths` from ``min_steps``, started at the chains ``x`` ``(B, dim)`` with
    ``repeats`` fresh momenta each (each proposal is the t-th point of one trajectory per chain and
    repeat, so the profile costs ``repeats`` trajectories of the longest length), in whitened and
    standardised coordinates z: the lag-1 autocorrelation of one MH step from its expected squared
    jump, rho = 1 - E[A (z_t - z_0)^2] / (2 E[z_0^2]) (A the acceptance probability; at stationarity
    the same as E[z_0 z_1] / E[z_0^2], and far less noisy over a few chains: it never exceeds 1), per
    coordinate.  As an AR(1) sequence each coordinate has a bulk ESS per draw (1 - rho) / (1 + rho)
    and a tail ESS per draw (:func:`_tail_ess_per_draw`): the two ESS ArviZ reports; the smaller of
    the two at the slowest coordinate is what a minimum ESS over parameters sees.  The same jump of
    the squares z^2 - 1 gives each coordinate's ESS per draw of its spread (what ArviZ's folded
    R-hat watches); their :data:`SPREAD_PERCENTILE`-th percentile over coordinates caps the figure.
    Both guard against trajectories that swing to the opposite side, antithetic for the mean but
    not for the quantiles or the spread (on radon, T = 5 tripled the min bulk ESS of T = 3 but cut
    the spread's ESS 2.5-fold, and R-hat rose to 1.013-1.025).  A low percentile, not the minimum,
    because one step's jump of a square is a noisy and, where the slowest direction is not a
    coordinate, misleading guide to any single coordinate (the minimum ranked T = 2 above T = 3 on
    a logistic regression, which measured better on every ESS; the 10th percentile halved T on
    posteriordb's gp_pois_regr, where R-hat rose to 1.03); not the median, which misses a slow
    spread in a quarter of the coordinates (it chose T = 4 over T = 3 on radon and over T = 2 on a
    regression of earnings, where the measured min of bulk and folded ESS per gradient was 1.5-3x
    lower and R-hat reached 1.016).  The figure over t gradients is the profile; between the
    lengths tried it is interpolated (and before the first it is the first's).

    Returns ``(profile, bulk, diverged, accept)``: the profile ``(max_steps,)``, the slowest
    coordinate's bulk ESS per draw at each t ``(max_steps,)`` (what :func:`chain_ess_per_draw`
    measures on the chains), the trajectories that turned non-finite: ``(n, 2)``, the first length
    tried at which each did and its step size, and the mean acceptance probability at each t
    ``(max_steps,)``.
    """
    energy = sampler.energy_in_y()
    lengths = trajectory_lengths(min_steps, max_steps)
    at = {t: j for j, t in enumerate(lengths)}
    batch = len(x)
    potential, grad = sampler.start_state(x)
    y0 = x if sampler.preconditioner is None else sampler.preconditioner.to_y_numpy(x).astype(floatX)
    sd = y0.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    centre = y0.mean(axis=0)
    z0 = (y0 - centre) / sd
    jumps = np.zeros((2, len(lengths), sampler.dim))  # of z and of z^2 - 1
    norms = np.zeros((2, sampler.dim))
    acceptance = np.zeros(len(lengths))
    diverged = []
    for _ in range(repeats):
        v = rng.standard_normal((batch, sampler.dim)).astype(floatX)
        eps = step_size * sampler.draw_step_scale(rng, batch)
        h0 = potential + 0.5 * np.sum(np.square(v), axis=1)
        lost = np.zeros(batch, dtype=bool)
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging trajectory's overflow: A = 0
            for t, (y_t, w_t, potential_t, _, failed) in enumerate(trajectory(energy, y0, v, grad, eps, lengths[-1]),
                                                                     1):
                if t not in at:
                    continue
                dH = np.where(failed, np.inf, potential_t + 0.5 * np.sum(np.square(w_t), axis=1) - h0)
                accept = np.where(np.isfinite(dH), np.exp(np.minimum(0.0, -dH)), 0.0)[:, None]
                new = ~np.isfinite(dH) & ~lost
                lost |= new
                diverged.extend((t, e) for e in eps[new])
                acceptance[at[t]] += np.mean(accept) / repeats
                zt = np.where(accept > 0, (y_t - centre) / sd, 0.0)
                for k, (a, b) in enumerate(((z0, zt), (z0 ** 2 - 1.0, zt ** 2 - 1.0))):
                    jumps[k, at[t]] += np.mean(accept * (b - a) ** 2, axis=0)
        for k, a in enumerate((z0, z0 ** 2 - 1.0)):
            norms[k] += np.mean(a ** 2, axis=0)
    rho = 1.0 - jumps / (2.0 * np.where(norms > 0, norms, 1.0)[:, None, :])
    bulk = np.min(_ess_per_draw(rho[0]), axis=1)
    slowest = np.minimum(bulk, np.min(_tail_ess_per_draw(rho[0]), axis=1))
    spread = np.percentile(_ess_per_draw(rho[1]), SPREAD_PERCENTILE, axis=1)
    at_lengths = np.minimum(slowest, spread) / np.asarray(lengths)
    steps = np.arange(1, max_steps + 1)
    return (np.interp(steps, lengths, at_lengths), np.interp(steps, lengths, bulk),
            np.array(diverged, dtype=float).reshape(-1, 2), np.interp(steps, lengths, acceptance))


def chain_ess_per_draw(z, thin=1):
    """Bulk ESS per draw of each coordinate of many chains' draws ``z`` ``(draws, chains, dim)``,
    kept every ``thin``-th: 1 / tau with tau = -1 + 2 sum_m (rho_2m + rho_2m+1) over Geyer's initial
    positive pairs of the autocorrelations rho_m at lags m thin, each pooled over the chains and
    over every draw (about the pooled mean and variance, as in a multi-chain ESS), up to lag
    draws / 2.  ``(dim,)``."""
    z = np.asarray(z, dtype=float)
    n = len(z)
    centred = z - z.mean(axis=(0, 1))
    var = np.mean(np.square(centred), axis=(0, 1))
    var = np.where(var > 0, var, 1.0)
    rho = np.stack([np.mean(centred[k:] * centred[:n - k], axis=(0, 1)) / var for k in range(0, n // 2 + 1, thin)])
    if len(rho) < 2:
        raise ValueError(f"{n} draws are too few for the ESS of every {thin}-th.")
    pairs = rho[:len(rho) // 2 * 2].reshape(-1, 2, rho.shape[1]).sum(axis=1)  # (m, dim): rho_2m + rho_2m+1
    positive = np.cumprod(pairs > 0, axis=0).astype(bool)  # up to the first pair that is not positive
    tau = -1.0 + 2.0 * np.sum(np.where(positive, pairs, 0.0), axis=0)
    return 1.0 / np.maximum(tau, 1e-3)


#: Profile trajectories up to this many times T count when they diverge: a step size on the edge of
#: the leapfrog's stable range at some states blows up sooner or later, and rarely within T steps of
#: the few hundred trajectories a profile has.
WATCHED_LENGTHS = 2
#: Profiles taken at most in :func:`choose_trajectory_length` (each at the cap the one before set).
CAP_ROUNDS = 3


#: The fewest final-window draws whose ESS is measured.
MIN_MEASURED_DRAWS = 20


def measured_ess(final, n_steps, bulk):
    """``{"measured_ess_per_draw", "ess_calibration", "measured_ess_per_draw_by_thin"}`` (None, 1
    and None without a profile ``bulk`` or enough draws): the final window's chains ``final`` (draws
    of ``(chains, dim)``, at the chosen ``n_steps`` leapfrog steps) give a min bulk ESS per draw m
    (:func:`chain_ess_per_draw`); the profile predicted ``bulk[n_steps - 1]`` for it from one step's
    jump, which misses how slowly a funnel's or a curved posterior's scale wanders over many draws.
    Their ratio, each taken up to 1 (so at most 1), scales predictions of a run's ESS
    (:func:`.budget.predicted_ess_per_draw`).
    The same chains kept every k-th, k = 1..:data:`.budget.MAX_THIN`, give the min ESS per draw of
    draws of k transitions (:func:`.budget.choose_thin`)."""
    if bulk is None or len(final) < MIN_MEASURED_DRAWS or n_steps > len(bulk):
        return {"measured_ess_per_draw": None, "ess_calibration": 1.0, "measured_ess_per_draw_by_thin": None}
    with np.errstate(invalid="ignore", over="ignore"):
        z = np.stack(final)
        z = z[:, np.all(np.isfinite(z), axis=(0, 2))]
        by_thin = [float(np.min(chain_ess_per_draw(z, k))) for k in range(1, min(MAX_THIN, len(z) // 2) + 1)]
    measured = by_thin[0]
    predicted = float(bulk[n_steps - 1])
    # Above 1 a draw is antithetic, where the AR(1) figure and Geyer's estimate part ways (2.3
    # against 1.45 on a regression at T = 2): compared up to 1, the ratio sees slow chains only.
    ratio = min(measured, 1.0) / min(predicted, 1.0) if np.isfinite(measured) and predicted > 0 else 1.0
    return {"measured_ess_per_draw": measured, "ess_calibration": float(np.clip(ratio, 0.0, 1.0)),
            "measured_ess_per_draw_by_thin": by_thin}


def trajectory_lengths(min_steps, max_steps):
    """The numbers of leapfrog steps :func:`ess_per_gradient_profile` tries: every one up to 6, then
    about 25 % apart, up to ``max_steps``."""
    lengths, t = [], max(1, min_steps)
    while t <= max_steps:
        lengths.append(t)
        t = t + 1 if t < 6 else max(t + 1, int(round(t * 1.25)))
    if lengths[-1] != max_steps and max_steps >= max(1, min_steps):
        lengths.append(max_steps)
    return lengths


def gradient_count(lengths, batch, repeats):
    """Energy-and-gradient evaluations of :func:`ess_per_gradient_profile`: one trajectory of the
    longest length per chain and repeat (the shorter ones are its first points)."""
    return repeats * batch * max(lengths)


def choose_trajectory_length(sampler, kernel, x, potential, grad, step_size, rng, settings, batch_size):
    """Set ``sampler``'s T by the ESS-per-gradient profile of HMC at ``step_size`` from the chains
    ``x`` (their energies and gradients ``potential``, ``grad``) and a draw's measured cost
    (:func:`.budget.choose_n_steps`).  Where some of the profile's trajectories diverged within
    :data:`WATCHED_LENGTHS` x the chosen T steps, the step size is capped (:func:`step_size_cap`)
    and the profile and T are taken again at the cap (a smaller step size may choose a longer T,
    whose trajectories are checked in turn; at most :data:`CAP_ROUNDS` profiles).  Returns ``(profile, bulk, cost,
    gradients, cap)`` (:func:`ess_per_gradient_profile`, :func:`.budget.draw_cost`, the gradients
    it took, the cap or inf) and the profile's mean acceptance at the chosen T."""
    lo = min(settings.min_n_steps, settings.max_n_steps)
    # Each coordinate's jump is a mean over trajectories: with 16 chains x 4 momenta, the min over 27
    # coordinates of such noisy means ranked T = 3 at a fifth of its ESS on a regression (diamonds).
    repeats = max(settings.n_steps_repeats, -(-settings.n_steps_trajectories // batch_size))
    cost = None
    one = np.flatnonzero(np.isfinite(potential))[:1]
    spent, cap, eps = 0, np.inf, step_size
    for round_ in range(CAP_ROUNDS):
        profile, bulk, diverged, acceptance = ess_per_gradient_profile(sampler, x, eps, rng, settings.max_n_steps,
                                                                       repeats, min_steps=lo)
        spent += gradient_count(trajectory_lengths(lo, settings.max_n_steps), batch_size, repeats)
        if round_ == 0 and len(one):  # a draw's cost, timed after the first profile as before the cap
            cost = draw_cost(kernel, x[one], potential[one], grad[one], step_size)
        sampler.set_n_steps(choose_n_steps(profile, lo, cost))
        cap = min(cap, step_size_cap(diverged[diverged[:, 0] <= WATCHED_LENGTHS * sampler.n_steps, 1],
                                     sampler.step_jitter))
        if cap >= eps:
            break
        eps = cap
    return profile, bulk, cost, spent, cap, float(acceptance[sampler.n_steps - 1])
