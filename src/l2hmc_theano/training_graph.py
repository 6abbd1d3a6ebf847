"""The training step's graph: one MH step of every chain and one Adam step of the networks and
log eps on the ESJD loss (paper Eq. 7-8), differentiated through the generalized leapfrog, compiled
as one Theano function (:func:`build_training_step`; the loop around it is :mod:`.training`)."""
from ._theano import BACKEND, change_flags, compile_fixes, floatX, theano, tt
from .energy import Energy
from .kernel import metropolis_hastings, propose
from .loss import coordinate_esjd_loss, esjd_loss, squared_jump

if BACKEND == "theano":  # Lasagne's update rules, as PyMC ships them
    from ._pymc3 import adam
else:
    from ._pymc import adam

__all__ = ["build_training_step", "TrainingStep", "ConstantForces", "TemperedEnergy", "jump_units",
           "TRAIN_OPT_EXCLUDE"]


#: Graph optimisations left out when compiling the training step.  Scan's in-place
#: pass and its push-out passes cost much of the compile time of the
#: gradient-through-scan graph and buy no run time here (benchmarks/training_speed.py
#: --exclude compares); scan_eqopt2 removes a few nodes and merges nothing.  scanOp_save_mem
#: must stay (without it an iteration is much slower).  Only the outer graph sees this mode: Scan compiles its
#: inner graphs with the default one.
TRAIN_OPT_EXCLUDE = ("scanOp_make_inplace", "scan_eqopt1", "scan_eqopt2")


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


def _rows(proposal, rows):
    """The :class:`~l2hmc_theano.kernel.Proposal` of the chains ``rows`` (a slice) only."""
    return proposal._replace(**{k: getattr(proposal, k)[rows] for k in proposal._fields})


def build_training_step(sampler, settings, temperature=None, exclude=TRAIN_OPT_EXCLUDE):
    """Compile the training iteration for ``settings`` (:class:`.training.TrainingSettings`).

    The dynamics, the networks and the loss run in the preconditioner's coordinates y
    (the chains come in and go out in x).  Inputs: chains ``x`` ``(B, dim)``, fresh
    ``z ~ N(0, I)`` in y ``(B, dim)``, momenta ``v`` ``(2B, dim)``, directions ``d``
    ``(2B,)``, ``log_u`` ``(B,)``, per-proposal step-size factors ``step_scale`` ``(2B,)``
    (chains first, then z).  With ``burn_in_weight == 0``
    the fresh batch is left out: ``z`` is ignored and ``v``, ``d`` have ``B`` rows (the
    returned :class:`TrainingStep`'s ``proposals_per_chain`` says 1 or 2).  With ``scaled_jump`` the loss
    measures each chain's jump in the units of :func:`jump_units` of the chains.  The
    ``temperature`` (a shared scalar, with annealing) divides the energy.
    Outputs: next chains ``(B, dim)``, loss, mean acceptance, mean ESJD (in y), number
    of diverging proposals, whether the Adam step was applied (all gradients finite),
    and per proposal (``(2B,)`` or ``(B,)``, chains first): log A and whether it diverged.
    Parameters only change when the loss and every gradient are finite.
    """
    params = list(sampler.networks.params) + [sampler.log_step_size]
    energy = sampler.energy_target if temperature is None else TemperedEnergy(sampler.energy_target, temperature)
    if settings.constant_forces:
        energy = ConstantForces(energy)
    precond = sampler.preconditioner
    with_fresh = settings.burn_in_weight != 0
    with change_flags(compute_test_value="off"), compile_fixes():
        x = tt.matrix("chains", dtype=floatX)
        z = tt.matrix("fresh", dtype=floatX)
        v = tt.matrix("v", dtype=floatX)
        d = tt.vector("direction", dtype=floatX)
        log_u = tt.vector("log_u", dtype=floatX)
        step_scale = tt.vector("step_scale", dtype=floatX)
        n = x.shape[0]
        y = x if precond is None else precond.to_y(x)
        both = tt.concatenate([y, z], axis=0) if with_fresh else y
        eps = tt.exp(sampler.log_step_size) * tt.shape_padright(step_scale)
        p = propose(sampler.whitened(energy), sampler.networks, both, v, d, eps, sampler.taus, sampler.masks)
        jump = squared_jump(p, both)
        chains_p = _rows(p, slice(None, n))
        if settings.coordinate_loss:
            loss = coordinate_esjd_loss(chains_p, y, scale=settings.loss_scale)
            if with_fresh:
                loss += settings.burn_in_weight * coordinate_esjd_loss(_rows(p, slice(n, None)), z,
                                                                       scale=settings.loss_scale)
        else:
            loss_jump = squared_jump(p, both, jump_units(y)) if settings.scaled_jump else jump
            per_chain = esjd_loss(loss_jump, scale=settings.loss_scale)
            loss = per_chain[:n].mean()
            if with_fresh:
                loss += settings.burn_in_weight * per_chain[n:].mean()
        if precond is not None:
            chains_p = chains_p._replace(x=precond.to_x(chains_p.x))
        x_next, _ = metropolis_hastings(chains_p, x, log_u)

        grads = tt.grad(loss, params)
        ok = tt.and_(_all_finite([loss]), _all_finite(grads))
        updates = adam(grads, params, learning_rate=sampler.learning_rate)
        guarded = [(var, tt.switch(ok, new, var)) for var, new in updates.items()]
        outputs = [x_next, loss, p.accept_prob[:n].mean(), jump[:n].mean(), p.diverging[:n].sum(), ok,
                   p.log_accept, p.diverging]
        fn = theano.function([x, z, v, d, log_u, step_scale], outputs, updates=guarded, name="l2hmc_train_step",
                             mode=theano.compile.mode.get_default_mode().excluding(*exclude),
                             on_unused_input="ignore")
    return TrainingStep(fn, 2 if with_fresh else 1, [var for var in updates if not any(var is p for p in params)])


class TrainingStep:
    """The compiled training iteration, called as the function it holds (``fn``); its
    ``proposals_per_chain`` (1, or 2 with the fresh batch) and ``optimizer_state`` (the shared
    variables of Adam's moments and step count)."""

    def __init__(self, fn, proposals_per_chain, optimizer_state):
        self.fn, self.proposals_per_chain, self.optimizer_state = fn, proposals_per_chain, optimizer_state

    def __call__(self, *inputs):
        return self.fn(*inputs)
