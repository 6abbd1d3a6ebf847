"""Training: reproducible from a seed, learns, survives bad gradients and Ctrl-C."""
import re
import warnings

import numpy as np
import pytest

import l2hmc_theano
from l2hmc_theano import Energy, FunctionEnergy, L2HMCSampler
from l2hmc_theano.training_guards import TrainingStepOutputs
from l2hmc_theano._theano import tt
from l2hmc_theano.diagnostics import autocorrelation, ess_per_step
from l2hmc_theano.targets import PAPER_SAMPLER, PAPER_TRAINING, SCG_COV, scg_energy

SCG = FunctionEnergy(scg_energy, 2, name="scg")


@pytest.fixture(scope="module")
def trained_pair():
    """Two samplers trained from the same seed (their compiled training steps are reused below)."""
    kw = dict(seed=3, **PAPER_SAMPLER, **PAPER_TRAINING, train_steps=15, batch_size=16, progressbar=False,
              check=False)
    a = l2hmc_theano.train(SCG, **kw)
    b = l2hmc_theano.train(SCG, **kw)
    return a, b


def test_same_seed_same_history(trained_pair):
    a, b = trained_pair
    for key in ("loss", "accept", "esjd", "step_size"):
        np.testing.assert_array_equal(a.history[key], b.history[key])
    np.testing.assert_array_equal(a.history["chains"], b.history["chains"])
    for pa, pb in zip(a.networks.params, b.networks.params):
        np.testing.assert_array_equal(pa.get_value(), pb.get_value())
    # Training changed the parameters and the step size (it is trainable).
    c = L2HMCSampler(SCG, seed=3)
    assert any(not np.array_equal(pa.get_value(), pc.get_value())
               for pa, pc in zip(a.networks.params, c.networks.params))
    assert a.step_size != c.step_size


@pytest.mark.slow
def test_training_beats_hmc_on_the_strongly_correlated_gaussian(trained_pair):
    """800 more training steps beat HMC (same T, best eps of the paper's grid) on ESS per step."""
    x0 = np.random.default_rng(1).multivariate_normal(np.zeros(2), SCG_COV, size=100)

    def ess(sampler):
        draws, _ = sampler.sample(600, n_chains=100, x0=x0, seed=2)
        return ess_per_step(draws, np.zeros(2), np.diag(SCG_COV))

    hmc = max(ess(L2HMCSampler(SCG, step_size=eps, zero_network=True, **PAPER_SAMPLER)) for eps in (0.1, 0.15, 0.2))
    sampler = trained_pair[0]
    before = ess(sampler)
    history = sampler.train(train_steps=800, progressbar=False, **PAPER_TRAINING)
    assert sampler.training_problems == []
    assert history["esjd"][-100:].mean() > 5 * history["esjd"][:20].mean()
    after = ess(sampler)
    assert after > 2 * hmc and after > 2 * before, (after, before, hmc)


def test_poorly_trained_sampler_warns(trained_pair):
    sampler = trained_pair[1]
    saved = sampler.log_step_size.get_value()
    sampler.log_step_size.set_value(np.log(60.0))  # proposals land far out: acceptance ~ 0
    try:
        with pytest.warns(UserWarning, match="looks poor: mean acceptance at the end of training is 0.0"):
            sampler.train(train_steps=20, batch_size=16, learning_rate=1e-9, progressbar=False, **PAPER_TRAINING)
        assert sampler.training_problems[0].startswith("mean acceptance at the end of training")
    finally:
        sampler.log_step_size.set_value(saved)


def test_non_finite_gradients_leave_parameters_unchanged():
    class NaNAux:
        """Networks whose S is NaN: every proposal diverges, every gradient is NaN."""

        def __init__(self):
            from l2hmc_theano._theano import theano

            self.w = theano.shared(np.ones(2), name="w")
            self.params = [self.w]

        def v_terms(self, x, grad, tau):
            z = tt.zeros_like(x)
            return z, z, z

        def x_terms(self, v, x_masked, tau):
            z = tt.zeros_like(v)
            return tt.log(-1.0 - tt.sqr(self.w)) + z, z, z

    sampler = L2HMCSampler(SCG, networks=NaNAux(), seed=0)
    with pytest.warns(UserWarning, match="5 of 5 training iterations had non-finite gradients and left the "
                                         "parameters unchanged: 5 with diverging proposals, 0 with none"):
        history = sampler.train(train_steps=5, batch_size=8, warmup=False, progressbar=False, check=False, compare_hmc=False)
    np.testing.assert_array_equal(sampler.networks.w.get_value(), np.ones(2))
    assert sampler.step_size == pytest.approx(0.1)
    assert np.all(history["diverging"] == 8) and np.all(np.isfinite(history["loss"]))
    assert np.all(history["replaced"] == 0)  # no healthy chain to copy


class WallEnergy(Energy):
    """U = |x|^2/2 + K/2 relu(|x_0| - R)^2 in 2-d: N(0, I) inside |x_0| < R, a stiff wall outside
    (there eps sqrt(K) > 2, the leapfrog is unstable and log A ~ -1e15: a chain stuck in the
    tails).  Like a model whose curvature overflows in its tails, d2U is NaN outside (U and dU
    are finite): dU carries a term 0 * sqrt(max(R - |x_0|, 0)) whose derivative is 0 * inf."""

    dim = 2

    def __init__(self, R=5.0, K=1e4):
        from l2hmc_theano._theano import theano

        self.R, self.K = R, K
        self.zero = theano.shared(0.0, name="zero")  # a variable, so the optimiser keeps 0 * inf

    def value_and_grad(self, X):
        x0 = X[:, 0]
        out = tt.nnet.relu(abs(x0) - self.R)
        U = 0.5 * tt.sqr(X).sum(axis=1) + 0.5 * self.K * tt.sqr(out)
        wall = self.K * out * tt.sgn(x0) + self.zero * tt.sqrt(tt.maximum(self.R - abs(x0), 0.0))
        return U, tt.set_subtensor(X[:, 0], x0 + wall)


def test_one_stuck_chain_with_nan_curvature_is_replaced_and_training_goes_on():
    """One of 8 chains sits on the wall: its gradient is NaN, which skipped every Adam step
    before (0 * NaN = NaN although its acceptance is 0).  Now the first step is skipped,
    the stuck chain becomes a copy of a healthy one, and the next steps are applied."""
    sampler = L2HMCSampler(WallEnergy(), n_steps=4, seed=0)
    initial = [p.get_value() for p in sampler.networks.params]
    x0 = np.clip(np.random.default_rng(5).normal(size=(8, 2)), -2.0, 2.0)
    x0[3] = [6.0, 0.0]
    sampler.history = {"chains": x0}  # train() continues these chains
    with pytest.warns(UserWarning, match=r"1 of 1 training iterations had non-finite gradients and left the "
                                         r"parameters unchanged: 0 with diverging proposals, 1 with none .*; "
                                         r"after 1 of them, 1 stuck chains"):
        first = sampler.train(train_steps=1, batch_size=8, burn_in_weight=0, progressbar=False, check=False, compare_hmc=False)
    assert (first["applied"][0], first["replaced"][0], first["diverging"][0]) == (0, 1, 0)
    chains = first["chains"]
    assert any(np.array_equal(chains[3], chains[k]) for k in range(8) if k != 3)
    for p, value in zip(sampler.networks.params, initial):
        np.testing.assert_array_equal(p.get_value(), value)

    # Per chain, from the same start: only chain 3 is stuck, and it did not diverge.
    (step_fn,) = [f for k, f in sampler.functions.items() if k[0] == "train"]
    rng = np.random.default_rng(0)
    out = TrainingStepOutputs._make(step_fn(x0, x0, rng.normal(size=(8, 2)), np.ones(8), np.log(rng.uniform(size=8)),
                                            np.ones(8)))
    applied, log_accept, diverging = out.applied, out.log_accept, out.proposal_diverging
    assert not applied and log_accept[3] < -1e10 and np.all(np.delete(log_accept, 3) > -20)
    assert not diverging.any()

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = sampler.train(train_steps=2, batch_size=8, burn_in_weight=0, progressbar=False, check=False, compare_hmc=False)
    assert history["applied"].all() and np.all(history["replaced"] == 0)
    assert any(not np.array_equal(p.get_value(), value) for p, value in zip(sampler.networks.params, initial))


def test_skipped_steps_in_the_warning_and_the_training_check():
    from l2hmc_theano.diagnostics import training_warnings
    from l2hmc_theano.training import skipped_steps_message

    n = 200
    history = {key: np.zeros(n) for key in ("diverging", "replaced")}
    history.update(loss=np.linspace(1.0, 0.0, n), accept=np.full(n, 0.7), applied=np.ones(n),
                   chains=np.zeros((8, 2)))
    history["applied"][[5, 6, 190, 195]] = 0
    history["diverging"][[6, 50]] = 2
    history["replaced"][[5, 190]] = [1, 3]
    assert skipped_steps_message(history).startswith(
        "4 of 200 training iterations had non-finite gradients and left the parameters unchanged: "
        "1 with diverging proposals, 3 with none")
    assert "after 2 of them, 4 stuck chains" in skipped_steps_message(history)
    assert training_warnings(None, history, baseline=False) == []  # 2 of the last 20: 10%, not more
    history["applied"][199] = 0
    assert training_warnings(None, history, baseline=False) == [
        "15% of the training steps in the last 10% of iterations were skipped (non-finite gradients)"]
    history["replaced"][:] = 0
    assert skipped_steps_message(history).endswith("; no chain was replaced (none was stuck, or none was "
                                                   "healthy to copy).")
    history["applied"][:] = 1
    assert skipped_steps_message(history) == ""


def test_ctrl_c_keeps_what_was_learned(trained_pair):
    sampler = trained_pair[1]
    key = next(k for k in sampler.functions if k[0] == "train")
    real, calls = sampler.functions[key], []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args)

    sampler.functions[key] = interrupted
    try:
        with pytest.warns(UserWarning, match="interrupted after 3 of 50"):
            history = sampler.train(train_steps=50, batch_size=8, progressbar=False, check=False, **PAPER_TRAINING)
    finally:
        sampler.functions[key] = real
    assert len(history["loss"]) == 3 and sampler.history is history


def test_training_continues_the_persistent_chains(trained_pair):
    sampler = trained_pair[1]
    key = next(k for k in sampler.functions if k[0] == "train")
    real, starts = sampler.functions[key], []

    def recording(*args):
        starts.append(args[0].copy())
        return real(*args)

    sampler.functions[key] = recording
    try:
        first = sampler.train(train_steps=2, batch_size=16, progressbar=False, check=False, **PAPER_TRAINING)
        second = sampler.train(train_steps=1, batch_size=16, progressbar=False, check=False, **PAPER_TRAINING)
        sampler.train(train_steps=1, batch_size=4, progressbar=False, check=False, **PAPER_TRAINING)
    finally:
        sampler.functions[key] = real
    np.testing.assert_array_equal(starts[2], first["chains"])
    assert not np.array_equal(starts[1], starts[0])
    assert starts[3].shape == (4, 2) and second["chains"].shape == (16, 2)


def test_bad_training_arguments():
    sampler = L2HMCSampler(SCG, zero_network=True)
    with pytest.raises(ValueError, match="train_steps must be an integer >= 1"):
        sampler.train(train_steps=0)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        sampler.train(batch_size=2.5)
    with pytest.raises(ValueError, match="learning_rate must be a finite number > 0"):
        sampler.train(learning_rate=-1)
    with pytest.raises(ValueError, match="burn_in_weight must be a finite number >= 0"):
        sampler.train(burn_in_weight=-0.5)
    with pytest.raises(ValueError, match="Pass coordinate_loss=False with scaled_jump=True"):
        sampler.train(scaled_jump=True)
    with pytest.raises(ValueError, match="fresh_draws must be one of 'standard', 'chains', got 'prior'"):
        sampler.train(fresh_draws="prior")
    with pytest.raises(TypeError, match="unknown keyword argument.*n_chain"):
        l2hmc_theano.train(SCG, n_chain=3)


def test_paper_ess_of_known_processes():
    """ESS per step of an AR(1) process with coefficient phi is (1 - phi) / (1 + phi)."""
    rng = np.random.default_rng(0)
    phi, n, chains = 0.8, 4000, 200
    x = np.empty((n, chains, 1))
    x[0] = rng.normal(size=(chains, 1))
    for t in range(1, n):
        x[t] = phi * x[t - 1] + np.sqrt(1 - phi ** 2) * rng.normal(size=(chains, 1))
    rho = autocorrelation(x, np.zeros(1), np.ones(1))
    np.testing.assert_allclose(rho[:5], phi ** np.arange(5), atol=0.01)
    # Truncation at rho < 0.05 drops a tail of sum_{t > 13} phi^t ~ 0.18 of the 4.0 total.
    exact_truncated = 1 / (1 + 2 * sum(phi ** t for t in range(1, 14)))
    assert ess_per_step(x, np.zeros(1), np.ones(1)) == pytest.approx(exact_truncated, rel=0.05)
    independent = rng.normal(size=(n, chains, 2))
    assert ess_per_step(independent, np.zeros(2), np.ones(2)) == pytest.approx(1.0, rel=0.02)


def test_per_coordinate_paper_ess_is_not_fooled_by_antithetic_moves():
    """Dim 0 flips sign every step (rho(1) = -1), dim 1 is AR(1) with phi = 0.95: averaged over
    dimensions rho(1) ~ -0.03 < 0.05 and the pooled estimator reads 1; per coordinate, dim 1's
    ESS is (1 - phi) / (1 + phi) up to the truncated tail."""
    rng = np.random.default_rng(1)
    phi, n, chains = 0.95, 2000, 100
    x = np.empty((n, chains, 2))
    x[0] = rng.normal(size=(chains, 2))
    for t in range(1, n):
        x[t, :, 0] = -x[t - 1, :, 0]
        x[t, :, 1] = phi * x[t - 1, :, 1] + np.sqrt(1 - phi ** 2) * rng.normal(size=chains)
    assert ess_per_step(x, np.zeros(2), np.ones(2)) == pytest.approx(1.0)
    per_dim = ess_per_step(x, np.zeros(2), np.ones(2), per_dim=True)
    exact_truncated = 1 / (1 + 2 * sum(phi ** t for t in range(1, 59)))  # phi^59 < 0.05
    assert per_dim[0] == pytest.approx(1.0)
    assert per_dim[1] == pytest.approx(exact_truncated, rel=0.1)


def test_annealing_schedule_and_tempered_energy():
    from l2hmc_theano._theano import change_flags, theano
    from l2hmc_theano.training_graph import TemperedEnergy

    temperature = theano.shared(np.asarray(4.0), name="T")
    with change_flags(compute_test_value="off"):
        X = tt.matrix()
        f = theano.function([X], list(TemperedEnergy(SCG, temperature).value_and_grad(X))
                            + list(SCG.value_and_grad(X)))
    U_t, dU_t, U, dU = f(np.random.default_rng(0).normal(size=(3, 2)))
    np.testing.assert_allclose(U_t, U / 4.0, rtol=1e-14)
    np.testing.assert_allclose(dU_t, dU / 4.0, rtol=1e-14)

    sampler = L2HMCSampler(SCG, zero_network=True, seed=0)
    history = sampler.train(train_steps=6, batch_size=8, start_temperature=3.0, temperature_decay=0.5,
                            progressbar=False, check=False)
    np.testing.assert_allclose(history["temperature"], [3.0, 1.5, 1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="temperature_decay must be in"):
        sampler.train(train_steps=1, start_temperature=3.0, temperature_decay=1.5)


def test_constant_forces_keep_values_and_cut_the_force_derivative():
    """ConstantForces: the same U and dU, but d(dU)/dx is zero for tt.grad (exact: 12 x^2)."""
    from l2hmc_theano._theano import change_flags, theano
    from l2hmc_theano.training_graph import ConstantForces

    quartic = FunctionEnergy(lambda X: (X ** 4).sum(axis=1), 2, name="quartic")
    with change_flags(compute_test_value="off"):
        X = tt.matrix()
        outputs = []
        for energy in (quartic, ConstantForces(quartic)):
            U, dU = energy.value_and_grad(X)
            outputs += [U, dU, tt.grad(dU.sum(), X, disconnected_inputs="ignore")]
        f = theano.function([X], outputs)
    x = np.random.default_rng(0).normal(size=(3, 2))
    U, dU, ddU, U_c, dU_c, ddU_c = f(x)
    np.testing.assert_array_equal(U_c, U)
    np.testing.assert_array_equal(dU_c, dU)
    np.testing.assert_allclose(ddU, 12 * x ** 2, rtol=1e-12)
    np.testing.assert_array_equal(ddU_c, 0.0)


def test_training_without_the_burn_in_batch_proposes_for_the_chains_only():
    sampler = L2HMCSampler(SCG, seed=4)
    history = sampler.train(train_steps=10, batch_size=8, burn_in_weight=0, constant_forces=True,
                            progressbar=False, check=False, compare_hmc=False)
    (step_fn,) = [f for k, f in sampler.functions.items() if k[0] == "train"]
    assert step_fn.proposals_per_chain == 1
    assert np.all(np.isfinite(history["loss"])) and history["applied"].all()
    assert history["chains"].shape == (8, 2)
    fresh = L2HMCSampler(SCG, seed=4)
    assert any(not np.array_equal(a.get_value(), b.get_value())
               for a, b in zip(sampler.networks.params, fresh.networks.params))


def test_fresh_draws_have_the_chains_mean_and_covariance():
    from l2hmc_theano.training import fresh_draws

    rng = np.random.default_rng(3)
    chains = rng.normal(size=(300, 3)) @ np.array([[2.0, 0.0, 0.0], [1.5, 0.5, 0.0], [0.0, 0.0, 0.1]]) + [1, -2, 5]
    # z = the unit vectors: the rows are m + the columns of L^T, so their scatter is L L^T exactly.
    out = fresh_draws(np.eye(3), chains).astype(float)
    cov = np.cov(chains, rowvar=False)
    centred = out - chains.mean(axis=0)
    np.testing.assert_allclose(centred.T @ centred, cov + 1e-6 * np.mean(np.diag(cov)) * np.eye(3), rtol=1e-5,
                               atol=1e-7)
    assert np.allclose(np.tril(centred, -1), 0)  # the rows of L^T, L the lower Cholesky factor
    # Fewer chains than dimensions (a singular covariance) still gives finite draws in the chains' span.
    few = rng.normal(size=(3, 6))
    draws = fresh_draws(rng.standard_normal((50, 6)), few)
    assert draws.shape == (50, 6) and np.all(np.isfinite(draws))


def test_the_burn_in_batch_comes_from_the_chains_only_when_asked(monkeypatch):
    import l2hmc_theano.training as training

    real, seen = training.fresh_draws, []

    def spy(z, chains_y):
        seen.append(np.array(chains_y))
        return real(z, chains_y)

    monkeypatch.setattr(training, "fresh_draws", spy)
    sampler = L2HMCSampler(SCG, seed=5, preconditioner="diag")
    mu, sigma = np.array([1.0, -1.0]), np.array([2.0, 4.0])
    sampler.preconditioner.set(mu, sigma)
    x0 = mu + sigma * np.random.default_rng(6).normal(size=(8, 2))
    sampler.history = {"chains": x0}  # training continues from these
    options = dict(batch_size=8, burn_in_weight=1.0, warmup=False, progressbar=False, check=False,
                   compare_hmc=False, stop_when_flat=False, constant_forces=True)
    sampler.train(train_steps=3, fresh_draws="chains", **options)
    assert len(seen) == 3
    np.testing.assert_allclose(seen[0], (x0 - mu) / sigma, rtol=1e-5)  # the chains, in y
    seen.clear()
    sampler.train(train_steps=3, **options)  # the default: the paper's N(0, I)
    assert seen == []


def test_scaled_jump_measures_each_coordinate_in_the_chains_units():
    """sum_i ((x'_i - x_i) / sd_i)^2 * A, sd_i the batch's standard deviation, held constant by tt.grad."""
    from collections import namedtuple

    from l2hmc_theano._theano import change_flags, theano
    from l2hmc_theano.loss import squared_jump
    from l2hmc_theano.training_graph import jump_units

    Proposal = namedtuple("Proposal", "x diverging accept_prob")
    with change_flags(compute_test_value="off"):
        X, Xp, A = tt.matrix(), tt.matrix(), tt.vector()
        p = Proposal(Xp, tt.zeros_like(A), A)
        units = jump_units(X)
        outputs = [squared_jump(p, X), squared_jump(p, X, units), units,
                   tt.grad(units.sum(), X, disconnected_inputs="ignore")]
        f = theano.function([X, Xp, A], outputs)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)) * np.array([100.0, 1.0, 0.01])
    xp = x + rng.normal(size=(50, 3)) * np.array([10.0, 1.0, 0.1])
    a = rng.uniform(size=50)
    raw, scaled, sd, dsd = f(x, xp, a)
    np.testing.assert_allclose(raw, ((xp - x) ** 2).sum(1) * a, rtol=1e-10)
    np.testing.assert_allclose(sd, x.std(axis=0), rtol=1e-4)
    np.testing.assert_allclose(scaled, (((xp - x) / x.std(axis=0)) ** 2).sum(1) * a, rtol=1e-4)
    np.testing.assert_array_equal(dsd, 0.0)
    # The raw jump is the wide coordinate's; the scaled one is the narrow coordinate's.
    assert np.mean((xp - x)[:, 0] ** 2) / np.mean(raw / a) > 0.98
    assert np.mean(((xp - x)[:, 2] / sd[2]) ** 2) / np.mean(scaled / a) > 0.9


def test_training_with_the_scaled_jump():
    sampler = L2HMCSampler(SCG, seed=4)
    history = sampler.train(train_steps=10, batch_size=8, scaled_jump=True, coordinate_loss=False,
                            progressbar=False, check=False, compare_hmc=False)
    assert [k[5] for k in sampler.functions if k[0] == "train"] == [True]  # graph_key()'s scaled_jump
    assert np.all(np.isfinite(history["loss"])) and history["applied"].all()
    fresh = L2HMCSampler(SCG, seed=4)
    assert any(not np.array_equal(a.get_value(), b.get_value())
               for a, b in zip(sampler.networks.params, fresh.networks.params))


def test_coordinate_loss_is_the_paper_loss_of_each_coordinates_batch_esjd():
    """mean_i (lambda^2 / delta_i - delta_i / lambda^2), delta_i = mean_chains A (x'_i - x_i)^2 + 1e-4,
    a diverging chain's jump counted as 0; the slowest coordinate owns the reciprocal term."""
    from collections import namedtuple

    from l2hmc_theano._theano import change_flags, theano
    from l2hmc_theano.loss import coordinate_esjd_loss

    Proposal = namedtuple("Proposal", "x diverging accept_prob")
    with change_flags(compute_test_value="off"):
        X, Xp, A, D = tt.matrix(), tt.matrix(), tt.vector(), tt.bvector()
        f = theano.function([X, Xp, A, D], coordinate_esjd_loss(Proposal(Xp, D, A), X, scale=0.5))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 3))
    xp = x + rng.normal(size=(40, 3)) * np.array([1.0, 0.1, 0.01])
    a = rng.uniform(size=40)
    div = np.zeros(40, dtype="int8")
    div[3] = 1
    jumps = ((xp - x) ** 2 * a[:, None])
    jumps[3] = 0.0
    delta = jumps.mean(axis=0) + 1e-4
    expected = np.mean(0.5 / delta - delta / 0.5)
    assert f(x, xp, a, div) == pytest.approx(expected, rel=1e-10)
    assert 0.5 / delta[2] > 0.9 * np.sum(0.5 / delta)  # the slowest coordinate dominates


def test_training_with_the_coordinate_loss():
    sampler = L2HMCSampler(SCG, seed=4)
    history = sampler.train(train_steps=10, batch_size=8, coordinate_loss=True, progressbar=False, check=False, compare_hmc=False)
    assert [k[6] for k in sampler.functions if k[0] == "train"] == [True]
    assert np.all(np.isfinite(history["loss"])) and history["applied"].all()


def test_masked_retry_zeroes_the_step_of_stuck_and_diverging_proposals_only():
    from l2hmc_theano.training_guards import masked_retry

    calls = []

    def step_fn(*inputs):
        calls.append(inputs)
        return list(range(8))

    inputs = (None, None, None, None, None, np.array([1.1, 0.9, 1.2, 0.8]))
    out, masked = masked_retry(step_fn, inputs, np.array([0.0, -50.0, -1.0, np.nan]),
                               np.array([False, False, True, False]))
    assert masked == 3 and out == TrainingStepOutputs(*range(8)) and out.applied == 5
    np.testing.assert_array_equal(calls[0][5], [1.1, 0.0, 0.0, 0.0])
    # Nothing stuck, or everything: no retry.
    assert masked_retry(step_fn, inputs, np.zeros(4), np.zeros(4, bool)) == (None, 0)
    assert masked_retry(step_fn, inputs, np.full(4, -50.0), np.zeros(4, bool)) == (None, 0)
    assert len(calls) == 1


def test_training_backs_off_from_a_collapse_and_recovers():
    """A step size 4x past the leapfrog's stability limit on N(0, I) (eps = 2): every proposal is
    rejected.  Each window of 50 iterations at acceptance < 0.1 puts back the last healthy
    parameters with half the step size and half the learning rate, until the chains move."""
    gauss = FunctionEnergy(lambda X: 0.5 * tt.sqr(X).sum(axis=1), 2, name="gauss2")
    sampler = L2HMCSampler(gauss, n_steps=4, step_size=8.0, preconditioner=None, seed=0)
    start = [p.get_value() for p in sampler.networks.params]
    with pytest.warns(UserWarning, match=r"Training collapsed and backed off [2-6] time\(s\).*at iteration 49 "
                                         r"\(mean acceptance 0\.0"):
        history = sampler.train(train_steps=400, batch_size=32, warmup=False, stop_when_flat=False,
                                compare_hmc=False, check=False, progressbar=False)
    events = history["backoffs"]
    assert 2 <= len(events) <= 6 and events[0]["iteration"] == 49
    assert [e["iteration"] for e in events] == [50 * (k + 1) - 1 for k in range(len(events))]
    assert [e["learning_rate_factor"] for e in events] == [0.5 ** (k + 1) for k in range(len(events))]
    assert events[0]["step_size"] == pytest.approx(4.0)  # the start's 8, halved
    # The first back-off restored the starting parameters (the last healthy state known).
    assert history["accept"][:50].mean() < 0.1 and history["accept"][-50:].mean() > 0.3
    assert sampler.step_size < 2.0 and history["step_size"][-1] == pytest.approx(sampler.step_size)
    assert len(history["loss"]) == 400 and np.all(np.isfinite(history["loss"]))
    assert any(not np.array_equal(p.get_value(), s) for p, s in zip(sampler.networks.params, start))


def test_a_masked_retry_does_not_count_its_parked_proposals_as_accepted():
    """The retry's masked proposals (step size 0) stay put with acceptance 1; the history's
    acceptance and divergences, which the collapse guard judges, are the real proposals'."""
    from l2hmc_theano.training import TrainingSettings, run_training

    gauss = FunctionEnergy(lambda X: 0.5 * tt.sqr(X).sum(axis=1), 2, name="gauss2")
    sampler = L2HMCSampler(gauss, n_steps=2, preconditioner=None, seed=0)
    batch = 8
    log_accept = np.where(np.arange(batch) < 5, -50.0, -0.1)
    diverging = np.arange(batch) < 3
    calls = []

    def step_fn(x, z, v, d, log_u, step_scale):
        retry = bool(np.any(step_scale == 0))
        calls.append(retry)
        if retry:  # what the compiled step reports with the bad proposals parked
            return x, 1.0, 0.95, 0.1, 0, True, np.where(step_scale == 0, 0.0, -0.1), np.zeros(batch, bool)
        return x, 1.0, 0.02, 0.1, 3, False, log_accept, diverging

    step_fn.proposals_per_chain = 1
    settings = TrainingSettings(train_steps=60, batch_size=batch, stop_when_flat=False, collapse_window=50)
    with pytest.warns(UserWarning, match=r"collapsed and backed off 2 time.*at iteration 49 \(mean acceptance 0\.020"):
        history = run_training(sampler, step_fn, settings, np.random.default_rng(0), progressbar=False)
    assert calls[:2] == [False, True]
    np.testing.assert_array_equal(history["masked"], 5)
    np.testing.assert_array_equal(history["applied"], 1)
    np.testing.assert_allclose(history["accept"], 0.02)
    np.testing.assert_array_equal(history["diverging"], 3)
    assert history["backoffs"][0]["iteration"] == 49 and "acceptance 0.020" in history["backoffs"][0]["reason"]


def test_training_recovers_from_a_collapse_on_a_funnel():
    """A step size far too large on a 5-d funnel: the proposals diverge, the masked retry parks
    the diverging ones (their gradient is NaN), and the guard backs off on the dynamics' real
    acceptance until the chains move.  The history's acceptance is the one the trained sampler
    shows afterwards (counting parked proposals as accepted once read 0.70 here for a sampler
    that accepted 0.05, after a single back-off)."""
    dim = 5

    def funnel(X):
        v, x = X[:, 0], X[:, 1:]
        return tt.sqr(v) / 18.0 + 0.5 * tt.sqr(x).sum(axis=1) * tt.exp(-v) + 0.5 * (dim - 1) * v

    sampler = L2HMCSampler(FunctionEnergy(funnel, dim, name="funnel5"), n_steps=3, step_size=4.0,
                           preconditioner=None, seed=0)
    rng = np.random.default_rng(0)
    v = rng.normal(0.0, 3.0, size=32)
    sampler.history = {"chains": np.column_stack([v, rng.normal(size=(32, dim - 1)) * np.exp(v / 2)[:, None]])}
    with pytest.warns(UserWarning, match="backed off"):
        history = sampler.train(train_steps=400, batch_size=32, warmup=False, stop_when_flat=False,
                                compare_hmc=False, check=False, progressbar=False)
    events = history["backoffs"]
    assert len(events) >= 2 and events[0]["iteration"] == 49 and "mean acceptance" in events[0]["reason"]
    assert history["masked"].sum() > 0  # the retry path ran
    _, accept = sampler.sample(20, n_chains=32, x0=history["chains"], seed=1)
    assert accept.mean() > 0.1
    assert abs(history["accept"][-50:].mean() - accept.mean()) < 0.15


def test_a_chain_that_never_moved_is_replaced_when_training_ends():
    """Chain 0 never moves (a stub step moves the others): the chains training hands on are
    the others and a copy of one of them."""
    import dataclasses

    from l2hmc_theano.training import FROZEN_WINDOW, TrainingSettings, run_training

    gauss = FunctionEnergy(lambda X: 0.5 * tt.sqr(X).sum(axis=1), 2, name="gauss2")
    sampler = L2HMCSampler(gauss, n_steps=2, preconditioner=None, seed=0)
    batch = 6

    def step_fn(x, z, v, d, log_u, step_scale):
        moved = x + np.where(np.arange(batch) == 0, 0.0, 0.01)[:, None]
        return moved, 1.0, 0.8, 0.1, 0, True, np.zeros(batch), np.zeros(batch, bool)

    step_fn.proposals_per_chain = 1
    settings = TrainingSettings(train_steps=FROZEN_WINDOW + 10, batch_size=batch, stop_when_flat=False)
    chains = np.arange(2 * batch, dtype=float).reshape(batch, 2)
    history = run_training(sampler, step_fn, settings, np.random.default_rng(0), progressbar=False, chains=chains)
    out = history["chains"]
    assert history["frozen"] == 1
    np.testing.assert_allclose(out[1:], chains[1:] + 0.01 * (FROZEN_WINDOW + 10))
    assert any(np.array_equal(out[0], row) for row in out[1:])
    # A run shorter than the window judges no chain.
    history = run_training(sampler, step_fn, dataclasses.replace(settings, train_steps=FROZEN_WINDOW - 1),
                           np.random.default_rng(0), progressbar=False, chains=chains)
    assert history["frozen"] == 0 and np.array_equal(history["chains"][0], chains[0])


def test_training_with_a_progress_bar_says_what_it_compiles(capsys):
    gauss = FunctionEnergy(lambda X: 0.5 * tt.sqr(X).sum(axis=1), 2, name="gauss2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        L2HMCSampler(gauss, n_steps=2, seed=0).train(train_steps=3, batch_size=8, warmup_iterations=70,
                                                     progressbar=True, check=False, compare_hmc=False)
    err = capsys.readouterr().err
    assert "the first run on a machine builds their C code" in err
    for what in ("the energy and its gradient", "the training step"):
        assert re.search(f"L2HMC: compiling {what}.* \\d+\\.\\d s", err), (what, err)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        L2HMCSampler(gauss, n_steps=2, seed=0).train(train_steps=3, batch_size=8, warmup_iterations=70,
                                                     progressbar=False, check=False, compare_hmc=False)
    assert "compiling" not in capsys.readouterr().err


def test_a_long_compile_prints_a_mark_every_heartbeat(capsys):
    """No silent stretch: while a compile lasts, a dot every heartbeat, then its seconds."""
    import time

    from l2hmc_theano.progress import compiling

    with compiling("something slow", True, heartbeat=0.05):
        time.sleep(0.32)
    err = capsys.readouterr().err
    match = re.fullmatch(r"L2HMC: compiling something slow \.\.\.(\.+) (\d+\.\d) s\n", err)
    assert match and len(match.group(1)) >= 2 and float(match.group(2)) >= 0.3, err
    with compiling("something quiet", False, heartbeat=0.05):
        time.sleep(0.1)
    assert capsys.readouterr().err == ""
