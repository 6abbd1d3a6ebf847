"""Warm-up before any network is trained: step size and preconditioner, as NUTS's tuning does.

The batch of chains starts around the model's initial point (jittered, as
``pm.sample``'s ``jitter+adapt_diag``) and runs HMC: the sampler's own generalized
leapfrog with zero auxiliary functions, in the whitened coordinates y of the
sampler's preconditioner (:mod:`.preconditioner`).  Meanwhile

* the step size adapts by dual averaging (Hoffman & Gelman 2014, Sec. 3.2) to a
  target mean acceptance probability of the batch;
* the preconditioner is fitted to the positions and gradients of the chains: first to
  the jittered starting cloud, then at the end of each slow window (25, 50, 100, ...
  iterations, Stan's doubling windows) to the second half of that window's draws (with
  ``preconditioner="auto"`` the starting cloud gets a diagonal, each window's draws the low rank
  correction too where it has directions beyond the cut-off: :func:`.preconditioner.fitted`);
  the dual averaging restarts after every change;
* a model's non-centred groups (:mod:`.reparam`) get their weights fitted to the
  starting cloud and again at the end of each slow window, before the preconditioner (the
  chains keep their model-space positions; their sampling coordinates are mapped anew);
* warm-up stops early once the scales change by less than ``settle`` (relative)
  between two windows, after a last window that adapts the step size alone;
* for a sampler with ``n_steps="auto"``, the number of leapfrog steps T is the one with the
  largest predicted ESS per second over t = ``min_n_steps``..``max_n_steps``: the ESS per
  gradient from HMC trajectories started at the chains (:func:`ess_per_gradient_profile`: the
  lag-1 autocorrelations of the coordinates and their squares, as AR(1) processes, for bulk,
  tail and spread ESS) over the measured cost of a draw of t steps (:func:`.budget.draw_cost`,
  :func:`.budget.choose_n_steps`).  It is chosen before the last window, which then runs at T
  and measures its chains' ESS, also kept every k-th (:func:`_measured_ess`: what the run's
  predictions and ``thin="auto"`` follow); without a preconditioner, after it;
* the step size is capped where transitions like the run's diverge: dual averaging tunes the
  mean acceptance, but where the curvature grows in a tail of the posterior (a random walk's
  increments at a large step scale, a Gaussian process at a large amplitude) the largest
  jittered steps leave the leapfrog's stable range there, and a few of the run's proposals
  overflow.  Any of the profile's trajectories that turns non-finite within
  :data:`WATCHED_LENGTHS` x T steps (the run's transitions, or twice as long: a rare blow-up
  shows sooner there), or any of the final window's proposals after its first
  :data:`DIVERGENCE_WARMIN` iterations (the run's own), caps the step size so that the largest
  jittered step is :data:`STABILITY_MARGIN` x the smallest that diverged (:func:`step_size_cap`);
  the profile and T are then taken again at the cap.  Trajectories of many times T that diverge
  are not counted: on most posteriors some of 20 steps do at the top of the jitter, where
  transitions of 2-4 steps never do.

Chains that accepted nothing during a window, and chains whose energy at a slow window's end is
still far above the batch's (:func:`lost_chains`: a jittered start the window did not bring in;
their draws are left out of the fit), are replaced by copies of others (warm-up draws are not
samples).  Everything random comes from one
``numpy.random.Generator``; the only compile is the energy and gradient's (HMC's step is
NumPy around it, :mod:`.hmc`).
"""
import dataclasses
import time
import warnings

import numpy as np

from ._theano import floatX
from .budget import MAX_THIN, choose_n_steps, draw_cost
from .hmc import trajectory
from .preconditioner import fitted

__all__ = ["WarmupSettings", "DualAveraging", "WarmupError", "initial_chains", "warmup"]


class WarmupError(RuntimeError):
    """Warm-up cannot adapt: no chain ever accepts a proposal."""


@dataclasses.dataclass(frozen=True)
class WarmupSettings:
    """What warm-up adapts and for how long (iterations are MH steps of the whole batch)."""

    target_accept: float = 0.8
    max_iterations: int = 600
    first_window: int = 15      # step size only, from the preconditioner of the starting cloud
    slow_window: int = 25       # the first window that ends in a preconditioner update; doubles
    final_window: int = 50      # step size only, after the last update
    settle: float = 0.15        # largest |log change| of a scale that counts as settled
    jitter: float = 1.0         # starts: initial point + Uniform(-jitter, jitter) per coordinate
    min_n_steps: int = 2        # the shortest: with T = 1 the networks shape a single Langevin-like step
    max_n_steps: int = 20       # the longest trajectory considered for T
    n_steps_repeats: int = 4    # fresh momenta per chain for the ESS-per-gradient profile (at least)
    n_steps_trajectories: int = 800  # ... and at least this many trajectories in all (few chains: more each)

    def __post_init__(self):
        if not 0.0 < self.target_accept < 1.0:
            raise ValueError(f"target_accept must be in (0, 1), got {self.target_accept!r}.")
        for name in ("max_iterations", "first_window", "slow_window", "final_window", "min_n_steps", "max_n_steps",
                     "n_steps_repeats", "n_steps_trajectories"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"warm-up {name} must be an integer >= 1, got {value!r}.")
        if self.max_iterations < self.first_window + self.final_window:
            raise ValueError(f"max_iterations ({self.max_iterations}) must be at least first_window + "
                             f"final_window ({self.first_window + self.final_window}).")

    def windows(self, preconditioned):
        """[(length, updates_preconditioner)] up to ``max_iterations`` in all."""
        out = [(self.first_window, False)]
        left = self.max_iterations - self.first_window - self.final_window
        length = self.slow_window
        while preconditioned and left >= length:
            out.append((length, True))
            left -= length
            length *= 2
        if preconditioned and left >= self.slow_window:  # the rest, as one last slow window
            out.append((left, True))
        out.append((self.final_window, False))
        return out


class DualAveraging:
    """Nesterov dual averaging of log eps towards a target acceptance (Hoffman & Gelman 2014,
    Alg. 5, with their gamma, t0, kappa).  The shrinkage target is mu = log(reach * eps0):
    their reach of 10 for a first guess; a restart from an adapted step size uses 2."""

    def __init__(self, initial_step, target, gamma=0.05, t0=10.0, kappa=0.75, reach=10.0):
        self.target, self.gamma, self.t0, self.kappa = float(target), gamma, t0, kappa
        self.mu = np.log(reach * initial_step)
        self.log_step = np.log(initial_step)
        self.log_step_bar = np.log(initial_step)
        self.h_bar = 0.0
        self.t = 0

    def update(self, accept):
        """Take one acceptance statistic (a mean over the batch); returns the next step size."""
        self.t += 1
        w = 1.0 / (self.t + self.t0)
        self.h_bar = (1.0 - w) * self.h_bar + w * (self.target - float(accept))
        self.log_step = self.mu - np.sqrt(self.t) / self.gamma * self.h_bar
        eta = self.t ** -self.kappa
        self.log_step_bar = eta * self.log_step + (1.0 - eta) * self.log_step_bar
        return self.step_size

    @property
    def step_size(self):
        """The step size to use next."""
        return float(np.exp(self.log_step))

    @property
    def final_step_size(self):
        """The averaged step size, to keep when adaptation ends."""
        return float(np.exp(self.log_step_bar))


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


#: The largest jittered step is this fraction of the smallest step seen to diverge.
STABILITY_MARGIN = 0.9
#: Profile trajectories up to this many times T count when they diverge: a step size on the edge of
#: the leapfrog's stable range at some states blows up sooner or later, and rarely within T steps of
#: the few hundred trajectories a profile has.
WATCHED_LENGTHS = 2
#: Profiles taken at most in :func:`_choose_n_steps` (each at the cap the one before set).
CAP_ROUNDS = 3
#: The final window's first iterations, whose step sizes still swing (up to 2x), count no divergence.
DIVERGENCE_WARMIN = 10


def step_size_cap(diverged_steps, jitter):
    """The step size whose largest jittered step, x (1 + ``jitter``), is :data:`STABILITY_MARGIN`
    x the smallest of ``diverged_steps`` (the actual step sizes of proposals that diverged);
    inf if there are none."""
    if len(diverged_steps) == 0:
        return np.inf
    return STABILITY_MARGIN * float(np.min(diverged_steps)) / (1.0 + jitter)


#: The final window's target acceptance lies within this far below ``target_accept``, and at most
#: :data:`FINAL_ACCEPT_MAX` (:func:`final_accept_target`).
FINAL_ACCEPT_SLACK = 0.15
FINAL_ACCEPT_MAX = 0.95


def final_accept_target(profile_accept, target_accept):
    """The mean acceptance the final window tunes the step size to, once T is chosen: the profile's at
    that T and step size, within [``target_accept`` - :data:`FINAL_ACCEPT_SLACK`,
    max(``target_accept``, :data:`FINAL_ACCEPT_MAX`)].  T was chosen for that step size: tuning the step
    size anew to ``target_accept`` at T would change the trajectory's length it was chosen for (on a
    50-d Gaussian T = 3 accepts 0.75 at the step size the profile ran; tuned to 0.8, the step size fell
    by 15% and the measured ESS per gradient by 25%)."""
    low = target_accept - FINAL_ACCEPT_SLACK
    return float(np.clip(profile_accept, low, max(target_accept, FINAL_ACCEPT_MAX)))


#: Values (draws x chains x dim) of the final window kept to measure its chains' ESS.
FINAL_DRAWS_KEPT = 4_000_000
#: The fewest final-window draws whose ESS is measured.
MIN_MEASURED_DRAWS = 20


def _measured_ess(final, n_steps, bulk):
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


def _gradient_count(lengths, batch, repeats):
    """Energy-and-gradient evaluations of :func:`ess_per_gradient_profile`: one trajectory of the
    longest length per chain and repeat (the shorter ones are its first points)."""
    return repeats * batch * max(lengths)


def lost_chains(potential, dim):
    """``(B,)`` True for chains whose energy U lies more than 10 + 3 sqrt(dim) above the batch's lower
    quartile: at equilibrium U - min U is about chi^2_dim / 2 (sd sqrt(dim / 2)), so such a chain is
    still far out in the tails (a jittered start that the window did not bring in), and its draws
    would misstate the posterior's scales.  A chain whose U is not finite is lost too."""
    finite = np.isfinite(potential)
    if finite.sum() < 2:
        return ~finite
    anchor = np.percentile(potential[finite], 25)
    return ~finite | (potential > anchor + 10.0 + 3.0 * np.sqrt(dim))


def replace_frozen(x, moved, rng):
    """Chains that never moved in a window (``moved`` ``(B,)`` False) become copies of chains that
    did; returns (chains, number replaced)."""
    frozen = ~moved
    if frozen.any() and moved.any():
        x = x.copy()
        x[frozen] = x[rng.choice(np.flatnonzero(moved), size=int(frozen.sum()))]
    return x, int(frozen.sum()) if moved.any() else 0


def _refit_noncentring(sampler, *clouds):
    """Fit the target's non-centring to the first of ``clouds`` (sampling coordinates,
    ``(n, dim)`` each) and return all of them mapped to the new sampling coordinates."""
    energy = sampler.energy_target
    in_model = [energy.to_model(c) for c in clouds]
    energy.noncentring.fit(in_model[0])
    return [energy.to_sampling(c).astype(floatX) for c in in_model]


def warmup(sampler, batch_size, rng, settings=WarmupSettings(), progressbar=False, chains=None):
    """Adapt ``sampler``'s step size and preconditioner (if it has one) on a batch of chains.

    Returns ``(chains, info)``: the final ``(batch_size, dim)`` positions (in x) and a
    dict of what was adapted: ``step_size, accept`` (mean over the last window),
    ``scale_min, scale_max, iterations, gradients, settled, last_change, replaced,
    seconds, n_steps`` and ``ess_per_gradient`` (the profile T was chosen by, or None);
    ``failed`` (chain steps whose evaluation raised), ``loop_seconds`` and ``loop_iterations`` (the
    iterations at ``warmup_n_steps`` leapfrog steps alone) and ``compile_seconds`` (the compile of
    the energy and gradient, which :meth:`L2HMCSampler.hmc_kernel`'s iterations and profile call).
    Sets ``sampler.log_step_size``, the preconditioner's values and (with
    ``sampler.adapt_n_steps``) ``sampler.n_steps``: chosen before the final window when a
    preconditioner was fitted (its windows brought the chains into the posterior), so that the
    final window tunes the step size at that T and measures its chains' ESS
    (:func:`_measured_ess`); else after it.
    """
    start = time.perf_counter()
    precond = sampler.preconditioner
    kernel = sampler.hmc_kernel()
    warmup_n_steps = sampler.n_steps
    directions = np.ones(batch_size, dtype=floatX)
    failures = 0

    x = initial_chains(sampler, batch_size, rng, settings.jitter) if chains is None else np.array(chains)
    noncentred = getattr(sampler.energy_target, "noncentring", None) is not None
    if noncentred:
        (x,) = _refit_noncentring(sampler, x)
    if precond is not None:
        grad = sampler.energy_and_grad(x)[1]
        finite = np.all(np.isfinite(grad), axis=1)
        if finite.sum() > 1:
            precond.set(**precond.estimate(x[finite], grad[finite]))
    potential, grad = sampler.start_state(x)  # carried from step to step, in y: evaluated anew after a refit
    dual = DualAveraging(sampler.step_size, settings.target_accept)
    windows = settings.windows(precond is not None)
    total = sum(length for length, _ in windows)
    bar = None
    if progressbar:
        from fastprogress.fastprogress import progress_bar

        bar = progress_bar(range(total))
        bar.update(0)
    done, replaced, settled, change, slow_done = 0, 0, precond is None, np.nan, 0
    final = []  # the final window's chains at the chosen T, in y (the preconditioner is fixed there)
    choose_first = sampler.adapt_n_steps and precond is not None
    profile = bulk = cost = None
    cap = np.inf  # the step size's cap (:func:`step_size_cap`)
    final_target = settings.target_accept  # the final window's (:func:`final_accept_target`)
    n_gradients, n_steps = 0, warmup_n_steps
    loop_start = time.perf_counter()
    loop_seconds, loop_iterations = None, None
    for w, (length, slow) in enumerate(windows):
        is_final = w == len(windows) - 1
        if slow and settled:
            continue
        if is_final and choose_first:
            loop_seconds, loop_iterations = time.perf_counter() - loop_start, done
            profile, bulk, cost, spent, cap, profile_accept = _choose_n_steps(
                sampler, kernel, x, potential, grad, dual.step_size, rng, settings, batch_size)
            n_gradients += spent
            n_steps = sampler.n_steps
            final_target = final_accept_target(profile_accept, settings.target_accept)
            dual = DualAveraging(dual.step_size, final_target, reach=2.0)
        keep_from = length - length // 2
        positions, gradients, accepts, potentials = [], [], [], []
        moved = np.zeros(batch_size, dtype=bool)
        eps = min(dual.step_size, cap)
        for i in range(length):
            v = rng.standard_normal((batch_size, sampler.dim)).astype(floatX)
            log_u = np.log(rng.uniform(size=batch_size)).astype(floatX)
            scale = sampler.draw_step_scale(rng, batch_size)
            out = kernel(x, v, directions, log_u, scale, potential, grad, step_size=eps, n_steps=n_steps)
            n_gradients += batch_size * n_steps  # T evaluations of U and dU together
            x, accept, accepted, potential, grad = out.x, out.accept_prob, out.accepted, out.potential, out.grad
            failures += int(np.count_nonzero(kernel.failed)) if kernel.failed is not None else 0
            moved |= accepted.astype(bool)
            accepts.append(float(np.mean(accept)))
            if choose_first and is_final and i >= DIVERGENCE_WARMIN:  # the run's own transitions
                cap = min(cap, step_size_cap(eps * scale[np.asarray(out.diverging, dtype=bool)], sampler.step_jitter))
            eps = min(dual.update(accepts[-1]), cap)
            if choose_first and is_final and len(final) * batch_size * sampler.dim < FINAL_DRAWS_KEPT:
                final.append(x if precond is None else precond.to_y_numpy(x))
            if slow and i >= keep_from:
                positions.append(x)
                gradients.append(grad if precond is None else precond.grad_to_x_numpy(grad))
                potentials.append(potential)
            done += 1
            if bar is not None:
                bar.update(done)
                bar.comment = f"warm-up: eps {eps:.3g} accept {accepts[-1]:.2f}"
        lost = np.zeros(batch_size, dtype=bool)
        if slow:
            # Chains still far out in the tails leave the fit and, below, are replaced by copies of others.
            lost = lost_chains(np.mean(potentials, axis=0), sampler.dim)
            if lost.all():
                lost[:] = False
            positions, gradients = [p[~lost] for p in positions], [g[~lost] for g in gradients]
            xs, gs = np.concatenate(positions), np.concatenate(gradients)
            if noncentred:
                xs, x = _refit_noncentring(sampler, xs, x)
                gs = sampler.energy_and_grad(xs)[1]
            finite = np.all(np.isfinite(gs), axis=1) & np.all(np.isfinite(xs), axis=1)
            old = precond.scales()
            if sampler.auto_preconditioner:
                precond = fitted(sampler.dim, xs[finite], gs[finite])
                sampler.set_preconditioner(precond)
            else:
                precond.set(**precond.estimate(xs[finite], gs[finite]))
            change = float(np.max(np.abs(np.log(precond.scales() / old))))
            slow_done += 1
            settled = slow_done >= 2 and change < settings.settle
        if w == 0 and not moved.any():
            raise WarmupError(
                f"L2HMC warm-up: none of {batch_size} chains accepted a proposal in {length} iterations, with step "
                f"sizes down to {eps:.3g}: the energy is not finite (or not smooth) next to the starts. Check the "
                "model's log density near its initial point (model.check_test_point()) and its parametrisation.")
        refresh = slow  # new coordinates y (or new chains, below): their U and dU/dy afresh
        if not is_final:
            x, n = replace_frozen(x, moved & ~lost, rng)
            replaced += n
            refresh = refresh or n > 0
            # Restart the averaging from where it got to (Stan restarts after every window).
            dual = DualAveraging(dual.final_step_size, settings.target_accept, reach=2.0)
        if refresh:
            potential, grad = sampler.start_state(x)
    if loop_seconds is None:
        loop_seconds, loop_iterations = time.perf_counter() - loop_start, done
    if bar is not None:
        bar.update(total)
    final_step = min(dual.final_step_size, cap)
    if sampler.adapt_n_steps and not choose_first:
        profile, bulk, cost, spent, cap, _ = _choose_n_steps(sampler, kernel, x, potential, grad, final_step, rng,
                                                             settings, batch_size)
        n_gradients += spent
        final_step = min(final_step, cap)
    sampler.log_step_size.set_value(np.asarray(np.log(final_step), dtype=floatX))
    scales = precond.scales() if precond is not None else np.ones(sampler.dim)
    info = {
        "step_size": final_step,
        "accept": float(np.mean(accepts)),
        "target_accept": final_target,  # the final window's
        "scale_min": float(np.min(scales)),
        "scale_max": float(np.max(scales)),
        "preconditioner": None if precond is None else precond.kind,
        "rank": None if precond is None else precond.rank,  # directions a low rank one corrects
        "iterations": done,
        "gradients": n_gradients,
        "n_steps": sampler.n_steps,
        "ess_per_gradient": None if profile is None else [float(c) for c in profile],
        # the final window's min bulk ESS per draw (at the chosen T), its ratio to the profile's, and every k-th's
        **_measured_ess(final, sampler.n_steps, bulk),
        "draw_cost": None if cost is None else [float(c) for c in cost],  # (c0, c1) s: a draw costs c0 + T c1
        "settled": bool(settled),
        "last_change": change,
        "replaced": replaced,
        "failed": failures,
        # the cap on the step size where transitions of T steps diverged (None: none did)
        "step_size_cap": None if not np.isfinite(cap) else float(cap),
        "loop_seconds": loop_seconds,  # the iterations at T = warmup_n_steps alone (for the budget)
        "loop_iterations": loop_iterations,
        "warmup_n_steps": warmup_n_steps,
        "compile_seconds": sampler.compile_seconds.get("energy_grad", 0.0),
        "noncentred": sampler.energy_target.noncentring.names if noncentred else [],
        "seconds": time.perf_counter() - start,
    }
    if not settled:
        warnings.warn(
            f"L2HMC warm-up did not settle in {done} iterations: the preconditioner's scales still changed "
            f"by {100 * np.expm1(change):.0f}% in the last window. Sampling may be poor; allow a longer "
            f"warm-up (warmup_iterations=...) or check the model's parametrisation.")
    off = info["accept"] - final_target
    capped = info["step_size_cap"] is not None and final_step >= info["step_size_cap"]  # accepts more, by design
    if off < -0.15 or (off > 0.15 and not capped):
        warnings.warn(f"L2HMC warm-up ended at mean acceptance {info['accept']:.2f}, far from the target "
                      f"{final_target:.2f} (step size {final_step:.3g}).")
    return x, info


def _choose_n_steps(sampler, kernel, x, potential, grad, step_size, rng, settings, batch_size):
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
        spent += _gradient_count(trajectory_lengths(lo, settings.max_n_steps), batch_size, repeats)
        if round_ == 0 and len(one):  # a draw's cost, timed after the first profile as before the cap
            cost = draw_cost(kernel, x[one], potential[one], grad[one], step_size)
        sampler.set_n_steps(choose_n_steps(profile, lo, cost))
        cap = min(cap, step_size_cap(diverged[diverged[:, 0] <= WATCHED_LENGTHS * sampler.n_steps, 1],
                                     sampler.step_jitter))
        if cap >= eps:
            break
        eps = cap
    return profile, bulk, cost, spent, cap, float(acceptance[sampler.n_steps - 1])


def describe(info):
    """One line on what warm-up adapted."""
    return (f"warm-up: {info['iterations']} iterations ({info['seconds']:.1f} s), T = {info['n_steps']}, step size "
            f"{info['step_size']:.3g}, acceptance {info['accept']:.2f}, scales {info['scale_min']:.3g}.."
            f"{info['scale_max']:.3g}" + _describe_preconditioner(info)
            + ("" if info["settled"] else " (not settled)")
            + (f", non-centred: {', '.join(info['noncentred'])}" if info.get("noncentred") else "")
            + (f", {info['failed']} chain steps failed to evaluate (rejected)" if info.get("failed") else "")
            + (f", step size capped at {info['step_size_cap']:.3g} (transitions of T steps diverged above it)"
               if info.get("step_size_cap") is not None else ""))


def _describe_preconditioner(info):
    kind = info.get("preconditioner")
    if kind == "lowrank":
        return f" (low rank: {info['rank']} direction{'s' * (info['rank'] != 1)} beyond the diagonal)"
    return f" ({kind})" if kind in ("diag", "dense") else ""
