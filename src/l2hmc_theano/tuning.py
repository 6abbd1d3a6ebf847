"""The set-up of a sampler before it draws (:meth:`.L2HMCSampler.train`): warm-up, the budget's
decision to train, training, and the choice between the trained dynamics and plain HMC."""
import sys
import warnings

import numpy as np

from . import selection as selection_module
from . import training_graph
from . import warmup as warmup_module
from ._theano import floatX
from .budget import choose_batch_size, training_decision
from .budget import describe as describe_setup
from .checks import check_count, check_fraction, check_non_negative, check_positive
from .diagnostics import training_warnings
from .progress import compiling
from .training import TrainingSettings, empty_history, run_training
from .warmup import WarmupSettings

__all__ = ["train", "warn_training_problems"]


def warn_training_problems(problems):
    """A ``UserWarning`` that the trained sampler looks poor, naming ``problems`` (a list of
    messages, ``sampler.training_problems``); nothing when there are none."""
    if problems:
        warnings.warn("The trained L2HMC sampler looks poor: " + "; ".join(problems)
                      + ". Train longer, lower step_size or learning_rate, or use NUTS.")


def train(
    sampler,
    train_steps=5000,
    batch_size=200,
    learning_rate=1e-3,
    lr_decay=0.96,
    lr_decay_steps=1000,
    loss_scale=0.1,
    burn_in_weight=0.0,
    fresh_draws="standard",
    constant_forces=False,
    scaled_jump=False,
    coordinate_loss=True,
    start_temperature=None,
    temperature_decay=0.999,
    stop_when_flat=True,
    compare_hmc=True,
    warmup="auto",
    target_accept=0.8,
    warmup_iterations=600,
    seed=None,
    progressbar=True,
    check=True,
    train_networks=True,
):
    """Warm up, then train the networks and log eps by maximising expected squared jumped distance.

    **Warm-up** (:mod:`l2hmc_theano.warmup`; ``warmup="auto"`` runs it once, before the
    first training of this sampler; True always, False never): ``batch_size`` chains
    start around the model's initial point and run HMC (zero networks) while the step
    size adapts by dual averaging to ``target_accept`` and the preconditioner (if any)
    is fitted to the chains' positions and gradients, for at most
    ``warmup_iterations`` iterations (it stops early once the scales settle); with
    ``n_steps="auto"`` it then chooses T by the predicted ESS per second of a draw.  What it adapted is in
    ``sampler.warmup_info``.

    **Training**: each of at most ``train_steps`` iterations makes one MH step of
    ``batch_size`` persistent chains (those of the warm-up; a later call with the same
    ``batch_size`` continues them) and one Adam step on the loss
    ``mean l(chains) + burn_in_weight * mean l(fresh batch from q)``,
    ``l = loss_scale/delta - delta/loss_scale`` (paper Eq. 7-8; ``loss_scale``
    is lambda^2), all in the preconditioner's coordinates y.  With ``coordinate_loss``
    (the default) delta is each coordinate's expected squared jump over the batch and
    l is averaged over coordinates (:func:`l2hmc_theano.loss.coordinate_esjd_loss`),
    so the slowest coordinate counts; False gives the paper's |y' - y|^2 per chain.  With ``stop_when_flat``
    training stops once the ESJD has not improved for 3 windows of 100 iterations
    (``history["stopped_early"]``).  With ``compare_hmc`` (the default) the trained
    dynamics and plain HMC with the step size training started from then each run 50
    MH steps from the final chains (:mod:`l2hmc_theano.selection`); unless the networks'
    min ESS is 1.25x HMC's or more (their steps cost more time), the networks' heads are
    zeroed and that step size restored, so the sampler *is* that HMC.  ``sampler.selection``
    holds both figures and which was kept.
    The learning rate decays by ``lr_decay`` every
    ``lr_decay_steps`` iterations.  With ``start_temperature > 1`` the energy is
    annealed: U / max(1, start_temperature * temperature_decay**i).
    The default ``burn_in_weight=0`` drops the fresh batch: after warm-up the chains
    are in the posterior already, and it halves the cost per iteration (and on radon
    gave no worse a sampler); 1 is the paper's loss.
    With a burn-in term, ``fresh_draws="standard"`` (the default) draws the fresh
    batch from the paper's q = N(0, I) in y; ``"chains"`` from the Gaussian fitted to
    the chains' mean and covariance in y (:func:`l2hmc_theano.training.fresh_draws`):
    on a preconditioned two-mode mixture that is what makes training learn the jump
    between the modes, but on a Gaussian it trains a reflection through the mean.
    ``constant_forces=True`` treats dU/dx along the trajectory as a constant
    when differentiating the loss: a biased but far less noisy gradient for
    rough energies, where the exact one explodes through the T steps.
    ``scaled_jump=True`` (with ``coordinate_loss=False``) measures the jump per
    coordinate in units of the chains' current spread, sum_i ((y'_i - y_i) / sd_i)^2
    (for ill-conditioned targets without a preconditioner).

    Returns the history (also kept as ``sampler.history``): per-iteration arrays
    ``loss, accept, esjd, step_size, temperature, diverging, applied, replaced, masked, failed``
    plus ``seconds``, ``stopped_early``, ``interrupted``, ``backoffs`` and the final ``chains``
    ``(batch_size, dim)``.  An Adam step with a non-finite gradient is taken again with
    the diverging and stuck proposals' step sizes set to 0 (``masked`` counts them), so
    they drop out of the loss (``accept`` and ``diverging`` still count them as the
    dynamics proposed them); if that is still not finite the step is skipped
    (``applied`` 0) and the stuck chains are replaced by copies of healthy ones
    (``replaced``).  Training that collapses (a window of 50 iterations at mean
    acceptance < 0.1, most steps skipped, or a non-finite loss) goes back to the last
    healthy parameters and chains with half the step size and half the learning rate
    (``backoffs`` lists each, and a warning says so); after 6 back-offs it raises
    :class:`~l2hmc_theano.training.TrainingError`.  Training never ends in a collapsed
    window: it goes back to the last healthy one.  Ctrl-C stops early and keeps what
    was learned.  With ``check``, a poorly trained sampler (see
    :func:`l2hmc_theano.diagnostics.training_warnings`) gets a ``UserWarning``
    recommending NUTS; the messages are kept in ``sampler.training_problems``.

    **Budget** (:mod:`l2hmc_theano.budget`): ``batch_size="auto"`` takes as many chains (16 to
    200) as keep a batched gradient cheap; ``train_networks="auto"`` trains only where the
    training is predicted to cost less than half of what plain HMC would take to a usable
    posterior, else the sampler is that HMC (heads zeroed; ``history`` then holds warm-up's
    chains and no iterations); False never trains.  ``sampler.setup`` says what was decided and
    why (:func:`l2hmc_theano.budget.describe`).
    """
    anneal = start_temperature is not None and float(start_temperature) > 1.0
    if anneal and not 0.0 < float(temperature_decay) < 1.0:
        raise ValueError(f"temperature_decay must be in (0, 1), got {temperature_decay!r}.")
    if warmup not in ("auto", True, False):
        raise ValueError(f"warmup must be 'auto', True or False, got {warmup!r}.")
    if train_networks not in ("auto", True, False):
        raise ValueError(f"train_networks must be 'auto', True or False, got {train_networks!r}.")
    plan = {"batch_note": f"{batch_size} chains", "train": train_networks is not False,
            "reason": "train_networks=True" if train_networks is True else "train_networks=False"}
    one_chain_seconds = None
    with sampler.announcing(progressbar):
        if progressbar and not sampler.functions:
            print("L2HMC: compiling Theano functions; the first run on a machine builds their C code on every "
                  "core (a minute or more), later runs reuse Theano's cache.", file=sys.stderr, flush=True)
        sampler.check_start()  # before anything else compiles: a model that cannot start fails now
        if batch_size == "auto" or train_networks == "auto":
            start = getattr(sampler.energy_target, "start_array", None)
            start = np.asarray(start() if start is not None else np.zeros(sampler.dim), dtype=floatX)
            auto_batch, one_chain_seconds, note = choose_batch_size(sampler, start)
            if batch_size == "auto":
                batch_size, plan["batch_note"] = auto_batch, note
    settings = TrainingSettings(
        train_steps=check_count(train_steps, "train_steps"),
        batch_size=check_count(batch_size, "batch_size"),
        learning_rate=check_positive(learning_rate, "learning_rate"),
        lr_decay=float(lr_decay), lr_decay_steps=check_count(lr_decay_steps, "lr_decay_steps"),
        loss_scale=check_positive(loss_scale, "loss_scale"),
        burn_in_weight=check_non_negative(burn_in_weight, "burn_in_weight"), fresh_draws=fresh_draws,
        constant_forces=bool(constant_forces), scaled_jump=bool(scaled_jump),
        coordinate_loss=bool(coordinate_loss),
        start_temperature=float(start_temperature) if anneal else 1.0,
        temperature_decay=float(temperature_decay), stop_when_flat=bool(stop_when_flat),
    )
    warmup_settings = WarmupSettings(target_accept=check_fraction(target_accept, "target_accept"),
                                     max_iterations=check_count(warmup_iterations, "warmup_iterations"))
    rng = sampler.train_rng if seed is None else np.random.default_rng(seed)
    chains = None if sampler.history is None else sampler.history.get("chains")
    with sampler.announcing(progressbar):
        warmed = warmup is True or (warmup == "auto" and sampler.warmup_info is None and chains is None)
        if warmed:
            chains, sampler.warmup_info = warmup_module.warmup(sampler, settings.batch_size, rng, warmup_settings,
                                                               progressbar)
        if train_networks == "auto":
            plan["train"], plan["reason"] = training_decision(sampler, sampler.warmup_info if warmed else None,
                                                              one_chain_seconds)
        sampler.setup = plan
        if progressbar:
            print("L2HMC: " + describe_setup(plan), file=sys.stderr, flush=True)
        if not plan["train"]:
            return skip_training(sampler, chains)
        trained_from = sampler.step_size
        key = settings.graph_key()  # compiled after warm-up, which may change T
        if key not in sampler.functions:
            with compiling("the training step (the gradient through the leapfrog: the longest)", progressbar):
                sampler.functions[key] = training_graph.build_training_step(
                    sampler, settings, sampler.temperature if anneal else None)
    sampler.learning_rate.set_value(np.asarray(settings.learning_rate, dtype=floatX))
    sampler.history = run_training(sampler, sampler.functions[key], settings, rng, progressbar, chains=chains,
                                   temperature=sampler.temperature if anneal else None)
    sampler.selection = None
    if compare_hmc and hasattr(sampler.networks, "zero_heads"):
        with sampler.announcing(progressbar):
            keep_better_of_trained_and_hmc(sampler, trained_from, rng)
    sampler.training_problems = []
    if check and not (sampler.selection is not None and sampler.selection["kept"] == "hmc"):
        sampler.training_problems = training_warnings(sampler, sampler.history, baseline=sampler.selection is None)
        warn_training_problems(sampler.training_problems)
    return sampler.history

def skip_training(sampler, chains):
    """No training (see :mod:`.budget`): the sampler is HMC with warm-up's adaptation (the
    networks' heads zeroed), ``history`` warm-up's chains and no iterations."""
    if hasattr(sampler.networks, "zero_heads"):
        sampler.networks.zero_heads()
    sampler.history = empty_history(chains)
    sampler.selection = None
    sampler.training_problems = []
    return sampler.history

def keep_better_of_trained_and_hmc(sampler, hmc_step_size, rng):
    """Compare the trained dynamics with HMC at ``hmc_step_size`` on the training chains
    (:func:`~l2hmc_theano.selection.compare_with_hmc`); keep HMC unless the networks' min ESS
    is ``selection.NETWORKS_MARGIN`` times its or more (:func:`~l2hmc_theano.selection.keep_trained`)."""
    chains = sampler.history["chains"]
    if len(chains) < 4:  # too few chains for a rank-normalised ESS
        return
    sampler.selection = selection_module.compare_with_hmc(sampler, chains, hmc_step_size, rng)
    sampler.selection["kept"] = "trained" if selection_module.keep_trained(sampler.selection) else "hmc"
    sampler.selection["hmc_step_size"] = float(hmc_step_size)
    if sampler.selection["kept"] == "hmc":
        sampler.networks.zero_heads()
        sampler.log_step_size.set_value(np.asarray(np.log(hmc_step_size), dtype=floatX))
