"""Synthetic targets of the paper: PyMC3 models, natively batched energies, exact moments."""
import numpy as np

__all__ = ["strongly_correlated_gaussian", "scg_energy", "SCG_COV", "icg_variances", "icg_energy"]


def _rotation(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


#: Covariance of the paper's 2-d strongly correlated Gaussian: eigenvalues 100 and 0.1, rotated pi/4.
SCG_COV = _rotation(np.pi / 4) @ np.diag([100.0, 0.1]) @ _rotation(np.pi / 4).T
_SCG_PRECISION = np.linalg.inv(SCG_COV)


def strongly_correlated_gaussian():
    """The paper's SCG (Sec. 5): ``pm.Model`` with one 2-d variable ``x`` ~ N(0, SCG_COV)."""
    import pymc3 as pm

    with pm.Model() as model:
        pm.MvNormal("x", mu=np.zeros(2), cov=SCG_COV, shape=2)
    return model


def scg_energy(X):
    """U(x) = x^T SCG_COV^-1 x / 2 of a ``(batch, 2)`` Theano matrix, ``(batch,)``."""
    from ._theano import tt

    return 0.5 * (tt.dot(X, _SCG_PRECISION) * X).sum(axis=1)


def icg_variances(dim=50):
    """Variances of the paper's ill-conditioned Gaussian: log-spaced from 1e-2 to 1e2."""
    return np.logspace(-2, 2, dim)


def icg_energy(dim=50):
    """The ``dim``-d ill-conditioned Gaussian's batched energy U(X) = sum x_i^2 / (2 var_i)."""
    from ._theano import tt

    precision = 1.0 / icg_variances(dim)

    def energy(X):
        return 0.5 * (tt.sqr(X) * precision).sum(axis=1)

    energy.__name__ = f"icg{dim}"
    return energy
