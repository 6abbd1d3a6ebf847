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
  gradient from HMC trajectories started at the chains (:func:`.trajectory_length.ess_per_gradient_profile`: the
  lag-1 autocorrelations of the coordinates and their squares, as AR(1) processes, for bulk,
  tail and spread ESS) over the measured cost of a draw of t steps (:func:`.budget.draw_cost`,
  :func:`.budget.choose_n_steps`).  It is chosen before the last window, which then runs at T
  and measures its chains' ESS, also kept every k-th (:func:`.trajectory_length.measured_ess`: what the run's
  predictions and ``thin="auto"`` follow); without a preconditioner, after it;
* the step size is capped where transitions like the run's diverge: dual averaging tunes the
  mean acceptance, but where the curvature grows in a tail of the posterior (a random walk's
  increments at a large step scale, a Gaussian process at a large amplitude) the largest
  jittered steps leave the leapfrog's stable range there, and a few of the run's proposals
  overflow.  Any of the profile's trajectories that turns non-finite within
  :data:`.trajectory_length.WATCHED_LENGTHS` x T steps (the run's transitions, or twice as long: a rare blow-up
  shows sooner there), or any of the final window's proposals after its first
  :data:`DIVERGENCE_WARMIN` iterations (the run's own), caps the step size so that the largest
  jittered step is :data:`.step_size.STABILITY_MARGIN` x the smallest that diverged (:func:`.step_size.step_size_cap`);
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
from .preconditioner import fitted
from .starts import START_JITTER, initial_chains
from .step_size import DualAveraging, final_accept_target, step_size_cap
from .trajectory_length import choose_trajectory_length, measured_ess

__all__ = ["WarmupSettings", "WarmupError", "warmup"]


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
    jitter: float = START_JITTER  # starts: initial point + Uniform(-jitter, jitter) per coordinate
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


#: The final window's first iterations, whose step sizes still swing (up to 2x), count no divergence.
DIVERGENCE_WARMIN = 10


#: Values (draws x chains x dim) of the final window kept to measure its chains' ESS.
FINAL_DRAWS_KEPT = 4_000_000
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
    (:func:`.trajectory_length.measured_ess`); else after it.
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
    cap = np.inf  # the step size's cap (:func:`.step_size.step_size_cap`)
    final_target = settings.target_accept  # the final window's (:func:`.step_size.final_accept_target`)
    n_gradients, n_steps = 0, warmup_n_steps
    loop_start = time.perf_counter()
    loop_seconds, loop_iterations = None, None
    for w, (length, slow) in enumerate(windows):
        is_final = w == len(windows) - 1
        if slow and settled:
            continue
        if is_final and choose_first:
            loop_seconds, loop_iterations = time.perf_counter() - loop_start, done
            profile, bulk, cost, spent, cap, profile_accept = choose_trajectory_length(
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
        profile, bulk, cost, spent, cap, _ = choose_trajectory_length(sampler, kernel, x, potential, grad, final_step, rng,
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
        **measured_ess(final, sampler.n_steps, bulk),
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
