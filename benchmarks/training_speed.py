"""Training cost: compile time and time per training iteration (batch 200, T = 10).

Targets: the 2-d strongly correlated Gaussian and the 50-d ill-conditioned
Gaussian (natively batched Theano energies; hidden 10/10 and 100/100 as in the
paper) and eight schools (non-centred PyMC3 model; batched by theano.map over
rows).  "per 5000" is the measured time per iteration times 5000.

    python benchmarks/training_speed.py                  # all targets, 100 timed iterations each
    python benchmarks/training_speed.py --targets scg --steps 300
    python benchmarks/training_speed.py --exclude ""     # compile with every Theano optimisation
"""
import argparse
import time

import numpy as np

import l2hmc_theano.training_graph as training  # the training step's graph: patched below
from l2hmc_theano import FunctionEnergy, L2HMCSampler
from l2hmc_theano.targets import icg_energy, scg_energy


def eight_schools():
    import pymc3 as pm

    y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
    sigma = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 5)
        tau = pm.HalfCauchy("tau", 5)
        eta = pm.Normal("eta", 0, 1, shape=8)
        pm.Normal("obs", mu + tau * eta, sigma, observed=y)
    return model


TARGETS = {
    "scg": lambda: (FunctionEnergy(scg_energy, 2, name="scg"), (10, 10)),
    "icg50": lambda: (FunctionEnergy(icg_energy(50), 50), (100, 100)),
    "eight_schools": lambda: (eight_schools(), (10, 10)),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="*", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--steps", type=int, default=100, help="timed training iterations per target")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--exclude", default=":".join(training.TRAIN_OPT_EXCLUDE),
                        help="colon-separated Theano optimisations left out of the training compile "
                             f"(default: {':'.join(training.TRAIN_OPT_EXCLUDE)})")
    args = parser.parse_args()
    training.TRAIN_OPT_EXCLUDE = tuple(n for n in args.exclude.split(":") if n)
    original = training.build_training_step

    def build(*a, **k):
        k["exclude"] = training.TRAIN_OPT_EXCLUDE
        return original(*a, **k)

    training.build_training_step = build
    print(f"batch {args.batch_size}, T=10, optimisations excluded: {training.TRAIN_OPT_EXCLUDE or 'none'}")
    print(f"{'target':<14} {'dim':>4} {'compile s':>10} {'ms/iter':>8} {'s per 5000':>11}")
    for name in args.targets:
        target, hidden = TARGETS[name]()
        sampler = L2HMCSampler(target, n_steps=10, step_size=0.05, hidden=hidden, seed=0)
        start = time.perf_counter()
        sampler.train(train_steps=1, batch_size=args.batch_size, progressbar=False, check=False)
        compile_s = time.perf_counter() - start
        history = sampler.train(train_steps=args.steps, batch_size=args.batch_size, progressbar=False,
                                check=False)
        per_iter = history["seconds"] / args.steps
        print(f"{name:<14} {sampler.dim:>4} {compile_s:>10.1f} {1e3 * per_iter:>8.1f} {5000 * per_iter:>11.0f}")


if __name__ == "__main__":
    main()
