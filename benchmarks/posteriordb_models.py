"""Posteriors from posteriordb (github.com/stan-dev/posteriordb) ported to PyMC3, with a data loader.

Every posterior here has reference draws in posteriordb (10 chains x 1000 thinned draws
of Stan's NUTS, ~10000 nearly independent draws).  ``load(name, root)`` reads a posterior's
data and its reference draws from an extracted posteriordb tree (``root/posterior_database/...``)
with json and zipfile only; ``POSTERIORS[name](data)`` builds the PyMC3 model;
``to_posteriordb`` turns PyMC3 draws into posteriordb's scalar names ("b[1]" is element 0,
a matrix "x[i,j]" row-major, 1-based) for comparison with the reference.

Porting rules: the same priors (Stan's implicit flat priors become ``pm.Flat`` /
``pm.HalfFlat``; a half-bounded Stan prior such as ``sigma ~ cauchy(0, 2.5)`` on
``real<lower=0>`` becomes the half distribution, equal up to a constant), the same likelihood,
transformed data computed in numpy, Stan's parameter names (a vector is one variable with a
shape; transformed parameters the reference holds are ``pm.Deterministic``).  Recursions that
Stan writes as loops (ARMA, GARCH, the HMM forward algorithm) are written here as equivalent
vectorised expressions: on Python 3.11 Theano's Scan runs its outer loop in Python
(about 3 ms per gradient for 200 steps), which would dominate the cost of these models.

Not ported, of the posteriors with reference draws: hudson_lynx_hare-lotka_volterra and
one_comp_mm_elim_abs-one_comp_mm_elim_abs (ODE solvers), mcycle_gp-accel_gp (its reference
draws were missing from the snapshot this was checked against).  Radon, dogs and the Rate
models have no reference draws in posteriordb.  ``benchmarks/posteriordb.py`` checks
every port against its reference with PyMC3's NUTS (its NUTS rows).

    data, reference = load("diamonds-diamonds", "/tmp/pdb")
    model = POSTERIORS["diamonds-diamonds"](data)
"""
import json
import math
import os
import zipfile

import numpy as np

import l2hmc_theano  # noqa: F401  (first: it sets Theano's flags before pymc3 imports Theano)
import pymc3 as pm
import theano.tensor as tt
from theano.gradient import zero_grad
from theano.tensor import slinalg
from pymc3.distributions import transforms as tr

__all__ = ["load", "load_data", "load_reference", "POSTERIORS", "to_posteriordb"]


# --------------------------------------------------------------------------- loading

def _read_zipped_json(path):
    with zipfile.ZipFile(path) as z:
        member = [n for n in z.namelist() if n.endswith(".json")][0]
        return json.loads(z.read(member).decode("utf-8"))


def _as_numpy(value):
    """JSON scalar -> int/float; JSON list -> int64 array if every entry is an int, else float64."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    arr = np.asarray(value)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64)
    return arr.astype(np.float64)


def _info(name, root):
    with open(os.path.join(root, "posterior_database", "posteriors", name + ".json")) as f:
        return json.load(f)


def load_data(name, root):
    """The data dict of posterior ``name`` (numpy arrays and Python ints/floats)."""
    info = _info(name, root)
    raw = _read_zipped_json(os.path.join(root, "posterior_database", "data", "data", info["data_name"] + ".json.zip"))
    return {k: _as_numpy(v) for k, v in raw.items()}


def load_reference(name, root, pooled=True):
    """Reference draws of posterior ``name``: posteriordb name -> 1-d array pooled over chains
    (``pooled=False``: a (chains, draws) array)."""
    info = _info(name, root)
    ref = info.get("reference_posterior_name")
    if not ref:
        raise ValueError("posterior %r has no reference draws" % name)
    chains = _read_zipped_json(os.path.join(root, "posterior_database", "reference_posteriors", "draws", "draws",
                                            ref + ".json.zip"))
    out = {}
    for key in chains[0]:
        arr = np.array([np.asarray(c[key], dtype=np.float64) for c in chains])
        out[key] = arr.reshape(-1) if pooled else arr
    return out


def load(name, root):
    """(data, reference) for posterior ``name`` from the posteriordb tree at ``root``."""
    return load_data(name, root), load_reference(name, root)


def to_posteriordb(posterior, names=None):
    """PyMC3 draws {var: array (draws, *shape)} -> {posteriordb name: 1-d array of draws}.

    Element (i, j) of ``x`` is "x[i+1,j+1]" (row-major); a scalar keeps its name.  With
    ``names`` (e.g. the reference's keys) only those names are kept; otherwise PyMC3's
    transformed variables (names ending in "__") are left out."""
    out = {}
    for var, draws in posterior.items():
        if names is None and var.endswith("__"):
            continue
        draws = np.asarray(draws)
        for idx in np.ndindex(*draws.shape[1:]):
            key = var + ("[" + ",".join(str(i + 1) for i in idx) + "]" if idx else "")
            if names is None or key in names:
                out[key] = draws[(slice(None),) + idx]
    return out


# --------------------------------------------------------------------------- helpers

def _f(x):
    return np.asarray(x, dtype=np.float64)


def _linear_regression(y, columns, sigma_prior=None, beta_name="beta", y_name="y", start_at_ols=False):
    """y ~ normal(beta[1] + beta[2] * columns[0] + ..., sigma), beta flat;
    sigma flat on (0, inf) or ``sigma_prior(name)``.  ``start_at_ols``: initial values
    (testval) at the least-squares fit and its residual sd instead of PyMC3's beta = 0, sigma = 1."""
    y = _f(y)
    X = np.column_stack([np.ones(len(y))] + [_f(c) for c in columns])
    start = {}
    if start_at_ols:
        beta0 = np.linalg.lstsq(X, y, rcond=None)[0]
        start = dict(beta=dict(testval=beta0), sigma=dict(testval=np.std(y - X @ beta0, ddof=X.shape[1])))
    with pm.Model() as model:
        beta = pm.Flat(beta_name, shape=X.shape[1], **start.get("beta", {}))
        sigma = (pm.HalfFlat("sigma", **start.get("sigma", {})) if sigma_prior is None
                 else sigma_prior("sigma", **start.get("sigma", {})))
        pm.Normal(y_name, mu=tt.dot(X, beta), sigma=sigma, observed=y)
    return model


def _half_cauchy_2_5(name, **kwargs):
    return pm.HalfCauchy(name, beta=2.5, **kwargs)


def _sd(x):
    return np.std(_f(x), ddof=1)  # Stan's sd(): the N - 1 denominator


def _positive_ordered():
    """Stan's positive_ordered: log, then ordered (density on the constrained space, Jacobians
    added; another unconstrained parametrisation than Stan's, the same target)."""
    return tr.Chain([tr.log, tr.ordered])


def _log_matmul(A, B):
    """Batched matrix product in the (logsumexp, +) semiring: C[n, i, j] = logsumexp_k A[n, i, k] + B[n, k, j]."""
    S = A[:, :, :, None] + B[:, None, :, :]
    m = zero_grad(tt.max(S, axis=2, keepdims=True))  # the result's derivative in m is 0
    return (m + tt.log(tt.sum(tt.exp(S - m), axis=2, keepdims=True)))[:, :, 0, :]


def _hmm_log_likelihood(log_theta, log_emit, N):
    """Stan's forward algorithm (gamma[1, k] = log_emit[1, k];
    gamma[t, k] = log_sum_exp_j(gamma[t-1, j] + log theta[j, k] + log_emit[t, k]);
    target += log_sum_exp(gamma[N])), as the ordered product of the N - 1 matrices
    M_t[j, k] = log theta[j, k] + log_emit[t, k] in the (logsumexp, +) semiring, multiplied
    pairwise in about log2(N) vectorised rounds (associativity), then closed with gamma[1]."""
    mats = log_theta[None, :, :] + log_emit[1:, None, :]
    n = N - 1
    while n > 1:
        half = n // 2
        paired = _log_matmul(mats[0:2 * half:2], mats[1:2 * half:2])
        if n % 2:
            paired = tt.concatenate([paired, mats[2 * half:]], axis=0)
        mats, n = paired, half + n % 2
    total = log_emit[0][:, None] + mats[0]
    m = zero_grad(tt.max(total))
    return m + tt.log(tt.sum(tt.exp(total - m)))


def _normal_lpdf(x, mu, sd):
    return -0.5 * tt.sqr((x - mu) / sd) - tt.log(sd) - 0.5 * np.log(2 * np.pi)


def _exp_quad_cov(x, alpha, rho):
    """Stan's gp_exp_quad_cov(x, alpha, rho) for 1-d x: alpha^2 exp(-(x_i - x_j)^2 / (2 rho^2))."""
    d2 = (x[:, None] - x[None, :]) ** 2
    return tt.sqr(alpha) * tt.exp(-0.5 * d2 / tt.sqr(rho))


_cholesky = slinalg.Cholesky(lower=True, on_error="nan")  # a failed decomposition rejects the point, as in Stan


# --------------------------------------------------------------------------- models

def diamonds(data):
    """diamonds.stan (brms): y ~ normal_id_glm(Xc, Intercept, b, sigma), Xc = X without its
    intercept column, columns centred; b ~ normal(0, 1), Intercept ~ student_t(3, 8, 10),
    sigma ~ student_t(3, 0, 10) truncated at 0 (= HalfStudentT).  Badly conditioned: Stan's NUTS
    takes ~800 leapfrog steps per draw.  prior_only is 0 in the data."""
    X = _f(data["X"])
    means_X = X[:, 1:].mean(axis=0)
    Xc = X[:, 1:] - means_X
    with pm.Model() as model:
        b = pm.Normal("b", mu=0.0, sigma=1.0, shape=Xc.shape[1])
        Intercept = pm.StudentT("Intercept", nu=3, mu=8.0, sigma=10.0)
        sigma = pm.HalfStudentT("sigma", nu=3, sigma=10.0)
        if not data["prior_only"]:
            pm.Normal("Y", mu=Intercept + tt.dot(Xc, b), sigma=sigma, observed=_f(data["Y"]))
    return model


def arK(data):
    """arK.stan: AR(K), y[t] ~ normal(alpha + sum_k beta[k] y[t-k], sigma) for t > K;
    alpha, beta ~ normal(0, 10), sigma ~ cauchy(0, 2.5) on sigma > 0."""
    y, K, T = _f(data["y"]), int(data["K"]), int(data["T"])
    lags = np.column_stack([y[K - k:T - k] for k in range(1, K + 1)])  # lags[t - K, k - 1] = y[t - k]
    with pm.Model() as model:
        alpha = pm.Normal("alpha", mu=0.0, sigma=10.0)
        beta = pm.Normal("beta", mu=0.0, sigma=10.0, shape=K)
        sigma = pm.HalfCauchy("sigma", beta=2.5)
        pm.Normal("y", mu=alpha + tt.dot(lags, beta), sigma=sigma, observed=y[K:])
    return model


def arma11(data):
    """arma11.stan: ARMA(1, 1).  nu[1] = mu + phi mu, nu[t] = mu + phi y[t-1] + theta err[t-1],
    err = y - nu ~ normal(0, sigma); mu ~ normal(0, 10), phi, theta ~ normal(0, 2),
    sigma ~ cauchy(0, 2.5) on sigma > 0.  The recursion err[t] = r[t] - theta err[t-1]
    (r[1] = y[1] - mu - phi mu, r[t] = y[t] - mu - phi y[t-1]) is solved in closed form,
    err = L r with L[t, s] = (-theta)^(t-s) for s <= t (integer powers of a possibly negative base)."""
    y, T = _f(data["y"]), int(data["T"])
    t_idx = np.arange(T)
    D = t_idx[:, None] - t_idx[None, :]
    lower = (D >= 0).astype(np.float64)
    D = np.where(D >= 0, D, 0).astype(np.float64)
    with pm.Model() as model:
        mu = pm.Normal("mu", mu=0.0, sigma=10.0)
        phi = pm.Normal("phi", mu=0.0, sigma=2.0)
        theta = pm.Normal("theta", mu=0.0, sigma=2.0)
        sigma = pm.HalfCauchy("sigma", beta=2.5)
        prev = tt.concatenate([tt.stack([mu]), tt.as_tensor_variable(y[:-1])])
        r = y - mu - phi * prev
        L = tt.pow(-theta, D) * lower
        err = tt.dot(L, r)
        pm.Potential("err", tt.sum(pm.Normal.dist(mu=0.0, sigma=sigma).logp(err)))
    return model


def garch11(data):
    """garch11.stan: sigma[1] = sigma1 (data), sigma[t]^2 = alpha0 + alpha1 (y[t-1] - mu)^2
    + beta1 sigma[t-1]^2, y ~ normal(mu, sigma).  No priors: mu flat, alpha0 flat on (0, inf),
    (alpha1, beta1) flat on {alpha1 in (0, 1), 0 < beta1 < 1 - alpha1}: Uniform(0, 1 - alpha1)
    for beta1 has density 1 / (1 - alpha1), cancelled by a Potential.  The variance recursion is
    linear: sigma^2 = L a with a[1] = sigma1^2, a[t] = alpha0 + alpha1 (y[t-1] - mu)^2,
    L[t, s] = beta1^(t-s) for s <= t."""
    y, T, sigma1 = _f(data["y"]), int(data["T"]), float(data["sigma1"])
    t_idx = np.arange(T)
    D = t_idx[:, None] - t_idx[None, :]
    lower = (D >= 0).astype(np.float64)
    D = np.where(D >= 0, D, 0).astype(np.float64)
    with pm.Model() as model:
        mu = pm.Flat("mu")
        alpha0 = pm.HalfFlat("alpha0")
        alpha1 = pm.Uniform("alpha1", lower=0.0, upper=1.0)
        beta1 = pm.Uniform("beta1", lower=0.0, upper=1.0 - alpha1, testval=0.25)
        pm.Potential("beta1_flat", tt.log(1.0 - alpha1))
        a = tt.concatenate([tt.as_tensor_variable(np.array([sigma1 ** 2])), alpha0 + alpha1 * tt.sqr(y[:-1] - mu)])
        L = tt.exp(D * tt.log(beta1)) * lower
        pm.Normal("y", mu=mu, sigma=tt.sqrt(tt.dot(L, a)), observed=y)
    return model


def eight_schools_noncentered(data):
    """eight_schools_noncentered.stan: theta = mu + tau theta_trans, theta_trans ~ normal(0, 1),
    y ~ normal(theta, sigma), mu ~ normal(0, 5), tau ~ cauchy(0, 5) on tau > 0."""
    J = int(data["J"])
    with pm.Model() as model:
        theta_trans = pm.Normal("theta_trans", mu=0.0, sigma=1.0, shape=J)
        mu = pm.Normal("mu", mu=0.0, sigma=5.0)
        tau = pm.HalfCauchy("tau", beta=5.0)
        theta = pm.Deterministic("theta", theta_trans * tau + mu)
        pm.Normal("y", mu=theta, sigma=_f(data["sigma"]), observed=_f(data["y"]))
    return model


def eight_schools_centered(data):
    """eight_schools_centered.stan: theta ~ normal(mu, tau), y ~ normal(theta, sigma),
    mu ~ normal(0, 5), tau ~ cauchy(0, 5) on tau > 0.  posteriordb's reference for it is the
    non-centred one's draws (same posterior of theta, mu, tau).  The funnel makes NUTS biased
    (divergences) for tau small: a hard case, not a porting question."""
    J = int(data["J"])
    with pm.Model() as model:
        tau = pm.HalfCauchy("tau", beta=5.0)
        mu = pm.Normal("mu", mu=0.0, sigma=5.0)
        theta = pm.Normal("theta", mu=mu, sigma=tau, shape=J)
        pm.Normal("y", mu=theta, sigma=_f(data["sigma"]), observed=_f(data["y"]))
    return model


def gp_pois_regr(data):
    """gp_pois_regr.stan: latent GP, non-centred: f = cholesky(K + 1e-10 I) f_tilde,
    K = gp_exp_quad_cov(x, alpha, rho), f_tilde ~ normal(0, 1), k ~ poisson_log(f);
    rho ~ gamma(25, 4) (rate 4), alpha ~ normal(0, 2) on alpha > 0.  f is a Deterministic.
    K is nearly singular (smallest eigenvalue ~1e-8): posteriordb's reference used adapt_delta
    0.99; PyMC3's NUTS at its default target_accept = 0.8 diverges often and does not converge
    (R-hat ~1.4), at 0.99 it agrees with the reference (gradient checked by finite differences)."""
    x, N = _f(data["x"]), int(data["N"])
    with pm.Model() as model:
        rho = pm.Gamma("rho", alpha=25.0, beta=4.0)
        alpha = pm.HalfNormal("alpha", sigma=2.0)
        f_tilde = pm.Normal("f_tilde", mu=0.0, sigma=1.0, shape=N)
        L = _cholesky(_exp_quad_cov(x, alpha, rho) + 1e-10 * np.eye(N))
        f = pm.Deterministic("f", tt.dot(L, f_tilde))
        k = np.asarray(data["k"], dtype=np.int64)
        pm.Potential("k", tt.sum(k * f - tt.exp(f)) - sum(math.lgamma(v + 1.0) for v in k))
    return model


def gp_regr(data):
    """gp_regr.stan: y ~ multi_normal_cholesky(0, cholesky(K + sigma I)),
    K = gp_exp_quad_cov(x, alpha, rho); note Stan adds sigma (not sigma^2) to the diagonal.
    rho ~ gamma(25, 4) (rate 4), alpha ~ normal(0, 2), sigma ~ normal(0, 1), both > 0."""
    x, y, N = _f(data["x"]), _f(data["y"]), int(data["N"])
    with pm.Model() as model:
        rho = pm.Gamma("rho", alpha=25.0, beta=4.0)
        alpha = pm.HalfNormal("alpha", sigma=2.0)
        sigma = pm.HalfNormal("sigma", sigma=1.0)
        L = _cholesky(_exp_quad_cov(x, alpha, rho) + sigma * np.eye(N))
        pm.MvNormal("y", mu=np.zeros(N), chol=L, observed=y)
    return model


def _hmm_transitions(K, alpha=None):
    """theta1, theta2: the rows of the K x K transition matrix (Stan hard-codes K = 2);
    Dirichlet(alpha[k, :]) or, with no prior, Dirichlet(1) = Stan's flat simplex."""
    if K != 2:
        raise ValueError("the Stan model fills theta from theta1 and theta2 only: K must be 2")
    a = np.ones((K, K)) if alpha is None else _f(alpha)
    theta1 = pm.Dirichlet("theta1", a=a[0])
    theta2 = pm.Dirichlet("theta2", a=a[1])
    return tt.log(tt.stack([theta1, theta2]))


def hmm_example(data):
    """hmm_example.stan: 2-state HMM, y[t] ~ normal(mu[z[t]], 1); theta1, theta2 flat simplexes
    (Dirichlet(1)); mu positive_ordered with mu[1] ~ normal(3, 1), mu[2] ~ normal(10, 1);
    the states are summed out by the forward algorithm (see _hmm_log_likelihood)."""
    y, N, K = _f(data["y"]), int(data["N"]), int(data["K"])
    with pm.Model() as model:
        log_theta = _hmm_transitions(K)
        mu = pm.Normal("mu", mu=np.array([3.0, 10.0]), sigma=1.0, shape=K, transform=_positive_ordered(),
                       testval=np.array([3.0, 10.0]))
        log_emit = _normal_lpdf(y[:, None], mu[None, :], 1.0)
        pm.Potential("forward", _hmm_log_likelihood(log_theta, log_emit, N))
    return model


def hmm_drive_0(data):
    """hmm_drive_0.stan: 2-state HMM with exponential emissions u[t] ~ exponential(phi[z]),
    v[t] ~ exponential(lambda[z]) (rates); theta[k] ~ dirichlet(alpha[k, :]); phi, lambda
    positive_ordered with [1] ~ normal(0, 1), [2] ~ normal(3, 1).  Forward algorithm as in
    hmm_example (the Stan file's Viterbi generated quantities are not ported)."""
    u, v, N, K = _f(data["u"]), _f(data["v"]), int(data["N"]), int(data["K"])
    with pm.Model() as model:
        log_theta = _hmm_transitions(K, data["alpha"])
        phi = pm.Normal("phi", mu=np.array([0.0, 3.0]), sigma=1.0, shape=K, transform=_positive_ordered(),
                        testval=np.array([0.5, 3.0]))
        lam = pm.Normal("lambda", mu=np.array([0.0, 3.0]), sigma=1.0, shape=K, transform=_positive_ordered(),
                        testval=np.array([0.5, 3.0]))
        log_emit = (tt.log(phi)[None, :] - phi[None, :] * u[:, None]
                    + tt.log(lam)[None, :] - lam[None, :] * v[:, None])
        pm.Potential("forward", _hmm_log_likelihood(log_theta, log_emit, N))
    return model


def hmm_drive_1(data):
    """hmm_drive_1.stan: 2-state HMM with normal emissions u[t] ~ normal(phi[z], tau),
    v[t] ~ normal(lambda[z], rho) (tau, rho data); theta[k] ~ dirichlet(alpha[k, :]); phi, lambda
    ordered (not positive) with [1] ~ normal(0, 1), [2] ~ normal(3, 1).  Forward algorithm as in
    hmm_example."""
    u, v, N, K = _f(data["u"]), _f(data["v"]), int(data["N"]), int(data["K"])
    tau, rho = float(data["tau"]), float(data["rho"])
    with pm.Model() as model:
        log_theta = _hmm_transitions(K, data["alpha"])
        phi = pm.Normal("phi", mu=np.array([0.0, 3.0]), sigma=1.0, shape=K, transform=tr.ordered,
                        testval=np.array([0.0, 3.0]))
        lam = pm.Normal("lambda", mu=np.array([0.0, 3.0]), sigma=1.0, shape=K, transform=tr.ordered,
                        testval=np.array([0.0, 3.0]))
        log_emit = _normal_lpdf(u[:, None], phi[None, :], tau) + _normal_lpdf(v[:, None], lam[None, :], rho)
        pm.Potential("forward", _hmm_log_likelihood(log_theta, log_emit, N))
    return model


def low_dim_gauss_mix(data):
    """low_dim_gauss_mix.stan: y[n] ~ theta normal(mu[1], sigma[1]) + (1 - theta) normal(mu[2], sigma[2]);
    mu ordered ~ normal(0, 2), sigma ~ normal(0, 2) on sigma > 0, theta ~ beta(5, 5)."""
    y = _f(data["y"])
    with pm.Model() as model:
        mu = pm.Normal("mu", mu=0.0, sigma=2.0, shape=2, transform=tr.ordered, testval=np.array([-1.0, 1.0]))
        sigma = pm.HalfNormal("sigma", sigma=2.0, shape=2)
        theta = pm.Beta("theta", alpha=5.0, beta=5.0)
        pm.NormalMixture("y", w=tt.stack([theta, 1.0 - theta]), mu=mu, sigma=sigma, observed=y)
    return model


def kilpisjarvi(data):
    """kilpisjarvi.stan: y ~ normal(alpha + beta x, sigma), alpha ~ normal(pmualpha, psalpha),
    beta ~ normal(pmubeta, psbeta) (data), sigma flat on (0, inf).  x (years + 2000) is not
    centred, so alpha and beta are almost perfectly correlated."""
    x, y = _f(data["x"]), _f(data["y"])
    with pm.Model() as model:
        alpha = pm.Normal("alpha", mu=float(data["pmualpha"]), sigma=float(data["psalpha"]))
        beta = pm.Normal("beta", mu=float(data["pmubeta"]), sigma=float(data["psbeta"]))
        sigma = pm.HalfFlat("sigma")
        pm.Normal("y", mu=alpha + beta * x, sigma=sigma, observed=y)
    return model


def blr(data):
    """blr.stan (sblrc: correlated, sblri: independent design): y ~ normal(X beta, sigma),
    beta ~ normal(0, 10), sigma ~ normal(0, 10) on sigma > 0."""
    X, y, D = _f(data["X"]), _f(data["y"]), int(data["D"])
    with pm.Model() as model:
        beta = pm.Normal("beta", mu=0.0, sigma=10.0, shape=D)
        sigma = pm.HalfNormal("sigma", sigma=10.0)
        pm.Normal("y", mu=tt.dot(X, beta), sigma=sigma, observed=y)
    return model


# kidiq (Gelman & Hill ch. 3): beta flat, sigma ~ cauchy(0, 2.5) on sigma > 0.

def kidscore_momhs(data):
    """kidscore_momhs.stan: kid_score ~ normal(beta[1] + beta[2] mom_hs, sigma)."""
    return _linear_regression(data["kid_score"], [data["mom_hs"]], _half_cauchy_2_5, y_name="kid_score")


def kidscore_momiq(data):
    """kidscore_momiq.stan: kid_score ~ normal(beta[1] + beta[2] mom_iq, sigma)."""
    return _linear_regression(data["kid_score"], [data["mom_iq"]], _half_cauchy_2_5, y_name="kid_score")


def kidscore_momhsiq(data):
    """kidscore_momhsiq.stan: kid_score ~ normal(beta[1] + beta[2] mom_hs + beta[3] mom_iq, sigma)."""
    return _linear_regression(data["kid_score"], [data["mom_hs"], data["mom_iq"]], _half_cauchy_2_5,
                              y_name="kid_score")


def kidscore_interaction(data):
    """kidscore_interaction.stan: ... + beta[4] mom_hs .* mom_iq (uncentred: strongly correlated)."""
    hs, iq = _f(data["mom_hs"]), _f(data["mom_iq"])
    return _linear_regression(data["kid_score"], [hs, iq, hs * iq], _half_cauchy_2_5, y_name="kid_score")


# kidiq_with_mom_work: no priors at all (beta flat, sigma flat on (0, inf)).

def kidscore_interaction_c(data):
    """kidscore_interaction_c.stan: mom_hs, mom_iq centred at their means, and their product."""
    hs, iq = _f(data["mom_hs"]), _f(data["mom_iq"])
    c_hs, c_iq = hs - hs.mean(), iq - iq.mean()
    return _linear_regression(data["kid_score"], [c_hs, c_iq, c_hs * c_iq], y_name="kid_score")


def kidscore_interaction_c2(data):
    """kidscore_interaction_c2.stan: mom_hs - 0.5, mom_iq - 100 and their product."""
    hs, iq = _f(data["mom_hs"]) - 0.5, _f(data["mom_iq"]) - 100.0
    return _linear_regression(data["kid_score"], [hs, iq, hs * iq], y_name="kid_score")


def kidscore_interaction_z(data):
    """kidscore_interaction_z.stan: (x - mean) / (2 sd) for mom_hs and mom_iq (sd with N - 1), and their product."""
    hs, iq = _f(data["mom_hs"]), _f(data["mom_iq"])
    z_hs, z_iq = (hs - hs.mean()) / (2 * _sd(hs)), (iq - iq.mean()) / (2 * _sd(iq))
    return _linear_regression(data["kid_score"], [z_hs, z_iq, z_hs * z_iq], y_name="kid_score")


def kidscore_mom_work(data):
    """kidscore_mom_work.stan: indicators of mom_work == 2, 3, 4."""
    w = np.asarray(data["mom_work"])
    return _linear_regression(data["kid_score"], [w == 2, w == 3, w == 4], y_name="kid_score")


# earnings (Gelman & Hill ch. 4): no priors (beta flat, sigma flat on (0, inf)).

def earn_height(data):
    """earn_height.stan: earn ~ normal(beta[1] + beta[2] height, sigma).  earn is in dollars
    (sigma ~ 19000, beta[1] ~ -60000): from PyMC3's default start (beta = 0, sigma = 1) NUTS's
    mass-matrix adaptation collapses ("Mass matrix contains zeros on the diagonal"), so this
    port starts at the least-squares fit (initial values only; the posterior is unchanged)."""
    return _linear_regression(data["earn"], [data["height"]], y_name="earn", start_at_ols=True)


def log10earn_height(data):
    """log10earn_height.stan: log10(earn) ~ normal(beta[1] + beta[2] height, sigma)."""
    return _linear_regression(np.log10(_f(data["earn"])), [data["height"]], y_name="log10_earn")


def logearn_height(data):
    """logearn_height.stan: log(earn) ~ normal(beta[1] + beta[2] height, sigma)."""
    return _linear_regression(np.log(_f(data["earn"])), [data["height"]], y_name="log_earn")


def logearn_height_male(data):
    """logearn_height_male.stan: log(earn) ~ normal(beta[1] + beta[2] height + beta[3] male, sigma)."""
    return _linear_regression(np.log(_f(data["earn"])), [data["height"], data["male"]], y_name="log_earn")


def logearn_interaction(data):
    """logearn_interaction.stan: ... + beta[4] height .* male."""
    h, m = _f(data["height"]), _f(data["male"])
    return _linear_regression(np.log(_f(data["earn"])), [h, m, h * m], y_name="log_earn")


def logearn_interaction_z(data):
    """logearn_interaction_z.stan: height standardised (sd with N - 1), its product with male."""
    h, m = _f(data["height"]), _f(data["male"])
    z = (h - h.mean()) / _sd(h)
    return _linear_regression(np.log(_f(data["earn"])), [z, m, z * m], y_name="log_earn")


def logearn_logheight_male(data):
    """logearn_logheight_male.stan: log(earn) ~ normal(beta[1] + beta[2] log(height) + beta[3] male, sigma)."""
    return _linear_regression(np.log(_f(data["earn"])), [np.log(_f(data["height"])), data["male"]],
                              y_name="log_earn")


# mesquite (Gelman & Hill ch. 4): no priors (beta flat, sigma flat on (0, inf)).

def mesquite(data):
    """mesquite.stan: weight on diam1, diam2, canopy_height, total_height, density, group.
    weight is in grams (sigma ~ 270): as for earn_height, PyMC3's default start makes the
    mass-matrix adaptation collapse, so this port starts at the least-squares fit."""
    cols = [data[k] for k in ("diam1", "diam2", "canopy_height", "total_height", "density", "group")]
    return _linear_regression(data["weight"], cols, y_name="weight", start_at_ols=True)


def logmesquite(data):
    """logmesquite.stan: log weight on the logs of diam1, diam2, canopy_height, total_height, density, and group."""
    cols = [np.log(_f(data[k])) for k in ("diam1", "diam2", "canopy_height", "total_height", "density")]
    return _linear_regression(np.log(_f(data["weight"])), cols + [data["group"]], y_name="log_weight")


def _canopy(data):
    d1, d2, ch = _f(data["diam1"]), _f(data["diam2"]), _f(data["canopy_height"])
    return np.log(d1 * d2 * ch), np.log(d1 * d2), np.log(d1 / d2)


def logmesquite_logvolume(data):
    """logmesquite_logvolume.stan: log weight on log(diam1 diam2 canopy_height)."""
    vol, _, _ = _canopy(data)
    return _linear_regression(np.log(_f(data["weight"])), [vol], y_name="log_weight")


def logmesquite_logva(data):
    """logmesquite_logva.stan: log weight on log canopy volume, log canopy area, group."""
    vol, area, _ = _canopy(data)
    return _linear_regression(np.log(_f(data["weight"])), [vol, area, data["group"]], y_name="log_weight")


def logmesquite_logvash(data):
    """logmesquite_logvash.stan: log weight on log canopy volume, area, shape (diam1 / diam2),
    log total_height, group."""
    vol, area, shape = _canopy(data)
    cols = [vol, area, shape, np.log(_f(data["total_height"])), data["group"]]
    return _linear_regression(np.log(_f(data["weight"])), cols, y_name="log_weight")


def logmesquite_logvas(data):
    """logmesquite_logvas.stan: as logvash, plus log density (before group)."""
    vol, area, shape = _canopy(data)
    cols = [vol, area, shape, np.log(_f(data["total_height"])), np.log(_f(data["density"])), data["group"]]
    return _linear_regression(np.log(_f(data["weight"])), cols, y_name="log_weight")


def nes(data):
    """nes.stan (one model, eight survey years as data): partyid7 on real_ideo, race_adj, the
    age_discrete indicators (== 2, 3, 4), educ1, gender, income; no priors."""
    age = np.asarray(data["age_discrete"])
    cols = [data["real_ideo"], data["race_adj"], age == 2, age == 3, age == 4,
            data["educ1"], data["gender"], data["income"]]
    return _linear_regression(data["partyid7"], cols, y_name="partyid7")


POSTERIORS = {
    "diamonds-diamonds": diamonds,
    "arK-arK": arK,
    "arma-arma11": arma11,
    "garch-garch11": garch11,
    "eight_schools-eight_schools_noncentered": eight_schools_noncentered,
    "eight_schools-eight_schools_centered": eight_schools_centered,
    "gp_pois_regr-gp_pois_regr": gp_pois_regr,
    "gp_pois_regr-gp_regr": gp_regr,
    "hmm_example-hmm_example": hmm_example,
    "bball_drive_event_0-hmm_drive_0": hmm_drive_0,
    "bball_drive_event_1-hmm_drive_1": hmm_drive_1,
    "low_dim_gauss_mix-low_dim_gauss_mix": low_dim_gauss_mix,
    "kilpisjarvi_mod-kilpisjarvi": kilpisjarvi,
    "sblrc-blr": blr,
    "sblri-blr": blr,
    "kidiq-kidscore_momhs": kidscore_momhs,
    "kidiq-kidscore_momiq": kidscore_momiq,
    "kidiq-kidscore_momhsiq": kidscore_momhsiq,
    "kidiq-kidscore_interaction": kidscore_interaction,
    "kidiq_with_mom_work-kidscore_interaction_c": kidscore_interaction_c,
    "kidiq_with_mom_work-kidscore_interaction_c2": kidscore_interaction_c2,
    "kidiq_with_mom_work-kidscore_interaction_z": kidscore_interaction_z,
    "kidiq_with_mom_work-kidscore_mom_work": kidscore_mom_work,
    "earnings-earn_height": earn_height,
    "earnings-log10earn_height": log10earn_height,
    "earnings-logearn_height": logearn_height,
    "earnings-logearn_height_male": logearn_height_male,
    "earnings-logearn_interaction": logearn_interaction,
    "earnings-logearn_interaction_z": logearn_interaction_z,
    "earnings-logearn_logheight_male": logearn_logheight_male,
    "mesquite-mesquite": mesquite,
    "mesquite-logmesquite": logmesquite,
    "mesquite-logmesquite_logvolume": logmesquite_logvolume,
    "mesquite-logmesquite_logva": logmesquite_logva,
    "mesquite-logmesquite_logvash": logmesquite_logvash,
    "mesquite-logmesquite_logvas": logmesquite_logvas,
}
POSTERIORS.update({"nes%d-nes" % year: nes for year in range(1972, 2001, 4)})
