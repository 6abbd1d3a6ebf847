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


def eight_schools_moments(n_grid=1500):
    """Exact posterior (mean, sd) of eight schools' mu and tau, ``{"mu": (m, sd), "tau": (m, sd)}``,
    by quadrature: with theta integrated out, y_j ~ N(mu, sqrt(se_j^2 + tau^2)), so
    p(mu, tau | y) is proportional to N(mu | 0, 5) HalfCauchy(tau | 5) prod_j N(y_j | mu,
    sqrt(se_j^2 + tau^2)), summed by the trapezoid rule on an ``n_grid`` x ``n_grid`` grid of
    mu in [-40, 40] and log tau in [-15, 7] (the same for the centred and non-centred
    models: theta = mu + tau eta)."""
    from scipy import stats

    mu = np.linspace(-40.0, 40.0, n_grid)
    log_tau = np.linspace(-15.0, 7.0, n_grid)
    tau = np.exp(log_tau)
    scale = np.sqrt(np.square(S8)[None, :] + np.square(tau)[:, None])  # (tau, school)
    loglik = stats.norm.logpdf(np.asarray(Y8)[None, None, :], mu[None, :, None], scale[:, None, :]).sum(axis=2)
    log_post = (loglik + stats.norm.logpdf(mu, 0.0, 5.0)[None, :]
                + (stats.halfcauchy.logpdf(tau, scale=5.0) + log_tau)[:, None])  # d tau = tau d log tau
    joint = np.exp(log_post - log_post.max())

    def integral(f):
        return np.trapz(np.trapz(joint * f, mu, axis=1), log_tau)

    norm = integral(1.0)
    moments = {}
    for name, values in (("mu", mu[None, :]), ("tau", tau[:, None])):
        m1, m2 = integral(values) / norm, integral(values ** 2) / norm
        moments[name] = (float(m1), float(np.sqrt(m2 - m1 ** 2)))
    return moments


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


def funnel(dim=10):
    """Neal's funnel in ``dim`` dimensions: v ~ N(0, 3), x_i ~ N(0, exp(v / 2)) for i < dim - 1.

    Exact moments: E v = E x_i = 0, sd(v) = 3, var(x_i) = E exp(v) = exp(9 / 2) ~ 90.  The scale
    of x spans exp(+-3) ~ 20x either way within v's +-2 sd: no constant mass matrix fits."""
    if dim < 2:
        raise ValueError(f"funnel: dim must be >= 2 (v and at least one x), got {dim}")
    with pm.Model() as model:
        v = pm.Normal("v", 0.0, 3.0)
        pm.Normal("x", 0.0, tt.exp(v / 2.0), shape=dim - 1)
    return model


#: The banana's curvature b and its first coordinate's sd (Haario et al.'s twisted Gaussian).
BANANA_B, BANANA_SD = 0.03, 10.0


def banana():
    """A 2-d banana (Haario et al. 1999's twisted Gaussian): x1 ~ N(0, 10),
    x2 | x1 ~ N(b (x1^2 - 100), 1) with b = 0.03.

    Exact moments: E x1 = E x2 = 0, var(x1) = 100, var(x2) = 1 + 2 b^2 10^4 = 19."""
    with pm.Model() as model:
        x1 = pm.Normal("x1", 0.0, BANANA_SD)
        pm.Normal("x2", BANANA_B * (tt.sqr(x1) - BANANA_SD ** 2), 1.0)
    return model
