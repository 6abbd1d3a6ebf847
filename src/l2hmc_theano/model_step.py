"""``pm.sample``'s per-draw call: one MH step of chains that carry U and dU/dy, returning the next state
as the model's flat vectors (:class:`~.kernel.Step`'s ``model_x`` and ``log_jacobian``)."""
import numpy as np

from ._theano import floatX
from .checks import check_step_inputs
from .kernel import Step

__all__ = ["model_step_function"]


def model_step_function(sampler):
    """``pm.sample``'s per-draw call, for the networks as they stand (see
    :meth:`.L2HMCSampler.compiled_mh_step`): ``f(x, v, direction, log_u, step_scale, potential, grad)``, a
    step of chains that carry U and dU/dy at ``x`` (as :meth:`.L2HMCSampler.mh_step_carrying`: T energy
    evaluations per step), gives a :class:`~.kernel.Step` with the next state as the model's
    flat vectors ``model_x`` ``(batch, dim)``, log|det dx/du| ``(batch,)`` (for a model's
    energy) and dU/dy at the next state ``grad`` ``(batch, dim)``.

    ``f`` converts and checks its inputs, and the compiled function trusts them (Theano's
    own per-call checks of every input, shared variables included, cost about as much as a
    leapfrog step of a small model).  Compiles :meth:`.L2HMCSampler.start_state`'s function too, for the
    state a chain starts from.  With the networks' heads zero it is :meth:`.L2HMCSampler.hmc_kernel`'s step (NumPy
    around that same function: nothing more to compile)."""
    sampler.energy_grad_function()  # start_state's, for a chain's first draw
    if sampler.networks_are_zero():
        to_model = getattr(sampler.energy_target, "to_model_with_jacobian", None)
        if to_model is not None:  # compiles the non-centring's map, if any, now rather than at a draw
            to_model(np.zeros((1, sampler.dim), dtype=floatX))
        return sampler.hmc_kernel(model_values=True)
    fn = sampler.compiled_mh_step(model_values=True)
    fn.trust_input = True
    dim = sampler.dim

    def mh_step(x, v, direction, log_u, step_scale, potential, grad):
        args = [np.asarray(a, dtype=floatX) for a in (x, v, direction, log_u, step_scale, potential, grad)]
        check_step_inputs(args, dim, "mh_step_with_model_values")
        return Step.of_outputs(fn(*args), model_values=True, carry=True)

    return mh_step
