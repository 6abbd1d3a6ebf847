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


# -- models the project has not tuned on (benchmarks/time_to_result.py) ---------------------------

def latent_gp_classification(n=30):
    """Binary classification with a latent Gaussian process on ``n`` points in 1-d.

    Data (numpy seed 2): x on an even grid over [0, 10], labels ~ Bernoulli(logit^-1(f)) with
    f(x) = 2 sin(x).  Model: lengthscale ~ Gamma(2, 1), amplitude ~ HalfNormal(2),
    f ~ GP(0, amplitude^2 ExpQuad(lengthscale)) through ``pm.gp.Latent`` (f = L eta, L the
    Cholesky factor of the kernel matrix: the logp factors a matrix that depends on the free
    lengthscale and amplitude), y ~ Bernoulli(logit^-1(f))."""
    rng = np.random.default_rng(2)
    x = np.linspace(0.0, 10.0, n)
    labels = (rng.uniform(size=n) < 1 / (1 + np.exp(-2.0 * np.sin(x)))).astype(int)
    with pm.Model() as model:
        lengthscale = pm.Gamma("lengthscale", alpha=2.0, beta=1.0)
        amplitude = pm.HalfNormal("amplitude", 2.0)
        gp = pm.gp.Latent(cov_func=amplitude ** 2 * pm.gp.cov.ExpQuad(1, lengthscale))
        f = gp.prior("f", X=x[:, None])
        pm.Bernoulli("y", logit_p=f, observed=labels)
    return model


#: The large logistic regression's predictor scales (sd of each column: four orders of magnitude)
#: and its true coefficients (each column's effect on the logit is of order 1).
LARGE_LOGISTIC_SCALES = np.array([1.0, 10.0, 0.1, 5.0, 0.5])
LARGE_LOGISTIC_BETA = np.array([0.8, -0.1, 6.0, 0.15, -1.5])


def large_logistic_regression(n=3000):
    """Bayesian logistic regression on ``n`` synthetic rows and 5 correlated predictors of
    different scales (numpy seed 3).

    The predictors are Gaussian with pairwise correlation 0.6 and the sds of
    ``LARGE_LOGISTIC_SCALES`` (0.1 to 10); labels ~ Bernoulli(logit^-1(0.3 + X beta)) with
    beta = ``LARGE_LOGISTIC_BETA``.  Priors: alpha ~ N(0, 5), beta ~ N(0, 5) (weak at every
    scale here), so the posterior's sds differ by the predictors' scales and its coordinates
    are correlated."""
    rng = np.random.default_rng(3)
    k = len(LARGE_LOGISTIC_SCALES)
    correlation = np.full((k, k), 0.6) + 0.4 * np.eye(k)
    covariance = correlation * np.outer(LARGE_LOGISTIC_SCALES, LARGE_LOGISTIC_SCALES)
    design = rng.multivariate_normal(np.zeros(k), covariance, size=n)
    labels = (rng.uniform(size=n) < 1 / (1 + np.exp(-(0.3 + design @ LARGE_LOGISTIC_BETA)))).astype(int)
    with pm.Model() as model:
        alpha = pm.Normal("alpha", 0.0, 5.0)
        beta = pm.Normal("beta", 0.0, 5.0, shape=k)
        pm.Bernoulli("y", logit_p=alpha + tt.dot(design, beta), observed=labels)
    return model


def switchpoint(n_years=111):
    """The coal-mining disaster model: yearly counts ~ Poisson(early before the switchpoint, late
    from it on), switchpoint ~ DiscreteUniform(0, n_years - 1), early, late ~ Exponential(1).

    Data (numpy seed 4): ``n_years`` synthetic counts (as the 1851-1961 series) with rate 3 for
    the first 40 years and 1 after.  The switchpoint is discrete: a sampler of the rates needs
    a compound step (PyMC3's default gives it Metropolis)."""
    rng = np.random.default_rng(4)
    years = np.arange(n_years)
    counts = rng.poisson(np.where(years < 40, 3.0, 1.0))
    with pm.Model() as model:
        switch = pm.DiscreteUniform("switchpoint", lower=0, upper=n_years - 1)
        early = pm.Exponential("early", 1.0)
        late = pm.Exponential("late", 1.0)
        pm.Poisson("disasters", tt.switch(switch > years, early, late), observed=counts)
    return model


def stochastic_volatility(n=100, centred=True):
    """A stochastic volatility model: log-volatilities s ~ GaussianRandomWalk(sigma) over ``n``
    steps from s_0 ~ N(0, 2) (PyMC3's default start is Flat: improper), sigma ~ Exponential(10),
    returns r_t ~ N(0, exp(s_t)).

    Data (numpy seed 5): s_t a random walk from -1 with steps of sd 0.15, r_t ~ N(0, exp(s_t)).
    The walk's scale sigma sets every increment's: a funnel in n + 1 dimensions, as in a
    centred hierarchy.  ``centred=False``: the same posterior with s = s_0 + cumsum(sigma e),
    e ~ N(0, 1) sampled (well-parameterized; s a Deterministic)."""
    rng = np.random.default_rng(5)
    log_vol = -1.0 + np.cumsum(rng.normal(0.0, 0.15, size=n))
    returns = rng.normal(0.0, np.exp(log_vol))
    with pm.Model() as model:
        sigma = pm.Exponential("sigma", 10.0)
        if centred:
            s = pm.GaussianRandomWalk("s", sigma=sigma, init=pm.Normal.dist(0.0, 2.0), shape=n)
        else:
            start = pm.Normal("s0", 0.0, 2.0)
            steps = pm.Normal("e", 0.0, 1.0, shape=n - 1)
            s = pm.Deterministic("s", tt.concatenate([[start], start + tt.cumsum(sigma * steps)]))
        pm.Normal("r", 0.0, tt.exp(s), observed=returns)
    return model


def rotated_gaussian(dim=50):
    """A correlated Gaussian: scales 1e-2..1e2 (log-spaced) along the columns of a random orthogonal
    matrix (numpy seed 0, the QR of a standard normal matrix), as ``pm.MvNormal``.  No diagonal
    preconditioner whitens it: NUTS's trees hit their depth limit (~1000 steps a draw)."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    cov = (q * np.logspace(-2, 2, dim) ** 2) @ q.T
    with pm.Model() as model:
        pm.MvNormal("x", mu=np.zeros(dim), cov=cov, shape=dim)
    return model


def varying_slopes(groups=20, centred=True):
    """Varying intercepts and slopes with an LKJ prior on their correlation: y ~ N(a_g + b_g x,
    sigma) on 2-12 rows per group (numpy seed 3), (a_g, b_g) ~ MvNormal(mu, L L^T) with L from
    ``pm.LKJCholeskyCov`` (eta 2, scales ~ Exponential(1)).  ``centred``: (a, b) sampled as
    ``pm.MvNormal`` (the funnel NUTS diverges in where a group has few rows); else as mu + z L^T
    with z ~ N(0, 1) (the same posterior, well-parameterized).  Data: scales (1, 0.5), correlation
    -0.6, noise sd 1."""
    rng = np.random.default_rng(3)
    rows = rng.integers(2, 13, size=groups)
    group = np.repeat(np.arange(groups), rows)
    x = rng.normal(size=group.size)
    scales = np.array([1.0, 0.5])
    cov = np.outer(scales, scales) * np.array([[1.0, -0.6], [-0.6, 1.0]])
    effects = rng.multivariate_normal([1.0, -0.5], cov, size=groups)
    y = effects[group, 0] + effects[group, 1] * x + rng.normal(size=group.size)
    with pm.Model() as model:
        chol, _, _ = pm.LKJCholeskyCov("chol", n=2, eta=2.0, sd_dist=pm.Exponential.dist(1.0), compute_corr=True)
        mu = pm.Normal("mu", 0.0, 5.0, shape=2)
        if centred:
            ab = pm.MvNormal("ab", mu=mu, chol=chol, shape=(groups, 2))
        else:
            z = pm.Normal("z", 0.0, 1.0, shape=(groups, 2))
            ab = pm.Deterministic("ab", mu + tt.dot(z, chol.T))
        sigma = pm.Exponential("sigma", 1.0)
        pm.Normal("y", ab[group, 0] + ab[group, 1] * x, sigma, observed=y)
    return model


def student_t_schools(centred=True, nu=4.0):
    """Eight schools with Student-t group effects (``nu`` degrees of freedom): mu ~ N(0, 5), tau ~
    HalfCauchy(5), theta ~ StudentT(nu, mu, tau), y ~ N(theta, se).  ``centred=False``: theta = mu +
    tau eta with eta ~ StudentT(nu, 0, 1) (the same posterior, well-parameterized)."""
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 5.0)
        tau = pm.HalfCauchy("tau", 5.0)
        if centred:
            theta = pm.StudentT("theta", nu=nu, mu=mu, sigma=tau, shape=8)
        else:
            eta = pm.StudentT("eta", nu=nu, mu=0.0, sigma=1.0, shape=8)
            theta = pm.Deterministic("theta", mu + tau * eta)
        pm.Normal("y", theta, S8, observed=Y8)
    return model
