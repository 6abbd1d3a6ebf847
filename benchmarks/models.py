"""PyMC3 models shared by the benchmark scripts (data fixed, so every run sees the same posterior)."""
import numpy as np

import l2hmc_theano  # noqa: F401  (first: it sets Theano's flags before pymc3 imports Theano)
from l2hmc_theano._theano import tt

import pymc3 as pm  # noqa: E402

#: Eight schools: observed effects and their standard errors.
Y8 = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
S8 = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def eight_schools(centred=True):
    """Eight schools; ``centred=False`` samples eta ~ N(0, 1) with theta = mu + tau * eta."""
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 5)
        tau = pm.HalfCauchy("tau", 5)
        if centred:
            theta = pm.Normal("theta", mu, tau, shape=8)
        else:
            eta = pm.Normal("eta", 0, 1, shape=8)
            theta = pm.Deterministic("theta", mu + tau * eta)
        pm.Normal("obs", theta, S8, observed=Y8)
    return model


def logistic_regression():
    """Bayesian logistic regression on a synthetic 500 x 10 design (fixed seed)."""
    rng = np.random.default_rng(1)
    design = rng.normal(size=(500, 10))
    labels = (rng.uniform(size=500) < 1 / (1 + np.exp(-design @ rng.normal(size=10)))).astype(int)
    with pm.Model() as model:
        beta = pm.Normal("beta", 0, 2, shape=10)
        alpha = pm.Normal("alpha", 0, 2)
        pm.Bernoulli("y", logit_p=alpha + tt.dot(design, beta), observed=labels)
    return model
