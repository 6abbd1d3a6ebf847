"""The symbolic graphs a sampler compiles (:class:`.compile_cache.CompiledFunctions`): the energy,
its gradient, the T-step map and the MH step with the statistics a PyMC3 step reports.

Each ``build_*`` returns ``(inputs, outputs)`` for ``theano.function``; positions x are
``(batch, dim)`` in the target's sampling coordinates, the dynamics run in the preconditioner's y
(:meth:`.L2HMCSampler.propose`)."""
from ._theano import Scan, change_flags, floatX, theano, tt
from .kernel import metropolis_hastings
from .networks import ZeroFunctions

__all__ = ["build_energy", "build_energy_grad", "build_transition", "build_mh_step", "energy_loops"]


def _inputs():
    return tt.matrix("x", dtype=floatX), tt.matrix("v", dtype=floatX), tt.vector("direction", dtype=floatX)


def build_energy(energy):
    """x ``(batch, dim)`` -> U ``(batch,)``."""
    x = tt.matrix("x", dtype=floatX)
    U, _ = energy.value_and_grad(x)
    return [x], U


def build_energy_grad(energy):
    """x ``(batch, dim)`` -> U ``(batch,)``, dU/dx ``(batch, dim)``."""
    x = tt.matrix("x", dtype=floatX)
    U, dU = energy.value_and_grad(x)
    return [x], [U, dU]


def build_transition(sampler):
    """(x, v, direction) -> the T-step map FL(x, v, d) without MH: x', v' ``(batch, dim)``, log|det J|
    ``(batch,)``."""
    x, v, d = _inputs()
    p = sampler.propose(x, v, d)
    return [x, v, d], [p.x, p.v, p.logdet]


def build_mh_step(sampler, model_values=False, hmc=False, unroll=False, carry=False):
    """One MH step with everything a PyMC3 step method reports, in the order of
    :class:`~.kernel.Step`'s fields (``model_values``: and the next state as the model's flat
    vector, with log|det dx/du|).  ``hmc``: with zero auxiliary functions (HMC's leapfrog);
    ``unroll``: the leapfrog steps written out; ``carry``: U ``(batch,)`` and dU/dy ``(batch, dim)``
    at x are two more inputs, and dU/dy at the next state one more output (U there is one already)."""
    x, v, d = _inputs()
    log_u = tt.vector("log_u", dtype=floatX)
    step_scale = tt.vector("step_scale", dtype=floatX)
    inputs, start = [x, v, d, log_u, step_scale], None
    if carry:
        start = (tt.vector("potential", dtype=floatX), tt.matrix("grad", dtype=floatX))
        inputs += list(start)
    p = sampler.propose(x, v, d, networks=ZeroFunctions() if hmc else None, step_scale=step_scale, unroll=unroll,
                        start=start)
    x_next, accepted = metropolis_hastings(p, x, log_u)
    potential_next = tt.switch(accepted, p.potential_end, p.potential_start)
    energy_next = tt.switch(accepted, p.energy_end, p.energy_start)
    outputs = [x_next, p.accept_prob, accepted, p.diverging, energy_next,
               p.energy_end - p.energy_start, p.logdet, potential_next]
    if model_values:
        outputs += list(sampler.energy_target.to_model_graph(x_next))
    if carry:
        outputs.append(tt.switch(tt.shape_padright(accepted), p.grad_end, start[1]))
    return inputs, outputs


def energy_loops(energy):
    """Whether ``energy``'s batched value and gradient hold a loop (a Scan: e.g. a Cholesky, which
    the vectoriser maps over rows).  Written out T times, such a step compiles a loop per energy
    evaluation, several times longer than the scanned step, so it stays scanned."""
    with change_flags(compute_test_value="off"):
        U, dU = energy.value_and_grad(tt.matrix("x", dtype=floatX))
    nodes = theano.graph.basic.io_toposort(theano.graph.basic.graph_inputs([U, dU]), [U, dU])
    return any(isinstance(node.op, Scan) for node in nodes)
