"""The preconditioner's estimates from a cloud of positions ``x`` ``(n, dim)`` and gradients
``g = dU/dx`` ``(n, dim)`` (Seyboldt et al., "Preconditioning Hamiltonian Monte Carlo by minimizing
Fisher divergence"): the diagonal sigma_i^2 = sd(x_i) / sd(g_i), and the dense Sigma solving
Sigma Cov(g) Sigma = Cov(x), the geometric mean of Cov(x) and Cov(g)^{-1}.  Both are exact for any
Gaussian target and any cloud of points (then g = Sigma^{-1} (x - m)), so they work before the
chains reach equilibrium.  The low rank estimate (:func:`fisher_lowrank`) is the dense one in the
coordinates the diagonal whitens, cut to its eigen-directions whose eigenvalues lie outside
[1 / c, c] (:data:`EIGENVALUE_CUTOFF`).
"""
import numpy as np

__all__ = ["fisher_diagonal", "fisher_dense", "fisher_lowrank", "EIGENVALUE_CUTOFF", "SCALE_FLOOR"]

#: Eigenvalues of the diagonally whitened covariance within [1 / c, c] are left at 1: they would
#: change the whitened condition number by at most c^2, HMC's trajectories by at most c.  With c = 2
#: a rotated 50-d Gaussian got 0.25 min ESS per gradient and posteriordb's diamonds 0.12-0.18; with
#: 1.5, 0.27-0.28 and 0.15-0.16, and still no direction on axis-aligned posteriors (funnels, ICG).
EIGENVALUE_CUTOFF = 1.5
#: Up to this dimension the low rank estimate looks for directions in the whole space; above, in
#: the span of the leading LOWRANK_SEARCH singular directions of the draws and of the gradients.
LOWRANK_FULL_SEARCH = 400
LOWRANK_SEARCH = 100

#: Scales are kept within [SCALE_FLOOR, 1 / SCALE_FLOOR] (relative to 1): a coordinate
#: that never moved, or whose gradient never changed, keeps a finite scale.
SCALE_FLOOR = 1e-8


def _bounded(scale):
    return np.clip(scale, SCALE_FLOOR, 1.0 / SCALE_FLOOR)


def fisher_diagonal(x, grad):
    """sigma_i = sqrt(sd(x_i) / sd(g_i)) from ``x``, ``grad`` ``(n, dim)``, shape ``(dim,)``.

    A coordinate whose positions or gradients do not vary keeps scale 1 (nothing is
    known of it), or its positions' sd when only the gradient is constant."""
    sd_x = np.std(x, axis=0)
    sd_g = np.std(grad, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.sqrt(sd_x / sd_g)
    sigma = np.where(sd_g > 0, sigma, np.where(sd_x > 0, sd_x, 1.0))
    sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, 1.0)
    return _bounded(sigma)


def _covariance_root(a, shrink):
    """Upper triangular R ``(dim, dim)`` with R^T R = n ((1 - shrink) C + shrink diag(C)), C the
    covariance of the rows of ``a`` ``(n, dim)``: from the QR of the centred rows (with, to shrink,
    a row per coordinate appended), never forming C, whose condition number is R's squared."""
    a = a - a.mean(axis=0)
    rows = np.sqrt(1.0 - shrink) * a
    if shrink > 0:
        rows = np.vstack([rows, np.diag(np.sqrt(shrink * np.sum(a ** 2, axis=0)))])
    return np.linalg.qr(rows, mode="r")


def _fisher_covariance(x, grad):
    """Sigma ``(dim, dim)`` with Sigma Cov(g) Sigma = Cov(x) (see :func:`fisher_dense`), or None
    where a coordinate's positions or gradients never varied.

    With R_x, R_g the covariances' triangular roots (:func:`_covariance_root`), R_g Sigma = U R_x
    for the orthogonal U that makes R_g Sigma R_g^T = U R_x R_g^T symmetric positive definite: from
    the SVD R_x R_g^T = A S B^T, U = B A^T and Sigma = R_g^-1 B S B^T R_g^-T.  In roots, not
    covariances: Cov(g) of a Gaussian with condition number k has condition number k^2, which
    for k = 1e8 is past double precision (the geometric mean formed from it was 98% off)."""
    from scipy.linalg import solve_triangular

    n, dim = np.shape(x)
    if n < 2 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(grad))):
        return None
    if np.any(np.ptp(x, axis=0) <= 0) or np.any(np.ptp(grad, axis=0) <= 0):
        return None
    shrink = dim / (n + dim) if n < 4 * dim else 0.0
    root_x, root_g = _covariance_root(x, shrink), _covariance_root(grad, shrink)
    if np.any(np.diag(root_g) == 0):
        return None
    _, s, bt = np.linalg.svd(root_x @ root_g.T)
    half = solve_triangular(root_g, bt.T * np.sqrt(s), lower=False)  # Sigma = half half^T
    sigma = half @ half.T
    return 0.5 * (sigma + sigma.T)


def fisher_dense(x, grad):
    """Lower-triangular L with L L^T = Sigma, Sigma Cov(g) Sigma = Cov(x), from ``(n, dim)`` arrays.

    Sigma = C_g^{-1/2} (C_g^{1/2} C_x C_g^{1/2})^{1/2} C_g^{-1/2}.  With fewer than
    ``4 dim`` draws both covariances are shrunk towards their diagonals by dim / (n + dim),
    so that the estimate stays positive definite.  Otherwise they are not: shrinking
    breaks C_g = P C_x P, which makes the estimate exact for a Gaussian with precision P,
    and its error grows with P's condition number (0.1% shrinkage, condition number 100:
    7% error)."""
    sigma = _fisher_covariance(x, grad)
    if sigma is None:  # a coordinate never moved: fall back to the diagonal
        return np.diag(fisher_diagonal(x, grad))
    try:
        factor = np.linalg.cholesky(sigma)
    except np.linalg.LinAlgError:
        return np.diag(fisher_diagonal(x, grad))
    if not np.all(np.isfinite(factor)):
        return np.diag(fisher_diagonal(x, grad))
    return factor


def _search_basis(x, grad):
    """An orthonormal ``(dim, m)`` basis to look for low rank directions in: the whole space up to
    :data:`LOWRANK_FULL_SEARCH` dimensions, else the span of the leading :data:`LOWRANK_SEARCH`
    right singular vectors of the centred ``x`` and of the centred ``grad`` (n, dim)."""
    dim = x.shape[1]
    if dim <= LOWRANK_FULL_SEARCH:
        return np.eye(dim)
    parts = [np.linalg.svd(a - a.mean(axis=0), full_matrices=False)[2][:LOWRANK_SEARCH].T for a in (x, grad)]
    q, _ = np.linalg.qr(np.concatenate(parts, axis=1))
    return q


def fisher_lowrank(x, grad, cutoff=EIGENVALUE_CUTOFF):
    """The low rank estimate from positions ``x`` and gradients ``grad`` ``(n, dim)``: the diagonal
    ``sigma`` ``(dim,)`` (:func:`fisher_diagonal`), then, in the coordinates it whitens
    (x / sigma, g sigma) and within :func:`_search_basis`, the dense estimate's eigen-directions
    ``basis`` ``(dim, k)`` whose ``eigenvalues`` ``(k,)`` lie outside [1 / cutoff, cutoff]
    (k may be 0).  Returns (sigma, basis, eigenvalues)."""
    sigma = fisher_diagonal(x, grad)
    dim = len(sigma)
    none = (sigma, np.zeros((dim, 0)), np.zeros(0))
    if len(x) < 2:  # nothing to fit (and no singular directions to search)
        return none
    xw, gw = x / sigma, grad * sigma
    search = _search_basis(xw, gw)
    inner = _fisher_covariance(xw @ search, gw @ search)
    if inner is None:
        return none
    eigenvalues, vectors = np.linalg.eigh(inner)
    keep = np.abs(np.log(np.maximum(eigenvalues, 1e-300))) > np.log(cutoff)
    if not keep.any():
        return none
    basis = search @ vectors[:, keep]
    return sigma, basis, np.clip(eigenvalues[keep], SCALE_FLOOR ** 2, 1.0 / SCALE_FLOOR ** 2)
