"""Warm-up: the Fisher-divergence preconditioner estimates, dual averaging, and the warm-up loop."""
import time
import warnings

import numpy as np
import pytest

import pymc3 as pm
from l2hmc_theano import FunctionEnergy, L2HMCSampler
from l2hmc_theano._theano import tt
from l2hmc_theano.fisher import EIGENVALUE_CUTOFF, fisher_dense, fisher_diagonal, fisher_lowrank
from l2hmc_theano.preconditioner import Preconditioner, fitted
from l2hmc_theano.budget import choose_n_steps
from l2hmc_theano.step_size import DualAveraging
from l2hmc_theano.trajectory_length import chain_ess_per_draw
from l2hmc_theano.starts import initial_chains
from l2hmc_theano.warmup import WarmupSettings, warmup

SCALES = np.array([0.01, 0.3, 1.0, 7.0, 100.0])


def test_fisher_diagonal_is_exact_for_a_gaussian_from_any_cloud(rng):
    """For U = sum (x - m)^2 / 2 s^2, g = (x - m) / s^2, so sd(x) / sd(g) = s^2 whatever the cloud."""
    m = rng.normal(size=5)
    x = rng.uniform(-1, 1, size=(50, 5)) + 3.0  # far from the mode, not Gaussian-distributed
    g = (x - m) / SCALES ** 2
    np.testing.assert_allclose(fisher_diagonal(x, g), SCALES, rtol=1e-10)


def test_fisher_dense_recovers_a_correlated_gaussians_covariance(rng):
    a = rng.normal(size=(4, 4))
    cov = a @ a.T + 0.1 * np.eye(4)
    x = rng.normal(size=(4000, 4)) * 2.0 + 1.0
    g = (x - 0.5) @ np.linalg.inv(cov)
    factor = fisher_dense(x, g)
    assert np.allclose(factor, np.tril(factor))
    np.testing.assert_allclose(factor @ factor.T, cov, rtol=1e-9, atol=1e-9)
    # The diagonal estimate of the same cloud is not the covariance's diagonal (it is a compromise).
    assert not np.allclose(fisher_diagonal(x, g) ** 2, np.diag(cov), rtol=0.05)


def test_fisher_dense_shrinks_when_draws_are_few(rng):
    """With fewer draws than dimensions the sample covariances are singular; the estimate is
    still a valid (finite, positive diagonal) Cholesky factor."""
    x = rng.normal(size=(6, 10))
    factor = fisher_dense(x, 2.0 * x)
    assert np.all(np.isfinite(factor)) and np.all(np.diag(factor) > 0)


def test_fisher_estimates_keep_a_frozen_coordinate_finite():
    x = np.column_stack([np.linspace(-1, 1, 20), np.zeros(20)])
    g = np.column_stack([x[:, 0] / 4.0, np.ones(20)])
    np.testing.assert_allclose(fisher_diagonal(x, g), [2.0, 1.0])
    assert np.all(np.isfinite(fisher_dense(x, g)))


def test_preconditioner_rejects_bad_values():
    p = Preconditioner(2, "dense")
    with pytest.raises(ValueError, match="lower triangular with a positive diagonal"):
        p.set(np.zeros(2), np.array([[1.0, 0.0], [0.5, -1.0]]))
    with pytest.raises(ValueError, match="finite"):
        Preconditioner(2).set(np.array([0.0, np.nan]), np.ones(2))
    with pytest.raises(ValueError, match="preconditioner must be one of 'auto', 'diag', 'lowrank', 'dense' or None"):
        L2HMCSampler(lambda X: tt.sqr(X).sum(axis=1), dim=2, preconditioner="full")


def _lowrank(rng, dim=6):
    p = Preconditioner(dim, "lowrank")
    basis = np.linalg.qr(rng.normal(size=(dim, 3)))[0]
    p.set(rng.normal(size=dim), rng.uniform(0.3, 3.0, size=dim), basis, np.array([50.0, 0.02, 3.0]))
    return p, basis


def test_lowrank_maps_invert_and_are_the_matrix_they_stand_for(rng):
    """L = D^(1/2) (I + Q diag(sqrt(lambda) - 1) Q^T): its maps (NumPy and Theano) are x = mu + L y,
    y = L^-1 (x - mu), dU/dy = L^T dU/dx and back; L L^T = D^(1/2) (I + Q (Lambda - I) Q^T) D^(1/2),
    whose diagonal's root is scales()."""
    from l2hmc_theano._theano import change_flags, theano

    p, basis = _lowrank(rng)
    mu, sigma = p.values()
    cov = (sigma[:, None] * (np.eye(6) + (basis * (np.array([50.0, 0.02, 3.0]) - 1.0)) @ basis.T)) * sigma[None, :]
    factor = p.to_x_numpy(np.eye(6)) - mu  # rows: L e_i, so this is L^T
    np.testing.assert_allclose(factor.T @ factor, cov, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(p.scales(), np.sqrt(np.diag(cov)), rtol=1e-10)
    y = rng.normal(size=(5, 6))
    g = rng.normal(size=(5, 6))
    np.testing.assert_allclose(p.to_y_numpy(p.to_x_numpy(y)), y, rtol=0, atol=1e-10)
    np.testing.assert_allclose(p.grad_to_y_numpy(g), g @ factor.T, rtol=1e-10)
    np.testing.assert_allclose(p.grad_to_x_numpy(p.grad_to_y_numpy(g)), g, rtol=0, atol=1e-10)
    with change_flags(compute_test_value="off"):  # pymc3 asks for test values; this graph has none
        Y = tt.matrix()
        symbolic = theano.function([Y], [p.to_x(Y), p.to_y(Y), p.grad_to_y(Y)])
    for a, b in zip(symbolic(y), (p.to_x_numpy(y), p.to_y_numpy(y), p.grad_to_y_numpy(y))):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    copy = p.copy()
    np.testing.assert_array_equal(copy.to_x_numpy(y), p.to_x_numpy(y))


def test_lowrank_preconditioner_rejects_bad_values(rng):
    p = Preconditioner(3, "lowrank")
    with pytest.raises(ValueError, match="orthonormal"):
        p.set(np.zeros(3), np.ones(3), np.ones((3, 1)), np.array([2.0]))
    with pytest.raises(ValueError, match="eigenvalues finite and > 0"):
        p.set(np.zeros(3), np.ones(3), np.eye(3, 1), np.array([-2.0]))
    with pytest.raises(ValueError, match="basis and eigenvalues are given for a low rank"):
        Preconditioner(3, "diag").set(np.zeros(3), np.ones(3), np.eye(3, 1), np.array([2.0]))


def rotated_gaussian(rng, dim, low, high):
    """A covariance with scales ``low..high`` along random orthogonal directions."""
    q = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    return (q * np.geomspace(low, high, dim) ** 2) @ q.T


def test_fisher_lowrank_leaves_a_gaussian_within_the_cutoff(rng):
    """For a Gaussian (g = P (x - m), any cloud) the fitted L whitens the covariance up to the cut-off:
    L^-1 C L^-T has every eigenvalue within [1 / c, c]; an axis-aligned Gaussian needs no direction."""
    cov = rotated_gaussian(rng, 12, 0.01, 100.0)
    x = rng.normal(size=(3000, 12)) * 5.0 + 2.0
    p = fitted(12, x, (x - 1.0) @ np.linalg.inv(cov))
    assert p.kind == "lowrank" and 1 <= p.rank <= 12
    inverse_factor = p.to_y_numpy(np.eye(12) + p.values()[0])  # rows: L^-1 e_i, so this is L^-T
    whitened = np.linalg.eigvalsh(inverse_factor.T @ cov @ inverse_factor)
    assert whitened.min() > 1.0 / EIGENVALUE_CUTOFF - 1e-6 and whitened.max() < EIGENVALUE_CUTOFF + 1e-6, whitened
    scales = np.geomspace(0.01, 100.0, 12)
    sigma, basis, eigenvalues = fisher_lowrank(x, (x - 1.0) / scales ** 2)
    np.testing.assert_allclose(sigma, scales, rtol=1e-8)
    assert basis.shape == (12, 0) and eigenvalues.shape == (0,)
    assert fitted(12, x, (x - 1.0) / scales ** 2).kind == "diag"


def test_dual_averaging_converges_on_a_known_acceptance_curve():
    """Acceptance exp(-eps^2) has its target 0.8 at eps = sqrt(-log 0.8); the averaged step gets there."""
    dual = DualAveraging(3.0, 0.8)
    eps = dual.step_size
    for _ in range(400):
        eps = dual.update(np.exp(-eps ** 2))
    assert dual.final_step_size == pytest.approx(np.sqrt(-np.log(0.8)), rel=0.03)


def diagonal_gaussian_model():
    with pm.Model() as model:
        pm.Normal("x", 2.0, SCALES, shape=5)
    return model


@pytest.mark.parametrize("target_accept", [0.8, 0.9])
def test_warmup_reaches_its_target_acceptance_and_the_scales(target_accept):
    """On a diagonal Gaussian (scales 0.01..100) started at the test point: afterwards HMC with
    the adapted step size accepts at the target rate, and the scales are the Gaussian's.
    (Once whitened, this target's acceptance is not monotone in eps beyond eps ~ 1.2, T = 10:
    every coordinate has the same frequency, and a trajectory of ~2 periods comes back with a
    small energy error; targets below ~0.75 lie there, where no step size has them.)"""
    sampler = L2HMCSampler(diagonal_gaussian_model(), zero_network=True, seed=1)
    rng = np.random.default_rng(0)
    x, info = warmup(sampler, 100, rng, WarmupSettings(target_accept=target_accept))
    assert info["settled"] and info["iterations"] < 600
    assert info["preconditioner"] == "diag", "an axis-aligned posterior needs no low rank correction"
    np.testing.assert_allclose(sampler.preconditioner.scales(), SCALES, rtol=0.03)
    mu = sampler.preconditioner.values()[0]
    assert np.all(np.abs(mu - 2.0) < 0.2 * SCALES), mu
    _, accept = sampler.sample(200, n_chains=100, x0=x, seed=2)
    # 20,000 acceptance probabilities; the step size is the averaged one, so allow its wobble.
    assert accept.mean() == pytest.approx(target_accept, abs=0.05)


def test_warmup_picks_a_low_rank_correction_on_a_rotated_gaussian(rng):
    """A rotated 10-d Gaussian (scales 0.1..10; the diagonal leaves its whitened condition number in
    the thousands): with the default preconditioner warm-up keeps a low rank one, which leaves the
    covariance within about the cut-off of the identity."""
    cov = rotated_gaussian(rng, 10, 0.1, 10.0)
    precision = np.linalg.inv(cov)
    sampler = L2HMCSampler(FunctionEnergy(lambda X: 0.5 * (tt.dot(X, precision) * X).sum(axis=1), 10),
                           zero_network=True, seed=1)
    _, info = warmup(sampler, 100, np.random.default_rng(0))
    p = sampler.preconditioner
    assert info["preconditioner"] == p.kind == "lowrank" and info["rank"] == p.rank >= 2
    inverse_factor = p.to_y_numpy(np.eye(10) + p.values()[0])
    whitened = np.linalg.eigvalsh(inverse_factor.T @ cov @ inverse_factor)
    assert 1.0 / 3.0 < whitened.min() and whitened.max() < 3.0, whitened
    diagonal = np.diag(cov) ** -0.5
    as_diagonal = np.linalg.eigvalsh(diagonal[:, None] * cov * diagonal[None, :])
    assert as_diagonal.max() / as_diagonal.min() > 1e3


def test_warmup_without_preconditioner_adapts_the_step_size_only():
    sampler = L2HMCSampler(lambda X: 0.5 * tt.sqr(X).sum(axis=1) / 0.04, dim=3, zero_network=True,
                           preconditioner=None)
    x, info = warmup(sampler, 50, np.random.default_rng(0))
    assert info["iterations"] == WarmupSettings().first_window + WarmupSettings().final_window
    assert (info["scale_min"], info["scale_max"]) == (1.0, 1.0)
    # sd 0.2 and T = 10: a step size of the order of 0.2 (0.8 acceptance in 3-d: ~0.3).
    assert 0.1 < sampler.step_size < 0.5


def test_warmup_warns_when_the_scales_have_not_settled():
    sampler = L2HMCSampler(diagonal_gaussian_model(), zero_network=True, seed=1)
    short = WarmupSettings(max_iterations=15 + 25 + 50)  # a single slow window: nothing to compare
    with pytest.warns(UserWarning, match="warm-up did not settle in 90 iterations"):
        _, info = warmup(sampler, 20, np.random.default_rng(0), short)
    assert not info["settled"]


def test_warmup_settings_are_checked():
    with pytest.raises(ValueError, match="target_accept must be in"):
        WarmupSettings(target_accept=1.2)
    with pytest.raises(ValueError, match="max_iterations .* must be at least"):
        WarmupSettings(max_iterations=10)
    windows = WarmupSettings().windows(True)
    assert sum(n for n, _ in windows) == 600 and windows[0] == (15, False) and windows[-1] == (50, False)
    assert [n for n, slow in windows if slow][:3] == [25, 50, 100]


def test_initial_chains_sit_around_the_test_point_and_avoid_infinite_energy():
    with pm.Model() as model:
        pm.Uniform("u", 0.0, 1.0)  # interval-transformed: every real is fine
        pm.Normal("z", 5.0, 1.0)
    sampler = L2HMCSampler(model, zero_network=True)
    x = initial_chains(sampler, 200, np.random.default_rng(0), jitter=1.0)
    start = sampler.energy_target.start_array()
    assert np.all(np.abs(x - start) <= 1.0) and np.abs(x - start).max() > 0.9

    def walled(X):  # infinite where x0 > 0.5
        return tt.switch(X[:, 0] > 0.5, np.inf, 0.5 * tt.sqr(X).sum(axis=1))

    walled_sampler = L2HMCSampler(walled, dim=2, zero_network=True)
    x = initial_chains(walled_sampler, 100, np.random.default_rng(1), jitter=1.0)
    assert np.all(x[:, 0] <= 0.5) and np.all(np.isfinite(walled_sampler.energy(x)))


def test_train_warms_up_once_and_continues_from_there():
    energy = FunctionEnergy(lambda X: 0.5 * tt.sqr(X / np.array([0.1, 3.0])).sum(axis=1), 2, name="diag2")
    sampler = L2HMCSampler(energy, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler.train(train_steps=3, batch_size=16, progressbar=False, check=False, compare_hmc=False)
        info = sampler.warmup_info
        assert info is not None and info["settled"]
        np.testing.assert_allclose(sampler.preconditioner.scales(), [0.1, 3.0], rtol=1e-6)
        sampler.train(train_steps=3, batch_size=16, progressbar=False, check=False, compare_hmc=False)
    assert sampler.warmup_info is info  # not run again


def test_ess_per_gradient_profile_prefers_long_trajectories_of_small_steps_and_short_ones_of_large():
    """On a standard Gaussian: with eps = 0.1 a trajectory of t steps turns by ~0.1 t radians, so
    the predicted ESS per gradient grows with t up to 10 steps; with eps = 1 it peaks early."""
    from l2hmc_theano.trajectory_length import ess_per_gradient_profile

    sampler = L2HMCSampler(lambda X: 0.5 * tt.sqr(X).sum(axis=1), dim=4, zero_network=True, preconditioner=None)
    x = np.random.default_rng(0).normal(size=(200, 4))
    small = ess_per_gradient_profile(sampler, x, 0.1, np.random.default_rng(1), 10, 2)[0]
    assert np.all(np.diff(small) > 0), small
    large = ess_per_gradient_profile(sampler, x, 1.0, np.random.default_rng(1), 10, 2)[0]
    assert np.argmax(large) <= 2 and large[np.argmax(large)] > 3 * large[-1], large


def _measured_hmc_ess_per_gradient(sampler, x, eps, n_steps, rng, draws=120):
    """Min over coordinates of min(bulk, folded) ESS per gradient of the sampler's HMC kernel
    (:meth:`L2HMCSampler.hmc_kernel`, jittered step ``eps``, ``n_steps``) from the chains ``x``
    ``(chains, dim)``, their draws pooled, standardised by the draws' own spread."""
    kernel = sampler.hmc_kernel()
    potential, grad = sampler.start_state(x)
    kept = []
    for _ in range(draws):
        step = kernel(x, *sampler.draw_step_inputs(rng, len(x)), potential, grad, step_size=eps, n_steps=n_steps)
        x, potential, grad = step.x, step.potential, step.grad
        kept.append(x)
    z = np.stack(kept)
    z = z / z.std(axis=(0, 1))
    bulk = chain_ess_per_draw(z)
    folded = chain_ess_per_draw(np.abs(z - np.median(z, axis=(0, 1))))
    return float(np.min(np.minimum(bulk, folded))) / n_steps


def test_the_profile_sees_a_spread_that_stalls_in_under_half_of_the_coordinates(rng):
    """A 20-d Gaussian whose first 6 coordinates have sd 0.5: at step size 0.5 their trajectories
    turn by ~1 radian a step, so 3 steps nearly reverse them, which mixes their mean but leaves their
    spread almost where it was (the other 14 turn by half as much).  The profile must rank the
    lengths as measured min(bulk, folded) ESS per gradient does (its HMC kernel, 400 x 120 draws; the
    two lengths differ by far more than the estimate's noise), not as the majority of coordinates
    would."""
    from l2hmc_theano.trajectory_length import ess_per_gradient_profile

    sd = np.ones(20)
    sd[:6] = 0.5
    sampler = L2HMCSampler(lambda X: 0.5 * tt.sqr(X / sd).sum(axis=1), dim=20, zero_network=True,
                           preconditioner=None)
    x = rng.normal(size=(400, 20)) * sd
    profile = ess_per_gradient_profile(sampler, x, 0.5, np.random.default_rng(1), 4, 2)[0]
    measured = {t: _measured_hmc_ess_per_gradient(sampler, x, 0.5, t, np.random.default_rng(t)) for t in (2, 3)}
    assert measured[2] > 1.5 * measured[3], measured  # the case this test is about
    assert profile[1] > profile[2], (profile, measured)


def test_the_profile_reports_the_mean_acceptance_of_its_proposals():
    """On a 4-d standard Gaussian at step size 1.2 (jittered), the profile's mean acceptance at t = 1 and
    3 steps against the same leapfrog in NumPy over 400,000 independent starts: the profile's 8,000
    trajectories have a standard error below 0.004 (acceptance's sd <= 0.35), so 0.016 is 4 of them."""
    from l2hmc_theano.trajectory_length import ess_per_gradient_profile

    sampler = L2HMCSampler(lambda X: 0.5 * tt.sqr(X).sum(axis=1), dim=4, zero_network=True, preconditioner=None)
    x = np.random.default_rng(0).normal(size=(2000, 4))
    accept = ess_per_gradient_profile(sampler, x, 1.2, np.random.default_rng(1), 3, 4)[3]
    rng = np.random.default_rng(2)
    q, p = rng.normal(size=(2, 400_000, 4))
    eps = 1.2 * sampler.draw_step_scale(rng, 400_000)[:, None]
    h0 = 0.5 * np.sum(q ** 2 + p ** 2, axis=1)
    expected = []
    for t in range(1, 4):
        p = p - 0.5 * eps * q
        q = q + eps * p
        p = p - 0.5 * eps * q
        expected.append(np.mean(np.exp(np.minimum(0.0, h0 - 0.5 * np.sum(q ** 2 + p ** 2, axis=1)))))
    assert expected[0] < 0.95 and abs(expected[0] - expected[2]) > 0.05  # the check can tell lengths apart
    np.testing.assert_allclose(accept[[0, 2]], np.array(expected)[[0, 2]], atol=0.016)


def test_the_final_window_aims_at_the_acceptance_its_t_had_in_the_profile():
    from l2hmc_theano.step_size import FINAL_ACCEPT_MAX, FINAL_ACCEPT_SLACK, final_accept_target

    assert final_accept_target(0.75, 0.8) == pytest.approx(0.75)  # kept: T was chosen at that step size
    assert final_accept_target(0.3, 0.8) == pytest.approx(0.8 - FINAL_ACCEPT_SLACK)
    assert final_accept_target(0.999, 0.8) == pytest.approx(FINAL_ACCEPT_MAX)
    assert final_accept_target(0.999, 0.98) == pytest.approx(0.98)  # a user's higher target stands


@pytest.mark.parametrize("rho", [-0.8, -0.3, 0.5, 0.9])
def test_tail_ess_of_an_ar1_sequence_matches_arviz(rho):
    """The predicted tail ESS per draw against ArviZ's on 4 x 20000 draws of a Gaussian AR(1): over
    10 seeds ArviZ's estimate has a relative sd of ~2 % (0.012 at rho = -0.8, 0.009 at 0.5), so 4 sd
    is 8 %.  Antithetic sequences lose in the tails what they gain in the bulk."""
    import arviz as az
    from scipy.signal import lfilter

    from l2hmc_theano.trajectory_length import _ess_per_draw, _tail_ess_per_draw

    rng = np.random.default_rng(0)
    noise = rng.standard_normal((4, 20000)) * np.sqrt(1.0 - rho ** 2)
    noise[:, 0] = rng.standard_normal(4)
    x = lfilter([1.0], [1.0, -rho], noise, axis=1)
    predicted = float(_tail_ess_per_draw(rho))
    assert predicted == pytest.approx(float(az.ess(x, method="tail")) / x.size, rel=0.08)
    if rho < 0:
        assert predicted < _ess_per_draw(rho)


def test_n_steps_maximises_ess_per_second_of_a_draw():
    """Per draw, t steps give profile[t - 1] x t ESS for c0 + t c1 seconds: where a step's cost c1
    dominates, T is the profile's best per gradient; where the call's c0 does, the best per draw."""
    profile = [0.30, 0.25, 0.20, 0.10]  # ESS per gradient at t = 1..4; per draw 0.30, 0.50, 0.60, 0.40
    assert choose_n_steps(profile, 1) == 1
    assert choose_n_steps(profile, 1, (1e-6, 1e-3)) == 1
    assert choose_n_steps(profile, 2, (1e-6, 1e-3)) == 2
    assert choose_n_steps(profile, 1, (1e-3, 1e-6)) == 3
    # c0 / c1 = 2 (rounded from 2.2): per second 0.30/3, 0.50/4, 0.60/5, 0.40/6 -> t = 2
    assert choose_n_steps(profile, 1, (2.2e-4, 1e-4)) == 2


def test_draw_cost_separates_the_call_from_the_steps():
    """A kernel that takes 2 ms + 1 ms per step: c1 ~1 ms, c0 ~(1 + DRAW_OVERHEAD) x 2 ms."""
    from l2hmc_theano import budget

    def kernel(x, v, direction, log_u, scale, potential, grad, step_size, n_steps):
        time.sleep(2e-3 + 1e-3 * n_steps)

    x = np.zeros((1, 3))
    c0, c1 = budget.draw_cost(kernel, x, np.zeros(1), x, 0.1)
    assert c1 == pytest.approx(1e-3, rel=0.3)
    assert c0 == pytest.approx((1.0 + budget.DRAW_OVERHEAD) * 2e-3, rel=0.3)


def test_warmup_chooses_n_steps_only_when_asked():
    """With T adapted it is chosen before the final window, which runs at it and measures its
    chains (every k-th too: what thin="auto" follows); with T fixed nothing of that."""
    from l2hmc_theano.budget import MAX_THIN
    from l2hmc_theano.trajectory_length import gradient_count, trajectory_lengths

    model = diagonal_gaussian_model()
    auto = L2HMCSampler(model, zero_network=True, seed=1)
    fixed = L2HMCSampler(model, zero_network=True, seed=1, n_steps=7)
    settings = WarmupSettings(max_n_steps=12)
    _, info = warmup(auto, 50, np.random.default_rng(0), settings)
    assert 2 <= info["n_steps"] == auto.n_steps <= 12 and len(info["ess_per_gradient"]) == 12
    assert info["n_steps"] == choose_n_steps(info["ess_per_gradient"], 2, info["draw_cost"])
    c0, c1 = info["draw_cost"]
    assert c0 > 0 and c1 > 0
    final, batch = settings.final_window, 50
    repeats = max(settings.n_steps_repeats, -(-settings.n_steps_trajectories // batch))
    assert info["warmup_n_steps"] != info["n_steps"] and info["loop_iterations"] == info["iterations"] - final
    assert info["gradients"] == (batch * (info["loop_iterations"] * info["warmup_n_steps"] + final * info["n_steps"])
                                 + gradient_count(trajectory_lengths(2, 12), batch, repeats))
    by_thin = info["measured_ess_per_draw_by_thin"]
    assert len(by_thin) == MAX_THIN and by_thin[0] == info["measured_ess_per_draw"] > 0
    assert auto.masks.shape == (auto.n_steps, 5) and auto.taus.shape == (auto.n_steps, 2)
    again = L2HMCSampler(model, zero_network=True, seed=1)
    again.set_n_steps(auto.n_steps)
    np.testing.assert_array_equal(again.masks, auto.masks)  # masks follow the seed
    _, info = warmup(fixed, 50, np.random.default_rng(0), settings)
    assert fixed.n_steps == info["n_steps"] == 7 and info["ess_per_gradient"] is None
    assert info["measured_ess_per_draw_by_thin"] is None and info["loop_iterations"] == info["iterations"]


def test_chains_left_in_the_tails_are_dropped_from_the_fit_and_replaced():
    """At equilibrium U - min U ~ chi^2_dim / 2: no chain of such a batch is lost; chains 1e3 above are."""
    from l2hmc_theano.warmup import lost_chains

    rng = np.random.default_rng(0)
    potential = 0.5 * rng.chisquare(50, size=200)
    assert not lost_chains(potential, 50).any()
    potential[:7] += 1e3
    potential[7] = np.nan
    np.testing.assert_array_equal(np.flatnonzero(lost_chains(potential, 50)), np.arange(8))


def test_warmup_reaches_an_uncentred_regressions_posterior():
    """y ~ N(alpha + beta x, sigma) with x ~ 4000 (uncentred years: corr(alpha, beta) ~ -0.99999) and
    sigma free: jittered starts put beta 100 posterior sds out, and chains that stay out there had
    made the fitted scales useless (posteriordb's kilpisjarvi).  Warm-up's chains end at the
    posterior: alpha and beta's means and sds as least squares gives them."""
    rng = np.random.default_rng(1)
    x = np.arange(3952.0, 4014.0)
    y = -60.0 + 0.0175 * x + rng.normal(0.0, 1.1, size=len(x))
    design = np.column_stack([np.ones_like(x), x])
    coef, rss = np.linalg.lstsq(design, y, rcond=None)[:2]
    se = np.sqrt(np.diag(np.linalg.inv(design.T @ design)) * rss[0] / (len(x) - 2))
    with pm.Model() as model:
        alpha = pm.Normal("alpha", 9.3, 100.0)
        beta = pm.Normal("beta", 0.0, 1.0)
        sigma = pm.HalfFlat("sigma")
        pm.Normal("y", alpha + beta * x, sigma, observed=y)
    sampler = L2HMCSampler(model, zero_network=True, seed=0)
    chains, info = warmup(sampler, 100, np.random.default_rng(0))
    assert info["replaced"] > 0
    mean, sd = chains[:, :2].mean(axis=0), chains[:, :2].std(axis=0)
    assert np.all(np.abs(mean - coef) < 0.5 * se), (mean, coef, se)
    np.testing.assert_allclose(sd, se, rtol=0.35)


@pytest.mark.parametrize("rho", [-0.5, 0.0, 0.7])
def test_the_chains_measured_ess_is_an_ar1_sequences(rho):
    """Many short chains of a stationary Gaussian AR(1) sequence (400 chains x 50 draws, 3
    coordinates): the pooled autocorrelations give its ESS per draw (1 - rho) / (1 + rho), to the
    noise of 20000 draws (well within 15 %), and kept every k-th, (1 - rho^k) / (1 + rho^k)."""
    from l2hmc_theano.trajectory_length import chain_ess_per_draw

    rng = np.random.default_rng(0)
    z = np.empty((50, 400, 3))
    z[0] = rng.normal(size=(400, 3))
    for t in range(1, 50):
        z[t] = rho * z[t - 1] + np.sqrt(1 - rho ** 2) * rng.normal(size=(400, 3))
    for k in (1, 2, 3):
        np.testing.assert_allclose(chain_ess_per_draw(z, k), (1 - rho ** k) / (1 + rho ** k), rtol=0.15)


def test_step_size_cap_keeps_the_largest_jittered_step_below_the_smallest_that_diverged():
    from l2hmc_theano.step_size import STABILITY_MARGIN, step_size_cap

    assert step_size_cap([], 0.3) == np.inf
    cap = step_size_cap([0.6, 0.5, 0.55], 0.3)
    assert cap * 1.3 == pytest.approx(STABILITY_MARGIN * 0.5) and STABILITY_MARGIN < 1


def test_the_profile_reports_trajectories_that_overflow_and_when():
    """U = exp(3 x) + x^2 / 2 from around x = 0 (curvature ~9 there, growing as exp(3 x)): a leapfrog
    step of 1.5 is past the stable range (2 / 3) and the trajectories overflow within a few steps;
    with 0.05 none do.  Each is reported once, at the first length tried at which it was lost, with
    the step size it ran at (jittered: within 1.5 (1 +- 0.3))."""
    from l2hmc_theano.trajectory_length import ess_per_gradient_profile

    sampler = L2HMCSampler(lambda X: tt.exp(3.0 * X[:, 0]) + 0.5 * tt.sqr(X).sum(axis=1), dim=1, zero_network=True,
                           preconditioner=None)
    x = np.random.default_rng(0).normal(0.0, 0.1, size=(50, 1))
    _, _, none, _ = ess_per_gradient_profile(sampler, x, 0.05, np.random.default_rng(1), 10, 2)
    assert none.shape == (0, 2)
    _, _, lost, _ = ess_per_gradient_profile(sampler, x, 1.5, np.random.default_rng(1), 10, 2)
    assert 0 < len(lost) <= 100 and np.all((lost[:, 0] >= 1) & (lost[:, 0] <= 10)), lost
    assert np.all((lost[:, 1] >= 1.5 * 0.7) & (lost[:, 1] <= 1.5 * 1.3)), lost


@pytest.mark.slow
def test_warmup_caps_the_step_size_where_transitions_of_T_steps_diverge(monkeypatch):
    """A stochastic volatility model (a random walk of 100 log-volatilities, non-centred, under a
    free step scale): where the scale is large the increments' curvature grows as its square, and
    the largest jittered steps of the dual-averaged step size overflow a few transitions in 10^4.
    Warm-up (seed 2) sees it and caps the step size; over 200 chains x 500 transitions from warm-up's
    chains the capped kernel diverges less often than the one without the cap (the same warm-up with
    the cap switched off), whose at least 10 divergences the rate is measured from.  (Since the final
    window tunes the step size to the profile's acceptance at T, above 0.8 here, the uncapped step is
    smaller and diverges 13 times, not 36: the cap's margin fell from 6 against 36 to 6 against 13.)"""
    import importlib.util
    import pathlib
    import l2hmc_theano.trajectory_length as trajectory_length_module
    import l2hmc_theano.warmup as warmup_module

    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "models.py"
    spec = importlib.util.spec_from_file_location("bench_models_sv", path)
    models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(models)
    model = models.stochastic_volatility()

    def divergences(capped):
        sampler = L2HMCSampler(model, zero_network=True, seed=2)
        with monkeypatch.context() as m:
            if not capped:
                for module in (warmup_module, trajectory_length_module):  # the run's and the profile's caps
                    m.setattr(module, "step_size_cap", lambda steps, jitter: np.inf)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                x, info = warmup(sampler, 50, np.random.default_rng(2))
        kernel, rng = sampler.hmc_kernel(), np.random.default_rng(5)
        x = np.repeat(x, 4, axis=0)
        potential, grad = sampler.start_state(x)
        count = 0
        for _ in range(500):
            out = kernel(x, rng.standard_normal(x.shape), np.ones(len(x)), np.log(rng.uniform(size=len(x))),
                         sampler.draw_step_scale(rng, len(x)), potential, grad)
            x, potential, grad = out.x, out.potential, out.grad
            count += int(np.count_nonzero(out.diverging))
        return info, count

    capped_info, capped = divergences(True)
    free_info, free = divergences(False)
    assert free_info["step_size_cap"] is None
    assert capped_info["step_size_cap"] == pytest.approx(capped_info["step_size"])
    assert capped_info["step_size"] < 0.9 * free_info["step_size"]
    assert free >= 10 and capped < free, (capped, free)
