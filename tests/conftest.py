"""Shared targets and helpers for the test suite."""
import numpy as np
import pytest

import pathlib

import l2hmc_theano  # noqa: F401  (Theano flags before pymc3 imports Theano)
from l2hmc_theano._theano import BACKEND, floatX, tt

#: The test modules that run on either graph library (the symbolic core), and those of today's PyMC
#: (>= 5, on PyTensor) alone; the others need PyMC3.
STACK_NEUTRAL = ("test_core_graph.py",)
PYMC_ONLY = ("test_pymc_energy.py",)

if BACKEND == "theano":
    import pymc3 as pm

    collect_ignore = list(PYMC_ONLY)
else:  # PyMC >= 5 on PyTensor: the symbolic core and the model's energy are there yet
    from l2hmc_theano._pymc import pm

    collect_ignore = [p.name for p in pathlib.Path(__file__).parent.glob("test_*.py")
                      if p.name not in STACK_NEUTRAL + PYMC_ONLY]


@pytest.fixture(scope="session", autouse=True)
def no_sampler_cache():
    """The cache of trained samplers off for every test (and the subprocesses they start):
    each trains afresh, as it did before there was a cache; ``test_cache.py`` turns it on."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("L2HMC_THEANO_CACHE", "off")
        yield


def transformed_model():
    """A small model with a vector, a log-transformed and an interval-transformed variable."""
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.5, 2.0, shape=2)
        sigma = pm.HalfNormal("sigma", 1.5)
        p = pm.Beta("p", 2.0, 3.0)
        pm.Normal("y", mu.sum() * p, sigma, observed=np.array([0.3, -1.2, 2.0]))
    return model


@pytest.fixture(scope="session")
def small_model():
    return transformed_model()


class HandWrittenAux:
    """Non-zero, non-linear auxiliary functions written by hand (no training).

    Every output depends on every allowed input, and through tau on the step,
    so that S, Q and T all change the dynamics and the log-det is far from zero.
    """

    params = []

    def __init__(self, dim, seed=0, scale=1.0):
        rng = np.random.default_rng(seed)
        self.W = {k: rng.normal(0, 1, size=(dim, dim)).astype(floatX) for k in
                  ("vx", "vg", "vq", "vt", "xv", "xx", "xq", "xt")}
        self.tau_w = {k: rng.normal(0, 1, size=(2, dim)).astype(floatX) for k in ("v", "x")}
        self.scale = scale

    def v_terms(self, x, grad, tau):
        W, c = self.W, self.scale
        h = tt.dot(x, W["vx"]) + 0.3 * tt.dot(grad, W["vg"]) + tt.dot(tau, self.tau_w["v"])
        return c * 0.8 * tt.tanh(h), c * 0.5 * tt.tanh(tt.dot(x, W["vq"])), c * 0.4 * tt.sin(tt.dot(x, W["vt"]))

    def x_terms(self, v, x_masked, tau):
        W, c = self.W, self.scale
        h = tt.dot(v, W["xv"]) + tt.dot(x_masked, W["xx"]) + tt.dot(tau, self.tau_w["x"])
        return c * 0.8 * tt.tanh(h), c * 0.5 * tt.cos(tt.dot(v, W["xq"])), c * 0.4 * tt.tanh(tt.dot(x_masked, W["xt"]))


@pytest.fixture
def rng():
    return np.random.default_rng(20181129)
