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

Each kind is fitted to a cloud of positions and gradients by :mod:`.fisher`; where the low rank
estimate finds no direction beyond its cut-off the diagonal is as good, and warm-up keeps it
(:func:`fitted`).
"""
import numpy as np

from ._theano import floatX, theano, tt
from .energy import Energy
from .fisher import fisher_dense, fisher_diagonal, fisher_lowrank

__all__ = ["KINDS", "CHOICES", "Preconditioner", "WhitenedEnergy", "fitted"]

KINDS = ("diag", "lowrank", "dense")
#: What a sampler takes: a kind, or "auto" (warm-up fits a low rank correction to the diagonal
#: and keeps it where it has directions beyond the cut-off, else the diagonal).
CHOICES = ("auto",) + KINDS


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
    low rank where :func:`.fisher.fisher_lowrank` finds directions beyond the cut-off, else diagonal."""
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
