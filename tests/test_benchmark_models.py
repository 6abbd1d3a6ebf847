"""benchmarks/models.py's hard-geometry models: their log densities are the stated closed forms."""
import importlib.util
import pathlib
import sys

import numpy as np
import pytest
from scipy import stats

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location("bench_models", ROOT / "benchmarks" / "models.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


def test_funnel_logp_is_neals_funnel(models):
    model = models.funnel(5)
    rng = np.random.default_rng(0)
    logp = model.logp
    for _ in range(3):
        v, x = rng.normal(0, 3), rng.normal(0, 2, size=4)
        expected = stats.norm.logpdf(v, 0, 3) + stats.norm.logpdf(x, 0, np.exp(v / 2)).sum()
        assert logp({"v": v, "x": x}) == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match="dim must be >= 2"):
        models.funnel(1)


def test_banana_logp_is_the_twisted_gaussian(models):
    model = models.banana()
    b, sd = models.BANANA_B, models.BANANA_SD
    for x1, x2 in ((0.0, 0.0), (12.0, 1.5), (-7.0, -3.0)):
        expected = stats.norm.logpdf(x1, 0, sd) + stats.norm.logpdf(x2, b * (x1 ** 2 - sd ** 2), 1)
        assert model.logp({"x1": x1, "x2": x2}) == pytest.approx(expected, rel=1e-10)


@pytest.fixture(scope="module")
def funnel_ceiling():
    spec = importlib.util.spec_from_file_location("funnel_ceiling", ROOT / "benchmarks" / "funnel_ceiling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("direction", [1, -1])
def test_the_funnels_non_centred_construction_is_the_non_centred_leapfrog(funnel_ceiling, direction):
    """Position-, gradient- and momentum-dependent S, Q, T through the generalized leapfrog: the
    result is HMC's leapfrog in z = x exp(-v/2) (backward: from -p, momentum flipped back), the
    log-det is the Jacobian's change (d - 1)(v' - v)/2, and the MH ratio is the non-centred
    Hamiltonian's change."""
    from l2hmc_theano import L2HMCSampler

    dim, eps, n_steps = 6, 0.4, 5
    fc = funnel_ceiling
    sampler = L2HMCSampler(fc.funnel_energy(dim), n_steps=n_steps, step_size=eps, preconditioner=None,
                           networks=fc.NonCentredFunnel(dim, eps), step_jitter=0.0, seed=0)
    sampler.masks = fc.scale_alone_masks(n_steps, dim)
    rng = np.random.default_rng(3)
    x = fc.exact_draws(dim, 5, rng)
    p = rng.normal(size=x.shape)
    x1, p1, logdet = sampler.transition(x, p, direction)
    v_ref, x_ref, p_ref = fc.non_centred_leapfrog(x[:, 0], x[:, 1:], direction * p, eps, n_steps)
    np.testing.assert_allclose(x1[:, 0], v_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(x1[:, 1:], x_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p1, direction * p_ref, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(logdet, (dim - 1) * (x1[:, 0] - x[:, 0]) / 2, rtol=1e-10, atol=1e-10)
    # The MH ratio: H_x - H_x' + logdet = H_z - H_z' (the non-centred leapfrog's energy error).
    out = sampler.mh_step_with_stats(x, p, np.full(5, float(direction)), np.full(5, -np.inf))
    z, z1 = x[:, 1:] * np.exp(-x[:, :1] / 2), x1[:, 1:] * np.exp(-x1[:, :1] / 2)
    h_z = x[:, 0] ** 2 / 18 + 0.5 * (z ** 2).sum(1) + 0.5 * (p ** 2).sum(1)
    h_z1 = x1[:, 0] ** 2 / 18 + 0.5 * (z1 ** 2).sum(1) + 0.5 * (p1 ** 2).sum(1)
    np.testing.assert_allclose(logdet - out[5], h_z - h_z1, rtol=1e-8, atol=1e-9)
    assert np.abs(x1[:, 0] - x[:, 0]).max() > 1.0 and np.abs(z1 - z).max() > 1.0  # non-vacuous: it moved


def test_eight_schools_moments_by_quadrature_match_importance_sampling(models):
    """The quadrature's mean and sd of mu and tau against self-normalised importance sampling
    from the prior (400,000 draws), within 4 of the latter's standard errors (delta method,
    with the importance weights' ESS)."""
    exact = models.eight_schools_moments()
    rng = np.random.default_rng(0)
    n = 400_000
    mu = rng.normal(0.0, 5.0, n)
    tau = np.abs(5.0 * rng.standard_cauchy(n))
    scale = np.sqrt(np.square(models.S8)[None, :] + np.square(tau)[:, None])
    log_w = stats.norm.logpdf(np.asarray(models.Y8)[None, :], mu[:, None], scale).sum(axis=1)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    ess = 1.0 / np.sum(w ** 2)
    for name, x in (("mu", mu), ("tau", tau)):
        mean = np.sum(w * x)
        sd = np.sqrt(np.sum(w * (x - mean) ** 2))
        kurtosis = np.sum(w * (x - mean) ** 4) / sd ** 4
        assert abs(exact[name][0] - mean) < 4 * sd / np.sqrt(ess), (name, exact[name], mean)
        assert abs(exact[name][1] - sd) < 4 * sd * np.sqrt((kurtosis - 1) / (4 * ess)), (name, exact[name], sd)


NEW_MODELS = ("latent_gp_classification", "large_logistic_regression", "switchpoint", "stochastic_volatility")


@pytest.mark.parametrize("name", NEW_MODELS)
def test_new_models_build_with_a_finite_logp_and_gradient(models, name):
    """time_to_result.py's models: a finite logp at the test point, and a finite gradient in the
    continuous variables (the switchpoint's discrete one excluded)."""
    model = getattr(models, name)()
    point = model.test_point
    assert np.isfinite(model.logp(point))
    grad = model.dlogp(model.cont_vars)(point)
    assert grad.shape == (sum(int(np.prod(point[v.name].shape)) for v in model.cont_vars),)
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)


def test_the_switchpoint_model_has_one_discrete_variable(models):
    model = models.switchpoint()
    assert [v.name for v in model.disc_vars] == ["switchpoint"]
    assert {v.name for v in model.cont_vars} == {"early_log__", "late_log__"}


def test_the_latent_gp_logp_factors_the_kernel_matrix(models):
    """The GP's logp holds a Cholesky whose input depends on the free lengthscale and amplitude."""
    from theano.graph.basic import ancestors
    from theano.tensor.slinalg import Cholesky

    model = models.latent_gp_classification()
    choleskys = [v.owner for v in ancestors([model.logpt]) if v.owner is not None and isinstance(v.owner.op, Cholesky)]
    assert choleskys
    inputs = set(ancestors(choleskys[0].inputs))
    assert {"lengthscale_log__", "amplitude_log__"} <= {v.name for v in model.free_RVs if v in inputs}
