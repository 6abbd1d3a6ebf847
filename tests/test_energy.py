"""Batched U and dU equal PyMC3's own logp and gradient, row by row."""
import numpy as np
import pytest

import pymc3 as pm
from conftest import transformed_model
from l2hmc_theano import FunctionEnergy, L2HMCSampler, ModelEnergy
from l2hmc_theano._theano import change_flags, floatX, theano, tt
from l2hmc_theano.targets import eight_schools


def mvnormal_50():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(50, 50))
    with pm.Model() as model:
        pm.MvNormal("x", mu=np.zeros(50), cov=A @ A.T / 50 + np.eye(50), shape=50)
    return model


MODELS = {
    "eight_schools_centred": lambda: eight_schools(True),
    "eight_schools_noncentred": lambda: eight_schools(False),
    "transformed": transformed_model,
    "mvnormal_50": mvnormal_50,
}


def batched_functions(energy):
    with change_flags(compute_test_value="off"):
        X = tt.matrix("X", dtype=floatX)
        U, dU = energy.value_and_grad(X)
        return theano.function([X], [U, dU])


@pytest.mark.parametrize("batching", ["vectorize", "map"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_batched_energy_matches_pymc3(name, batching, rng):
    model = MODELS[name]()
    energy = ModelEnergy(model, batching=batching, noncentre=False)
    reference = model.logp_dlogp_function()
    reference.set_extra_values({})
    assert energy.dim == reference.size
    X = rng.normal(0, 1, size=(5, energy.dim))
    U, dU = batched_functions(energy)(X)
    assert U.shape == (5,) and dU.shape == (5, energy.dim)
    for i in range(5):
        logp, dlogp = reference(X[i])
        np.testing.assert_allclose(U[i], -logp, rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(dU[i], -dlogp, rtol=1e-12, atol=1e-10)


def test_flat_layout_round_trips_points(small_model):
    energy = ModelEnergy(small_model)
    assert energy.var_names == ["mu", "sigma_log__", "p_logodds__"]
    point = {"mu": np.array([0.1, -0.2]), "sigma_log__": np.array(0.3), "p_logodds__": np.array(-0.4)}
    flat = energy.point_to_array(point)
    np.testing.assert_array_equal(flat, [0.1, -0.2, 0.3, -0.4])
    back = energy.array_to_point(flat)
    assert set(back) == set(point)
    for k in point:
        np.testing.assert_array_equal(back[k], point[k])
    # The model's own logp at that point equals -U of the flat vector.
    U = L2HMCSampler(small_model, zero_network=True, n_steps=1).energy(flat[None])
    np.testing.assert_allclose(-U[0], small_model.logp(point), rtol=1e-12)


def test_energy_is_differentiable_twice(small_model, rng):
    """The training loss differentiates through dU: d/dX sum(dU^2) must build and be finite."""
    energy = ModelEnergy(small_model)
    with change_flags(compute_test_value="off"):
        X = tt.matrix("X", dtype=floatX)
        _, dU = energy.value_and_grad(X)
        hess_term = theano.function([X], tt.grad(tt.sqr(dU).sum(), X))
    value = hess_term(rng.normal(size=(3, energy.dim)))
    assert value.shape == (3, energy.dim) and np.all(np.isfinite(value))
    assert np.abs(value).max() > 0


def test_function_energy_must_return_a_vector():
    energy = FunctionEnergy(lambda X: X ** 2, 3, name="squares")
    with pytest.raises(ValueError, match="'squares'.*must return a \\(batch,\\) vector"):
        batched_functions(energy)


def test_function_energy_gradient(rng):
    energy = FunctionEnergy(lambda X: (X ** 4).sum(axis=1), 3)
    X = rng.normal(size=(4, 3))
    U, dU = batched_functions(energy)(X)
    np.testing.assert_allclose(U, (X ** 4).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(dU, 4 * X ** 3, rtol=1e-12)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_gradient_is_one_join_of_the_variables_blocks(name, rng):
    """A model's dU is a Join of its variables' column blocks (not IncSubtensors into zeros), with
    tt.grad's numbers and second derivatives; X read otherwise falls back to tt.grad."""
    from l2hmc_theano.logp_graph import grad_by_column_blocks
    from l2hmc_theano.vectorize import vectorize

    energy = ModelEnergy(MODELS[name](), noncentre=False)
    X = rng.normal(0, 0.7, size=(4, energy.dim))
    with change_flags(compute_test_value="off"):
        Xs = tt.matrix("X", dtype=floatX)
        _, dU = energy.value_and_grad(Xs)
        (logp,) = vectorize([energy._logp], energy._x, Xs)
        plain = tt.grad(-logp.sum(), Xs)
        f = theano.function([Xs], [dU, plain, tt.grad(tt.sqr(dU).sum(), Xs), tt.grad(tt.sqr(plain).sum(), Xs)])
        ops, plain_ops = ([str(n.op) for n in theano.function([Xs], g).maker.fgraph.apply_nodes] for g in (dU, plain))
        assert any("Join" in op for op in ops), ops
        assert sum("IncSubtensor" in op for op in ops) < sum("IncSubtensor" in op for op in plain_ops), ops
        assert grad_by_column_blocks((Xs.sum(axis=1) - logp).sum(), Xs, energy.dim) is None  # X read whole
        half = Xs[:, : energy.dim // 2]
        assert grad_by_column_blocks(tt.sqr(half).sum(), Xs, energy.dim) is None  # blocks miss columns
    joined, reference, second, second_reference = f(X)
    np.testing.assert_allclose(joined, reference, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(second, second_reference, rtol=1e-10, atol=1e-10)
