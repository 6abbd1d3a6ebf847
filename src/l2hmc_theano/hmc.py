"""Plain HMC's Metropolis-Hastings step, symbolic, with the number of leapfrog steps an input.

The L2HMC dynamics with zero auxiliary functions are HMC's leapfrog (the masks then only
split each position update in two halves that move disjoint coordinates by the same
x + eps v).  Written without the networks, masks and time encodings, one compiled function
of this step serves every use of plain HMC: warm-up's iterations, its trajectories of
t = 2..20 steps to choose T, and the draws of a sampler that kept HMC (``pm.sample``'s one
chain per call and :func:`l2hmc_theano.sample`'s batch), instead of one compile each.

For chains at y (whitened coordinates, ``(batch, dim)``) that carry U(y) ``(batch,)`` and
dU/dy ``(batch, dim)``, with momenta v, directions d = +1/-1 and step sizes eps ``(batch,)``:
w = d v runs T leapfrog steps

    w <- w - eps/2 dU(y);   y <- y + eps w;   w <- w - eps/2 dU(y)

and the proposal is (y_T, d w_T).  A chain with d = -1 thus runs the inverse map of the
d = +1 trajectory of its momentum (as the generalized leapfrog's backward direction does);
log|det J| = 0.  T gradients are evaluated in the scan and U once, at y_T.
"""
from collections import namedtuple

from ._theano import floatX, theano, tt
from .kernel import finite

__all__ = ["HMCStep", "hmc_step"]

HMCStep = namedtuple("HMCStep", "accept_prob accepted diverging energy energy_error potential grad y_proposal")


def leapfrog(energy, y, w, grad, step_size, n_steps):
    """``n_steps`` (symbolic int) leapfrog steps of HMC from ``y``, ``w``, ``grad`` ``(batch, dim)``
    with per-chain ``step_size`` ``(batch,)``: ``(y_T, w_T, dU/dy at y_T)``."""
    eps = tt.shape_padright(step_size)

    def step(y, w, grad, eps):
        w = w - 0.5 * eps * grad
        y = y + eps * w
        _, grad = energy.value_and_grad(y)
        return y, w - 0.5 * eps * grad, grad

    (ys, ws, grads), _ = theano.scan(step, outputs_info=[y, w, grad], non_sequences=[eps], n_steps=n_steps,
                                     strict=False, name="hmc_leapfrog")
    return ys[-1], ws[-1], grads[-1]


def hmc_step(energy, y, v, direction, log_u, step_size, n_steps, potential, grad):
    """One MH step of HMC for chains carrying their U and dU/dy (see the module docstring).

    ``energy`` takes y; ``y, v, grad`` ``(batch, dim)``; ``direction, log_u, step_size,
    potential`` ``(batch,)``; ``n_steps`` a symbolic int >= 1.  A non-finite proposal or
    acceptance ratio is a rejection and a divergence, as in :func:`l2hmc_theano.kernel.propose`.
    Returns an :class:`HMCStep`: at the next state (the proposal if accepted, else ``y``) its U
    ``potential``, dU/dy ``grad`` and H (``energy``); H(proposal) - H(start) (``energy_error``), the acceptance
    probability, ``accepted``, ``diverging`` and the proposal ``y_proposal`` (whether accepted or not).
    """
    sign = tt.shape_padright(tt.cast(direction, floatX))
    y1, w1, grad1 = leapfrog(energy, y, sign * v, grad, step_size, n_steps)
    potential1, _ = energy.value_and_grad(y1)
    kinetic0 = 0.5 * tt.sqr(v).sum(axis=1)
    kinetic1 = 0.5 * tt.sqr(w1).sum(axis=1)
    energy_error = potential1 + kinetic1 - (potential + kinetic0)
    ok = tt.and_(finite(energy_error), tt.all(finite(y1), axis=1))
    accept_prob = tt.switch(ok, tt.exp(tt.minimum(-tt.switch(ok, energy_error, 1.0), 0.0)), 0.0)
    accepted = tt.and_(ok, tt.lt(log_u, -energy_error))
    column = tt.shape_padright(accepted)
    return HMCStep(
        accept_prob=accept_prob,
        accepted=accepted,
        diverging=tt.invert(ok),
        energy=tt.switch(accepted, potential1 + kinetic1, potential + kinetic0),
        energy_error=energy_error,
        potential=tt.switch(accepted, potential1, potential),
        grad=tt.switch(column, grad1, grad),
        y_proposal=y1,
    )
