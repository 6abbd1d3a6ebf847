"""L2HMC vs NUTS on real PyMC3 models, both with their defaults: ESS per gradient and per second.

Protocol, for each model:

1. ``l2hmc_theano.train(model, seed=...)`` with every default: warm-up (step size and a
   diagonal preconditioner adapted on 200 chains of HMC), then network training until the
   expected squared jump stops improving (at most 5000 iterations).  "setup s" is its wall
   time, compiles included; "warm-up s" and "train s" are the two loops alone.
2. Sample with pm.sample(step=L2HMC(sampler=trained)) and with pm.NUTS() (PyMC3's
   default diagonal mass-matrix and step-size adaptation), each with the same
   draws, tune, chains=2, cores=1 and random_seed.  Both steps are built and their
   Theano functions compiled before the clock starts; "sample s" is the wall time of
   the pm.sample call (tuning and draws).  L2HMC adapts nothing in pm.sample: a chain's
   first tuning draw starts from a training chain, and its later tuning draws are free.
3. Over the post-tuning draws: min ESS, the smallest of ArviZ's bulk and tail ESS over
   every scalar in the posterior (deterministics included), and which one it is (bulk ESS
   alone rewards antithetic moves, which help means but not quantiles; the tail ESS does
   not); gradient evaluations =
   sum of the n_steps sample stat (PyMC3's tree_size: T per draw for L2HMC, the
   leapfrog count for NUTS; both samplers also take one gradient at each draw's
   start, not counted); min ESS per 1000 gradients and per second of sampling;
   divergences; mean acceptance probability; max r_hat; for the models with known moments
   (funnels: v ~ N(0, 3); banana; eight schools' mu and tau, by quadrature), "moment z",
   the largest |estimate - exact| / MCSE of those means and sds (ArviZ's mcse; above 3 is a miss); for funnels and centred eight
   schools (in the notes), each sampler's share of draws, acceptance and divergences by
   region of the scale (v, tau) at the draw a transition started from: the regions are v's
   exact quintiles for funnels (20% of the draws each), both samplers' pooled quintiles of
   tau.  "total s" adds L2HMC's setup to its sampling; "s to 1000 ESS" is setup + sample
   s x 1000 / min ESS (for NUTS, whose tuning is inside sample s, that scales its tuning
   too: it flatters L2HMC a little).

4. The many-chain row: ``l2hmc_theano.sample`` continues the 200 training chains for
   500 draws each (no tuning, sampling only in "sample s"), against ``pm.sample(NUTS,
   chains=2, cores=2)`` with the draws and tuning above; the ratios compare their min ESS
   per second of sampling, and L2HMC's min ESS over its setup + sampling seconds against
   the same NUTS figure.

Models: eight schools centred and non-centred; radon: varying intercepts with partial
pooling and a floor covariate on the real Minnesota radon data (Gelman & Hill: 919
houses in 85 counties, read from the srrs2.dat that pymc3's wheel ships; see
models.radon); a logistic regression on a 500 x 10 synthetic design; the paper's 50-d
ill-conditioned Gaussian (variances 1e-2..1e2) as a PyMC3 model; Neal's funnel in 10 and 50
dimensions and a 2-d banana (Haario et al.'s twisted Gaussian; models.funnel, models.banana).  Data are fixed;
--seeds sets the training and sampling seeds (several: a median-and-range summary).  Timings are wall-clock and noisy on a shared
machine.

    python benchmarks/real_models.py                          # full run
    python benchmarks/real_models.py --quick                  # smoke run (compiles dominate)
    python benchmarks/real_models.py --models radon logistic_regression --out real_models.md
"""
import argparse
import time

import numpy as np
from scipy import stats

import l2hmc_theano  # first: it sets Theano's flags before pymc3
from l2hmc_theano import L2HMC

import arviz as az  # noqa: E402
import pymc3 as pm  # noqa: E402
from models import banana, eight_schools, eight_schools_moments, funnel, logistic_regression, radon  # noqa: E402
from l2hmc_theano.targets import ill_conditioned_gaussian  # noqa: E402
from l2hmc_theano.diagnostics import acceptance_by_region, idata_transitions  # noqa: E402
from l2hmc_theano.persistence import atomic_write  # noqa: E402
from l2hmc_theano.selection import describe as describe_selection  # noqa: E402
from l2hmc_theano.warmup import describe  # noqa: E402

DRAWS, TUNE = 2000, 1000
#: Draws per chain of the many-chain row (the training chains, continued).
MANY_DRAWS = 500
QUICK = dict(train_steps=100, batch_size=32, warmup_iterations=100, draws=200, tune=100, many_draws=50)
#: The many-chain row (l2hmc_theano.sample on the training chains) and NUTS on 2 cores, its baseline.
MANY, NUTS2 = "L2HMC many-chain", "NUTS 2 cores"


MODELS = {
    "eight_schools_centred": lambda: eight_schools(centred=True),
    "eight_schools_noncentred": lambda: eight_schools(centred=False),
    "radon": radon,
    "logistic_regression": logistic_regression,
    "icg50": ill_conditioned_gaussian,
    "funnel10": lambda: funnel(10),
    "funnel50": lambda: funnel(50),
    "banana": banana,
}

#: Exact posterior (mean, sd) of scalars of the models that have them: the "moment z" column is the
#: largest |estimate - exact| / MCSE over these means and sds (ArviZ's mcse; |z| > 3 is a miss).
EXACT_MOMENTS = {
    "funnel10": {"v": (0.0, 3.0)},
    "funnel50": {"v": (0.0, 3.0)},
    "banana": {"x1": (0.0, 10.0), "x2": (0.0, np.sqrt(19.0))},
}
EXACT_MOMENTS["eight_schools_centred"] = EXACT_MOMENTS["eight_schools_noncentred"] = eight_schools_moments()

#: The scalar whose quintiles split the draws into regions for "acceptance by region" (the
#: scale of a funnel or of a centred hierarchy: where a constant step size fails).
REGION_VARS = {"funnel10": "v", "funnel50": "v", "eight_schools_centred": "tau"}
#: The regions' edges where the marginal is known: v ~ N(0, 3)'s exact quintiles (each region
#: should hold 20% of the draws).  Other models: the quintiles of both samplers' draws pooled.
EXACT_QUINTILES = {name: 3.0 * stats.norm.ppf([0.2, 0.4, 0.6, 0.8]) for name in ("funnel10", "funnel50")}


def train_l2hmc(model, seed, check, quick):
    """A sampler trained with the defaults (``QUICK``'s budget with ``quick``), and its setup seconds."""
    budget = {k: QUICK[k] for k in ("train_steps", "batch_size", "warmup_iterations")} if quick else {}
    start = time.perf_counter()
    sampler = l2hmc_theano.train(model, seed=seed, progressbar=False, check=check, **budget)
    return sampler, time.perf_counter() - start


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


def min_ess(idata, method="bulk"):
    """(name, ESS) of the scalar with the smallest ESS of ArviZ's ``method`` ("bulk" or "tail").
    A scalar that never moves in some chain counts as ESS 0 (ArviZ would report the number
    of draws)."""
    ess = dict(flat_scalars(az.ess(idata, method=method)))
    moves = dict(flat_scalars((idata.posterior.diff("draw") != 0).any("draw").all("chain")))
    return min(((name, value if moves[name] else 0.0) for name, value in ess.items()),
               key=lambda item: item[1])


def moment_z(idata, exact):
    """max |estimate - exact| / MCSE over the means and sds in ``exact`` {name: (mean, sd)}; nan if none."""
    if not exact:
        return float("nan")
    names = list(exact)
    post = idata.posterior[names]
    mean, sd = post.mean(("chain", "draw")), post.std(("chain", "draw"))
    se_mean, se_sd = az.mcse(post, method="mean"), az.mcse(post, method="sd")
    return float(max(max(abs(float(mean[n]) - m) / float(se_mean[n]), abs(float(sd[n]) - d) / float(se_sd[n]))
                     for n, (m, d) in exact.items()))


def run_sampler(model, step, draws, tune, seed, exact=None, region_var=None, cores=1):
    """Sample with ``step``; return the row of metrics (a dict) for the table (with ``exact``
    {name: (mean, sd)}: the moments' :func:`moment_z`; with ``region_var``, each transition's
    start, acceptance and divergence, :func:`~l2hmc_theano.diagnostics.idata_transitions`, for
    :func:`describe_regions`)."""
    with model:
        start = time.perf_counter()
        idata = pm.sample(step=step, draws=draws, tune=tune, chains=2, cores=cores, random_seed=seed,
                          return_inferencedata=True, compute_convergence_checks=False, progressbar=False)
        seconds = time.perf_counter() - start
    return measure(idata, seconds, exact, region_var)


def run_many_chains(model, sampler, draws, seed, exact=None):
    """``l2hmc_theano.sample`` continuing the sampler's training chains for ``draws`` draws each
    (no tuning: they sit in the posterior); the same row of metrics.  Without the R-hat check, as
    NUTS's runs (``compute_convergence_checks=False`` on both)."""
    import warnings

    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        idata = l2hmc_theano.sample(draws=draws, chains=len(sampler.history["chains"]), sampler=sampler,
                                    random_seed=seed, progressbar=False, compute_convergence_checks=False)
        seconds = time.perf_counter() - start
    return measure(idata, seconds, exact)


def measure(idata, seconds, exact=None, region_var=None):
    """The row of metrics of one run's ``idata`` that took ``seconds``."""
    stats = idata.sample_stats
    (bulk_name, bulk), (tail_name, tail) = min_ess(idata, "bulk"), min_ess(idata, "tail")
    min_name, smallest = (bulk_name, bulk) if bulk <= tail else (tail_name + " (tail)", tail)
    grads = int(stats["n_steps"].values.sum())  # pymc3's tree_size, renamed by ArviZ
    accept = stats["accept"] if "accept" in stats else stats["acceptance_rate"]  # L2HMC, NUTS
    return {
        "min_ess": smallest,
        "min_bulk": bulk,
        "min_tail": tail,
        "min_param": min_name,
        "grads": grads,
        "ess_per_kgrad": 1e3 * smallest / grads,
        "ess_per_s": smallest / seconds,
        "divergences": int(stats["diverging"].values.sum()),
        "accept": float(accept.mean()),
        "max_rhat": float(np.max([value for _, value in flat_scalars(az.rhat(idata))])),  # nan if stuck
        "seconds": seconds,
        "moment_z": moment_z(idata, exact),
        "transitions": idata_transitions(idata, region_var) if region_var else None,
    }


def describe_regions(var, rows, edges=None):
    """One line: each sampler's share of draws, acceptance and divergences in the regions of
    ``var`` split at ``edges`` (default: the quintiles of both samplers' draws pooled); rows
    without transitions (the many-chain and 2-core rows) are left out."""
    rows = {label: r for label, r in rows.items() if r.get("transitions") is not None}
    if edges is None:
        pooled = np.concatenate([r["transitions"][0].ravel() for r in rows.values()])
        edges, source = np.quantile(pooled, [0.2, 0.4, 0.6, 0.8]), "both samplers' quintiles"
    else:
        source = "exact quintiles"

    def one(label, transitions):
        regions = acceptance_by_region(*transitions, edges=edges)

        def column(key, scale, fmt):
            return "/".join(format(scale * r[key], fmt) for r in regions)

        return (f"{label} share % {column('share', 100, '.0f')}, acceptance {column('accept', 1, '.2f')}, "
                f"divergent % {column('diverging', 100, '.1f')}")

    return (f"by region of {var}, lowest first ({source}: {'/'.join(f'{e:.3g}' for e in edges)}): "
            + "; ".join(one(label, r["transitions"]) for label, r in rows.items()))


def compare(name, draws, tune, seed, check=True, quick=False):
    """Train L2HMC on one model, then sample it with L2HMC and NUTS; returns (rows, note)."""
    model = MODELS[name]()
    sampler, setup = train_l2hmc(model, seed, check, quick)
    history, info = sampler.history, sampler.warmup_info
    with model:
        l2hmc = L2HMC(sampler=sampler)
        nuts = pm.NUTS()
    # Compile the step's MH function and the many-chain one now (NUTS compiles in its constructor):
    # sample s is sampling only.  With the networks' heads zeroed (HMC kept) both are HMC's, which
    # the training's comparison did not compile.
    l2hmc.sampler.model_step_function()
    sampler.compiled_mh_step(carry=True)
    exact = EXACT_MOMENTS.get(name)
    region_var = REGION_VARS.get(name)
    rows = {"L2HMC": run_sampler(model, l2hmc, draws, tune, seed + 1, exact, region_var),
            "NUTS": run_sampler(model, nuts, draws, tune, seed + 1, exact, region_var)}
    many_draws = QUICK["many_draws"] if quick else MANY_DRAWS
    rows[MANY] = run_many_chains(model, sampler, many_draws, seed + 1, exact)
    with model:
        rows[NUTS2] = run_sampler(model, pm.NUTS(), draws, tune, seed + 1, exact, cores=2)
    for label in ("L2HMC", MANY):
        rows[label].update(setup_s=setup, warmup_s=info["seconds"], train_s=history["seconds"],
                           training=f"{info['iterations']} + {len(history['loss'])}")
    for label, fixed in (("L2HMC", setup), ("NUTS", 0.0), (MANY, setup), (NUTS2, 0.0)):
        r = rows[label]
        r["total_s"] = fixed + r["seconds"]
        r["s_to_1000"] = fixed + r["seconds"] * 1000.0 / r["min_ess"] if r["min_ess"] > 0 else np.inf
    tail = slice(-max(1, len(history["accept"]) // 10), None)
    note = (f"{name}: dim {sampler.dim}; {describe(info)}; training {len(history['loss'])} iterations"
            f"{' (stopped: jump flat)' if history.get('stopped_early') else ''}, eps -> {sampler.step_size:.3g}, "
            f"training acceptance (last 10%) {np.mean(history['accept'][tail]):.2f}")
    if sampler.selection is not None:
        note += "; " + describe_selection(sampler.selection)
    if sampler.training_problems:
        note += "; training check: " + "; ".join(sampler.training_problems)
    if region_var:
        note += "; " + describe_regions(region_var, rows, EXACT_QUINTILES.get(name))
    return rows, note


def markdown(results, notes, draws, tune):
    """The report: the main table, the L2HMC/NUTS ratios, and one note per model."""
    lines = [
        f"L2HMC (defaults: T chosen by warm-up, hidden 10/10, diagonal preconditioner) vs NUTS; 2 chains x {draws} draws "
        f"after {tune} tuning draws.",
        "",
        "| model | sampler | min ESS | min at | bulk / tail | grad evals | ESS / 1k grads | ESS / s | divergences "
        "| accept | max r_hat | moment z | sample s | warm-up + training iterations | setup s (warm-up, train) "
        "| total s | s to 1000 ESS |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rows in results.items():
        for label, r in rows.items():
            setup = (f"{r['setup_s']:.0f} ({r['warmup_s']:.0f}, {r['train_s']:.0f})" if "setup_s" in r else "")
            lines.append(
                f"| {name} | {label} | {r['min_ess']:.0f} | {r['min_param']} | {r['min_bulk']:.0f} / "
                f"{r['min_tail']:.0f} | {r['grads']} "
                f"| {r['ess_per_kgrad']:.2f} | {r['ess_per_s']:.1f} | {r['divergences']} | {r['accept']:.2f} "
                f"| {r['max_rhat']:.3f} | {_z(r['moment_z'])} | {r['seconds']:.1f} | {r.get('training', '')} | {setup} "
                f"| {r['total_s']:.0f} | {r['s_to_1000']:.0f} |"
            )
    lines += ["", "| model | L2HMC / NUTS: min ESS per gradient | min ESS per second | many-chain / NUTS 2 cores: "
              "min ESS per second of sampling | the same, L2HMC's setup included |", "|---|---:|---:|---:|---:|"]
    for name, rows in results.items():
        ours, nuts = rows["L2HMC"], rows["NUTS"]
        many, nuts2 = rows[MANY], rows[NUTS2]
        lines.append(f"| {name} | {ratio(ours['ess_per_kgrad'], nuts['ess_per_kgrad'])} "
                     f"| {ratio(ours['ess_per_s'], nuts['ess_per_s'])} "
                     f"| {ratio(many['ess_per_s'], nuts2['ess_per_s'])} "
                     f"| {ratio(many['min_ess'] / many['total_s'], nuts2['ess_per_s'])} |")
    lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def seed_summary(by_seed):
    """Median and range over seeds of each model's L2HMC / NUTS ratios and of both max r_hats.
    ``by_seed``: {seed: {model: {"L2HMC": row, "NUTS": row}}}."""
    seeds = sorted(by_seed)
    lines = [f"Over seeds {', '.join(map(str, seeds))}: median [min, max].", "",
             "| model | L2HMC / NUTS: min ESS per gradient | min ESS per second | L2HMC max r_hat | NUTS max r_hat "
             "| L2HMC divergences | NUTS divergences | L2HMC moment z | NUTS moment z "
             "| many-chain / NUTS 2 cores per second of sampling | the same, setup included |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def spread(values, fmt):
        values = np.asarray(values, dtype=float)
        return f"{np.median(values):{fmt}} [{values.min():{fmt}}, {values.max():{fmt}}]"

    for name in by_seed[seeds[0]]:
        rows = [by_seed[seed][name] for seed in seeds]
        per_grad = [r["L2HMC"]["ess_per_kgrad"] / r["NUTS"]["ess_per_kgrad"] for r in rows]
        per_s = [r["L2HMC"]["ess_per_s"] / r["NUTS"]["ess_per_s"] for r in rows]
        lines.append(f"| {name} | {spread(per_grad, '.2f')} | {spread(per_s, '.2f')} "
                     f"| {spread([r['L2HMC']['max_rhat'] for r in rows], '.3f')} "
                     f"| {spread([r['NUTS']['max_rhat'] for r in rows], '.3f')} "
                     f"| {spread([r['L2HMC']['divergences'] for r in rows], '.0f')} "
                     f"| {spread([r['NUTS']['divergences'] for r in rows], '.0f')} "
                     f"| {_z_spread([r['L2HMC']['moment_z'] for r in rows], spread)} "
                     f"| {_z_spread([r['NUTS']['moment_z'] for r in rows], spread)} "
                     f"| {spread([r[MANY]['ess_per_s'] / r[NUTS2]['ess_per_s'] for r in rows], '.2f')} "
                     f"| {spread([r[MANY]['min_ess'] / r[MANY]['total_s'] / r[NUTS2]['ess_per_s'] for r in rows], '.2f')} |")
    return "\n".join(lines) + "\n"


def _z(value):
    return "" if np.isnan(value) else f"{value:.1f}"


def _z_spread(values, spread):
    return "" if np.all(np.isnan(values)) else spread(values, ".1f")


def ratio(a, b):
    return f"{a / b:.2f}" if b > 0 else "n/a"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--quick", action="store_true",
        help="smoke run: {warmup_iterations} warm-up and {train_steps} training iterations x batch {batch_size}, "
             "{draws} draws, {tune} tuning draws, no training check".format(**QUICK))
    add("--models", nargs="+", choices=list(MODELS), default=list(MODELS), metavar="MODEL",
        help=f"a subset of: {', '.join(MODELS)} (default: all)")
    add("--seeds", type=int, nargs="+", default=[0], metavar="SEED",
        help="training seeds, one full run each (pm.sample gets seed + 1); with several, a summary of the "
             "median and range over seeds follows the per-seed reports (default: 0)")
    add("--draws", type=int, help=f"draws per chain after tuning (default {DRAWS})")
    add("--tune", type=int, help=f"tuning draws per chain (default {TUNE})")
    add("--out", help="also write the Markdown report to this file (atomically)")
    args = parser.parse_args()
    draws = args.draws or (QUICK["draws"] if args.quick else DRAWS)
    tune = args.tune if args.tune is not None else (QUICK["tune"] if args.quick else TUNE)

    by_seed, reports = {}, []
    for seed in args.seeds:
        results, notes = {}, []
        for name in args.models:
            results[name], note = compare(name, draws, tune, seed, check=not args.quick, quick=args.quick)
            notes.append(f"seed {seed}, {note}")
            print(notes[-1], flush=True)
        by_seed[seed] = results
        reports.append(f"## Seed {seed}\n\n" + markdown(results, notes, draws, tune))
        print(reports[-1], end="", flush=True)
    report = "\n".join(reports)
    if len(args.seeds) > 1:
        summary = seed_summary(by_seed)
        print("\n" + summary, end="")
        report = "## Summary\n\n" + summary + "\n" + report
    if args.out:
        atomic_write(args.out, lambda f: f.write(report.encode()))


if __name__ == "__main__":
    main()
