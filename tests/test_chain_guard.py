"""One chain whose evaluation raises is a divergence of that chain, not the end of the run."""
import numpy as np
import pytest
from scipy import stats

import pymc3 as pm
from conftest import HandWrittenAux
from l2hmc_theano import FunctionEnergy, L2HMC, L2HMCSampler, ModelEnergy
from l2hmc_theano._theano import floatX, theano, tt
from l2hmc_theano.chain_guard import call_by_rows, failing_rows, replace_non_finite_starts
from l2hmc_theano.training_guards import guarded_training_step
from l2hmc_theano.warmup import WarmupSettings, warmup
from mcmc_checks import moment_z_scores

EDGE = 1.0  # x_0 >= EDGE: the energy's Cholesky raises (not positive definite)


def cholesky_term(x0):
    """A Cholesky of the 1 x 1 matrix [[EDGE - x0]], per row of ``x0`` ``(batch,)``: it raises
    (scipy's LinAlgError) where x0 >= EDGE, as a kernel matrix's Cholesky can at one chain."""
    chol, _ = theano.map(lambda a: tt.slinalg.cholesky(tt.reshape(EDGE - a, (1, 1)))[0, 0], sequences=[x0])
    return chol


class RaiseAtEdge(theano.graph.op.Op):
    """The identity on a vector, which raises (as a Cholesky of a matrix that is not positive
    definite does) where an entry is >= EDGE or NaN; its gradient is the identity's.  Cheaper
    to compile than :func:`cholesky_term` through the training step's gradient."""

    __props__ = ()

    def make_node(self, x):
        x = tt.as_tensor_variable(x)
        return theano.graph.basic.Apply(self, [x], [x.type()])

    def perform(self, node, inputs, outputs):
        (x,) = inputs
        if not np.all(x < EDGE):
            raise np.linalg.LinAlgError("the matrix is not positive definite")
        outputs[0][0] = np.array(x, copy=True)

    def grad(self, inputs, output_grads):
        return [output_grads[0]]

    def infer_shape(self, fgraph, node, shapes):
        return shapes


def truncated_gaussian_energy(X):
    """N(0, I) in 2-d, but not evaluable where x_0 >= EDGE (a Cholesky raises): density 0 there."""
    return 0.5 * tt.sqr(X).sum(axis=1) + 1e-9 * cholesky_term(X[:, 0])


def cheap_truncated_gaussian_energy(X):
    """:func:`truncated_gaussian_energy` with :class:`RaiseAtEdge` for the Cholesky."""
    return 0.5 * tt.sqr(X).sum(axis=1) + 1e-9 * RaiseAtEdge()(X[:, 0])


def truncated_moments():
    """Mean and covariance of N(0, I) restricted to x_0 < EDGE."""
    ratio = stats.norm.pdf(EDGE) / stats.norm.cdf(EDGE)
    return np.array([-ratio, 0.0]), np.diag([1.0 - EDGE * ratio - ratio ** 2, 1.0])


def guarded_sampler(**kwargs):
    return L2HMCSampler(FunctionEnergy(cheap_truncated_gaussian_energy, 2), n_steps=3, step_size=0.5, seed=0,
                        preconditioner=None, **kwargs)


def crossing_batch():
    """Four chains' ``x, v, d, log_u, step_scale``; chain 1's momentum carries it across x_0 = 1."""
    x = np.array([[0.0, 0.0], [0.9, 0.1], [-1.0, 1.0], [0.3, -0.4]], dtype=floatX)
    v = np.array([[0.1, 0.0], [6.0, 0.0], [0.2, 0.3], [-0.5, 0.2]], dtype=floatX)
    d = np.array([1.0, 1.0, -1.0, 1.0], dtype=floatX)
    return x, v, d, np.full(4, -0.1, dtype=floatX), np.ones(4, dtype=floatX)


def assert_chain_1_stays(out, x, potential, grad):
    """Chain 1 of an MH step ``out`` (a :class:`~l2hmc_theano.kernel.Step`) stayed at ``x[1]`` with
    its U and dU/dy, rejected and diverging, energy error inf; returns ``out.diverging``."""
    np.testing.assert_array_equal(out.x[1], x[1])
    assert out.accept_prob[1] == 0 and not out.accepted[1] and out.diverging[1] and out.energy_error[1] == np.inf
    assert out.potential[1] == potential[1] and np.array_equal(out.grad[1], grad[1])
    return out.diverging


def test_failing_rows_finds_exactly_the_rows_that_raise():
    bad = {3, 4, 17}

    def call(rows):
        if bad & set(rows.tolist()):
            raise ValueError("bad row")

    assert set(np.flatnonzero(failing_rows(call, 20))) == bad


def test_call_by_rows_raises_the_first_error_when_every_row_fails():
    def fn(x):
        raise ZeroDivisionError("always")

    with pytest.raises(ZeroDivisionError, match="always"):
        call_by_rows(fn, [np.ones((4, 2))], [0])


def test_call_by_rows_fills_failed_rows_with_nan_and_leaves_others():
    def fn(x):
        if np.any(x[:, 0] < 0):
            raise ValueError("negative")
        return [2.0 * x, x[:, 0] > 1]

    x = np.array([[1.0, 2.0], [-1.0, 0.0], [3.0, 1.0]])
    (doubled, big), failed = call_by_rows(fn, [x], [0])
    np.testing.assert_array_equal(failed, [False, True, False])
    np.testing.assert_array_equal(doubled[[0, 2]], 2.0 * x[[0, 2]])
    assert np.all(np.isnan(doubled[1])) and not big[1]


def test_a_chain_whose_trajectory_raises_diverges_and_the_others_step_exactly():
    sampler = L2HMCSampler(FunctionEnergy(truncated_gaussian_energy, 2), n_steps=3, step_size=0.5, seed=0,
                           preconditioner=None, networks=HandWrittenAux(2, seed=1, scale=0.5))
    x, v, d, log_u, scale = crossing_batch()
    potential, grad = sampler.start_state(x)
    raw = sampler.compiled_mh_step(carry=True)
    with pytest.raises(Exception, match="positive definite"):
        raw(x, v, d, log_u, scale, potential, grad)  # the batch as one call: chain 1 crosses x_0 = 1
    out = sampler.mh_step_carrying(x, potential, grad, v, d, log_u, scale)
    diverging = assert_chain_1_stays(out, x, potential, grad)
    healthy = [0, 2, 3]
    alone = raw(*(a[healthy] for a in (x, v, d, log_u, scale, potential, grad)))
    assert len(alone) == 9  # the compiled step's outputs: the eight stats, then dU/dy
    for got, expected in zip(out[:8] + (out.grad,), alone):
        np.testing.assert_allclose(got[healthy], expected, rtol=1e-12, atol=1e-12)
    assert not np.any(diverging[healthy])


def test_energy_of_a_point_that_raises_is_nan():
    sampler = guarded_sampler(zero_network=True)
    energy = sampler.energy(np.array([[2.0, 0.0], [0.0, 0.0]], dtype=floatX))
    assert np.isnan(energy[0]) and np.isfinite(energy[1])


def test_non_finite_starts_are_replaced_by_finite_ones():
    x = np.arange(8.0).reshape(4, 2)
    potential = np.array([1.0, np.nan, 2.0, np.inf])
    grad = np.ones((4, 2))
    grad[2, 1] = np.nan
    x, potential, grad, replaced = replace_non_finite_starts(x, potential, grad, np.random.default_rng(0))
    assert replaced == 3
    np.testing.assert_array_equal(x, np.tile([0.0, 1.0], (4, 1)))
    assert np.all(potential == 1.0)


def test_an_hmc_chain_whose_trajectory_raises_diverges_and_the_others_step_exactly():
    """HMC's NumPy step (zero networks): chain 1 crosses x_0 = 1 mid-trajectory, where the energy
    raises; it stays where it was, rejected and diverging, and the other chains' outputs are
    those of a step without it."""
    sampler = L2HMCSampler(FunctionEnergy(truncated_gaussian_energy, 2), n_steps=3, step_size=0.5, seed=0,
                           preconditioner=None, zero_network=True)
    x, v, d, log_u, scale = crossing_batch()
    potential, grad = sampler.start_state(x)
    kernel = sampler.hmc_kernel()
    out = kernel(x, v, d, log_u, scale, potential, grad)
    np.testing.assert_array_equal(kernel.failed, [False, True, False, False])
    diverging, accepted = assert_chain_1_stays(out, x, potential, grad), out.accepted
    healthy = [0, 2, 3]
    alone = kernel(*(a[healthy] for a in (x, v, d, log_u, scale, potential, grad)))
    assert kernel.failed is None
    for field in ("x", "accept_prob", "accepted", "diverging", "energy", "energy_error", "potential", "grad",
                  "y_proposal"):
        np.testing.assert_array_equal(getattr(out, field)[healthy], getattr(alone, field))
    assert not np.any(diverging[healthy]) and accepted[healthy].any()


@pytest.mark.slow
def test_sampling_through_failing_evaluations_keeps_the_truncated_target():
    """Where the energy raises the density is 0: a chain that proposes there is rejected, and the
    chains sample N(0, I) restricted to x_0 < 1 (moments within Monte Carlo error)."""
    sampler = guarded_sampler(networks=HandWrittenAux(2, seed=1, scale=0.3))
    rng = np.random.default_rng(5)
    n_chains, n_draws = 60, 500
    x = rng.standard_normal((n_chains, 2)).astype(floatX)
    x[:, 0] = -np.abs(x[:, 0])  # starts inside the support
    potential, grad = sampler.start_state(x)
    draws, failed = [], 0
    for _ in range(n_draws):
        step = sampler.mh_step_carrying(x, potential, grad, *sampler.draw_step_inputs(rng, n_chains))
        x, potential, grad = step.x, step.potential, step.grad
        failed += int(np.sum(step.diverging & np.isinf(step.energy_error)))
        draws.append(x)
    assert failed > 100, "the test should make chains fail"
    mean, cov = truncated_moments()
    z = moment_z_scores(np.array(draws[100:]), mean, cov)
    assert max(abs(v) for v in z.values()) < 4.0, z


def test_warmup_goes_on_when_chains_raise():
    sampler = guarded_sampler(zero_network=True)
    chains, info = warmup(sampler, 16, np.random.default_rng(1), WarmupSettings(max_iterations=70))
    assert info["failed"] > 0
    assert np.all(chains[:, 0] < EDGE) and np.isfinite(info["step_size"])


def test_training_step_takes_a_raising_proposal_again_with_step_size_zero():
    """The proposal whose trajectory raises is found with the sampler's MH step, taken again with
    step size 0 and counted as diverging; the step is then taken for the whole batch."""
    sampler = guarded_sampler(networks=HandWrittenAux(2, seed=1, scale=0.5))
    x = np.array([[0.0, 0.0], [0.9, 0.1], [-1.0, 1.0], [0.3, -0.4]], dtype=floatX)
    v = np.array([[0.1, 0.0], [6.0, 0.0], [0.2, 0.3], [-0.5, 0.2]], dtype=floatX)
    d = np.ones(4, dtype=floatX)
    calls = []

    def step_fn(x, z, v, d, log_u, step_scale):  # stands in for the compiled training step
        calls.append(step_scale.copy())
        if step_scale[1] != 0:
            raise np.linalg.LinAlgError("not positive definite")
        n = len(x)
        return [x + 1.0, 0.5, 0.9, 0.1, 0, True, np.zeros(n), np.zeros(n, dtype=bool)]

    inputs = (x, np.zeros_like(x), v, d, np.full(4, -0.1, dtype=floatX), np.ones(4, dtype=floatX))
    out, used, failed = guarded_training_step(sampler, step_fn, inputs)
    assert failed == 1 and len(calls) == 2
    np.testing.assert_array_equal(used[5], [1.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(out.x[1], x[1])  # the failed chain stays
    np.testing.assert_array_equal(out.x[[0, 2, 3]], x[[0, 2, 3]] + 1.0)
    assert out.proposal_diverging[1] and out.diverging == 1 and out.log_accept[1] == -np.inf
    assert out.accept == pytest.approx(0.75)


def test_a_model_cholesky_returns_nan_instead_of_raising():
    with pm.Model() as model:
        r = pm.Normal("r", 0.0, 1.0)
        chol = tt.slinalg.cholesky(tt.stack([tt.stack([1.0, r]), tt.stack([r, 1.0])]))
        pm.Potential("k", tt.log(chol[1, 1]))  # positive definite only where |r| < 1
    energy = ModelEnergy(model)
    ops = [n.op for n in theano.graph.basic.io_toposort(theano.graph.basic.graph_inputs([energy._logp]),
                                                        [energy._logp]) if isinstance(n.op, tt.slinalg.Cholesky)]
    assert ops and all(op.on_error == "nan" for op in ops)
    sampler = L2HMCSampler(energy, zero_network=True, seed=0)
    U = sampler.energy(np.array([[0.5], [2.0]], dtype=floatX))
    assert np.isfinite(U[0]) and np.isnan(U[1])


def test_pm_sample_step_counts_a_raising_proposal_as_a_divergence():
    with pm.Model():
        x = pm.Normal("x", 0.0, 1.0, shape=2)
        pm.Potential("chol", 1e-9 * RaiseAtEdge()(x[:1]).sum())
        sampler = L2HMCSampler(zero_network=True, n_steps=3, step_size=1.0, seed=0, preconditioner=None)
        trace = pm.sample(draws=300, tune=0, chains=1, cores=1, step=L2HMC(sampler=sampler), random_seed=3,
                          progressbar=False, compute_convergence_checks=False, return_inferencedata=False)
    diverging = trace.get_sampler_stats("diverging")
    assert diverging.sum() > 0
    assert np.all(trace["x"][:, 0] < EDGE)
    assert np.all(np.isinf(trace.get_sampler_stats("energy_error")[diverging]))
