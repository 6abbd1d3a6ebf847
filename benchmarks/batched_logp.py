"""Batched logp + gradient at batch 200: graph vectoriser vs theano.map vs a Python loop.

For each model, one compiled function per method computes U and dU for a
(200, dim) matrix; the Python loop calls PyMC3's own logp_dlogp_function per row.
Eight schools also has a hand-batched Theano graph (the model written with a
leading batch axis) as the speed of light.  Times are the best of 30 calls.

    python benchmarks/batched_logp.py

pymc3 3.11.4's wheel does not ship the radon data, so the hierarchical model is a
synthetic one of radon's shape (85 groups, 919 observations, varying intercepts).
"""
import time

import numpy as np

from l2hmc_theano import ModelEnergy  # first: it sets Theano's flags before pymc3 imports Theano
from l2hmc_theano._theano import change_flags, theano, tt

import pymc3 as pm  # noqa: E402
from models import S8, Y8, eight_schools, logistic_regression  # noqa: E402

BATCH = 200
def eight_schools_by_hand(X):
    """The centred eight schools energy with a leading batch axis, written by hand."""
    mu, log_tau, theta = X[:, 0], X[:, 1], X[:, 2:]
    tau = tt.exp(log_tau)
    lp = -0.5 * (mu / 5) ** 2 + tt.log(2 / (np.pi * 5)) - tt.log1p((tau / 5) ** 2) + log_tau
    lp += (-0.5 * ((theta - mu[:, None]) / tau[:, None]) ** 2 - tt.log(tau[:, None])).sum(axis=1)
    lp += (-0.5 * ((Y8 - theta) / S8) ** 2).sum(axis=1)
    return -lp


def mvnormal_50():
    A = np.random.default_rng(0).normal(size=(50, 50))
    with pm.Model() as model:
        pm.MvNormal("x", mu=np.zeros(50), cov=A @ A.T / 50 + np.eye(50), shape=50)
    return model


def hierarchical_radon_shape():
    rng = np.random.default_rng(2)
    county = rng.integers(0, 85, size=919)
    floor = rng.integers(0, 2, size=919).astype(float)
    log_radon = rng.normal(1.3, 0.8, size=919)
    with pm.Model() as model:
        mu_a = pm.Normal("mu_a", 0, 10)
        sigma_a = pm.HalfNormal("sigma_a", 5)
        a = pm.Normal("a", mu_a, sigma_a, shape=85)
        b = pm.Normal("b", 0, 10)
        eps = pm.HalfCauchy("eps", 5)
        pm.Normal("y", a[county] + b * floor, eps, observed=log_radon)
    return model


def best_time(f, *args, n=30):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        f(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def compiled(energy_fn):
    with change_flags(compute_test_value="off"):
        X = tt.matrix("X")
        U, dU = energy_fn(X)
        return theano.function([X], [U, dU])


def main():
    print(f"batched logp + gradient, batch {BATCH}; ms per call (best of 30)")
    print(f"{'model':<22} {'dim':>4} {'vectorise':>10} {'map':>8} {'loop':>8} {'by hand':>8} {'map/vec':>8}")
    for name, build in [("eight schools", eight_schools), ("MvNormal 50-d", mvnormal_50),
                        ("logistic regression", logistic_regression), ("hierarchical (radon)", hierarchical_radon_shape)]:
        model = build()
        vec, rowwise = ModelEnergy(model), ModelEnergy(model, batching="map")
        X = np.random.default_rng(0).normal(size=(BATCH, vec.dim))
        t_vec = best_time(compiled(vec.value_and_grad), X)
        t_map = best_time(compiled(rowwise.value_and_grad), X)
        reference = model.logp_dlogp_function()
        reference.set_extra_values({})
        t_loop = best_time(lambda X: [reference(row) for row in X], X, n=5)
        hand = ""
        if name == "eight schools":
            def by_hand(Xs):
                U = eight_schools_by_hand(Xs)
                return U, tt.grad(U.sum(), Xs)

            hand = f"{1e3 * best_time(compiled(by_hand), X):>8.3f}"
        print(f"{name:<22} {vec.dim:>4} {1e3 * t_vec:>10.3f} {1e3 * t_map:>8.3f} {1e3 * t_loop:>8.2f} "
              f"{hand:>8} {t_map / t_vec:>8.1f}")


if __name__ == "__main__":
    main()
