"""posteriordb's posteriors with nutpie (diagonal and low-rank mass matrix), for comparison with
``docs/posteriordb.md`` (L2HMC and PyMC3's NUTS on the same PyMC3 ports).

nutpie is never a dependency of l2hmc_theano: this script runs in a throw-away venv with today's
PyMC and nutpie, and imports the PyMC3 ports of ``benchmarks/posteriordb_models.py`` *unchanged*
through a compatibility shim (``pymc3`` -> pymc, ``theano`` -> pytensor, ``l2hmc_theano`` -> a
stub; see :func:`install_pymc3_shim` for what is adapted).  Build the venv and run:

    python3.12 -m venv /tmp/nutpie_bench/venv
    /tmp/nutpie_bench/venv/bin/pip install pymc==6.4.0 pytensor==3.3.8 nutpie==0.16.11 numba==0.68.0 \\
        arviz==1.3.0 numpy==2.5.5
    git clone https://github.com/stan-dev/posteriordb /tmp/pdb
    # docs/posteriordb_nutpie.md (about 8 minutes of runs, then 2 of --check-logp):
    /tmp/nutpie_bench/venv/bin/python benchmarks/posteriordb_nutpie.py --root /tmp/pdb --seeds 0 1 \\
        --time-limit 300 --cache-dir /tmp/nutpie_bench/cache_pdb --jsonl /tmp/nutpie_bench/posteriordb_nutpie.jsonl \\
        --check-logp --out docs/posteriordb_nutpie.md
    # one posterior, one sampler:
    /tmp/nutpie_bench/venv/bin/python benchmarks/posteriordb_nutpie.py --root /tmp/pdb \\
        --posteriors diamonds-diamonds --samplers nutpie_lowrank

(--check-logp runs the ports under the repo's own venv too, ``.venv/bin/python`` by default.)

For each posterior the model is compiled once (``nutpie.compile_pymc_model``, numba backend;
"compile s"), then for each sampler and seed ``nutpie.sample(compiled, chains=2, draws=1000,
tune=1000, seed=seed, cores=1, adaptation="diag" | "low_rank", save_warmup=False)``.

Columns: "worst z" = max over the reference's scalars of |mean - reference mean| / sqrt(MCSE^2 +
reference var / reference draws) (MCSE of the run's mean, by ArviZ; as benchmarks/posteriordb.py);
max rank R-hat and min bulk ESS over the free variables' scalars (model space); "ESS per 1k
gradients" = 1000 x min ESS / the sum of nutpie's n_steps (leapfrog steps) over the kept draws;
"x PyMC3 NUTS" = that over PyMC3 NUTS's figure in docs/posteriordb.md, "L2HMC / this" = L2HMC's
figure there over this one; "tail ESS per 1k gradients" the same for ArviZ's tail ESS (of the 5% and
95% quantiles), and "L2HMC / this, tail" L2HMC's over it; "s to 1000 ESS" = compile s + sample s x
1000 / min ESS (sample s includes tuning); divergences after tuning.  With several seeds a cell is
the median [min, max].  A run that raises or exceeds --time-limit is recorded as failed and the
benchmark goes on.

``--check-logp`` compares each port's log density under PyMC 6 (through the shim) with the same
port under PyMC3 (``--pymc3-python``, the repo's venv): at the model's initial point and three
jittered points (jittered in PyMC 6's unconstrained space), mapped to the constrained values and
from those to each library's own unconstrained point; the log density without Jacobians (the
posterior on the constrained space: must agree up to a constant) and with them (the same when
both use the same transforms).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYMC3_MODE = "--pymc3-logp" in sys.argv  # the helper run under the repo's PyMC3 venv (see check_logp)

sys.path.insert(0, HERE)
from _harness import nutpie_environment  # noqa: E402  (the standard library only, until a function needs NumPy)

# caches inside the throw-away venv (or --cache-dir), one thread everywhere (another benchmark may share the
# machine); the PyMC3 helper keeps PyMC3's own caches
nutpie_environment(sys.argv, caches=not PYMC3_MODE)

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import types  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

from _harness import (chosen_samplers, git_commit, leading_number, median_cell, table_rows,  # noqa: E402
                      write_result)

TARGET_ESS = 1000
SAMPLERS = {"nutpie_diag": "diag", "nutpie_lowrank": "low_rank"}
BASELINE = "docs/posteriordb.md"


def say(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# --------------------------------------------------------------------------- the PyMC3 -> PyMC 6 shim

SHIM_NOTES = []  # what the shim adapted while the ports were built (each note once)


def _note(text):
    if text not in SHIM_NOTES:
        SHIM_NOTES.append(text)


def install_pymc3_shim():
    """Put ``pymc3``, ``pymc3.distributions``, ``pymc3.distributions.transforms``, ``theano``,
    ``theano.tensor``, ``theano.tensor.slinalg``, ``theano.gradient`` and ``l2hmc_theano`` in
    sys.modules, backed by pymc / pytensor, so that posteriordb_models.py imports unchanged.

    Adapted (PyMC3 API -> PyMC 6):

    * every distribution class: ``testval=`` -> ``initval=``, ``sd=`` -> ``sigma=``;
    * ``Distribution.dist(...).logp(x)`` (PyMC3's elementwise log density) -> ``pm.logp(dist, x)``;
    * transforms: ``tr.ordered`` -> pymc's ``ordered``, ``tr.log`` -> ``log``, ``tr.Chain(list)``
      -> ``ChainedTransform(list)`` (the same order: the first is applied first going forward);
    * ``slinalg.Cholesky(lower=True, on_error="nan")`` -> pytensor's ``Cholesky(lower=True)``,
      which returns NaNs on a failed decomposition (on_error="nan"'s behaviour);
    * ``tt.*`` -> ``pytensor.tensor.*`` (``sqr`` -> ``square`` if absent), ``zero_grad`` ->
      pytensor's;
    * ``l2hmc_theano``: an empty stub (the ports import it only for Theano's flags).
    """
    import pymc
    import pytensor.gradient
    import pytensor.tensor as pt
    from pymc.distributions import transforms as ptr
    from pytensor.tensor.linalg import Cholesky

    def module(name, attrs=None, fallback=None):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs or {})
        if fallback is not None:
            def __getattr__(attr):
                value = getattr(fallback, attr)
                return value
            mod.__getattr__ = __getattr__
        sys.modules[name] = mod
        return mod

    # theano
    def cholesky(lower=True, on_error="raise"):
        if on_error != "nan":
            _note(f"slinalg.Cholesky(on_error={on_error!r}): pytensor's returns NaNs on failure")
        _note("slinalg.Cholesky(lower=True, on_error=\"nan\") -> pytensor.tensor.linalg.Cholesky(lower=True) "
              "(NaNs on a failed decomposition)")
        return Cholesky(lower=lower)

    slinalg = module("theano.tensor.slinalg", {"Cholesky": cholesky})
    tensor_attrs = {"slinalg": slinalg}
    if not hasattr(pt, "sqr"):
        tensor_attrs["sqr"] = pt.square
    tensor = module("theano.tensor", tensor_attrs, fallback=pt)
    gradient = module("theano.gradient", {"zero_grad": pytensor.gradient.zero_grad})
    module("theano", {"tensor": tensor, "gradient": gradient, "__version__": "shim"}, fallback=pytensor)

    # pymc3.distributions.transforms
    def chain(transform_list):
        _note("tr.Chain([tr.log, tr.ordered]) -> pymc ChainedTransform([log, ordered])")
        return ptr.ChainedTransform(list(transform_list))

    transforms = module("pymc3.distributions.transforms",
                        {"ordered": ptr.ordered, "log": ptr.log, "Chain": chain}, fallback=ptr)

    def translate(cls_name, kwargs):
        kwargs = dict(kwargs)
        if "testval" in kwargs:
            kwargs["initval"] = kwargs.pop("testval")
            _note("testval= -> initval=")
        if "sd" in kwargs:
            kwargs["sigma"] = kwargs.pop("sd")
            _note("sd= -> sigma=")
        if kwargs.get("transform") is ptr.ordered:
            _note("transform=tr.ordered -> pymc's ordered transform")
        return kwargs

    class DistWithLogp:
        """A PyMC 6 ``.dist`` variable with PyMC3's ``.logp(value)``."""

        def __init__(self, rv):
            self.rv = rv

        def logp(self, value):
            _note("Distribution.dist(...).logp(x) -> pm.logp(Distribution.dist(...), x)")
            return pymc.logp(self.rv, value)

        def __getattr__(self, attr):
            return getattr(self.rv, attr)

    class Wrapped:
        """A PyMC 6 distribution class called with PyMC3's keywords."""

        def __init__(self, cls):
            self.cls = cls
            self.__name__ = cls.__name__

        def __call__(self, name, *args, **kwargs):
            return self.cls(name, *args, **translate(self.cls.__name__, kwargs))

        def dist(self, *args, **kwargs):
            return DistWithLogp(self.cls.dist(*args, **translate(self.cls.__name__, kwargs)))

    wrapped = {}

    def pymc3_getattr(attr):
        value = getattr(pymc, attr)
        if isinstance(value, type) and issubclass(value, pymc.Distribution):
            return wrapped.setdefault(attr, Wrapped(value))
        return value

    distributions = module("pymc3.distributions", {"transforms": transforms}, fallback=pymc.distributions)
    pm3 = module("pymc3", {"distributions": distributions, "__version__": "shim"})
    pm3.__getattr__ = pymc3_getattr
    module("l2hmc_theano", {})


def import_ports():
    """posteriordb_models under PyMC 6 (through the shim) or, in the PyMC3 helper, as it is."""
    if not PYMC3_MODE:
        install_pymc3_shim()
    sys.path.insert(0, HERE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import posteriordb_models
    return posteriordb_models


# --------------------------------------------------------------------------- log density check

def pymc6_points(model, n_jitter, seed=0):
    """The model's initial point and ``n_jitter`` points jittered (normal, sd 0.5) in PyMC 6's
    unconstrained space, as {free variable name: constrained value} dicts, with PyMC 6's log density
    at each (with and without the Jacobians)."""
    ip = model.initial_point()
    rng = np.random.default_rng(seed)
    points = [ip] + [{k: v + 0.5 * rng.standard_normal(np.shape(v)) for k, v in ip.items()}
                     for _ in range(n_jitter)]
    outs = model.unobserved_value_vars
    constrain = model.compile_fn(outs, inputs=model.value_vars, point_fn=False, on_unused_input="ignore")
    logp_jac, logp_nojac = model.compile_logp(jacobian=True), model.compile_logp(jacobian=False)
    free = {rv.name for rv in model.free_RVs}
    rows = []
    for point in points:
        values = dict(zip([o.name for o in outs], constrain(**point)))
        rows.append({"point": {k: np.asarray(values[k]).tolist() for k in free},
                     "jac": float(logp_jac(point)), "nojac": float(logp_nojac(point))})
    return rows


def pymc3_logp_main(argv):
    """Under the repo's venv (PyMC3): read [{"name", "points": [{var: constrained value}]}] from stdin,
    print the same with PyMC3's "jac" and "nojac" log densities at each point."""
    ports = import_ports()
    import pymc3 as pm

    parser = argparse.ArgumentParser()
    parser.add_argument("--pymc3-logp", action="store_true")
    parser.add_argument("--root", required=True)
    args = parser.parse_args(argv)
    out = []
    for item in json.load(sys.stdin):
        name = item["name"]
        try:
            model = ports.POSTERIORS[name](ports.load_data(name, args.root))
            logp, nojac = model.logp, model.fn(model.logp_nojact)
            rows = []
            for values in item["points"]:
                values = {k: np.asarray(v, dtype=float) for k, v in values.items()}
                point = {}
                for var in model.free_RVs:
                    if pm.util.is_transformed_name(var.name):
                        orig = pm.util.get_untransformed_name(var.name)
                        transform = model.named_vars[orig].transformation
                        point[var.name] = np.asarray(transform.forward_val(values[orig], point=values), dtype=float)
                    else:
                        point[var.name] = values[var.name]
                    point[var.name] = point[var.name].reshape(model.test_point[var.name].shape)
                rows.append({"jac": float(logp(point)), "nojac": float(nojac(point))})
            out.append({"name": name, "rows": rows})
        except Exception as error:  # noqa: BLE001
            out.append({"name": name, "error": f"{type(error).__name__}: {str(error)[:200]}"})
    print("@@JSON@@" + json.dumps(out))


def check_logp(ports, names, root, pymc3_python, n_jitter=3):
    """{posterior: one line of the PyMC 6 vs PyMC3 log density comparison} (see the docstring)."""
    items, pymc6 = [], {}
    for name in names:
        try:
            model = ports.POSTERIORS[name](ports.load_data(name, root))
            pymc6[name] = pymc6_points(model, n_jitter)
            items.append({"name": name, "points": [r["point"] for r in pymc6[name]]})
        except Exception as error:  # noqa: BLE001
            pymc6[name] = f"PyMC 6 build failed: {type(error).__name__}: {str(error)[:160]}"
    proc = subprocess.run([pymc3_python, os.path.abspath(__file__), "--pymc3-logp", "--root", root],
                          input=json.dumps(items), capture_output=True, text=True, cwd=ROOT)
    marker = [line for line in proc.stdout.splitlines() if line.startswith("@@JSON@@")]
    if not marker:
        raise RuntimeError(f"the PyMC3 helper ({pymc3_python}) failed: {proc.stderr[-2000:]}")
    pymc3 = {item["name"]: item for item in json.loads(marker[0][len("@@JSON@@"):])}
    result = {}
    for name in names:
        if isinstance(pymc6[name], str):
            result[name] = {"ok": False, "text": pymc6[name]}
            continue
        if "error" in pymc3[name]:
            result[name] = {"ok": False, "text": "PyMC3 failed: " + pymc3[name]["error"]}
            continue
        text, ok = [], True
        for kind in ("nojac", "jac"):
            d = np.array([a[kind] - b[kind] for a, b in zip(pymc6[name], pymc3[name]["rows"])])
            scale = 1.0 + max(abs(a[kind]) for a in pymc6[name])
            spread = float(np.nanmax(d) - np.nanmin(d)) if np.all(np.isfinite(d)) else np.inf
            same = spread <= 1e-6 * scale
            if kind == "nojac":
                ok = same
            text.append(f"{'without' if kind == 'nojac' else 'with'} Jacobians: PyMC 6 - PyMC3 = "
                        + (f"{np.median(d):.6g} (constant to {spread:.1e})" if same else
                           "differs: " + ", ".join(f"{x:.6g}" for x in d)))
        result[name] = {"ok": ok, "text": "; ".join(text),
                        "pymc6": [r["nojac"] for r in pymc6[name]],
                        "pymc3": [r["nojac"] for r in pymc3[name]["rows"]]}
    return result


# --------------------------------------------------------------------------- runs

class TimeLimit(Exception):
    pass


def free_names(model):
    return [rv.name for rv in model.free_RVs]


def flat(dataset, names):
    return [float(x) for n in names for x in np.ravel(dataset[n].values)]


def worst_z(posterior, reference, to_posteriordb):
    """Max over the reference's scalars of |mean - reference mean| / sqrt(MCSE^2 + var / n_ref)
    (benchmarks/posteriordb.py's definition)."""
    import arviz as az

    draws = {k: v.values.reshape((-1,) + v.shape[2:]) for k, v in posterior.items()}
    ours = to_posteriordb(draws, set(reference))
    mcse_ds = az.mcse(posterior, method="mean")
    mcse = to_posteriordb({k: np.asarray(v.values)[None] for k, v in mcse_ds.items()}, set(reference))
    missing = set(reference) - set(ours)
    if missing:
        raise ValueError(f"the port has no {sorted(missing)[:3]}... of the reference")
    z = {k: abs(ours[k].mean() - reference[k].mean()) / np.sqrt(float(mcse[k][0]) ** 2 + reference[k].var()
                                                                / len(reference[k])) for k in ours}
    at = max(z, key=z.get)
    return float(z[at]), at


def _alarm(seconds, what):
    def handler(signum, frame):
        raise TimeLimit(f"{what} exceeded --time-limit {seconds:g} s")
    signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def compile_model(model, time_limit):
    import nutpie

    start = time.perf_counter()
    if time_limit:
        _alarm(time_limit, "compile")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = nutpie.compile_pymc_model(model)
    finally:
        if time_limit:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return compiled, time.perf_counter() - start


def get_group(tree, group):
    try:
        return tree[group].to_dataset()  # xarray DataTree
    except AttributeError:
        return getattr(tree, group)


def sample(compiled, adaptation, seed, draws, tune, time_limit, label):
    """nutpie.sample in the background, polled: aborted past ``time_limit`` s, a line every minute."""
    import nutpie

    start = time.perf_counter()
    sampler = nutpie.sample(compiled, chains=2, draws=draws, tune=tune, seed=seed, cores=1,
                            adaptation=adaptation, progress_bar=False, save_warmup=False, blocking=False)
    last = start
    while True:
        try:  # wait(timeout) raises TimeoutError while the chains run (as does is_finished)
            trace = sampler.wait(timeout=1.0)
            break
        except TimeoutError:
            pass
        now = time.perf_counter()
        if time_limit and now - start > time_limit:
            sampler.cancel()
            raise TimeLimit(f"sampling exceeded --time-limit {time_limit:g} s")
        if now - last >= 60:
            say(f"  {label}: still sampling, {now - start:.0f} s")
            last = now
    return trace, time.perf_counter() - start


def measure(model, trace, reference, to_posteriordb, compile_s, sample_s, draws):
    import arviz as az

    posterior, stats = get_group(trace, "posterior"), get_group(trace, "sample_stats")
    names = free_names(model)
    free = posterior[names]
    ess_ds = az.ess(free, method="bulk")
    ess_all = [(n, float(x)) for n in names for x in np.ravel(ess_ds[n].values)]
    min_at, ess = min(ess_all, key=lambda t: t[1])
    tail = min(flat(az.ess(free, method="tail"), names))
    grads = int(stats["n_steps"].values.sum())
    z, z_at = worst_z(posterior, reference, to_posteriordb)
    return {
        "compile_s": compile_s, "sample_s": sample_s, "min_ess": ess, "min_at": min_at, "grads": grads,
        "steps_per_draw": grads / (2 * draws), "ess_per_kgrad": 1e3 * ess / grads,
        "tail_per_kgrad": 1e3 * tail / grads,
        "max_rhat": max(flat(az.rhat(free, method="rank"), names)),
        "divergences": int(stats["diverging"].values.sum()),
        "s_to_target": compile_s + sample_s * TARGET_ESS / ess if ess > 0 else float("inf"),
        "worst_z": z, "worst_z_at": z_at,
    }


def run_posterior(ports, name, samplers, seeds, args, done):
    """The rows of one posterior: {sampler: {seed: row}}; ``done`` holds rows to reuse (--resume)."""
    rows = {s: {} for s in samplers}
    todo = [(s, seed) for s in samplers for seed in seeds if (name, s, seed) not in done]
    for s in samplers:
        for seed in seeds:
            if (name, s, seed) in done:
                rows[s][seed] = done[(name, s, seed)]
    if not todo:
        return rows
    try:
        data, reference = ports.load(name, args.root)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ports.POSTERIORS[name](data)
        compiled, compile_s = compile_model(model, args.time_limit)
        say(f"{name}: compiled in {compile_s:.1f} s ({len(free_names(model))} free variables, "
            f"{sum(int(np.prod(model.initial_point()[v.name].shape)) for v in model.value_vars)} dims)")
    except Exception as error:  # noqa: BLE001 - one posterior's failure is a result, not the run's end
        traceback.print_exc()
        failed = {"failed": f"build/compile: {type(error).__name__}: {str(error)[:160]}"}
        for s, seed in todo:
            rows[s][seed] = dict(failed, posterior=name, sampler=s, seed=seed)
            say(f"{name} {s} seed {seed}: {failed['failed']}")
            record(args, rows[s][seed])
        return rows
    for s, seed in todo:
        label = f"{name} {s} seed {seed}"
        try:
            trace, sample_s = sample(compiled, SAMPLERS[s], seed, args.draws, args.tune, args.time_limit, label)
            row = measure(model, trace, reference, ports.to_posteriordb, compile_s, sample_s, args.draws)
            say(f"{label}: worst z {row['worst_z']:.2f} ({row['worst_z_at']}), R-hat {row['max_rhat']:.3f}, "
                f"min ESS {row['min_ess']:.0f} ({row['min_at']}), {row['ess_per_kgrad']:.3g} ESS per 1k gradients "
                f"({row['steps_per_draw']:.1f} steps/draw), {row['s_to_target']:.3g} s to {TARGET_ESS} ESS, "
                f"{row['divergences']} divergences (compile {compile_s:.1f} s, sample {sample_s:.1f} s)")
        except Exception as error:  # noqa: BLE001
            if not isinstance(error, TimeLimit):
                traceback.print_exc()
            row = {"failed": f"{type(error).__name__}: {str(error)[:160]}"}
            say(f"{label}: failed: {row['failed']}")
        row.update(posterior=name, sampler=s, seed=seed)
        rows[s][seed] = row
        record(args, row)
    return rows


def record(args, row):
    if args.jsonl:
        with open(args.jsonl, "a") as f:
            f.write(json.dumps(row) + "\n")


def load_done(path):
    done = {}
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    done[(row["posterior"], row["sampler"], row["seed"])] = row
    return done


# --------------------------------------------------------------------------- the committed baseline

def git(*argv):
    try:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""


def read_baseline():
    """{posterior: {"l2hmc"|"nuts": {column: median}}} from the committed docs/posteriordb.md, with
    (commit that last changed it, the commit its header says it was measured at)."""
    text = git("show", f"HEAD:{BASELINE}")
    changed = git("log", "-1", "--format=%h", "HEAD", "--", BASELINE).strip() or "unknown"
    measured = re.search(r"git commit: (\S+)", text)
    keys = {"worst z": "worst_z", "max R-hat": "max_rhat", "ESS per 1k gradients": "ess_per_kgrad",
            "tail ESS per 1k gradients": "tail_per_kgrad", "s to 1000 ESS": "s_to_target"}
    out = {}
    for row in table_rows(text, ("posterior", "sampler")):
        if row["sampler"] in ("l2hmc", "nuts"):
            out.setdefault(row["posterior"], {})[row["sampler"]] = {
                key: leading_number(row[column]) for column, key in keys.items() if column in row}
    return out, changed, measured.group(1) if measured else "unknown"


# --------------------------------------------------------------------------- the result file

def ok_rows(rows):
    return [r for r in rows if "failed" not in r]


def median_of(rows, key):
    values = [r[key] for r in ok_rows(rows)]
    return float(np.median(values)) if values else None


def table(results, samplers, baseline):
    lines = ["| posterior | sampler | worst z | max R-hat | min ESS | ESS per 1k gradients | x PyMC3 NUTS | "
             "L2HMC / this | tail ESS per 1k gradients | L2HMC / this, tail | s to 1000 ESS | compile s | sample s | "
             "steps per draw | divergences | notes |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, by_sampler in results.items():
        base = baseline.get(name, {})
        for s in samplers:
            rows = list(by_sampler.get(s, {}).values())
            mine = median_of(rows, "ess_per_kgrad")
            nuts = (base.get("nuts") or {}).get("ess_per_kgrad")
            l2hmc = (base.get("l2hmc") or {}).get("ess_per_kgrad")
            vs_nuts = f"{mine / nuts:.3g}" if mine and nuts else "-"
            vs_l2hmc = f"{l2hmc / mine:.3g}" if mine and l2hmc else "-"
            notes = sorted({r["failed"] for r in rows if "failed" in r})
            cells = [median_cell(rows, key, fmt) for key, fmt in (("worst_z", ".2f"), ("max_rhat", ".3f"),
                                                                   ("min_ess", ".0f"), ("ess_per_kgrad", ".3g"))]
            cells += [vs_nuts, vs_l2hmc, median_cell(rows, "tail_per_kgrad", ".3g")]
            mine_tail, l2hmc_tail = median_of(rows, "tail_per_kgrad"), (base.get("l2hmc") or {}).get("tail_per_kgrad")
            cells.append(f"{l2hmc_tail / mine_tail:.3g}" if mine_tail and l2hmc_tail else "-")
            cells += [median_cell(rows, key, fmt) for key, fmt in (("s_to_target", ".3g"), ("compile_s", ".1f"),
                                                                   ("sample_s", ".1f"), ("steps_per_draw", ".1f"),
                                                                   ("divergences", ".0f"))]
            lines.append(f"| {name} | {s} | " + " | ".join(cells) + f" | {'; '.join(notes)} |")
    return lines


def ratio_line(label, ratios):
    if not ratios:
        return f"- {label}: no posterior has both."
    v = np.array(list(ratios.values()))
    lo, hi = min(ratios, key=ratios.get), max(ratios, key=ratios.get)
    return (f"- {label} over {len(ratios)} posteriors: median {np.median(v):.3g}x, range {v.min():.3g}x "
            f"({lo}) .. {v.max():.3g}x ({hi}).")


def summary(results, baseline):
    lines = []

    def figure(name, by_sampler, key, column):
        if key in ("nuts", "l2hmc"):
            return (baseline.get(name, {}).get(key) or {}).get(column)
        return median_of(list(by_sampler.get(key, {}).values()), column)

    def ratios(num, den, column="ess_per_kgrad"):
        """{posterior: num's figure / den's}; column "low" is the smaller of bulk and tail ESS per gradient."""
        out = {}
        for name, by_sampler in results.items():
            values = {}
            for key in (num, den):
                if column == "low":
                    both = [figure(name, by_sampler, key, c) for c in ("ess_per_kgrad", "tail_per_kgrad")]
                    values[key] = min(both) if all(both) else None
                else:
                    values[key] = figure(name, by_sampler, key, column)
            if values[num] and values[den]:
                out[name] = values[num] / values[den]
        return out

    lines.append(ratio_line("(a) nutpie low-rank / PyMC3 NUTS, min ESS per gradient",
                            ratios("nutpie_lowrank", "nuts")))
    lines.append(ratio_line("(b) nutpie diag / PyMC3 NUTS, min ESS per gradient", ratios("nutpie_diag", "nuts")))
    lines.append(ratio_line("(c) L2HMC / nutpie low-rank, min ESS per gradient", ratios("l2hmc", "nutpie_lowrank")))
    r = ratios("l2hmc", "nutpie_lowrank")
    below = [n for n, v in sorted(r.items(), key=lambda t: t[1]) if v < 1]
    for label, column in (("tail ESS", "tail_per_kgrad"), ("min of bulk and tail ESS", "low")):
        lines.append(ratio_line(f"(a) nutpie low-rank / PyMC3 NUTS, {label} per gradient",
                                ratios("nutpie_lowrank", "nuts", column)))
        lines.append(ratio_line(f"(c) L2HMC / nutpie low-rank, {label} per gradient",
                                ratios("l2hmc", "nutpie_lowrank", column)))
    lines.append(f"- L2HMC below nutpie low-rank per gradient: "
                 + (", ".join(f"{n} ({r[n]:.2f}x)" for n in below) or "none") + ".")
    # seconds to 1000 ESS, compile / setup included: nutpie low-rank / L2HMC (> 1: L2HMC sooner)
    t = {}
    for name, by_sampler in results.items():
        mine = median_of(list(by_sampler.get("nutpie_lowrank", {}).values()), "s_to_target")
        theirs = (baseline.get(name, {}).get("l2hmc") or {}).get("s_to_target")
        if mine and theirs:
            t[name] = mine / theirs
    lines.append(ratio_line("(d) seconds to 1000 ESS with compile / setup: nutpie low-rank / L2HMC "
                            "(> 1: L2HMC sooner)", t))
    for s in ("nutpie_lowrank", "nutpie_diag"):
        wrong = []
        for name, by_sampler in results.items():
            rows = list(by_sampler.get(s, {}).values())
            if not rows:
                continue
            bad = [r for r in rows if "failed" in r or r["worst_z"] > 5 or r["max_rhat"] > 1.01]
            if bad:
                why = sorted({"failed" if "failed" in r else f"z {r['worst_z']:.1f}, R-hat {r['max_rhat']:.3f}"
                              for r in bad})
                wrong.append(f"{name} ({'; '.join(why)})")
        lines.append(f"- {s} wrong (worst z > 5 or R-hat > 1.01 in a seed, or failed): "
                     f"{', '.join(wrong) or 'none'}.")
    return lines


def versions():
    import importlib.metadata as md

    out = [f"Python {platform.python_version()}"]
    for pkg in ("pymc", "pytensor", "nutpie", "numba", "numpy", "arviz", "arviz-stats"):
        try:
            out.append(f"{pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            pass
    return ", ".join(out)


def report(results, samplers, args, started, load_avg, baseline_info, logp_checks, complete):
    baseline, changed, measured = baseline_info
    ports_changed = git("status", "--porcelain", "benchmarks/posteriordb_models.py").strip()
    ports_state = "modified in the working tree" if ports_changed else "unchanged from HEAD"
    python = os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(ROOT) else sys.executable
    lines = ["# posteriordb: nutpie (diagonal and low-rank mass matrix) on the PyMC3 ports",
             "",
             f"- command: `{python} {' '.join(shlex.quote(a) for a in ['benchmarks/posteriordb_nutpie.py', *sys.argv[1:]])}`",
             f"- date: {started:%Y-%m-%d %H:%M} UTC; seeds {', '.join(map(str, args.seeds))}; 2 chains x "
             f"{args.draws} draws, tune {args.tune}, cores=1; per-run time limit {args.time_limit:g} s; compile "
             f"cache {os.environ.get('NUMBA_CACHE_DIR', '?')} (compile s: a port compiled once for all its runs, in "
             f"the table's order, so later ports reuse the cached numba code of operations compiled before)"
             + ("" if complete else "; **partial: the run had not finished when this was written**"),
             f"- git commit: {git_commit()} (benchmarks/posteriordb_models.py {ports_state}), the ports imported "
             f"unchanged through this script's PyMC3 -> PyMC 6 shim",
             f"- machine: {platform.platform()}, {platform.processor() or platform.machine()}, os.cpu_count() = "
             f"{os.cpu_count()}, load average at start {load_avg[0]:.2f} / {load_avg[1]:.2f} / {load_avg[2]:.2f} "
             f"(1 / 5 / 15 min); {versions()}",
             f"- PyMC3 NUTS and L2HMC figures: the committed {BASELINE} (HEAD's version, last changed in "
             f"{changed}; measured at {measured}; PyMC3 3.11 / Theano, NUTS seed 0, L2HMC seeds 0-1), "
             f"their median cells",
             "",
             *summary(results, baseline),
             "",
             *table(results, samplers, baseline),
             "",
             "Columns: see the docstring of benchmarks/posteriordb_nutpie.py."]
    if SHIM_NOTES:
        lines += ["", "PyMC3 -> PyMC 6 adaptations the shim made while building the ports:", ""]
        lines += [f"- {n}" for n in SHIM_NOTES]
    if logp_checks:
        bad = [n for n, c in logp_checks.items() if not c["ok"]]
        lines += ["", f"Log density, PyMC 6 (shim) against PyMC3 (`{args.pymc3_python}`), at the initial point and "
                  f"3 jittered points: {len(logp_checks) - len(bad)} of {len(logp_checks)} agree up to a constant "
                  f"without Jacobians" + (f"; differ: {', '.join(bad)}" if bad else "") + ".", ""]
        lines += [f"- {n}: {c['text']}" for n, c in logp_checks.items()]
    text = "\n".join(lines) + "\n"
    if args.out:
        write_result(args.out, text)
    return text


# --------------------------------------------------------------------------- main

def main(argv=None):
    if PYMC3_MODE:
        return pymc3_logp_main(sys.argv[1:] if argv is None else argv)
    ports = import_ports()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]) + "\n\nposteriors: "
                                     + ", ".join(ports.POSTERIORS))
    parser.add_argument("--root", default=os.environ.get("POSTERIORDB"), required="POSTERIORDB" not in os.environ,
                        help="a posteriordb checkout (the directory holding posterior_database/; default: "
                        "$POSTERIORDB)")
    parser.add_argument("--posteriors", nargs="+", choices=list(ports.POSTERIORS), default=list(ports.POSTERIORS),
                        metavar="NAME", help="which posteriors (default: all of posteriordb_models.POSTERIORS)")
    parser.add_argument("--samplers", default="nutpie_diag,nutpie_lowrank",
                        help="comma-separated: nutpie_diag (adaptation='diag'), nutpie_lowrank "
                        "(adaptation='low_rank') (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="nutpie seeds (default: 0)")
    parser.add_argument("--draws", type=int, default=1000, help="draws per chain, 2 chains (default: %(default)s)")
    parser.add_argument("--tune", type=int, default=1000, help="tuning steps per chain (default: %(default)s)")
    parser.add_argument("--time-limit", type=float, default=600,
                        help="seconds allowed for one compile and for one run's sampling; past it the run is aborted "
                        "and recorded as failed (0: no limit; default: %(default)s)")
    parser.add_argument("--out", default=None,
                        help="write the results (markdown, atomically, after every posterior) here, e.g. "
                        "docs/posteriordb_nutpie.md (relative to the repo)")
    parser.add_argument("--jsonl", default=None,
                        help="append every run's row (JSON, one a line) to this file, e.g. outside the repo")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the rows already in --jsonl for the same posterior, sampler and seed")
    parser.add_argument("--check-logp", action="store_true",
                        help="after the runs, compare each chosen port's log density under PyMC 6 with PyMC3's "
                        "(needs --pymc3-python); the result goes into the output file")
    parser.add_argument("--pymc3-python", default=os.path.join(ROOT, ".venv", "bin", "python"),
                        help="a Python with PyMC3 and l2hmc_theano, for --check-logp (default: %(default)s)")
    parser.add_argument("--cache-dir", default=os.path.join(sys.prefix, "caches"),
                        help="PyTensor's compiledir and numba's cache go here (unless PYTENSOR_FLAGS / NUMBA_CACHE_DIR "
                        "are set); a fresh directory makes \"compile s\" a first compile (default: %(default)s)")
    parser.add_argument("--pymc3-logp", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    samplers = chosen_samplers(parser, args.samplers, SAMPLERS)
    if not os.path.isdir(os.path.join(args.root, "posterior_database")):
        parser.error(f"--root {args.root!r} has no posterior_database/ directory: pass a posteriordb checkout")
    if args.resume and not args.jsonl:
        parser.error("--resume needs --jsonl")

    load_avg = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    baseline_info = read_baseline()
    logp_checks = {}
    done = load_done(args.jsonl) if args.resume else {}
    if args.jsonl and not args.resume and os.path.exists(args.jsonl):
        os.unlink(args.jsonl)
    results = {}
    for i, name in enumerate(args.posteriors):
        say(f"[{i + 1}/{len(args.posteriors)}] {name}")
        results[name] = run_posterior(ports, name, samplers, args.seeds, args, done)
        if args.out:
            report(results, samplers, args, started, load_avg, baseline_info, logp_checks, complete=False)
    if args.check_logp:  # after the runs, so that it does not warm the compile cache before them
        say(f"checking the log densities of {len(args.posteriors)} ports against PyMC3 ({args.pymc3_python})")
        try:
            logp_checks = check_logp(ports, args.posteriors, args.root, args.pymc3_python)
        except Exception as error:  # noqa: BLE001
            traceback.print_exc()
            logp_checks = {"(all)": {"ok": False, "text": f"the check failed: {type(error).__name__}: {error}"}}
        for name, c in logp_checks.items():
            say(f"logp {name}: {'ok' if c['ok'] else 'DIFFERS'}: {c['text']}")
    text = report(results, samplers, args, started, load_avg, baseline_info, logp_checks, complete=True)
    print(text, flush=True)


if __name__ == "__main__":
    main()
