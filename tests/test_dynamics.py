"""The generalized leapfrog: HMC as a special case, exact inverse, exact log-det-Jacobian."""
import numpy as np
import pytest

import pymc3 as pm
from pymc3.step_methods.hmc.integration import CpuLeapfrogIntegrator
from pymc3.step_methods.hmc.quadpotential import QuadPotentialDiag

from conftest import HandWrittenAux
from l2hmc_theano import FunctionEnergy, L2HMCSampler
from l2hmc_theano._theano import tt
from l2hmc_theano.dynamics import draw_masks, time_encoding


def pymc3_leapfrog(model, q, p, step_size, n_steps):
    """PyMC3's own HMC leapfrog (unit mass matrix) from (q, p): n_steps steps."""
    func = model.logp_dlogp_function()
    func.set_extra_values({})
    integrator = CpuLeapfrogIntegrator(QuadPotentialDiag(np.ones(len(q))), func)
    state = integrator.compute_state(q.copy(), p.copy())
    for _ in range(n_steps):
        state = integrator.step(step_size, state)
    return state.q, state.p


@pytest.fixture(scope="module")
def zero_sampler(small_model):
    return L2HMCSampler(small_model, n_steps=7, step_size=0.13, zero_network=True, seed=3)


def test_zero_aux_is_pymc3_leapfrog(small_model, zero_sampler, rng):
    dim = zero_sampler.dim
    x = rng.normal(0, 0.7, size=(3, dim))
    v = rng.normal(size=(3, dim))
    x1, v1, logdet = zero_sampler.transition(x, v, 1)
    for i in range(3):
        q_ref, p_ref = pymc3_leapfrog(small_model, x[i], v[i], 0.13, 7)
        np.testing.assert_allclose(x1[i], q_ref, rtol=0, atol=1e-10)
        np.testing.assert_allclose(v1[i], p_ref, rtol=0, atol=1e-10)
    assert np.all(logdet == 0.0)
    # The trajectory really moved: the comparison is not between two copies of the start.
    assert np.abs(x1 - x).max() > 0.1


def test_zero_aux_backward_is_leapfrog_with_flipped_momentum(small_model, zero_sampler, rng):
    dim = zero_sampler.dim
    x = rng.normal(0, 0.7, size=(2, dim))
    v = rng.normal(size=(2, dim))
    x1, v1, _ = zero_sampler.transition(x, v, -1)
    for i in range(2):
        q_ref, p_ref = pymc3_leapfrog(small_model, x[i], -v[i], 0.13, 7)
        np.testing.assert_allclose(x1[i], q_ref, rtol=0, atol=1e-10)
        np.testing.assert_allclose(v1[i], -p_ref, rtol=0, atol=1e-10)


@pytest.fixture(scope="module")
def network_sampler(small_model):
    """The default networks with heads initialised at full scale: far from HMC."""
    sampler = L2HMCSampler(small_model, n_steps=4, step_size=0.2, seed=11)
    from l2hmc_theano.networks import AuxiliaryNetworks

    sampler.networks = AuxiliaryNetworks(sampler.dim, (8, 8), np.random.default_rng(5), head_scale=1.0)
    return sampler


@pytest.fixture(scope="module")
def handwritten_sampler():
    """A 3-d non-Gaussian energy with hand-written auxiliary functions."""

    def energy(X):
        return 0.5 * tt.sqr(X).sum(axis=1) + 0.25 * tt.sqr(X[:, 0] * X[:, 1]) + tt.log(tt.cosh(X[:, 2]))

    return L2HMCSampler(FunctionEnergy(energy, 3), n_steps=3, step_size=0.3, seed=2,
                        networks=HandWrittenAux(3, seed=4))


def preconditioned(kind):
    """The hand-written 3-d sampler in the coordinates of a non-trivial preconditioner."""

    def energy(X):
        return 0.5 * tt.sqr(X).sum(axis=1) + 0.25 * tt.sqr(X[:, 0] * X[:, 1]) + tt.log(tt.cosh(X[:, 2]))

    sampler = L2HMCSampler(FunctionEnergy(energy, 3), n_steps=3, step_size=0.3, seed=2,
                           networks=HandWrittenAux(3, seed=4), preconditioner=kind)
    factor = np.array([0.5, 1.7, 0.8]) if kind != "dense" else np.array([[0.5, 0, 0], [0.6, 1.7, 0], [-0.3, 0.4, 0.8]])
    extra = {}
    if kind == "lowrank":  # two directions, stretched 4x and squeezed 1/9
        basis = np.linalg.qr(np.array([[1.0, 0.5], [-0.7, 1.0], [0.2, 0.3]]))[0]
        extra = dict(basis=basis, eigenvalues=np.array([4.0, 1.0 / 9.0]))
    sampler.preconditioner.set(np.array([0.3, -0.2, 0.1]), factor, **extra)
    return sampler


@pytest.fixture(scope="module")
def diag_preconditioned_sampler():
    return preconditioned("diag")


@pytest.fixture(scope="module")
def dense_preconditioned_sampler():
    return preconditioned("dense")


@pytest.fixture(scope="module")
def lowrank_preconditioned_sampler():
    return preconditioned("lowrank")


SAMPLERS = ["network_sampler", "handwritten_sampler", "diag_preconditioned_sampler", "dense_preconditioned_sampler",
            "lowrank_preconditioned_sampler"]


@pytest.mark.parametrize("which", SAMPLERS)
def test_backward_inverts_forward(which, request, rng):
    sampler = request.getfixturevalue(which)
    x = rng.normal(0, 0.8, size=(6, sampler.dim))
    v = rng.normal(size=(6, sampler.dim))
    d = np.array([1, -1, 1, -1, -1, 1])
    x1, v1, ld1 = sampler.transition(x, v, d)
    x0, v0, ld0 = sampler.transition(x1, v1, -d)
    np.testing.assert_allclose(x0, x, rtol=0, atol=1e-8)
    np.testing.assert_allclose(v0, v, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ld1 + ld0, 0.0, rtol=0, atol=1e-10)
    # Non-vacuous: the map moves the state and changes volume.
    assert np.abs(x1 - x).max() > 0.1
    assert np.abs(ld1).min() > 1e-3


def test_mixed_directions_equal_separate_runs(handwritten_sampler, rng):
    x = rng.normal(size=(4, 3))
    v = rng.normal(size=(4, 3))
    d = np.array([1, -1, -1, 1])
    mixed = handwritten_sampler.transition(x, v, d)
    fwd = handwritten_sampler.transition(x, v, 1)
    bwd = handwritten_sampler.transition(x, v, -1)
    for m, f, b in zip(mixed, fwd, bwd):
        expected = np.where(d.reshape((-1,) + (1,) * (f.ndim - 1)) > 0, f, b)
        np.testing.assert_allclose(m, expected, rtol=0, atol=1e-12)
    assert np.abs(fwd[0] - bwd[0]).max() > 0.1


@pytest.mark.parametrize("which", SAMPLERS)
def test_written_out_steps_are_the_scans_map(which, request, rng):
    """The T steps written out (pm.sample's one-chain step) give the scan's proposal: the same
    x', v', log-det and end energy, for both directions in one batch."""
    from l2hmc_theano._theano import change_flags, theano

    sampler = request.getfixturevalue(which)
    x = rng.normal(0, 0.8, size=(6, sampler.dim))
    v = rng.normal(size=(6, sampler.dim))
    d = np.array([1, -1, 1, -1, -1, 1], dtype=float)
    results = []
    for unroll in (False, True):
        with change_flags(compute_test_value="off"):
            X, V, D = tt.matrix("x"), tt.matrix("v"), tt.vector("d")
            p = sampler.propose(X, V, D, unroll=unroll)
            f = theano.function([X, V, D], [p.x, p.v, p.logdet, p.energy_end])
        scans = [n for n in f.maker.fgraph.apply_nodes if type(n.op).__name__ == "Scan"]
        assert len(scans) == (0 if unroll else 1)
        results.append(f(x, v, d))
    for scanned, written_out in zip(*results):
        np.testing.assert_allclose(written_out, scanned, rtol=1e-12, atol=1e-12)
    assert np.abs(results[0][0] - x).max() > 0.1 and np.abs(results[0][2]).min() > 1e-3


@pytest.mark.parametrize("which", SAMPLERS)
def test_chains_that_carry_their_energy_step_as_the_plain_mh_step(which, request, rng):
    """mh_step_carrying (U and dU/dy at x passed in, T energy evaluations per step) makes the
    plain MH step's moves: over several steps of mixed directions the same states and stats,
    and the U and dU/dy it hands on are those at the state it returns."""
    sampler = request.getfixturevalue(which)
    x_plain = x_carried = rng.normal(0, 0.8, size=(6, sampler.dim))
    potential, grad = sampler.start_state(x_carried)
    moved = 0
    for _ in range(4):
        inputs = sampler.draw_step_inputs(rng, 6)
        plain = sampler.mh_step_with_stats(x_plain, *inputs)
        carried = sampler.mh_step_carrying(x_carried, potential, grad, *inputs)
        assert plain.grad is None and carried.grad is not None  # the carried step hands dU/dy on
        for a, b in zip(plain[:8], carried[:8]):
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-10)
        moved += int(plain.accepted.sum())
        x_plain, x_carried, potential, grad = plain.x, carried.x, carried.potential, carried.grad
        fresh_potential, fresh_grad = sampler.start_state(x_carried)
        np.testing.assert_allclose(potential, fresh_potential, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(grad, fresh_grad, rtol=1e-10, atol=1e-10)
    assert 0 < moved < 24  # some proposals accepted and some rejected: both branches were checked


def numerical_log_abs_det(sampler, x, v, direction, h=1e-5):
    """log|det| of the central-difference Jacobian of (x, v) -> (x', v') at one point."""
    dim = sampler.dim
    z = np.concatenate([x, v])
    J = np.empty((2 * dim, 2 * dim))
    for k in range(2 * dim):
        dz = np.zeros(2 * dim)
        dz[k] = h
        plus = sampler.transition(*np.split((z + dz)[None, :], 2, axis=1), direction)
        minus = sampler.transition(*np.split((z - dz)[None, :], 2, axis=1), direction)
        J[:, k] = (np.concatenate([plus[0][0], plus[1][0]]) - np.concatenate([minus[0][0], minus[1][0]])) / (2 * h)
    return np.linalg.slogdet(J)[1]


@pytest.mark.parametrize("which", SAMPLERS)
@pytest.mark.parametrize("direction", [1, -1])
def test_logdet_matches_numerical_jacobian(which, direction, request, rng):
    sampler = request.getfixturevalue(which)
    for _ in range(2):
        x = rng.normal(0, 0.8, size=sampler.dim)
        v = rng.normal(size=sampler.dim)
        _, _, logdet = sampler.transition(x[None], v[None], direction)
        numeric = numerical_log_abs_det(sampler, x, v, direction)
        assert abs(logdet[0]) > 1e-3
        assert logdet[0] == pytest.approx(numeric, abs=1e-5)


@pytest.mark.parametrize("kind", ["diag", "dense", "lowrank"])
def test_preconditioned_map_is_the_whitened_targets_map_in_x(kind, rng):
    """FL_x(x, v) = (mu + L y', v') where (y', v') = FL_y(L^-1 (x - mu), v) on U_y(y) = U(mu + L y),
    with the same log-det; and it differs from the unpreconditioned map."""
    from l2hmc_theano.preconditioner import WhitenedEnergy

    sampler = preconditioned(kind)
    precond = sampler.preconditioner
    in_y = L2HMCSampler(WhitenedEnergy(sampler.energy_target, precond), n_steps=3, step_size=0.3, seed=2,
                        networks=sampler.networks, preconditioner=None)
    x = rng.normal(0, 0.8, size=(4, 3))
    v = rng.normal(size=(4, 3))
    d = np.array([1, -1, 1, -1])
    x1, v1, ld1 = sampler.transition(x, v, d)
    y1, w1, ldy = in_y.transition(precond.to_y_numpy(x), v, d)
    np.testing.assert_allclose(x1, precond.to_x_numpy(y1), rtol=0, atol=1e-10)
    np.testing.assert_allclose(v1, w1, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ld1, ldy, rtol=0, atol=1e-10)
    plain = L2HMCSampler(sampler.energy_target, n_steps=3, step_size=0.3, seed=2, networks=sampler.networks,
                         preconditioner=None)
    assert np.abs(plain.transition(x, v, d)[0] - x1).max() > 0.1


def test_time_encoding_and_masks():
    taus = time_encoding(4)
    np.testing.assert_allclose(taus, [[1, 0], [0, 1], [-1, 0], [0, -1]], atol=1e-12)
    for dim in (1, 2, 5):
        masks = draw_masks(6, dim, np.random.default_rng(0))
        assert masks.shape == (6, dim)
        assert set(np.unique(masks)) <= {0.0, 1.0}
        np.testing.assert_array_equal(masks.sum(axis=1), dim // 2)
    a = draw_masks(10, 6, np.random.default_rng(1))
    np.testing.assert_array_equal(a, draw_masks(10, 6, np.random.default_rng(1)))
    assert not np.array_equal(a, draw_masks(10, 6, np.random.default_rng(2)))


def test_seed_fixes_masks_and_weights(small_model):
    a = L2HMCSampler(small_model, n_steps=3, seed=7)
    b = L2HMCSampler(small_model, n_steps=3, seed=7)
    c = L2HMCSampler(small_model, n_steps=3, seed=8)
    np.testing.assert_array_equal(a.masks, b.masks)
    for pa, pb in zip(a.networks.params, b.networks.params):
        np.testing.assert_array_equal(pa.get_value(), pb.get_value())
    assert any(not np.array_equal(pa.get_value(), pc.get_value())
               for pa, pc in zip(a.networks.params, c.networks.params))
