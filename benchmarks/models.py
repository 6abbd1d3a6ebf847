"""PyMC3 models shared by the benchmark scripts (data fixed, so every run sees the same posterior)."""
import os

import numpy as np
import pandas as pd

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


def radon():
    """Varying intercepts on the Minnesota radon data (Gelman & Hill): 919 houses in 85 counties.

    Data: ``pymc3/tests/data/srrs2.dat`` from the installed pymc3 wheel (the EPA radon survey),
    rows with state "MN"; county = index of the (whitespace-stripped) county name among the 85
    sorted names; floor = the 0/1 ``floor`` column (1: first floor, 0: basement); y = log(activity
    + 0.1).  Model: a ~ N(mu_a, sigma_a) per county, y ~ N(a[county] + b * floor, eps)."""
    path = os.path.join(os.path.dirname(pm.__file__), "tests", "data", "srrs2.dat")
    if not os.path.exists(path):
        raise FileNotFoundError(f"radon data {path} not found (pymc3 {pm.__version__}'s wheel ships it)")
    data = pd.read_csv(path, skipinitialspace=True)
    data.columns = data.columns.str.strip()
    data = data[data["state"].str.strip() == "MN"]
    names, county = np.unique(data["county"].str.strip(), return_inverse=True)
    floor = data["floor"].to_numpy(dtype=float)
    log_radon = np.log(data["activity"].to_numpy(dtype=float) + 0.1)
    if (len(data), len(names)) != (919, 85) or set(floor) != {0.0, 1.0}:
        raise ValueError(f"{path}: expected 919 MN houses in 85 counties with floor 0/1, got "
                         f"{len(data)} in {len(names)} with floor values {sorted(set(floor))}")
    with pm.Model() as model:
        mu_a = pm.Normal("mu_a", 0, 10)
        sigma_a = pm.HalfNormal("sigma_a", 5)
        a = pm.Normal("a", mu_a, sigma_a, shape=len(names))
        b = pm.Normal("b", 0, 10)
        eps = pm.HalfCauchy("eps", 5)
        pm.Normal("y", a[county] + b * floor, eps, observed=log_radon)
    return model
