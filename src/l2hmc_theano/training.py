"""Training: one compiled Theano function per iteration = one MH step of every
chain + one Adam step of the networks and log eps on the ESJD loss.

The chains (``batch_size`` of them) persist across iterations and start from
q = N(0, I); every iteration also draws a fresh batch from q for the burn-in
term of the loss.  All randomness comes from one ``numpy.random.Generator``.

One chain stuck far in the tails (acceptance exactly 0) can make the batch
gradient NaN although its own cotangent is 0: the target's curvature at its
proposal overflows (e.g. inf/inf in d2U for a log-scale near 190), and
0 * NaN = NaN.  Such a step is skipped, and so would every later one be, since a
stuck chain does not move; so after a skipped step the stuck chains (diverged, or
log A < ``STUCK_LOG_ACCEPT``) are replaced by copies of healthy ones.
"""
import time
import warnings

import numpy as np

from ._theano import change_flags, floatX, theano, tt
from .energy import Energy
from .kernel import metropolis_hastings, propose
from .loss import esjd_loss, squared_jump

__all__ = ["TrainingError", "build_training_step", "run_training", "replace_stuck_chains", "TemperedEnergy",
           "ConstantForces"]


#: Graph optimisations left out when compiling the training step.  Scan's in-place
#: pass and its first push-out pass cost most of the compile time of the
#: gradient-through-scan graph and buy no run time here (measured in README.rst;
#: benchmarks/training_speed.py --exclude compares).
TRAIN_OPT_EXCLUDE = ("scanOp_make_inplace", "scan_eqopt1")

#: A chain whose proposal has log A below this (A < 2e-9) is stuck: it would wait
#: ~1e9 iterations to move, and it adds nothing to the loss's gradient but risk.
STUCK_LOG_ACCEPT = -20.0


class TrainingError(RuntimeError):
    """Training stopped; the sampler keeps the last parameters with a finite loss."""


class ConstantForces(Energy):
    """The same U and dU, but dU is a constant to ``tt.grad``: the loss's gradient does not
    follow how the forces change along the trajectory.

    For rough energies (d force / dx ~ 1/eta for the rough well) the exact gradient
    through T leapfrog steps is dominated by that chaotic term and training drifts;
    this biased gradient keeps the networks' direct effect on the jump and acceptance.
    """

    def __init__(self, energy):
        self.energy = energy
        self.dim = energy.dim

    def value_and_grad(self, X):
        U, dU = self.energy.value_and_grad(X)
        return U, theano.gradient.disconnected_grad(dU)


class TemperedEnergy(Energy):
    """U / temperature, with ``temperature`` a Theano shared scalar (for annealing)."""

    def __init__(self, energy, temperature):
        self.energy = energy
        self.temperature = temperature
        self.dim = energy.dim

    def value_and_grad(self, X):
        U, dU = self.energy.value_and_grad(X)
        return U / self.temperature, dU / self.temperature


def _all_finite(tensors):
    flags = [tt.all(tt.invert(tt.or_(tt.isnan(t), tt.isinf(t)))) for t in tensors]
    return tt.all(tt.stack(flags))


def jump_units(x, floor=1e-12):
    """Per-coordinate units for the scaled jump, ``(dim,)``: the chains' standard deviation
    over the batch ``x`` ``(B, dim)``, floored at ``floor`` x their mean variance, and a
    constant to ``tt.grad``."""
    var = x.var(axis=0)
    return theano.gradient.disconnected_grad(tt.sqrt(var + floor * var.mean() + 1e-30))


def build_training_step(sampler, learning_rate, temperature, loss_scale, burn_in_weight,
                        constant_forces=False, scaled_jump=False, exclude=TRAIN_OPT_EXCLUDE):
    """Compile the training iteration.

    Inputs: chains ``x`` ``(B, dim)``, fresh ``z ~ q`` ``(B, dim)``, momenta ``v``
    ``(2B, dim)``, directions ``d`` ``(2B,)``, ``log_u`` ``(B,)`` (chains first, then z).
    With ``burn_in_weight == 0`` the fresh batch is left out: ``z`` is ignored and
    ``v``, ``d`` have ``B`` rows (the function's ``proposals_per_chain`` says 1 or 2).
    With ``scaled_jump`` the loss measures each chain's jump in the units of
    :func:`jump_units` of the chains (the reported ESJD stays in the target's units).
    Outputs: next chains ``(B, dim)``, loss, mean acceptance, mean ESJD, number of
    diverging proposals, whether the Adam step was applied (all gradients finite),
    and per chain ``(B,)``: log A of its proposal and whether it diverged.
    Parameters only change when the loss and every gradient are finite.
    """
    from pymc3.variational.updates import adam

    params = list(sampler.networks.params) + [sampler.log_step_size]
    energy = sampler.energy_target if temperature is None else TemperedEnergy(sampler.energy_target, temperature)
    if constant_forces:
        energy = ConstantForces(energy)
    with_fresh = burn_in_weight != 0
    with change_flags(compute_test_value="off"):
        x = tt.matrix("chains", dtype=floatX)
        z = tt.matrix("fresh", dtype=floatX)
        v = tt.matrix("v", dtype=floatX)
        d = tt.vector("direction", dtype=floatX)
        log_u = tt.vector("log_u", dtype=floatX)
        n = x.shape[0]
        both = tt.concatenate([x, z], axis=0) if with_fresh else x
        p = propose(energy, sampler.networks, both, v, d, tt.exp(sampler.log_step_size),
                    sampler.taus, sampler.masks)
        jump = squared_jump(p, both)
        loss_jump = squared_jump(p, both, jump_units(x)) if scaled_jump else jump
        per_chain = esjd_loss(loss_jump, scale=loss_scale)
        loss = per_chain[:n].mean()
        if with_fresh:
            loss += burn_in_weight * per_chain[n:].mean()
        chains_p = p._replace(**{k: getattr(p, k)[:n] for k in p._fields})
        x_next, _ = metropolis_hastings(chains_p, x, log_u)

        grads = tt.grad(loss, params)
        ok = tt.and_(_all_finite([loss]), _all_finite(grads))
        updates = adam(grads, params, learning_rate=learning_rate)
        guarded = [(var, tt.switch(ok, new, var)) for var, new in updates.items()]
        outputs = [x_next, loss, p.accept_prob[:n].mean(), jump[:n].mean(), p.diverging[:n].sum(), ok,
                   p.log_accept[:n], p.diverging[:n]]
        fn = theano.function([x, z, v, d, log_u], outputs, updates=guarded, name="l2hmc_train_step",
                             mode=theano.compile.mode.get_default_mode().excluding(*exclude),
                             on_unused_input="ignore")
    fn.proposals_per_chain = 2 if with_fresh else 1
    return fn


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


def _finish(history, done, start, chains):
    for key in history:
        history[key] = history[key][:done]
    history["seconds"] = time.perf_counter() - start
    history["chains"] = chains
    return history


def run_training(sampler, step_fn, n_iter, batch_size, rng, learning_rate, lr_decay, lr_decay_steps,
                 temperature, start_temperature, temperature_decay, progressbar, chains=None):
    """The Python loop around ``step_fn``; returns a history dict of per-iteration arrays.

    ``chains`` ``(batch_size, dim)`` continues an earlier run; default: draws from N(0, I).
    After a skipped Adam step the stuck chains are replaced (:func:`replace_stuck_chains`);
    ``history["replaced"]`` counts them per iteration.
    """
    dim = sampler.dim
    history = {key: np.full(n_iter, np.nan) for key in
               ("loss", "accept", "esjd", "step_size", "temperature", "diverging", "applied", "replaced")}
    if chains is not None and np.shape(chains) == (batch_size, dim):
        x = np.asarray(chains, dtype=floatX)
    else:
        x = rng.standard_normal((batch_size, dim)).astype(floatX)
    lr0 = float(learning_rate.get_value())
    iterations = range(n_iter)
    bar = None
    if progressbar:
        from fastprogress.fastprogress import progress_bar

        iterations = bar = progress_bar(iterations)
    start = time.perf_counter()
    done = 0
    try:
        for i in iterations:
            learning_rate.set_value(np.asarray(lr0 * lr_decay ** (i // lr_decay_steps), dtype=floatX))
            temp = 1.0
            if temperature is not None:
                temp = max(1.0, start_temperature * temperature_decay ** i)
                temperature.set_value(np.asarray(temp, dtype=floatX))
            z = rng.standard_normal((batch_size, dim)).astype(floatX)
            rows = getattr(step_fn, "proposals_per_chain", 2) * batch_size
            v = rng.standard_normal((rows, dim)).astype(floatX)
            d = rng.choice(np.array([-1.0, 1.0], dtype=floatX), size=rows)
            log_u = np.log(rng.uniform(size=batch_size)).astype(floatX)
            x, loss, accept, esjd, diverging, applied, log_accept, chain_diverging = step_fn(x, z, v, d, log_u)
            replaced = 0
            if not applied and np.isfinite(loss):
                x, replaced = replace_stuck_chains(x, log_accept, chain_diverging, rng)
            row = dict(loss=loss, accept=accept, esjd=esjd, step_size=sampler.step_size,
                       temperature=temp, diverging=diverging, applied=applied, replaced=replaced)
            for key, value in row.items():
                history[key][i] = value
            done = i + 1
            if not np.isfinite(loss):
                raise TrainingError(
                    f"Training stopped at iteration {i}: the loss is not finite ({loss}). The sampler "
                    f"keeps the parameters of iteration {i - 1}. Try a smaller step_size or learning_rate."
                )
            if bar is not None and (i % 50 == 0 or i == n_iter - 1):
                bar.comment = f"loss {loss:.3g} accept {accept:.2f} ESJD {esjd:.3g} eps {sampler.step_size:.3g}"
    except KeyboardInterrupt:
        warnings.warn(f"Training interrupted after {done} of {n_iter} iterations; "
                      "the sampler keeps what it learned so far.")
    except TrainingError as err:
        err.history = _finish(history, done, start, x)
        raise
    _finish(history, done, start, x)
    message = skipped_steps_message(history)
    if message:
        warnings.warn(message)
    return history
