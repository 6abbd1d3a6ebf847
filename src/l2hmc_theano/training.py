"""Training: one compiled Theano function per iteration = one MH step of every
chain + one Adam step of the networks and log eps on the ESJD loss (its graph:
:mod:`.training_graph`); this module is the loop around it and its settings.

Everything runs in the sampler's preconditioner coordinates y (x = mu + L y, fitted
by warm-up).  The chains (``batch_size`` of them) persist across iterations and start
where warm-up left them (without warm-up, from N(0, I) in y); with a burn-in term,
every iteration also draws a fresh batch from q for it (the paper's N(0, I) in y, or
with ``fresh_draws="chains"`` the Gaussian fitted to the chains, :func:`fresh_draws`).
All randomness comes from one ``numpy.random.Generator``.

One chain stuck far in the tails (acceptance exactly 0) can make the batch
gradient NaN although its own cotangent is 0: the target's curvature at its
proposal overflows (e.g. inf/inf in d2U for a log-scale near 190), and
0 * NaN = NaN.  Such a step is skipped, and so would every later one be, since a
stuck chain does not move; so after a skipped step the stuck chains (diverged, or
log A < ``STUCK_LOG_ACCEPT``) are replaced by copies of healthy ones.
"""
import dataclasses
import time
import warnings

import numpy as np

from ._theano import floatX
from .training_guards import (STUCK_LOG_ACCEPT, CollapseGuard, FlatStop, TrainingError, backoff_message,
                              guarded_training_step, masked_retry, replace_stuck_chains)
from .warmup import replace_frozen

__all__ = ["TrainingError", "TrainingSettings", "run_training", "FRESH_DRAWS", "fresh_draws", "empty_history"]

#: The per-iteration arrays of a training history.
HISTORY_KEYS = ("loss", "accept", "esjd", "step_size", "temperature", "diverging", "applied", "replaced", "masked",
                "failed")

#: Where the burn-in term's fresh draws come from (:func:`fresh_draws`).
FRESH_DRAWS = ("standard", "chains")


#: A chain that has not moved for this many iterations when training ends is replaced by a
#: copy of one that has (as warm-up does after each window): the chains are where sampling
#: continues (``history["chains"]``), and one stuck in a far tail would stay there.
FROZEN_WINDOW = 50

@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """How the networks are trained (see :meth:`L2HMCSampler.train` for each field's meaning).

    ``stop_window``, ``patience``, ``min_gain``: with ``stop_when_flat``, training stops
    once the mean ESJD (in whitened units) of ``patience`` consecutive windows of
    ``stop_window`` iterations has not beaten the best earlier window by ``min_gain``
    (relative); the gradients per iteration are fixed, so this is ESJD per gradient.

    ``collapse_floor``, ``collapse_window``, ``max_backoffs``: a window of
    ``collapse_window`` iterations whose chains' mean acceptance is below
    ``collapse_floor``, or with most Adam steps skipped, or a non-finite loss, is a
    collapse, and training backs off (:class:`_CollapseGuard`), at most ``max_backoffs``
    times; ``collapse_floor=0`` turns this off.
    """

    train_steps: int = 5000
    batch_size: int = 200
    learning_rate: float = 1e-3
    lr_decay: float = 0.96
    lr_decay_steps: int = 1000
    loss_scale: float = 0.1
    burn_in_weight: float = 0.0
    fresh_draws: str = "standard"
    constant_forces: bool = False
    scaled_jump: bool = False
    start_temperature: float = 1.0
    temperature_decay: float = 0.999
    coordinate_loss: bool = True
    stop_when_flat: bool = True
    stop_window: int = 100
    patience: int = 3
    min_gain: float = 0.02
    collapse_floor: float = 0.1
    collapse_window: int = 50
    max_backoffs: int = 6

    def __post_init__(self):
        if self.fresh_draws not in FRESH_DRAWS:
            raise ValueError(f"fresh_draws must be one of {', '.join(map(repr, FRESH_DRAWS))}, "
                             f"got {self.fresh_draws!r}.")
        if self.scaled_jump and self.coordinate_loss:
            raise ValueError("scaled_jump=True rescales the paper's per-chain jump |y' - y|^2; the per-coordinate "
                             "loss (coordinate_loss=True, the default) already weighs each coordinate by its own "
                             "jump. Pass coordinate_loss=False with scaled_jump=True.")

    @property
    def anneal(self):
        return self.start_temperature > 1.0

    def graph_key(self):
        """What the compiled training step depends on."""
        return ("train", float(self.loss_scale), float(self.burn_in_weight), self.anneal,
                bool(self.constant_forces), bool(self.scaled_jump), bool(self.coordinate_loss))


def fresh_draws(z, chains_y):
    """The burn-in term's fresh batch from standard normal ``z`` ``(batch, dim)``:
    m + z L^T with m, L L^T the mean and covariance of the chains ``chains_y``
    ``(n, dim)`` (both in y), C + 1e-6 mean(diag C) I, or its diagonal if that is not
    positive definite.  So q follows the chains' spread and correlations: on a
    two-mode posterior it spans both modes, where N(0, I) in y spans the
    preconditioner's Gaussian approximation.  Not the default: when q is the target
    itself (any Gaussian posterior), the ESJD is maximised by reflecting each draw
    through the mean, and training learns that (2-d SCG: min bulk ESS of (x - mean)^2
    0.0008 per step against the paper's q's 0.4).
    """
    y = np.asarray(chains_y, dtype=float)
    if len(y) < 2:
        return np.asarray(z, dtype=floatX)
    cov = np.atleast_2d(np.cov(y, rowvar=False))
    cov += 1e-6 * max(float(np.mean(np.diag(cov))), 1e-12) * np.eye(y.shape[1])
    try:
        z = np.asarray(z) @ np.linalg.cholesky(cov).T
    except np.linalg.LinAlgError:
        z = np.asarray(z) * np.sqrt(np.diag(cov))
    return (y.mean(axis=0) + z).astype(floatX)


def skipped_steps_message(history):
    """What the skipped Adam steps of ``history`` were, in words ('' when none was skipped)."""
    skipped = history["applied"] == 0
    n_skipped = int(skipped.sum())
    if n_skipped == 0:
        return ""
    with_div = int(np.sum(skipped & (history["diverging"] > 0)))
    message = (f"{n_skipped} of {len(skipped)} training iterations had non-finite gradients and left "
               f"the parameters unchanged: {with_div} with diverging proposals, {n_skipped - with_div} "
               "with none (e.g. the target's curvature overflows where a chain stuck in the tails proposes)")
    replaced = history.get("replaced")
    if replaced is not None and np.sum(replaced) > 0:
        message += (f"; after {int(np.sum(replaced > 0))} of them, {int(np.sum(replaced))} stuck chains "
                    f"(diverging or log acceptance < {STUCK_LOG_ACCEPT:g}) were replaced by copies of "
                    "healthy ones")
    elif replaced is not None:
        message += "; no chain was replaced (none was stuck, or none was healthy to copy)"
    return message + "."


def empty_history(chains):
    """The history of a training that did not run (:mod:`.budget`): every per-iteration array
    empty, the chains ``chains`` (those of warm-up) and ``skipped`` True."""
    history = {key: np.zeros(0) for key in HISTORY_KEYS}
    history.update(seconds=0.0, chains=chains, frozen=0, stopped_early=False, backoffs=[], skipped=True)
    return history


def _finish(history, done, start, chains):
    for key in history:
        history[key] = history[key][:done]
    history["seconds"] = time.perf_counter() - start
    history["chains"] = chains
    return history


def run_training(sampler, step_fn, settings, rng, progressbar, chains=None, temperature=None):
    """The Python loop around ``step_fn``; returns a history dict of per-iteration arrays.

    ``chains`` ``(batch_size, dim)`` continues an earlier run (or a warm-up); default:
    draws from N(0, I) in the preconditioner's coordinates.  After a skipped Adam step
    the stuck chains are replaced (:func:`replace_stuck_chains`); ``history["replaced"]``
    counts them per iteration; ``history["failed"]`` counts the proposals whose evaluation raised
    (:func:`guarded_training_step`).  ``history["stopped_early"]`` says whether the ESJD had
    stopped improving before ``train_steps`` (``settings.stop_when_flat``), and
    ``history["interrupted"]`` whether Ctrl-C stopped it (then it is not cached).  At the end,
    chains that have not moved for :data:`FROZEN_WINDOW` iterations become copies of chains
    that have (``history["frozen"]`` counts them).
    """
    dim, n_iter, batch_size = sampler.dim, settings.train_steps, settings.batch_size
    learning_rate = sampler.learning_rate
    history = {key: np.full(n_iter, np.nan) for key in HISTORY_KEYS}
    if chains is not None and np.shape(chains) == (batch_size, dim):
        x = np.asarray(chains, dtype=floatX)
    else:
        x = rng.standard_normal((batch_size, dim)).astype(floatX)
        if sampler.preconditioner is not None:
            x = sampler.preconditioner.to_x_numpy(x).astype(floatX)
    lr0 = float(learning_rate.get_value())
    stop = FlatStop(settings) if settings.stop_when_flat else None
    guard = CollapseGuard(sampler, step_fn, settings, x) if settings.collapse_floor > 0 else None
    stopped_early = interrupted = False
    iterations = range(n_iter)
    bar = None
    if progressbar:
        from fastprogress.fastprogress import progress_bar

        iterations = bar = progress_bar(iterations)
    start = time.perf_counter()
    done = 0
    last_moved = np.zeros(batch_size)  # the iteration after which each chain last moved
    try:
        for i in iterations:
            x_before = x
            lr_factor = guard.lr_factor if guard is not None else 1.0
            learning_rate.set_value(np.asarray(lr0 * lr_factor * settings.lr_decay ** (i // settings.lr_decay_steps),
                                               dtype=floatX))
            temp = 1.0
            if temperature is not None:
                temp = max(1.0, settings.start_temperature * settings.temperature_decay ** i)
                temperature.set_value(np.asarray(temp, dtype=floatX))
            z = rng.standard_normal((batch_size, dim)).astype(floatX)
            if settings.burn_in_weight != 0 and settings.fresh_draws == "chains":
                z = fresh_draws(z, sampler.preconditioner.to_y_numpy(x) if sampler.preconditioner is not None else x)
            rows = getattr(step_fn, "proposals_per_chain", 2) * batch_size
            v = rng.standard_normal((rows, dim)).astype(floatX)
            d = rng.choice(np.array([-1.0, 1.0], dtype=floatX), size=rows)
            log_u = np.log(rng.uniform(size=batch_size)).astype(floatX)
            step_scale = sampler.draw_step_scale(rng, rows)
            inputs = (x, z, v, d, log_u, step_scale)
            out, inputs, failed = guarded_training_step(sampler, step_fn, inputs)
            # The dynamics' own acceptance and divergences: a masked retry's proposals of step
            # size 0 stay put and count as accepted, which would hide a collapse.
            accept, diverging = out.accept, out.diverging
            replaced = masked = 0
            if not out.applied and np.isfinite(out.loss):
                retry, masked = masked_retry(step_fn, inputs, out.log_accept, out.proposal_diverging)
                if retry is not None and retry.applied:
                    out = retry
                else:
                    masked = 0
            x, loss, esjd, applied = out.x, out.loss, out.esjd, out.applied
            if not applied and np.isfinite(loss):
                x, replaced = replace_stuck_chains(x, out.log_accept[:batch_size], out.proposal_diverging[:batch_size],
                                                   rng)
            last_moved[np.any(x != x_before, axis=1)] = i + 1
            row = dict(loss=loss, accept=accept, esjd=esjd, step_size=sampler.step_size,
                       temperature=temp, diverging=diverging, applied=applied, replaced=replaced, masked=masked,
                       failed=failed)
            for key, value in row.items():
                history[key][i] = value
            done = i + 1
            if guard is not None:
                x, reason = guard.update(i, x, loss, accept, applied)
                if reason and guard.exhausted:
                    raise TrainingError(
                        f"Training stopped at iteration {i} after {len(guard.events)} back-offs ({reason}). The "
                        "sampler keeps the parameters of the last healthy window. Try a smaller step_size or "
                        "learning_rate, or NUTS.")
                if reason and stop is not None:
                    stop = FlatStop(settings)  # the jump after a back-off starts a new comparison
            elif not np.isfinite(loss):
                raise TrainingError(
                    f"Training stopped at iteration {i}: the loss is not finite ({loss}). The sampler "
                    f"keeps the parameters of iteration {i - 1}. Try a smaller step_size or learning_rate."
                )
            if bar is not None and (i % 50 == 0 or i == n_iter - 1):
                bar.comment = f"loss {loss:.3g} accept {accept:.2f} ESJD {esjd:.3g} eps {sampler.step_size:.3g}"
            if stop is not None and temp == 1.0 and stop.update(float(esjd)) and done < n_iter:
                stopped_early = True
                break
    except KeyboardInterrupt:
        interrupted = True
        warnings.warn(f"Training interrupted after {done} of {n_iter} iterations; "
                      "the sampler keeps what it learned so far.")
    except TrainingError as err:
        err.history = _finish(history, done, start, x)
        err.history["backoffs"] = [] if guard is None else guard.events
        raise
    final = x if guard is None else guard.finish(done, x)
    frozen = 0
    if final is x and done >= FROZEN_WINDOW:  # (chains restored by the guard have no record here)
        final, frozen = replace_frozen(x, done - last_moved < FROZEN_WINDOW, rng)
    x = final
    _finish(history, done, start, x)
    history["frozen"] = frozen
    history["stopped_early"] = stopped_early
    history["interrupted"] = interrupted
    history["backoffs"] = [] if guard is None else guard.events
    message = skipped_steps_message(history)
    if message:
        warnings.warn(message)
    if history["backoffs"]:
        warnings.warn(backoff_message(history["backoffs"]))
    return history
