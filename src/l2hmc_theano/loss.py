"""The L2HMC training loss (Levy et al. 2018, Eq. 7-8), symbolic.

For chains x, proposals x' and acceptance probabilities A (all per chain):

    delta = |x - x'|^2 * A + c                       (expected squared jump, c small)
    l     = lambda^2 / delta - delta / lambda^2
    L     = mean_chains l  +  lambda_b * mean_q l      (q: a fresh batch from N(0, I))

The first term trains mixing where the chains are; the second, on fresh draws
from the initial distribution, trains burn-in.  Optionally the jump is measured
per coordinate in units s_i (e.g. the chains' spread), so that narrow coordinates
count as much as wide ones: |x - x'|^2 becomes sum_i ((x_i - x'_i) / s_i)^2.
"""
from ._theano import tt

__all__ = ["squared_jump", "esjd_loss", "coordinate_esjd_loss"]


def squared_jump(proposal, x, scale=None):
    """sum_i ((x'_i - x_i) / s_i)^2 * A per chain, ``(batch,)``; 0 for a diverging proposal.

    ``scale``: ``(dim,)`` per-coordinate units s (default 1: the paper's |x - x'|^2).
    """
    step = proposal.x - x
    if scale is not None:
        step = step / scale[None, :]
    jump = tt.sqr(step).sum(axis=1)
    return tt.switch(proposal.diverging, 0.0, jump) * proposal.accept_prob


def esjd_loss(jump, scale=0.1, eps=1e-4):
    """Per-chain loss ``lambda^2/delta - delta/lambda^2`` with ``delta = jump + eps``; ``scale`` is lambda^2."""
    delta = jump + eps
    return scale / delta - delta / scale


def coordinate_esjd_loss(proposal, x, scale=1.0, eps=1e-4):
    """The loss per coordinate of the batch's ESJD: with delta_i = mean_chains A (x'_i - x_i)^2 + c,
    ``mean_i (lambda^2 / delta_i - delta_i / lambda^2)``, a scalar (``scale`` is lambda^2).

    In whitened coordinates every coordinate's jump is in its own units; the reciprocal
    term makes the slowest coordinate (e.g. a hierarchical scale among many group effects)
    count, where the summed |x' - x|^2 of Eq. 7 is owned by the many fast ones.  The batch
    mean comes first, so one chain's tiny jump does not blow the reciprocal up.
    """
    step = tt.sqr(proposal.x - x) * tt.shape_padright(proposal.accept_prob)
    step = tt.switch(tt.shape_padright(proposal.diverging), 0.0, step)
    delta = step.mean(axis=0) + eps
    return (scale / delta - delta / scale).mean()
