"""Bad input gets a clear error that names the problem and the fix."""
import numpy as np
import pytest

import pymc3 as pm
from l2hmc_theano import FunctionEnergy, L2HMCSampler, ModelEnergy, StartError
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
    with pytest.raises(ValueError, match=r"z \(BinaryGibbsMetropolis\), k \(Metropolis\).*compound step.*L2HMC "
                                         r"on the continuous ones \(mu\)"):
        L2HMCSampler(model)


def test_a_discrete_only_model_is_told_which_steps_pymc3_would_use():
    with pm.Model() as model:
        pm.Poisson("k", 2.0)
        pm.Bernoulli("z", 0.3)
    with pytest.raises(ValueError, match=r"no continuous free variables.*pm.sample\(\) samples its discrete ones by "
                                         r"itself: k \(Metropolis\), z \(BinaryGibbsMetropolis\)"):
        L2HMCSampler(model)


def test_a_start_with_an_infinite_log_density_is_refused_before_warm_up(monkeypatch):
    """An observed value outside the support: StartError names the variable and its value, before
    warm-up or any training (which would run at acceptance 0 for minutes)."""
    from l2hmc_theano import warmup

    with pm.Model() as model:
        rate = pm.HalfNormal("rate", 1.0)
        pm.Exponential("y", rate, observed=[-1.0])
    monkeypatch.setattr(warmup, "warmup", lambda *a, **k: pytest.fail("warm-up ran"))
    with pytest.raises(StartError, match=r"y: log density -inf at its observed \[-1\.\]"):
        L2HMCSampler(model, seed=0).train(train_steps=2, batch_size=4)


def test_a_kink_at_the_initial_point_is_jittered_away_as_nuts_does():
    """The gradient is not finite at a = 0 only: warm-up's jittered starts avoid it (as NUTS's
    jitter+adapt_diag does), so the sampler starts, from points where the gradient is finite."""
    from l2hmc_theano.starts import initial_chains

    sampler = L2HMCSampler(ModelEnergy(_kinked_model()), seed=0)
    sampler.check_start()
    starts = initial_chains(sampler, 8, np.random.default_rng(0), 1.0)
    assert np.all(starts != 0.0) and np.all(np.isfinite(sampler.energy_and_grad(starts)[1]))


def test_a_gradient_not_finite_anywhere_near_the_start_names_the_variable():
    with pm.Model() as model:
        a = pm.Normal("a", 0, 1, testval=0.0)
        pm.Potential("root", tt.sqrt(-tt.abs_(a)))  # finite at a = 0 only, and its gradient nowhere
    sampler = L2HMCSampler(ModelEnergy(model), seed=0)
    with pytest.raises(StartError, match=r"gradient .* not finite .* in a \(initial values a = 0\)"):
        sampler.check_start()


def _kinked_model():
    """A model whose log density is finite at its initial point a = 0 but whose gradient is not."""
    import theano.tensor as tt

    with pm.Model() as model:
        a = pm.Normal("a", 0, 1, testval=0.0)
        pm.Potential("kink", -tt.sqrt(tt.abs_(a)))
    return model


def test_warm_up_that_never_accepts_stops_with_its_own_error():
    """Finite at the start, NaN everywhere else: warm-up says so after its first window."""
    from l2hmc_theano.warmup import WarmupError

    spike = FunctionEnergy(lambda X: tt.switch(tt.eq(X, 0.0).all(axis=1), 0.0, np.nan) + 0.0 * X.sum(axis=1), 2)
    sampler = L2HMCSampler(spike, seed=0, n_steps=2)
    with pytest.raises(WarmupError, match="none of 4 chains accepted a proposal in 15 iterations"):
        sampler.train(train_steps=2, batch_size=4)


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
