"""Measure Theano's BLAS choice for L2HMC's workload: SciPy's bundled OpenBLAS (default) vs others.

Theano reads ``blas__ldflags`` once, at import, so each setting runs in its own
process; the figures are printed side by side with the ratio to the default.
Workload: one L2HMC proposal (T = 10, networks on, batch 200) of a 50-d Gaussian
energy written as a batched Theano function, and one dense layer forward+backward.
The default (``l2hmc_theano._theano``) links the OpenBLAS in SciPy's wheel; "numpy" is
the empty ``blas__ldflags`` (``L2HMC_BLAS=numpy``: Dot22 and Gemm without C code).

    python benchmarks/blas_flags.py                          # default vs numpy
    python benchmarks/blas_flags.py --flags "-lopenblas"     # also a system library
"""
import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, time, numpy as np
import l2hmc_theano
from l2hmc_theano import L2HMCSampler
from l2hmc_theano._theano import theano, tt, change_flags
rng = np.random.default_rng(0)
dim, batch = 50, 200
scales = np.logspace(-1, 1, dim)
def energy(X):
    return 0.5 * (tt.sqr(X) / scales ** 2).sum(axis=1)
sampler = L2HMCSampler(energy, dim=dim, n_steps=10, step_size=0.05, hidden=(100, 100), seed=0)
x, v = rng.normal(size=(batch, dim)), rng.normal(size=(batch, dim))
t0 = time.perf_counter(); sampler.transition(x, v, 1); compile_s = time.perf_counter() - t0
def best(f, n):
    times = []
    for _ in range(n):
        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    return min(times)
d = rng.choice([-1.0, 1.0], size=batch)
proposal_s = best(lambda: sampler.transition(x, v, d), 30)
with change_flags(compute_test_value="off"):
    A = tt.matrix(); W = theano.shared(rng.normal(size=(512, 512)))
    loss = tt.nnet.relu(tt.dot(A, W)).sum()
    dense = theano.function([A], [loss, tt.grad(loss, W)])
a = rng.normal(size=(batch, 512))
dense_s = best(lambda: dense(a), 30)
print(json.dumps({"ldflags": theano.config.blas__ldflags, "compile_s": compile_s,
                  "proposal_ms": 1e3 * proposal_s, "dense_512_ms": 1e3 * dense_s}))
"""


def run(flags=None, blas=None):
    env = dict(os.environ)
    if flags is not None:
        quoted = f'"blas__ldflags={flags}"'  # Theano splits THEANO_FLAGS on commas, outside quotes
        env["THEANO_FLAGS"] = ",".join(filter(None, [env.get("THEANO_FLAGS", ""), quoted]))
    if blas is not None:
        env["L2HMC_BLAS"] = blas
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return {"ldflags": flags, "error": out.stderr.strip().splitlines()[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flags", nargs="*", default=[],
                        help="further blas__ldflags values to compare against the default (e.g. -lopenblas)")
    args = parser.parse_args()
    base = run()
    rows = [("default (SciPy's OpenBLAS)", base), ("numpy ('')", run(blas="numpy"))]
    rows += [(f, run(flags=f)) for f in args.flags]
    print(f"{'blas__ldflags':<28} {'compile s':>10} {'proposal ms':>12} {'ratio':>6} {'dense ms':>9} {'ratio':>6}")
    for name, r in rows:
        if "error" in r:
            print(f"{name:<28} failed: {r['error']}")
            continue
        print(f"{name:<28} {r['compile_s']:>10.1f} {r['proposal_ms']:>12.2f} "
              f"{r['proposal_ms'] / base['proposal_ms']:>6.2f} {r['dense_512_ms']:>9.2f} "
              f"{r['dense_512_ms'] / base['dense_512_ms']:>6.2f}")


if __name__ == "__main__":
    main()
