"""Wall time per gradient evaluation of ``pm.sample``'s step: L2HMC against NUTS, one process.

The model is the non-centred eight schools.  L2HMC's step uses default networks (hidden 10/10)
with every weight and bias moved off its initial value by a N(0, 0.05^2) draw, and the identity
preconditioner: the step compiles the parameters in as constants, and Theano would fold away
the zero biases of an untrained network, which a trained one does not have.  Otherwise the
cost of a proposal does not depend on what the networks learned, only on whether they are
used.  Each T gets two rows: with the networks, and with their heads zeroed (what training
leaves when it keeps plain HMC: the step is then compiled as HMC's leapfrog).  Both samplers
run ``pm.sample(chains=1, cores=1)`` with the same ``--tune`` and ``--draws``, after their
functions are compiled.  Gradients are the ``tree_size`` stat summed over tuning and draws
(L2HMC: T per draw; NUTS: its leapfrog steps).  NUTS also evaluates the energy at each draw's
start, which is not counted; L2HMC carries it from the draw before.

    python benchmarks/step_cost.py                    # T = 3, 4 and 10, 1000 + 1000 draws
    python benchmarks/step_cost.py --n-steps 4 --draws 300 --tune 300
"""
import argparse
import time
import warnings

import numpy as np

import l2hmc_theano  # noqa: F401  (first: it sets Theano's flags before pymc3)
from l2hmc_theano import L2HMC, L2HMCSampler, ModelEnergy
from l2hmc_theano.targets import eight_schools

import pymc3 as pm  # noqa: E402


def seconds_per_gradient(model, step, draws, tune, seed):
    """(seconds per gradient, gradients, seconds) of one pm.sample chain with ``step``."""
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        trace = pm.sample(step=step, draws=draws, tune=tune, chains=1, cores=1, random_seed=seed,
                          discard_tuned_samples=False, compute_convergence_checks=False, progressbar=False,
                          return_inferencedata=False)
        seconds = time.perf_counter() - start
    grads = float(np.sum(trace.get_sampler_stats("tree_size")))
    return seconds / grads, grads, seconds


def perturb(networks, rng, scale=0.05):
    """Move every weight and bias of ``networks`` by N(0, scale^2): none is zero, as after training."""
    for p in networks.params:
        value = p.get_value()
        p.set_value((value + scale * rng.standard_normal(value.shape)).astype(value.dtype))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-steps", type=int, nargs="+", default=[3, 4, 10],
                        help="L2HMC's T values (default 3 4 10)")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = eight_schools(centred=False)
    with model:
        nuts = pm.NUTS()
    rows = [("NUTS", *seconds_per_gradient(model, nuts, args.draws, args.tune, args.seed))]
    for n_steps in args.n_steps:
        for heads in ("networks", "heads zeroed"):
            sampler = L2HMCSampler(ModelEnergy(model), n_steps=n_steps, step_size=0.3, seed=args.seed)
            perturb(sampler.networks, np.random.default_rng(args.seed))
            if heads == "heads zeroed":
                sampler.networks.zero_heads()
            with model:
                step = L2HMC(sampler=sampler)
            # Compile the function the step calls (the step's own sampler: retargeted, it compiles its own).
            step.sampler.model_step_function()
            rows.append((f"L2HMC, T = {n_steps}, {heads}",
                         *seconds_per_gradient(model, step, args.draws, args.tune, args.seed)))
    nuts_cost = rows[0][1]
    print(f"Non-centred eight schools, pm.sample 1 chain x ({args.tune} tune + {args.draws}) draws, seed {args.seed}.\n")
    print("| sampler | gradients | seconds | ms per gradient | / NUTS |")
    print("|---|---:|---:|---:|---:|")
    for label, cost, grads, seconds in rows:
        print(f"| {label} | {grads:.0f} | {seconds:.2f} | {1e3 * cost:.3f} | {cost / nuts_cost:.2f} |")


if __name__ == "__main__":
    main()
