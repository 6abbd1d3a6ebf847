"""Is L2HMC with every default correct on a latent Gaussian process?  Moments against a long NUTS run.

The model is ``models.latent_gp_classification`` (30 points, a Cholesky of the kernel matrix in
its logp; a proposal can make that matrix lose definiteness, which L2HMC counts as that chain's
divergence).  L2HMC runs as a user runs it, ``pm.sample(step=l2hmc_theano.L2HMC(seed=s))`` with
pm.sample's defaults (2 chains x 1000 draws after 1000 tuning draws), for each seed; the
reference is NUTS with 4 chains x 5000 draws after 2000 tuning draws, and NUTS with pm.sample's
defaults runs for each seed as well, judged the same way.  For every scalar of
lengthscale, amplitude and the latent f the script gives z = (mean_L2HMC - mean_NUTS) /
sqrt(MCSE_L2HMC^2 + MCSE_NUTS^2) (ArviZ's MCSE of the mean), the same for the standard
deviations, and the largest |z| over all of them: with 64 statistics, |z| up to ~3 is what
Monte Carlo error alone gives.  Writes ``docs/latent_gp_moments.md`` (command, date, commit,
seeds, machine).

    python benchmarks/gp_moments.py --seeds 0 1 2
"""
import argparse
import datetime
import os
import shlex
import sys
import time

import numpy as np

import l2hmc_theano  # noqa: F401  (first: it sets Theano's flags before pymc3)

import arviz as az  # noqa: E402
import pymc3 as pm  # noqa: E402
import models  # noqa: E402
from l2hmc_theano.persistence import atomic_write  # noqa: E402
from time_to_result import ROOT, git_commit, machine  # noqa: E402

VARS = ("lengthscale", "amplitude", "f")
REFERENCE = dict(draws=5000, tune=2000, chains=4)


def run(step_factory, seed, draws=1000, tune=1000, chains=2):
    """pm.sample on the GP with the step ``step_factory()`` builds (None: NUTS); (idata, seconds)."""
    model = models.latent_gp_classification()
    start = time.perf_counter()
    with model:
        step = step_factory() if step_factory is not None else None
        idata = pm.sample(draws, tune=tune, chains=chains, cores=1, step=step, random_seed=seed,
                          return_inferencedata=True, progressbar=False, compute_convergence_checks=False)
    return idata, time.perf_counter() - start


def z_scores(idata, reference):
    """{(var, index, "mean"/"sd"): z} for every scalar of VARS (see the module docstring)."""
    out = {}
    for var in VARS:
        for kind, stat in (("mean", np.mean), ("sd", np.std)):
            a = stat(idata.posterior[var].values.reshape(-1, *idata.posterior[var].shape[2:]), axis=0)
            b = stat(reference.posterior[var].values.reshape(-1, *reference.posterior[var].shape[2:]), axis=0)
            se = np.sqrt(az.mcse(idata, var_names=[var], method=kind)[var].values ** 2
                         + az.mcse(reference, var_names=[var], method=kind)[var].values ** 2)
            for index, z in np.ndenumerate(np.atleast_1d((a - b) / se)):
                out[(var, index, kind)] = float(z)
    return out


def describe(z, idata, seconds):
    """The rest of a result row: the largest |z| and where, how many exceed 3, max R-hat, min
    bulk ESS, divergences, seconds."""
    var, index, kind = max(z, key=lambda k: abs(z[k]))
    where = f"{var}{list(index) if index != (0,) else ''} {kind}"
    rhat = float(az.rhat(idata, var_names=list(VARS)).to_array().max())
    ess = float(az.ess(idata, var_names=list(VARS), method="bulk").to_array().min())
    return (f"{max(abs(v) for v in z.values()):.2f} ({where}) | {sum(abs(v) > 3 for v in z.values())} of {len(z)} | "
            f"{rhat:.3f} | {ess:.0f} | {int(idata.sample_stats['diverging'].sum())} | {seconds:.0f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="L2HMC runs, one per seed (default: 0)")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "latent_gp_moments.md"))
    args = parser.parse_args()
    load, started = os.getloadavg(), datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M")
    print(f"NUTS reference: {REFERENCE['chains']} chains x {REFERENCE['draws']} draws ...", flush=True)
    reference, seconds = run(None, 12345, **REFERENCE)
    ref_rhat = float(az.rhat(reference, var_names=list(VARS)).to_array().max())
    print(f"  {seconds:.0f} s, max R-hat {ref_rhat:.3f}", flush=True)
    rows = []
    samplers = (("L2HMC", lambda seed: l2hmc_theano.L2HMC(seed=seed, cache=False, progressbar=False)),
                ("NUTS", lambda seed: None))
    for name, factory in samplers:
        for seed in args.seeds:
            print(f"{name} seed {seed}: setup and pm.sample with the defaults ...", flush=True)
            idata, seconds = run(lambda: factory(seed), seed)
            rows.append(f"| {name} | {seed} | " + describe(z_scores(idata, reference), idata, seconds))
            print("  " + rows[-1], flush=True)
    text = "\n".join([
        "# L2HMC on a latent Gaussian process: moments against a long NUTS run",
        "",
        f"Written by `python benchmarks/gp_moments.py {shlex.join(sys.argv[1:])}`.",
        "",
        f"- date: {started} (UTC); git commit: {git_commit()}; machine: {machine(load)}",
        f"- reference: NUTS, {REFERENCE['chains']} chains x {REFERENCE['draws']} draws after {REFERENCE['tune']} "
        f"tuning draws (random_seed 12345), max R-hat {ref_rhat:.3f}",
        "- L2HMC: `pm.sample(step=l2hmc_theano.L2HMC(seed=s))` with pm.sample's defaults (2 chains x 1000 draws "
        "after 1000), random_seed s",
        "- z = (L2HMC - NUTS) / sqrt(MCSE_L2HMC^2 + MCSE_NUTS^2) for the mean and the sd of every scalar of "
        "lengthscale, amplitude and f",
        "",
        "NUTS's own rows (pm.sample's defaults, other seeds than the reference's) show what a short run of the "
        "reference sampler gives by the same measure.",
        "",
        "| sampler | seed | max abs z (where) | abs z > 3 | max R-hat | min bulk ESS | divergences | seconds (setup + "
        "sampling) |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
        *rows,
    ]) + "\n"
    atomic_write(args.out, lambda f: f.write(text.encode()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
