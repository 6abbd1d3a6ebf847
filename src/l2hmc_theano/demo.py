"""Run L2HMC on a built-in example: ``python -m l2hmc_theano.demo``.

Builds the paper's 2-d strongly correlated Gaussian as a PyMC3 model, compiles
the generalized leapfrog and its MH kernel from the model's logp, runs a batch of
chains and compares their moments with the exact ones.  The networks are at
their initial values (the sampler starts as HMC); training comes with
``L2HMCSampler.train``.
"""
import argparse
import time

import arviz as az
import numpy as np

from . import L2HMCSampler
from .targets import SCG_COV, strongly_correlated_gaussian


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m l2hmc_theano.demo",
        description="Sample the paper's strongly correlated Gaussian with an (untrained) L2HMC sampler "
        "built from a PyMC3 model, and check the moments against the exact ones.",
    )
    parser.add_argument("--draws", type=int, default=300, help="MH steps per chain (default: 300)")
    parser.add_argument("--chains", type=int, default=200, help="chains run as one batch (default: 200)")
    parser.add_argument("--n-steps", type=int, default=10, help="leapfrog steps T per proposal (default: 10)")
    parser.add_argument("--step-size", type=float, default=0.15, help="leapfrog step size (default: 0.15)")
    parser.add_argument("--seed", type=int, default=0, help="seed for masks, weights and chains (default: 0)")
    args = parser.parse_args(argv)

    model = strongly_correlated_gaussian()
    sampler = L2HMCSampler(model, n_steps=args.n_steps, step_size=args.step_size, seed=args.seed)
    print(f"target: 2-d strongly correlated Gaussian (eigenvalues 100, 0.1), dim={sampler.dim}")
    start = time.perf_counter()
    sampler.sample(1, n_chains=2, seed=0)
    print(f"compiled the L2HMC kernel from the model's logp in {time.perf_counter() - start:.1f} s")
    x0 = np.random.default_rng(args.seed).multivariate_normal(np.zeros(2), SCG_COV, size=args.chains)
    start = time.perf_counter()
    draws, accept = sampler.sample(args.draws, n_chains=args.chains, x0=x0, seed=args.seed, progressbar=True)
    elapsed = time.perf_counter() - start
    flat = draws.reshape(-1, 2)
    ess = np.array([float(az.ess(np.moveaxis(draws[..., i], 0, 1), method="mean")) for i in range(2)])
    std_error = flat.std(axis=0) / np.sqrt(ess)
    print(f"{args.chains} chains x {args.draws} MH steps in {elapsed:.1f} s, mean acceptance {accept.mean():.3f}")
    print(f"ESS per MH step per chain: {np.array2string(ess / draws.shape[0] / draws.shape[1], precision=4)}")
    print(f"mean       {np.array2string(flat.mean(axis=0), precision=2)} "
          f"+- {np.array2string(std_error, precision=2)} (MC s.e.)   exact [0. 0.]")
    print(f"covariance {np.array2string(np.cov(flat.T), precision=1)}")
    print(f"exact      {np.array2string(SCG_COV, precision=1)}")


if __name__ == "__main__":
    main()
