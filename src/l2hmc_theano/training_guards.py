"""What keeps a training run healthy: a step whose gradient is not finite taken again without its
stuck or diverging proposals, a proposal whose evaluation raises taken at step size 0, stuck chains
replaced, a collapse backed off to the last healthy parameters, and the stop once the ESJD is flat."""
from typing import Any, NamedTuple

import numpy as np

from ._theano import floatX
from .chain_guard import FAILURES, failing_rows

__all__ = ["TrainingError", "TrainingStepOutputs", "replace_stuck_chains", "masked_retry", "guarded_training_step",
           "FlatStop", "CollapseGuard", "backoff_message", "STUCK_LOG_ACCEPT"]


#: A chain whose proposal has log A below this (A < 2e-9) is stuck: it would wait
#: ~1e9 iterations to move, and it adds nothing to the loss's gradient but risk.
STUCK_LOG_ACCEPT = -20.0


class TrainingError(RuntimeError):
    """Training stopped; the sampler keeps the last parameters with a finite loss."""


class TrainingStepOutputs(NamedTuple):
    """One training iteration's outputs, in the order the compiled step (:func:`.training.build_training_step`)
    returns them."""

    x: Any                   # (batch, dim): the chains after their MH step
    loss: Any                # scalar: the loss the Adam step descended
    accept: Any              # scalar: the chains' mean acceptance probability
    esjd: Any                # scalar: the chains' mean squared jump (in y)
    diverging: Any           # int: the chains' proposals that diverged
    applied: Any             # bool: the Adam step was taken (loss and gradient finite)
    log_accept: Any          # (proposals,): every proposal's log acceptance ratio (chains', then fresh)
    proposal_diverging: Any  # (proposals,) bool: every proposal's divergence


def replace_stuck_chains(x, log_accept, diverging, rng, threshold=STUCK_LOG_ACCEPT):
    """Chains ``x`` ``(B, dim)`` with each stuck one (``diverging`` or ``log_accept <
    threshold``, both ``(B,)``) replaced by a copy of a healthy chain drawn uniformly
    from ``rng``; returns (new chains, number replaced).  Unchanged when no chain is
    healthy or none is stuck (then ``rng`` is not used)."""
    stuck = np.asarray(diverging, dtype=bool) | ~(np.asarray(log_accept) >= threshold)
    healthy = np.flatnonzero(~stuck)
    if not stuck.any() or healthy.size == 0:
        return x, 0
    x = np.array(x, copy=True)
    x[stuck] = x[rng.choice(healthy, size=int(stuck.sum()))]
    return x, int(stuck.sum())


class FlatStop:
    """Tells when the windowed mean ESJD has stopped improving (see :class:`.training.TrainingSettings`)."""

    def __init__(self, settings):
        self.settings = settings
        self.window = []
        self.best = -np.inf
        self.flat_windows = 0

    def update(self, esjd):
        """Take one iteration's ESJD; True when training should stop."""
        s = self.settings
        self.window.append(esjd)
        if len(self.window) < s.stop_window:
            return False
        mean = float(np.mean(self.window))
        self.window = []
        if mean > self.best * (1.0 + s.min_gain):
            self.best, self.flat_windows = mean, 0
        else:
            self.best = max(self.best, mean)
            self.flat_windows += 1
        return self.flat_windows >= s.patience


class CollapseGuard:
    """Backs training off when it collapses (see :class:`.training.TrainingSettings`).

    At the end of every healthy window it keeps a copy of the parameters, log eps and the
    chains.  On a collapse it puts those back, halves the step size and the learning rate
    (``lr_factor``) and restarts Adam's moments, and records the event.
    """

    def __init__(self, sampler, step_fn, settings, x):
        self.sampler, self.step_fn, self.settings = sampler, step_fn, settings
        self.lr_factor = 1.0
        self.events = []
        self.accepts, self.applied = [], []
        self._keep(x)

    def _keep(self, x):
        self.good = ([p.get_value() for p in self.sampler.networks.params], self.sampler.log_step_size.get_value(),
                     np.array(x, copy=True))

    @property
    def exhausted(self):
        return len(self.events) >= self.settings.max_backoffs

    def update(self, i, x, loss, accept, applied):
        """Take iteration ``i``'s outcome; returns the chains to continue from (the kept
        ones after a back-off) and the reason of a back-off ('' when none)."""
        s = self.settings
        reason = ""
        if not np.isfinite(loss):
            reason = f"the loss was not finite ({loss})"
        else:
            self.accepts.append(accept)
            self.applied.append(applied)
            if len(self.accepts) < s.collapse_window:
                return x, ""
            mean_accept, share_applied = float(np.mean(self.accepts)), float(np.mean(self.applied))
            self.accepts, self.applied = [], []
            if mean_accept < s.collapse_floor:
                reason = f"mean acceptance {mean_accept:.3f} over {s.collapse_window} iterations"
            elif share_applied < 0.5:
                reason = f"{100 * (1 - share_applied):.0f}% of {s.collapse_window} training steps skipped"
            else:
                self._keep(x)
                return x, ""
        return self._back_off(i, reason), reason

    def finish(self, i, x):
        """At the end of training: if the last (partial) window has collapsed, go back to the
        last healthy parameters and chains (without halving anything); returns the chains."""
        judged = len(self.accepts) >= min(10, self.settings.collapse_window)
        if judged and float(np.mean(self.accepts)) < self.settings.collapse_floor:
            return self._restore(i, f"mean acceptance {np.mean(self.accepts):.3f} over the last "
                                    f"{len(self.accepts)} iterations", self.good[1])
        return x

    def _back_off(self, i, reason):
        for var in getattr(self.step_fn, "optimizer_state", []):
            var.set_value(np.zeros_like(var.get_value()))
        self.lr_factor *= 0.5
        self.accepts, self.applied = [], []
        return self._restore(i, reason, np.asarray(self.good[1] - np.log(2.0), dtype=floatX))

    def _restore(self, i, reason, log_eps):
        """The kept parameters and chains back, with step size exp(``log_eps``) (kept from
        now on); the event recorded.  Returns a copy of the kept chains."""
        params, _, x = self.good
        for p, value in zip(self.sampler.networks.params, params):
            p.set_value(value)
        self.sampler.log_step_size.set_value(log_eps)
        self.good = (params, log_eps, x)
        self.events.append({"iteration": i, "reason": reason, "step_size": float(np.exp(log_eps)),
                            "learning_rate_factor": self.lr_factor})
        return np.array(x, copy=True)


def masked_retry(step_fn, inputs, log_accept, diverging, threshold=STUCK_LOG_ACCEPT):
    """Re-run a training step whose gradient was not finite with the step size of every
    diverging or stuck proposal (log A < ``threshold``) set to 0: those proposals stay
    where they start (a finite trajectory, jump 0), so they drop out of the loss while
    the rest of the batch trains.  Returns ``(outputs, number masked)``, or
    ``(None, 0)`` when nothing or everything is stuck."""
    bad = np.asarray(diverging, dtype=bool) | ~(np.asarray(log_accept) >= threshold)
    if not bad.any() or bad.all():
        return None, 0
    x, z, v, d, log_u, step_scale = inputs
    return TrainingStepOutputs._make(step_fn(x, z, v, d, log_u, np.where(bad, 0.0, step_scale).astype(floatX))), \
        int(bad.sum())


def guarded_training_step(sampler, step_fn, inputs):
    """``step_fn(*inputs)``; when that raises for the batch, the proposals whose trajectory raises
    (found by bisection with the sampler's MH step, which makes the same trajectories:
    :func:`~l2hmc_theano.chain_guard.failing_rows`) are taken again with step size 0, counted as
    diverging and rejected, and the rest of the batch trains.  Returns ``(outputs, inputs,
    number failed)``: the inputs as used; the first error is raised when no proposal alone
    raises, or the step still raises with those proposals' step size 0."""
    try:
        return TrainingStepOutputs._make(step_fn(*inputs)), inputs, 0
    except FAILURES as error:
        first = error
    x, z, v, d, log_u, step_scale = inputs
    n = len(x)
    starts = x
    if len(v) > n:  # the burn-in term's fresh batch, drawn in y
        fresh = z if sampler.preconditioner is None else sampler.preconditioner.to_x_numpy(z).astype(floatX)
        starts = np.concatenate([x, fresh])
    mh_step = sampler.compiled_mh_step(networks=True)
    no_accept = np.full(len(v), -np.inf, dtype=floatX)  # acceptance does not matter here
    args = [starts, v, d, no_accept, step_scale]
    failed = failing_rows(lambda rows: mh_step(*[a[rows] for a in args]), len(v))
    if not failed.any():
        raise first
    inputs = (x, z, v, d, log_u, np.where(failed, 0.0, step_scale).astype(floatX))
    try:
        out = TrainingStepOutputs._make(step_fn(*inputs))
    except FAILURES:
        raise first from None
    log_accept = np.where(failed, -np.inf, out.log_accept).astype(np.asarray(out.log_accept).dtype)
    diverging = np.asarray(out.proposal_diverging, dtype=bool) | failed
    with np.errstate(invalid="ignore"):
        accept = np.where(diverging[:n] | ~np.isfinite(log_accept[:n]), 0.0, np.exp(np.minimum(log_accept[:n], 0.0)))
    out = out._replace(x=np.where(failed[:n, None], x, out.x), log_accept=log_accept, proposal_diverging=diverging,
                       diverging=int(np.sum(diverging[:n])), accept=float(np.mean(accept)))
    return out, inputs, int(failed.sum())


def backoff_message(events):
    """The back-offs of a training run (``history["backoffs"]``), in words."""
    return (f"Training collapsed and backed off {len(events)} time(s), each time to the last healthy "
            "parameters: " + "; ".join(
                f"at iteration {e['iteration']} ({e['reason']}): step size {e['step_size']:.3g}, "
                f"learning rate x{e['learning_rate_factor']:g}" for e in events) + ".")
