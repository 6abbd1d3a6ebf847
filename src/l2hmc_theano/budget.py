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
* **Training.**  After warm-up, HMC with the adapted step size, preconditioner and T has a
  predicted ESS per gradient p (warm-up's profile, :func:`.warmup.ess_per_gradient_profile`),
  so it reaches :data:`TARGET_ESS` in t_hmc = TARGET_ESS / p gradients of one chain.
  Training costs a compile (~:data:`TRAIN_COMPILE_COST` x the energy's, measured) and at
  least :data:`MIN_TRAIN_ITERATIONS` iterations of the batch (~:data:`TRAIN_ITERATION_COST`
  warm-up iterations each, gradient through the trajectory).  With a gain g in ESS per
  gradient the networks save t_hmc (1 - 1/g); they are kept only from g = 1.25
  (:mod:`.selection`) and seldom reach g = 2, so training runs only where its cost is below
  :data:`PAYBACK` x t_hmc: where HMC alone would take long to a usable posterior.
"""
import time

import numpy as np

from .chain_guard import FAILURES

__all__ = ["TARGET_ESS", "choose_batch_size", "training_decision", "describe"]

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
#: Training runs where its predicted cost is below this share of HMC's time to TARGET_ESS.
PAYBACK = 0.5


def gradient_seconds(sampler, x, repeats=5):
    """Seconds per call of the sampler's energy and gradient on ``x`` ``(B, dim)`` (the least of
    ``repeats`` calls after one to warm up, which compiles it if needed)."""
    fn = sampler.energy_and_grad
    fn(x)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        best = min(best, time.perf_counter() - start)
    return best


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


def training_decision(sampler, warmup_info, one_chain_seconds):
    """Whether training should run after a warm-up that gave ``warmup_info`` (see the module
    docstring), and why: ``(train, reason)``.  Without warm-up's ESS profile (a fixed T) it
    trains, as before there was a budget."""
    profile = warmup_info.get("ess_per_gradient") if warmup_info else None
    if not profile or not warmup_info.get("loop_seconds") or one_chain_seconds is None:
        return True, "no prediction of HMC's time to a usable posterior (T not chosen by warm-up, or no timing)"
    T = sampler.n_steps
    p = float(profile[min(T, len(profile)) - 1])
    hmc_seconds = TARGET_ESS / max(p, 1e-12) * one_chain_seconds
    iteration = warmup_info["loop_seconds"] / warmup_info["iterations"] * T / warmup_info["warmup_n_steps"]
    train_seconds = (TRAIN_COMPILE_COST * warmup_info.get("compile_seconds", 0.0)
                     + (MIN_TRAIN_ITERATIONS * TRAIN_ITERATION_COST + 100) * iteration)
    train = train_seconds < PAYBACK * hmc_seconds
    reason = (f"HMC (T = {T}) predicts {p:.3g} ESS per gradient, {TARGET_ESS} ESS in ~{hmc_seconds:.3g} s; "
              f"training would cost >= {train_seconds:.3g} s")
    return train, reason


def describe(plan):
    """One line on what the setup decided (``sampler.setup``)."""
    kept = "training the networks" if plan["train"] else "no training: plain HMC"
    return f"setup: {plan['batch_note']}; {kept} ({plan['reason']})"
