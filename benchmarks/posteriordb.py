"""posteriordb's posteriors with every default: L2HMC against PyMC3's NUTS, checked against the
reference draws.

The posteriors are those of ``benchmarks/posteriordb_models.py``: Stan models of
github.com/stan-dev/posteriordb ported to PyMC3, each with posteriordb's reference draws (10
chains x 1000 thinned draws of Stan's NUTS).  Clone posteriordb and pass its directory:

    git clone https://github.com/stan-dev/posteriordb /tmp/posteriordb
    python benchmarks/posteriordb.py --root /tmp/posteriordb --seeds 0 1 2 --out docs/posteriordb.md
    python benchmarks/posteriordb.py --root /tmp/posteriordb --posteriors diamonds-diamonds --samplers l2hmc

For each posterior and seed, pm.sample(draws, chains=2, cores=1, random_seed=seed) with

* **L2HMC**: ``step=l2hmc_theano.L2HMC(seed=seed, cache=False)``, every default (warm-up,
  preconditioner, T, whether to train); "setup s" is its construction, compiles included;
  ``tune=100`` (a chain starts from warm-up's chains; its later tuning draws are free);
* **NUTS**: pm.sample's default (``pm.init_nuts``: jitter + diagonal adaptation, timed as
  "setup s"), ``tune=1000``.

Columns: "worst z" = max over the reference's scalars of |mean - reference mean| / sqrt(MCSE^2 +
reference var / reference draws) (MCSE of the run's mean, by ArviZ); max rank R-hat; min bulk ESS
over the free variables' scalars per 1000 gradients (the n_steps stat: PyMC3's tree_size, T for
L2HMC), and min tail ESS (ArviZ's ``method="tail"``, of the 5% and 95% quantiles) the same way;
"s to 1000 ESS" = setup + sample s x 1000 / min bulk ESS; divergences.  With several seeds a
cell is the median [min, max].  The summary gives the median over posteriors of L2HMC's ratio to
NUTS per gradient (of bulk ESS, of tail ESS, and of the smaller of the two), the posteriors L2HMC
gets wrong (worst z > 5 or R-hat > 1.01) and the five with the lowest ratio.  A run that raises
is recorded as failed and the benchmark goes on.
"""
import argparse
import datetime
import os
import sys
import time
import traceback
import warnings

import numpy as np

import l2hmc_theano  # noqa: F401  (first: it sets Theano's flags before pymc3)
from l2hmc_theano import L2HMC

import arviz as az  # noqa: E402
import pymc3 as pm  # noqa: E402
from posteriordb_models import POSTERIORS, load, to_posteriordb  # noqa: E402
from time_to_result import machine, measure, phase, sample, say, seconds, timed  # noqa: E402
from _harness import chosen_samplers, command, git_commit, median_cell, publish  # noqa: E402

TARGET_ESS = 1000
L2HMC_TUNE, NUTS_TUNE = 100, 1000


def worst_z(idata, reference):
    """Max over the reference's scalars of |mean - reference mean| / sqrt(MCSE^2 + var / n_ref)."""
    posterior = {k: v.values.reshape((-1,) + v.shape[2:]) for k, v in idata.posterior.items()}
    ours = to_posteriordb(posterior, set(reference))
    mcse = to_posteriordb({k: v.values[None] for k, v in az.mcse(idata).items()}, set(reference))
    missing = set(reference) - set(ours)
    if missing:
        raise ValueError(f"the port has no {sorted(missing)[:3]}... of the reference")
    return max(abs(ours[k].mean() - reference[k].mean()) / np.sqrt(float(mcse[k][0]) ** 2 + reference[k].var()
                                                                    / len(reference[k])) for k in ours)


def run_l2hmc(model, seed, draws):
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        step, setup = timed(lambda: L2HMC(seed=seed, cache=False, progressbar=False))
    idata, sample_s = sample(model, step, draws, L2HMC_TUNE, seed)
    info = step.sampler.warmup_info or {}
    kept = (step.sampler.selection or {}).get("kept", "hmc")
    note = (f"T = {step.sampler.n_steps}, {info.get('preconditioner')}"
            + (f" rank {info.get('rank')}" if info.get("preconditioner") == "lowrank" else "")
            + (f", non-centred {', '.join(info['noncentred'])}" if info.get("noncentred") else "")
            + ("" if kept == "hmc" else ", networks kept")
            + (f", {step.thin} transitions a draw" if step.thin > 1 else ""))
    return idata, measure(model, idata, setup, 0.0, sample_s), note


def run_nuts(model, seed, draws):
    np.random.seed(seed)  # as pm.sample(random_seed=seed) draws its per-chain seeds
    chain_seeds = [np.random.randint(2 ** 30) for _ in range(2)]
    with model:
        (start, step), setup = timed(lambda: pm.init_nuts(init="auto", chains=2, random_seed=chain_seeds,
                                                          progressbar=False))
    idata, sample_s = sample(model, step, draws, NUTS_TUNE, chain_seeds, start)
    return idata, measure(model, idata, setup, 0.0, sample_s), ""


RUNS = {"l2hmc": run_l2hmc, "nuts": run_nuts}


def one(name, sampler, seed, draws, root):
    data, reference = load(name, root)
    model = POSTERIORS[name](data)
    start = time.perf_counter()
    try:
        with phase(f"{name} {sampler} seed {seed}"):
            idata, row, note = RUNS[sampler](model, seed, draws)
        row.update(worst_z=worst_z(idata, reference), note=note)
    except Exception as error:  # noqa: BLE001 - one posterior's failure is a result, not the run's end
        traceback.print_exc()
        row = {"failed": f"{type(error).__name__}: {str(error)[:160]}"}
    say(f"{name} {sampler} seed {seed}: " + (row["failed"] if "failed" in row else
        f"worst z {row['worst_z']:.2f}, R-hat {row['max_rhat']:.3f}, {row['ess_per_kgrad']:.3g} ESS per 1k "
        f"gradients, {seconds(row['s_to_target'])} s to {TARGET_ESS} ESS, {row['divergences']} divergences "
        f"({time.perf_counter() - start:.0f} s)"))
    return row


def table(results, samplers):
    lines = ["| posterior | sampler | worst z | max R-hat | ESS per 1k gradients | tail ESS per 1k gradients | "
             "s to 1000 ESS | divergences | notes |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, by_sampler in results.items():
        for sampler in samplers:
            rows = by_sampler.get(sampler, [])
            failed = [r["failed"] for r in rows if "failed" in r]
            notes = sorted({r["note"] for r in rows if r.get("note")}) + failed
            lines.append(f"| {name} | {sampler} | {median_cell(rows, 'worst_z', '.2f')} | "
                         f"{median_cell(rows, 'max_rhat', '.3f')} | {median_cell(rows, 'ess_per_kgrad', '.3g')} | "
                         f"{median_cell(rows, 'tail_per_kgrad', '.3g')} | "
                         f"{median_cell(rows, 's_to_target', '.3g')} | {median_cell(rows, 'divergences', '.0f')} | "
                         f"{'; '.join(notes)} |")
    return lines


def summary(results):
    """The median ratio per gradient (L2HMC / NUTS), the posteriors L2HMC gets wrong, the worst five."""
    def per(rows, key):
        return np.median([r[key] for r in rows])

    def smaller(rows):
        return min(per(rows, "ess_per_kgrad"), per(rows, "tail_per_kgrad"))

    ratios, tails, lows, wrong = {}, {}, {}, []
    for name, by_sampler in results.items():
        ours = [r for r in by_sampler.get("l2hmc", []) if "failed" not in r]
        nuts = [r for r in by_sampler.get("nuts", []) if "failed" not in r]
        if len(ours) < len(by_sampler.get("l2hmc", [])) or any(r["worst_z"] > 5 or r["max_rhat"] > 1.01 for r in ours):
            wrong.append(name)
        if ours and nuts:
            ratios[name] = per(ours, "ess_per_kgrad") / per(nuts, "ess_per_kgrad")
            tails[name] = per(ours, "tail_per_kgrad") / per(nuts, "tail_per_kgrad")
            lows[name] = smaller(ours) / smaller(nuts)
    lines = []
    if ratios:
        values = np.array(list(ratios.values()))
        lines.append(f"- L2HMC / NUTS min ESS per gradient over {len(ratios)} posteriors: median "
                     f"{np.median(values):.2f}x, range {values.min():.2f}x .. {values.max():.2f}x; "
                     f"below 0.8x: {', '.join(n for n, v in ratios.items() if v < 0.8) or 'none'}.")
        for label, by_name in (("tail ESS", tails), ("min of bulk and tail ESS", lows)):
            v = np.array(list(by_name.values()))
            lines.append(f"- L2HMC / NUTS {label} per gradient over {len(v)} posteriors: median "
                         f"{np.median(v):.2f}x, range {v.min():.2f}x .. {v.max():.2f}x; below 0.8x: "
                         f"{', '.join(n for n, x in by_name.items() if x < 0.8) or 'none'}.")
        worst = sorted(ratios, key=ratios.get)[:5]
        lines.append("- Lowest five: " + ", ".join(f"{n} ({ratios[n]:.2f}x)" for n in worst) + ".")
    lines.append(f"- L2HMC wrong (worst z > 5 or R-hat > 1.01 in a seed, or failed): {', '.join(wrong) or 'none'}.")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="posteriors: " + ", ".join(POSTERIORS))
    parser.add_argument("--root", default=os.environ.get("POSTERIORDB"), required="POSTERIORDB" not in os.environ,
                        help="a posteriordb checkout (the directory holding posterior_database/; default: "
                        "$POSTERIORDB)")
    parser.add_argument("--posteriors", nargs="+", choices=list(POSTERIORS), default=list(POSTERIORS), metavar="NAME")
    parser.add_argument("--samplers", default="l2hmc,nuts", help="comma-separated: l2hmc, nuts (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--nuts-seeds", type=int, nargs="+", default=None,
                        help="NUTS's seeds, when fewer than L2HMC's (NUTS takes minutes on some; default: --seeds)")
    parser.add_argument("--draws", type=int, default=1000, help="draws per chain, 2 chains (default: %(default)s)")
    parser.add_argument("--out", default=None, help="write the results (markdown) here, e.g. docs/posteriordb.md")
    args = parser.parse_args(argv)
    samplers = chosen_samplers(parser, args.samplers, RUNS)
    if not os.path.isdir(os.path.join(args.root, "posterior_database")):
        parser.error(f"--root {args.root!r} has no posterior_database/ directory: pass a posteriordb checkout")
    load_avg = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    results = {}
    for name in args.posteriors:
        results[name] = {s: [one(name, s, seed, args.draws, args.root)
                             for seed in (args.nuts_seeds or args.seeds if s == "nuts" else args.seeds)]
                         for s in samplers}
    lines = [f"# posteriordb: L2HMC (every default) against PyMC3's NUTS",
             "",
             f"- command: `{command('benchmarks/posteriordb.py', sys.argv[1:])}`",
             f"- date: {started:%Y-%m-%d %H:%M} UTC; seeds {', '.join(map(str, args.seeds))} (NUTS "
             f"{', '.join(map(str, args.nuts_seeds or args.seeds))}); 2 chains x {args.draws} "
             f"draws (L2HMC tune {L2HMC_TUNE}, NUTS tune {NUTS_TUNE})",
             f"- git commit: {git_commit()}",
             f"- machine: {machine(load_avg)}",
             "", *summary(results), "", *table(results, samplers), "",
             "Columns: see the docstring of benchmarks/posteriordb.py."]
    publish("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
