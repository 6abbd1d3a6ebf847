"""Synthetic targets of the paper: PyMC3 models, natively batched energies, exact moments."""
import numpy as np

from ._pymc3 import pm
from ._theano import tt

__all__ = [
    "strongly_correlated_gaussian", "scg_energy", "SCG_COV",
    "ill_conditioned_gaussian", "icg_variances", "icg_energy",
    "mixture_of_gaussians", "mog_energy", "MOG_CENTRES", "MOG_VARIANCE", "MOG_COV",
    "rough_well", "rough_well_energy",
    "eight_schools", "EIGHT_SCHOOLS_EFFECTS", "EIGHT_SCHOOLS_SE",
]


#: The paper's sampler (Levy et al. 2018): T = 10, dynamics in x (no preconditioner) with a
#: fixed step size; pass to ``L2HMCSampler`` to reproduce the paper's experiments.
PAPER_SAMPLER = dict(n_steps=10, preconditioner=None, step_jitter=0.0)
#: The paper's training: its loss of |x' - x|^2 per chain with the burn-in term (fresh
#: N(0, I) draws), no warm-up, every iteration.
PAPER_TRAINING = dict(coordinate_loss=False, burn_in_weight=1.0, warmup=False, stop_when_flat=False,
                      compare_hmc=False)


def _rotation(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


#: Covariance of the paper's 2-d strongly correlated Gaussian: eigenvalues 100 and 0.1, rotated pi/4.
SCG_COV = _rotation(np.pi / 4) @ np.diag([100.0, 0.1]) @ _rotation(np.pi / 4).T
_SCG_PRECISION = np.linalg.inv(SCG_COV)


def strongly_correlated_gaussian():
    """The paper's SCG (Sec. 5): ``pm.Model`` with one 2-d variable ``x`` ~ N(0, SCG_COV)."""
    with pm.Model() as model:
        pm.MvNormal("x", mu=np.zeros(2), cov=SCG_COV, shape=2)
    return model


def scg_energy(X):
    """U(x) = x^T SCG_COV^-1 x / 2 of a ``(batch, 2)`` Theano matrix, ``(batch,)``."""
    return 0.5 * (tt.dot(X, _SCG_PRECISION) * X).sum(axis=1)


def icg_variances(dim=50):
    """Variances of the paper's ill-conditioned Gaussian: log-spaced from 1e-2 to 1e2."""
    return np.logspace(-2, 2, dim)


def icg_energy(dim=50):
    """The ``dim``-d ill-conditioned Gaussian's batched energy U(X) = sum x_i^2 / (2 var_i)."""
    precision = 1.0 / icg_variances(dim)

    def energy(X):
        return 0.5 * (tt.sqr(X) * precision).sum(axis=1)

    energy.__name__ = f"icg{dim}"
    return energy


def ill_conditioned_gaussian(dim=50):
    """The paper's ICG: ``pm.Model`` with ``x`` ~ N(0, diag(icg_variances(dim)))."""
    with pm.Model() as model:
        pm.Normal("x", 0.0, np.sqrt(icg_variances(dim)), shape=dim)
    return model


#: The paper's mixture of Gaussians: two isotropic 2-d components, equal weights.
MOG_CENTRES = np.array([[2.0, 0.0], [-2.0, 0.0]])
MOG_VARIANCE = 0.1
#: Its exact covariance (its mean is 0).
MOG_COV = np.diag([4.0 + MOG_VARIANCE, MOG_VARIANCE])


def mog_energy(X):
    """U(x) = -log sum_k exp(-|x - c_k|^2 / (2 var)) of a ``(batch, 2)`` matrix (constants dropped)."""
    exponents = tt.stack([-tt.sqr(X - c).sum(axis=1) / (2 * MOG_VARIANCE) for c in MOG_CENTRES], axis=1)
    peak = exponents.max(axis=1)
    return -(peak + tt.log(tt.exp(exponents - peak[:, None]).sum(axis=1)))


def _flat_model_with_energy(dim, energy):
    with pm.Model() as model:
        x = pm.Flat("x", shape=dim)
        pm.Potential("minus_energy", -energy(x[None, :])[0])
    return model


def mixture_of_gaussians():
    """The paper's MoG as a ``pm.Model``: a flat ``x`` (2-d) with the mixture as a Potential."""
    return _flat_model_with_energy(2, mog_energy)


def rough_well_energy(eta=1e-2):
    """The rough well U(x) = x^T x / 2 + eta sum_i cos(x_i / eta), batched.

    Its mean is 0 and its covariance I to within exp(-1 / (2 eta^2)) / eta (the Gaussian
    expectation of the cosine term), i.e. exactly in double precision for eta <= 0.1.
    """
    def energy(X):
        return 0.5 * tt.sqr(X).sum(axis=1) + eta * tt.cos(X / eta).sum(axis=1)

    energy.__name__ = f"rough_well_{eta:g}"
    return energy


def rough_well(dim=2, eta=1e-2):
    """The paper's rough well as a ``pm.Model``: a flat ``x`` with -U as a Potential."""
    return _flat_model_with_energy(dim, rough_well_energy(eta))


#: Eight schools (Rubin 1981): observed treatment effects and their standard errors.
EIGHT_SCHOOLS_EFFECTS = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
EIGHT_SCHOOLS_SE = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def eight_schools(centred=True):
    """Eight schools as a ``pm.Model`` (10 free dimensions: mu, log tau, 8 thetas or etas);
    ``centred=False`` samples eta ~ N(0, 1) with theta = mu + tau * eta (a Deterministic)."""
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 5)
        tau = pm.HalfCauchy("tau", 5)
        if centred:
            theta = pm.Normal("theta", mu, tau, shape=8)
        else:
            eta = pm.Normal("eta", 0, 1, shape=8)
            theta = pm.Deterministic("theta", mu + tau * eta)
        pm.Normal("obs", theta, EIGHT_SCHOOLS_SE, observed=EIGHT_SCHOOLS_EFFECTS)
    return model
