"""After training: the trained dynamics are kept only when they beat plain HMC's min ESS by
the margin their costlier steps need."""
import warnings

import numpy as np
import pytest

import l2hmc_theano
from l2hmc_theano import FunctionEnergy, L2HMCSampler
from l2hmc_theano._theano import tt
from l2hmc_theano import selection
from l2hmc_theano.selection import NETWORKS_MARGIN, compare_with_hmc, describe, min_ess
from l2hmc_theano.tuning import keep_better_of_trained_and_hmc

SCALES = np.array([0.5, 1.0, 2.0])
GAUSSIAN = FunctionEnergy(lambda X: 0.5 * tt.sqr(X / SCALES).sum(axis=1), 3, name="gauss3")


def ar1(rho, chains, draws, dim, rng):
    """Stationary AR(1) draws ``(chains, draws, dim)`` with lag-1 autocorrelation ``rho``."""
    x = np.empty((chains, draws, dim))
    x[:, 0] = rng.standard_normal((chains, dim))
    for t in range(1, draws):
        x[:, t] = rho * x[:, t - 1] + np.sqrt(1 - rho ** 2) * rng.standard_normal((chains, dim))
    return x


@pytest.mark.parametrize("rho", [0.0, 0.8])
def test_min_ess_of_known_processes(rho, rng):
    """An AR(1) process has ESS N (1 - rho) / (1 + rho).  The relative sd of an autocorrelation-time
    estimate from N draws with a window of M lags is ~sqrt(2 (2M + 1) / N) (Sokal): for N = 20000
    and M <= 40 at most 0.09; the minimum over 2 x 3 estimates sits a little low, so allow
    [1 - 4 sd, 1 + 2 sd]."""
    n = 100 * 200
    expected = n * (1 - rho) / (1 + rho)
    ratio = min_ess(ar1(rho, 100, 200, 3, rng)) / expected
    assert 1 - 4 * 0.09 < ratio < 1 + 2 * 0.09, ratio


def scrambled(seed=0, scale=3.0):
    """A sampler whose networks' weights are large random values: dynamics far worse than HMC."""
    sampler = L2HMCSampler(GAUSSIAN, n_steps=3, seed=seed, preconditioner=None)
    rng = np.random.default_rng(seed)
    for p in sampler.networks.params:
        p.set_value(rng.normal(0, scale, size=p.get_value().shape))
    return sampler


def test_identical_dynamics_give_identical_figures(rng):
    """Zero heads are HMC: with common random numbers the two runs are the same draws."""
    sampler = scrambled()
    sampler.networks.zero_heads()
    chains = rng.standard_normal((40, 3)) * SCALES
    eps = sampler.step_size
    result = compare_with_hmc(sampler, chains, eps, np.random.default_rng(1), n_draws=20)
    assert result["trained"] == result["hmc"] and result["draws"] == 20 and result["chains"] == 40
    hmc = L2HMCSampler(GAUSSIAN, n_steps=3, seed=0, preconditioner=None, zero_network=True)
    x, v = chains[:5], rng.standard_normal((5, 3))
    for a, b in zip(sampler.transition(x, v, 1), hmc.transition(x, v, 1)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_networks_worse_than_hmc_are_replaced_by_hmc(rng):
    sampler = scrambled()
    chains = rng.standard_normal((60, 3)) * SCALES
    before = [p.get_value() for p in sampler.networks.params], sampler.step_size
    compare_with_hmc(sampler, chains, 0.6, np.random.default_rng(2), n_draws=5)
    for p, value in zip(sampler.networks.params, before[0]):  # the comparison itself changes nothing
        np.testing.assert_array_equal(p.get_value(), value)
    assert sampler.step_size == before[1]
    sampler.history = {"chains": chains}
    keep_better_of_trained_and_hmc(sampler, 0.6, np.random.default_rng(2))
    chosen = sampler.selection
    assert chosen["kept"] == "hmc" and chosen["hmc"] > 2 * chosen["trained"], chosen
    assert sampler.step_size == pytest.approx(0.6)
    for net in (sampler.networks.v_net, sampler.networks.x_net):
        for W, b in net.heads.values():
            assert not W.get_value().any() and not b.get_value().any()


@pytest.mark.parametrize("gain, kept", [(1.1, "hmc"), (NETWORKS_MARGIN, "trained"), (1.6, "trained")])
def test_networks_must_beat_hmc_by_the_margin_their_cost_needs(gain, kept, monkeypatch, rng):
    """Networks whose min ESS beats HMC's by less than NETWORKS_MARGIN (a step through them
    costs more time) are replaced by HMC; from the margin on they are kept."""
    sampler = scrambled()
    before = [p.get_value() for p in sampler.networks.params]
    monkeypatch.setattr(selection, "compare_with_hmc", lambda *args: {"trained": 100.0 * gain, "hmc": 100.0,
                                                                      "draws": 50, "chains": 60})
    sampler.history = {"chains": rng.standard_normal((60, 3))}
    keep_better_of_trained_and_hmc(sampler, 0.6, np.random.default_rng(2))
    assert sampler.selection["kept"] == kept
    assert sampler.networks_are_zero() == (kept == "hmc")
    if kept == "trained":
        for p, value in zip(sampler.networks.params, before):
            np.testing.assert_array_equal(p.get_value(), value)
    assert f"from {NETWORKS_MARGIN:g}x HMC's" in describe(sampler.selection)


def test_train_records_the_choice_and_save_load_keeps_it(tmp_path):
    sampler = L2HMCSampler(GAUSSIAN, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler.train(train_steps=20, batch_size=32, warmup_iterations=80, progressbar=False)
    chosen = sampler.selection
    assert chosen["kept"] in ("trained", "hmc") and chosen["chains"] == 32
    assert chosen["hmc_step_size"] == pytest.approx(sampler.warmup_info["step_size"])
    assert (chosen["kept"] == "trained") == (chosen["trained"] >= NETWORKS_MARGIN * chosen["hmc"])
    if chosen["kept"] == "hmc":
        assert sampler.step_size == pytest.approx(chosen["hmc_step_size"]) and sampler.training_problems == []
    loaded = l2hmc_theano.load(sampler.save(tmp_path / "s.npz"), model=GAUSSIAN)
    assert loaded.selection == chosen
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler.train(train_steps=2, batch_size=32, progressbar=False, compare_hmc=False)
    assert sampler.selection is None
