"""nutpie (low-rank and diagonal mass matrix) on the rotated 50-d Gaussian of
``benchmarks/models.py`` (``rotated_gaussian``), beside L2HMC's figures for the same model in
``docs/time_to_result.md``: min bulk and min tail ESS per gradient.

nutpie is never a dependency of l2hmc_theano: this runs in the throw-away venv that
``benchmarks/posteriordb_nutpie.py`` describes (today's PyMC, PyTensor, nutpie):

    /tmp/nutpie_bench/venv/bin/python benchmarks/rotated_gaussian_nutpie.py --seeds 0 1 2 \\
        --out docs/rotated_gaussian_nutpie.md

The model is built here in PyMC, as ``models.rotated_gaussian`` builds it in PyMC3: covariance
Q diag(s^2) Q^T with Q from the QR of a 50 x 50 standard normal matrix (``default_rng(0)``) and
s = logspace(-2, 2, 50), as ``pm.MvNormal``.  For each adaptation and seed,
``nutpie.sample(compiled, chains=2, draws=1000, tune=1000, seed=seed, cores=1, adaptation=...)``,
as pm.sample's 2 x 1000 draws in time_to_result.py.

Columns: min over the 50 coordinates of ArviZ's bulk ESS and of its tail ESS (the 5% and 95%
quantiles), each per 1000 gradients (nutpie's n_steps over the kept draws); max rank R-hat;
divergences; compile s (once); sample s (tuning included).  A cell is the median [min, max] over
seeds.  The L2HMC rows are read, by column name, from the committed ``docs/time_to_result.md``
(PyMC3 on Theano: another stack, another process).  Bulk ESS rewards a sampler whose draws swing
past the mean (antithetic draws: more bulk ESS than draws); its tail ESS shows what that costs
the quantiles, so the comparison gives both.
"""
import argparse
import datetime
import os
import platform
import re
import shlex
import subprocess
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DIM, DRAWS, TUNE, CHAINS = 50, 1000, 1000, 2
BASELINE = "docs/time_to_result.md"
BASELINE_ROWS = {"L2HMC first run": "L2HMC, pm.sample (first run)", "l2hmc_theano.sample": "L2HMC, l2hmc_theano.sample"}
ADAPTATIONS = ("low_rank", "diag")

sys.path.insert(0, HERE)
from _harness import nutpie_environment  # noqa: E402  (before NumPy, PyTensor and numba load)

_CACHE = nutpie_environment(sys.argv)

import numpy as np  # noqa: E402

from _harness import git_commit, leading_number, median_cell, table_rows, write_result  # noqa: E402


def say(text):
    print(f"[{datetime.datetime.now():%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def covariance(dim=DIM):
    """The covariance of ``models.rotated_gaussian(dim)``, ``(dim, dim)``."""
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((dim, dim)))
    return (q * np.logspace(-2, 2, dim) ** 2) @ q.T


def group(trace, name):
    try:
        return trace[name].to_dataset()  # an xarray DataTree (ArviZ >= 1)
    except AttributeError:
        return getattr(trace, name)


def run(compiled, adaptation, seed):
    import arviz as az
    import nutpie

    start = time.perf_counter()
    trace = nutpie.sample(compiled, chains=CHAINS, draws=DRAWS, tune=TUNE, seed=seed, cores=1,
                          adaptation=adaptation, progress_bar=False, save_warmup=False)
    sample_s = time.perf_counter() - start
    post, stats = group(trace, "posterior")[["x"]], group(trace, "sample_stats")
    grads = int(stats["n_steps"].values.sum())
    bulk = float(np.min(az.ess(post, method="bulk")["x"].values))
    tail = float(np.min(az.ess(post, method="tail")["x"].values))
    return {"ess_per_kgrad": 1e3 * bulk / grads, "tail_per_kgrad": 1e3 * tail / grads,
            "max_rhat": float(np.max(az.rhat(post, method="rank")["x"].values)),
            "divergences": int(stats["diverging"].values.sum()), "sample_s": sample_s,
            "steps_per_draw": grads / (CHAINS * DRAWS)}


def read_baseline():
    """{row label: {"ess_per_kgrad", "tail_per_kgrad": median}} of rotated_gaussian50 in the committed
    time_to_result.md, and the commit it says it was measured at."""
    text = subprocess.run(["git", "show", f"HEAD:{BASELINE}"], cwd=ROOT, capture_output=True, text=True).stdout
    keys = {"ESS / 1k grads": "ess_per_kgrad", "tail ESS / 1k grads": "tail_per_kgrad"}
    out = {row["sampler"]: {key: row[column] for column, key in keys.items() if column in row}
           for row in table_rows(text, ("model", "sampler"))
           if row["model"] == "rotated_gaussian50" and row["sampler"] in BASELINE_ROWS}
    measured = re.search(r"git commit: (\S+)", text)
    return out, measured.group(1) if measured else "unknown"


def report(rows, compile_s, args, started):
    import importlib.metadata as md

    baseline, measured = read_baseline()
    versions = ", ".join(f"{p} {md.version(p)}" for p in ("pymc", "pytensor", "nutpie", "numba", "arviz", "numpy"))
    lines = [f"# Rotated 50-d Gaussian: nutpie against L2HMC, bulk and tail ESS per gradient", "",
             f"- command: `{os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(ROOT) else sys.executable} "
             f"{' '.join(shlex.quote(a) for a in ['benchmarks/rotated_gaussian_nutpie.py', *sys.argv[1:]])}`",
             f"- date: {started:%Y-%m-%d %H:%M} UTC; seeds {', '.join(map(str, args.seeds))}; {CHAINS} chains x {DRAWS} "
             f"draws, tune {TUNE}, cores=1; git commit {git_commit()}",
             f"- machine: {platform.platform()}, os.cpu_count() = {os.cpu_count()}; Python {platform.python_version()}, "
             f"{versions}",
             f"- L2HMC rows: the committed {BASELINE} (measured at {measured}; PyMC3 3.11 / Theano), median "
             f"[min, max] cells as written there", "",
             "| sampler | ESS per 1k gradients | tail ESS per 1k gradients | max R-hat | divergences | steps per draw "
             "| sample s |", "|---|---:|---:|---:|---:|---:|---:|"]
    for adaptation in ADAPTATIONS:
        rs = rows[adaptation]
        cells = [median_cell(rs, k, f) for k, f in (("ess_per_kgrad", ".3g"), ("tail_per_kgrad", ".3g"),
                                                     ("max_rhat", ".4f"), ("divergences", ".0f"),
                                                     ("steps_per_draw", ".1f"), ("sample_s", ".2f"))]
        lines.append(f"| nutpie {adaptation} | " + " | ".join(cells) + " |")
    for label, shown in BASELINE_ROWS.items():
        b = baseline.get(label)
        if b:
            lines.append(f"| {shown} | {b.get('ess_per_kgrad', '-')} | {b.get('tail_per_kgrad', '-')} "
                         f"| | | | |")
    lines += ["", f"nutpie compile: {compile_s:.1f} s (once, numba backend)."]
    low = rows["low_rank"]
    first_run = baseline.get("L2HMC first run", {})
    ours = {k: leading_number(first_run.get(k)) for k in ("ess_per_kgrad", "tail_per_kgrad")}
    if low and all(ours.values()):
        theirs = {k: float(np.median([r[k] for r in low])) for k in ours}
        lines += ["", f"- L2HMC (pm.sample, first run) / nutpie low-rank, medians: bulk ESS per gradient "
                  f"{ours['ess_per_kgrad'] / theirs['ess_per_kgrad']:.2f}x, tail ESS per gradient "
                  f"{ours['tail_per_kgrad'] / theirs['tail_per_kgrad']:.2f}x, the smaller of the two "
                  f"{min(ours.values()) / min(theirs.values()):.2f}x."]
    lines += ["", "Columns: see the docstring of benchmarks/rotated_gaussian_nutpie.py."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_result(args.out, text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="default: %(default)s")
    parser.add_argument("--cache-dir", default=_CACHE, help="PyTensor's and numba's caches (default: %(default)s)")
    parser.add_argument("--out", default=None, help="write the result here, e.g. docs/rotated_gaussian_nutpie.md")
    args = parser.parse_args(argv)
    try:
        import nutpie
        import pymc as pm
    except ImportError as error:
        parser.error(f"{error}: run this in a venv with pymc and nutpie (see the docstring), not the repo's.")
    started = datetime.datetime.utcnow()
    with pm.Model() as model:
        pm.MvNormal("x", mu=np.zeros(DIM), cov=covariance(), shape=DIM)
    say("compiling (nutpie, numba backend)")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = nutpie.compile_pymc_model(model, backend="numba")
    compile_s = time.perf_counter() - start
    rows = {a: [] for a in ADAPTATIONS}
    for adaptation in ADAPTATIONS:
        for seed in args.seeds:
            say(f"nutpie {adaptation} seed {seed}")
            row = run(compiled, adaptation, seed)
            rows[adaptation].append(row)
            say(f"  bulk {row['ess_per_kgrad']:.1f}, tail {row['tail_per_kgrad']:.1f} ESS per 1k gradients, R-hat "
                f"{row['max_rhat']:.4f}, {row['sample_s']:.1f} s")
    report(rows, compile_s, args, started)


if __name__ == "__main__":
    main()
