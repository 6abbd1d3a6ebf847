"""Train and run L2HMC on a built-in example: ``python -m l2hmc_theano.demo``.

The paper's 2-d strongly correlated Gaussian (covariance eigenvalues 100 and 0.1,
rotated pi/4; a natively batched Theano energy): train the auxiliary networks and
the step size on the ESJD loss, then run chains from exact draws of the target and
compare the min bulk ESS of x and x^2 per gradient with tuned HMC's (warm-up's step
size, preconditioner and T, without the networks).
"""
import argparse
import time

import arviz as az
import numpy as np

from . import FunctionEnergy, L2HMCSampler
from .targets import SCG_COV, scg_energy


def _min_bulk_ess(sampler, x0, n_draws, seed):
    """Min bulk ESS (ArviZ, over the chains) of x and of x^2 over both coordinates, of ``n_draws``
    MH steps of ``sampler`` from ``x0`` ``(chains, 2)``; with the mean acceptance and the draws."""
    draws, accept = sampler.sample(n_draws, n_chains=len(x0), x0=x0, seed=seed)
    chains_first = np.swapaxes(draws, 0, 1)
    ess = az.ess(az.convert_to_dataset({"x": chains_first, "x_squared": chains_first ** 2}), method="bulk")
    return min(float(ess[k].values.min()) for k in ess.data_vars), accept.mean(), draws.reshape(-1, 2)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m l2hmc_theano.demo",
        description="Train L2HMC on the paper's strongly correlated Gaussian and compare its min bulk ESS "
        "per gradient with tuned HMC's.",
    )
    parser.add_argument("--train-steps", type=int, default=2000, help="training iterations (default: 2000)")
    parser.add_argument("--draws", type=int, default=1000, help="MH steps per chain when sampling (default: 1000)")
    parser.add_argument("--chains", type=int, default=200, help="chains, as one batch (default: 200)")
    parser.add_argument("--n-steps", type=int, default=10, help="leapfrog steps T per proposal (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed for everything (default: 0)")
    args = parser.parse_args(argv)

    energy = FunctionEnergy(scg_energy, 2, name="scg")
    print("target: 2-d strongly correlated Gaussian (eigenvalues 100, 0.1)")
    sampler = L2HMCSampler(energy, n_steps=args.n_steps, step_size=0.1, seed=args.seed)
    start = time.perf_counter()
    sampler.train(train_steps=1, check=False)  # warm-up and the compiles, each announced on stderr
    print(f"warmed up (step size {sampler.warmup_info['step_size']:.3f}, preconditioner scales "
          f"{np.array2string(sampler.preconditioner.scales(), precision=2)}) and compiled the training step "
          f"(networks + scan leapfrog + loss + Adam) in {time.perf_counter() - start:.0f} s; training ...")
    history = sampler.train(train_steps=args.train_steps)
    print(f"trained {len(history['loss'])} steps in {history['seconds']:.0f} s: acceptance "
          f"{history['accept'][-100:].mean():.2f}, ESJD {history['esjd'][-100:].mean():.2f}, "
          f"step size {sampler.step_size:.3f}")

    x0 = np.random.default_rng(args.seed).multivariate_normal(np.zeros(2), SCG_COV, size=args.chains)
    gradients = args.chains * args.draws * sampler.n_steps  # T per MH step: each chain carries its gradient
    ess, accept, flat = _min_bulk_ess(sampler, x0, args.draws, args.seed)
    # Tuned HMC: warm-up's step size, preconditioner and T, without the networks.
    hmc = L2HMCSampler(energy, n_steps=sampler.n_steps, step_size=sampler.warmup_info["step_size"],
                       zero_network=True, preconditioner=sampler.preconditioner)
    hmc_ess, hmc_accept, _ = _min_bulk_ess(hmc, x0, args.draws, args.seed)
    print(f"{args.chains} chains x {args.draws} MH steps from exact draws of the target; min bulk ESS of x and "
          "x^2 per gradient:")
    print(f"  L2HMC      {ess / gradients:.4f}  acceptance {accept:.2f}")
    print(f"  tuned HMC  {hmc_ess / gradients:.4f}  acceptance {hmc_accept:.2f}  (warm-up's step size "
          f"{hmc.step_size:.3g}, preconditioner and T = {hmc.n_steps}, no networks)")
    print(f"  L2HMC / tuned HMC: {ess / hmc_ess:.2f}x")
    print(f"  L2HMC covariance {np.array2string(np.cov(flat.T), precision=1)}".replace("\n", ""))
    print(f"  exact            {np.array2string(SCG_COV, precision=1)}".replace("\n", ""))


if __name__ == "__main__":
    main()
