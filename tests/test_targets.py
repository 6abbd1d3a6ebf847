"""The synthetic targets: each PyMC3 model and its batched energy agree, moments are right."""
import numpy as np
import pytest

from l2hmc_theano import FunctionEnergy, ModelEnergy
from l2hmc_theano._theano import change_flags, theano, tt
from l2hmc_theano import targets

CASES = {
    "scg": (targets.strongly_correlated_gaussian, targets.scg_energy, 2),
    "icg": (lambda: targets.ill_conditioned_gaussian(6), targets.icg_energy(6), 6),
    "mog": (targets.mixture_of_gaussians, targets.mog_energy, 2),
    "rough_well": (lambda: targets.rough_well(3), targets.rough_well_energy(), 3),
}


def energies(energy):
    with change_flags(compute_test_value="off"):
        X = tt.matrix("X")
        return theano.function([X], list(energy.value_and_grad(X)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_and_batched_energy_agree_up_to_a_constant(name):
    build, fn, dim = CASES[name]
    X = np.random.default_rng(0).normal(0, 2, size=(7, dim))
    U_model, dU_model = energies(ModelEnergy(build(), noncentre=False))(X)
    U_fn, dU_fn = energies(FunctionEnergy(fn, dim))(X)
    offset = U_model - U_fn
    np.testing.assert_allclose(offset, offset[0], atol=1e-9)
    np.testing.assert_allclose(dU_model, dU_fn, rtol=1e-9, atol=1e-9)


def test_mixture_moments_by_quadrature():
    """The mixture's mean and covariance from its density on a fine grid."""
    grid = np.linspace(-8, 8, 801)
    xx, yy = np.meshgrid(grid, grid, indexing="ij")
    points = np.stack([xx.ravel(), yy.ravel()], axis=1)
    U = energies(FunctionEnergy(targets.mog_energy, 2))(points)[0]
    w = np.exp(-(U - U.min()))
    w /= w.sum()
    np.testing.assert_allclose(w @ points, 0.0, atol=1e-9)
    np.testing.assert_allclose((points * w[:, None]).T @ points, targets.MOG_COV, rtol=1e-6, atol=1e-9)


def test_gaussian_covariances():
    values, vectors = np.linalg.eigh(targets.SCG_COV)
    np.testing.assert_allclose(values, [0.1, 100.0])
    np.testing.assert_allclose(np.abs(vectors[:, 1]), [np.sqrt(0.5)] * 2)
    np.testing.assert_allclose(targets.icg_variances(3), [1e-2, 1.0, 1e2])
