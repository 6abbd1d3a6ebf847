"""The symbolic graphs a sampler compiles (:class:`.compile_cache.CompiledFunctions`): the energy,
its gradient, the T-step map and the MH step with the statistics a PyMC3 step reports.

Each ``build_*`` returns ``(inputs, outputs)`` for ``theano.function``; positions x are
``(batch, dim)`` in the target's sampling coordinates, the dynamics run in the preconditioner's y
(:meth:`.L2HMCSampler.propose`)."""
import weakref

from ._theano import Scan, change_flags, floatX, theano, tt
from .kernel import metropolis_hastings
from .networks import ZeroFunctions

__all__ = ["build_energy", "build_energy_grad", "build_transition", "build_mh_step", "compiled_mh_step",
           "energy_loops", "UNROLL_MAX_STEPS", "UNROLLED_OPT_EXCLUDE"]

# pm.sample's step (one chain per call) writes T <= this many leapfrog steps out instead of scanning
# them: Scan's Python loop costs a call per step there (benchmarks/step_cost.py).  Their compile
# leaves out local_fill_sink: it pushes the gradient's fills through every later elementwise op,
# and with the networks' heads zero (all of the trajectory elementwise) its time grows steeply with T.
UNROLL_MAX_STEPS = 6
UNROLLED_OPT_EXCLUDE = ("local_fill_sink",)


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


def compiled_mh_step(sampler, model_values=False, networks=None, carry=False):
    """``sampler``'s compiled MH step (:func:`build_mh_step`) for its networks as they stand: of
    :meth:`.L2HMCSampler.mh_step_with_stats`, of :meth:`.L2HMCSampler.mh_step_carrying` (``carry``)
    or of :meth:`.L2HMCSampler.model_step_function` (``model_values``, which always carries).

    When their heads are zero the step is compiled without them (HMC's leapfrog: the same
    numbers, without evaluating networks whose output is 0); ``networks=True`` keeps them
    regardless.  A later change of the heads needs a new call.  ``model_values`` (pm.sample's
    one-chain step) writes out T <= ``UNROLL_MAX_STEPS`` leapfrog steps instead of a scan, and
    compiles in :meth:`.L2HMCSampler.sampling_parameters` as constants (folded: ~20 % off the call at
    T = 3 on eight schools), so it is compiled again once training, warm-up or a load changes them."""
    hmc = sampler.networks_are_zero() if networks is None else not networks
    carry = carry or model_values
    unroll = model_values and sampler.n_steps <= UNROLL_MAX_STEPS and not energy_loops(sampler.energy_target)
    key = ("mh_step_model" if model_values else "mh_step_carry" if carry else "mh_step_stats") + ("_hmc" if hmc else "")
    return sampler.functions.get_or_compile(
        key, lambda: build_mh_step(sampler, model_values, hmc=hmc, unroll=unroll, carry=carry),
        exclude=UNROLLED_OPT_EXCLUDE if unroll else (),
        frozen=sampler.sampling_parameters() if model_values else ())


_LOOPS = weakref.WeakKeyDictionary()  # energy -> energy_loops(energy), found once per energy


def energy_loops(energy):
    """Whether ``energy``'s batched value and gradient hold a loop (a Scan: e.g. a Cholesky, which
    the vectoriser maps over rows).  Written out T times, such a step compiles a loop per energy
    evaluation, several times longer than the scanned step, so it stays scanned.  Found once per
    energy."""
    if energy not in _LOOPS:
        with change_flags(compute_test_value="off"):
            U, dU = energy.value_and_grad(tt.matrix("x", dtype=floatX))
        nodes = theano.graph.basic.io_toposort(theano.graph.basic.graph_inputs([U, dU]), [U, dU])
        _LOOPS[energy] = any(isinstance(node.op, Scan) for node in nodes)
    return _LOOPS[energy]
