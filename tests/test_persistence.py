"""save -> load gives the same sampler; loading against another model fails clearly."""
import json
import os

import numpy as np
import pytest

import pymc3 as pm
import l2hmc_theano
from conftest import transformed_model
from l2hmc_theano import L2HMCSampler


@pytest.fixture(scope="module")
def saved(small_model, tmp_path_factory):
    sampler = L2HMCSampler(small_model, n_steps=3, step_size=0.07, hidden=(6, 5), seed=4)
    rng = np.random.default_rng(0)
    for p in sampler.networks.params:  # weights far from their initial values
        p.set_value(rng.normal(0, 0.3, size=p.get_value().shape))
    sampler.preconditioner.set(rng.normal(size=sampler.dim), rng.uniform(0.2, 3.0, size=sampler.dim))
    sampler.warmup_info = {"step_size": 0.07, "settled": True}
    sampler.history = {"chains": rng.normal(size=(5, sampler.dim))}
    path = tmp_path_factory.mktemp("saved") / "sampler.npz"
    assert sampler.save(path) == str(path)
    return sampler, path


def test_load_gives_identical_transitions(saved, small_model, rng):
    sampler, path = saved
    loaded = l2hmc_theano.load(path, model=small_model)
    assert (loaded.n_steps, loaded.hidden, loaded.step_size) == (3, (6, 5), pytest.approx(0.07))
    np.testing.assert_array_equal(loaded.masks, sampler.masks)
    assert loaded.preconditioner.kind == "diag" and loaded.warmup_info == sampler.warmup_info
    assert loaded.step_jitter == sampler.step_jitter == 0.3
    assert (loaded.loaded_from, sampler.loaded_from) == (str(path), None)
    np.testing.assert_array_equal(loaded.history["chains"], sampler.history["chains"])
    for a, b in zip(loaded.preconditioner.values(), sampler.preconditioner.values()):
        np.testing.assert_array_equal(a, b)
    x = rng.normal(size=(5, sampler.dim))
    v = rng.normal(size=(5, sampler.dim))
    d = np.array([1, -1, 1, 1, -1])
    for a, b in zip(sampler.transition(x, v, d), loaded.transition(x, v, d)):
        np.testing.assert_array_equal(a, b)


def test_load_with_an_equal_model_built_again(saved):
    _, path = saved
    with transformed_model():
        assert l2hmc_theano.load(path).dim == 4


def test_load_against_a_model_with_other_variables_fails(saved):
    _, path = saved
    with pm.Model() as other:
        pm.Normal("mu", 0, 1, shape=4)
    with pytest.raises(ValueError, match=r"trained on a model with variables mu\(2,\), sigma_log__"):
        l2hmc_theano.load(path, model=other)


@pytest.mark.parametrize("size", [1, 6])
def test_load_against_a_model_of_another_size_names_both_models(saved, size):
    """The model's variables and size against the file's, before anything of the file is used
    (not "the file is damaged"); the same through L2HMC(sampler=path)."""
    _, path = saved
    with pm.Model() as other:
        pm.Normal("theta", 0, 1, shape=size)
    message = (rf"trained on a model with variables mu\(2,\), sigma_log__\(\), p_logodds__\(\) \(4 dimensions\); "
               rf"this model has theta\({size},\) \({size}\)")
    with pytest.raises(ValueError, match=message):
        l2hmc_theano.load(path, model=other)
    with other, pytest.raises(ValueError, match=message):
        l2hmc_theano.L2HMC(sampler=str(path))


def test_load_against_a_model_with_other_data_fails(saved):
    _, path = saved
    with pm.Model() as other:  # same variables, other observed data
        mu = pm.Normal("mu", 0.5, 2.0, shape=2)
        sigma = pm.HalfNormal("sigma", 1.5)
        p = pm.Beta("p", 2.0, 3.0)
        pm.Normal("y", mu.sum() * p, sigma, observed=np.array([0.3, -1.2, 2.5]))
    with pytest.raises(ValueError, match="trained on a different model: its logp differs"):
        l2hmc_theano.load(path, model=other)


def test_save_into_a_missing_directory_writes_nothing(saved, tmp_path):
    sampler, _ = saved
    target = tmp_path / "no_such_dir" / "s.npz"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sampler.save(target)
    assert not target.parent.exists()


def test_save_leaves_no_temporary_files(saved):
    _, path = saved
    assert sorted(os.listdir(path.parent)) == ["sampler.npz"]


def test_saved_file_has_the_permissions_open_would_give(saved):
    _, path = saved
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask


def test_files_are_data_not_code(saved, tmp_path, small_model):
    _, path = saved
    with np.load(path, allow_pickle=False) as data:  # readable without pickle
        assert all(data[k].dtype != object for k in data.files)
    bad = tmp_path / "pickled.npz"
    np.savez(bad, meta=np.array([{"format": "x"}], dtype=object))
    with pytest.raises(ValueError, match="is not a saved l2hmc_theano sampler"):
        l2hmc_theano.load(bad, model=small_model)
    with pytest.raises(FileNotFoundError, match="No saved sampler"):
        l2hmc_theano.load(tmp_path / "missing.npz", model=small_model)


def test_zero_network_and_function_targets_round_trip(tmp_path):
    from l2hmc_theano._theano import tt

    def energy(X):
        return 0.5 * tt.sqr(X).sum(axis=1) + X[:, 0]

    sampler = L2HMCSampler(energy, dim=2, n_steps=2, zero_network=True, seed=1)
    sampler.save(tmp_path / "z.npz")
    loaded = l2hmc_theano.load(tmp_path / "z.npz", model=energy)
    assert loaded.zero_network and loaded.dim == 2
    with pytest.raises(ValueError, match="different model"):
        l2hmc_theano.load(tmp_path / "z.npz", model=lambda X: 0.5 * tt.sqr(X).sum(axis=1))


def _rewrite(src, dst, **changes):
    """Copy the saved file ``src`` to ``dst`` with some arrays replaced (None: dropped)."""
    with np.load(src, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    np.savez(dst, **{k: v for k, v in arrays.items() if v is not None})


def _without_settings(src, dst, keys, **changes):
    """:func:`_rewrite` with the settings ``keys`` left out of the file's meta."""
    with np.load(src, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
    for key in keys:
        del meta[key]
    _rewrite(src, dst, meta=np.array(json.dumps(meta)), **changes)


def test_truncated_file_is_refused_clearly(saved, tmp_path, small_model):
    _, path = saved
    data = path.read_bytes()
    for n in (len(data) // 2, len(data) - 10):
        bad = tmp_path / "truncated.npz"
        bad.write_bytes(data[:n])
        with pytest.raises(ValueError, match="is not a saved l2hmc_theano sampler, or it is truncated"):
            l2hmc_theano.load(bad, model=small_model)


def test_file_with_a_corrupt_byte_is_refused_clearly(saved, tmp_path, small_model):
    _, path = saved
    data = bytearray(path.read_bytes())
    # A byte in the middle of the largest array's stored data (not in a header field the zip
    # format does not check).
    import zipfile

    with zipfile.ZipFile(path) as z:
        member = max(z.infolist(), key=lambda i: i.compress_size)
    offset = member.header_offset
    name_len, extra_len = (int.from_bytes(data[offset + k:offset + k + 2], "little") for k in (26, 28))
    data[offset + 30 + name_len + extra_len + member.compress_size // 2] ^= 0xFF
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"truncated or corrupt \(BadZipFile: "):
        l2hmc_theano.load(bad, model=small_model)


def test_file_missing_a_setting_or_an_array_is_refused_clearly(saved, tmp_path, small_model):
    _, path = saved
    _without_settings(path, tmp_path / "no_steps.npz", ["n_steps"])
    with pytest.raises(ValueError, match="is not a saved l2hmc_theano sampler: it has no n_steps"):
        l2hmc_theano.load(tmp_path / "no_steps.npz", model=small_model)
    _rewrite(path, tmp_path / "no_masks.npz", masks=None)
    with pytest.raises(ValueError, match="it has no masks"):
        l2hmc_theano.load(tmp_path / "no_masks.npz", model=small_model)


@pytest.mark.parametrize("key", ["log_step_size", "param/"])
def test_non_finite_parameters_are_refused_at_load(saved, tmp_path, small_model, key):
    sampler, path = saved
    p = sampler.networks.params[0]
    key = key + p.name if key == "param/" else key
    with np.load(path, allow_pickle=False) as data:
        value = data[key].copy()
    value.flat[0] = np.nan
    _rewrite(path, tmp_path / "nan.npz", **{key: value})
    name = f"network parameter {p.name!r}" if key.startswith("param/") else repr(key)
    with pytest.raises(ValueError, match=f"{name} holds NaN or inf; the file is damaged"):
        l2hmc_theano.load(tmp_path / "nan.npz", model=small_model)


def test_non_finite_parameters_are_never_saved(saved, tmp_path):
    sampler, _ = saved
    p = sampler.networks.params[-1]
    good = p.get_value()
    bad = good.copy()
    bad.flat[0] = np.nan
    p.set_value(bad)
    try:
        with pytest.raises(ValueError, match=f"Cannot save the sampler: network parameter {p.name!r} holds"):
            sampler.save(tmp_path / "s.npz")
    finally:
        p.set_value(good)
    assert os.listdir(tmp_path) == []


def test_file_saved_before_preconditioners_loads_without_one(saved, tmp_path, small_model, rng):
    """An older file (no preconditioner in it) gives the sampler it was: dynamics in x."""
    sampler, path = saved
    old = tmp_path / "old.npz"
    _without_settings(path, old, ["preconditioner", "warmup", "step_jitter"],
                      **{"precond/mu": None, "precond/factor": None})
    loaded = l2hmc_theano.load(old, model=small_model)
    assert loaded.preconditioner is None and loaded.warmup_info is None and loaded.step_jitter == 0.0
    plain = L2HMCSampler(small_model, n_steps=3, hidden=(6, 5), seed=4, preconditioner=None, step_jitter=0.0)
    plain.log_step_size.set_value(sampler.log_step_size.get_value())
    for a, b in zip(plain.networks.params, sampler.networks.params):
        a.set_value(b.get_value())
    x = rng.normal(size=(3, sampler.dim))
    v = rng.normal(size=(3, sampler.dim))
    for a, b in zip(plain.transition(x, v, 1), loaded.transition(x, v, 1)):
        np.testing.assert_array_equal(a, b)
    assert np.abs(loaded.transition(x, v, 1)[0] - sampler.transition(x, v, 1)[0]).max() > 1e-3


def test_damaged_preconditioner_is_refused_clearly(saved, tmp_path, small_model):
    _, path = saved
    _rewrite(path, tmp_path / "negative.npz", **{"precond/factor": -np.ones(4)})
    with pytest.raises(ValueError, match="its diag preconditioner is missing or damaged .*scales must be > 0"):
        l2hmc_theano.load(tmp_path / "negative.npz", model=small_model)
    _rewrite(path, tmp_path / "missing.npz", **{"precond/mu": None})
    with pytest.raises(ValueError, match="its diag preconditioner is missing or damaged"):
        l2hmc_theano.load(tmp_path / "missing.npz", model=small_model)


def test_lowrank_preconditioner_round_trips_and_a_damaged_basis_is_refused(tmp_path, small_model, rng):
    sampler = L2HMCSampler(small_model, n_steps=3, hidden=(6, 5), seed=4, preconditioner="lowrank")
    basis = np.linalg.qr(rng.normal(size=(sampler.dim, 2)))[0]
    sampler.preconditioner.set(rng.normal(size=sampler.dim), rng.uniform(0.2, 3.0, size=sampler.dim), basis,
                               np.array([5.0, 0.1]))
    path = tmp_path / "lowrank.npz"
    sampler.save(path)
    loaded = l2hmc_theano.load(path, model=small_model)
    assert loaded.preconditioner.kind == "lowrank" and loaded.preconditioner.rank == 2
    x = rng.normal(size=(5, sampler.dim))
    v = rng.normal(size=(5, sampler.dim))
    for a, b in zip(sampler.transition(x, v, 1), loaded.transition(x, v, 1)):
        np.testing.assert_array_equal(a, b)
    _rewrite(path, tmp_path / "skewed.npz", **{"precond/basis": basis + 0.1})
    with pytest.raises(ValueError, match="its lowrank preconditioner is missing or damaged .*orthonormal"):
        l2hmc_theano.load(tmp_path / "skewed.npz", model=small_model)


def test_training_problems_and_with_history_the_whole_history_round_trip(saved, tmp_path, small_model):
    sampler, path = saved
    plain = l2hmc_theano.load(path, model=small_model)
    assert plain.training_problems == [] and set(plain.history) == {"chains"}  # by default: the final chains
    kept = sampler.training_problems, sampler.history
    sampler.training_problems = ["mean acceptance at the end of training is 0.05"]
    sampler.history = {**kept[1], "loss": np.array([1.5, np.nan]), "accept": np.array([0.5, 0.0]), "seconds": 2.5,
                       "stopped_early": False, "backoffs": [{"iteration": np.int64(1), "reason": "collapse"}]}
    try:
        sampler.save(tmp_path / "plain.npz")
        l2hmc_theano.persistence.save(sampler, tmp_path / "whole.npz", history=True)
    finally:
        sampler.training_problems, sampler.history = kept
    plain = l2hmc_theano.load(tmp_path / "plain.npz", model=small_model)
    assert plain.training_problems == ["mean acceptance at the end of training is 0.05"]
    assert set(plain.history) == {"chains"}
    whole = l2hmc_theano.load(tmp_path / "whole.npz", model=small_model)
    assert whole.training_problems == plain.training_problems
    np.testing.assert_array_equal(whole.history["loss"], [1.5, np.nan])  # a NaN loss is history, not damage
    np.testing.assert_array_equal(whole.history["accept"], [0.5, 0.0])
    np.testing.assert_array_equal(whole.history["chains"], sampler.history["chains"])
    assert (whole.history["seconds"], whole.history["stopped_early"]) == (2.5, False)
    assert whole.history["backoffs"] == [{"iteration": 1, "reason": "collapse"}]


def test_file_saved_before_training_problems_loads_without_them(saved, tmp_path, small_model):
    _, path = saved
    _without_settings(path, tmp_path / "old.npz", ["training_problems"])
    assert l2hmc_theano.load(tmp_path / "old.npz", model=small_model).training_problems == []
