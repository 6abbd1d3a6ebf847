"""Bad input gets a clear error that names the problem and the fix."""
import numpy as np
import pytest

import pymc3 as pm
from l2hmc_theano import FunctionEnergy, L2HMCSampler
from l2hmc_theano._theano import tt


def quadratic(X):
    return 0.5 * tt.sqr(X).sum(axis=1)


@pytest.fixture(scope="module")
def sampler():
    return L2HMCSampler(quadratic, dim=3, n_steps=2, zero_network=True)


def test_discrete_free_variable_is_named_with_a_fix():
    with pm.Model() as model:
        pm.Normal("mu", 0, 1)
        pm.Bernoulli("z", 0.3)
        pm.Poisson("k", 2.0)
    with pytest.raises(ValueError, match=r"'z', 'k'.*compound step"):
        L2HMCSampler(model)


def test_model_without_free_variables():
    with pm.Model() as model:
        pm.Normal("y", 0, 1, observed=[0.1, 0.2])
    with pytest.raises(ValueError, match="no continuous free variables"):
        L2HMCSampler(model)


def test_no_model_on_context_stack():
    with pytest.raises(TypeError, match="with model:"):
        L2HMCSampler()


def test_model_from_context_stack():
    with pm.Model():
        pm.Normal("a", 0, 1, shape=4)
        assert L2HMCSampler(n_steps=1).dim == 4


@pytest.mark.parametrize("n_steps", [0, -3, 2.5, True, "10"])
def test_bad_n_steps(n_steps):
    with pytest.raises(ValueError, match="n_steps must be an integer >= 1"):
        L2HMCSampler(quadratic, dim=2, n_steps=n_steps)


@pytest.mark.parametrize("step_size", [0, -0.1, float("nan"), float("inf"), "big", None])
def test_bad_step_size(step_size):
    with pytest.raises(ValueError, match="step_size must be a"):
        L2HMCSampler(quadratic, dim=2, step_size=step_size)


@pytest.mark.parametrize("jitter", [-0.1, 1.0, float("nan"), "some", None])
def test_bad_step_jitter(jitter):
    with pytest.raises(ValueError, match=r"step_jitter must be a number in \[0, 1\), got"):
        L2HMCSampler(quadratic, dim=2, step_jitter=jitter)
    assert L2HMCSampler(quadratic, dim=2, step_jitter=0).step_jitter == 0.0


@pytest.mark.parametrize("hidden", [(10,), (10, 0), (10, 2.5), "ab", None])
def test_bad_hidden(hidden):
    with pytest.raises(ValueError, match="hidden must be two positive integer"):
        L2HMCSampler(quadratic, dim=2, hidden=hidden)


def test_function_energy_needs_dim_and_matching_dim():
    with pytest.raises(ValueError, match="pass dim="):
        L2HMCSampler(quadratic)
    with pytest.raises(ValueError, match="dim=5 was given, but the target has dimension 3"):
        L2HMCSampler(FunctionEnergy(quadratic, 3), dim=5)


@pytest.mark.parametrize(
    "x, v, match",
    [
        (np.zeros(3), np.zeros(3), r"x must have shape \(batch, 3\).*x\[None, :\]"),
        (np.zeros((2, 4)), np.zeros((2, 4)), r"x must have shape \(batch, 3\)"),
        (np.zeros((2, 3)), np.zeros((3, 3)), "same shape"),
        (np.zeros((2, 3)), np.zeros((2, 2)), r"v must have shape \(batch, 3\)"),
    ],
)
def test_wrong_array_shapes(sampler, x, v, match):
    with pytest.raises(ValueError, match=match):
        sampler.transition(x, v, 1)


@pytest.mark.parametrize("direction", [0, 2, [1, -1], [1, 1, 0.5]])
def test_bad_direction(sampler, direction):
    with pytest.raises(ValueError, match="direction must be"):
        sampler.transition(np.zeros((3, 3)), np.zeros((3, 3)), direction)


def test_energy_and_sample_check_shapes(sampler):
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 3\)"):
        sampler.energy(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"x0 must have shape \(4, 3\)"):
        sampler.sample(2, n_chains=4, x0=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="n_draws and n_chains must be >= 1"):
        sampler.sample(0)


def test_divergent_proposal_is_rejected():
    """A proposal that leaves the finite reals is a rejection with A = 0, not an error."""
    sampler = L2HMCSampler(lambda X: (X ** 4).sum(axis=1), dim=2, n_steps=6, step_size=2.0,
                           zero_network=True, seed=0)
    x0 = np.full((4, 2), 3.0)
    draws, accept = sampler.sample(1, n_chains=4, x0=x0, seed=0)
    rng = np.random.default_rng(1)
    _, prob, accepted, diverging = sampler.mh_step_with_stats(
        x0, rng.normal(size=(4, 2)), np.ones(4), np.full(4, -1e-12))[:4]
    assert diverging.all() and not accepted.any()
    np.testing.assert_array_equal(prob, 0.0)
    np.testing.assert_array_equal(draws[0], x0)
