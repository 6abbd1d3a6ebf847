"""The cache of trained samplers: the same model and settings load, anything else trains afresh.

``conftest.py`` turns the cache off for the whole suite; the fixtures here turn it on, in a
temporary directory.  One sampler is trained (tiny settings) and shared by the tests.
"""
import functools
import json
import os
import shutil
import warnings

import numpy as np
import pytest

import l2hmc_theano
import pymc3 as pm
from l2hmc_theano import L2HMC, L2HMCSampler, cache
from l2hmc_theano.energy import FunctionEnergy
from l2hmc_theano.pymc3_energy import ModelEnergy
from l2hmc_theano.preconditioner import Preconditioner

# train_networks=True: a trained sampler whatever the budget decides (and L2HMC() and train() share the key).
TINY = dict(train_steps=5, batch_size=8, warmup_iterations=70, n_steps=2, seed=0, progressbar=False,
            train_networks=True)
MODEL_SOURCE = '''
import numpy as np
import pymc3 as pm


OBSERVED = (0.3, -1.2, 2.0, 0.1, 0.7, -0.4, 1.1, 0.0, -0.9, 0.5, 1.6, -0.2)
X = (1.0, 0.5, -1.0, 0.2, 0.9, -0.3, 0.4, 1.2, -0.8, 0.6, 0.1, -0.5)


def build_model(observed=OBSERVED, prior_sd=2.0, x=X):
    with pm.Model() as model:
        data = pm.Data("x", np.array(x))
        mu = pm.Normal("mu", 0.5, prior_sd, shape=2)
        sigma = pm.HalfNormal("sigma", 1.5)
        pm.Normal("y", mu.sum() * data, sigma, observed=np.array(observed))
    return model
'''
namespace = {}
exec(MODEL_SOURCE, namespace)
build_model, OBSERVED, X = namespace["build_model"], namespace["OBSERVED"], namespace["X"]


def changed(values, i=5, by=0.5):
    """``values`` with the ``i``-th changed: a middle one, printed as wide, so that Theano's printed graph
    (which elides the middle of an array) stays the same."""
    return values[:i] + (values[i] + by,) + values[i + 1:]


def _cache_on(patch, directory):
    patch.delenv("L2HMC_THEANO_CACHE", raising=False)
    patch.setenv("L2HMC_THEANO_CACHE_DIR", str(directory))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(cache directory, the sampler L2HMC() trained and cached there, its settings)."""
    directory = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        _cache_on(patch, directory)
        with build_model():
            step = L2HMC(**TINY)
    return directory, step.sampler, dict(TINY)


@pytest.fixture
def cache_dir(trained, monkeypatch):
    """The cache on, in the directory holding the trained sampler."""
    _cache_on(monkeypatch, trained[0])
    return trained[0]


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """The cache on, in an empty directory (not created yet)."""
    directory = tmp_path / "cache"
    _cache_on(monkeypatch, directory)
    return directory


@pytest.fixture
def no_training(monkeypatch):
    """L2HMCSampler.train replaced by a stub that records its calls and trains nothing (its
    history says ``interrupted`` when called with ``progressbar="interrupt"``)."""
    calls = []

    @functools.wraps(L2HMCSampler.train)  # its signature: train() and the cache inspect it
    def fake_train(self, **kwargs):
        calls.append(kwargs)
        self.history = {"interrupted": kwargs.get("progressbar") == "interrupt"}
        return self.history

    monkeypatch.setattr(L2HMCSampler, "train", fake_train)
    return calls


def settings(**changes):
    """The canonical settings of TINY with ``changes``."""
    kwargs = {**TINY, **changes}
    init = {k: kwargs.pop(k) for k in list(kwargs) if k in ("n_steps", "step_size", "hidden", "seed")}
    return cache.settings_of(init, kwargs)


def assert_same_parameters(a, b):
    assert a.step_size == b.step_size and a.n_steps == b.n_steps
    np.testing.assert_array_equal(a.masks, b.masks)
    for p, q in zip(a.networks.params, b.networks.params, strict=True):
        assert p.name == q.name
        np.testing.assert_array_equal(p.get_value(), q.get_value())
    for p, q in zip(a.preconditioner.values(), b.preconditioner.values(), strict=True):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(a.history["chains"], b.history["chains"])


def entries(directory):
    return sorted(p for p in os.listdir(directory))


def test_the_same_model_and_settings_load_without_training(trained, cache_dir, no_training, capsys):
    _, first, _ = trained
    assert len(entries(cache_dir)) == 1
    with build_model():  # built again: equal, not the same object
        step = L2HMC(**TINY)
        by_train = l2hmc_theano.train(**TINY)
    assert no_training == []
    assert "loaded the sampler trained on this model last time from " + str(cache_dir) in capsys.readouterr().err
    for sampler in (step.sampler, by_train):
        assert_same_parameters(first, sampler)
        for attribute in ("warmup_info", "selection", "training_problems"):  # (as JSON: NaN equals NaN)
            assert json.dumps(getattr(sampler, attribute)) == json.dumps(getattr(first, attribute))
        np.testing.assert_array_equal(sampler.history["loss"], first.history["loss"])
    assert len(entries(cache_dir)) == 1


def test_the_command_line_with_the_same_options_loads_the_same_sampler(trained, cache_dir, no_training, tmp_path,
                                                                       capsys, monkeypatch):
    from l2hmc_theano.cli import main

    model_file = tmp_path / "model.py"
    model_file.write_text(MODEL_SOURCE)
    out = tmp_path / "model.l2hmc.npz"
    args = [str(model_file), "--train-steps", "5", "--batch-size", "8", "--warmup-iterations", "70",
            "--n-steps", "2", "--seed", "0", "--no-progressbar", "--out", str(out)]
    assert main(args) == 0
    assert no_training == []
    printed = capsys.readouterr()
    assert "loaded the sampler trained on this model last time" in printed.err and "saved to" in printed.out
    assert_same_parameters(trained[1], l2hmc_theano.load(out, model=build_model()))

    @functools.wraps(L2HMCSampler.train)
    def train(self, **kwargs):
        raise RuntimeError("trains")

    monkeypatch.setattr(L2HMCSampler, "train", train)
    with pytest.raises(RuntimeError, match="trains"):
        main(args + ["--no-cache"])


def test_sample_from_the_cache_draws_what_the_trained_sampler_draws(trained, cache_dir, no_training):
    model = build_model()
    cached = l2hmc_theano.sample(draws=3, chains=8, model=model, random_seed=0, progressbar=False,
                                 compute_convergence_checks=False, **{k: v for k, v in TINY.items()
                                                                      if k not in ("seed", "progressbar")})
    assert no_training == []
    direct = l2hmc_theano.sample(draws=3, chains=8, model=model, sampler=trained[1], random_seed=0, progressbar=False,
                                 compute_convergence_checks=False)
    for name in ("mu", "sigma"):
        np.testing.assert_array_equal(cached.posterior[name].values, direct.posterior[name].values)


@pytest.mark.parametrize("changed", [
    dict(observed=changed(OBSERVED)),  # observed data (a constant)
    dict(prior_sd=3.0),  # a prior's parameter (the graph)
    dict(x=changed(X)),  # a pm.Data value (a shared variable)
], ids=["observed", "prior", "pm.Data"])
def test_another_model_misses(cache_dir, changed):
    same = cache.cache_key(ModelEnergy(build_model()), settings())
    assert cache.cache_key(ModelEnergy(build_model()), settings()) == same
    energy = ModelEnergy(build_model(**changed))
    assert cache.cache_key(energy, settings()) != same
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # not found: no failed load of the other model's entry
        assert cache.lookup(energy, settings()) is None


def test_pm_set_data_on_the_same_model_misses(cache_dir):
    model = build_model()
    before = cache.cache_key(ModelEnergy(model), settings())
    with model:
        pm.set_data({"x": np.array(changed(X))})
    assert cache.cache_key(ModelEnergy(model), settings()) != before


@pytest.mark.parametrize("changed", [dict(train_steps=6), dict(seed=1), dict(seed=None), dict(hidden=(10, 9)),
                                     dict(target_accept=0.7)])
def test_other_settings_miss(cache_dir, changed):
    energy = ModelEnergy(build_model())
    assert cache.lookup(energy, settings()) is not None
    assert cache.cache_key(energy, settings(**changed)) != cache.cache_key(energy, settings())
    assert cache.lookup(energy, settings(**changed)) is None


def test_settings_are_canonical_and_only_plain_values_are_cached():
    assert settings(hidden=(10, 10)) == settings(hidden=[10, 10]) == settings()  # (10, 10) is the default
    assert settings(progressbar=True) == settings(progressbar=False)  # does not change what is trained
    assert settings(learning_rate=1e-3) == settings()  # a default given explicitly
    assert settings()["init"]["seed"] == 0 and settings(seed=None)["init"]["seed"] is None
    assert cache.settings_of({"networks": object()}, {}) is None
    assert cache.settings_of({"preconditioner": Preconditioner(2, "diag")}, {}) is None
    assert cache.settings_of({}, {"no_such_argument": 1}) is None
    assert cache.cache_key(FunctionEnergy(lambda X: (X ** 2).sum(axis=1), 2), settings()) is None


def test_a_function_energy_is_never_cached(empty_cache, no_training):
    l2hmc_theano.train(lambda X: (X ** 2).sum(axis=1), dim=2, **TINY)
    assert len(no_training) == 1 and not empty_cache.exists()


def test_a_damaged_entry_warns_and_is_trained_again(trained, tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    shutil.copytree(trained[0], directory)
    _cache_on(monkeypatch, directory)
    (entry,) = entries(directory)
    path = directory / entry
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    with build_model():
        with pytest.warns(UserWarning, match=f"cached sampler '{path}' could not be loaded .*training afresh"):
            sampler = L2HMC(**TINY).sampler
    assert entries(directory) == [entry]
    assert_same_parameters(l2hmc_theano.load(path, model=build_model()), sampler)
    assert cache.lookup(ModelEnergy(build_model()), settings()) is not None


def test_a_garbage_entry_is_ignored_with_a_warning(trained, tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    shutil.copytree(trained[0], directory)
    _cache_on(monkeypatch, directory)
    (entry,) = entries(directory)
    (directory / entry).write_bytes(b"not a zip file at all")
    with pytest.warns(UserWarning, match="could not be loaded"):
        assert cache.lookup(ModelEnergy(build_model()), settings()) is None


def modified_times(directory):
    return {p: os.stat(directory / p).st_mtime_ns for p in entries(directory)}


def test_cache_false_neither_reads_nor_writes(cache_dir, no_training):
    from l2hmc_theano.many_chains import _resolve_sampler  # sample()'s training, without the sampling

    before = modified_times(cache_dir)
    with build_model() as model:
        L2HMC(cache=False, **TINY)
        l2hmc_theano.train(cache=False, **TINY)
        _resolve_sampler(model, None, 0, False, {k: v for k, v in TINY.items() if k != "progressbar"}, cache=False)
    assert len(no_training) == 3  # each trained instead of loading the entry
    assert modified_times(cache_dir) == before


@pytest.mark.parametrize("value", ["off", "0", "false", "NO"])
def test_the_environment_turns_it_off(cache_dir, no_training, monkeypatch, value):
    before = modified_times(cache_dir)
    monkeypatch.setenv("L2HMC_THEANO_CACHE", value)
    assert not cache.enabled()
    with build_model():
        L2HMC(**TINY)
    assert len(no_training) == 1 and modified_times(cache_dir) == before
    assert cache.lookup(ModelEnergy(build_model()), settings()) is None


def test_a_finished_training_is_stored_an_interrupted_one_is_not(empty_cache, no_training):
    with build_model():
        L2HMC(**{**TINY, "progressbar": "interrupt"})  # the stub's history says: interrupted
        assert not empty_cache.exists()
        L2HMC(**TINY)
    assert len(no_training) == 2 and len(entries(empty_cache)) == 1


def test_an_unwritable_cache_warns_once_and_goes_on(tmp_path, monkeypatch, no_training):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    _cache_on(monkeypatch, blocker / "cache")  # cannot be created: its parent is a file
    monkeypatch.setattr(cache, "_warned_write", False)
    with build_model():
        with pytest.warns(UserWarning, match="Could not write the trained sampler to the cache"):
            L2HMC(**TINY)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            L2HMC(**{**TINY, "seed": 1})
    assert len(no_training) == 2


def test_training_problems_survive_and_warn_again_on_a_hit(trained, empty_cache):
    sampler = trained[1]
    energy = ModelEnergy(build_model())
    problems, sampler.training_problems = sampler.training_problems, ["acceptance is low (a test)"]
    try:
        assert cache.store(sampler, energy, settings()) is not None
    finally:
        sampler.training_problems = problems
    with pytest.warns(UserWarning, match=r"looks poor: acceptance is low \(a test\)"):
        loaded = cache.lookup(energy, settings())
    assert loaded.training_problems == ["acceptance is low (a test)"]


def test_entries_are_plain_npz_and_nothing_else_is_left(cache_dir):
    for name in entries(cache_dir):
        assert name.endswith(".npz") and len(name) == 64 + 4, name
        with np.load(cache_dir / name, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        assert "meta" in arrays and "history/loss" in arrays


def test_clear_cache_removes_the_entries_only(trained, tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    shutil.copytree(trained[0], directory)
    (directory / "notes.npz").write_bytes(b"the user's")
    (directory / ".l2hmc-abc.tmp").write_bytes(b"left over")
    _cache_on(monkeypatch, directory)
    assert l2hmc_theano.clear_cache() == 1
    assert entries(directory) == ["notes.npz"]
    assert cache.lookup(ModelEnergy(build_model()), settings()) is None
    assert l2hmc_theano.clear_cache() == 0


def test_the_cache_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("L2HMC_THEANO_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "l2hmc_theano"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "l2hmc_theano"
    monkeypatch.setenv("L2HMC_THEANO_CACHE_DIR", str(tmp_path / "mine"))
    assert cache.cache_dir() == tmp_path / "mine"


def test_the_suite_runs_with_the_cache_off():
    assert os.environ["L2HMC_THEANO_CACHE"] == "off" and not cache.enabled()
