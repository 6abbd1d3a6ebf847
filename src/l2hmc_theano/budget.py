"""How much setup a sampler gets: the chains of warm-up and training, and whether to train.

Setup is paid before the first draw; what a user waits for is a usable posterior
(:data:`TARGET_ESS` min ESS), not ESS per gradient alone.  Two decisions follow from
measured costs, each stated in one line (:func:`describe`):

* **Chains.**  A batched gradient of B chains costs about t0 + B t_row seconds: close to t0
  (the call) for a small model, where 200 chains cost little more than one, and B t_row for a
  model with much data, where each chain costs what a chain of NUTS does.  Warm-up and
  training use the most chains of :data:`BATCHES` whose gradient costs at most
  :data:`BATCH_SECONDS`, and at least :data:`MIN_BATCH` (warm-up fits the preconditioner to
  their draws).

Both follow measured costs, so another machine (or a busy one) can decide otherwise for the
same seed; the decision is saved with the sampler, and ``batch_size=`` and
``train_networks=`` given explicitly make a run follow the seed alone.
* **T, by ESS per second of a draw.**  A draw of one chain (pm.sample's step) costs
  c(T) = c0 + T c1: c1 a leapfrog step (the energy and gradient of one chain and the update),
  c0 the rest (the call, the MH test, PyMC3's loop and the step's bookkeeping).  For a small
  model c0 is most of it (a 50-d Gaussian: c0 ~0.15 ms, c1 ~0.02 ms), so a longer trajectory
  costs little more than a short one and T is chosen by ESS per draw; for a model with much
  data c1 dominates and T is chosen by ESS per gradient, as before (:func:`draw_cost`,
  :func:`choose_n_steps`).  The ratio c0 / c1 is rounded to a power of 2, so that timing noise
  seldom changes T.
* **Training.**  After warm-up, HMC with the adapted step size, preconditioner and T has a
  predicted ESS per gradient p (warm-up's profile, :func:`.trajectory_length.ess_per_gradient_profile`),
  so it reaches :data:`TARGET_ESS` in t_hmc = TARGET_ESS / (p T) draws of c(T) seconds (without
  a measured c: TARGET_ESS / p gradients of one chain).
  Training costs a compile (~:data:`TRAIN_COMPILE_COST` x the energy's, measured, and at least
  :data:`TRAIN_COMPILE_FLOOR`) and at least :data:`MIN_TRAIN_ITERATIONS` iterations of the batch
  (~:data:`TRAIN_ITERATION_COST` warm-up iterations each, gradient through the trajectory, and at
  least :data:`TRAIN_ITERATION_FLOOR`).  With a gain g in ESS per
  gradient the networks save t_hmc (1 - 1/g); they are kept only from g = 1.25
  (:mod:`.selection`) and seldom reach g = 2, so training runs only where its cost is below
  :data:`PAYBACK` x t_hmc: where HMC alone would take long to a usable posterior.
"""
import time

import numpy as np

from .chain_guard import FAILURES

__all__ = ["TARGET_ESS", "choose_batch_size", "draw_cost", "choose_n_steps", "training_decision", "describe",
           "predicted_ess_per_draw", "choose_thin", "DRAW_ESS", "MAX_THIN"]

#: A usable posterior: this min ESS over the model's variables.
TARGET_ESS = 1000
#: Most and fewest chains in warm-up and training.
MAX_BATCH, MIN_BATCH = 200, 16
#: The most a batched gradient of the warm-up's chains should cost (seconds).
BATCH_SECONDS = 5e-4
#: The batch sizes it picks from (coarse, so that timing noise seldom changes the choice).
BATCHES = (MIN_BATCH, 32, 64, 128, MAX_BATCH)
#: Training's shortest run when it stops on a flat jump (4 windows of 100 iterations).
MIN_TRAIN_ITERATIONS = 400
#: A training iteration costs about this many HMC iterations of the batch at the same T
#: (forward, backward through the T steps, the networks).
TRAIN_ITERATION_COST = 3.0
#: The training step's compile plus the selection's MH step's, in units of the compile of the energy
#: and gradient (warm-up's only compile): 5x that of a scanned HMC step, which took 2.4-2.8x the
#: energy's on eight schools, radon and the latent GP.
TRAIN_COMPILE_COST = 14.0
#: The least a training step's compile takes, whatever the energy (the networks and the gradient through
#: the scanned leapfrog; measured with a warm Theano cache: 9-10 s on banana, eight schools and a 50-d
#: Gaussian, whose energies compile in 0.15-0.5 s).
TRAIN_COMPILE_FLOOR = 8.0
#: The least a training iteration takes, whatever the batch (Scan's Python loop forward and back, the
#: networks' small ops; measured: 9 ms on banana at T = 8, 9.4 ms on eight schools at T = 5, 17 ms on a
#: 50-d Gaussian at T = 3, where an HMC iteration of the same 200 chains takes 0.4 ms).
TRAIN_ITERATION_FLOOR = 8e-3
#: Training runs where its predicted cost is below this share of HMC's time to TARGET_ESS.
PAYBACK = 0.5
#: pm.sample's loop and the L2HMC step's bookkeeping per draw, in units of the fixed part of the
#: HMC kernel's call (measured on a 50-d Gaussian: 0.10 ms beside the kernel's 0.10 ms; 0.25 ms a
#: draw at T = 2 in all).
DRAW_OVERHEAD = 1.0


def least_seconds(call, repeats=5):
    """Seconds of ``call()``: the least of ``repeats`` timed calls after one to warm up (which
    compiles what it needs)."""
    call()
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def gradient_seconds(sampler, x, repeats=5):
    """Seconds per call of the sampler's energy and gradient on ``x`` ``(B, dim)`` (:func:`least_seconds`)."""
    return least_seconds(lambda: sampler.energy_and_grad(x), repeats)


def choose_batch_size(sampler, x0):
    """The number of chains for warm-up and training, from the cost of the batched gradient at
    ``x0`` ``(dim,)`` (the model's initial point): ``(batch, one-chain gradient seconds, note)``."""
    x = np.repeat(np.asarray(x0)[None, :], MAX_BATCH, axis=0)
    try:
        one = gradient_seconds(sampler, x[:1])
        full = gradient_seconds(sampler, x)
    except FAILURES as error:
        return MAX_BATCH, None, (f"{MAX_BATCH} chains (the gradient at the initial point raised "
                                 f"{type(error).__name__}, so its cost is unknown)")
    per_row = max(full - one, 0.0) / (MAX_BATCH - 1)
    fits = MAX_BATCH if full <= BATCH_SECONDS or per_row == 0.0 else (BATCH_SECONDS - one) / per_row + 1
    batch = max(b for b in BATCHES if b <= max(fits, MIN_BATCH))
    note = (f"{batch} chains (a gradient costs {1e3 * one:.2f} ms for 1 chain, {1e3 * full:.2f} ms for "
            f"{MAX_BATCH})")
    return batch, one, note


def draw_cost(kernel, x, potential, grad, step_size, lengths=(1, 4), repeats=5):
    """``(c0, c1)``: seconds of one chain's draw that do not depend on T, and seconds per leapfrog
    step, from :func:`least_seconds` of the HMC ``kernel`` (:meth:`L2HMCSampler.hmc_kernel`)
    at each of two ``lengths``, for the chain ``x`` ``(1, dim)`` carrying ``potential`` ``(1,)`` and
    ``grad`` ``(1, dim)``; c0 includes :data:`DRAW_OVERHEAD`.  Momenta come from a fixed seed (the
    caller's random stream is not touched)."""
    rng = np.random.default_rng(0)
    v = rng.standard_normal(x.shape).astype(x.dtype)
    ones = np.ones(len(x), dtype=x.dtype)
    log_u = np.full(len(x), -np.inf, dtype=x.dtype)  # accept: the path a draw usually takes
    best = [least_seconds(lambda: kernel(x, v, ones, log_u, ones, potential, grad, step_size=step_size, n_steps=T),
                          repeats) for T in lengths]
    per_step = max((best[1] - best[0]) / (lengths[1] - lengths[0]), 1e-9)
    fixed = max(best[0] - lengths[0] * per_step, 0.0)
    return (1.0 + DRAW_OVERHEAD) * fixed, per_step


def choose_n_steps(ess_per_gradient, min_steps, cost=None):
    """T in ``min_steps..len(ess_per_gradient)`` with the most predicted ESS per second: the profile
    ``ess_per_gradient[t - 1]`` x t ESS per draw over a draw's cost c0 + t c1 (``cost`` = (c0, c1)
    of :func:`draw_cost`, the ratio c0 / c1 rounded to a power of 2); without ``cost``, per gradient."""
    profile = np.asarray(ess_per_gradient, dtype=float)
    t = np.arange(1, len(profile) + 1)
    ratio = 0.0
    if cost is not None and cost[1] > 0 and cost[0] > 0:
        ratio = 2.0 ** np.round(np.log2(cost[0] / cost[1]))
    per_second = profile * t / (ratio + t)
    return min_steps + int(np.argmax(per_second[min_steps - 1:]))


def training_decision(sampler, warmup_info, one_chain_seconds):
    """Whether training should run after a warm-up that gave ``warmup_info`` (see the module
    docstring), and why: ``(train, reason)``.  Without warm-up's ESS profile (a fixed T) it
    trains, as before there was a budget."""
    profile = warmup_info.get("ess_per_gradient") if warmup_info else None
    if not profile or not warmup_info.get("loop_seconds") or one_chain_seconds is None:
        return True, "no prediction of HMC's time to a usable posterior (T not chosen by warm-up, or no timing)"
    T = sampler.n_steps
    p = _profile_at(profile, T)
    cost = warmup_info.get("draw_cost")
    if cost is not None:
        hmc_seconds = TARGET_ESS / max(p * T, 1e-12) * (cost[0] + T * cost[1])
    else:
        hmc_seconds = TARGET_ESS / max(p, 1e-12) * one_chain_seconds
    iterations = warmup_info.get("loop_iterations") or warmup_info["iterations"]  # files of before: every iteration
    iteration = warmup_info["loop_seconds"] / iterations * T / warmup_info["warmup_n_steps"]
    train_seconds = (max(TRAIN_COMPILE_COST * warmup_info.get("compile_seconds", 0.0), TRAIN_COMPILE_FLOOR)
                     + MIN_TRAIN_ITERATIONS * max(TRAIN_ITERATION_COST * iteration, TRAIN_ITERATION_FLOOR)
                     + 100 * iteration)
    train = train_seconds < PAYBACK * hmc_seconds
    reason = (f"HMC (T = {T}) predicts {p:.3g} ESS per gradient, {TARGET_ESS} ESS in ~{hmc_seconds:.3g} s; "
              f"training would cost >= {train_seconds:.3g} s")
    return train, reason


def predicted_ess_per_draw(sampler, thin=1):
    """The min ESS (over the model's variables) a draw of one chain made of ``thin`` MH transitions
    is predicted to give: with the trained networks kept, ``thin`` x the selection's measured figure
    per transition (:mod:`.selection`: min ESS over its chains x draws); else warm-up's profile at T
    times T (HMC), scaled by what its final window's chains measured against the profile
    (``ess_calibration``, at most 1) and by what they measured kept every ``thin``-th against all
    (``measured_ess_per_draw_by_thin``; without it, ``thin`` times); None when neither is known."""
    selection = sampler.selection
    if selection is not None and selection.get("kept") == "trained" and selection.get("draws"):
        return thin * float(selection["trained"]) / (selection["draws"] * selection["chains"])
    info = sampler.warmup_info or {}
    profile = info.get("ess_per_gradient")
    if not profile:
        return None
    one = _profile_at(profile, sampler.n_steps) * sampler.n_steps * float(info.get("ess_calibration", 1.0))
    return one * _thinning_gain(_measured_by_thin(sampler), thin)


def _measured_by_thin(sampler):
    """Warm-up's final window's min ESS per draw of its chains kept every k-th, k = 1, 2, ...
    (:func:`.trajectory_length.measured_ess`), where it measured HMC at the sampler's T; else None (trained
    networks kept, T changed since, a file of before, or nothing finite to go by)."""
    info = sampler.warmup_info or {}
    table = info.get("measured_ess_per_draw_by_thin")
    if ((sampler.selection or {}).get("kept") == "trained" or not table or len(table) < 2
            or info.get("n_steps") != sampler.n_steps or not all(np.isfinite(table)) or table[0] <= 0):
        return None
    return table


def _thinning_gain(table, thin):
    """How many times one transition's ESS a draw of ``thin`` transitions gives, by the measured
    ``table`` (:func:`_measured_by_thin`); ``thin`` without one."""
    if table is None:
        return float(thin)
    k = min(thin, len(table))
    return table[k - 1] / table[0] * thin / k  # beyond the table, as many times its last


#: The slowest parameter's ESS per draw ``thin="auto"`` aims at: 1000 draws a chain then give 300,
#: R-hat's and ESS's own estimates settle (ArviZ asks 400 over all chains).
DRAW_ESS = 0.3
#: The most MH transitions per draw ``thin="auto"`` makes.
MAX_THIN = 10
#: The least fraction of one transition's ESS per gradient that a draw of two must keep, as warm-up
#: measured it, for ``thin="auto"`` to thin.  Below DRAW_ESS an AR(1) chain keeps at least 0.92
#: (rho > 0.54), antithetic chains far less (kidscore_momhs: 0.14); 16 chains x 50 draws measure
#: 0.92 as low as 0.88 (a stochastic volatility model, whose draws reached R-hat 1.014 unthinned).
THIN_KEEPS = 0.75


def choose_thin(sampler):
    """MH transitions per draw (``L2HMC(thin="auto")``), from one transition's predicted min ESS p
    (:func:`predicted_ess_per_draw`): 1 from p = :data:`DRAW_ESS`; below it ceil(DRAW_ESS / p)
    (at most :data:`MAX_THIN`) unless warm-up's final window, run at the sampler's T, measured
    its chains kept every second at under :data:`THIN_KEEPS` x 2 the ESS per draw of all
    (antithetic chains: 1); without that measurement (a file of before, trained networks) only
    below DRAW_ESS / 2.

    Thinning pays where a transition's draws are positively correlated: k of them are then almost
    k times as informative, and slow chains are.  A short trajectory on a well-conditioned
    posterior is antithetic (its bulk ESS per draw exceeds 1 while its tail or spread is slower),
    and two such transitions undo each other's gain (posteriordb's kidscore_momhs: 1140 ESS per 1k
    gradients with one a draw, 161 with two).  Only k = 2 is measured: the window's few draws per
    chain measure the gains of larger k too noisily (a latent GP's 16 chains x 50 draws, taken
    k by k, stopped at 2 of the 7 transitions it needed, and R-hat reached 1.09)."""
    one = predicted_ess_per_draw(sampler)
    if one is None or not np.isfinite(one) or one <= 0 or one >= DRAW_ESS:
        return 1
    enough = int(np.clip(np.ceil(DRAW_ESS / one), 1, MAX_THIN))
    table = _measured_by_thin(sampler)
    if table is None:
        return enough if one < DRAW_ESS / 2 else 1
    return enough if _thinning_gain(table, 2) >= 2 * THIN_KEEPS else 1


def _profile_at(profile, T):
    """Warm-up's predicted ESS per gradient at T leapfrog steps (the profile's last length beyond it)."""
    return float(profile[min(T, len(profile)) - 1])


def describe(plan):
    """One line on what the setup decided (``sampler.setup``)."""
    kept = "training the networks" if plan["train"] else "no training: plain HMC"
    return f"setup: {plan['batch_note']}; {kept} ({plan['reason']})"
