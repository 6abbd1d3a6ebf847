"""L2HMC vs NUTS on real-world-shaped PyMC3 models: ESS per gradient and per second.

Protocol, for each model:

1. Train an L2HMCSampler (T = 10 leapfrog steps, hidden 10/10) with the per-model
   initial step size, iterations x batch of chains and burn-in loss weight of
   SETTINGS (flags override them for all models); "train s" is the wall time of the
   training loop (history["seconds"], without the Theano compile).
2. Sample with pm.sample(step=L2HMC(sampler=trained)) and with pm.NUTS() (PyMC3's
   default diagonal mass-matrix and step-size adaptation), each with the same
   draws, tune, chains=2, cores=1 and random_seed.  Both steps are built and their
   Theano functions compiled before the clock starts; "sample s" is the wall time of
   the pm.sample call (tuning and draws).  L2HMC adapts nothing: its tuning draws
   are burn-in.
3. Over the post-tuning draws: min bulk ESS (ArviZ) over every scalar in the
   posterior (deterministics included) and which one it is; gradient evaluations =
   sum of the n_steps sample stat (PyMC3's tree_size: T per draw for L2HMC, the
   leapfrog count for NUTS; both samplers also take one gradient at each draw's
   start, not counted); min ESS per 1000 gradients and per second of sampling;
   divergences; mean acceptance probability; max r_hat.

Models: eight schools centred and non-centred; radon: varying intercepts with partial
pooling and a floor covariate on the real Minnesota radon data (Gelman & Hill: 919
houses in 85 counties, read from the srrs2.dat that pymc3's wheel ships; see
models.radon); a logistic regression on a 500 x 10 synthetic design.  Data are fixed;
--seed sets training and sampling seeds.
Timings are wall-clock and noisy on a shared machine.

    python benchmarks/real_models.py                          # full run (~19 minutes here)
    python benchmarks/real_models.py --quick                  # smoke run (compiles dominate)
    python benchmarks/real_models.py --models radon logistic_regression --out real_models.md
"""
import argparse
import time

import numpy as np

from l2hmc_theano import L2HMC, L2HMCSampler, ModelEnergy  # first: it sets Theano's flags before pymc3

import arviz as az  # noqa: E402
import pymc3 as pm  # noqa: E402
from models import eight_schools, logistic_regression, radon  # noqa: E402
from l2hmc_theano.persistence import atomic_write  # noqa: E402

# Per model: initial leapfrog step size (training also learns it), training budget, and the
# weight of the loss's burn-in term (fresh N(0, I) draws; the paper's default is 1).  Tried
# before settling (min bulk ESS of L2HMC; exploratory runs, 2 chains x 1000 draws):
# - logistic regression: its posterior is narrow and far from N(0, I); with the burn-in term
#   the trained sampler jumps less than plain HMC and mixes badly (ESS 260 in 2 x 2000
#   draws; eps 0.02: 209).  A training iteration costs ~15x eight schools', hence batch 32.
# - radon (~35x eight schools' cost per iteration; tried on the earlier synthetic radon-shaped
#   data, before models.radon read the real data): eps 0.02, and 0.015 with 4000 x 32,
#   diverged in training and mixed no better than 0.01 (ESS 81, 22).  At 0.01, 5 of the 32
#   training chains never leave their N(0, I) start, and from iteration 329 the worst one's
#   NaN curvature skipped 1644 of 2000 Adam steps (eps -> 0.011, ESS 95); since stuck chains
#   are replaced after a skipped step, 1 step is skipped (eps -> 0.032, training acceptance
#   0.92, ESS 235 but max r_hat 1.08; radon alone, seed 0).  0.005 trained to the end before
#   that fix (eps -> 0.011) but mixed no better (ESS 59).
# - centred eight schools (a funnel) fails with every setting tried: eps 0.1 and 0.05 with
#   the burn-in term end training at acceptance < 0.01 (ESS 2, 0), eps 0.02 at 0.12 (ESS 3);
#   eps 0.05 without it, below, is the least bad (ESS 6).
SETTINGS = {
    "eight_schools_centred": dict(step_size=0.05, train_steps=2000, batch_size=200, burn_in_weight=0.0),
    "eight_schools_noncentred": dict(step_size=0.2, train_steps=2000, batch_size=200, burn_in_weight=1.0),
    "radon": dict(step_size=0.01, train_steps=2000, batch_size=32, burn_in_weight=0.0),
    "logistic_regression": dict(step_size=0.05, train_steps=2000, batch_size=32, burn_in_weight=0.0),
}
DRAWS, TUNE = 2000, 1000
QUICK = dict(train_steps=100, batch_size=32, draws=200, tune=100)


MODELS = {
    "eight_schools_centred": lambda: eight_schools(centred=True),
    "eight_schools_noncentred": lambda: eight_schools(centred=False),
    "radon": radon,
    "logistic_regression": logistic_regression,
}


def train_l2hmc(model, settings, seed, check):
    """A trained L2HMCSampler (T = 10, hidden 10/10) and its training history."""
    sampler = L2HMCSampler(model, n_steps=10, step_size=settings["step_size"], hidden=(10, 10), seed=seed)
    history = sampler.train(train_steps=settings["train_steps"], batch_size=settings["batch_size"],
                            burn_in_weight=settings["burn_in_weight"], progressbar=False, check=check)
    return sampler, history


def flat_scalars(dataset):
    """(name, value) for every scalar of an ArviZ per-variable Dataset, e.g. ('theta[3]', 412.0)."""
    out = []
    for name, values in dataset.data_vars.items():
        values = np.asarray(values.values)
        if values.ndim == 0:
            out.append((name, float(values)))
            continue
        for index in np.ndindex(values.shape):
            out.append((f"{name}[{','.join(map(str, index))}]", float(values[index])))
    return out


def min_bulk_ess(idata):
    """(name, ESS) of the scalar with the smallest bulk ESS.  A scalar that never moves in
    some chain counts as ESS 0 (ArviZ would report the number of draws)."""
    ess = dict(flat_scalars(az.ess(idata, method="bulk")))
    moves = dict(flat_scalars((idata.posterior.diff("draw") != 0).any("draw").all("chain")))
    return min(((name, value if moves[name] else 0.0) for name, value in ess.items()),
               key=lambda item: item[1])


def run_sampler(model, step, draws, tune, seed):
    """Sample with ``step``; return the row of metrics (a dict) for the table."""
    with model:
        start = time.perf_counter()
        idata = pm.sample(step=step, draws=draws, tune=tune, chains=2, cores=1, random_seed=seed,
                          return_inferencedata=True, compute_convergence_checks=False, progressbar=False)
        seconds = time.perf_counter() - start
    stats = idata.sample_stats
    min_name, min_ess = min_bulk_ess(idata)
    grads = int(stats["n_steps"].values.sum())  # pymc3's tree_size, renamed by ArviZ
    accept = stats["accept"] if "accept" in stats else stats["acceptance_rate"]  # L2HMC, NUTS
    return {
        "min_ess": min_ess,
        "min_param": min_name,
        "grads": grads,
        "ess_per_kgrad": 1e3 * min_ess / grads,
        "ess_per_s": min_ess / seconds,
        "divergences": int(stats["diverging"].values.sum()),
        "accept": float(accept.mean()),
        "max_rhat": float(np.max([value for _, value in flat_scalars(az.rhat(idata))])),  # nan if stuck
        "seconds": seconds,
    }


def compare(name, settings, draws, tune, seed, check=True):
    """Train L2HMC on one model, then sample it with L2HMC and NUTS; returns (rows, note)."""
    model = MODELS[name]()
    sampler, history = train_l2hmc(model, settings, seed, check)
    with model:
        l2hmc = L2HMC(sampler=sampler)
        nuts = pm.NUTS()
    # Compile the step's MH function now (NUTS compiles in its constructor): sample s is sampling only.
    x0 = ModelEnergy(model).start_array()[None, :]
    l2hmc.sampler.mh_step_with_stats(x0, np.zeros_like(x0), np.ones(1, x0.dtype), np.zeros(1, x0.dtype))
    rows = {"L2HMC": run_sampler(model, l2hmc, draws, tune, seed + 1),
            "NUTS": run_sampler(model, nuts, draws, tune, seed + 1)}
    rows["L2HMC"]["training"] = f"{settings['train_steps']} x {settings['batch_size']}"
    rows["L2HMC"]["train_s"] = history["seconds"]
    tail = slice(-max(1, len(history["accept"]) // 10), None)
    note = (f"{name}: dim {sampler.dim}; L2HMC eps {settings['step_size']} -> {sampler.step_size:.3g} "
            f"after training, training acceptance (last 10%) {np.mean(history['accept'][tail]):.2f}")
    if sampler.training_problems:
        note += "; training check: " + "; ".join(sampler.training_problems)
    return rows, note


def markdown(results, notes, draws, tune):
    """The report: the main table, the L2HMC/NUTS ratios, and one note per model."""
    lines = [
        f"L2HMC (T = 10, hidden 10/10) vs NUTS; 2 chains x {draws} draws after {tune} tuning draws.",
        "",
        "| model | sampler | min bulk ESS | min at | grad evals | ESS / 1k grads | ESS / s | divergences "
        "| accept | max r_hat | sample s | training (iter x batch) | train s |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rows in results.items():
        for label, r in rows.items():
            training, train_s = r.get("training", ""), f"{r['train_s']:.0f}" if "train_s" in r else ""
            lines.append(
                f"| {name} | {label} | {r['min_ess']:.0f} | {r['min_param']} | {r['grads']} "
                f"| {r['ess_per_kgrad']:.2f} | {r['ess_per_s']:.1f} | {r['divergences']} | {r['accept']:.2f} "
                f"| {r['max_rhat']:.3f} | {r['seconds']:.1f} | {training} | {train_s} |"
            )
    lines += ["", "| model | L2HMC / NUTS: min ESS per gradient | min ESS per second |", "|---|---:|---:|"]
    for name, rows in results.items():
        ours, nuts = rows["L2HMC"], rows["NUTS"]
        lines.append(f"| {name} | {ratio(ours['ess_per_kgrad'], nuts['ess_per_kgrad'])} "
                     f"| {ratio(ours['ess_per_s'], nuts['ess_per_s'])} |")
    lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def ratio(a, b):
    return f"{a / b:.2f}" if b > 0 else "n/a"


def main():
    epilog = "SETTINGS (per model):\n" + "\n".join(
        f"  {name:<25} " + ", ".join(f"{k} {v}" for k, v in settings.items())
        for name, settings in SETTINGS.items())
    parser = argparse.ArgumentParser(description=__doc__, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--quick", action="store_true",
        help="smoke run: {train_steps} training iterations x batch {batch_size}, {draws} draws, "
             "{tune} tuning draws, no training check".format(**QUICK))
    add("--models", nargs="+", choices=list(MODELS), default=list(MODELS), metavar="MODEL",
        help=f"a subset of: {', '.join(MODELS)} (default: all)")
    add("--seed", type=int, default=0, help="training seed; pm.sample gets seed + 1 (default 0)")
    add("--train-steps", type=int, help="training iterations, all models (default: SETTINGS)")
    add("--batch-size", type=int, help="training chains, all models (default: SETTINGS)")
    add("--step-size", type=float, help="initial L2HMC step size, all models (default: SETTINGS)")
    add("--burn-in-weight", type=float,
        help="weight of the loss's burn-in term, all models (default: SETTINGS)")
    add("--draws", type=int, help=f"draws per chain after tuning (default {DRAWS})")
    add("--tune", type=int, help=f"tuning draws per chain (default {TUNE})")
    add("--out", help="also write the Markdown report to this file (atomically)")
    args = parser.parse_args()
    draws = args.draws or (QUICK["draws"] if args.quick else DRAWS)
    tune = args.tune if args.tune is not None else (QUICK["tune"] if args.quick else TUNE)

    results, notes = {}, []
    for name in args.models:
        settings = dict(SETTINGS[name])
        if args.quick:
            settings.update(train_steps=QUICK["train_steps"], batch_size=QUICK["batch_size"])
        for key in settings:
            if getattr(args, key) is not None:
                settings[key] = getattr(args, key)
        results[name], notes_line = compare(name, settings, draws, tune, args.seed, check=not args.quick)
        notes.append(notes_line)
    report = markdown(results, notes, draws, tune)
    print(report, end="")
    if args.out:
        atomic_write(args.out, lambda f: f.write(report.encode()))


if __name__ == "__main__":
    main()
