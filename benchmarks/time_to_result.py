"""Wall time to a usable posterior, setup included: L2HMC against PyMC3's NUTS, each as a user runs it.

For each model and seed, four samplers; the first three with pm.sample(draws, tune=tune, chains=2,
cores=1, random_seed=seed):

* **L2HMC, first run** (in this process, an empty trained-sampler cache): "setup s" is the
  construction of ``l2hmc_theano.L2HMC(seed=seed)``: warm-up, Theano compiles, training and the
  trained-or-HMC selection; split as the sampler reports it into "warm-up s"
  (``warmup_info["seconds"]``), "train s" (``history["seconds"]``) and "other s", the rest
  (building the energy graph, compiling, the selection's runs).  "compile s" is the first
  draw's compile (``sampler.model_step_function()``, timed before pm.sample; with a discrete
  variable, Metropolis's construction too), "sample s" the pm.sample call.
* **L2HMC, second run**: the same in a fresh child process that shares the first run's
  trained-sampler cache directory (the environment variable L2HMC_THEANO_CACHE_DIR, a
  directory this script makes and empties before each model and seed's first run), and
  Theano's compile cache.  Where the package caches trained samplers, the second run loads
  one instead of training; "setup s" shows what that saves.
* **NUTS**: what pm.sample() does by default, its two parts timed apart: "setup s" is
  ``pm.init_nuts`` (jitter + diagonal adaptation: builds and compiles NUTS) with the per-chain
  seeds pm.sample draws from ``seed``, or, with a discrete variable, PyMC3's own step
  assignment (NUTS on the continuous variables, Metropolis on the discrete ones); "sample s"
  the pm.sample call with that step and those starts.
* **l2hmc_theano.sample**: many chains in one compiled call, as a user asks for a posterior fast
  (continuous models only): "setup s" is ``l2hmc_theano.train`` with the defaults ``sample()``
  trains with (a fresh cache), "sample s" the ``sample()`` call: its compile, the draws of every
  setup chain at once (max(100, 2 x draws / chains) each; they continue the setup's chains, so no
  tuning draws) and the InferenceData.

Columns: min bulk ESS over every scalar of every free variable (ArviZ's ``ess(method="bulk")``;
deterministics such as a GP's f are left out), gradient evaluations (the sum of the n_steps
sample stat: PyMC3's tree_size), min bulk ESS per 1000 gradients, min tail ESS (ArviZ's
``method="tail"``: of the 5% and 95% quantiles) per 1000 gradients, max rank R-hat, divergences;
"s to draws" = setup + compile + sample s, the wall time to the requested draws; "s to 1000
ESS" = setup + compile + sample s x 1000 / min ESS: a **linear extrapolation** of the
sampling phase (tuning included, for both samplers: NUTS's tuning draws adapt; L2HMC's start a
chain from a training chain, and those after the first are free) to a min bulk ESS of 1000.  With a discrete variable the notes give the min bulk ESS of
the continuous ones too (the discrete one is Metropolis's, in both rows).  A sampler that
raises is recorded as ``failed: Type: message`` and the benchmark goes on.  With several
seeds, each cell is the median [min, max] over the seeds that did not fail.

Not counted: the child's Python start-up and imports.  Theano's compile cache is the
machine's: where it is cold, the first sampler to need a C module builds it (a cost paid once
per machine, by L2HMC's first run more than by NUTS, which runs last); run ``--quick`` once
first to warm it.  A line is printed before each phase and every 50 s within one; the result
file is written at the end (``--quick``: to the temporary directory, not docs/).

Models (benchmarks/models.py; data fixed from numpy seeds): latent_gp_classification (30
points, pm.gp.Latent: a Cholesky of the kernel matrix in the logp), large_logistic_regression
(3000 rows, 5 correlated predictors of scales 0.1-10), switchpoint (coal-mining disasters,
DiscreteUniform switchpoint: L2HMC on the rates in a compound step with Metropolis),
stochastic_volatility (Gaussian random walk of 100 log-volatilities), rotated_gaussian50 (a
50-d Gaussian with scales 1e-2..1e2 along random directions); real_models.py's models
by name too.  Timings are wall-clock: run on a quiet machine.

    python benchmarks/time_to_result.py                                  # the five models, seed 0
    python benchmarks/time_to_result.py --quick --models switchpoint     # smoke run
    python benchmarks/time_to_result.py --seeds 0 1 2 --out docs/time_to_result.md
"""
import argparse
import atexit
import contextlib
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

#: The environment variable that points the package's trained-sampler cache at a directory.
CACHE_ENV = "L2HMC_THEANO_CACHE_DIR"
#: The internal flag of the second L2HMC run's child process.
CHILD = "--child-run"

# Before l2hmc_theano is imported (its cache may read the variable then): this run's own
# directory, never the user's cache (it is emptied), removed at exit; a child inherits its parent's.
if __name__ == "__main__" and CHILD not in sys.argv:
    os.environ[CACHE_ENV] = tempfile.mkdtemp(prefix="time_to_result_cache_")
    atexit.register(shutil.rmtree, os.environ[CACHE_ENV], ignore_errors=True)

import numpy as np  # noqa: E402

import l2hmc_theano  # noqa: E402,F401  (first: it sets Theano's flags before pymc3)
from l2hmc_theano import L2HMC  # noqa: E402
from l2hmc_theano.step import AUTO_BUDGET  # noqa: E402

import arviz as az  # noqa: E402
import pymc3 as pm  # noqa: E402
import models  # noqa: E402
from real_models import MODELS as REAL_MODELS, QUICK, flat_scalars, min_ess  # noqa: E402
from _harness import git_commit, write_result  # noqa: E402,F401  (git_commit: the other scripts import it here)
from l2hmc_theano.progress import every  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: pm.sample's own defaults: what a user gets.
DRAWS, TUNE = 1000, 1000
#: The min bulk ESS "s to 1000 ESS" extrapolates to.
TARGET_ESS = 1000
#: Seconds between "still running" lines in a long phase (never a silent minute).
HEARTBEAT_S = 50
#: A failure's message is cut to this many characters in the table (the traceback goes to stderr).
MESSAGE_CHARS = 160
#: Where --quick writes by default: not docs/.
QUICK_OUT = os.path.join(tempfile.gettempdir(), "time_to_result_quick.md")
NEW_MODELS = {
    "latent_gp_classification": models.latent_gp_classification,
    "large_logistic_regression": models.large_logistic_regression,
    "switchpoint": models.switchpoint,
    "stochastic_volatility": models.stochastic_volatility,
    "rotated_gaussian50": models.rotated_gaussian,
}
MODELS = {**NEW_MODELS, **REAL_MODELS}
FIRST, SECOND, NUTS, MANY = "L2HMC first run", "L2HMC second run", "NUTS", "l2hmc_theano.sample"
def seconds(value):
    """Two significant figures below 10 s (0.66, 4.1), whole seconds above (48, 624)."""
    return f"{value:.2g}" if value < 10 else f"{value:.0f}"


COLUMNS = [  # (key, header, format: a format spec, or a function of the value)
    ("setup_s", "setup s", ".1f"), ("warmup_s", "warm-up s", ".1f"), ("train_s", "train s", ".1f"),
    ("other_s", "other s", ".1f"), ("compile_s", "compile s", ".1f"), ("sample_s", "sample s", ".1f"),
    ("min_ess", "min bulk ESS", ".0f"), ("grads", "grad evals", ".0f"), ("ess_per_kgrad", "ESS / 1k grads", ".2f"),
    ("tail_per_kgrad", "tail ESS / 1k grads", ".2f"), ("max_rhat", "max R-hat", ".3f"),
    ("divergences", "divergences", ".0f"), ("total_s", "s to draws", seconds),
    ("s_to_target", f"s to {TARGET_ESS} ESS", seconds),
]


def say(message):
    """A timestamped progress line, flushed (never a silent minute)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@contextlib.contextmanager
def phase(message):
    """Say ``message``, then every ``HEARTBEAT_S`` seconds for as long as the block runs."""
    say(message)
    start = time.perf_counter()
    with every(HEARTBEAT_S, lambda: say(f"  ... still running ({time.perf_counter() - start:.0f} s): {message}")):
        yield


def timed(f):
    """(f(), its wall seconds)."""
    start = time.perf_counter()
    out = f()
    return out, time.perf_counter() - start


def sample(model, step, draws, tune, seed, start=None):
    """pm.sample with the benchmark's settings: (idata, seconds)."""
    with model:
        return timed(lambda: pm.sample(draws, tune=tune, chains=2, cores=1, step=step, start=start, random_seed=seed,
                                       return_inferencedata=True, compute_convergence_checks=False,
                                       progressbar=False))


def free_names(model):
    """The posterior's names of the model's free variables (a transformed one under its own name:
    PyMC3 lists that among the deterministics, with a GP's f)."""
    return [pm.util.get_untransformed_name(v.name) if pm.util.is_transformed_name(v.name) else v.name
            for v in model.free_RVs]


def measure(model, idata, setup_s, compile_s, sample_s):
    """The row of one run: its timings, min bulk ESS and R-hat over the free variables' scalars,
    gradients, divergences, and the wall times to the draws and to ``TARGET_ESS``."""
    free = az.InferenceData(posterior=idata.posterior[free_names(model)])
    name, ess = min_ess(free, "bulk")
    tail = min_ess(free, "tail")[1]
    stats = idata.sample_stats
    grads = int(stats["n_steps"].values.sum()) if "n_steps" in stats else 0  # pymc3's tree_size, renamed by ArviZ
    total = setup_s + compile_s + sample_s
    row = {
        "setup_s": setup_s, "compile_s": compile_s, "sample_s": sample_s, "min_ess": ess, "min_at": name,
        "grads": grads, "ess_per_kgrad": 1e3 * ess / grads if grads else float("nan"),
        "tail_per_kgrad": 1e3 * tail / grads if grads else float("nan"),
        "max_rhat": max(value for _, value in flat_scalars(az.rhat(free, method="rank"))),
        "divergences": int(stats["diverging"].values.sum()) if "diverging" in stats else 0,
        "total_s": total, "s_to_target": setup_s + compile_s + sample_s * TARGET_ESS / ess if ess > 0 else np.inf,
    }
    if model.disc_vars:  # the same over the variables the gradient sampler moves (Metropolis moves the others)
        discrete = {v.name for v in model.disc_vars}
        row["min_ess_continuous"] = min_ess(az.InferenceData(posterior=free.posterior[
            [n for n in free.posterior.data_vars if n not in discrete]]), "bulk")[1]
    return row


def l2hmc_kwargs(quick):
    """L2HMC's training arguments: the defaults, or real_models.py's ``QUICK`` budget; no progress
    bars (as pm.sample's here: :func:`phase` says what runs)."""
    if not quick:
        return {"progressbar": False}
    return {"progressbar": False, "check": False,
            **{k: QUICK[k] for k in ("train_steps", "batch_size", "warmup_iterations")}}


def run_l2hmc(name, seed, draws, tune, quick):
    """One L2HMC run as a user makes it: construct the step (setup), compile its draw, sample."""
    model = MODELS[name]()
    with model:
        step, setup = timed(lambda: L2HMC(vars=model.cont_vars, seed=seed, **l2hmc_kwargs(quick)))
    sampler = step.sampler
    # A sampler loaded from the cache carries the seconds of the run that trained it: not this setup's.
    warm = (sampler.warmup_info or {}).get("seconds", 0.0)
    train = (sampler.history or {}).get("seconds", 0.0)
    if sampler.loaded_from is not None:
        warm = train = float("nan")
    say(f"  setup {setup:.1f} s (warm-up {warm:.1f}, training {train:.1f}); compiling the draw")

    def compile_steps():
        sampler.model_step_function()  # compiled once; astep reuses it
        if not model.disc_vars:
            return step
        with model:  # the model's Theano settings (test values), as PyMC3's steps expect
            return [step, pm.Metropolis(vars=model.disc_vars)]

    steps, compile_s = timed(compile_steps)
    say(f"  compile {compile_s:.1f} s; sampling 2 chains x {draws} draws after {tune} tuning")
    idata, sample_s = sample(model, steps, draws, tune, seed)
    row = measure(model, idata, setup, compile_s, sample_s)
    row.update(warmup_s=warm, train_s=train, other_s=setup - warm - train, n_steps=int(sampler.n_steps),
               step_size=float(sampler.step_size),
               kept=_kept(sampler), chains=len((sampler.history or {}).get("chains", ())))
    return row


def run_many_chains(name, seed, draws, tune, quick):
    """``l2hmc_theano.sample``: every chain in one compiled call, as a user runs it for a posterior
    fast.  Timed in its two parts: setup (``l2hmc_theano.train`` with the defaults of ``sample()``'s
    own training, as ``sample(model)`` calls it) and the ``sample()`` call (back-transform compile,
    draws, InferenceData).  The chains continue the setup's (no tuning draws); each makes
    max(100, 2 x draws / chains) draws, at least as many draws in all as pm.sample's 2 chains."""
    model = MODELS[name]()
    if model.disc_vars:
        return {"failed": "NotApplicable: l2hmc_theano.sample moves continuous variables only"}
    clear_cache()
    sampler, setup = timed(lambda: l2hmc_theano.train(model, seed=seed, **{**AUTO_BUDGET, **l2hmc_kwargs(quick)}))
    chains = len(sampler.history["chains"])
    per_chain = max(100, -(-2 * draws // chains))
    say(f"  setup {setup:.1f} s; sampling {chains} chains x {per_chain} draws")
    idata, sample_s = timed(lambda: l2hmc_theano.sample(per_chain, chains=chains, model=model, sampler=sampler,
                                                        random_seed=seed, progressbar=False,
                                                        compute_convergence_checks=False))
    row = measure(model, idata, setup, 0.0, sample_s)
    warm = (sampler.warmup_info or {}).get("seconds", 0.0)
    train = (sampler.history or {}).get("seconds", 0.0)
    row.update(compile_s=float("nan"), warmup_s=warm, train_s=train, other_s=setup - warm - train,
               n_steps=int(sampler.n_steps), step_size=float(sampler.step_size), kept=_kept(sampler), chains=chains)
    return row


def _kept(sampler):
    """Which dynamics the sampler ended with: "hmc (no training)" where the setup budget skipped
    training, else the selection's choice ("trained" or "hmc")."""
    if sampler.setup is not None and not sampler.setup["train"]:
        return "hmc (no training)"
    return (sampler.selection or {}).get("kept", "trained (no selection)")


def run_nuts(name, seed, draws, tune):
    """pm.sample()'s default, with its setup (init_nuts, or the step assignment) timed apart."""
    model = MODELS[name]()
    np.random.seed(seed)  # as pm.sample(random_seed=seed) draws its per-chain seeds
    chain_seeds = [np.random.randint(2 ** 30) for _ in range(2)]
    with model:
        if model.disc_vars:
            (start, step), setup = timed(lambda: (None, pm.sampling.assign_step_methods(model)))
        else:
            (start, step), setup = timed(lambda: pm.init_nuts(init="auto", chains=2, random_seed=chain_seeds,
                                                              progressbar=False))
    say(f"  setup {setup:.1f} s; sampling 2 chains x {draws} draws after {tune} tuning")
    idata, sample_s = sample(model, step, draws, tune, chain_seeds, start)
    row = measure(model, idata, setup, 0.0, sample_s)
    row.update(compile_s=float("nan"))  # inside setup
    return row


def guarded(run, *args):
    """``run(*args)``'s row, or ``{"failed": "Type: message"}`` if it raises (the benchmark goes on)."""
    try:
        return run(*args)
    except Exception as error:  # noqa: BLE001: one sampler's failure is a result, not the end of the benchmark
        traceback.print_exc()
        first = (str(error).strip().splitlines() or [""])[0]  # Theano appends pages of debug output
        return {"failed": f"{type(error).__name__}: {first[:MESSAGE_CHARS]}"}


def clear_cache():
    """Empty this run's trained-sampler cache directory (the first run starts cold)."""
    path = os.environ[CACHE_ENV]
    for entry in os.listdir(path):
        full = os.path.join(path, entry)
        shutil.rmtree(full) if os.path.isdir(full) and not os.path.islink(full) else os.remove(full)


def second_run(name, seed, draws, tune, quick):
    """The second L2HMC run in a fresh process (this script with ``CHILD``), its output echoed."""
    command = [sys.executable, os.path.abspath(__file__), CHILD, "--models", name, "--seeds", str(seed),
               "--draws", str(draws), "--tune", str(tune)] + (["--quick"] if quick else [])
    result = None
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=dict(os.environ)) as child:
        for line in child.stdout:
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
            else:
                print("  | " + line, end="", flush=True)
    if result is None:
        return {"failed": f"ChildProcessError: the child exited with status {child.returncode} and no result"}
    return result


def compare(name, seed, draws, tune, quick):
    """{sampler: row} for one model and seed: L2HMC twice (cache emptied first), then NUTS."""
    clear_cache()
    rows = {}
    for label, what, run, args in (
            (FIRST, "setup (warm-up, compiles, training, selection), compile, sample", run_l2hmc, (quick,)),
            (SECOND, f"the same in a fresh process sharing the cache {os.environ[CACHE_ENV]}", second_run, (quick,)),
            (NUTS, "setup (init_nuts: compiles, jitter), sample", run_nuts, ()),
            (MANY, "setup (l2hmc_theano.train), l2hmc_theano.sample of the setup's chains", run_many_chains,
             (quick,))):
        with phase(f"{name}, seed {seed}: {label}: {what}"):
            rows[label] = guarded(run, name, seed, draws, tune, *args)
        print(table_row(name, label, rows[label]), flush=True)
    return rows


def header():
    return ("| model | sampler | " + " | ".join(h for _, h, _ in COLUMNS) + " | notes |\n"
            + "|---|---|" + "---:|" * len(COLUMNS) + "---|")


def cell(values, fmt):
    """One value, or the median [min, max] of several; blank if none is a number."""
    values = np.asarray([v for v in values if v is not None and not np.isnan(v)], dtype=float)
    if not len(values):
        return ""
    show = fmt if callable(fmt) else (lambda value: format(value, fmt))
    if len(values) == 1:
        return show(values[0])
    return f"{show(np.median(values))} [{show(values.min())}, {show(values.max())}]"


def table_row(name, label, rows):
    """The markdown row of one model and sampler over seeds (``rows``: a row, or a list, one per seed)."""
    rows = rows if isinstance(rows, list) else [rows]
    good = [r for r in rows if "failed" not in r]
    failed = [r["failed"] for r in rows if "failed" in r]
    notes = []
    if failed:
        prefix = "failed" if not good else f"{len(failed)} of {len(rows)} seeds failed"
        notes.append(prefix + ": " + "; ".join(sorted(set(failed))).replace("|", "/").replace("\n", " "))
    if good and "kept" in good[0]:
        kept = sorted({r["kept"] for r in good})
        notes.append(f"T {cell([r['n_steps'] for r in good], '.0f')}, "
                     f"eps {cell([r['step_size'] for r in good], '.3g')}, "
                     f"{cell([r['chains'] for r in good], '.0f')} setup chains, kept {'/'.join(kept)}")
    if good:
        notes.append("min at " + "/".join(sorted({r["min_at"] for r in good})))
    if good and "min_ess_continuous" in good[0]:
        notes.append(f"min bulk ESS of the continuous variables {cell([r['min_ess_continuous'] for r in good], '.0f')}")
    cells = [cell([r.get(key) for r in good], fmt) for key, _, fmt in COLUMNS]
    return f"| {name} | {label} | " + " | ".join(cells) + f" | {'; '.join(notes)} |"


def machine(load):
    """One line on the machine: platform, cores, the load average at start, versions."""
    import theano

    return (f"{platform.platform()}, {platform.processor() or platform.machine()}, os.cpu_count() = {os.cpu_count()}, "
            f"load average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min); Python "
            f"{platform.python_version()}, PyMC3 {pm.__version__}, Theano {theano.__version__}, ArviZ {az.__version__}")


def report(results, args, draws, tune, load, started):
    """The markdown result file: how it was made, then one row per model x sampler (x run)."""
    seeds = ", ".join(map(str, args.seeds))
    lines = [
        "# Time to result: L2HMC vs NUTS, setup included",
        "",
        f"Written by `python benchmarks/time_to_result.py {shlex.join(sys.argv[1:])}`"
        f"{' (--quick: a smoke run, not a measurement)' if args.quick else ''}.",
        "",
        f"- date: {started} (UTC) to {datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M')} (UTC)",
        f"- git commit: {git_commit()}",
        f"- seeds: {seeds} (L2HMC's training seed and pm.sample's random_seed)",
        f"- machine: {machine(load)}",
        f"- 2 chains x {draws} draws after {tune} tuning draws, cores=1; L2HMC training: "
        + ("real_models.py's QUICK budget" if args.quick else "the defaults"),
        "",
        "Seconds are wall-clock.  \"s to draws\" = setup + compile + sample s; "
        f"\"s to {TARGET_ESS} ESS\" = setup + compile + sample s x {TARGET_ESS} / min bulk ESS, a linear "
        "extrapolation of the sampling phase (tuning included).  L2HMC's setup is warm-up + training + other "
        "(energy graph, compiles, the trained-or-HMC selection); its second run is a fresh process sharing the "
        f"first's trained-sampler cache ({CACHE_ENV}) and Theano's compile cache.  NUTS's setup is pm.init_nuts "
        "(or PyMC3's step assignment with a discrete variable), compiles included.  l2hmc_theano.sample: setup is "
        "l2hmc_theano.train with sample()'s defaults (a fresh cache), \"sample s\" the sample() call (its compile, "
        "the draws of every setup chain at once, max(100, 2 x draws / chains) each, no tuning draws: they continue "
        "warm-up's chains); not run with a discrete variable.  A row per sampler, in the order run."
        + (f"  Cells: median [min, max] over seeds {seeds}, the failed ones left out." if len(args.seeds) > 1 else ""),
        "",
        header(),
    ]
    for name, by_sampler in results.items():
        for label, rows in by_sampler.items():
            lines.append(table_row(name, label, rows))
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--models", nargs="+", choices=list(MODELS), default=list(NEW_MODELS), metavar="MODEL",
        help=f"models to run, of: {', '.join(MODELS)} (default: {', '.join(NEW_MODELS)})")
    add("--seeds", type=int, nargs="+", default=[0], metavar="SEED",
        help="seeds, one run of every sampler each: L2HMC's training seed and pm.sample's random_seed "
             "(several: median [min, max] in the result file; default: 0)")
    add("--draws", type=int,
        help=f"draws per chain after tuning (default {DRAWS}, pm.sample's; --quick: {QUICK['draws']})")
    add("--tune", type=int, help=f"tuning draws per chain (default {TUNE}, pm.sample's; --quick: {QUICK['tune']})")
    add("--quick", action="store_true",
        help="smoke run: real_models.py's QUICK budget ({warmup_iterations} warm-up and {train_steps} training "
             "iterations x batch {batch_size}, {draws} draws after {tune} tuning draws), no training check"
             .format(**QUICK))
    add("--out", help=f"the markdown result file, written atomically at the end (default: docs/time_to_result.md; "
                      f"--quick: {QUICK_OUT}, so that a smoke run never replaces the measurement)")
    add(CHILD, action="store_true", help=argparse.SUPPRESS)  # internal: the second L2HMC run of one model and seed
    args = parser.parse_args()
    draws = args.draws or (QUICK["draws"] if args.quick else DRAWS)
    tune = args.tune if args.tune is not None else (QUICK["tune"] if args.quick else TUNE)
    out = args.out or (QUICK_OUT if args.quick else os.path.join(ROOT, "docs", "time_to_result.md"))

    if args.child_run:
        (name,), (seed,) = args.models, args.seeds
        row = guarded(run_l2hmc, name, seed, draws, tune, args.quick)
        print("RESULT " + json.dumps(row), flush=True)
        return

    load, started = os.getloadavg(), datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M")
    say(f"time to result: {', '.join(args.models)}; seeds {', '.join(map(str, args.seeds))}; 2 chains x {draws} "
        f"draws after {tune}; s to {TARGET_ESS} ESS extrapolates the sampling phase linearly; load average "
        f"{load[0]:.2f}; trained-sampler cache {os.environ[CACHE_ENV]}")
    print(header(), flush=True)
    results = {}
    for name in args.models:
        results[name] = {FIRST: [], SECOND: [], NUTS: [], MANY: []}
        for seed in args.seeds:
            for label, row in compare(name, seed, draws, tune, args.quick).items():
                results[name][label].append(row)
    text = report(results, args, draws, tune, load, started)
    write_result(out, text)
    print("\n" + text, end="")
    say(f"wrote {out}")


if __name__ == "__main__":
    main()
