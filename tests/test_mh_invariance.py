"""The MH kernel with non-zero auxiliary functions leaves a correlated Gaussian invariant.

Chains start at exact draws from the target, so any bias of the kernel shows up
as a drift of the moments; tolerances are 4 Monte Carlo standard errors, from the ESS.
"""
import numpy as np
import pytest

import pymc3 as pm
from conftest import HandWrittenAux
from l2hmc_theano import FunctionEnergy, L2HMCSampler
from l2hmc_theano._theano import tt
from mcmc_checks import moment_z_scores

MEAN = np.array([0.5, -1.0])
COV = np.array([[2.0, 1.2], [1.2, 1.0]])
PREC = np.linalg.inv(COV)
Z_MAX = 4.0

pytestmark = pytest.mark.slow


def gaussian_energy(X):
    d = X - MEAN
    return 0.5 * (tt.dot(d, PREC) * d).sum(axis=1)


def gaussian_model():
    with pm.Model() as model:
        pm.MvNormal("x", mu=MEAN, cov=COV, shape=2)
    return model


class DropsLogDet(L2HMCSampler):
    """A wrong kernel: accepts as if the map preserved volume."""

    def propose(self, *args, **kwargs):
        p = super().propose(*args, **kwargs)
        return p._replace(log_accept=p.log_accept - p.logdet)


def run(sampler_cls, target, n_chains=100, n_draws=1000):
    sampler = sampler_cls(target, n_steps=5, step_size=0.25, seed=0, dim=2,
                          networks=HandWrittenAux(2, seed=1))
    x0 = np.random.default_rng(0).multivariate_normal(MEAN, COV, size=n_chains)
    draws, accept = sampler.sample(n_draws, n_chains=n_chains, x0=x0, seed=1)
    return draws, accept


@pytest.mark.parametrize("target", ["theano_function", "pymc3_model"])
def test_kernel_keeps_correlated_gaussian(target):
    energy = gaussian_energy if target == "theano_function" else gaussian_model()
    n_chains = 100 if target == "theano_function" else 40
    draws, accept = run(L2HMCSampler, energy, n_chains=n_chains)
    assert 0.2 < accept.mean() < 0.95  # the chains move, and not trivially
    z = moment_z_scores(draws, MEAN, COV)
    assert max(abs(v) for v in z.values()) < Z_MAX, z


def test_check_detects_a_kernel_that_ignores_the_jacobian():
    """The same check, same seeds, rejects a kernel without the log-det term."""
    draws, _ = run(DropsLogDet, gaussian_energy)
    z = moment_z_scores(draws, MEAN, COV)
    assert max(abs(v) for v in z.values()) > 3 * Z_MAX, z


@pytest.mark.parametrize("kind", ["diag", "dense", "lowrank"])
def test_preconditioned_kernel_with_step_jitter_keeps_correlated_gaussian(kind):
    """The dynamics in y = L^-1 (x - mu) of a preconditioner that is not the target's own
    (shifted, and for dense rotated), with the step size jittered per chain and step."""
    sampler = L2HMCSampler(gaussian_energy, n_steps=5, step_size=0.25, seed=0, dim=2,
                           networks=HandWrittenAux(2, seed=1), preconditioner=kind, step_jitter=0.4)
    factor = np.array([1.3, 0.7]) if kind != "dense" else np.array([[1.3, 0.0], [0.5, 0.6]])
    extra = dict(basis=np.array([[0.6], [0.8]]), eigenvalues=np.array([3.0])) if kind == "lowrank" else {}
    sampler.preconditioner.set(MEAN + np.array([0.4, -0.3]), factor, **extra)
    x0 = np.random.default_rng(0).multivariate_normal(MEAN, COV, size=100)
    draws, accept = sampler.sample(1000, n_chains=100, x0=x0, seed=1)
    assert 0.2 < accept.mean() < 0.95
    z = moment_z_scores(draws, MEAN, COV)
    assert max(abs(v) for v in z.values()) < Z_MAX, z
