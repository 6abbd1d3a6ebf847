"""An affine preconditioner x = mu + L y, and the energy of the whitened target.

The dynamics, networks and loss run in y; the model's energy is evaluated at
x(y).  Since the map has a constant Jacobian, U_y(y) = U(mu + L y) has the same
Metropolis-Hastings ratios as U(x) (the constant log|det L| cancels), and the
gradient is dU_y/dy = L^T dU/dx (a row vector per chain: ``g_y = g_x L``).

Two kinds of L:

* ``"diag"``: L = diag(sigma), ``sigma`` ``(dim,)``;
* ``"dense"``: L lower triangular ``(dim, dim)``, with Sigma = L L^T.

The values live in Theano shared variables, so that warm-up can move them
between windows without recompiling; after warm-up they are fixed, a part of the
sampler (saved and loaded with it).

Estimates from a cloud of positions ``x`` ``(n, dim)`` and gradients ``g = dU/dx``
``(n, dim)`` (Seyboldt et al., "Preconditioning Hamiltonian Monte Carlo by
minimizing Fisher divergence"): the diagonal sigma_i^2 = sd(x_i) / sd(g_i), and the
dense Sigma solving Sigma Cov(g) Sigma = Cov(x), the geometric mean of Cov(x) and
Cov(g)^{-1}.  Both are exact for any Gaussian target and any cloud of points (then
g = Sigma^{-1} (x - m)), so they work before the chains reach equilibrium.
"""
import numpy as np

from ._theano import floatX, theano, tt
from .energy import Energy

__all__ = ["KINDS", "Preconditioner", "WhitenedEnergy", "fisher_diagonal", "fisher_dense"]

KINDS = ("diag", "dense")

#: Scales are kept within [SCALE_FLOOR, 1 / SCALE_FLOOR] (relative to 1): a coordinate
#: that never moved, or whose gradient never changed, keeps a finite scale.
SCALE_FLOOR = 1e-8


class Preconditioner:
    """x = mu + L y with ``mu`` ``(dim,)`` and L diagonal (``sigma`` ``(dim,)``) or dense
    lower triangular ``(dim, dim)``.  Starts as the identity (mu = 0, L = I)."""

    def __init__(self, dim, kind="diag"):
        if kind not in KINDS:
            raise ValueError(f"preconditioner must be one of {', '.join(map(repr, KINDS))} or None, got {kind!r}.")
        self.dim = int(dim)
        self.kind = kind
        self.mu = theano.shared(np.zeros(self.dim, dtype=floatX), name="precond/mu")
        eye = np.ones(self.dim) if kind == "diag" else np.eye(self.dim)
        self.factor = theano.shared(eye.astype(floatX), name="precond/factor")
        self.factor_inv = theano.shared(eye.astype(floatX), name="precond/factor_inv")

    # -- values ------------------------------------------------------------------------------
    def set(self, mu, factor):
        """Set mu ``(dim,)`` and L (``(dim,)`` scales or ``(dim, dim)`` lower triangular)."""
        mu = np.asarray(mu, dtype=floatX)
        factor = np.asarray(factor, dtype=floatX)
        shape = (self.dim,) if self.kind == "diag" else (self.dim, self.dim)
        if mu.shape != (self.dim,) or factor.shape != shape:
            raise ValueError(f"preconditioner ({self.kind}): expected mu {(self.dim,)} and factor {shape}, "
                             f"got {mu.shape} and {factor.shape}.")
        if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(factor))):
            raise ValueError("preconditioner: mu and the factor must be finite.")
        if self.kind == "diag":
            if np.any(factor <= 0):
                raise ValueError("preconditioner: the diagonal scales must be > 0.")
            inverse = 1.0 / factor
        else:
            factor = np.tril(factor)
            if np.any(np.diag(factor) <= 0):
                raise ValueError("preconditioner: the dense factor must be lower triangular with a positive diagonal.")
            inverse = np.linalg.inv(factor)
        self.mu.set_value(mu)
        self.factor.set_value(factor)
        self.factor_inv.set_value(inverse.astype(floatX))

    def values(self, borrow=False):
        """(mu, factor) as numpy arrays (``borrow``: the stored arrays themselves, not to be changed)."""
        return self.mu.get_value(borrow=borrow), self.factor.get_value(borrow=borrow)

    def copy(self):
        """An independent preconditioner with the same values."""
        new = Preconditioner(self.dim, self.kind)
        new.set(*self.values())
        return new

    def scales(self):
        """Marginal standard deviations of x = mu + L y for y ~ N(0, I), ``(dim,)``."""
        factor = self.factor.get_value()
        return factor if self.kind == "diag" else np.sqrt(np.sum(factor ** 2, axis=1))

    # -- symbolic maps: rows are chains -------------------------------------------------------
    def to_x(self, Y):
        """x = mu + L y for each row of ``Y`` ``(batch, dim)``."""
        if self.kind == "diag":
            return Y * self.factor[None, :] + self.mu[None, :]
        return tt.dot(Y, self.factor.T) + self.mu[None, :]

    def to_y(self, X):
        """y = L^{-1} (x - mu) for each row of ``X`` ``(batch, dim)``."""
        if self.kind == "diag":
            return (X - self.mu[None, :]) * self.factor_inv[None, :]
        return tt.dot(X - self.mu[None, :], self.factor_inv.T)

    def grad_to_y(self, G):
        """dU/dy = L^T dU/dx for each row of ``G`` ``(batch, dim)``."""
        if self.kind == "diag":
            return G * self.factor[None, :]
        return tt.dot(G, self.factor)

    # -- numpy maps -------------------------------------------------------------------------
    def to_x_numpy(self, y):
        mu, factor = self.values(borrow=True)
        return y * factor + mu if self.kind == "diag" else y @ factor.T + mu

    def to_y_numpy(self, x):
        mu, inverse = self.mu.get_value(borrow=True), self.factor_inv.get_value(borrow=True)
        return (x - mu) * inverse if self.kind == "diag" else (x - mu) @ inverse.T

    def grad_to_y_numpy(self, g):
        factor = self.factor.get_value(borrow=True)
        return g * factor if self.kind == "diag" else g @ factor

    def grad_to_x_numpy(self, g):
        """dU/dx = L^{-T} dU/dy for each row of ``g`` ``(batch, dim)``."""
        inverse = self.factor_inv.get_value(borrow=True)
        return g * inverse if self.kind == "diag" else g @ inverse

    # -- estimates --------------------------------------------------------------------------
    def estimate(self, x, grad):
        """Values (mu, factor) fitted to positions ``x`` and gradients dU/dx ``grad``, both
        ``(n, dim)`` (see the module docstring); not applied."""
        fit = fisher_diagonal if self.kind == "diag" else fisher_dense
        return np.mean(x, axis=0), fit(x, grad)


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


def _sqrtm_spd(a):
    """Symmetric square root and inverse square root of a symmetric positive definite matrix."""
    w, q = np.linalg.eigh(a)
    w = np.maximum(w, w.max() * 1e-12)
    return (q * np.sqrt(w)) @ q.T, (q / np.sqrt(w)) @ q.T


def _shrunk_covariance(a, shrink):
    """Sample covariance of ``a`` ``(n, dim)``, shrunk towards its diagonal (weight ``shrink``)."""
    cov = np.atleast_2d(np.cov(a, rowvar=False))
    return (1.0 - shrink) * cov + shrink * np.diag(np.diag(cov))


def fisher_dense(x, grad):
    """Lower-triangular L with L L^T = Sigma, Sigma Cov(g) Sigma = Cov(x), from ``(n, dim)`` arrays.

    Sigma = C_g^{-1/2} (C_g^{1/2} C_x C_g^{1/2})^{1/2} C_g^{-1/2}.  With fewer than
    ``4 dim`` draws both covariances are shrunk towards their diagonals by dim / (n + dim),
    so that the estimate stays positive definite.  Otherwise they are not: shrinking
    breaks C_g = P C_x P, which makes the estimate exact for a Gaussian with precision P,
    and its error grows with P's condition number (0.1% shrinkage, condition number 100:
    7% error)."""
    n, dim = np.shape(x)
    shrink = dim / (n + dim) if n < 4 * dim else 0.0
    cov_x = _shrunk_covariance(x, shrink)
    cov_g = _shrunk_covariance(grad, shrink)
    floor_x = np.diag(cov_x)[np.diag(cov_x) > 0]
    floor_g = np.diag(cov_g)[np.diag(cov_g) > 0]
    if floor_x.size < dim or floor_g.size < dim:  # a coordinate never moved: fall back to the diagonal
        return np.diag(fisher_diagonal(x, grad))
    g_half, g_inv_half = _sqrtm_spd(cov_g)
    middle, _ = _sqrtm_spd(g_half @ cov_x @ g_half)
    sigma = g_inv_half @ middle @ g_inv_half
    sigma = 0.5 * (sigma + sigma.T)
    try:
        factor = np.linalg.cholesky(sigma)
    except np.linalg.LinAlgError:
        return np.diag(fisher_diagonal(x, grad))
    if not np.all(np.isfinite(factor)):
        return np.diag(fisher_diagonal(x, grad))
    return factor
