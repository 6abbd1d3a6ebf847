"""PyMC3 models shared by the benchmark scripts (data fixed, so every run sees the same posterior)."""
import numpy as np

import l2hmc_theano  # noqa: F401  (first: it sets Theano's flags before pymc3 imports Theano)
from l2hmc_theano._theano import tt
from l2hmc_theano.targets import EIGHT_SCHOOLS_EFFECTS, EIGHT_SCHOOLS_SE, eight_schools  # noqa: F401

import pymc3 as pm  # noqa: E402

#: Eight schools: observed effects and their standard errors (the model is l2hmc_theano.targets').
Y8, S8 = EIGHT_SCHOOLS_EFFECTS, EIGHT_SCHOOLS_SE


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
