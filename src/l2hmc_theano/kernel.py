"""The L2HMC Metropolis-Hastings kernel, symbolic: state in, state and info out.

Given positions ``x`` ``(batch, dim)``, fresh momenta ``v ~ N(0, I)`` and
directions ``d`` (+1/-1 per chain), propose (x', v') = FL(x, v, d) and accept with

    A = min(1, exp(H(x, v) - H(x', v') + log|det J|)),   H = U(x) + |v|^2 / 2.

A non-finite log acceptance ratio (or a non-finite proposal) is a rejection
(A = 0) and counts as a divergence.  The uniform draws that decide acceptance
come in as ``log_u`` so that all randomness is drawn, reproducibly, outside.
"""
from collections import namedtuple
from typing import Any, NamedTuple

import numpy as np

from ._theano import floatX, tt
from .dynamics import generalized_leapfrog

__all__ = ["Proposal", "Step", "propose", "metropolis_hastings", "finite", "TRANSITION_STATS"]

#: What ``pm.sample``'s step and ``l2hmc_theano.sample`` report of each transition, with dtypes: the
#: acceptance probability A, whether accepted, whether diverging, H at the next state, H(proposal) -
#: H(start), the step size used, log|det J| and the direction d.
TRANSITION_STATS = {"accept": np.float64, "accepted": bool, "diverging": bool, "energy": np.float64,
                    "energy_error": np.float64, "step_size": np.float64, "log_jacobian": np.float64,
                    "direction": np.int64}

Proposal = namedtuple(
    "Proposal",
    "x v logdet potential_start potential_end energy_start energy_end grad_end log_accept accept_prob diverging",
)


class Step(NamedTuple):
    """One MH step of a batch of B chains, as arrays, by name (what every step the sampler
    compiles, and its HMC kernel, return).

    ``x`` ``(B, dim)`` the next state; ``accept_prob`` ``(B,)`` A; ``accepted``, ``diverging``
    ``(B,)`` bool; ``energy`` ``(B,)`` H at the next state; ``energy_error`` ``(B,)``
    H(proposal) - H(start); ``logdet`` ``(B,)`` log|det J| of the proposal (0 for HMC);
    ``potential`` ``(B,)`` U at the next state; ``grad`` ``(B, dim)`` dU/dy there (None from a
    step that does not carry it); ``model_x`` ``(B, dim)`` and ``log_jacobian`` ``(B,)`` the next
    state as the model's flat vector and log|det dx/du| (None without them); ``y_proposal``
    ``(B, dim)`` the proposal in the preconditioner's coordinates (the HMC kernel's; else None)."""
    x: Any
    accept_prob: Any
    accepted: Any
    diverging: Any
    energy: Any
    energy_error: Any
    logdet: Any
    potential: Any
    grad: Any = None
    model_x: Any = None
    log_jacobian: Any = None
    y_proposal: Any = None

    @classmethod
    def of_outputs(cls, outputs, model_values=False, carry=False):
        """From a compiled step's outputs, in the order its graph lists them: the eight stats, then
        (``model_values``) the model's flat vector and log|det dx/du|, then (``carry``) dU/dy."""
        outputs = list(outputs)
        model = outputs[8:10] if model_values else [None, None]
        grad = outputs[10 if model_values else 8] if carry else None
        return cls(*outputs[:8], grad=grad, model_x=model[0], log_jacobian=model[1])


def finite(t):
    """Elementwise: neither NaN nor inf."""
    return tt.invert(tt.or_(tt.isnan(t), tt.isinf(t)))


def propose(energy, aux, x, v, direction, step_size, taus, masks, unroll=False, start=None):
    """Build the proposal and its acceptance probability; all outputs per chain.

    Returns a :class:`Proposal` with ``x, v, grad_end`` ``(batch, dim)`` and
    ``logdet, potential_start, potential_end, energy_start, energy_end, log_accept,
    accept_prob, diverging`` ``(batch,)`` (potentials are U, energies the Hamiltonians H,
    at start and end).

    ``start``: ``(U(x), dU(x))`` ``(batch,)``, ``(batch, dim)`` when the caller has them (a chain
    carries its state's from one MH step to the next): the proposal then evaluates the energy T
    times, each with its gradient, instead of T + 2 (the start's, and U at the end again outside
    the leapfrog).
    """
    if start is None:
        U0, grad0 = energy.value_and_grad(x)
        x1, v1, grad1, logdet = generalized_leapfrog(
            energy, aux, x, v, grad0, direction, step_size, taus, masks, unroll=unroll
        )
        U1, _ = energy.value_and_grad(x1)
    else:
        U0, grad0 = start
        x1, v1, grad1, logdet, U1 = generalized_leapfrog(
            energy, aux, x, v, grad0, direction, step_size, taus, masks, unroll=unroll, with_potential=True
        )
    H0 = U0 + 0.5 * tt.sqr(v).sum(axis=1)
    H1 = U1 + 0.5 * tt.sqr(v1).sum(axis=1)
    log_ratio = H0 - H1 + logdet
    ok = tt.and_(finite(log_ratio), tt.all(finite(x1), axis=1))
    safe_log_ratio = tt.switch(ok, log_ratio, tt.constant(-1.0, dtype=floatX))
    accept_prob = tt.switch(ok, tt.exp(tt.minimum(safe_log_ratio, 0.0)), 0.0)
    return Proposal(x1, v1, logdet, U0, U1, H0, H1, grad1, log_ratio, accept_prob, tt.invert(ok))


def metropolis_hastings(proposal, x, log_u):
    """Accept where log(u) < log A; returns (x_next, accepted) of shapes (batch, dim), (batch,)."""
    accepted = tt.and_(tt.invert(proposal.diverging), tt.lt(log_u, proposal.log_accept))
    x_next = tt.switch(tt.shape_padright(accepted), proposal.x, x)
    return x_next, accepted
