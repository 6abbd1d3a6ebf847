"""Partial non-centring (l2hmc_theano.reparam): which variables, the maps, the log-Jacobian,
the fitted weights, and that samplers, saved files and the step speak model values."""
import sys
from pathlib import Path

import numpy as np
import pytest

import pymc3 as pm
from l2hmc_theano import L2HMC, L2HMCSampler, ModelEnergy, load
from l2hmc_theano._theano import floatX, theano, tt
from l2hmc_theano.reparam import find_groups
from l2hmc_theano.targets import EIGHT_SCHOOLS_SE, eight_schools

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from models import banana, funnel, radon, stochastic_volatility, varying_slopes  # noqa: E402


def _names(model):
    return [group.var.name for group in find_groups(model, model.free_RVs)]


def _energy_function(energy):
    X = tt.matrix("X", dtype=floatX)
    U, dU = energy.value_and_grad(X)
    return theano.function([X], [U, dU])


def test_the_groups_are_the_normals_whose_sigma_depends_on_another_free_variable():
    assert _names(funnel(4)) == ["x"]
    assert _names(eight_schools(centred=True)) == ["theta"]
    assert _names(radon()) == ["a"]
    assert _names(eight_schools(centred=False)) == []  # eta ~ N(0, 1)
    assert _names(banana()) == []  # x2's mean depends on x1, its sigma does not
    assert ModelEnergy(eight_schools(centred=False)).noncentring is None
    assert ModelEnergy(eight_schools(centred=True), noncentre=False).noncentring is None


def test_a_funnel_in_its_sampling_coordinates_is_a_gaussian():
    energy = ModelEnergy(funnel(5))
    u = np.random.default_rng(0).normal(size=(6, 5)) * [3.0, 1, 1, 1, 1]
    U = _energy_function(energy)(u.astype(floatX))[0]
    gaussian = u[:, 0] ** 2 / 18.0 + 0.5 * np.sum(u[:, 1:] ** 2, axis=1)
    np.testing.assert_allclose(U - gaussian, (U - gaussian)[0], atol=1e-10)
    x = energy.to_model(u)
    np.testing.assert_allclose(x[:, 1:], u[:, 1:] * np.exp(u[:, :1] / 2), rtol=1e-12)


@pytest.fixture(scope="module")
def schools():
    """Centred eight schools, with weights fitted to a cloud where tau is about 12: the schools
    with se < 12 are informed more by their data than by the prior (lam = 0), the others not."""
    model = eight_schools(centred=True)
    energy = ModelEnergy(model)
    rng = np.random.default_rng(1)
    cloud = energy.to_model(rng.normal(size=(20, energy.dim)))
    cloud[:, 1] = np.log(12.0) + 0.1 * rng.normal(size=20)  # tau_log__
    energy.noncentring.fit(cloud)
    return model, energy, cloud


def test_the_members_the_prior_dominates_are_non_centred(schools):
    """r = median(sigma^2 h): with a Normal likelihood h = 1 / se^2, so r = median(tau^2) / se^2,
    and lam = 1 where r < 1.  A funnel has no data: lam = 1."""
    _, energy, cloud = schools
    tau2 = np.median(np.exp(2 * cloud[:, 1]))
    lam = energy.noncentring.weight_values()["theta"]
    np.testing.assert_array_equal(lam, tau2 / np.square(EIGHT_SCHOOLS_SE) < 1.0)
    assert 0 < lam.sum() < 8
    f = ModelEnergy(funnel(4))
    f.noncentring.fit(f.to_model(np.random.default_rng(2).normal(size=(10, 4))))
    np.testing.assert_array_equal(f.noncentring.weight_values()["x"], 1.0)


def test_the_maps_are_inverse_and_the_energy_carries_the_log_jacobian(schools):
    model, energy, _ = schools
    _check_maps(model, energy)


def heavy_tailed_schools(family):
    """Eight schools with centred group effects from ``family`` (location mu, scale tau)."""
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 5.0)
        tau = pm.HalfCauchy("tau", 5.0)
        theta = {"StudentT": lambda: pm.StudentT("theta", nu=4.0, mu=mu, sigma=tau, shape=8),
                 "Cauchy": lambda: pm.Cauchy("theta", alpha=mu, beta=tau, shape=8),
                 "Laplace": lambda: pm.Laplace("theta", mu=mu, b=tau, shape=8),
                 "Logistic": lambda: pm.Logistic("theta", mu=mu, s=tau, shape=8)}[family]()
        pm.Normal("y", theta, EIGHT_SCHOOLS_SE, observed=np.array([28.0, 8, -3, 7, -1, 1, 18, 12]))
    return model


@pytest.mark.parametrize("family", ["StudentT", "Cauchy", "Laplace", "Logistic"])
def test_heavy_tailed_groups_are_non_centred_exactly(family):
    """theta = lam mu + tau^lam theta_t for the other location-scale families: found, and the maps,
    the energy and log|det| as exact as the Normal's (weights fitted: some members non-centred,
    some not, so both branches are checked)."""
    model = heavy_tailed_schools(family)
    assert _names(model) == ["theta"]
    energy = ModelEnergy(model)
    cloud = energy.to_model(np.random.default_rng(1).normal(size=(20, energy.dim)))
    cloud[:, 1] = np.log(12.0)  # tau_log__: tau^2 / se^2 < 1 for some schools only
    energy.noncentring.fit(cloud)
    assert 0 < energy.noncentring.weight_values()["theta"].sum() < 8
    _check_maps(model, energy)


def test_a_random_walk_under_an_unknown_scale_is_non_centred_in_its_increments():
    """The stochastic-volatility model's walk s (scale sigma free): sampled as (s_0, increments /
    sigma); its data (one return per s_t, precision ~0.5) is weak beside the walk's prior precision
    2 / sigma^2, so every increment is non-centred; the maps and log|det| are exact."""
    model = stochastic_volatility(n=12)
    assert _names(model) == ["s"]
    energy = ModelEnergy(model)
    cloud = energy.to_model(np.random.default_rng(1).normal(size=(20, energy.dim)))
    cloud[:, 0] = np.log(0.15)  # sigma_log__
    energy.noncentring.fit(cloud)
    lam = energy.noncentring.weight_values()["s"]
    np.testing.assert_array_equal(lam, np.r_[0.0, np.ones(11)])
    u = np.random.default_rng(2).normal(size=(3, energy.dim))
    x = energy.to_model(u)
    sigma = np.exp(u[:, :1])
    np.testing.assert_allclose(x[:, 1:], u[:, 1:2] + np.cumsum(np.c_[np.zeros(3), sigma * u[:, 2:]], axis=1),
                               rtol=1e-12)
    u[:, :2] = [np.log(0.15), -1.0]  # where the returns' energy is moderate (else its gradient drowns in it)
    _check_maps(model, energy, u)


def test_an_mvnormal_under_a_free_cholesky_factor_is_non_centred_row_by_row():
    """theta_i ~ MvNormal(0, s^2 L0 L0^T), y_i ~ N(theta_i, se_i^2 I): the data's precision in the
    prior's whitened units is L^T L / se_i^2, whose mean diagonal s^2 tr(L0 L0^T) / (2 se_i^2) is
    below 1 for the rows with large se_i only: those rows are non-centred (theta_i = L u_i), the
    others kept; the maps and log|det| are exact."""
    chol0 = np.array([[1.0, 0.0], [0.5, 0.8]])
    se = np.array([1.0, 1.5, 1.8, 2.2, 3.0, 5.0])
    with pm.Model() as model:
        s = pm.Lognormal("s", 0.0, 1.0)
        theta = pm.MvNormal("theta", mu=np.zeros(2), chol=s * chol0, shape=(6, 2))
        pm.Normal("y", theta, se[:, None], observed=np.zeros((6, 2)))
    assert _names(model) == ["theta"]
    energy = ModelEnergy(model)
    cloud = energy.to_model(np.random.default_rng(1).normal(size=(10, energy.dim)))
    cloud[:, 0] = np.log(2.0)  # s_log__
    lam = energy.noncentring.fit(cloud)["theta"]
    expected = 4.0 * np.trace(chol0 @ chol0.T) / (2 * se ** 2) < 1.0
    np.testing.assert_array_equal(lam, np.repeat(expected[:, None], 2, axis=1))
    u = np.random.default_rng(2).normal(size=(3, energy.dim))
    x = energy.to_model(u)
    rows = u[:, 1:].reshape(3, 6, 2)
    whitened = np.exp(u[:, :1, None]) * rows @ chol0.T
    np.testing.assert_allclose(x[:, 1:].reshape(3, 6, 2), np.where(expected[:, None], whitened, rows), rtol=1e-12)
    _check_maps(model, energy)
    with pytest.raises(ValueError, match="0 or 1"):
        energy.noncentring.set_weights({"theta": np.full((6, 2), 0.5)})


def ar1_model(se):
    """x ~ AR1(k, tau_e) over 12 steps with k and tau_e free, observed with noise sd ``se``."""
    with pm.Model() as model:
        k = pm.Uniform("k", -0.95, 0.95)
        tau = pm.Gamma("tau", 2.0, 1.0)
        pm.AR1("x", k=k, tau_e=tau, shape=12)
        pm.Normal("y", model["x"], se, observed=np.sin(np.arange(12.0)))
    return model


@pytest.mark.parametrize("se, expected", [(10.0, 1.0), (0.1, 0.0)])
def test_an_ar1_under_free_parameters_is_non_centred_in_its_innovations(se, expected):
    """x_t = k x_{t-1} + sigma u_t (x_0 = sigma u_0 / sqrt(1 - k^2)) where the data are weak
    beside the prior (noise sd 10: lam = 1), x kept where they are strong (sd 0.1: lam = 0); the
    maps and log|det| exact either way."""
    model = ar1_model(se)
    assert _names(model) == ["x"]
    energy = ModelEnergy(model)
    assert energy.var_names[:2] == ["k_interval__", "tau_log__"]
    cloud = energy.to_model(np.random.default_rng(1).normal(size=(10, energy.dim)))
    cloud[:, 1] = 0.0  # tau = 1: r = 1 / (se^2 (1 + k^2))
    lam = energy.noncentring.fit(cloud)["x"]
    np.testing.assert_array_equal(lam, np.full(12, expected))
    u = np.random.default_rng(2).normal(size=(3, energy.dim))
    x = energy.to_model(u)
    k = 0.95 * np.tanh(u[:, 0] / 2)  # the interval transform's inverse, on (-0.95, 0.95)
    sigma = np.exp(-u[:, 1] / 2)
    walk = np.empty((3, 12))
    walk[:, 0] = sigma * u[:, 2] / np.sqrt(1 - k ** 2)
    for t in range(1, 12):
        walk[:, t] = k * walk[:, t - 1] + sigma * u[:, 2 + t]
    np.testing.assert_allclose(x[:, 2:], walk if expected else u[:, 2:], rtol=1e-10)
    _check_maps(model, energy)
    with pytest.raises(ValueError, match="all 0 or all 1"):
        energy.noncentring.set_weights({"x": np.r_[0.0, np.ones(11)]})


def test_lkj_varying_slopes_are_non_centred_exactly():
    """The centred LKJ varying-slopes model: (a, b) rows under the LKJ Cholesky factor are found,
    fitted (groups with few rows non-centred, some with many kept), and the maps exact."""
    model = varying_slopes()
    assert _names(model) == ["ab"]
    energy = ModelEnergy(model)
    assert energy.var_names[0] == "chol_cholesky-cov-packed__"  # (L00, L10, L11), the diagonal's logs
    u = np.random.default_rng(1).normal(size=(20, energy.dim)) * 0.3
    x = energy.to_model(u)
    x[:, [0, 2]] = np.log(0.4)  # L about 0.4 I: r = 0.16 (rows + sum x^2) / 2 is below 1 for small groups only
    lam = energy.noncentring.fit(x)["ab"]
    assert 0 < lam[:, 0].sum() < 20
    _check_maps(model, energy, u[:5])


def _check_maps(model, energy, u=None):
    """At sampling points ``u`` (default: standard normal ones): the maps invert, U(u) is the model's
    energy at x(u) less log|det dx/du|, which matches a numerical Jacobian, as dU/du matches U's
    central differences."""
    u = np.random.default_rng(3).normal(size=(5, energy.dim)).astype(floatX) if u is None else u
    x, log_jacobian = energy.to_model_with_jacobian(u)
    np.testing.assert_allclose(energy.to_sampling(x), u, atol=1e-12)
    centred = ModelEnergy(model, noncentre=False)
    np.testing.assert_allclose(_energy_function(energy)(u)[0],
                               _energy_function(centred)(x)[0] - log_jacobian, rtol=1e-10)
    # log|det dx/du| against a central-difference Jacobian of the map.
    h = 1e-6
    for row in range(2):
        jac = np.empty((energy.dim, energy.dim))
        for j in range(energy.dim):
            step = np.zeros(energy.dim)
            step[j] = h
            up, down = energy.to_model(np.stack([u[row] + step, u[row] - step]))
            jac[:, j] = (up - down) / (2 * h)
        assert np.linalg.slogdet(jac)[1] == pytest.approx(log_jacobian[row], abs=1e-6)
    # The gradient of U(u) against central differences of U.
    energy_function = _energy_function(energy)
    U, dU = energy_function(u)
    for j in range(energy.dim):
        step = np.zeros((1, energy.dim))
        step[0, j] = h
        numeric = (energy_function(u[:1] + step)[0] - energy_function(u[:1] - step)[0]) / (2 * h)
        assert dU[0, j] == pytest.approx(numeric[0], rel=1e-5, abs=1e-6)


def test_points_are_the_models_values(schools):
    model, energy, _ = schools
    point = dict(model.test_point, theta=np.arange(8.0))
    u = energy.point_to_array(point)
    back = energy.array_to_point(u)
    np.testing.assert_allclose(back["theta"], np.arange(8.0), atol=1e-12)
    lam = energy.noncentring.weight_values()["theta"] == 1
    assert not np.allclose(u[2:][lam], np.arange(8.0)[lam])  # non-centred: not theta
    np.testing.assert_allclose(u[2:][~lam], np.arange(8.0)[~lam])  # centred: theta


def test_a_saved_sampler_keeps_its_non_centring(schools, tmp_path):
    model, energy, _ = schools
    sampler = L2HMCSampler(energy, zero_network=True, seed=0)
    path = sampler.save(str(tmp_path / "s.npz"))
    loaded = load(path, model)
    assert loaded.energy_target.noncentring.names == ["theta"]
    np.testing.assert_array_equal(loaded.energy_target.noncentring.weight_values()["theta"],
                                  energy.noncentring.weight_values()["theta"])
    # A sampler saved without non-centring (or before it existed) loads without it.
    plain = L2HMCSampler(ModelEnergy(model, noncentre=False), zero_network=True, seed=0)
    loaded = load(plain.save(str(tmp_path / "plain.npz")), model)
    assert loaded.energy_target.noncentring is None
    # ... and the step built on a sampler keeps that sampler's non-centring.
    with model:
        kept = L2HMC(sampler=sampler).sampler.energy_target.noncentring.weight_values()["theta"]
        np.testing.assert_array_equal(kept, energy.noncentring.weight_values()["theta"])
        assert not np.all(kept == 1)
        assert L2HMC(sampler=plain).sampler.energy_target.noncentring is None


def test_the_step_returns_model_values_and_their_log_density(schools):
    model, energy, _ = schools
    sampler = L2HMCSampler(energy, zero_network=True, step_size=0.3, n_steps=3, seed=0)
    with model:
        idata = pm.sample(draws=20, tune=5, chains=1, step=L2HMC(sampler=sampler), random_seed=4,
                          return_inferencedata=True, progressbar=False, compute_convergence_checks=False)
    post, logp = idata.posterior, model.fastlogp
    for draw in (0, 10, 19):
        point = {"mu": post["mu"].values[0, draw], "theta": post["theta"].values[0, draw],
                 "tau_log__": np.log(post["tau"].values[0, draw])}
        assert idata.sample_stats["lp"].values[0, draw] == pytest.approx(logp(point), rel=1e-8)
    assert float(idata.sample_stats["accept"].mean()) > 0.3


@pytest.mark.slow
def test_a_funnel_sampled_with_the_defaults_has_the_exact_moments():
    """v ~ N(0, 3) and x_i ~ N(0, e^(v/2)): means 0 and sd(v) = 3, within 4 Monte Carlo
    standard errors (ArviZ's mcse), and the chains reach the neck: 20% of the draws below
    v's exact 20% quantile, within 4 binomial-with-ESS standard errors."""
    import arviz as az

    model = funnel(5)
    with model:
        step = L2HMC(train_steps=100, seed=0, progressbar=False)
        idata = pm.sample(draws=1000, tune=200, chains=2, cores=1, step=step, random_seed=3,
                          return_inferencedata=True, progressbar=False, compute_convergence_checks=False)
    post = idata.posterior
    for var, stat, exact in (("v", "mean", 0.0), ("v", "sd", 3.0), ("x", "mean", 0.0)):
        estimate = getattr(post[var], "std" if stat == "sd" else "mean")(dim=("chain", "draw")).values
        se = az.mcse(idata, var_names=[var], method=stat)[var].values
        assert np.all(np.abs(estimate - exact) < 4 * se), (var, stat, estimate, se)
    low = (post["v"].values < 3.0 * -0.8416).astype(float)  # v's exact 20% quantile
    ess = float(az.ess(low))  # (chain, draw)
    assert abs(low.mean() - 0.2) < 4 * np.sqrt(0.2 * 0.8 / ess), (low.mean(), ess)
    assert int(idata.sample_stats["diverging"].sum()) == 0


def test_training_with_a_progress_bar_says_when_it_compiles_the_non_centring(capsys):
    """Every compile during train() is announced: the non-centring's curvature and maps, and
    the MH step the trained-vs-HMC selection runs; without a progress bar, none."""
    import re
    import warnings

    def train(progressbar):
        sampler = L2HMCSampler(ModelEnergy(eight_schools(centred=True)), n_steps=2, seed=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sampler.train(train_steps=3, batch_size=8, warmup_iterations=70, progressbar=progressbar, check=False)
        return capsys.readouterr().err

    err = train(True)
    for what in ("the non-centring's curvature", "the non-centring's map to the model",
                 "the non-centring's inverse map", "the MH step"):
        assert re.search(f"L2HMC: compiling {re.escape(what)} \\.{{3,}} \\d+\\.\\d s", err), (what, err)  # a dot per 5 s
    assert "compiling" not in train(False)
