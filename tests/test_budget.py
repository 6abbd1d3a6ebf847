"""The setup budget: chains from the cost of a gradient, training only where it pays for itself."""
import numpy as np
import pytest

import pymc3 as pm
from l2hmc_theano import L2HMC, L2HMCSampler, budget
from l2hmc_theano._theano import floatX


class _Timed:
    """A stand-in for :func:`budget.gradient_seconds`: ``base + per_row * B`` seconds for B chains."""

    def __init__(self, base, per_row):
        self.base, self.per_row = base, per_row

    def __call__(self, sampler, x, repeats=5):
        return self.base + self.per_row * len(x)


@pytest.mark.parametrize("base, per_row, expected", [
    (2e-5, 5e-8, budget.MAX_BATCH),           # a small model: 200 chains cost little more than one
    (5e-5, 3e-6, 128),                        # (0.5 ms - t(1)) / t_row + 1 = 150 fit: 128 of BATCHES
    (5e-5, 1e-5, 32),                         # 45 fit: 32
    (5e-5, 1e-2, budget.MIN_BATCH),           # very expensive: the fewest that fit a preconditioner
])
def test_batch_size_follows_the_cost_of_a_gradient(monkeypatch, base, per_row, expected):
    monkeypatch.setattr(budget, "gradient_seconds", _Timed(base, per_row))
    batch, one, note = budget.choose_batch_size(None, np.zeros(3))
    assert batch == expected
    assert one == pytest.approx(base + per_row) and f"{batch} chains" in note


class _Sampler:
    n_steps = 3


def _info(ess_per_gradient_at_3):
    profile = [0.01, 0.02, ess_per_gradient_at_3, 0.01]
    return {"ess_per_gradient": profile, "loop_seconds": 1.0, "iterations": 100, "warmup_n_steps": 10,
            "compile_seconds": 2.0}


def _train_seconds(iteration, compile_seconds=2.0):
    """The training cost the budget predicts (its floors included)."""
    return (max(budget.TRAIN_COMPILE_COST * compile_seconds, budget.TRAIN_COMPILE_FLOOR)
            + budget.MIN_TRAIN_ITERATIONS * max(budget.TRAIN_ITERATION_COST * iteration, budget.TRAIN_ITERATION_FLOOR)
            + 100 * iteration)


def test_training_cost_has_floors_for_small_models():
    """A cheap energy compiles fast and iterates fast, but the training step does neither: at least
    TRAIN_COMPILE_FLOOR s of compile and TRAIN_ITERATION_FLOOR s per iteration."""
    cheap = dict(_info(1e-9), compile_seconds=0.01, loop_seconds=1e-3)
    train, reason = budget.training_decision(_Sampler(), cheap, 1.0)
    floor = budget.TRAIN_COMPILE_FLOOR + budget.MIN_TRAIN_ITERATIONS * budget.TRAIN_ITERATION_FLOOR
    assert train and f">= {floor + 100 * 1e-3 / 100 * 3 / 10:.3g} s" in reason


def test_training_runs_only_where_it_costs_less_than_half_of_hmcs_time_to_a_usable_posterior():
    iteration = 1.0 / 100 * 3 / 10  # T evaluations of U and dU per HMC step
    train_seconds = _train_seconds(iteration)
    one_chain = 1e-4
    # HMC's time to TARGET_ESS = TARGET_ESS / p * one_chain: p at the crossing makes it 2 x train_seconds.
    crossing = budget.TARGET_ESS * one_chain / (train_seconds / budget.PAYBACK)
    train, reason = budget.training_decision(_Sampler(), _info(0.9 * crossing), one_chain)
    assert train and "T = 3" in reason
    train, reason = budget.training_decision(_Sampler(), _info(1.1 * crossing), one_chain)
    assert not train and f"{train_seconds:.3g} s" in reason


def test_with_a_measured_draw_cost_hmcs_time_counts_draws_of_c0_plus_t_c1_seconds():
    c0, c1 = 2e-4, 2e-5
    iteration = 1.0 / 100 * 3 / 10
    train_seconds = _train_seconds(iteration)
    # HMC's time: TARGET_ESS / (3 p) draws of c0 + 3 c1 seconds, = train_seconds / PAYBACK at the crossing.
    crossing = budget.TARGET_ESS * (c0 + 3 * c1) / 3 / (train_seconds / budget.PAYBACK)
    for factor, trains in ((0.9, True), (1.1, False)):
        info = dict(_info(factor * crossing), draw_cost=[c0, c1])
        assert budget.training_decision(_Sampler(), info, 1e-9)[0] is trains


def test_without_a_prediction_it_trains():
    assert budget.training_decision(_Sampler(), None, 1e-4)[0]
    assert budget.training_decision(_Sampler(), {"ess_per_gradient": None}, 1e-4)[0]
    assert budget.training_decision(_Sampler(), _info(0.5), None)[0]


def _normal_model():
    with pm.Model() as model:
        pm.Normal("x", 0.0, 1.0, shape=3)
    return model


def test_a_posterior_hmc_mixes_well_gets_hmc_without_training(capsys):
    """A standard normal: HMC reaches a usable posterior in well under a second, so the step's
    defaults skip training, say why in one line, and keep warm-up's chains to start from."""
    with _normal_model():
        step = L2HMC(seed=0, warmup_iterations=100)
    sampler = step.sampler
    assert sampler.setup["train"] is False
    assert sampler.networks_are_zero()
    assert len(sampler.history["loss"]) == 0 and sampler.history["skipped"]
    assert sampler.history["chains"].shape == (budget.MAX_BATCH, 3)
    assert sampler.selection is None
    lines = [line for line in capsys.readouterr().err.splitlines() if "setup:" in line]
    assert len(lines) == 1 and "no training" in lines[0] and "ESS per gradient" in lines[0]


def test_train_networks_false_never_trains():
    """(``train_networks=True``, the default of ``L2HMCSampler.train``, is what the training tests run.)"""
    with _normal_model():
        skipped = L2HMCSampler(seed=0, n_steps=2)
        history = skipped.train(train_steps=5, batch_size=8, warmup_iterations=100, progressbar=False,
                                train_networks=False)
    assert len(history["loss"]) == 0 and skipped.networks_are_zero() and skipped.setup["train"] is False
    x = np.zeros((2, 3), dtype=floatX)
    assert skipped.sample(2, n_chains=2, x0=x, seed=0)[0].shape == (2, 2, 3)
    with pytest.raises(ValueError, match="train_networks"):
        skipped.train(train_networks="sometimes")
