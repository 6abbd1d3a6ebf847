"""Today's PyMC (>= 5, PyTensor): a model's batched energy against PyMC's own log density and
gradient, one row's invalid parameter kept to that row, and the zero-network generalized leapfrog
against PyMC's own HMC leapfrog."""
import numpy as np
import pytest

from l2hmc_theano._pymc import RaveledVars, pm
from l2hmc_theano._theano import floatX, theano, tt
from l2hmc_theano.dynamics import draw_masks, generalized_leapfrog, time_encoding
from l2hmc_theano.networks import ZeroFunctions
from l2hmc_theano.pymc_energy import PyMCModelEnergy


def eight_schools():
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 5.0)
        tau = pm.HalfCauchy("tau", 5.0)
        eta = pm.Normal("eta", 0.0, 1.0, shape=8)
        pm.Normal("y", mu + tau * eta, np.array([15.0, 10, 16, 11, 9, 11, 10, 18]),
                  observed=np.array([28.0, 8, -3, 7, -1, 1, 18, 12]))
    return model


def transformed():
    """A vector, a log-transformed and an interval-transformed variable (Jacobians in the density)."""
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.5, 2.0, shape=2)
        sigma = pm.HalfNormal("sigma", 1.5)
        p = pm.Beta("p", 2.0, 3.0)
        pm.Normal("y", mu.sum() * p, sigma, observed=np.array([0.3, -1.2, 2.0]))
    return model


MODELS = {"eight schools": eight_schools, "transformed": transformed}


def batched(energy):
    X = tt.matrix("X", dtype=floatX)
    U, dU = energy.value_and_grad(X)
    return theano.function([X], [U, dU])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_batched_energy_is_pymcs_own_density_and_gradient(name, rng):
    model = MODELS[name]()
    energy = PyMCModelEnergy(model)
    assert energy.var_names == [v.name for v in model.continuous_value_vars]
    assert energy.dim == sum(np.asarray(v).size for v in model.initial_point().values())
    rows = energy.start_array() + rng.normal(0, 0.7, size=(7, energy.dim))
    U, dU = batched(energy)(rows)
    logp, dlogp = model.compile_logp(), model.compile_dlogp()
    for row, u, du in zip(rows, U, dU):
        point = energy.array_to_point(row)
        np.testing.assert_allclose(u, -logp(point), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(du, -dlogp(point), rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(energy.point_to_array(point), row)


def test_an_invalid_parameter_is_that_rows_alone(rng):
    with pm.Model() as model:
        s = pm.Normal("s", 1.0, 1.0)  # untransformed: a row may put it at or below 0
        pm.Normal("y", 0.0, s, observed=np.array([0.3, -0.2]))
    U, dU = batched(PyMCModelEnergy(model))(np.array([[1.0], [-0.5], [2.0]]))
    assert np.isposinf(U[1]) and np.all(np.isfinite(U[[0, 2]]))
    logp = model.compile_logp()
    np.testing.assert_allclose(U[[0, 2]], [-logp({"s": 1.0}), -logp({"s": 2.0})], rtol=1e-12)


def test_zero_networks_are_pymcs_own_leapfrog(rng):
    """The generalized leapfrog with S = Q = T = 0 on a model's energy is PyMC's CpuLeapfrogIntegrator
    (unit mass matrix); d = -1 runs it with the momentum flipped."""
    from pymc.step_methods.hmc.integration import CpuLeapfrogIntegrator
    from pymc.step_methods.hmc.quadpotential import QuadPotentialDiag

    model = transformed()
    energy = PyMCModelEnergy(model)
    n_steps, eps = 7, 0.13
    x, v, d = tt.matrix("x", dtype=floatX), tt.matrix("v", dtype=floatX), tt.vector("d", dtype=floatX)
    _, grad = energy.value_and_grad(x)
    out = generalized_leapfrog(energy, ZeroFunctions(), x, v, grad, d, eps, time_encoding(n_steps),
                               draw_masks(n_steps, energy.dim, np.random.default_rng(0)))
    leapfrog_map = theano.function([x, v, d], [out[0], out[1], out[3]])
    integrator = CpuLeapfrogIntegrator(QuadPotentialDiag(np.ones(energy.dim)),
                                       model.logp_dlogp_function(ravel_inputs=True))
    xs = energy.start_array() + rng.normal(0, 0.7, size=(4, energy.dim))
    vs, ds = rng.normal(size=(4, energy.dim)), np.array([1.0, -1.0, 1.0, -1.0])
    x1, v1, logdet = leapfrog_map(xs, vs, ds)
    for i in range(4):
        state = integrator.compute_state(RaveledVars(xs[i].copy(), energy.point_map_info), ds[i] * vs[i])
        for _ in range(n_steps):
            state = integrator.step(eps, state)
        np.testing.assert_allclose(x1[i], state.q.data, rtol=0, atol=1e-10)
        np.testing.assert_allclose(v1[i], ds[i] * state.p, rtol=0, atol=1e-10)
    assert np.all(logdet == 0.0) and np.abs(x1 - xs).max() > 0.1


def test_a_discrete_variable_is_named():
    with pm.Model() as model:
        pm.Poisson("k", 3.0)
        pm.Normal("z", 0.0, 1.0)
    with pytest.raises(ValueError, match=r"discrete variables \(k\)"):
        PyMCModelEnergy(model)
