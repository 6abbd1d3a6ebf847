"""The generalized leapfrog of L2HMC (Levy, Hoffman, Sohl-Dickstein 2018, Sec. 3).

State xi = (x, v, d) with x, v of shape ``(batch, dim)`` and a direction d = +1/-1
per chain.  Step t of T uses the time encoding tau_t = (cos 2pi t/T, sin 2pi t/T)
and a fixed binary mask m_t (m_bar = 1 - m_t).  One forward step (d = +1):

    v <- v * exp(eps/2 S_v) - eps/2 (dU(x) * exp(eps Q_v) + T_v)         (S_v,Q_v,T_v)(x, dU(x), tau)
    x <- m*x + m_bar*[x * exp(eps S_x) + eps (v * exp(eps Q_x) + T_x)]   (S_x,Q_x,T_x)(v, m*x, tau)
    x <- m_bar*x + m*[x * exp(eps S_x) + eps (v * exp(eps Q_x) + T_x)]   (S_x,Q_x,T_x)(v, m_bar*x, tau)
    v <- v * exp(eps/2 S_v) - eps/2 (dU(x) * exp(eps Q_v) + T_v)

with log|det J| = sum(eps/2 S_v) + sum(m_bar eps S_x) + sum(m eps S_x) + sum(eps/2 S_v),
each term at its own sub-update's inputs.  The backward direction (d = -1) is
the exact inverse: steps in reverse order (step s uses tau and mask of step
T-1-s), each sub-update inverted, log-det negated.

Both directions are written as one update per chain: a chain going backward
runs the inverse sub-updates with the complementary mask, so one ``theano.scan``
serves a batch of mixed directions and evaluates only the chosen trajectory's
networks and gradients (T + 1 gradient evaluations per trajectory).
"""
import numpy as np

from ._theano import floatX, theano, tt

__all__ = ["time_encoding", "draw_masks", "generalized_leapfrog"]


def time_encoding(n_steps):
    """tau_t = (cos 2 pi t/T, sin 2 pi t/T) for t = 0..T-1, shape ``(T, 2)``."""
    angle = 2.0 * np.pi * np.arange(n_steps) / n_steps
    return np.stack([np.cos(angle), np.sin(angle)], axis=1).astype(floatX)


def draw_masks(n_steps, dim, rng):
    """T binary masks of shape ``(T, dim)``, each with floor(dim/2) ones at random places."""
    masks = np.zeros((n_steps, dim), dtype=floatX)
    for t in range(n_steps):
        masks[t, rng.permutation(dim)[: dim // 2]] = 1.0
    return masks


def _v_update(aux, x, grad, v, tau, forward, eps):
    """Momentum half-step or its inverse; returns v_new and the forward log-det's terms, both
    ``(batch, dim)`` (the log-det is their sum over dim; the inverse's is its negative)."""
    S, Q, T = aux.v_terms(x, grad, tau)
    scale = 0.5 * eps * S
    shift = 0.5 * eps * (grad * tt.exp(eps * Q) + T)
    v_new = tt.switch(forward, v * tt.exp(scale) - shift, (v + shift) * tt.exp(-scale))
    return v_new, scale


def _x_update(aux, x, v, keep, tau, forward, eps):
    """Position update of the components where ``keep == 0`` (or its inverse); returns x_new and
    the forward log-det's terms, as :func:`_v_update`."""
    S, Q, T = aux.x_terms(v, keep * x, tau)
    shift = eps * (v * tt.exp(eps * Q) + T)
    moved = tt.switch(forward, x * tt.exp(eps * S) + shift, (x - shift) * tt.exp(-eps * S))
    x_new = tt.switch(keep, x, moved)
    return x_new, (1.0 - keep) * eps * S


def generalized_leapfrog(energy, aux, x, v, grad, direction, step_size, taus, masks, all_steps=False,
                         unroll=False, with_potential=False):
    """T generalized leapfrog steps, as one ``theano.scan``.

    Parameters
    ----------
    energy : :class:`l2hmc_theano.energy.Energy`
    aux : auxiliary-functions object (see :mod:`l2hmc_theano.networks`)
    x, v, grad : ``(batch, dim)`` symbolic; ``grad`` is dU/dx at ``x``.
    direction : ``(batch,)`` symbolic of +1 / -1.
    step_size : symbolic scalar eps > 0.
    taus : ``(T, 2)`` time encodings; masks : ``(T, dim)`` binary masks (constants).

    Returns
    -------
    x_new, v_new, grad_new : ``(batch, dim)``; logdet : ``(batch,)`` = log|det d(x',v')/d(x,v)|.
    With ``all_steps``, the same after every step: ``(T, batch, dim)`` and ``(T, batch)``.
    ``unroll``: the T steps as T copies of the step's graph instead of a scan (not with ``all_steps``).
    ``with_potential``: also U at ``x_new`` ``(batch,)`` (or ``(T, batch)``), from the same energy
    evaluation as ``grad_new``, as a fifth output.
    """
    taus = np.asarray(taus, dtype=floatX)
    masks = np.asarray(masks, dtype=floatX)
    # Step s of a forward chain is step t = s; of a backward chain, the inverse of step
    # T-1-s, whose first (inverted) x-update keeps the complement of m_{T-1-s} fixed.
    sequences = [
        tt.constant(taus),
        tt.constant(taus[::-1].copy()),
        tt.constant(masks),
        tt.constant(1.0 - masks[::-1]),
    ]
    sign = tt.cast(direction, floatX)
    forward_col = tt.shape_padright(sign > 0)
    eps = tt.cast(step_size, floatX)

    def step(tau_f, tau_b, keep_f, keep_b, x, v, grad, logdet, sign, forward_col, eps):
        tau = tt.switch(forward_col, tau_f[None, :], tau_b[None, :])
        keep = tt.switch(forward_col, keep_f[None, :], keep_b[None, :])
        v, ld_v1 = _v_update(aux, x, grad, v, tau, forward_col, eps)
        x, ld_x1 = _x_update(aux, x, v, keep, tau, forward_col, eps)
        x, ld_x2 = _x_update(aux, x, v, 1.0 - keep, tau, forward_col, eps)
        potential, grad = energy.value_and_grad(x)
        v, ld_v2 = _v_update(aux, x, grad, v, tau, forward_col, eps)
        # One sum over dim per step, not one per sub-update (4x fewer reductions).
        out = (x, v, grad, logdet + sign * (ld_v1 + ld_x1 + ld_x2 + ld_v2).sum(axis=1))
        return out + (potential,) if with_potential else out

    logdet0 = tt.zeros_like(sign)
    if unroll:
        if all_steps:
            raise ValueError("generalized_leapfrog: all_steps needs the scan (unroll=False).")
        state = (x, v, grad, logdet0)
        for t in range(len(taus)):
            out = step(*[tt.constant(seq.value[t]) for seq in sequences], *state, sign, forward_col, eps)
            state = out[:4]
        return out
    outputs, _ = theano.scan(
        step,
        sequences=sequences,
        outputs_info=[x, v, grad, logdet0] + ([None] if with_potential else []),
        non_sequences=[sign, forward_col, eps],
        strict=False,
        name="generalized_leapfrog",
    )
    return tuple(outputs) if all_steps else tuple(o[-1] for o in outputs)
