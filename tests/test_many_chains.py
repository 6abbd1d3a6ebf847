"""l2hmc_theano.sample: the whole batch as one InferenceData, like pm.sample's."""
import warnings

import arviz as az
import numpy as np
import pytest

import pymc3 as pm
import l2hmc_theano
from l2hmc_theano import L2HMC, L2HMCSampler, ModelEnergy
from l2hmc_theano.many_chains import write_netcdf

Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SE = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


@pytest.fixture(scope="module")
def schools():
    """Centred eight schools with coords, dims and a Deterministic, and a sampler warmed up
    (no network training: the layout, not the mixing, is under test)."""
    with pm.Model(coords={"school": [f"s{i}" for i in range(8)]}) as model:
        mu = pm.Normal("mu", 0, 5)
        tau = pm.HalfCauchy("tau", 5)
        theta = pm.Normal("theta", mu, tau, dims="school")
        pm.Deterministic("shrink", (theta - mu) / tau, dims="school")
        pm.Normal("obs", theta, SE, observed=Y, dims="school")
    sampler = L2HMCSampler(ModelEnergy(model), seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler.train(train_steps=20, batch_size=40, progressbar=False, check=False, compare_hmc=False)
    return model, sampler


def _record_starts(monkeypatch):
    """A list that collects the positions every MH step of the batch starts from."""
    starts = []
    original = L2HMCSampler.mh_step_carrying

    def spy(self, x, *args):
        starts.append(np.array(x))
        return original(self, x, *args)

    monkeypatch.setattr(L2HMCSampler, "mh_step_carrying", spy)
    return starts


def test_the_result_has_pm_samples_variables_shapes_coords_and_stats(schools):
    model, sampler = schools
    with model:
        ours = l2hmc_theano.sample(draws=7, chains=40, sampler=sampler, random_seed=1, progressbar=False)
        theirs = pm.sample(draws=7, tune=2, chains=2, cores=1, step=L2HMC(sampler=sampler), random_seed=1,
                           return_inferencedata=True, progressbar=False, compute_convergence_checks=False)
    assert set(ours.groups()) == set(theirs.groups()) - {"log_likelihood"}
    for group in ("posterior", "sample_stats"):
        a, b = getattr(ours, group), getattr(theirs, group)
        assert set(a.data_vars) == set(b.data_vars), group
        for name in a.data_vars:
            assert a[name].dims == b[name].dims, (group, name)
            assert a[name].shape[2:] == b[name].shape[2:], (group, name)
            assert a[name].dtype == b[name].dtype, (group, name)
    assert ours.posterior.sizes["chain"] == 40 and ours.posterior.sizes["draw"] == 7
    assert list(ours.posterior["school"].values) == list(theirs.posterior["school"].values)
    np.testing.assert_array_equal(ours.observed_data["obs"], theirs.observed_data["obs"])
    # Constrained values and deterministics: tau > 0 and shrink = (theta - mu) / tau.
    post = ours.posterior
    assert float(post["tau"].min()) > 0
    np.testing.assert_allclose(post["shrink"], (post["theta"] - post["mu"]) / post["tau"], rtol=1e-10)
    # lp is the model's log density at each draw.
    logp = model.fastlogp
    for c, d in ((0, 0), (13, 6)):
        point = {"mu": post["mu"].values[c, d], "theta": post["theta"].values[c, d],
                 "tau_log__": np.log(post["tau"].values[c, d])}
        assert float(ours.sample_stats["lp"][c, d]) == pytest.approx(logp(point), rel=1e-8)


def test_it_continues_the_training_chains_and_is_reproducible(schools, monkeypatch):
    model, sampler = schools
    starts = _record_starts(monkeypatch)
    compiles = []
    compile_back_transform = l2hmc_theano.many_chains._compile_back_transform
    monkeypatch.setattr(l2hmc_theano.many_chains, "_compile_back_transform",
                        lambda *args: compiles.append(args) or compile_back_transform(*args))
    l2hmc_theano.many_chains._BACK_TRANSFORMS.pop(sampler.energy_target, None)
    with model:
        a = l2hmc_theano.sample(draws=3, chains=40, sampler=sampler, random_seed=5, progressbar=False)
        b = l2hmc_theano.sample(draws=3, chains=40, sampler=sampler, random_seed=5, progressbar=False)
        c = l2hmc_theano.sample(draws=3, chains=40, sampler=sampler, random_seed=6, progressbar=False)
    np.testing.assert_array_equal(starts[0], sampler.history["chains"])  # no tuning: the chains go on
    assert len(starts) == 9
    assert len(compiles) == 1  # the back-transform is compiled once for the three calls
    np.testing.assert_array_equal(a.posterior["theta"], b.posterior["theta"])
    assert not np.array_equal(a.posterior["theta"], c.posterior["theta"])


def test_an_over_large_request_fails_before_sampling(schools, monkeypatch):
    model, sampler = schools

    def refuse(*args, **kwargs):
        raise AssertionError("sampling started")

    monkeypatch.setattr(L2HMCSampler, "mh_step_carrying", refuse)
    monkeypatch.setattr(l2hmc_theano.fit, "train", refuse)
    with model, pytest.raises(ValueError, match=r"would hold .* GiB .* fewer chains or draws.*thin"):
        l2hmc_theano.sample(draws=10 ** 6, chains=1000, progressbar=False)
    with model, pytest.raises(ValueError, match="max_memory"):
        l2hmc_theano.sample(draws=100, chains=40, sampler=sampler, max_memory=10_000, progressbar=False)


def test_ctrl_c_returns_the_draws_made_so_far(schools, monkeypatch):
    model, sampler = schools
    original = L2HMCSampler.mh_step_carrying
    calls = []

    def interrupt_at_the_fifth(self, *args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(L2HMCSampler, "mh_step_carrying", interrupt_at_the_fifth)
    with model, pytest.warns(UserWarning, match="interrupted: returning the 4 of 50 draws"):
        idata = l2hmc_theano.sample(draws=50, chains=40, sampler=sampler, random_seed=0, progressbar=False)
    assert idata.posterior.sizes["draw"] == 4


def test_chains_that_never_move_are_reported():
    """A step size far too large: every proposal is rejected, and the warning says so."""
    with pm.Model() as model:
        pm.Normal("x", 0.0, 1.0)
    sampler = L2HMCSampler(ModelEnergy(model), step_size=1e4, zero_network=True, n_steps=2, seed=0)
    sampler.history = {"chains": np.linspace(-1.0, 1.0, 20)[:, None]}
    with model, pytest.warns(UserWarning, match="20 of 20 chains never moved"):
        idata = l2hmc_theano.sample(draws=5, chains=20, sampler=sampler, random_seed=0, progressbar=False)
    np.testing.assert_array_equal(idata.posterior["x"].values[:, -1], np.linspace(-1.0, 1.0, 20))


def test_the_netcdf_file_round_trips(schools, tmp_path):
    model, sampler = schools
    with model:
        idata = l2hmc_theano.sample(draws=5, chains=40, sampler=sampler, random_seed=0, progressbar=False)
    path = write_netcdf(idata, tmp_path / "draws.nc")
    back = az.from_netcdf(path)
    for group in ("posterior", "sample_stats", "observed_data"):
        for name, value in getattr(idata, group).data_vars.items():
            np.testing.assert_array_equal(getattr(back, group)[name].values, value.values)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["draws.nc"]


@pytest.mark.slow
def test_many_chains_have_the_exact_moments():
    """x ~ N(1, 2), s ~ HalfNormal(1) (sampled as log s), y = x + s (a Deterministic): the means
    and sds from 100 chains x 400 draws within 4 Monte Carlo standard errors (ArviZ's mcse)."""
    with pm.Model() as model:
        x = pm.Normal("x", 1.0, 2.0)
        s = pm.HalfNormal("s", 1.0)
        pm.Deterministic("y", x + s)
    half_mean, half_var = np.sqrt(2 / np.pi), 1 - 2 / np.pi
    exact = {"x": (1.0, 2.0), "s": (half_mean, np.sqrt(half_var)), "y": (1.0 + half_mean, np.sqrt(4 + half_var))}
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = l2hmc_theano.sample(draws=400, chains=100, random_seed=2, progressbar=False, train_steps=100)
    for name, (mean, sd) in exact.items():
        value = idata.posterior[name]
        se_mean = float(az.mcse(idata, var_names=[name], method="mean")[name])
        se_sd = float(az.mcse(idata, var_names=[name], method="sd")[name])
        assert abs(float(value.mean()) - mean) < 4 * se_mean, (name, float(value.mean()), mean, se_mean)
        assert abs(float(value.std()) - sd) < 4 * se_sd, (name, float(value.std()), sd, se_sd)


def test_superchains_share_their_starts_and_get_a_nested_rhat(schools, monkeypatch):
    """With superchains=K the chains start in K consecutive groups, one point each; chains that
    have hardly moved from K different points are flagged by nested R-hat."""
    model, sampler = schools
    starts = _record_starts(monkeypatch)
    with model, pytest.warns(UserWarning, match=r"nested R-hat over 4 superchains is .* \(> 1.01\)"):
        l2hmc_theano.sample(draws=3, chains=40, superchains=4, tune=0, sampler=sampler, random_seed=0,
                            progressbar=False)
    groups = starts[0].reshape(4, 10, -1)
    np.testing.assert_array_equal(groups, np.repeat(groups[:, :1], 10, axis=1))
    assert len({tuple(g[0]) for g in groups}) == 4
    with model, pytest.raises(ValueError, match="superchains must be an integer >= 2 that divides chains"):
        l2hmc_theano.sample(draws=3, chains=40, superchains=3, sampler=sampler, progressbar=False)


def test_convergence_checks_can_be_left_out(schools):
    """compute_convergence_checks=False (pm.sample's argument) leaves out the R-hat checks and
    their warnings, not the others; by default chains that hardly moved are flagged."""
    model, sampler = schools
    kwargs = dict(draws=4, chains=40, superchains=4, tune=0, sampler=sampler, random_seed=0, progressbar=False)
    with model, warnings.catch_warnings(record=True) as checked:
        warnings.simplefilter("always")
        l2hmc_theano.sample(**kwargs)
    with model, warnings.catch_warnings(record=True) as unchecked:
        warnings.simplefilter("always")
        l2hmc_theano.sample(compute_convergence_checks=False, **kwargs)
    checked, unchecked = ([str(w.message) for w in ws] for ws in (checked, unchecked))
    assert any("rank R-hat" in m for m in checked) and any("nested R-hat" in m for m in checked)
    assert not any("R-hat" in m for m in unchecked)
    assert [m for m in checked if "R-hat" not in m] == unchecked
