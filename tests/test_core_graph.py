"""The symbolic core on the graph library installed (Theano, or PyTensor for PyMC >= 5): the
generalized leapfrog's exact inverse and log-det-Jacobian, HMC's leapfrog as its special case, and
the MH step's acceptance, built from :mod:`l2hmc_theano.dynamics` and :mod:`l2hmc_theano.kernel`
alone (no PyMC)."""
import numpy as np
import pytest

from conftest import HandWrittenAux
from l2hmc_theano._theano import BACKEND, change_flags, floatX, theano, tt
from l2hmc_theano.dynamics import draw_masks, generalized_leapfrog, time_encoding
from l2hmc_theano.kernel import metropolis_hastings, propose
from l2hmc_theano.networks import AuxiliaryNetworks, ZeroFunctions

DIM, N_STEPS, STEP_SIZE = 3, 3, 0.3


class Banana:
    """U(x) = |x|^2 / 2 + (x0 x1)^2 / 4 + log cosh x2 per row of ``X`` ``(batch, 3)``: not Gaussian."""

    dim = DIM

    def value_and_grad(self, X):
        U = 0.5 * tt.sqr(X).sum(axis=1) + 0.25 * tt.sqr(X[:, 0] * X[:, 1]) + tt.log(tt.cosh(X[:, 2]))
        return U, tt.grad(U.sum(), X)


def banana_grad(x):
    """dU/dx of :class:`Banana` in NumPy, ``(batch, 3)``."""
    g = x.copy()
    g[:, 0] += 0.5 * x[:, 0] * x[:, 1] ** 2
    g[:, 1] += 0.5 * x[:, 1] * x[:, 0] ** 2
    g[:, 2] += np.tanh(x[:, 2])
    return g


def compiled_map(networks):
    """(x, v, d) -> x', v', log|det J| of T generalized leapfrog steps, compiled."""
    with change_flags(compute_test_value="off"):  # PyMC3, once imported, may have set it to "raise"
        x, v, d = tt.matrix("x", dtype=floatX), tt.matrix("v", dtype=floatX), tt.vector("d", dtype=floatX)
        _, grad = Banana().value_and_grad(x)
        masks = draw_masks(N_STEPS, DIM, np.random.default_rng(2))
        out = generalized_leapfrog(Banana(), networks, x, v, grad, d, STEP_SIZE, time_encoding(N_STEPS), masks)
        return theano.function([x, v, d], list(out[:2]) + [out[3]])


NETWORKS = {
    "networks": lambda: AuxiliaryNetworks(DIM, (8, 8), np.random.default_rng(5), head_scale=1.0),
    "hand-written": lambda: HandWrittenAux(DIM, seed=4),
}


@pytest.fixture(scope="module", params=sorted(NETWORKS))
def leapfrog_map(request):
    return compiled_map(NETWORKS[request.param]())


def test_the_backend_is_the_one_installed():
    assert BACKEND in ("theano", "pytensor")
    assert theano.__name__ == BACKEND


def test_backward_inverts_forward(leapfrog_map, rng):
    x, v = rng.normal(0, 0.8, size=(6, DIM)), rng.normal(size=(6, DIM))
    d = np.array([1.0, -1, 1, -1, -1, 1])
    x1, v1, ld1 = leapfrog_map(x, v, d)
    x0, v0, ld0 = leapfrog_map(x1, v1, -d)
    np.testing.assert_allclose(x0, x, rtol=0, atol=1e-8)
    np.testing.assert_allclose(v0, v, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ld1 + ld0, 0.0, rtol=0, atol=1e-10)
    assert np.abs(x1 - x).max() > 0.1 and np.abs(ld1).min() > 1e-3  # it moves, and changes volume


@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_logdet_matches_numerical_jacobian(leapfrog_map, direction, rng):
    """log|det d(x', v')/d(x, v)| of one chain against central differences (h = 1e-5)."""
    x, v = rng.normal(0, 0.8, size=DIM), rng.normal(size=DIM)
    z, h = np.concatenate([x, v]), 1e-5
    rows = np.repeat(z[None], 4 * DIM + 1, axis=0)
    for i in range(2 * DIM):
        rows[1 + 2 * i, i] += h
        rows[2 + 2 * i, i] -= h
    x1, v1, logdet = leapfrog_map(rows[:, :DIM], rows[:, DIM:], np.full(len(rows), direction))
    out = np.concatenate([x1, v1], axis=1)
    jacobian = np.stack([(out[1 + 2 * i] - out[2 + 2 * i]) / (2 * h) for i in range(2 * DIM)], axis=1)
    sign, numerical = np.linalg.slogdet(jacobian)
    assert sign != 0 and abs(logdet[0]) > 1e-3
    np.testing.assert_allclose(logdet[0], numerical, rtol=0, atol=1e-6)


def test_zero_networks_are_hmcs_leapfrog(rng):
    """With S = Q = T = 0 the map is the leapfrog (written here in NumPy), log|det J| = 0, and d = -1 runs
    it with the momentum flipped."""
    leapfrog_map = compiled_map(ZeroFunctions())
    x, v = rng.normal(0, 0.8, size=(4, DIM)), rng.normal(size=(4, DIM))
    d = np.array([1.0, -1, 1, -1])
    x1, v1, logdet = leapfrog_map(x, v, d)
    q, p = x.copy(), d[:, None] * v
    for _ in range(N_STEPS):
        p = p - 0.5 * STEP_SIZE * banana_grad(q)
        q = q + STEP_SIZE * p
        p = p - 0.5 * STEP_SIZE * banana_grad(q)
    np.testing.assert_allclose(x1, q, rtol=0, atol=1e-12)
    np.testing.assert_allclose(v1, d[:, None] * p, rtol=0, atol=1e-12)
    assert np.all(logdet == 0.0) and np.abs(x1 - x).max() > 0.1


def test_mh_step_accepts_with_the_hamiltonians_ratio(rng):
    """A = min(1, exp(H(x, v) - H(x', v') + log|det J|)); accepted exactly where log u < log A."""
    networks = NETWORKS["networks"]()
    with change_flags(compute_test_value="off"):
        x, v, d, log_u = (tt.matrix("x", dtype=floatX), tt.matrix("v", dtype=floatX), tt.vector("d", dtype=floatX),
                          tt.vector("log_u", dtype=floatX))
        masks = draw_masks(N_STEPS, DIM, np.random.default_rng(2))
        p = propose(Banana(), networks, x, v, d, 0.5, time_encoding(N_STEPS), masks)
        x_next, accepted = metropolis_hastings(p, x, log_u)
        step = theano.function([x, v, d, log_u], [x_next, accepted, p.accept_prob, p.x, p.v, p.logdet])
    n = 400
    xs, vs = rng.normal(0, 0.8, size=(n, DIM)), rng.normal(size=(n, DIM))
    ds, us = rng.choice([-1.0, 1.0], size=n), np.log(rng.uniform(size=n))
    x_next, accepted, accept, x1, v1, logdet = step(xs, vs, ds, us)

    def hamiltonian(q, m):
        u = 0.5 * (q ** 2).sum(1) + 0.25 * (q[:, 0] * q[:, 1]) ** 2 + np.log(np.cosh(q[:, 2]))
        return u + 0.5 * (m ** 2).sum(1)

    with np.errstate(over="ignore", invalid="ignore"):
        log_ratio = hamiltonian(xs, vs) - hamiltonian(x1, v1) + logdet
    finite = np.isfinite(log_ratio) & np.all(np.isfinite(x1), axis=1)  # else a divergence: rejected
    expected = np.where(finite, np.exp(np.minimum(np.where(finite, log_ratio, 0.0), 0.0)), 0.0)
    np.testing.assert_allclose(accept, expected, rtol=1e-10, atol=1e-14)
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(accepted.astype(bool), us < np.log(expected))
    np.testing.assert_allclose(x_next, np.where(accepted.astype(bool)[:, None], x1, xs), rtol=0, atol=0)
    assert 0.05 < accepted.mean() < 0.95 and finite.mean() > 0.5  # both outcomes occur


def test_the_backend_can_be_chosen_and_a_wrong_choice_is_named():
    import os
    import subprocess
    import sys

    def run(choice):
        env = {**os.environ, "L2HMC_BACKEND": choice}
        return subprocess.run([sys.executable, "-c", "import l2hmc_theano._theano as t; print(t.BACKEND)"], env=env,
                              capture_output=True, text=True, timeout=300)

    chosen = run(BACKEND.upper())
    assert chosen.returncode == 0 and chosen.stdout.split()[-1] == BACKEND
    wrong = run("jax")
    assert wrong.returncode != 0 and "L2HMC_BACKEND='jax': choose one of theano, pytensor" in wrong.stderr
