"""Where the time to a first result goes: Theano compiles, cold and warm (issue 14).

For each target, a child process times, in order: ``import l2hmc_theano``; building the
sampler (the model's energy graph); compiling warm-up's HMC step, the energy and its
gradient, and the training step (default settings, T = 10 as before warm-up picks T);
for a PyMC3 model also ``pm.sample``'s MH step (T = 10: a scan; and T = 4, written out, with
the networks and with their heads zeroed: HMC's leapfrog); and the run time of one training
iteration (batch 200, the best of 20).  "cold" is the first child in an empty Theano
compile directory (every C module built), "warm" a second child in the same directory
(only graph optimisation and linking).  Each child gets its own directory, so nothing
on the machine's own cache is touched or used.

    python benchmarks/compile_time.py                     # the demo's target and eight schools
    python benchmarks/compile_time.py --targets schools --warm-only
    python benchmarks/compile_time.py --blas bundled numpy   # both BLAS choices, side by side
    python benchmarks/compile_time.py --build parallel serial

``--blas``: ``bundled`` is the default (Theano's BLAS Ops linked to SciPy's OpenBLAS, see
``l2hmc_theano._theano``), ``numpy`` the empty ``blas__ldflags`` (``L2HMC_BLAS=numpy``).
``--build``: ``parallel`` is the default (missing C modules built on every core),
``serial`` Theano's one at a time (``L2HMC_PARALLEL_BUILD=0``).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import l2hmc_theano
import numpy as np
times = {"import": time.perf_counter() - t0}
from l2hmc_theano import FunctionEnergy, L2HMCSampler, ModelEnergy
from l2hmc_theano.targets import eight_schools, scg_energy
from l2hmc_theano.training import TrainingSettings, build_training_step

def timed(key, f):
    start = time.perf_counter()
    out = f()
    times[key] = time.perf_counter() - start
    return out

target = sys.argv[1]
energy = timed("build", lambda: FunctionEnergy(scg_energy, 2, name="scg") if target == "scg"
               else ModelEnergy(eight_schools(centred=False)))
sampler = L2HMCSampler(energy, seed=0)
timed("warm-up step", lambda: sampler._function("warmup_step", sampler._build_warmup_step))
timed("energy", lambda: sampler._function("energy_grad", sampler._build_energy_grad))
settings = TrainingSettings()
step = timed("training step", lambda: build_training_step(sampler, settings))
if target != "scg":
    timed("pm.sample step", lambda: sampler.compiled_mh_step(model_values=True, networks=True))
    # At the T warm-up picks on eight schools (3-4) the step is written out, not scanned.
    written_out = L2HMCSampler(energy, n_steps=4, seed=0)
    timed("pm.sample step T=4", lambda: written_out.compiled_mh_step(model_values=True))
    written_out.networks.zero_heads()
    timed("pm.sample step T=4 HMC", lambda: written_out.compiled_mh_step(model_values=True))
rng = np.random.default_rng(0)
B, dim, rows = settings.batch_size, sampler.dim, step.proposals_per_chain * settings.batch_size
args = (rng.normal(size=(B, dim)), rng.normal(size=(B, dim)), rng.normal(size=(rows, dim)),
        np.ones(rows), np.log(rng.uniform(size=B)), np.ones(rows))
best = np.inf
for _ in range(20):
    start = time.perf_counter()
    step(*args)
    best = min(best, time.perf_counter() - start)
times["ms per iteration"] = 1e3 * best
print("RESULT " + json.dumps(times))
"""

COLUMNS = ("import", "build", "warm-up step", "energy", "training step", "pm.sample step", "pm.sample step T=4",
           "pm.sample step T=4 HMC", "ms per iteration")


def run_child(target, compiledir, blas="bundled", build="parallel"):
    env = dict(os.environ)
    env["L2HMC_BLAS"] = blas
    env["L2HMC_PARALLEL_BUILD"] = "1" if build == "parallel" else "0"
    flags = env.get("THEANO_FLAGS", "")
    env["THEANO_FLAGS"] = ",".join(filter(None, [flags, f"compiledir={compiledir}"]))
    out = subprocess.run([sys.executable, "-c", CHILD, target], env=env, capture_output=True, text=True, check=True)
    line = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", choices=("scg", "schools"), default=["scg", "schools"],
                        help="scg: the demo's 2-d Gaussian (a Theano function); schools: non-centred eight schools")
    parser.add_argument("--warm-only", action="store_true", help="skip the cold row (fill the cache silently)")
    parser.add_argument("--blas", nargs="+", choices=("bundled", "numpy"), default=["bundled"],
                        help="BLAS choices to run (default: bundled, the package's default)")
    parser.add_argument("--build", nargs="+", choices=("parallel", "serial"), default=["parallel"],
                        help="C build choices to run (default: parallel, the package's default)")
    args = parser.parse_args()
    print("| target | BLAS | build | cache | " + " | ".join(f"{c} s" if c != "ms per iteration" else c for c in COLUMNS) + " |")
    print("|---|---|---|---|" + "---:|" * len(COLUMNS))
    for target in args.targets:
        for blas in args.blas:
            for build in args.build:
                with tempfile.TemporaryDirectory(prefix="l2hmc-compiledir-") as compiledir:
                    for cache in ("cold", "warm"):
                        row = run_child(target, compiledir, blas, build)
                        if cache == "cold" and args.warm_only:
                            continue
                        cells = [f"{row[c]:.1f}" if c in row else "" for c in COLUMNS]
                        print(f"| {target} | {blas} | {build} | {cache} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
