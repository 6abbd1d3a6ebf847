"""Time to a usable sampler, cold and warm, split by phase.

Two runs as a user makes them, each in a fresh child process:

* ``scg``: ``L2HMCSampler(demo's target, n_steps=10, seed=0).train(train_steps=1)``, the demo's
  first call: warm-up, the training step's compile, one iteration and the trained-or-HMC
  selection (the 2-d strongly correlated Gaussian, a Theano function).
* ``schools``: ``l2hmc_theano.L2HMC(seed=0)`` on the non-centred eight schools, the cache of
  trained samplers off: warm-up, the budget's decision and pm.sample's step, ready to draw.

Phases: ``import l2hmc_theano``; "build" (the target's energy graph); the set-up call in all,
and within it warm-up (``warmup_info["seconds"]``: its iterations and the choice of T, with
any compile made inside it), training (iterations) and "other" (what is left: the start
check and the energy's compile before warm-up, the training step's compile, the selection's
runs).  The last column lists each compile the sampler records (``sampler.compile_seconds``),
wherever it happened.  "cold" is the first child
in an empty Theano compile directory (every C module built), "warm" a second child in the
same directory (graph optimisation and linking only).  Each target gets its own directory,
so the machine's own cache is neither used nor touched.  Writes ``docs/time_to_sampler.md``
(command, date, commit, machine) unless ``--out`` says otherwise.

    python benchmarks/compile_time.py                       # both targets, cold and warm
    python benchmarks/compile_time.py --targets schools --warm-only --out /tmp/t.md
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys, time, warnings
t0 = time.perf_counter()
import l2hmc_theano
times = {"import": time.perf_counter() - t0}
from l2hmc_theano import FunctionEnergy, L2HMC, L2HMCSampler
from l2hmc_theano.targets import eight_schools, scg_energy

warnings.simplefilter("ignore")
target = sys.argv[1]
start = time.perf_counter()
if target == "scg":
    energy = FunctionEnergy(scg_energy, 2, name="scg")
    times["build"] = time.perf_counter() - start
    sampler = L2HMCSampler(energy, n_steps=10, seed=0)
    start = time.perf_counter()
    sampler.train(train_steps=1, check=False, progressbar=False)
else:
    model = eight_schools(centred=False)
    times["build"] = time.perf_counter() - start
    start = time.perf_counter()
    with model:
        sampler = L2HMC(seed=0, cache=False, progressbar=False).sampler
times["set-up"] = time.perf_counter() - start
times["warm-up"] = sampler.warmup_info["seconds"]
times["training"] = (sampler.history or {}).get("seconds", 0.0)
times["compiles"] = dict(sampler.compile_seconds)
print("RESULT " + json.dumps(times))
"""


def run_child(target, compiledir):
    env = dict(os.environ)
    flags = env.get("THEANO_FLAGS", "")
    env["THEANO_FLAGS"] = ",".join(filter(None, [flags, f"compiledir={compiledir}"]))
    env["L2HMC_THEANO_CACHE"] = "off"
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, target], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"the {target} child failed:\n{out.stderr[-3000:]}")
    line = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")][-1]
    row = json.loads(line[len("RESULT "):])
    row["process"] = time.perf_counter() - start
    return row


def row_text(target, cache, row):
    compiles = row["compiles"]
    other = row["set-up"] - row["warm-up"] - row["training"]
    listed = ", ".join(f"{name} {s:.1f}" for name, s in compiles.items())
    usable = row["import"] + row["build"] + row["set-up"]
    return (f"| {target} | {cache} | {row['import']:.1f} | {row['build']:.1f} | {row['warm-up']:.1f} | "
            f"{row['training']:.1f} | {max(other, 0.0):.1f} | {row['set-up']:.1f} | **{usable:.1f}** | "
            f"{row['process']:.1f} | {listed} |")


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", choices=("scg", "schools"), default=["scg", "schools"],
                        help="scg: the demo's first train() call; schools: L2HMC() on the non-centred eight schools")
    parser.add_argument("--warm-only", action="store_true", help="leave the cold row out (its child fills the cache)")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "time_to_sampler.md"),
                        help="the markdown result file (default: docs/time_to_sampler.md)")
    args = parser.parse_args()
    started = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M")
    load = os.getloadavg()
    header = ("| target | Theano cache | import s | build s | warm-up s | training s | "
              "other s | set-up s | import + build + set-up s | child process s | compiles recorded (s) |\n"
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    print(header, flush=True)
    rows = []
    for target in args.targets:
        with tempfile.TemporaryDirectory(prefix="l2hmc-compiledir-") as compiledir:
            for cache in ("cold", "warm"):
                print(f"[{time.strftime('%H:%M:%S')}] {target}, {cache} Theano cache: running ...", file=sys.stderr,
                      flush=True)
                row = run_child(target, compiledir)
                if cache == "cold" and args.warm_only:
                    continue
                rows.append(row_text(target, cache, row))
                print(rows[-1], flush=True)
    text = "\n".join([
        "# Time to a usable sampler, cold and warm",
        "",
        f"Written by `{shlex.join(['python', 'benchmarks/compile_time.py'] + sys.argv[1:])}`.",
        "",
        f"- date: {started} (UTC); git commit: {git_commit()}",
        f"- machine: {platform.platform()}, os.cpu_count() = {os.cpu_count()}, load average at start "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; Python {platform.python_version()}",
        "- scg: `L2HMCSampler(demo target, n_steps=10, seed=0).train(train_steps=1)`; schools: "
        "`L2HMC(seed=0, cache=False)` on the non-centred eight schools (ready to draw). Seed 0, one run each.",
        "- cold: an empty Theano compile directory; warm: the same directory again, in a new process.",
        "",
        header,
        *rows,
        "",
    ])
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
