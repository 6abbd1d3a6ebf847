"""L2HMC vs HMC on the paper's 2-d strongly correlated Gaussian (ESS per MH step).

Protocol (paper Sec. 5): train with the default settings (T = 10, 5000 steps,
batch 200, hidden 10/10), then run 200 chains x 2000 MH steps started from exact
draws of the target, and measure ESS per step with the known mean and variance.
Baseline in the same run: HMC = our dynamics with zero networks, same T, the best
step size of {0.1, 0.15, 0.2}.

    python benchmarks/scg_ess.py              # full protocol (a few minutes)
    python benchmarks/scg_ess.py --quick      # smoke run
"""
import argparse
import time

import numpy as np

from l2hmc_theano import FunctionEnergy, L2HMCSampler
from l2hmc_theano.diagnostics import ess_per_step
from l2hmc_theano.targets import PAPER_SAMPLER, PAPER_TRAINING, SCG_COV, scg_energy


def run_chains(sampler, n_draws, n_chains, seed):
    x0 = np.random.default_rng(seed).multivariate_normal(np.zeros(2), SCG_COV, size=n_chains)
    start = time.perf_counter()
    draws, accept = sampler.sample(n_draws, n_chains=n_chains, x0=x0, seed=seed)
    return ess_per_step(draws, np.zeros(2), np.diag(SCG_COV)), accept.mean(), time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="300 training steps, 100 chains x 300 steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train_steps, n_chains, n_draws = (300, 100, 300) if args.quick else (5000, 200, 2000)
    energy = FunctionEnergy(scg_energy, 2, name="scg")

    rows = []
    for eps in (0.1, 0.15, 0.2):
        hmc = L2HMCSampler(energy, step_size=eps, zero_network=True, seed=args.seed, **PAPER_SAMPLER)
        ess, acc, secs = run_chains(hmc, n_draws, n_chains, args.seed + 1)
        rows.append((f"HMC eps={eps}", ess, acc, secs))
    best_hmc = max(r[1] for r in rows)

    sampler = L2HMCSampler(energy, step_size=0.1, seed=args.seed, **PAPER_SAMPLER)
    start = time.perf_counter()
    sampler.train(train_steps=1, progressbar=False, check=False, **PAPER_TRAINING)
    compile_s = time.perf_counter() - start
    history = sampler.train(train_steps=train_steps, progressbar=False, check=False, **PAPER_TRAINING)
    ess, acc, secs = run_chains(sampler, n_draws, n_chains, args.seed + 1)
    rows.append((f"L2HMC eps={sampler.step_size:.3f}", ess, acc, secs))

    print(f"SCG, T=10, {n_chains} chains x {n_draws} MH steps; training {train_steps} steps "
          f"(compile {compile_s:.0f} s, {history['seconds']:.0f} s, "
          f"{1e3 * history['seconds'] / train_steps:.1f} ms/step)")
    print(f"{'sampler':<20} {'ESS/step':>10} {'accept':>7} {'sample s':>9}")
    for name, e, a, s in rows:
        print(f"{name:<20} {e:>10.5f} {a:>7.3f} {s:>9.1f}")
    print(f"L2HMC / best HMC ESS per step: {ess / best_hmc:.1f}x")


if __name__ == "__main__":
    main()
