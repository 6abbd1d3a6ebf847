"""An affine preconditioner x = mu + L y, and the energy of the whitened target.

The dynamics, networks and loss run in y; the model's energy is evaluated at
x(y).  Since the map has a constant Jacobian, U_y(y) = U(mu + L y) has the same
Metropolis-Hastings ratios as U(x) (the constant log|det L| cancels), and the
gradient is dU_y/dy = L^T dU/dx (a row vector per chain: ``g_y = g_x L``).

Three kinds of L:

* ``"diag"``: L = diag(sigma), ``sigma`` ``(dim,)``;
* ``"lowrank"``: L = diag(sigma) (I + Q diag(sqrt(lambda) - 1) Q^T), ``Q`` ``(dim, k)`` orthonormal
  and ``lambda`` ``(k,)``: Sigma = L L^T = D^(1/2) (I + Q diag(lambda - 1) Q^T) D^(1/2), the diagonal
  scales corrected along k directions (nutpie's low-rank mass matrix); applying it costs O(dim k);
* ``"dense"``: L lower triangular ``(dim, dim)``, with Sigma = L L^T.

The values live in Theano shared variables, so that warm-up can move them
between windows without recompiling; after warm-up they are fixed, a part of the
sampler (saved and loaded with it).

Estimates from a cloud of positions ``x`` ``(n, dim)`` and gradients ``g = dU/dx``
``(n, dim)`` (Seyboldt et al., "Preconditioning Hamiltonian Monte Carlo by
minimizing Fisher divergence"): the diagonal sigma_i^2 = sd(x_i) / sd(g_i), and the
dense Sigma solving Sigma Cov(g) Sigma = Cov(x), the geometric mean of Cov(x) and
Cov(g)^{-1}.  Both are exact for any Gaussian target and any cloud of points (then
g = Sigma^{-1} (x - m)), so they work before the chains reach equilibrium.  The low rank
estimate (:func:`fisher_lowrank`) is the dense one in the coordinates the diagonal whitens, cut
to its eigen-directions whose eigenvalues lie outside [1 / c, c] (:data:`EIGENVALUE_CUTOFF`):
where there are none, the diagonal is as good, and warm-up keeps it (:func:`fitted`).
"""
import numpy as np

from ._theano import floatX, theano, tt
from .energy import Energy

__all__ = ["KINDS", "CHOICES", "Preconditioner", "WhitenedEnergy", "fisher_diagonal", "fisher_dense",
           "fisher_lowrank", "fitted"]

KINDS = ("diag", "lowrank", "dense")
#: What a sampler takes: a kind, or "auto" (warm-up fits a low rank correction to the diagonal
#: and keeps it where it has directions beyond the cut-off, else the diagonal).
CHOICES = ("auto",) + KINDS
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


class Preconditioner:
    """x = mu + L y with ``mu`` ``(dim,)`` and L diagonal (``sigma`` ``(dim,)``), low rank
    (``sigma`` and the directions ``basis`` ``(dim, k)`` with their ``eigenvalues`` ``(k,)``) or
    dense lower triangular ``(dim, dim)``.  Starts as the identity (mu = 0, L = I; a low rank
    one with k = 1 and eigenvalue 1)."""

    def __init__(self, dim, kind="diag"):
        if kind not in KINDS:
            raise ValueError(f"preconditioner must be one of {', '.join(map(repr, CHOICES))} or None, got {kind!r}.")
        self.dim = int(dim)
        self.kind = kind
        self.mu = theano.shared(np.zeros(self.dim, dtype=floatX), name="precond/mu")
        eye = np.eye(self.dim) if kind == "dense" else np.ones(self.dim)
        self.factor = theano.shared(eye.astype(floatX), name="precond/factor")
        self.factor_inv = theano.shared(eye.astype(floatX), name="precond/factor_inv")
        if kind == "lowrank":
            basis = np.eye(self.dim, 1, dtype=floatX)
            self.basis = theano.shared(basis, name="precond/basis")
            self.eigenvalues = np.ones(1)
            # L's and L^-1's changes along the basis: sqrt(lambda) - 1 and 1 / sqrt(lambda) - 1.
            self.stretch = theano.shared(np.zeros(1, dtype=floatX), name="precond/stretch")
            self.shrink = theano.shared(np.zeros(1, dtype=floatX), name="precond/shrink")

    # -- values ------------------------------------------------------------------------------
    def set(self, mu, factor, basis=None, eigenvalues=None):
        """Set mu ``(dim,)`` and L: ``(dim,)`` scales (with, for a low rank one, ``basis``
        ``(dim, k)`` orthonormal and ``eigenvalues`` ``(k,)``, k >= 1) or ``(dim, dim)`` lower
        triangular."""
        mu = np.asarray(mu, dtype=floatX)
        factor = np.asarray(factor, dtype=floatX)
        shape = (self.dim, self.dim) if self.kind == "dense" else (self.dim,)
        if mu.shape != (self.dim,) or factor.shape != shape:
            raise ValueError(f"preconditioner ({self.kind}): expected mu {(self.dim,)} and factor {shape}, "
                             f"got {mu.shape} and {factor.shape}.")
        if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(factor))):
            raise ValueError("preconditioner: mu and the factor must be finite.")
        if (basis is not None or eigenvalues is not None) != (self.kind == "lowrank"):
            raise ValueError(f"preconditioner ({self.kind}): a basis and eigenvalues are given for a low rank "
                             "preconditioner, and only for one.")
        if self.kind == "dense":
            factor = np.tril(factor)
            if np.any(np.diag(factor) <= 0):
                raise ValueError("preconditioner: the dense factor must be lower triangular with a positive diagonal.")
            inverse = np.linalg.inv(factor)
        else:
            if np.any(factor <= 0):
                raise ValueError("preconditioner: the diagonal scales must be > 0.")
            inverse = 1.0 / factor
        if self.kind == "lowrank":
            basis = np.asarray(basis, dtype=floatX)
            eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
            k = len(eigenvalues) if eigenvalues.ndim == 1 else -1
            if k < 1 or basis.shape != (self.dim, k):
                raise ValueError(f"preconditioner (lowrank): expected eigenvalues (k,) with k >= 1 and a basis "
                                 f"({self.dim}, k), got {eigenvalues.shape} and {basis.shape}.")
            if not (np.all(np.isfinite(basis)) and np.all(np.isfinite(eigenvalues)) and np.all(eigenvalues > 0)):
                raise ValueError("preconditioner (lowrank): the basis must be finite and the eigenvalues finite "
                                 "and > 0.")
            if not np.allclose(basis.T @ basis, np.eye(k), atol=1e-6):
                raise ValueError("preconditioner (lowrank): the basis must be orthonormal (Q^T Q = I).")
            self.basis.set_value(basis)
            self.eigenvalues = eigenvalues.copy()
            self.stretch.set_value((np.sqrt(eigenvalues) - 1.0).astype(floatX))
            self.shrink.set_value((1.0 / np.sqrt(eigenvalues) - 1.0).astype(floatX))
        self.mu.set_value(mu)
        self.factor.set_value(factor)
        self.factor_inv.set_value(inverse.astype(floatX))

    def values(self, borrow=False):
        """(mu, factor) as numpy arrays (``borrow``: the stored arrays themselves, not to be changed)."""
        return self.mu.get_value(borrow=borrow), self.factor.get_value(borrow=borrow)

    def arrays(self):
        """Everything :meth:`set` takes, by name (copies): mu, factor and, low rank, basis and eigenvalues."""
        out = dict(zip(("mu", "factor"), self.values()))
        if self.kind == "lowrank":
            out.update(basis=self.basis.get_value(), eigenvalues=self.eigenvalues.copy())
        return out

    def shared_variables(self):
        """The shared variables a graph of these maps reads."""
        extra = [self.basis, self.stretch, self.shrink] if self.kind == "lowrank" else []
        return [self.mu, self.factor, self.factor_inv] + extra

    @property
    def rank(self):
        """k: the directions a low rank preconditioner corrects (0 for a diagonal one, dim for a dense one)."""
        if self.kind != "lowrank":
            return 0 if self.kind == "diag" else self.dim
        return int(np.sum(self.eigenvalues != 1.0))

    def copy(self):
        """An independent preconditioner with the same values."""
        new = Preconditioner(self.dim, self.kind)
        new.set(**self.arrays())
        return new

    def scales(self):
        """Marginal standard deviations of x = mu + L y for y ~ N(0, I), ``(dim,)``."""
        factor = self.factor.get_value()
        if self.kind == "dense":
            return np.sqrt(np.sum(factor ** 2, axis=1))
        if self.kind == "lowrank":
            basis = self.basis.get_value(borrow=True)
            return factor * np.sqrt(1.0 + np.sum(basis ** 2 * (self.eigenvalues - 1.0), axis=1))
        return factor

    # -- symbolic maps: rows are chains -------------------------------------------------------
    # A low rank L = D^(1/2) (I + Q diag(a) Q^T) is symmetric after its diagonal; on a row r the
    # bracket is r + ((r Q) * a) Q^T, with a = stretch (for L) or shrink (for L^-1).
    def _along_basis(self, R, change, dot):
        basis = self.basis if dot is tt.dot else self.basis.get_value(borrow=True)
        change = change if dot is tt.dot else change.get_value(borrow=True)
        return R + dot(dot(R, basis) * change, basis.T)

    def to_x(self, Y):
        """x = mu + L y for each row of ``Y`` ``(batch, dim)``."""
        if self.kind == "dense":
            return tt.dot(Y, self.factor.T) + self.mu[None, :]
        if self.kind == "lowrank":
            Y = self._along_basis(Y, self.stretch, tt.dot)
        return Y * self.factor[None, :] + self.mu[None, :]

    def to_y(self, X):
        """y = L^{-1} (x - mu) for each row of ``X`` ``(batch, dim)``."""
        if self.kind == "dense":
            return tt.dot(X - self.mu[None, :], self.factor_inv.T)
        Z = (X - self.mu[None, :]) * self.factor_inv[None, :]
        return self._along_basis(Z, self.shrink, tt.dot) if self.kind == "lowrank" else Z

    def grad_to_y(self, G):
        """dU/dy = L^T dU/dx for each row of ``G`` ``(batch, dim)``."""
        if self.kind == "dense":
            return tt.dot(G, self.factor)
        G = G * self.factor[None, :]
        return self._along_basis(G, self.stretch, tt.dot) if self.kind == "lowrank" else G

    # -- numpy maps -------------------------------------------------------------------------
    def to_x_numpy(self, y):
        mu, factor = self.values(borrow=True)
        if self.kind == "dense":
            return y @ factor.T + mu
        if self.kind == "lowrank":
            y = self._along_basis(y, self.stretch, np.dot)
        return y * factor + mu

    def to_y_numpy(self, x):
        mu, inverse = self.mu.get_value(borrow=True), self.factor_inv.get_value(borrow=True)
        if self.kind == "dense":
            return (x - mu) @ inverse.T
        z = (x - mu) * inverse
        return self._along_basis(z, self.shrink, np.dot) if self.kind == "lowrank" else z

    def grad_to_y_numpy(self, g):
        factor = self.factor.get_value(borrow=True)
        if self.kind == "dense":
            return g @ factor
        g = g * factor
        return self._along_basis(g, self.stretch, np.dot) if self.kind == "lowrank" else g

    def grad_to_x_numpy(self, g):
        """dU/dx = L^{-T} dU/dy for each row of ``g`` ``(batch, dim)``."""
        inverse = self.factor_inv.get_value(borrow=True)
        if self.kind == "dense":
            return g @ inverse
        if self.kind == "lowrank":
            g = self._along_basis(g, self.shrink, np.dot)
        return g * inverse

    # -- estimates --------------------------------------------------------------------------
    def estimate(self, x, grad):
        """Values (a dict for :meth:`set`) fitted to positions ``x`` and gradients dU/dx ``grad``,
        both ``(n, dim)`` (see the module docstring); not applied.  A low rank one keeps k >= 1
        (eigenvalue 1 where no direction passes the cut-off)."""
        mu = np.mean(x, axis=0)
        if self.kind == "diag":
            return dict(mu=mu, factor=fisher_diagonal(x, grad))
        if self.kind == "dense":
            return dict(mu=mu, factor=fisher_dense(x, grad))
        sigma, basis, eigenvalues = fisher_lowrank(x, grad)
        if len(eigenvalues) == 0:
            basis, eigenvalues = np.eye(self.dim, 1), np.ones(1)
        return dict(mu=mu, factor=sigma, basis=basis, eigenvalues=eigenvalues)


def fitted(dim, x, grad):
    """The preconditioner "auto" picks for positions ``x`` and gradients ``grad`` ``(n, dim)``:
    low rank where :func:`fisher_lowrank` finds directions beyond the cut-off, else diagonal."""
    sigma, basis, eigenvalues = fisher_lowrank(x, grad)
    lowrank = len(eigenvalues) > 0
    out = Preconditioner(dim, "lowrank" if lowrank else "diag")
    out.set(np.mean(x, axis=0), sigma, **(dict(basis=basis, eigenvalues=eigenvalues) if lowrank else {}))
    return out


class WhitenedEnergy(Energy):
    """U_y(y) = U(mu + L y) and its gradient L^T dU/dx, for rows y of a ``(batch, dim)`` matrix."""

    def __init__(self, energy, preconditioner):
        self.energy = energy
        self.preconditioner = preconditioner
        self.dim = energy.dim

    def value_and_grad(self, Y):
        U, dU = self.energy.value_and_grad(self.preconditioner.to_x(Y))
        return U, self.preconditioner.grad_to_y(dU)


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
