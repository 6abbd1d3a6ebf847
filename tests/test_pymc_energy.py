"""Today's PyMC (>= 5, PyTensor): a model's batched energy against PyMC's own log density and
gradient, one row's invalid parameter kept to that row, and the zero-network generalized leapfrog
against PyMC's own HMC leapfrog."""
import numpy as np
import pytest

from conftest import transformed_model
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


MODELS = {"eight schools": eight_schools, "transformed": transformed_model}


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

    model = transformed_model()
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


def eight_schools_exact_means(n_grid=800):
    """E[mu], E[tau] of eight schools by quadrature over (mu, log tau), theta integrated out:
    y_j ~ N(mu, sqrt(se_j^2 + tau^2)), mu ~ N(0, 5), tau ~ HalfCauchy(5)."""
    from scipy import stats

    y, se = np.array([28.0, 8, -3, 7, -1, 1, 18, 12]), np.array([15.0, 10, 16, 11, 9, 11, 10, 18])
    mu, log_tau = np.linspace(-40.0, 40.0, n_grid), np.linspace(-15.0, 7.0, n_grid)
    tau = np.exp(log_tau)
    scale = np.sqrt(se[None, :] ** 2 + tau[:, None] ** 2)
    log_p = stats.norm.logpdf(y[None, None, :], mu[None, :, None], scale[:, None, :]).sum(axis=2)
    log_p += stats.norm.logpdf(mu, 0.0, 5.0)[None, :] + (stats.halfcauchy.logpdf(tau, scale=5.0) + log_tau)[:, None]
    weight = np.exp(log_p - log_p.max())
    weight /= weight.sum()
    return float((weight * mu[None, :]).sum()), float((weight * tau[:, None]).sum())


def test_the_sampler_warms_up_and_samples_a_pymc_model_as_its_posterior():
    """L2HMCSampler on a PyMC >= 5 model: warm-up (step size, preconditioner, T) and HMC draws of 200
    chains; E[mu] and E[tau] within 5 Monte Carlo standard errors (from the spread of the chains'
    own means) of the exact ones."""
    from l2hmc_theano.sampler import L2HMCSampler

    sampler = L2HMCSampler(eight_schools(), seed=0)
    sampler.train(train_networks=False, progressbar=False)
    assert sampler.warmup_info is not None and sampler.networks_are_zero()
    draws, _ = sampler.sample(400, n_chains=200, seed=1)[:2]
    names = sampler.energy_target.var_names
    mu, tau = draws[:, :, names.index("mu")], np.exp(draws[:, :, names.index("tau_log__")])
    for values, exact in zip((mu, tau), eight_schools_exact_means()):
        chain_means = values.mean(axis=0)  # (chains,): independent, each of 400 draws
        mcse = chain_means.std(ddof=1) / np.sqrt(len(chain_means))
        assert abs(chain_means.mean() - exact) < 5 * mcse, (chain_means.mean(), exact, mcse)
        assert mcse < 0.1 * values.std()  # the check is not vacuous: the draws pin the mean down


def test_what_is_not_there_yet_on_todays_pymc_says_so():
    import l2hmc_theano

    assert l2hmc_theano.ModelEnergy is PyMCModelEnergy
    for name in ("L2HMC", "train", "sample", "clear_cache"):
        with pytest.raises(ImportError, match=rf"l2hmc_theano\.{name} needs PyMC3 \(Theano\) for now"):
            getattr(l2hmc_theano, name)
    with pytest.raises(AttributeError):
        l2hmc_theano.no_such_thing


@pytest.mark.slow
def test_the_sampler_trains_on_a_pymc_model_and_its_networks_keep_the_posterior():
    """Warm-up, training (the loss's gradient through the leapfrog, compiled by PyTensor) and the
    trained-or-HMC selection on a PyMC >= 5 model; draws with the trained networks (whichever the
    selection kept) have E[mu] and E[tau] within 5 Monte Carlo standard errors of the exact ones."""
    from l2hmc_theano.sampler import L2HMCSampler

    sampler = L2HMCSampler(eight_schools(), seed=0)
    sampler.train(train_steps=30, stop_when_flat=False, progressbar=False, compare_hmc=False)
    assert len(sampler.history["loss"]) == 30 and np.all(np.isfinite(sampler.history["loss"]))
    assert not sampler.networks_are_zero()  # trained networks, kept without the comparison
    draws, accept = sampler.sample(400, n_chains=200, seed=1)
    assert 0.3 < accept.mean() < 1.0
    names = sampler.energy_target.var_names
    mu, tau = draws[:, :, names.index("mu")], np.exp(draws[:, :, names.index("tau_log__")])
    for values, exact in zip((mu, tau), eight_schools_exact_means()):
        chain_means = values.mean(axis=0)
        mcse = chain_means.std(ddof=1) / np.sqrt(len(chain_means))
        assert abs(chain_means.mean() - exact) < 5 * mcse, (chain_means.mean(), exact, mcse)


def test_a_sampler_of_a_pymc_model_saves_and_loads_and_a_different_model_is_refused(tmp_path, rng):
    import l2hmc_theano
    from l2hmc_theano.sampler import L2HMCSampler

    sampler = L2HMCSampler(eight_schools(), seed=0)
    sampler.train(train_networks=False, progressbar=False)
    path = sampler.save(tmp_path / "schools.npz")
    loaded = l2hmc_theano.load(path, eight_schools())
    assert (loaded.n_steps, loaded.step_size) == (sampler.n_steps, sampler.step_size)
    x = sampler.energy_target.start_array() + rng.normal(size=(3, sampler.dim))
    v, d = rng.normal(size=(3, sampler.dim)), np.array([1.0, -1.0, 1.0])
    for ours, theirs in zip(sampler.transition(x, v, d), loaded.transition(x, v, d)):
        np.testing.assert_array_equal(ours, theirs)
    with pm.Model() as other:
        pm.Normal("mu", 0.0, 5.0)
        pm.Normal("z", 0.0, 1.0, shape=9)
    with pytest.raises(ValueError, match=r"this model has mu\(\), z\(9,\)"):
        l2hmc_theano.load(path, other)
